"""The neural-mass engine as the runtime sees it: windows, checkpoints, layout
independence, per-region settings, inputs/exports, scenario validation, kernel caching."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cosim.connectome import make_connectome
from cosim.engines.base import BuildContext
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.errors import CosimError
from cosim.schema import Reader
from scenarios import neural_mass, record, scenario, simulation

LABELS = ["rA", "rB", "rC", "rD", "rE", "rF"]


@pytest.fixture(scope="module")
def conn6():
    """Six regions, random weights (some zero), tract lengths 0.5–30 mm (delays 2–100 steps
    at 3 mm/ms, dt 0.1 ms) plus one zero-length (instant) connection."""
    rng = np.random.default_rng(5)
    w = rng.uniform(0, 1, (6, 6)) * (rng.random((6, 6)) < 0.7)
    np.fill_diagonal(w, 0.0)
    lengths = rng.uniform(0.5, 30.0, (6, 6))
    w[0, 3], lengths[0, 3] = 0.4, 0.0
    return make_connectome(w, lengths, LABELS)


def _jr(conn, **kw):
    args = dict(dt_ms=0.1, integrator="stochastic_heun", coupling_parameters={"G": 5.0},
                noise={"y4": 0.05}, seed=11, record_period_ms=0.5, random_initial=True)
    args.update(kw)
    return NeuralMassEngine("cortex", "jansen_rit", conn, **args)


def _run_windows(engine, edges):
    return np.concatenate([engine.advance(t0, t1, {}).records["timeseries"]
                           for t0, t1 in zip(edges[:-1], edges[1:])])


def test_chunked_equals_one_shot_bitwise(conn6):
    one = _jr(conn6).advance(0.0, 60.0, {}).records["timeseries"]
    edges = np.round(np.cumsum([0.0] + [0.7, 0.1, 3.3, 10.0, 0.9, 1.0] * 4), 10)
    edges = np.append(edges[edges < 60.0], 60.0)
    chunked = _run_windows(_jr(conn6), edges)
    assert one.shape == (120, 6, 6)
    assert np.array_equal(one, chunked)
    assert np.isfinite(one).all() and one[:, 4].std() > 0


@pytest.mark.parametrize("integrator", ["heun", "rk4", "euler_maruyama"])
def test_chunked_equals_one_shot_other_integrators(conn6, integrator):
    kw = dict(integrator=integrator)
    if integrator == "heun" or integrator == "rk4":
        kw["noise"] = None
    one = _jr(conn6, **kw).advance(0.0, 20.0, {}).records["timeseries"]
    chunked = _run_windows(_jr(conn6, **kw), np.arange(0.0, 20.01, 1.0))
    assert np.array_equal(one, chunked)


def test_state_restore_continues_bitwise(conn6):
    a = _jr(conn6)
    a.advance(0.0, 30.0, {})
    snap = a.state()
    first = a.advance(30.0, 60.0, {}).records["timeseries"]
    b = _jr(conn6, seed=999, random_initial=False)        # different rng and state before restore
    b.restore(snap)
    again = b.advance(30.0, 60.0, {}).records["timeseries"]
    assert np.array_equal(first, again)
    a.restore(snap)                                       # and back in time on the same engine
    assert np.array_equal(first, a.advance(30.0, 60.0, {}).records["timeseries"])


def test_noise_streams_independent_of_region_order_and_subset(conn6):
    """Uncoupled (G = 0) regions in different engines/orders see identical noise."""
    full = _jr(conn6, coupling_parameters={"G": 0.0}, random_initial=False)
    part = _jr(conn6, regions=["rE", "rB"], coupling_parameters={"G": 0.0}, random_initial=False)
    y_full = full.advance(0.0, 20.0, {}).records["timeseries"]
    y_part = part.advance(0.0, 20.0, {}).records["timeseries"]
    assert part.region_labels == ("rE", "rB")
    assert np.array_equal(y_part[:, :, 0], y_full[:, :, 4])
    assert np.array_equal(y_part[:, :, 1], y_full[:, :, 1])
    assert not np.array_equal(y_full[:, :, 1], y_full[:, :, 4])


def test_record_sampling_times(conn6):
    """Sample k is the state at t = k · period, in whichever window it falls."""
    every_step = _jr(conn6, record_period_ms=0.1).advance(0.0, 12.0, {}).records["timeseries"]
    e = _jr(conn6, record_period_ms=1.5)
    counts, chunks = [], []
    for t0, t1 in [(0.0, 0.7), (0.7, 1.4), (1.4, 1.5), (1.5, 6.3), (6.3, 12.0)]:
        rec = e.advance(t0, t1, {}).records["timeseries"]
        counts.append(rec.shape[0])
        chunks.append(rec)
    assert counts == [0, 0, 1, 3, 4]
    assert np.array_equal(np.concatenate(chunks), every_step[14::15])
    spec, = e.record_specs()
    assert spec.variables == ("y0", "y1", "y2", "y3", "y4", "y5")
    assert spec.units == ("mV",) * 3 + ("mV/ms",) * 3
    assert spec.regions == tuple(LABELS) and spec.period_ms == 1.5


def test_per_region_parameters_set_limit_cycle_radius():
    conn = make_connectome(np.zeros((3, 3)), np.zeros((3, 3)), ["p", "q", "s"])
    for a in ({"default": 0.04, "q": 0.09}, [0.04, 0.09, 0.04]):
        e = NeuralMassEngine("sl", "stuart_landau", conn, dt_ms=0.1, integrator="rk4",
                             parameters={"a": a}, record_period_ms=1.0)
        e.advance(0.0, 1000.0, {})
        y = e.advance(1000.0, 1010.0, {}).records["timeseries"][-1]
        np.testing.assert_allclose(np.hypot(y[0], y[1]), [0.2, 0.3, 0.2], rtol=1e-7)


def test_external_coupling_input_and_afferent_export():
    """x' = γ x + u with a constant input u: x(t) = (u/γ)(e^{γt} − 1)."""
    conn = make_connectome([[0.0, 1.0], [0.0, 0.0]], [[0.0, 3.0], [3.0, 0.0]], ["a", "b"])
    gamma, u = -0.5, np.array([[0.3, -0.2]])             # (inputs, regions)
    e = NeuralMassEngine("lin", "linear", conn, dt_ms=0.01, integrator="rk4",
                         coupling_parameters={"G": 0.0}, parameters={"gamma": gamma},
                         record_period_ms=0.01, export_afferent=True)
    out = e.advance(0.0, 2.0, {"coupling": u})
    t = np.arange(1, 201) * 0.01
    exact = (u[0] / gamma)[None, :] * (np.exp(gamma * t)[:, None] - 1.0)
    np.testing.assert_allclose(out.records["timeseries"][:, 0, :], exact, atol=1e-12)
    # afferent values of a linear coupling are the coupling variable itself
    assert np.array_equal(out.exports["afferent"], out.records["timeseries"])
    # a time-varying input, one value per step
    steps = np.linspace(0.0, 1.0, 10)[:, None, None] * np.ones((10, 1, 2))
    more = e.advance(2.0, 2.1, {"coupling": steps})
    assert more.records["timeseries"].shape == (10, 1, 2)
    with pytest.raises(ValueError):
        e.advance(2.1, 2.2, {"coupling": np.ones((3, 1, 2))})


def test_wrong_window_is_refused(conn6):
    e = _jr(conn6)
    e.advance(0.0, 1.0, {})
    with pytest.raises(ValueError, match="is at t = 1"):
        e.advance(2.0, 3.0, {})
    with pytest.raises(ValueError, match="whole number of steps"):
        e.advance(1.0, 1.05, {})


# -- scenario section -------------------------------------------------------------------------

def _ctx(conn, **kw):
    args = dict(file="scn.toml", connectome=conn, seed=3, duration_ms=10.0, sync_interval_ms=1.0,
                record_period_ms=1.0)
    args.update(kw)
    return BuildContext(**args)


def _from(table, conn, **ctx):
    return NeuralMassEngine.from_config("cortex", Reader(table, "scn.toml", "engines.cortex"),
                                        _ctx(conn, **ctx))


def test_from_config_full_section(conn6):
    e = _from({"type": "neural_mass", "model": "wilson_cowan", "regions": ["rB", "rD"], "dt": 0.05,
               "integrator": "euler_maruyama", "coupling_evaluation": "step", "speed": 6.0,
               "options": {"transfer": "erf"},
               "parameters": {"P_e": {"default": 0.5, "rD": 0.7}, "tau_e": [2.0, 3.0]},
               "coupling": {"type": "linear", "G": 0.2},
               "noise": {"E": 0.01},
               "initial": {"E": 0.1, "random": True}}, conn6,
              record_variables=["E"], speed_mm_per_ms=6.0)
    assert tuple(e.region_indices) == (1, 3) and e.dt_ms == 0.05 and e.options == ("erf",)
    names = e.model.parameter_names
    np.testing.assert_array_equal(e.params[:, names.index("P_e")], [0.5, 0.7])
    np.testing.assert_array_equal(e.params[:, names.index("tau_e")], [2.0, 3.0])
    assert (e.coupling_params[:, 0] == 0.2).all() and e.speed_mm_per_ms == 6.0
    assert e.record_variables == ("E",)
    assert e.advance(0.0, 1.0, {}).records["timeseries"].shape == (1, 1, 2)


def test_speed_is_the_connectomes(conn6):
    """Delays come from [connectome] speed; an engine may only restate it, unless it
    simulates every region (no connection crosses to another engine)."""
    sub = {"model": "linear", "regions": ["rA", "rB"]}
    assert _from(sub, conn6, speed_mm_per_ms=6.0).speed_mm_per_ms == 6.0
    assert _from(dict(sub, speed=6.0), conn6, speed_mm_per_ms=6.0).speed_mm_per_ms == 6.0
    with pytest.raises(CosimError) as exc:
        _from(dict(sub, speed=4.0), conn6, speed_mm_per_ms=6.0)
    assert exc.value.key == "engines.cortex.speed"
    assert "must equal connectome.speed (6 mm/ms) when engines are coupled" in exc.value.reason
    whole = _from({"model": "linear", "speed": 4.0}, conn6, speed_mm_per_ms=6.0)
    assert whole.speed_mm_per_ms == 4.0


def test_regions_rest(conn6):
    e = _from({"model": "linear", "regions": "rest"}, conn6, claimed_regions=frozenset({0, 2}))
    assert e.region_labels == ("rB", "rD", "rE", "rF")


@pytest.mark.parametrize("table, key, text", [
    ({"model": "wilson_cowan", "parameters": {"W_ee": 1.0}},
     "engines.cortex.parameters.W_ee", "unknown parameter of wilson_cowan; did you mean 'w_ee'?"),
    ({"model": "jansen_rit", "regions": ["rA", "rX"]}, "engines.cortex.regions[1]", "unknown region 'rX'"),
    ({"model": "jansen_rit", "integrator": "heunn"}, "engines.cortex.integrator", "must be one of"),
    ({"model": "jansen_rt"}, "engines.cortex.model", "must be one of"),
    ({"model": "jansen_rit", "noise": {"y4": 0.1}}, "engines.cortex.noise", "stochastic integrator"),
    ({"model": "jansen_rit", "parameters": {"mu": [0.1, 0.2]}},
     "engines.cortex.parameters.mu", "has 2 values, expected one per region (6)"),
    ({"model": "jansen_rit", "parameters": {"mu": {"default": 0.1, "rZ": 0.2}}},
     "engines.cortex.parameters.mu.rZ", "not a region of this engine"),
    ({"model": "jansen_rit", "parameters": {"mu": "high"}}, "engines.cortex.parameters.mu", "must be a number"),
    ({"model": "jansen_rit", "coupling": {"Gain": 1.0}}, "engines.cortex.coupling.Gain",
     "unknown parameter of coupling sigmoidal_jansen_rit"),
    ({"model": "wilson_cowan", "coupling": {"type": "sigmoidal_jansen_rit"}},
     "engines.cortex.coupling.type", "needs a model with 2 coupling variables"),
    ({"model": "wilson_cowan", "options": {"transfer": "tanh"}}, "engines.cortex.options.transfer",
     "must be one of 'logistic', 'erf'"),
    ({"model": "jansen_rit", "options": {"transfer": "erf"}}, "engines.cortex.options.transfer",
     "unknown option of jansen_rit"),
    ({"model": "jansen_rit", "initial": {"y9": 1.0}}, "engines.cortex.initial.y9", "not a state variable"),
    ({"model": "jansen_rit", "integrator": "euler_maruyama", "noise": {"y4": -1.0}},
     "engines.cortex.noise.y4", "must be >= 0"),
    ({"model": "jansen_rit", "dt": -0.1}, "engines.cortex.dt", "must be > 0"),
    ({"model": "jansen_rit", "regions": 3}, "engines.cortex.regions", "must be \"all\", \"rest\""),
    ({"model": "jansen_rit", "durration": 3}, "engines.cortex.durration", "unknown key"),
])
def test_config_errors_name_the_key(conn6, table, key, text):
    with pytest.raises(CosimError) as exc:
        _from(table, conn6)
    assert exc.value.key == key, exc.value.message()
    assert text in exc.value.reason
    assert exc.value.file == "scn.toml"


def test_config_record_errors(conn6):
    with pytest.raises(CosimError) as exc:
        _from({"model": "jansen_rit"}, conn6, record_variables=["y7"])
    assert exc.value.key == "record.cortex.variables"
    with pytest.raises(CosimError) as exc:
        _from({"model": "jansen_rit"}, conn6, record_period_ms=0.25)
    assert exc.value.key == "record.period"


def test_scenario_file_runs(write_scenario):
    from cosim.scenario import load_scenario
    path = write_scenario(scenario(
        simulation(duration=4.0, seed=1),
        engines={"cortex": neural_mass(regions=["rA1", "rA2", "rV1"], dt=None,
                                       integrator="stochastic_heun",
                                       parameters={"mu": {"default": 0.22, "rV1": 0.25}},
                                       noise={"y4": 0.01}, initial={"y1": 10.0}),
                 "rest": neural_mass(regions="rest", dt=None, integrator="rk4")},
        record=record(0.5, cortex={"variables": ["y1", "y2"]})))
    scen = load_scenario(path)
    cortex, rest = scen.engines["cortex"], scen.engines["rest"]
    assert cortex.region_labels == ("rA1", "rA2", "rV1") and rest.n_regions == 73
    rec = cortex.advance(0.0, 1.0, {}).records["timeseries"]
    assert rec.shape == (2, 2, 3) and np.isfinite(rec).all()


# -- numba's on-disk cache ----------------------------------------------------------------------

_CACHE_PROBE = textwrap.dedent("""
    import json, time
    import numpy as np
    from cosim.connectome import make_connectome
    from cosim.engines.neural_mass import NeuralMassEngine
    c = make_connectome(np.ones((2, 2)), np.full((2, 2), 5.0), ["a", "b"])
    e = NeuralMassEngine("probe", "stuart_landau", c, integrator="rk4")
    t = time.perf_counter()
    e.advance(0.0, 1.0, {})
    k = e._kernels
    print(json.dumps({"seconds": time.perf_counter() - t,
                      "hits": sum(k.step.stats.cache_hits.values()) + sum(k.fill.stats.cache_hits.values()),
                      "misses": sum(k.step.stats.cache_misses.values()) + sum(k.fill.stats.cache_misses.values())}))
""")


def test_second_process_loads_kernels_from_cache():
    runs = [json.loads(subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True,
                                      text=True, check=True, timeout=600).stdout)
            for _ in range(2)]
    assert runs[1]["misses"] == 0 and runs[1]["hits"] == 2, runs
    assert runs[1]["seconds"] < 3.0, runs


# -- a model declared outside cosim -------------------------------------------------------------

def test_user_declared_model_runs_through_the_same_kernels():
    """A harmonic oscillator x'' = −ω² x written as a Model here: RK4 gives cos(ωt)."""
    from numba import njit

    from cosim.models import Model, Parameter, StateVariable

    @njit
    def dfun(x, c, p, i, dx):
        dx[i, 0] = x[i, 1]
        dx[i, 1] = -p[i, 0] * p[i, 0] * x[i, 0] + c[i, 0]

    model = Model(name="harmonic", doc="x'' = −ω² x + c",
                  state_variables=(StateVariable("x", "1", "position", 1.0),
                                   StateVariable("v", "1/ms", "velocity", 0.0)),
                  parameters=(Parameter("omega", 0.5, "rad/ms", "angular frequency"),),
                  coupling_variables=("x",), default_coupling="linear", dfuns={(): dfun})
    conn = make_connectome([[0.0]], [[0.0]], ["n"])
    e = NeuralMassEngine("osc", model, conn, dt_ms=0.01, integrator="rk4", record_period_ms=0.5)
    y = e.advance(0.0, 20.0, {}).records["timeseries"][:, 0, 0]
    t = np.arange(1, 41) * 0.5
    np.testing.assert_allclose(y, np.cos(0.5 * t), atol=1e-9)
