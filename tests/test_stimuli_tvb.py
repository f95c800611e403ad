"""A stimulus against The Virtual Brain: ``StimuliRegion`` + ``PulseTrain`` on Jansen–Rit
(connectivity_76, sigmoidal coupling, delays, deterministic Heun, dt = 0.1 ms) and the same
``[stimuli]`` in cosim agree to 1e-6 of each variable's largest magnitude.

Conventions matched (besides those of ``test_neural_mass_tvb.py``: ``coupling_evaluation =
"step"``, TVB's float32 history): TVB adds the stimulus to the model's ``stvar``, for
Jansen–Rit its coupling variables ``y1`` and ``y2`` (``target = ["y1", "y2"]``); it sets
the stimulus of step ``n`` from ``t_n = n dt`` and holds it over the step (cosim's rule
with ``"step"`` evaluation); ``StimuliRegion.weight`` is one factor per connectome region
(``weights`` as an array of 76).  The pulse onset is off the time grid, where TVB's
``t > onset`` and cosim's ``t >= onset`` agree.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from cosim.connectome import load_connectome
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.stimuli import StimulusSpec
from cosim.stimulus_patterns import Pattern

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    lab = pytest.importorskip("tvb.simulator.lab", reason="tvb-library is not installed")
    from tvb.datatypes import equations, patterns
logging.getLogger("tvb").setLevel(logging.ERROR)

DT, SPEED, DURATION, RTOL = 0.1, 3.0, 300.0, 1e-6
TRAIN = {"T": 40.0, "tau": 8.0, "amp": 3.0, "onset": 20.05}      # ms, ms, mV/ms, ms


def test_pulse_train_on_jansen_rit_matches_tvb_stimuli_region():
    conn76 = load_connectome("tvb:connectivity_76")
    n = conn76.n_regions
    H = int(np.rint(conn76.tract_lengths_mm / SPEED / DT).max()) + 1
    rng = np.random.default_rng(4)
    lo = np.array([-0.1, 10.0, 5.0, -1.0, -2.0, -10.0])
    hi = np.array([0.1, 30.0, 25.0, 1.0, 2.0, 10.0])
    history = lo[None, :, None] + (hi - lo)[None, :, None] * rng.random((H, 6, n))
    weights = np.zeros(n)
    weights[[35, 36, 73]] = (1.0, 0.5, 2.0)          # rV1, rV2, lV1
    G = 10.0
    names = ("y0", "y1", "y2", "y3", "y4", "y5")

    conn = lab.connectivity.Connectivity(
        weights=conn76.weights.copy(), tract_lengths=conn76.tract_lengths_mm.copy(),
        region_labels=np.array(conn76.region_labels), centres=np.zeros((n, 3)),
        speed=np.array([SPEED]))
    stim = patterns.StimuliRegion(temporal=equations.PulseTrain(parameters=dict(TRAIN)),
                                  connectivity=conn, weight=weights.copy())
    model = lab.models.JansenRit(variables_of_interest=names)
    sim = lab.simulator.Simulator(model=model, connectivity=conn,
                                  coupling=lab.coupling.SigmoidalJansenRit(a=np.array([G])),
                                  integrator=lab.integrators.HeunDeterministic(dt=DT),
                                  monitors=(lab.monitors.Raw(),), stimulus=stim,
                                  initial_conditions=history[..., np.newaxis])
    sim.configure()
    assert list(model.stvar) == [1, 2]                  # y1, y2
    (_, y), = sim.run(simulation_length=DURATION)
    theirs = y[..., 0]

    def ours(with_stimulus):
        e = NeuralMassEngine("brain", "jansen_rit", conn76, dt_ms=DT, speed_mm_per_ms=SPEED,
                             integrator="heun", coupling_evaluation="step",
                             coupling="sigmoidal_jansen_rit", coupling_parameters={"G": G},
                             initial_history=history, record_period_ms=DT)
        if with_stimulus:
            p = Pattern("pulse_train", {"amplitude": TRAIN["amp"], "period": TRAIN["T"],
                                        "width": TRAIN["tau"], "onset": TRAIN["onset"],
                                        "count": None, "stop": None})
            e.add_stimulus(StimulusSpec("train", "brain", ["y1", "y2"], p,
                                        {"weights": weights.tolist()}))
        return e.advance(0.0, DURATION, {}).records["timeseries"]

    mine = ours(True)
    assert mine.shape == theirs.shape
    for v, name in enumerate(names):
        scale = np.abs(theirs[:, v]).max()
        err = np.abs(mine[:, v] - theirs[:, v]).max() / scale
        print(f"agreement {name}: {err:.1e}")
        assert err <= RTOL, f"{name}: max |cosim − TVB| / max |TVB| = {err:.2e}"
    # the stimulus matters at this tolerance: without it the runs differ by far more
    plain = ours(False)
    for v in (1, 4):
        scale = np.abs(theirs[:, v]).max()
        assert np.abs(plain[:, v, 35] - theirs[:, v, 35]).max() > 1e3 * RTOL * scale
