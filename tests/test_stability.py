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
