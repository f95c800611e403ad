"""BOLD per region on the cortical surface: ``[record.<engine>.bold]`` applied to the surface
engine's ``regions`` dataset (the region averages of the vertex states).

* Balloon–Windkessel (the default ``hrf``): the monitor integrates the region averages, and
  its output equals :func:`cosim.analysis.hemodynamics.balloon_windkessel` run once on the
  recorded region series (the neural-mass BOLD on the same series), to rounding; with
  Jansen–Rit at every vertex the default input is the model's rate transfer with the
  engine's parameters.
* A haemodynamic kernel (``hrf = "first_order_volterra"``, TVB's ``Bold`` monitor): TVB's
  surface simulation applies its Bold monitor to every vertex; the kernel is linear, so its
  per-vertex output averaged over each region's vertices is the kernel BOLD of the region
  average.  Checked against TVB on the 16k cortex (same model, data, initial state).
"""

from __future__ import annotations

import logging
import warnings

import h5py
import numpy as np
import pytest

from _util import REPO
from cosim.analysis.hemodynamics import balloon_windkessel
from cosim.cli import main

SCENARIO = REPO / "scenarios" / "cortical_surface.toml"


def _scenario(tmp_path, duration, extra, replace=()):
    text = SCENARIO.read_text().replace("duration = 100.0", f"duration = {duration}")
    text = text.replace('output = "results/cortical_surface.h5"\n', "")
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    p = tmp_path / "surface.toml"
    p.write_text(text + extra)
    return p


def _run(p):
    out = p.with_suffix(".h5")
    assert main(["run", str(p), "-o", str(out), "-q", "--no-monitor"]) == 0
    with h5py.File(out) as f:
        g = f["engines/cortex"]
        return {k: g[k][()] for k in ("regions", "bold")}, dict(g["bold"].attrs)


def test_balloon_bold_of_the_region_averages(tmp_path):
    extra = ('\n[record.cortex]\nvariables = ["V"]\n'
             '[record.cortex.bold]\ninput = "V"\nscale = 2.0\noffset = -1.5\ntr = 5.0\n'
             'step = 1.0\n')
    out, attrs = _run(_scenario(tmp_path, 20.0, extra))
    v = out["regions"][:, 0, :]                         # (time, region) every 1 ms
    assert v.shape == (20, 76) and out["bold"].shape == (4, 1, 76)
    ref = balloon_windkessel(2.0 * (v + 1.5), 1.0)[4::5]
    np.testing.assert_allclose(out["bold"][:, 0], ref, rtol=1e-12, atol=1e-15)
    assert np.abs(ref[-1]).min() > 1e-6 and np.ptp(ref[-1]) > 1e-6   # a response, per region
    assert attrs["source"] == "regions"


def test_jansen_rit_surface_bold_reads_the_rate_transfer(tmp_path):
    """``input = "rate"`` (the default): Jansen–Rit's sigmoid of ``y1 − y2`` with the surface
    engine's parameters (one value for every region)."""
    extra = ('\n[engines.cortex.parameters]\nv0 = 6.0\n[record.cortex]\n'
             'variables = ["y1", "y2"]\n[record.cortex.bold]\ntr = 2.0\nstep = 1.0\n')
    rep = (('model = "generic_2d_oscillator"', 'model = "jansen_rit"'),
           ('eeg = "tvb:projection_eeg_65_surface_16k"', ''),
           ("[engines.cortex.coupling]\ntype = \"linear\"\nG = 0.05",
            "[engines.cortex.coupling]\ntype = \"sigmoidal_jansen_rit\""))
    out, _ = _run(_scenario(tmp_path, 4.0, extra, rep))
    y1, y2 = out["regions"][:, 0], out["regions"][:, 1]
    rate = 2 * 2.5 / (1 + np.exp(0.56 * (6.0 - (y1 - y2))))     # Hz, e0 = 1000 nu_max
    ref = balloon_windkessel(rate, 1.0)[1::2]
    np.testing.assert_allclose(out["bold"][:, 0], ref, rtol=1e-12, atol=1e-15)
    assert np.ptp(y1 - y2) > 0.1


def test_kernel_bold_equals_tvbs_surface_bold_averaged_per_region():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = pytest.importorskip("tvb.simulator.lab", reason="tvb-library is not installed")
    logging.getLogger("tvb").setLevel(logging.ERROR)
    from cosim.connectome import load_connectome
    from cosim.engines.base import RecordSpec
    from cosim.engines.neural_surface import NeuralSurfaceEngine
    from cosim.fields.surface import load_region_mapping
    from cosim.monitors import variable_signal
    from cosim.monitors_tvb import VolterraBoldMonitor
    from tvb_surface import tvb_cortex, tvb_surface_simulator
    dt, T, tr, length = 0.1, 48.0, 16.0, 40.0
    eng = NeuralSurfaceEngine("cortex", "generic_2d_oscillator",
                              load_connectome("tvb:connectivity_76"), coupling="linear",
                              coupling_parameters={"G": 0.05}, local_coupling_strength=0.02,
                              random_initial=True, seed=3, dt_ms=dt, speed_mm_per_ms=3.0,
                              record_period_ms=dt)
    eng.build()
    x0 = eng.initial_vertex_state()
    src = RecordSpec("regions", ("V", "W"), ("mV", "1"), eng.region_labels, dt)
    mon = VolterraBoldMonitor(src, variable_signal(src, "V"), tr_ms=tr, length_ms=length)
    ours = np.concatenate([mon.update(eng.advance(t, t + 8.0).records["regions"])
                           for t in np.arange(0.0, T, 8.0)])[:, 0]
    tc, ctx = tvb_cortex(0.02)
    sim = tvb_surface_simulator(tc, ctx, x0, 0.05, T, lab.monitors.Bold(period=tr, hrf_length=length),
                                variables=("V",), dt=dt)
    sim.current_step = 0                          # as bench/neural_field.py: step 0 is x0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (t, y), = sim.run()
    per_vertex = y[:, 0, :, 0]                    # (sample, vertex)
    rm = load_region_mapping("tvb:regionMapping_16k_76")
    theirs = np.stack([np.bincount(rm, w, minlength=76) for w in per_vertex])
    theirs /= np.bincount(rm, minlength=76)
    assert ours.shape == theirs.shape == (3, 76)
    scale = np.abs(theirs).max()
    # TVB keeps the delay history in float32 (tests/test_neural_surface_tvb.py): ~1e-7
    assert np.abs(ours - theirs).max() <= 1e-6 * scale, np.abs(ours - theirs).max() / scale
    assert np.ptp(theirs[-1]) > 1e-3 * scale                       # regions differ
