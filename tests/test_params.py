"""Parameter declarations (cosim.params) drive reading and validation; one speed, one sigmoid."""

import inspect
import re

import numpy as np
import pytest

from cosim import scenario_params as sp
from cosim.errors import CosimError
from cosim.params import REQUIRED, Param, section
from cosim.schema import Reader


def _read(table, decl, prefix="t"):
    r = Reader(table, "s.toml", prefix)
    value = r.param(decl)
    r.done()
    return value


def test_the_declaration_gives_type_default_and_bounds():
    decl = Param("dt", 0.1, "ms", "step", gt=0)
    assert _read({}, decl) == 0.1
    assert _read({}, decl.with_(default=0.25)) == 0.25          # the default is the declaration's
    assert _read({"dt": 2}, decl) == 2.0
    with pytest.raises(CosimError, match=r"^s\.toml: t\.dt: must be > 0, got -1$"):
        _read({"dt": -1}, decl)
    with pytest.raises(CosimError, match="t.dt: missing required key"):
        _read({}, decl.with_(default=REQUIRED))


@pytest.mark.parametrize("decl, good, bad, message", [
    (Param("n", 1, type="integer", ge=1, le=3), 3, 4, "must be <= 3, got 4"),
    (Param("n", 1, type="integer", gt=0), 1, 0, "must be >= 1, got 0"),
    (Param("k", "a", type="string", choices=("a", "b")), "b", "c", "must be one of 'a', 'b'"),
    (Param("on", False, type="boolean"), True, 1, "must be true or false"),
    (Param("xs", None, type="strings"), ["a"], [1], "must be an array of strings"),
    (Param("xs", None, type="numbers"), [1.0, 2], ["a"], "must be a number"),
])
def test_every_type_is_read_and_checked(decl, good, bad, message):
    assert _read({decl.name: good}, decl) == good
    with pytest.raises(CosimError) as err:
        _read({decl.name: bad}, decl)
    assert message in err.value.reason
    assert re.search(rf"\b{re.escape(decl.name)}\b", err.value.message())


def test_a_table_of_declarations_is_read_at_once():
    decls = (Param("a", 1.0), Param("b", "x", type="string"), Param("c", REQUIRED, type="integer"))
    r = Reader({"c": 4}, "s.toml", "sec")
    assert r.params(decls) == {"a": 1.0, "b": "x", "c": 4}
    r.done()
    with pytest.raises(ValueError, match="declared twice"):
        section("sec", "doc", (Param("a"), Param("a")))


def test_simulation_is_read_from_its_declarations(monkeypatch):
    from cosim.scenario import _read_simulation

    table = {"duration": 10.0, "sync_interval": 1.0}
    sim = _read_simulation(Reader(dict(table), "s.toml", "simulation"), None)
    assert sim.exchange_timeout_s == sp.EXCHANGE_TIMEOUT.default and sim.seed == sp.SEED.default
    monkeypatch.setattr(sp, "EXCHANGE_TIMEOUT", sp.EXCHANGE_TIMEOUT.with_(default=123.0))
    monkeypatch.setattr(sp, "SEED", sp.SEED.with_(default=7))
    sim = _read_simulation(Reader(dict(table), "s.toml", "simulation"), None)
    assert (sim.exchange_timeout_s, sim.seed) == (123.0, 7)


def test_duration_has_an_upper_bound():
    from cosim.scenario import _read_simulation

    with pytest.raises(CosimError) as err:
        _read_simulation(Reader({"duration": 1e308, "sync_interval": 1.0}, "s.toml",
                                "simulation"), None)
    assert err.value.message() == "s.toml: simulation.duration: must be <= 1e+09, got 1e+308"


def test_neural_mass_keys_are_read_from_the_declarations(monkeypatch):
    from cosim.connectome import Connectome
    from cosim.engines import neural_mass_config as cfg
    from cosim.engines.base import BuildContext

    n = 2
    conn = Connectome(np.ones((n, n)) - np.eye(n), np.full((n, n), 3.0) - 3 * np.eye(n),
                      ["A", "B"])
    ctx = BuildContext(file="s.toml", connectome=conn, seed=0, duration_ms=10.0,
                       sync_interval_ms=1.0, record_period_ms=1.0)
    monkeypatch.setattr(cfg, "DT", cfg.DT.with_(default=0.05))
    _, _, kw, _ = cfg.read_section(Reader({"model": "linear"}, "s.toml", "engines.x"), ctx)
    assert kw["dt_ms"] == 0.05 and kw["integrator"] == cfg.INTEGRATOR.default
    assert kw["speed_mm_per_ms"] == ctx.speed_mm_per_ms == sp.SPEED.default


def test_conduction_speed_is_declared_once():
    from cosim.engines.base import BuildContext
    from cosim.engines.neural_mass import NeuralMassEngine
    from cosim.scenario import Scenario

    sig = inspect.signature(NeuralMassEngine)
    assert sig.parameters["speed_mm_per_ms"].default is sp.SPEED.default
    assert BuildContext.__dataclass_fields__["speed_mm_per_ms"].default is sp.SPEED.default
    assert Scenario.__dataclass_fields__["speed_mm_per_ms"].default is sp.SPEED.default


def test_bold_defaults_are_the_declarations():
    from cosim import monitor_params as mp
    from cosim.monitors import BoldMonitor

    sig = inspect.signature(BoldMonitor)
    assert sig.parameters["tr_ms"].default == mp.BOLD_TR.default
    assert sig.parameters["step_ms"].default == mp.BOLD_STEP.default


def test_one_sigmoid_everywhere():
    """Model, coupling, rate monitor and adapter map compute the same sigmoid, bit for bit."""
    from adapters.maps import RateMap
    from cosim.coupling import SIGMOIDAL_JANSEN_RIT
    from cosim.models import get_model
    from cosim.models.jansen_rit import dfun
    from cosim.models.sigmoid import NU_MAX, R, V0, sigmoid
    from cosim.monitors import jansen_rit_rate

    m = get_model("jansen_rit")
    p = {q.name: q.default for q in m.parameters}
    assert (p["nu_max"], p["v0"], p["r"]) == (NU_MAX.default, V0.default, R.default)
    v = np.linspace(-20.0, 30.0, 101)
    s = sigmoid(v, 0.0, 2.0 * NU_MAX.default, R.default, V0.default)

    # the model: dy3/dt = A a S(y1 - y2) at y0 = y3 = 0
    x = np.zeros((v.size, 6))
    x[:, 1] = v
    params = np.tile(m.default_parameters(), (v.size, 1))
    dx = np.zeros_like(x)
    for i in range(v.size):
        dfun(x, np.zeros((v.size, 1)), params, i, dx)
    # to 1 ulp: numpy's exp over an array takes its SIMD path on AVX-512 machines, which
    # differs from libm's (the compiled dfun's) in the last bit at some points
    np.testing.assert_allclose(dx[:, 3], p["A"] * p["a"] * s, rtol=4e-16, atol=0)

    # the coupling with the model's constants
    cp = np.tile(SIGMOIDAL_JANSEN_RIT.default_parameters(), (v.size, 1))
    names = SIGMOIDAL_JANSEN_RIT.parameter_names
    cp[:, names.index("midpoint")] = V0.default
    aff = np.zeros((v.size, 1))
    for i in range(v.size):
        SIGMOIDAL_JANSEN_RIT.afferent(x, np.array([1, 2]), cp, i, aff)
    np.testing.assert_allclose(aff[:, 0], s, rtol=4e-16, atol=0)   # 1 ulp (see above)

    # the rate monitor (Hz) and the adapter map (Hz, the coupling's midpoint)
    np.testing.assert_array_equal(jansen_rit_rate(v, 0.0 * v),
                                  sigmoid(v, 0.0, 2.0 * 2.5, R.default, V0.default))
    np.testing.assert_array_equal(RateMap("sigmoid", v0=V0.default)(v),
                                  sigmoid(v, 0.0, 2000.0 * NU_MAX.default, R.default, V0.default))


def test_monitors_read_the_models_observables():
    from cosim.engines.base import RecordSpec
    from cosim.models import get_model
    from cosim.monitor_config import monitors_from_config

    wc = RecordSpec("state", ("E", "I"), ("1", "1"), ("A", "B"), 1.0,
                    attrs={"model": "wilson_cowan"})
    em = monitors_from_config(Reader({"rate": {}}, "s.toml", "record.x"), "x", [wc])
    x = np.random.default_rng(0).random((4, 2, 2))
    out = em.apply({"state": x}, 4.0)
    obs = get_model("wilson_cowan").observables["rate"]
    k = wc.variables.index(obs.variables[0])
    np.testing.assert_array_equal(out["rate"][:, 0, :], x[:, k, :])


@pytest.mark.parametrize("table, key, message", [
    ({"model": "jansen_rit", "parameters": {"nu_max": 0.0}}, "engines.x.parameters.nu_max",
     "must be > 0, got 0"),
    ({"model": "jansen_rit", "parameters": {"r": {"default": 0.5, "B": -1.0}}},
     "engines.x.parameters.r", "must be > 0, got -1 (region 'B')"),
    ({"model": "jansen_rit", "coupling": {"r": 0.0}}, "engines.x.coupling.r", "must be > 0"),
])
def test_model_and_coupling_bounds_come_from_their_declarations(table, key, message):
    from cosim.connectome import Connectome
    from cosim.engines.base import BuildContext
    from cosim.engines.neural_mass import NeuralMassEngine

    conn = Connectome(np.ones((2, 2)) - np.eye(2), np.full((2, 2), 3.0), ("A", "B"))
    ctx = BuildContext(file="s.toml", connectome=conn, seed=0, duration_ms=10.0,
                       sync_interval_ms=1.0, record_period_ms=1.0)
    with pytest.raises(CosimError) as err:
        NeuralMassEngine.from_config("x", Reader(table, "s.toml", "engines.x"), ctx)
    assert err.value.key == key
    assert message in err.value.reason
