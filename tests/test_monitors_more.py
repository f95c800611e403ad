"""Spatial/global averages, the expression monitor and its safe evaluator, the kernel BOLD's
impulse response, MEG/SEEG and afferent-coupling configuration, and their failure paths;
whole runs: chunked = one shot, checkpoint-resume bitwise (TVB comparisons:
``test_monitors_tvb.py``; MPI: ``test_monitors_mpi.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _util import assert_same_data, h5_data, run_cli
from cosim.analysis.hrf import KERNELS, kernel_samples
from cosim.engines.base import RecordSpec
from cosim.errors import CosimError
from cosim.expression import Expression, ExpressionError
from cosim.monitor_config import monitors_from_config
from cosim.monitors import variable_signal
from cosim.monitors_tvb import ExpressionMonitor, SpatialAverageMonitor, VolterraBoldMonitor
from cosim.schema import Reader
from scenarios import neural_mass, record, scenario, simulation

JR = RecordSpec("state", ("y0", "y1", "y2"), ("mV",) * 3, ("A", "B", "C", "D"), 1.0)


def _samples(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 4)) + np.array([0.0, 10.0, 2.0])[None, :, None]


def _chunks(x, seed=1):
    rng = np.random.default_rng(seed)
    cuts = np.sort(np.concatenate([[0, 0, 1, x.shape[0]], rng.integers(0, x.shape[0], 12)]))
    return [x[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


MAKERS = [
    lambda: SpatialAverageMonitor(JR, [("ab", [0, 1]), ("cd", [3, 2])], period_ms=3.0),
    lambda: SpatialAverageMonitor.global_average(JR, variables=["y1"]),
    lambda: ExpressionMonitor(JR, {"v": "y1 - y2", "s": "sigmoid(y0) * (y1 > 10)"},
                              period_ms=4.0),
    lambda: VolterraBoldMonitor(JR, variable_signal(JR, "y0"), tr_ms=100.0, length_ms=500.0),
    lambda: VolterraBoldMonitor(JR, variable_signal(JR, "y0"), kernel="gamma", tr_ms=20.0,
                                step_ms=2.0, length_ms=3000.0),
]


@pytest.mark.parametrize("make", MAKERS)
def test_window_by_window_equals_one_shot_and_checkpoints(make):
    x = _samples()
    one = make().update(x)
    assert one.shape[0] > 3
    mon = make()
    np.testing.assert_array_equal(np.concatenate([mon.update(c) for c in _chunks(x)]), one)
    a = make()
    first = a.update(x[:1237])
    b = make()
    b.restore({k: np.copy(v) for k, v in a.state().items()})
    np.testing.assert_array_equal(np.concatenate([first, b.update(x[1237:])]), one)


def test_spatial_and_global_average_values():
    x = _samples(12)
    sa = SpatialAverageMonitor(JR, [("ab", [0, 1]), ("dcb", [3, 2, 1])], period_ms=3.0)
    y = sa.update(x)
    np.testing.assert_allclose(y[:, :, 0], x[2::3, :, :2].mean(axis=2), rtol=1e-14)
    np.testing.assert_allclose(y[:, :, 1], x[2::3, :, 1:].mean(axis=2), rtol=1e-14)
    assert sa.spec.regions == ("ab", "dcb") and sa.spec.period_ms == 3.0
    assert json.loads(sa.spec.attrs["groups"]) == {"ab": ["A", "B"], "dcb": ["D", "C", "B"]}
    ga = SpatialAverageMonitor.global_average(JR)
    np.testing.assert_allclose(ga.update(x)[:, :, 0], x.mean(axis=2), rtol=1e-14)
    assert ga.spec.dataset == "global_average" and ga.spec.regions == ("all",)


def test_expression_values():
    x = np.array([[[0.5, -2.0]], [[3.0, 4.0]]])              # (2 samples, 1 var, 2 regions)
    v = {"a": x[:, 0], "b": 2.0 * x[:, 0]}
    cases = {
        "a - b": -x[:, 0], "a ** 2 + 1e-3 * b": x[:, 0] ** 2 + 2e-3 * x[:, 0],
        "sqrt(abs(a)) * exp(-a)": np.sqrt(np.abs(x[:, 0])) * np.exp(-x[:, 0]),
        "(a > 1) * b": np.where(x[:, 0] > 1, 2.0 * x[:, 0], 0.0),
        "a if a > 0 else -a": np.abs(x[:, 0]), "0 < a <= 3": ((x[:, 0] > 0) & (x[:, 0] <= 3)),
        "maximum(a, 1) + pi": np.maximum(x[:, 0], 1) + np.pi, "-a % 2": (-x[:, 0]) % 2,
    }
    for text, ref in cases.items():
        np.testing.assert_allclose(Expression(text, ("a", "b"))(v), ref, rtol=1e-14, err_msg=text)
    assert Expression("b - a * a", ("a", "b", "c")).names == ["b", "a"]


@pytest.mark.parametrize("text, message, name", [
    ("y1 - y9", "unknown name 'y9'", "y9"),
    ("__import__('os').system('true')", "unknown function", None),
    ("os.system", "Attribute is not allowed", None),
    ("y1[0]", "Subscript is not allowed", None),
    ("(lambda: 1)()", "unknown function", None),
    ("'y1'", "only numbers", None),
    ("exp(y1, out=y2)", "takes 1 positional", None),
    ("open(y1)", "unknown function 'open'", "open"),
    ("y1 and y2", "BoolOp is not allowed", None),
    ("[y1 for y1 in y2]", "ListComp is not allowed", None),
    ("y1 -", "invalid expression", None),
    ("", "non-empty", None),
])
def test_expression_refuses_everything_else(text, message, name):
    with pytest.raises(ExpressionError) as err:
        Expression(text, JR.variables)
    assert message in str(err.value)
    if name:
        assert err.value.name == name


def test_kernel_bold_impulse_response_is_the_kernel():
    """A unit input in one 4-ms block gives, at every later TR, the kernel value at the
    block's age (TVB's alignment: a block i blocks old weighs G((i − 1) step))."""
    spec = RecordSpec("s", ("x",), ("",), ("r",), 1.0)
    mon = VolterraBoldMonitor(spec, variable_signal(spec, "x"), kernel="gamma", tr_ms=8.0,
                              length_ms=2000.0)
    z = np.zeros((1000, 1, 1))
    z[36:40] = 1.0                                  # block 10: (36, 40] ms
    y = mon.update(z)[:, 0, 0]                      # t = 8, 16, … ms: blocks 2, 4, …
    g = KERNELS["gamma"].evaluate(kernel_samples(2000.0, 4.0))
    ages = np.arange(2, 251, 2) - 10                 # blocks since block 10
    ref = np.where(ages >= 1, g[np.clip(ages - 1, 0, None)], 0.0)
    ref[ages == 0] = g[-1]                          # the newest block: the kernel's tail
    np.testing.assert_allclose(y, ref, rtol=1e-14, atol=1e-300)
    assert y.max() == pytest.approx(0.1)            # gamma: scaled to a maximum of a


def test_first_order_volterra_rest_and_scale():
    spec = RecordSpec("s", ("x",), ("",), ("r",), 1.0)
    mon = VolterraBoldMonitor(spec, variable_signal(spec, "x"), tr_ms=100.0, length_ms=400.0)
    y = mon.update(np.zeros((200, 1, 1)))[:, 0, 0]
    np.testing.assert_allclose(y, -5.6 * 0.02)     # k_1 V_0 (0 − 1)


# -- configuration ------------------------------------------------------------------------

CONN_LABELS = ("X", "A", "Y", "B", "C", "D")


def _em(table, tmp_path=None, spec=JR, labels=CONN_LABELS, model="jansen_rit", engine=None):
    file = str(tmp_path / "s.toml") if tmp_path else "s.toml"
    r = Reader(table, file, "record.cortex")
    em = monitors_from_config(r, "cortex", [spec], model=model, region_labels=labels,
                              engine_object=engine)
    r.done()
    return em


def test_config_spatial_average_and_expression(tmp_path):
    (tmp_path / "map.txt").write_text("0\n1\n0\n1\n1\n0\n")       # connectome regions
    em = _em({"raw": False, "spatial_average": {"mapping": "map.txt", "names": ["p", "q"]},
              "global_average": {"period": 2.0},
              "expression": {"expression": {"v": "y1 - y2", "w": "2 * y0"}, "unit": "mV"}},
             tmp_path)
    x = _samples(10)
    out = em.apply({"state": x}, 10.0)
    # engine regions A B C D are connectome regions 1, 3, 4, 5: groups 1, 1, 1, 0
    np.testing.assert_allclose(out["spatial_average"][:, :, 0], x[:, :, 3], rtol=1e-14)
    np.testing.assert_allclose(out["spatial_average"][:, :, 1], x[:, :, :3].mean(axis=2),
                               rtol=1e-14)
    np.testing.assert_array_equal(out["expression"][:, 0], x[:, 1] - x[:, 2])
    np.testing.assert_array_equal(out["expression"][:, 1], 2 * x[:, 0])
    assert out["global_average"].shape == (5, 3, 1)
    specs = {s.dataset: s for s in em.record_specs()}
    assert specs["expression"].variables == ("v", "w") and specs["expression"].units == ("mV",) * 2
    assert specs["spatial_average"].regions == ("p", "q")


def test_config_meg_for_connectivity_76(tmp_path):
    from cosim.connectome import load_connectome
    conn = load_connectome("tvb:connectivity_76")
    regions = conn.region_labels[:5]
    spec = RecordSpec("timeseries", ("y0", "y1", "y2"), ("mV",) * 3, tuple(regions), 1.0)
    em = _em({"meg": {"period": 2.0}}, tmp_path, spec=spec, labels=conn.region_labels)
    mon = em.series[0][1]
    assert mon.leadfield.shape == (248, 5)
    x = _samples(10)[:, :, :4]
    x = np.concatenate([x, x[:, :, :1]], axis=2)
    y = em.apply({"timeseries": x}, 10.0)["meg"][:, 0]
    sig = x[:, 1] - x[:, 2]                                   # Jansen–Rit's EEG source
    np.testing.assert_allclose(y, sig.reshape(5, 2, 5).mean(axis=1) @ mon.leadfield.T,
                               rtol=1e-12)
    assert "regionMapping_16k_76" in mon.spec.attrs["leadfield"]


def _region_mapping_file(tmp_path, n_vertices, top):
    p = tmp_path / "rm.txt"
    p.write_text("\n".join(str(i % (top + 1)) for i in range(n_vertices)))
    return p.name


@pytest.mark.parametrize("table, key, message", [
    ({"meg": {"sensors": "tvb:nope.txt"}}, "meg.sensors", "unknown tvb-data file 'nope.txt'"),
    ({"meg": {"sensors": "absent.txt"}}, "meg.sensors", "no such file"),
    ({"seeg": {"surface": "tvb:cortex_9.zip"}}, "seeg.surface", "unknown tvb-data file"),
    ({"meg": {}}, "meg.region_mapping", "not tvb-data's connectivity_76"),
    ({"meg": {"region_mapping": "RM10"}}, "meg.region_mapping", "maps 10 vertices; the lead "
                                                                "field has 16384"),
    ({"meg": {"region_mapping": "RM_BIG"}}, "meg.region_mapping", "names region index 9"),
    ({"meg": {"variable": "V"}}, "meg.variable", "'V' is not recorded"),
    ({"expression": {"expression": "y1 - q"}}, "expression.expression", "unknown name 'q'"),
    ({"expression": {"expression": {"a": "sin(y1", "b": "y0"}}}, "expression.expression.a",
     "invalid expression"),
    ({"expression": {"expression": 3}}, "expression.expression", "must be an expression"),
    ({"spatial_average": {"groups": {"g": ["A", "Z"]}}}, "spatial_average.groups.g",
     "region 'Z' is not a region of this engine"),
    ({"spatial_average": {"mapping": [0, 1]}}, "spatial_average.mapping",
     "has 2 entries; expected 4"),
    ({"spatial_average": {"mapping": [0, 2, 2, 0]}}, "spatial_average.mapping", "contiguous"),
    ({"spatial_average": {"mapping": [0, 1, 1, 0], "names": ["a"]}}, "spatial_average.names",
     "1 names for 2 groups"),
    ({"spatial_average": {}}, "spatial_average", "give either groups"),
    ({"global_average": {"period": 2.5}}, "global_average.period", "whole multiple"),
    ({"afferent_coupling": {}}, "afferent_coupling", "does not record a coupling input"),
    ({"bold": {"input": "y0", "hrf": "boxcar"}}, "bold.hrf", "must be one of"),
    ({"bold": {"input": "y0", "tau_s": 1.0}}, "bold.tau_s", "only with hrf"),
    ({"bold": {"input": "y0", "hrf": "gamma", "tau_s": 1.0}}, "bold.tau_s",
     "not a parameter of hrf = 'gamma'"),
    ({"bold": {"input": "y0", "hrf": "gamma", "tau": -1.0}}, "bold.tau", "must be > 0"),
    ({"bold": {"input": "y0", "hrf": "gamma", "preset": "friston2000"}}, "bold.preset",
     "not with hrf"),
    ({"bold": {"input": "y0", "hrf": "gamma", "tr": 2001.0}}, "bold.tr", "multiple of the step"),
    ({"bold": {"input": "y0", "hrf": "gamma", "step": 2.5}}, "bold.step",
     "not a whole multiple of the record period"),
])
def test_config_errors_name_the_key(table, key, message, tmp_path):
    for name, top in (("RM10", 0), ("RM_BIG", 9)):
        for t in table.values():
            if t.get("region_mapping") == name:
                t["region_mapping"] = _region_mapping_file(tmp_path, 10 if top == 0 else 16384,
                                                           top)
    with pytest.raises(CosimError) as err:
        _em(table, tmp_path)
    assert err.value.key == f"record.cortex.{key}"
    assert message in err.value.reason
    assert "\n" not in err.value.message()


def test_malformed_sensor_and_mapping_files(tmp_path):
    (tmp_path / "bad_sensors.txt").write_text("Fz 1.0 2.0\n")
    (tmp_path / "bad_map.txt").write_text("0\n1.5\n")
    for table, key, message in (
            ({"seeg": {"sensors": "bad_sensors.txt"}}, "seeg.sensors",
             "bad_sensors.txt: line 1: expected 'label x y z [ox oy oz]', got 2 numbers"),
            ({"meg": {"region_mapping": "bad_map.txt"}}, "meg.region_mapping",
             "one non-negative integer per vertex")):
        with pytest.raises(CosimError) as err:
            _em(table, tmp_path)
        assert err.value.key == f"record.cortex.{key}" and message in err.value.reason


# -- whole runs -----------------------------------------------------------------------------

MONITORS = {
    "meg": {"period": 2.0},
    "global_average": {"variables": ["y1"]},
    "spatial_average": {"groups": {"left": ["lA1", "lV1"], "right": ["rA1", "rV1", "rM1"]},
                        "period": 2.0},
    "expression": {"expression": "y1 - y2"},
    "afferent_coupling": {"period": 2.0},
    "bold": {"hrf": "first_order_volterra", "input": "y0", "tr": 20.0, "length": 400.0},
}


def _scenario(write_scenario, duration=60.0, name="s.toml", **sim):
    return write_scenario(scenario(
        simulation(duration=duration, seed=3, output="out.h5", **sim),
        engines={"cortex": neural_mass(integrator="heun")},
        record=record(1.0, cortex={"raw": True, **MONITORS})), name)


def _run(path, out, resume=False):
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario
    run_scenario(load_scenario(path), output=out, progress_stream=None, resume=resume,
                 overwrite=not resume)


def test_run_writes_every_monitor_and_resumes_bitwise(write_scenario, tmp_path):
    path = _scenario(write_scenario, checkpoint_every=30.0)
    _run(path, tmp_path / "straight.h5")
    data = h5_data(tmp_path / "straight.h5")
    shapes = {k.split("/")[-1]: v.shape for k, v in data.items() if k.startswith("engines/")}
    assert shapes["meg"] == (30, 1, 248)
    assert shapes["global_average"] == (60, 1, 1) and shapes["spatial_average"] == (30, 6, 2)
    assert shapes["expression"] == (60, 1, 76) and shapes["afferent_coupling"] == (30, 1, 76)
    assert shapes["bold"] == (3, 1, 76) and "coupling" not in shapes
    ts = data["engines/cortex/timeseries"]
    np.testing.assert_array_equal(data["engines/cortex/expression"][:, 0], ts[:, 1] - ts[:, 2])
    np.testing.assert_array_equal(data["engines/cortex/global_average"][:, 0, 0],
                                  ts[:, 1].sum(axis=1) / 76)
    # a run stopped at 30 ms and resumed from its checkpoint there: the same bits
    out = tmp_path / "resumed.h5"
    short = _scenario(write_scenario, duration=30.0, name="short.toml", checkpoint_every=30.0)
    _run(short, out)
    short.write_text(short.read_text().replace("duration = 30.0", "duration = 60.0"))
    _run(short, out, resume=True)
    assert_same_data(data, h5_data(out))


def test_bad_expression_is_one_line_exit_2(write_scenario, tmp_path):
    path = write_scenario(scenario(
        simulation(duration=10.0, output="out.h5"), engines={"cortex": neural_mass()},
        record=record(1.0, cortex={"expression": {"expression": "y1 - y7"}})), "bad.toml")
    for cmd in ("validate", "run"):
        r = run_cli(cmd, str(path), cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        line = r.stderr.strip()
        assert "\n" not in line and "Traceback" not in r.stderr
        assert line.startswith("bad.toml: record.cortex.expression.expression: unknown name "
                               "'y7' in 'y1 - y7'")
    assert not (tmp_path / "out.h5").exists()


# -- rate observables of the TVB models ----------------------------------------------------

RATES = {   # model: (variable, rate of it in the observable's unit, unit)
    "generic_2d_oscillator": ("V", lambda v, p: v, "1"),
    "larter_breakspear": ("V", lambda v, p: 500.0 * p["QV_max"] * (1 + np.tanh(
        (v - p["VT"]) / p["d_V"])), "Hz"),
    "montbrio_pazo_roxin": ("r", lambda v, p: 1000.0 * v, "Hz"),
    "reduced_wong_wang_exc_inh": ("S_e", lambda v, p: v, "1"),
    "zerlaut_first_order": ("E", lambda v, p: 1000.0 * v, "Hz"),
}


@pytest.mark.parametrize("model", sorted(RATES))
def test_model_rate_observable_drives_rate_and_bold(model):
    from cosim.connectome import make_connectome
    from cosim.engines.neural_mass import NeuralMassEngine
    from cosim.models import get_model

    m = get_model(model)
    var, rate, unit = RATES[model]
    params = {"VT": 0.1, "d_V": 0.5} if model == "larter_breakspear" else {}
    conn = make_connectome(np.array([[0.0, 1.0], [1.0, 0.0]]), np.full((2, 2), 10.0),
                           ["L", "R"])
    # linear coupling: the kernels the TVB parity tests compile (numba's cache)
    eng = NeuralMassEngine("cortex", model, conn, dt_ms=0.1, record_period_ms=1.0,
                           coupling="linear", coupling_parameters={"G": 0.01},
                           random_initial=True, parameters=params, initial_seed=5)
    em = monitors_from_config(Reader({"rate": {}, "bold": {"tr": 10.0, "step": 0.0}},
                                     "s.toml", "record.cortex"), "cortex", eng.record_specs(),
                              engine_object=eng)
    out = em.apply(eng.advance(0.0, 40.0, {}).records, 40.0)
    x = out["timeseries"][:, eng.record_variables.index(var)]
    p = {q.name: q.default for q in m.parameters} | params
    np.testing.assert_allclose(out["rate"][:, 0], rate(x, p), rtol=1e-12)
    specs = {s.dataset: s for s in em.record_specs()}
    assert specs["rate"].units == (unit,) and out["bold"].shape == (4, 1, 2)
    obs = m.observables["rate"]
    for q in obs.parameters:             # the transfer's defaults are the model's
        assert q.default == m.parameters[m.parameter_names.index(q.name)].default


@pytest.mark.parametrize("integrator, evaluation", [("heun", "step"), ("rk4", "stage")])
def test_afferent_coupling_is_the_delayed_weighted_sum(integrator, evaluation):
    """Linear coupling: the recorded input is c_i(t_n) = G Σ_j w_ij V_j(t_n − d_ij), from the
    recorded V (every step) and the constant initial history — however the integrator
    evaluates the coupling inside a step."""
    from cosim.connectome import make_connectome
    from cosim.engines.neural_mass import NeuralMassEngine

    w = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.3, 0.7, 0.0]])
    lengths = np.array([[0.0, 0.3, 0.6], [0.3, 0.0, 1.5], [0.9, 1.2, 0.0]])   # mm
    conn = make_connectome(w, lengths, ["a", "b", "c"])
    v0 = np.array([0.1, -0.5, 0.9])
    eng = NeuralMassEngine("x", "generic_2d_oscillator", conn, dt_ms=0.1, speed_mm_per_ms=3.0,
                           integrator=integrator, coupling_evaluation=evaluation,
                           record_period_ms=0.1, coupling="linear",
                           coupling_parameters={"G": 0.3}, initial={"V": v0.tolist()})
    eng.record_coupling()
    rec = [eng.advance(k * 1.0, (k + 1) * 1.0, {}).records for k in range(5)]
    V = np.concatenate([r["timeseries"] for r in rec])[:, 0]             # t = 0.1 … 5 ms
    c = np.concatenate([r["coupling"] for r in rec])[:, 0]
    d = np.rint(lengths / 3.0 / 0.1).astype(int)                           # 0 … 5 steps
    full = np.concatenate([v0[None], V])                                  # index n: t = n dt
    ref = np.zeros_like(c)
    for n in range(1, V.shape[0] + 1):
        for i in range(3):
            ref[n - 1, i] = 0.3 * sum(w[i, j] * full[max(n - d[i, j], 0), j] for j in range(3))
    np.testing.assert_allclose(c, ref, rtol=1e-13, atol=1e-16)
    assert eng.record_specs()[-1].variables == ("c_V",)
