"""Stimuli (``[stimuli.<name>]``, :mod:`cosim.stimuli`): temporal patterns against their
formulas, a sinusoid driving the linear model against the closed-form solution (and the
integrators' orders), the output file against the applied stimulus, spiking stimuli
against the engine's validated clamps and Poisson statistics, checkpoint-resume and
split partitions bit for bit, and every bad input as one line naming file, key, problem.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from _util import assert_same_data, crash_and_resume, h5_data, run_cli
from cosim.connectome import make_connectome
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.errors import CosimError
from cosim.multicompartment.partition import advance_in_lockstep, merge_outputs
from cosim.runtime import run_scenario
from cosim.scenario import load_scenario
from cosim.stimuli import StimulusSpec
from cosim.stimulus_patterns import Pattern
from scenarios import ball_and_stick, multicompartment, neural_mass, record, scenario, simulation


def pattern(kind, **p):
    defaults = {"pulse_train": dict(onset=0.0, count=None, stop=None),
                "pulse": dict(onset=0.0), "ramp": dict(onset=0.0, stop=None),
                "sinusoid": dict(onset=0.0, phase=0.0, offset=0.0, stop=None)}[kind]
    return Pattern(kind, {**defaults, **p})


# -- temporal patterns ----------------------------------------------------------------------

def test_pulse_train_pulse_ramp_sinusoid_follow_their_formulas():
    t = np.array([0.0, 9.99, 10.0, 11.99, 12.0, 19.0, 30.0, 31.5, 40.0, 41.0])
    u = pattern("pulse_train", amplitude=2.0, period=10.0, width=2.0, onset=10.0, count=3)(t)
    np.testing.assert_array_equal(u, [0, 0, 2, 2, 0, 0, 2, 2, 0, 0])   # 3 pulses: 10, 20, 30
    u = pattern("pulse_train", amplitude=1.0, period=10.0, width=2.0, stop=31.0)(t)
    np.testing.assert_array_equal(u, [1, 0, 1, 1, 0, 0, 1, 0, 1, 1][:7] + [0, 0, 0])
    u = pattern("pulse", amplitude=-3.0, width=1.5, onset=10.0)(t)
    np.testing.assert_array_equal(u, [0, 0, -3, 0, 0, 0, 0, 0, 0, 0])
    u = pattern("ramp", amplitude=4.0, duration=20.0, onset=10.0)(t)
    np.testing.assert_allclose(u, [0, 0, 0, 4 * 1.99 / 20, 0.4, 1.8, 4, 4, 4, 4], rtol=1e-15)
    s = pattern("sinusoid", amplitude=2.0, frequency=25.0, phase=0.5, offset=1.0, onset=5.0)
    np.testing.assert_allclose(s(t), np.where(t >= 5.0, 1.0 + 2.0 * np.sin(
        2 * math.pi * 0.025 * t + 0.5), 0.0), rtol=1e-14)


def test_file_patterns_interpolate_and_hold(tmp_path, write_scenario):
    np.save(tmp_path / "u.npy", np.array([1.0, 3.0, 1.0, -1.0]))
    (tmp_path / "u.csv").write_text("time_ms,value\n2.0,1.0\n4.0,3.0\n8.0,-1.0\n")
    base = scenario(simulation(duration=2.0), {"cortex": neural_mass("linear", regions=["rV1"])})
    got = {}
    for name, temporal in (("lin", {"type": "file", "file": "u.npy", "period": 2.0, "start": 2.0}),
                           ("csv", {"type": "file", "file": "u.csv", "scale": 2.0}),
                           ("hold", {"type": "file", "file": "u.csv", "interpolation": "previous"})):
        sc = load_scenario(write_scenario({**base, "stimuli": {name: {
            "engine": "cortex", "target": "x", "temporal": temporal}}}))
        got[name] = sc.stimuli[name].pattern
    t = np.array([0.0, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0, 11.9, 12.1])
    np.testing.assert_allclose(got["lin"](t), [0, 1, 2, 3, 1, -1, 0, 0, 0])
    np.testing.assert_allclose(got["csv"](t), 2 * got["lin"](t))
    # previous: each sample holds until the next, the last for one more spacing (4 ms)
    np.testing.assert_array_equal(got["hold"](t), [0, 1, 1, 3, 3, -1, -1, -1, 0])


# -- neural masses: the closed form of a driven linear node ---------------------------------

def _linear_engine(dt, evaluation, gamma=-0.5):
    c = make_connectome(np.zeros((2, 2)), np.zeros((2, 2)), ["A", "B"])
    return NeuralMassEngine("n", "linear", c, dt_ms=dt, record_period_ms=1.0,
                            integrator="heun", coupling_evaluation=evaluation,
                            parameters={"gamma": gamma}, coupling_parameters={"G": 0.0})


def _driven(dt, evaluation, target="x", T=40.0):
    e = _linear_engine(dt, evaluation)
    sin = pattern("sinusoid", amplitude=0.8, frequency=50.0)
    e.add_stimulus(StimulusSpec("s", "n", target, sin, {"weights": [1.0, 0.5]}))
    return e.advance(0.0, T, {}).records["timeseries"][:, 0, :]       # (time, region)


def test_sinusoid_on_a_linear_node_matches_the_closed_form_at_the_integrators_order():
    """x' = γ x + w B sin(ω t), x(0) = 0:  x = w B (ω e^{γt} − ω cos ωt − γ sin ωt)/(γ² + ω²)."""
    g, B, om = -0.5, 0.8, 2 * math.pi * 0.05
    t = np.arange(1, 41) * 1.0
    exact = B * (om * np.exp(g * t) - om * np.cos(om * t) - g * np.sin(om * t)) / (g * g + om * om)
    exact = np.stack([exact, 0.5 * exact], axis=1)
    err = {}
    for ev in ("stage", "step"):
        for dt in (0.1, 0.05):
            x = _driven(dt, ev)
            err[ev, dt] = np.abs(x - exact).max() / np.abs(exact).max()
    assert err["stage", 0.05] < 2e-4                 # Heun, u at each stage's time: 2nd order
    assert 3.6 < err["stage", 0.1] / err["stage", 0.05] < 4.4
    assert 1.8 < err["step", 0.1] / err["step", 0.05] < 2.2   # u held over the step: 1st order
    assert err["step", 0.05] < 0.05


def test_a_stimulus_on_the_coupling_input_of_the_linear_node_equals_one_on_x():
    """dx/dt = γ x + c: a term on c is a term on dx/dt."""
    np.testing.assert_allclose(_driven(0.1, "stage", "coupling"), _driven(0.1, "stage", "x"),
                               rtol=1e-13, atol=1e-16)


# -- the scenario and the output file -------------------------------------------------------

def _jr_scenario(out="out.h5", **sim):
    return scenario(simulation(duration=20.0, seed=3, output=out, **sim),
                    {"cortex": neural_mass("jansen_rit", regions=["rV1", "rV2", "lV1"])},
                    record=record(1.0, 4))


PULSES = {"type": "pulse_train", "amplitude": 50.0, "period": 5.0, "width": 1.0,
          "onset": 2.05}


def test_output_holds_the_applied_stimulus_and_the_run_feels_it(write_scenario, tmp_path):
    sc0 = _jr_scenario("none.h5")
    sc1 = {**_jr_scenario("stim.h5"), "stimuli": {"p": {
        "engine": "cortex", "target": ["y1", "y2"], "weights": {"rV2": 0.5, "lV1": 2.0},
        "temporal": PULSES}}}
    run_scenario(load_scenario(write_scenario(sc0, "a.toml")), output=tmp_path / "none.h5",
                 progress_stream=None)
    run_scenario(load_scenario(write_scenario(sc1, "b.toml")), output=tmp_path / "stim.h5",
                 progress_stream=None)
    with h5py.File(tmp_path / "stim.h5") as f, h5py.File(tmp_path / "none.h5") as f0:
        g = f["stimuli/p"]
        t = g["time_ms"][()]
        np.testing.assert_array_equal(t, np.arange(200) * 0.1)        # t_k = k dt, every step
        on = (t >= 2.05) & ((t - 2.05) % 5.0 < 1.0)
        np.testing.assert_array_equal(g["values"][()], np.where(on, 50.0, 0.0))
        np.testing.assert_array_equal(g["weights"][()], [0.0, 0.5, 2.0])
        assert list(g.attrs["targets"]) == ["rV1", "rV2", "lV1"]
        assert g.attrs["target"] == "y1,y2" and g.attrs["unit"] == "mV/ms"
        assert g.attrs["pattern"] == "pulse_train" and g.attrs["pattern_period"] == 5.0
        a, b = f["engines/cortex/timeseries"][()], f0["engines/cortex/timeseries"][()]
    np.testing.assert_array_equal(a[:2], b[:2])                      # before the onset
    assert np.abs(a[3:, 1, 2] - b[3:, 1, 2]).max() > 1.0            # lV1's y1 moved


def test_weights_by_array_engine_or_connectome_order(write_scenario):
    base = _jr_scenario()
    w76 = [0.0] * 76
    w76[36], w76[73] = 3.0, 4.0                # rV2, lV1 in connectivity_76
    for weights, expected in ((w76, [0, 3, 4]), ([1.0, 2.0, 3.0], [1, 2, 3]), (0.5, [.5] * 3)):
        sc = load_scenario(write_scenario({**base, "stimuli": {"p": {
            "engine": "cortex", "target": "y4", "weights": weights, "temporal": PULSES}}}))
        np.testing.assert_array_equal(sc.stimuli["p"].weights, expected)


BAD = [
    ({"weights": {"rV3": 1.0}}, "stim.toml: stimuli.p.weights.rV3: unknown region; did you mean"),
    ({"weights": {"rA1": 1.0}}, "stim.toml: stimuli.p.weights.rA1: region 'rA1' is not simulated by engine 'cortex'"),
    ({"weights": [1.0, 2.0]}, "stim.toml: stimuli.p.weights: has 2 values; expected one per connectome region (76), or one per region of engine 'cortex' (3)"),
    ({"weights": {"rV1": "high"}}, "stim.toml: stimuli.p.weights.rV1: must be a number, got str 'high'"),
    ({"target": "y9"}, "stim.toml: stimuli.p.target: unknown state variable 'y9' of model jansen_rit (has y0, y1, y2, y3, y4, y5; or \"coupling\")"),
    ({"target": ["y1", "coupling"]}, "stim.toml: stimuli.p.target: \"coupling\" cannot be combined with state variables"),
    ({"target": 3}, "stim.toml: stimuli.p.target: must be a string or an array of strings, got 3"),
    ({"engine": "cortx"}, "stim.toml: stimuli.p.engine: no engine 'cortx'; have cortex; did you mean 'cortex'?"),
    ({"input": "bg"}, "stim.toml: stimuli.p.input: not a key of a stimulus with target on a neural-mass engine (use weights)"),
    ({"wieghts": 1.0}, "stim.toml: stimuli.p.wieghts: unknown key; did you mean 'weights'?"),
    ({"temporal": {**PULSES, "period": -5.0}}, "stim.toml: stimuli.p.temporal.period: must be > 0, got -5"),
    ({"temporal": {**PULSES, "width": 5.0}}, "stim.toml: stimuli.p.temporal.width: 5 ms is not shorter than period = 5 ms (the pulses would merge)"),
    ({"temporal": {**PULSES, "type": "square"}}, "stim.toml: stimuli.p.temporal.type: must be one of 'pulse_train', 'pulse', 'sinusoid', 'ramp', 'file', got 'square'"),
    ({"temporal": {"type": "sinusoid", "amplitude": 1.0}}, "stim.toml: stimuli.p.temporal.frequency: missing required key"),
    ({"temporal": {"type": "ramp", "amplitude": 1.0, "duration": 2.0, "onset": -1.0}}, "stim.toml: stimuli.p.temporal.onset: must be >= 0, got -1"),
    ({"temporal": {"type": "pulse", "amplitude": 1.0, "width": 2.0, "period": 3.0}}, "stim.toml: stimuli.p.temporal.period: unknown key"),
    ({"temporal": None}, "stim.toml: stimuli.p.temporal: missing required key"),
    ({"temporal": {"type": "file", "file": "absent.npy", "period": 1.0}}, "absent.npy: stimuli.p.temporal.file: no such file"),
    ({"temporal": {"type": "file", "file": "u.txt", "period": 1.0}}, "u.txt: stimuli.p.temporal.file: unknown file type '.txt'; expected .npy or .csv"),
    ({"temporal": {"type": "file", "file": "u2d.npy"}}, "u2d.npy: stimuli.p.temporal.file: has shape (4, 3); expected (n,) values or (n, 2) columns time, value"),
    ({"temporal": {"type": "file", "file": "u1d.npy"}}, "u1d.npy: stimuli.p.temporal.file: one column of values needs a sample period: set stimuli.p.temporal.period (ms), or give two columns time, value"),
    ({"temporal": {"type": "file", "file": "back.csv"}}, "back.csv: stimuli.p.temporal.file: times must increase: sample 2 at 1 ms follows 2 ms"),
    ({"temporal": {"type": "file", "file": "words.csv"}}, "words.csv: stimuli.p.temporal.file: cannot read (row 2 is not numbers: '2.0,abc')"),
    ({"temporal": {"type": "file", "file": "nan.npy", "period": 1.0}}, "nan.npy: stimuli.p.temporal.file: value of sample 1 is nan"),
    ({"temporal": {"type": "file", "file": "u2c.csv", "period": 1.0}}, "u2c.csv: stimuli.p.temporal.file: has a time column and period is set too; give one of them"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(": ", 2)[-1][:40] for _, m in BAD])
def test_bad_stimuli_are_one_line_naming_file_key_and_problem(write_scenario, tmp_path,
                                                              change, message):
    np.save(tmp_path / "u2d.npy", np.zeros((4, 3)))
    np.save(tmp_path / "u1d.npy", np.zeros(4))
    np.save(tmp_path / "nan.npy", np.array([0.0, np.nan, 1.0]))
    (tmp_path / "u.txt").write_text("1\n2\n")
    (tmp_path / "back.csv").write_text("0.0,1\n2.0,1\n1.0,1\n")
    (tmp_path / "words.csv").write_text("1.0,2.0\n2.0,abc\n")
    (tmp_path / "u2c.csv").write_text("0.0,1\n2.0,1\n")
    stim = {"engine": "cortex", "target": "y1", "weights": {"rV1": 1.0}, "temporal": PULSES}
    stim.update(change)
    stim = {k: v for k, v in stim.items() if v is not None}
    path = write_scenario({**_jr_scenario(), "stimuli": {"p": stim}}, "stim.toml")
    with pytest.raises(CosimError) as err:
        load_scenario(path)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_misplaced_stimulus_tables_point_to_stimuli(write_scenario):
    base = _jr_scenario()
    sc = {**base, "stimulus": {"p": {"engine": "cortex"}}}
    with pytest.raises(CosimError, match=r"^stim.toml: stimulus: unknown key; did you mean "
                                         r"'stimuli'\?$"):
        load_scenario(write_scenario(sc, "stim.toml"))
    sc = {**base, "engines": {"cortex": {**base["engines"]["cortex"], "stimulus": {"a": 1.0}}}}
    with pytest.raises(CosimError, match=r"^stim.toml: engines.cortex.stimulus: a stimulus is a "
                                         r"table of its own: \[stimuli.<name>\] with engine = "
                                         r"\"cortex\""):
        load_scenario(write_scenario(sc, "stim.toml"))


def test_cli_validate_lists_the_stimuli(write_scenario, tmp_path):
    path = write_scenario({**_jr_scenario(), "stimuli": {"p": {
        "engine": "cortex", "target": ["y1", "y2"], "temporal": PULSES}}}, "stim.toml")
    r = run_cli("validate", str(path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("; stimulus p (pulse_train on cortex.y1,y2)")


def test_cli_refuses_a_bad_stimulus_with_exit_2_and_one_line(write_scenario, tmp_path):
    path = write_scenario({**_jr_scenario(), "stimuli": {"p": {
        "engine": "cortex", "target": "y7", "temporal": PULSES}}}, "stim.toml")
    for cmd in ("validate", "run"):
        r = run_cli(cmd, str(path), cwd=tmp_path)
        assert r.returncode == 2
        assert r.stderr.strip() == ("stim.toml: stimuli.p.target: unknown state variable 'y7' of "
                                    "model jansen_rit (has y0, y1, y2, y3, y4, y5; or "
                                    "\"coupling\"); did you mean 'y5'?")
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "out.h5").exists()


# -- spiking engines ------------------------------------------------------------------------

def _cells(**inputs):
    cells = {"exc": ball_and_stick(4, 3)}
    return multicompartment(cells=cells, inputs=inputs or None,
                            probes={"cells": [0, 1, 2, 3], "sections": ["soma"], "x": 0.5})


def _mc_engine(write_scenario, stimuli, clamps=None, **keys):
    eng = _cells(stim={"target": "exc", "receptor": "AMPA", "section": "dend", "x": 0.5,
                       "weight": 0.002, "per_cell": 5})
    if clamps:
        eng["clamps"] = clamps
    sc = scenario(simulation(duration=40.0, seed=5, output="mc.h5", **keys), {"v1": eng},
                  record=record(0.5, 5, v1={"variables": ["spikes", "v"]}),
                  stimuli=stimuli)
    return write_scenario(sc, "mc.toml")


def test_a_current_train_equals_one_clamp_table_per_pulse(write_scenario):
    """One declaration for a train = the engine's NEURON-validated IClamp tables, bitwise."""
    train = {"c": {"engine": "v1", "target": "current", "population": "exc", "cells": [1, 3],
                   "temporal": {"type": "pulse_train", "amplitude": 0.4, "period": 10.0,
                                "width": 3.0, "onset": 5.0, "count": 3}}}
    clamps = {f"k{i}": {"target": "exc", "cells": [1, 3], "section": "soma", "x": 0.5,
                        "delay": 5.0 + 10.0 * i, "duration": 3.0, "amplitude": 0.4}
              for i in range(3)}
    a = load_scenario(_mc_engine(write_scenario, train)).engines["v1"]
    b = load_scenario(_mc_engine(write_scenario, {}, clamps=clamps)).engines["v1"]
    a.build()
    b.build()
    oa, ob = a.advance(0.0, 40.0, {}), b.advance(0.0, 40.0, {})
    np.testing.assert_array_equal(oa.records["v"], ob.records["v"])
    assert oa.records["spikes"][0].size >= 3                 # the pulses make spikes
    assert set(oa.records["spikes"][0].tolist()) == {1, 3}


def test_poisson_rate_stimulus_has_the_pattern_rate_and_none_outside(write_scenario):
    stim = {"d": {"engine": "v1", "target": "poisson", "input": "stim",
                  "temporal": {"type": "pulse", "amplitude": 400.0, "width": 20.0,
                               "onset": 10.0}}}
    eng = load_scenario(_mc_engine(write_scenario, stim)).engines["v1"]
    eng.build()
    events = []
    net = eng.net
    schedule = net.schedule
    net.schedule = lambda lines, times: (events.append(np.asarray(times)), schedule(lines, times))
    for k in range(40):
        eng.advance(float(k), float(k + 1), {})
    t = np.concatenate(events)
    assert ((t >= 10.0) & (t < 30.0)).all()
    expected = 400.0 * 0.020 * 20               # Hz × s × 20 lines
    assert abs(t.size - expected) < 4 * math.sqrt(expected), t.size


def test_spiking_stimuli_split_in_partitions_equal_one_engine(write_scenario):
    stim = {"c": {"engine": "v1", "target": "current", "population": "exc", "cells": [0, 3],
                  "temporal": {"type": "sinusoid", "amplitude": 0.6, "frequency": 80.0}},
            "d": {"engine": "v1", "target": "poisson", "input": "stim",
                  "temporal": {"type": "ramp", "amplitude": 800.0, "duration": 20.0}}}
    eng = load_scenario(_mc_engine(write_scenario, stim)).engines["v1"]
    whole = eng.partition(0, 1)
    parts = [eng.partition(p, 3) for p in range(3)]
    for e in [whole] + parts:
        e.build()
    n_spikes = 0
    for k in range(20):
        one = whole.advance(float(k), float(k + 1), {})
        split = merge_outputs(parts, advance_in_lockstep(parts, float(k), float(k + 1), {}))
        for a, b in zip(one.records["spikes"], split.records["spikes"]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(one.records["v"], split.records["v"])
        n_spikes += one.records["spikes"][0].size
    assert n_spikes > 4


def test_spiking_stimulus_errors(write_scenario):
    cases = [({"target": "current"}, "mc.toml: stimuli.s.population: missing required key"),
             ({"target": "current", "population": "inh"}, "mc.toml: stimuli.s.population: unknown cell population 'inh'; have exc"),
             ({"target": "current", "population": "exc", "cells": [4]}, "mc.toml: stimuli.s.cells: cell 4 outside population 'exc' (n = 4)"),
             ({"target": "current", "population": "exc", "section": "axon"}, "mc.toml: stimuli.s.section: stimulus 's': "),
             ({"target": "current", "population": "exc", "weights": 1.0}, "mc.toml: stimuli.s.weights: not a key of a stimulus with target \"current\""),
             ({"target": "poisson", "input": "bgg"}, "mc.toml: stimuli.s.input: unknown input group 'bgg'; have stim"),
             ({"target": "y1"}, "mc.toml: stimuli.s.target: unknown target 'y1' for a multicompartment engine")]
    for keys, message in cases:
        stim = {"s": {"engine": "v1", **keys, "temporal": {"type": "pulse", "amplitude": 1.0,
                                                           "width": 1.0}}}
        with pytest.raises(CosimError) as err:
            load_scenario(_mc_engine(write_scenario, stim))
        assert str(err.value).startswith(message), str(err.value)


# -- checkpoints ----------------------------------------------------------------------------

def test_checkpoint_resume_with_stimuli_equals_a_straight_run(write_scenario, tmp_path):
    stim = {"c": {"engine": "v1", "target": "current", "population": "exc",
                  "temporal": {"type": "pulse_train", "amplitude": 0.5, "period": 7.0,
                               "width": 2.0}},
            "d": {"engine": "v1", "target": "poisson", "input": "stim",
                  "temporal": {"type": "sinusoid", "amplitude": 300.0, "offset": 300.0,
                               "frequency": 40.0}}}
    path = _mc_engine(write_scenario, stim, checkpoint_every=10.0)
    run_scenario(load_scenario(path), output=tmp_path / "straight.h5", progress_stream=None)
    a = h5_data(tmp_path / "straight.h5")
    b = h5_data(crash_and_resume(path, tmp_path / "cut.h5", at_window=25))
    assert_same_data(a, b)
    assert a["stimuli/d/values"].size == 1600 and a["spikes/v1.exc/timestamps"].size > 10


def test_neural_mass_checkpoint_resume_with_stimuli(write_scenario, tmp_path):
    sc = {**_jr_scenario(checkpoint_every=5.0), "stimuli": {
        "p": {"engine": "cortex", "target": "y4", "temporal": PULSES},
        "q": {"engine": "cortex", "target": "coupling", "weights": [1.0, 0.0, 2.0],
              "temporal": {"type": "sinusoid", "amplitude": 0.1, "frequency": 30.0}}}}
    path = write_scenario(sc, "nm.toml")
    run_scenario(load_scenario(path), output=tmp_path / "straight.h5", progress_stream=None)
    assert_same_data(h5_data(tmp_path / "straight.h5"),
                     h5_data(crash_and_resume(path, tmp_path / "cut.h5", at_window=13)))


# -- the shipped epilepsy scenario ----------------------------------------------------------

def test_epilepsy_scenario_stimulus_triggers_a_seizure_in_the_epileptogenic_zone(tmp_path):
    """scenarios/epilepsy_stimulation.toml: the 20 ms stimulus at 3 s starts a seizure
    (x1 > 0 for hundreds of ms) in the stimulated zone; without it no region seizes."""
    from _util import REPO

    text = (REPO / "scenarios" / "epilepsy_stimulation.toml").read_text()
    text = text.replace("duration = 6000.0", "duration = 4500.0")
    runs = {}
    head, rest = text.split("\n[stimuli.seeg_contacts]")
    without = head + "\n[record]" + rest.split("\n[record]", 1)[1]
    for name, t in (("with", text), ("without", without)):
        p = tmp_path / f"{name}.toml"
        p.write_text(t)
        e = load_scenario(p).engines["brain"]
        x = e.advance(0.0, 4500.0, {}).records["timeseries"]      # (time, x1 z x2, region)
        runs[name] = (x[:, 0, :], list(e.region_labels))
    x1, labels = runs["with"]
    t = np.arange(1, x1.shape[0] + 1) * 4.0
    seizing = {lab: float((x1[t > 3000.0, i] > 0).sum() * 4.0) for i, lab in enumerate(labels)
               if (x1[t > 3000.0, i] > 0).any()}
    assert set(seizing) == {"rHC", "rAMYG"}, seizing
    assert min(seizing.values()) > 250.0                  # ms with x1 > 0
    assert not (x1[t <= 3000.0] > 0).any()
    assert not (runs["without"][0] > 0).any()


def test_the_disk_space_estimate_counts_the_stimuli(write_scenario, tmp_path):
    from cosim.output_guard import estimate_output_bytes
    from cosim.pipeline import record_specs

    plain = load_scenario(write_scenario(_jr_scenario(), "a.toml"))
    stim = load_scenario(write_scenario({**_jr_scenario(), "stimuli": {"p": {
        "engine": "cortex", "target": "y1", "temporal": PULSES}}}, "b.toml"))
    extra = (estimate_output_bytes(record_specs(stim), stim)
             - estimate_output_bytes(record_specs(plain), plain))
    run_scenario(stim, output=tmp_path / "s.h5", progress_stream=None)
    with h5py.File(tmp_path / "s.h5") as f:
        g = f["stimuli/p"]
        written = sum(g[d].id.get_storage_size() for d in ("values", "time_ms", "weights"))
    assert extra >= written > 0
