"""The TVB-style monitors against The Virtual Brain's own monitors, run side by side.

* MEG and SEEG: the region lead fields derived by :mod:`cosim.sensors` from tvb-data's
  16k-surface projections and ``regionMapping_16k_76`` equal the gain TVB's ``MEG`` /
  ``iEEG`` monitors configure for a region simulation on ``connectivity_76`` (exactly), and
  the projection of the same source time series agrees with those monitors' output.
  Conventions matched: TVB's ``obsnoise`` (additive observation noise, on by default) is
  switched off; TVB averages ``gain · state`` over the period and stamps the mean at the
  middle of the period, cosim projects the period mean and stamps it at the end (the
  samples, compared every step); TVB keeps the 28 MEG channels without a lead field (trigger,
  ECG, reference coils) as zero rows, cosim drops them; tvb-data has no SEEG projection,
  so TVB's ``iEEG`` is given the projection its own ``iEEG.analytic`` computes on the
  cortical surface, which is cosim's SEEG rule.
* Afferent coupling: the neural-mass engine's coupling record equals TVB's
  ``AfferentCoupling`` on connectivity_76 with ``coupling_evaluation = "step"`` (TVB's
  rule) to 1e-6 of its largest magnitude (TVB's float32 history: 1.4e-7 observed).
* Kernel BOLD: cosim's ``hrf = …`` BOLD of TVB's neural signal (its ``Raw`` monitor)
  equals TVB's ``Bold`` monitor for the four HRF kernels (≈1e-15 observed); the record
  period is the integration step, as TVB's Bold averages every step.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from cosim import sensors as sn
from cosim.connectome import load_connectome
from cosim.engines.base import RecordSpec
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.monitor_config import monitors_from_config
from cosim.monitors import variable_signal
from cosim.monitors_tvb import VolterraBoldMonitor
from cosim.schema import Reader

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    lab = pytest.importorskip("tvb.simulator.lab", reason="tvb-library is not installed")
    from tvb.datatypes import equations, projections, region_mapping, sensors as tsens
    from tvb.datatypes import surfaces
logging.getLogger("tvb").setLevel(logging.ERROR)

DT = 0.1
SPEED = 3.0
RTOL = 1e-6


@pytest.fixture(scope="module")
def conn76():
    return load_connectome("tvb:connectivity_76")


def _tvb_conn(conn76):
    """tvb-data's connectivity_76 as TVB loads it (centres and orientations too; TVB's
    projection monitors need them), checked to be cosim's."""
    conn = lab.connectivity.Connectivity.from_file("connectivity_76.zip")
    conn.speed = np.array([SPEED])
    assert list(conn.region_labels) == list(conn76.region_labels)
    np.testing.assert_array_equal(conn.weights, conn76.weights)
    np.testing.assert_array_equal(conn.tract_lengths, conn76.tract_lengths_mm)
    return conn


def _history(conn76, seed=3):
    L = int(np.rint(conn76.tract_lengths_mm / SPEED / DT).max()) + 1
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (L, 2, conn76.n_regions))


@pytest.fixture(scope="module")
def tvb_projections(conn76):
    """A 20-ms Generic2dOscillator region simulation on connectivity_76 with TVB's Raw, MEG
    and iEEG monitors (no observation noise, every step: TVB's period bins count its
    history steps, so a longer period would not start where cosim's do)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meg = lab.monitors.MEG.from_file(obsnoise=None, period=DT)
        ieeg = lab.monitors.iEEG(obsnoise=None, period=DT)
        ieeg.sensors = tsens.SensorsInternal.from_file("seeg_588.txt")
        ieeg.region_mapping = region_mapping.RegionMapping.from_file("regionMapping_16k_76.txt")
        surf = surfaces.CorticalSurface.from_file("cortex_16384.zip")
        surf.configure()
        ieeg.projection = projections.ProjectionSurfaceSEEG(
            projection_data=ieeg.analytic(surf.vertices, surf.vertex_normals))
        sim = lab.simulator.Simulator(
            model=lab.models.Generic2dOscillator(), connectivity=_tvb_conn(conn76),
            coupling=lab.coupling.Linear(a=np.array([0.01])),
            integrator=lab.integrators.HeunDeterministic(dt=DT),
            monitors=(lab.monitors.Raw(), meg, ieeg),
            initial_conditions=_history(conn76)[..., np.newaxis])
        sim.configure()
        (t_raw, raw), (t_meg, y_meg), (t_ieeg, y_ieeg) = sim.run(simulation_length=20.0)
    return dict(raw=raw[:, 0, :, 0], meg=y_meg[:, 0, :, 0], seeg=y_ieeg[:, 0, :, 0],
                gain={"meg": meg.gain, "seeg": ieeg.gain}, t_raw=t_raw, t_meg=t_meg)


def _monitor(table, conn76, tmp_path):
    """cosim's monitor of ``[record.cortex.<table>]`` with its defaults, on a record of
    the Generic2dOscillator's V every dt."""
    spec = RecordSpec("timeseries", ("V", "W"), ("mV", "a.u."), conn76.region_labels, DT)
    r = Reader({table: {"variable": "V"}}, str(tmp_path / "s.toml"),
               "record.cortex")
    em = monitors_from_config(r, "cortex", [spec], model="generic_2d_oscillator",
                              region_labels=conn76.region_labels)
    r.done()
    return em, spec


@pytest.mark.parametrize("table", ["meg", "seeg"])
def test_region_leadfield_is_tvbs_gain(table, conn76, tvb_projections, tmp_path):
    em, _ = _monitor(table, conn76, tmp_path)
    mon = em.series[0][1]
    theirs = tvb_projections["gain"][table]
    keep = [i for i, s in enumerate(_sensor_labels(table)) if s in mon.spec.regions]
    assert len(keep) == mon.leadfield.shape[0] == (248 if table == "meg" else 588)
    np.testing.assert_array_equal(mon.leadfield, theirs[keep])
    dropped = np.setdiff1d(np.arange(theirs.shape[0]), keep)
    assert np.all(theirs[dropped] == 0.0)                    # TVB's zero rows
    assert mon.spec.variables == (table,) and mon.spec.units == ("a.u.",)


def _sensor_labels(table):
    name = "tvb:meg_brainstorm_276.txt" if table == "meg" else "tvb:seeg_588.txt"
    return sn.read_sensors(sn.resolve(name, Path("."), None, None)).labels


@pytest.mark.parametrize("table", ["meg", "seeg"])
def test_projection_of_the_same_source_equals_tvbs_monitor(table, conn76, tvb_projections,
                                                           tmp_path):
    em, spec = _monitor(table, conn76, tmp_path)
    raw = tvb_projections["raw"]                               # (step, region): V
    x = np.zeros((raw.shape[0], 2, raw.shape[1]))
    x[:, 0] = raw
    ours = em.apply({"timeseries": x}, 20.0)[table][:, 0, :]     # (200, sensor)
    theirs = tvb_projections[table]
    keep = [i for i, s in enumerate(_sensor_labels(table)) if s in em.series[0][1].spec.regions]
    theirs = theirs[:, keep]
    assert ours.shape == theirs.shape == (200, len(keep))
    # TVB stamps a sample at the middle of its period, cosim at its end
    np.testing.assert_allclose(tvb_projections["t_meg"] + DT / 2, tvb_projections["t_raw"],
                               rtol=1e-12)
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= RTOL * scale * 1e-3   # 1e-9: summation order only


def test_afferent_coupling_equals_tvbs_monitor(conn76):
    hist = _history(conn76, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = lab.simulator.Simulator(
            model=lab.models.Generic2dOscillator(), connectivity=_tvb_conn(conn76),
            coupling=lab.coupling.Linear(a=np.array([0.01])),
            integrator=lab.integrators.HeunDeterministic(dt=DT),
            monitors=(lab.monitors.Raw(), lab.monitors.AfferentCoupling()),
            initial_conditions=hist[..., np.newaxis])
        sim.configure()
        (_, raw), (_, aff) = sim.run(simulation_length=40.0)
    eng = NeuralMassEngine("b", "generic_2d_oscillator", conn76, dt_ms=DT,
                           speed_mm_per_ms=SPEED, integrator="heun",
                           coupling_evaluation="step", coupling="linear",
                           coupling_parameters={"G": 0.01}, initial_history=hist,
                           record_period_ms=DT)
    em = monitors_from_config(Reader({"afferent_coupling": {}}, "s.toml", "record.b"), "b",
                              eng.record_specs(), engine_object=eng)
    out = em.apply(eng.advance(0.0, 40.0, {}).records, 40.0)
    ours, theirs = out["afferent_coupling"][:, 0], aff[:, 0, :, 0]
    assert ours.shape == theirs.shape == (400, 76)
    assert np.abs(ours - theirs).max() <= RTOL * np.abs(theirs).max()
    assert "coupling" not in out                      # the engine's record is internal
    v = out["timeseries"][:, 0]
    assert np.abs(v - raw[:, 0, :, 0]).max() <= RTOL * np.abs(raw[:, 0]).max()


KERNELS = {"first_order_volterra": equations.FirstOrderVolterra, "gamma": equations.Gamma,
           "double_exponential": equations.DoubleExponential,
           "mixture_of_gammas": equations.MixtureOfGammas}


def test_kernel_bold_equals_tvbs_bold_monitor():
    n, dt = 3, 1.0
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, (n, n))
    np.fill_diagonal(w, 0.0)
    conn = lab.connectivity.Connectivity(weights=w, tract_lengths=rng.uniform(5, 30, (n, n)),
                                         region_labels=np.array(["a", "b", "c"]),
                                         centres=np.zeros((n, 3)), speed=np.array([SPEED]))
    bolds = [lab.monitors.Bold(period=500.0, hrf_kernel=k()) for k in KERNELS.values()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = lab.simulator.Simulator(
            model=lab.models.Generic2dOscillator(), connectivity=conn,
            coupling=lab.coupling.Linear(a=np.array([0.1])),
            integrator=lab.integrators.HeunDeterministic(dt=dt),
            monitors=(lab.monitors.Raw(), *bolds), simulation_length=5000.0)
        sim.configure()
        (_, raw), *outs = sim.run()
    src = RecordSpec("timeseries", ("V",), ("mV",), ("a", "b", "c"), dt)
    for name, (t, y) in zip(KERNELS, outs):
        mon = VolterraBoldMonitor(src, variable_signal(src, "V"), kernel=name, tr_ms=500.0)
        ours = mon.update(raw[:, :, :, 0])[:, 0]
        theirs = y[:, 0, :, 0]
        assert ours.shape == theirs.shape == (10, 3), name
        np.testing.assert_allclose(t, 500.0 * np.arange(1, 11) + t[0] - 500.0)
        assert np.abs(ours - theirs).max() <= RTOL * np.abs(theirs).max(), name
