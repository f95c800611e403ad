"""The neural-mass engine against The Virtual Brain (tvb-library), run side by side.

Same connectome (``connectivity_76``), conduction speed (3 mm/ms → delays up to 513
steps), model, coupling, deterministic Heun with dt = 0.1 ms, and the same random initial
history.  Conventions matched:

* TVB evaluates the delayed coupling once per step and holds it over both Heun stages:
  ``coupling_evaluation = "step"``.
* TVB's ``initial_conditions`` (T, state, region, mode) is chronological with the last
  sample at t = 0 — the engine's ``initial_history`` layout.
* TVB's ``Raw`` monitor samples the state after every step; its time axis starts at
  ``horizon · dt`` (it counts the history steps), ours at ``dt``: sample ``k`` of both is
  the state after step ``k + 1``.

Tolerance: every recorded variable agrees to 1e-6 of its largest magnitude over the run.
Observed after 300 ms: Jansen–Rit 1.5e-8, Wong–Wang 1.3e-8, Stuart–Landau 4e-8.  The
residual is TVB's: it keeps the history buffer and the weights in float32 and forms the
coupling sum in float32 (relative rounding ~6e-8 of the coupling input, visible from the
first step on); cosim works in float64 throughout.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from cosim.connectome import load_connectome
from cosim.engines.neural_mass import NeuralMassEngine

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    lab = pytest.importorskip("tvb.simulator.lab", reason="tvb-library is not installed")
logging.getLogger("tvb").setLevel(logging.ERROR)

DT = 0.1
SPEED = 3.0
DURATION = 300.0
RTOL = 1e-6


@pytest.fixture(scope="module")
def conn76():
    return load_connectome("tvb:connectivity_76")


def _tvb_run(model, coupling, conn76, history):
    """Run TVB with ``history`` (T, state, region); return (times, samples (t, state, region))."""
    conn = lab.connectivity.Connectivity(
        weights=conn76.weights.copy(), tract_lengths=conn76.tract_lengths_mm.copy(),
        region_labels=np.array(conn76.region_labels), centres=np.zeros((conn76.n_regions, 3)),
        speed=np.array([SPEED]))
    sim = lab.simulator.Simulator(model=model, connectivity=conn, coupling=coupling,
                                  integrator=lab.integrators.HeunDeterministic(dt=DT),
                                  monitors=(lab.monitors.Raw(),),
                                  initial_conditions=history[..., np.newaxis])
    sim.configure()
    (t, y), = sim.run(simulation_length=DURATION)
    return np.asarray(t), y[..., 0]


def _horizon(conn76):
    return int(np.rint(conn76.tract_lengths_mm / SPEED / DT).max()) + 1


def _ours(model, coupling, params, conn76, history, **kw):
    engine = NeuralMassEngine("brain", model, conn76, dt_ms=DT, speed_mm_per_ms=SPEED,
                              integrator="heun", coupling_evaluation="step", coupling=coupling,
                              coupling_parameters=params, initial_history=history,
                              record_period_ms=DT, **kw)
    return engine.advance(0.0, DURATION, {}).records["timeseries"]


def _assert_agree(ours, theirs, names):
    assert ours.shape == theirs.shape
    for v, name in enumerate(names):
        scale = np.abs(theirs[:, v]).max()
        err = np.abs(ours[:, v] - theirs[:, v]).max() / scale
        print(f"agreement {name}: {err:.1e}")       # shown with pytest -s
        assert err <= RTOL, f"{name}: max |cosim − TVB| / max |TVB| = {err:.2e}"


def test_jansen_rit_sigmoidal_coupling_matches_tvb(conn76):
    names = ("y0", "y1", "y2", "y3", "y4", "y5")
    H = _horizon(conn76)
    rng = np.random.default_rng(1)
    lo = np.array([-0.1, 10.0, 5.0, -1.0, -2.0, -10.0])
    hi = np.array([0.1, 30.0, 25.0, 1.0, 2.0, 10.0])
    history = lo[None, :, None] + (hi - lo)[None, :, None] * rng.random((H, 6, conn76.n_regions))
    G = 10.0   # 10x TVB's default, so that the delayed coupling shapes the dynamics
    t, theirs = _tvb_run(lab.models.JansenRit(variables_of_interest=names),
                         lab.coupling.SigmoidalJansenRit(a=np.array([G])), conn76, history)
    ours = _ours("jansen_rit", "sigmoidal_jansen_rit", {"G": G}, conn76, history)
    np.testing.assert_allclose(t - t[0], np.arange(len(t)) * DT, atol=1e-9)
    assert np.isclose(t[0], H * DT)
    _assert_agree(ours, theirs, names)
    # the coupling matters at this tolerance: without it the runs differ by far more
    uncoupled = _ours("jansen_rit", "sigmoidal_jansen_rit", {"G": 0.0}, conn76, history)
    assert np.abs(uncoupled[:, 4] - theirs[:, 4]).max() > 1e3 * RTOL * np.abs(theirs[:, 4]).max()


def test_reduced_wong_wang_linear_coupling_matches_tvb(conn76):
    H = _horizon(conn76)
    history = np.random.default_rng(2).uniform(0.0, 0.4, (H, 1, conn76.n_regions))
    G = 0.5
    _, theirs = _tvb_run(lab.models.ReducedWongWang(),
                         lab.coupling.Linear(a=np.array([G]), b=np.array([0.0])), conn76, history)
    ours = _ours("wong_wang", "linear", {"G": G}, conn76, history)
    _assert_agree(ours, theirs, ("S",))


def test_stuart_landau_difference_coupling_matches_tvb(conn76):
    H = _horizon(conn76)
    history = np.random.default_rng(3).uniform(-0.5, 0.5, (H, 2, conn76.n_regions))
    a, omega, G = 0.05, 0.3, 0.05
    _, theirs = _tvb_run(lab.models.SupHopf(a=np.array([a]), omega=np.array([omega]),
                                            variables_of_interest=("x", "y")),
                         lab.coupling.Difference(a=np.array([G])), conn76, history)
    ours = _ours("stuart_landau", "difference", {"G": G}, conn76, history,
                 parameters={"a": a, "omega": omega})
    _assert_agree(ours, theirs, ("x", "y"))
