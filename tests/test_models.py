"""Neural-mass models against analytic results and TVB's own equations.

The right-hand sides in this file are written independently from :mod:`cosim.models`
(from the textbook formulas in the module docstrings / seeds), solved with scipy, and the
engine's simulation is checked against them: fixed points, the Hopf point
(trace J = 0, det J > 0) versus the onset of oscillation, the Stuart–Landau limit cycle.
Where tvb-library is installed, the dfuns are compared with TVB's on random states.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq, root
from scipy.special import erf

from cosim.connectome import make_connectome
from cosim.coupling import COUPLINGS
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.models import MODELS

ONE_NODE = make_connectome([[0.0]], [[0.0]], ["n"])


def _run_single(model, seconds_ms, params, initial, options=None, dt=0.05, period=0.5,
                integrator="rk4", start_ms=0.0):
    engine = NeuralMassEngine("one", model, ONE_NODE, dt_ms=dt, integrator=integrator,
                              parameters=params, initial=initial, model_options=options,
                              record_period_ms=period)
    if start_ms:
        engine.advance(0.0, start_ms, {})
    return engine.advance(start_ms, start_ms + seconds_ms, {}).records["timeseries"][:, :, 0]


# -- declarations ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_declarations_are_complete(name):
    m = MODELS[name]
    assert len(set(m.state_names)) == m.n_state
    assert len(set(m.parameter_names)) == m.n_params
    assert set(m.coupling_variables) <= set(m.state_names)
    assert m.default_coupling in COUPLINGS
    for p in m.parameters:
        assert p.unit and p.doc and math.isfinite(p.default)
    for v in m.state_variables:
        assert v.unit and v.doc and v.range[0] < v.range[1]
    for values in m.dfuns:
        assert len(values) == len(m.options)


# -- Wilson–Cowan -----------------------------------------------------------------------------

WC = dict(tau_e=2.5, tau_i=3.75, w_ee=16.0, w_ei=12.0, w_ie=15.0, w_ii=3.0, P_i=0.0,
          theta_e=3.0, theta_i=3.0)


def _transfer(u, theta, sigma, kind):
    if kind == "logistic":
        return 1.0 / (1.0 + np.exp(-(u - theta) / sigma))
    return 0.5 * (1.0 + erf((u - theta) / (np.sqrt(2.0) * sigma)))


def _wc_rhs(z, p, kind):
    """τ_e E' = −E + (1 − rE) S_e(w_ee E − w_ei I + P_e); τ_i I' = −I + (1 − rI) S_i(w_ie E − w_ii I + P_i)."""
    E, I = z
    se = _transfer(p["w_ee"] * E - p["w_ei"] * I + p["P_e"], p["theta_e"], p["sigma_e"], kind)
    si = _transfer(p["w_ie"] * E - p["w_ii"] * I + p["P_i"], p["theta_i"], p["sigma_i"], kind)
    return np.array([(-E + (1 - p["r_e"] * E) * se) / p["tau_e"],
                     (-I + (1 - p["r_i"] * I) * si) / p["tau_i"]])


def _jacobian(f, z, h=1e-7):
    J = np.empty((len(z), len(z)))
    for j in range(len(z)):
        dz = np.zeros(len(z))
        dz[j] = h
        J[:, j] = (f(z + dz) - f(z - dz)) / (2 * h)
    return J


def _fixed_point(f, guess):
    sol = root(f, guess, tol=1e-14)
    assert np.abs(f(sol.x)).max() < 1e-12
    return sol.x


@pytest.mark.parametrize("kind", ["logistic", "erf"])
@pytest.mark.parametrize("r", [0.0, 1.0])
def test_wilson_cowan_converges_to_fixed_point(kind, r):
    p = dict(WC, P_e=0.5, sigma_e=1.5, sigma_i=1.5, r_e=r, r_i=r)
    z = _fixed_point(lambda z: _wc_rhs(z, p, kind), [0.1, 0.1])
    assert 0.03 < z[0] < 0.5 and 0.03 < z[1] < 0.5
    assert np.linalg.eigvals(_jacobian(lambda z: _wc_rhs(z, p, kind), z)).real.max() < 0
    y = _run_single("wilson_cowan", 400.0, p, {"E": z[0] + 0.05, "I": z[1] - 0.02},
                    options={"transfer": kind})
    np.testing.assert_allclose(y[-1], z, rtol=0, atol=1e-9)


def test_wilson_cowan_hopf_point_predicts_onset_of_oscillation():
    base = dict(WC, sigma_e=1 / 1.5, sigma_i=1 / 1.5, r_e=1.0, r_i=1.0)

    def at(P_e):
        p = dict(base, P_e=P_e)
        f = lambda z: _wc_rhs(z, p, "logistic")  # noqa: E731
        z = _fixed_point(f, [0.05, 0.03])
        return z, _jacobian(f, z)

    P_star = brentq(lambda P: np.trace(at(P)[1]), 0.6, 0.9, xtol=1e-12)
    z_star, J_star = at(P_star)
    det = np.linalg.det(J_star)
    assert det > 0                      # a pair ±iω crosses: Hopf, not a saddle-node
    omega0 = math.sqrt(det)             # rad/ms at the bifurcation

    def amplitude(P_e):
        z, _ = at(P_e)
        y = _run_single("wilson_cowan", 400.0, dict(base, P_e=P_e),
                        {"E": z[0] + 0.01, "I": z[1]}, start_ms=1600.0)
        return y[:, 0], z

    below, z_below = amplitude(P_star - 0.02)
    above, _ = amplitude(P_star + 0.02)
    assert below.max() - below.min() < 1e-6
    np.testing.assert_allclose(below[-1], z_below[0], atol=1e-7)
    assert above.max() - above.min() > 0.02
    # near onset the cycle turns at the frequency of the critical eigenvalues
    e = above - above.mean()
    up = np.nonzero((e[:-1] < 0) & (e[1:] >= 0))[0]
    t_up = (up + e[up] / (e[up] - e[up + 1])) * 0.5            # ms, linear interpolation
    omega = 2 * math.pi / np.diff(t_up).mean()
    assert abs(omega - omega0) < 0.05 * omega0, (omega, omega0)


# -- Stuart–Landau ----------------------------------------------------------------------------

def test_stuart_landau_limit_cycle_radius_and_frequency():
    a, omega = 0.04, 2 * math.pi * 0.01          # radius 0.2, 10 Hz
    y = _run_single("stuart_landau", 200.0, {"a": a, "omega": omega}, {"x": 0.05, "y": 0.0},
                    dt=0.1, period=0.1, start_ms=800.0)
    radius = np.hypot(y[:, 0], y[:, 1])
    np.testing.assert_allclose(radius, math.sqrt(a), rtol=1e-8)
    phase = np.unwrap(np.arctan2(y[:, 1], y[:, 0]))
    np.testing.assert_allclose(np.diff(phase) / 0.1, omega, rtol=1e-8)


def test_stuart_landau_below_bifurcation_decays_at_rate_a():
    a = -0.02
    y = _run_single("stuart_landau", 100.0, {"a": a}, {"x": 1e-4, "y": 0.0}, dt=0.1, period=0.1)
    r = np.hypot(y[:, 0], y[:, 1])
    t = np.arange(1, len(r) + 1) * 0.1
    # |z| ≪ 1: r' = a r − r³ ≈ a r
    np.testing.assert_allclose(r, 1e-4 * np.exp(a * t), rtol=1e-6)


# -- Jansen–Rit and Wong–Wang fixed points ---------------------------------------------------

def test_jansen_rit_converges_to_fixed_point_at_low_input():
    A, B, a, b, v0, nu, r, J = 3.25, 22.0, 0.1, 0.05, 5.52, 0.0025, 0.56, 135.0
    mu = 0.05       # 50 Hz: below the oscillatory range

    def S(v):
        return 2 * nu / (1 + np.exp(r * (v0 - v)))

    def residual(v):          # v = y1 − y2 at rest, all derivatives zero
        y0 = A / a * S(v)
        return (A / a * (mu + 0.8 * J * S(J * y0)) - B / b * 0.25 * J * S(0.25 * J * y0)) - v

    v = brentq(residual, -50, 50, xtol=1e-14)
    y0 = A / a * S(v)
    y1 = A / a * (mu + 0.8 * J * S(J * y0))
    y2 = y1 - v
    y = _run_single("jansen_rit", 100.0, {"mu": mu}, {"y0": y0 * 1.1, "y1": y1, "y2": y2 * 0.9},
                    dt=0.1, start_ms=1900.0)
    np.testing.assert_allclose(y[-1], [y0, y1, y2, 0, 0, 0], atol=1e-8)


def test_wong_wang_converges_to_fixed_point():
    a, b, d, gamma, tau, w, J, I_o = 0.270, 0.108, 154.0, 0.641, 100.0, 0.6, 0.2609, 0.33

    def f(S):
        u = a * (w * J * S + I_o) - b
        return -S / tau + (1 - S) * gamma * u / (1 - np.exp(-d * u))

    S_star = brentq(f, 1e-6, 1 - 1e-6, xtol=1e-15)
    y = _run_single("wong_wang", 100.0, {}, {"S": 0.5}, dt=0.1, start_ms=4900.0)
    np.testing.assert_allclose(y[-1, 0], S_star, rtol=1e-9)


# -- the same equations as TVB ------------------------------------------------------------------

def _tvb_models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = pytest.importorskip("tvb.simulator.lab", reason="tvb-library is not installed")
    return lab


@pytest.mark.parametrize("ours, theirs, ranges", [
    ("jansen_rit", "JansenRit", [(-1, 1), (-5, 40), (-5, 30), (-5, 5), (-20, 20), (-50, 50)]),
    ("wong_wang", "ReducedWongWang", [(0, 1)]),
    ("stuart_landau", "SupHopf", [(-1, 1), (-1, 1)]),
])
def test_dfun_equals_tvb(ours, theirs, ranges):
    lab = _tvb_models()
    tvb_model = getattr(lab.models, theirs)()
    tvb_model.configure()
    m = MODELS[ours]
    rng = np.random.default_rng(0)
    n = 50
    lo, hi = np.array(ranges, dtype=float).T
    x = lo + (hi - lo) * rng.random((n, m.n_state))
    c = rng.normal(0.0, 0.05, (n, len(m.coupling_variables)))
    # TVB's parameters where it has them (SupHopf's defaults differ from ours)
    p = np.array([float(np.ravel(getattr(tvb_model, name, [d]))[0])
                  for name, d in zip(m.parameter_names, m.default_parameters())])
    params = np.tile(p, (n, 1))
    dx = np.empty_like(x)
    dfun = m.dfun(m.resolve_options(None))
    for i in range(n):
        dfun(x, c, params, i, dx)
    theirs_dx = tvb_model.dfun(x.T[..., None], c.T[..., None])[..., 0].T
    np.testing.assert_allclose(dx, theirs_dx, rtol=1e-12, atol=1e-15)


def test_defaults_equal_tvb():
    lab = _tvb_models()
    for ours, theirs in (("jansen_rit", "JansenRit"), ("wong_wang", "ReducedWongWang")):
        tvb_model = getattr(lab.models, theirs)()
        for p in MODELS[ours].parameters:
            assert float(np.ravel(getattr(tvb_model, p.name))[0]) == pytest.approx(p.default), p.name
    tvb_c = lab.coupling.SigmoidalJansenRit()
    for p in COUPLINGS["sigmoidal_jansen_rit"].parameters:
        tvb_name = {"G": "a"}.get(p.name, p.name)
        assert float(np.ravel(getattr(tvb_c, tvb_name))[0]) == pytest.approx(p.default), p.name
