"""The population-density engine against independent sources: the Siegert formula
(stationary rates over a grid of (μ, σ), and the convergence order in the grid spacing),
conservation of probability and positivity, the synaptic filter's analytic step response,
self-consistent network rates, checkpoints, and one-line scenario errors.

Measured (dv = 0.2 / 0.1 / 0.05 mV): relative error of the stationary rate ≈ 6e-3 / 1.5e-3 /
3.9e-4 at (μ, σ) = (16, 3) mV — second order in dv; at the default dv = 0.05 mV every point
of the (μ, σ) grid below is within 1e-3 of Siegert.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.analysis import LIF, Network, self_consistent_rates, siegert
from cosim.engines import engine_class
from cosim.engines.population_density import (Input, Output, Population,
                                              PopulationDensityEngine, Projection)
from cosim.errors import CosimError, NumericalError

TAU = 20.0
J = 0.1


def _engine(mu, sigma, dv=0.05, dt=1.0, **kw):
    """One population whose input has mean ``mu`` and s.d. ``sigma`` (mV): Poisson input
    of J = 0.1 mV gives σ² (its rate) and I_e the rest of μ."""
    knu = sigma ** 2 / (TAU * J * J)                     # synapse-rate product, 1/ms
    ie = (mu - TAU * J * knu) / TAU
    pop = Population("E", I_e=ie, v_min=min(mu - 7 * sigma, 0.0) - 5.0)
    return PopulationDensityEngine("pd", populations=[pop],
                                   inputs=[Input("bg", "E", J, 1.0, rate_hz=1000 * knu)],
                                   dt_ms=dt, dv_mv=dv, **kw)


def _stationary_rate(mu, sigma, dv=0.05):
    eng = _engine(mu, sigma, dv)
    eng.build()
    eng.advance(0.0, 1500.0, {})
    return eng.advance(1500.0, 1510.0, {}).records["timeseries"][-1, 0, 0]


GRID = [(mu, s) for mu in (12.0, 16.0, 19.0, 22.0) for s in (1.5, 3.0, 5.0)]


@pytest.mark.parametrize("mu,sigma", GRID)
def test_stationary_rate_equals_siegert_at_the_default_grid(mu, sigma):
    r = _stationary_rate(mu, sigma)
    ref = siegert(mu, sigma, LIF())
    assert ref > 0
    assert abs(r / ref - 1) <= 1e-3, (r, ref)


def test_stationary_rate_converges_at_second_order_in_dv():
    errs = []
    for dv in (0.2, 0.1, 0.05):
        errs.append([abs(_stationary_rate(mu, s, dv) / siegert(mu, s) - 1)
                     for mu, s in ((16.0, 3.0), (19.0, 1.5), (22.0, 5.0))])
    errs = np.array(errs)                                # (dv, point)
    order = np.log2(errs[:-1] / errs[1:])
    assert np.all((order > 1.8) & (order < 2.2)), order


def test_siegert_limits_and_an_independent_quadrature():
    n = LIF()
    # deterministic limit: the LIF period τ ln((μ − V_r)/(μ − θ)) plus τ_ref
    det = 1000.0 / (2.0 + 20.0 * math.log((25.0 - 10.0) / (25.0 - 20.0)))
    assert siegert(25.0, 0.0, n) == pytest.approx(det, rel=1e-14)
    assert siegert(25.0, 1e-3, n) == pytest.approx(det, rel=1e-5)
    assert siegert(15.0, 0.0, n) == 0.0
    # the integral in its textbook form e^{u²}(1 + erf u), by the trapezoidal rule
    from scipy.special import erf
    for mu, s in ((15.0, 5.0), (18.0, 2.0), (21.0, 3.0)):
        u = np.linspace((10.0 - mu) / s, (20.0 - mu) / s, 200001)
        f = np.exp(u * u) * (1 + erf(u))
        integral = np.sum((f[1:] + f[:-1]) / 2 * np.diff(u))
        ref = 1000.0 / (2.0 + 20.0 * math.sqrt(math.pi) * integral)
        assert siegert(mu, s, n) == pytest.approx(ref, rel=1e-9)
    # strongly sub-threshold: tiny but finite and positive; far below: 0
    assert 0 < siegert(5.0, 1.0, n) < 1e-40
    assert siegert(-200.0, 1.0, n) == 0.0


def _ei(dv=0.05, **kw):
    """A recurrent E/I pair with constant drive, at a stable fixed point (~26 / 23 Hz)."""
    pops = [Population("E", n=800, v_min=-20.0), Population("I", n=200, v_min=-20.0)]
    projs = [Projection("EE", "E", "E", 0.1, 400, 1.5), Projection("IE", "I", "E", -0.45, 100, 1.5),
             Projection("EI", "E", "I", 0.1, 400, 1.5), Projection("II", "I", "I", -0.45, 100, 1.5)]
    inputs = [Input("bgE", "E", 0.2, 1.0, rate_hz=5000.0), Input("bgI", "I", 0.2, 1.0, rate_hz=4800.0)]
    return PopulationDensityEngine("ei", populations=pops, projections=projs, inputs=inputs,
                                   dv_mv=dv, **kw), pops, projs, inputs


def test_recurrent_network_rests_at_the_self_consistent_siegert_rates():
    eng, pops, projs, inputs = _ei()
    eng.build()
    eng.advance(0.0, 600.0, {})
    rec = eng.advance(600.0, 700.0, {}).records["timeseries"]      # rate.E, rate.I, …
    r = rec[:, :2, 0].mean(axis=0)
    assert np.ptp(rec[:, 0, 0]) < 1e-6 * r[0]                     # stationary
    idx = {"E": 0, "I": 1}
    W = np.zeros((2, 2))
    K = np.zeros((2, 2))
    for c in projs:
        W[idx[c.target], idx[c.source]] = c.weight
        K[idx[c.target], idx[c.source]] = c.indegree
    net = Network([LIF(tau_m_ms=p.tau_m) for p in pops], W, K, [0.2, 0.2], [1.0, 1.0],
                  [5000.0, 4800.0])
    (fp,) = self_consistent_rates(net)
    np.testing.assert_allclose(net.transfer(fp), fp, rtol=1e-10)
    np.testing.assert_allclose(r, fp, rtol=2e-3)
    assert 2.0 < fp[0] < 60.0 and 2.0 < fp[1] < 60.0


def test_probability_is_conserved_and_the_density_stays_non_negative():
    eng = PopulationDensityEngine(
        "pd", populations=[Population("E", v_min=-20.0, v_init=(19.0, 20.0))],
        inputs=[Input("bg", "E", 0.2, 1.0, rate_hz=2000.0, gain=4000.0)], dt_ms=0.1, dv_mv=0.1)
    eng.build()
    rng = np.random.default_rng(1)
    worst = 0.0
    for w in range(40):
        drive = rng.uniform(-1.0, 2.0, size=(50, 1))          # input rate jumps every step
        eng.advance(5.0 * w, 5.0 * (w + 1), {"drive": drive})
        worst = max(worst, abs(eng.probability()[0] - 1.0))
        assert eng.density("E").min() >= 0.0
    assert worst < 1e-12


def test_a_probability_drift_stops_the_run_with_one_line():
    eng = _engine(16.0, 3.0, dt=0.5, mass_tolerance=1e-9)
    eng.build()
    eng.advance(0.0, 5.0, {})
    eng.density("E")[10] += 1e-6                                  # a leak
    with pytest.raises(NumericalError) as exc:
        eng.advance(5.0, 10.0, {})
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("engine pd: population E: total probability")
    assert "t = 10 ms" in msg


def test_synaptic_filter_follows_the_exact_exponential():
    tau_s = 5.0
    pop = Population("E", tau_syn=tau_s, v_min=-20.0)
    eng = PopulationDensityEngine("pd", populations=[pop], inputs=[
        Input("bg", "E", 0.1, 1.0, rate_hz=5000.0, gain=1000.0)], dt_ms=0.1,
        record_variables=["mu.E", "sigma.E"])
    eng.build()
    drive = np.full((200, 1), 2.0)                                # 5 → 7 spikes/ms at t = 0
    rec = eng.advance(0.0, 20.0, {"drive": drive}).records["timeseries"][:, :, 0]
    t = 0.1 * np.arange(1, 201)
    mu0, mu1 = TAU * 0.1 * 5.0, TAU * 0.1 * 7.0
    s0, s1 = TAU * 0.01 * 5.0, TAU * 0.01 * 7.0
    np.testing.assert_allclose(rec[:, 0], mu1 + (mu0 - mu1) * np.exp(-t / tau_s), rtol=1e-12)
    np.testing.assert_allclose(rec[:, 1] ** 2, s1 + (s0 - s1) * np.exp(-t / tau_s), rtol=1e-12)


def test_checkpoint_resume_is_bitwise():
    a, *_ = _ei(dv=0.2, dt_ms=0.1, record_period_ms=0.5)
    a.build()
    drive = np.linspace(0.0, 1.0, 300).reshape(-1, 1)
    full = [a.advance(10.0 * w, 10.0 * (w + 1), {"drive": drive[100 * w:100 * (w + 1)]})
            for w in range(3)]
    b, *_ = _ei(dv=0.2, dt_ms=0.1, record_period_ms=0.5)
    b.build()
    b.advance(0.0, 10.0, {"drive": drive[:100]})
    snap = {k: v.copy() for k, v in b.state().items()}
    c, *_ = _ei(dv=0.2, dt_ms=0.1, record_period_ms=0.5)
    c.restore(snap)
    rest = [c.advance(10.0 * w, 10.0 * (w + 1), {"drive": drive[100 * w:100 * (w + 1)]})
            for w in (1, 2)]
    for x, y in zip(full[1:], rest):
        np.testing.assert_array_equal(x.records["timeseries"], y.records["timeseries"])
        np.testing.assert_array_equal(x.exports["afferent"], y.exports["afferent"])


def test_exports_the_pooled_rate_through_the_map():
    eng, *_ = _ei(dv=0.2, output=Output(("E", "I"), __import__("adapters.maps").maps.RateMap(
        "linear", gain=0.001, offset=0.5)), record_variables=["rate.E", "rate.I"])
    eng.build()
    out = eng.advance(0.0, 5.0, {})
    rates = out.records["timeseries"][:, :, 0]                   # every step (period = dt)
    np.testing.assert_allclose(out.exports["afferent"][:, 0, 0],
                               0.001 * (0.8 * rates[:, 0] + 0.2 * rates[:, 1]) + 0.5, rtol=1e-14)


# -- scenario ---------------------------------------------------------------------------------

BASE = {
    "type": "population_density", "region": "rV1", "dt": 0.1,
    "populations": {"E": {"n": 100}, "I": {"n": 25}},
    "projections": {"IE": {"source": "I", "target": "E", "weight": -0.5, "indegree": 10}},
    "inputs": {"bg": {"target": "E", "weight": 0.2, "indegree": 1, "rate": 5000.0}},
}


def _load(tmp_path, engine):
    from scenarios import connectome, neural_mass, scenario, simulation, write
    from cosim.scenario import load_scenario

    sc = scenario(simulation(duration=10.0, sync=1.0),
                  engines={"cortex": neural_mass(regions="rest"), "v1": engine},
                  connectome=connectome(driven_self_connections="drop"))
    return load_scenario(write(tmp_path / "pd.toml", sc))


def _with(path, value):
    import copy

    e = copy.deepcopy(BASE)
    *head, last = path.split(".")
    t = e
    for h in head:
        t = t.setdefault(h, {})
    if value is None:
        del t[last]
    else:
        t[last] = value
    return e


def test_scenario_builds_the_engine(tmp_path):
    eng = _load(tmp_path, BASE).engines["v1"]
    assert type(eng) is engine_class("population_density")
    assert eng.population_names == ("E", "I") and eng.region_label == "rV1"


@pytest.mark.parametrize("path,value,key,reason", [
    ("projections.IE.source", "X", "engines.v1.projections.IE.source", "unknown population 'X'"),
    ("populations.E.t_ref", 0.25, "engines.v1.populations.E.t_ref", "not a whole multiple"),
    ("populations.E.V_reset", 25.0, "engines.v1.populations.E.V_reset", "must be < V_th"),
    ("populations.E.v_init", [5.0], "engines.v1.populations.E.v_init", "must be [lo, hi]"),
    ("populations.E.tau_m", -1.0, "engines.v1.populations.E.tau_m", "must be > 0"),
    ("projections.IE.delay", 0.05, "engines.v1.projections.IE.delay", "not a whole multiple"),
    ("inputs.bg.weigth", 1.0, "engines.v1.inputs.bg.weigth", "unknown key"),
    ("output.populations", ["Q"], "engines.v1.output.populations", "unknown population 'Q'"),
    ("dv", 0.0, "engines.v1.dv", "must be > 0"),
    ("warmup", 10.05, "engines.v1.warmup", "not a whole multiple"),
    ("region", "nowhere", "engines.v1.region", "no region 'nowhere'"),
])
def test_bad_values_are_one_line_scenario_errors(tmp_path, path, value, key, reason):
    with pytest.raises(CosimError) as exc:
        _load(tmp_path, _with(path, value))
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"pd.toml: {key}: " in msg and reason in msg, msg


def test_bad_value_from_the_command_line_exits_2_with_one_line(tmp_path):
    from _util import run_cli
    from scenarios import neural_mass, scenario, simulation, write

    sc = scenario(simulation(duration=10.0, sync=1.0),
                  engines={"cortex": neural_mass(regions="rest"),
                           "v1": _with("populations.E.t_ref", 0.25)})
    r = run_cli("run", str(write(tmp_path / "pd.toml", sc)), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "engines.v1.populations.E.t_ref" in r.stderr


def test_backward_euler_is_first_order_in_time():
    """The rate's transient after an input step, at 1, 2, 4 substeps of dt = 0.2 ms, against
    64 substeps: the error halves with the step (the scheme is first order in time)."""
    def engine(substeps):
        return PopulationDensityEngine(
            "pd", populations=[Population("E", v_min=-20.0, I_e=-0.45)],
            inputs=[Input("bg", "E", 0.2, 1.0, rate_hz=6250.0, gain=1000.0)], dt_ms=0.2,
            substeps=substeps, dv_mv=0.2)

    rest = engine(1)                  # the stationary density does not depend on the step
    rest.build()
    rest.advance(0.0, 300.0, {})
    p0 = rest.density("E").copy()
    h = rest.grid("E")[1]
    p0[int(rest._grid.reset_cell[0])] += (1.0 - h * p0.sum()) / h

    def trace(substeps):
        eng = engine(substeps)
        eng.set_density("E", p0)
        drive = np.full((100, 1), 1.5625)                      # 6.25 → 7.8125 spikes/ms
        return eng.advance(0.0, 20.0, {"drive": drive}).records["timeseries"][:, 0, 0]

    ref = trace(64)
    errs = [np.max(np.abs(trace(s) - ref)) for s in (1, 2, 4)]
    order = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((order > 0.85) & (order < 1.3)), (errs, order)
