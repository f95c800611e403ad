"""Integrators and delay history through the real engine, against exact solutions.

* Delay equation ``x'(t) = −b x(t − τ)``: with the history ``x(t) = e^{λt}`` for t ≤ 0,
  where ``λ = W₀(−bτ)/τ`` (Lambert W) solves ``λ = −b e^{−λτ}``, the solution is
  ``e^{λt}`` for all t — smooth, so the observed order of convergence is the scheme's.
  Built as the ``linear`` model (γ = 0) with linear coupling G = −b on a 1- or 2-node
  connectome whose tract length gives the delay; delays from 1 to 80 steps exercise the
  far (blocked), near and d = 1 paths of :mod:`cosim.history`.
* Zero-delay coupling ``x' = (γ I + G W) x``: exact ``expm``.
* Additive noise on an Ornstein–Uhlenbeck process: stationary variance of the discrete
  schemes, known in closed form; coloured (OU-force) noise likewise.
* Multiplicative noise on geometric Brownian motion ``dx = γ x dt + σ x dW``: the moments
  of the Euler–Maruyama chain (Itô) are exact in closed form; stochastic Heun converges to
  the Stratonovich mean ``x₀ e^{(γ + σ²/2) t}``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm
from scipy.special import lambertw

from cosim.connectome import make_connectome
from cosim.engines.neural_mass import NeuralMassEngine

B = 0.3          # 1/ms
T_END = 4.0      # ms
DTS = (0.1, 0.05, 0.025, 0.0125)


def _delay_error(integrator, evaluation, dt, tau, two_nodes):
    lam = lambertw(-B * tau).real / tau
    if two_nodes:      # x0' = −b x1(t − τ), x1' = −b x0(t − τ): same solution for both
        conn = make_connectome([[0.0, 1.0], [1.0, 0.0]], [[0.0, tau], [tau, 0.0]], ["a", "b"])
    else:              # x' = −b x(t − τ) through a self-connection
        conn = make_connectome([[1.0]], [[tau]], ["a"])
    n = conn.n_regions
    t_hist = -np.arange(400)[::-1] * dt
    history = np.repeat(np.exp(lam * t_hist)[:, None, None], n, axis=2)
    engine = NeuralMassEngine("dde", "linear", conn, dt_ms=dt, integrator=integrator,
                              coupling_evaluation=evaluation, coupling="linear",
                              coupling_parameters={"G": -B}, parameters={"gamma": 0.0},
                              initial_history=history, speed_mm_per_ms=1.0, record_period_ms=dt)
    y = engine.advance(0.0, T_END, {}).records["timeseries"]
    t = np.arange(1, y.shape[0] + 1) * dt
    return np.abs(y[:, 0, :] - np.exp(lam * t)[:, None]).max()


def _orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


@pytest.mark.parametrize("tau", [1.0, 0.4, 0.1])     # far; near → far; d = 1 → near
@pytest.mark.parametrize("integrator, order", [("heun", 2), ("rk4", 4)])
def test_delay_equation_order_stage_evaluation(integrator, order, tau):
    errors = [_delay_error(integrator, "stage", dt, tau, two_nodes=False) for dt in DTS]
    orders = _orders(errors)
    # (τ = 0.1: at dt = 0.1 the delay is one step and RK4's half-step value comes from the
    # one-sided stencil, whose error constant is larger — the first ratio exceeds 2⁴.)
    assert np.all(orders > order - 0.15), (errors, orders)
    assert np.all(np.abs(orders[1:] - order) < 0.15), (errors, orders)


def test_delay_equation_two_nodes_cross_delays():
    errors = [_delay_error("rk4", "stage", dt, 1.0, two_nodes=True) for dt in DTS]
    assert np.all(np.abs(_orders(errors) - 4) < 0.15), errors
    assert errors[-1] < 1e-10


@pytest.mark.parametrize("integrator", ["heun", "rk4", "euler_maruyama", "euler"])
def test_held_coupling_and_euler_are_first_order(integrator):
    # "step" holds c(t_n) over the step (TVB's rule): the delayed term is first order.
    evaluation = "stage" if integrator.startswith("euler") else "step"
    errors = [_delay_error(integrator, evaluation, dt, 1.0, two_nodes=False) for dt in DTS]
    assert np.all(np.abs(_orders(errors) - 1) < 0.1), errors


@pytest.mark.parametrize("integrator, evaluation, order",
                         [("heun", "stage", 2), ("rk4", "stage", 4), ("rk4", "step", 1),
                          ("euler", "stage", 1)])
def test_zero_delay_coupling_matches_matrix_exponential(integrator, evaluation, order):
    w = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [0.3, 0.7, 0.0]])
    conn = make_connectome(w, np.zeros((3, 3)), ["a", "b", "c"])
    gamma, G, x0 = -0.2, -0.5, np.array([1.0, -0.5, 0.25])
    exact = expm((gamma * np.eye(3) + G * w) * 2.0) @ x0
    errors = []
    for dt in (0.1, 0.05, 0.025):
        engine = NeuralMassEngine("ode", "linear", conn, dt_ms=dt, integrator=integrator,
                                  coupling_evaluation=evaluation, coupling="linear",
                                  coupling_parameters={"G": G}, parameters={"gamma": gamma},
                                  initial={"x": x0}, record_period_ms=2.0)
        errors.append(np.abs(engine.advance(0.0, 2.0, {}).records["timeseries"][-1, 0] - exact).max())
    assert np.all(np.abs(_orders(errors) - order) < 0.15), errors


def _ou_variance(integrator, gamma, dt):
    """Exact stationary variance of the scheme on x' = γ x + σ ξ (per unit σ²)."""
    h = dt
    if integrator == "euler_maruyama":
        return h / (1.0 - (1.0 + h * gamma) ** 2)
    growth = 1.0 + h * gamma + 0.5 * (h * gamma) ** 2          # stochastic Heun
    return h * (1.0 + 0.5 * h * gamma) ** 2 / (1.0 - growth ** 2)


@pytest.mark.parametrize("integrator", ["euler_maruyama", "stochastic_heun"])
def test_additive_noise_ornstein_uhlenbeck_variance(integrator):
    n, gamma, sigma, dt = 1000, -1.0, 0.5, 0.1
    conn = make_connectome(np.zeros((n, n)), np.zeros((n, n)), None)
    engine = NeuralMassEngine("ou", "linear", conn, dt_ms=dt, integrator=integrator,
                              parameters={"gamma": gamma}, noise={"x": sigma}, seed=7,
                              record_period_ms=5.0)
    engine.advance(0.0, 25.0, {})                       # 25 relaxation times
    x = engine.advance(25.0, 325.0, {}).records["timeseries"][:, 0, :]   # (60, n)
    expected = sigma ** 2 * _ou_variance(integrator, gamma, dt)
    # (Euler–Maruyama: 0.1316, 5 % above the continuous σ²/2|γ| = 0.125, so this also
    # checks that the increment is σ √dt ξ; stochastic Heun: 0.1247.)
    var = x.var()
    # 60 x 1000 nearly independent samples: standard error of the variance ≈ 0.6 %
    assert abs(var - expected) < 0.025 * expected, (var, expected)
    assert abs(x.mean()) < 5 * np.sqrt(expected / x.size)
    # streams of different nodes are independent
    c = np.corrcoef(x[:, :50].T)
    assert np.abs(c[np.triu_indices(50, 1)]).mean() < 0.15


def _independent(n, integrator, dt, noise, gamma, x0=0.0, seed=11, period=None):
    conn = make_connectome(np.zeros((n, n)), np.zeros((n, n)), None)
    return NeuralMassEngine("sde", "linear", conn, dt_ms=dt, integrator=integrator,
                            parameters={"gamma": gamma}, noise=noise, seed=seed,
                            initial={"x": x0}, record_period_ms=period or dt)


def _final_states(integrator, dt, noise, gamma, T, seeds=(1, 2, 3, 4), n=2000):
    """x(T) of n independent regions per seed, started at 1 (n·len(seeds) samples; the
    connectome of n regions is (n, n), hence several seeds rather than a larger n)."""
    return np.concatenate([
        _independent(n, integrator, dt, noise, gamma, x0=1.0, seed=s, period=T)
        .advance(0.0, T, {}).records["timeseries"][-1, 0] for s in seeds])


def test_multiplicative_noise_euler_maruyama_moments_are_exact():
    """x_{k+1} = x_k (1 + γh + σ√h ξ): E x_k = x₀ (1 + γh)^k, E x_k² = x₀² ((1 + γh)² + σ²h)^k."""
    gamma, sigma, dt, T = -0.5, 0.6, 0.05, 2.0
    x = _final_states("euler_maruyama", dt, {"type": "multiplicative", "x": sigma}, gamma, T)
    k = round(T / dt)
    m1 = (1 + gamma * dt) ** k
    m2 = ((1 + gamma * dt) ** 2 + sigma ** 2 * dt) ** k
    se1 = x.std() / np.sqrt(x.size)
    se2 = (x ** 2).std() / np.sqrt(x.size)
    assert abs(x.mean() - m1) < 4 * se1, (x.mean(), m1, se1)
    assert abs((x ** 2).mean() - m2) < 4 * se2, ((x ** 2).mean(), m2, se2)
    # Itô, not Stratonovich: the Stratonovich mean e^{(γ + σ²/2) T} is > 20 s.e. away
    assert abs(np.exp((gamma + sigma ** 2 / 2) * T) - m1) > 20 * se1


def test_multiplicative_noise_stochastic_heun_is_stratonovich():
    gamma, sigma, T = -0.5, 0.6, 2.0
    exact = np.exp((gamma + sigma ** 2 / 2) * T)       # 0.527; Itô's mean would be 0.368
    for dt in (0.1, 0.05):
        x = _final_states("stochastic_heun", dt, {"type": "multiplicative", "x": sigma},
                          gamma, T)
        se = x.std() / np.sqrt(x.size)                 # ≈ 0.005
        assert abs(x.mean() - exact) < 4 * se + 0.01, (dt, x.mean(), exact, se)   # + O(h) bias
    assert abs(x.mean() - np.exp(gamma * T)) > 20 * se


def test_coloured_noise_stationary_variance():
    """x' = γ x + η, η an OU force of correlation time τ: exact stationary variance of the
    Euler–Maruyama chain x⁺ = (1 + γh) x + h η⁺ (module docstring of cosim.integrators),
    here 0.0242, close to the continuous σ²/(2|γ|(1 + |γ|τ)) = 0.0250."""
    n, gamma, sigma, dt, tau = 2000, -1.0, 0.5, 0.1, 4.0
    e = _independent(n, "euler_maruyama", dt, {"x": sigma, "ntau": tau}, gamma, period=5.0)
    e.advance(0.0, 60.0, {})                            # 15 correlation times
    x = e.advance(60.0, 560.0, {}).records["timeseries"][:, 0, :]    # (100, n)
    a, E, v = 1 + gamma * dt, np.exp(-dt / tau), sigma ** 2 / (2 * tau)
    C = dt * v / (1 - a * E)
    expected = (2 * a * dt * E * C + dt ** 2 * v) / (1 - a ** 2)
    assert abs(expected - sigma ** 2 / (2 * abs(gamma) * (1 + abs(gamma) * tau))) < 0.05 * expected
    # 100 samples 5 ms apart (correlation ~ e^{-5/4}) x 2000 regions: s.e. ≈ 0.5 %
    assert abs(x.var() - expected) < 0.03 * expected, (x.var(), expected)
    # a white-noise run of the same σ has 5x the variance: ntau is really used
    w = _independent(n, "euler_maruyama", dt, {"x": sigma}, gamma, period=5.0)
    w.advance(0.0, 60.0, {})
    assert w.advance(60.0, 160.0, {}).records["timeseries"].var() > 4 * expected


def test_coloured_noise_checkpoint_resumes_to_the_same_bits():
    noise = {"x": 0.5, "ntau": 3.0}
    a = _independent(50, "stochastic_heun", 0.1, noise, -1.0)
    straight = a.advance(0.0, 20.0, {}).records["timeseries"]
    b = _independent(50, "stochastic_heun", 0.1, noise, -1.0)
    first = b.advance(0.0, 10.0, {}).records["timeseries"]
    snap = b.state()
    c = _independent(50, "stochastic_heun", 0.1, noise, -1.0)
    c.restore(snap)
    second = c.advance(10.0, 20.0, {}).records["timeseries"]
    np.testing.assert_array_equal(np.concatenate([first, second]), straight)


@pytest.mark.parametrize("noise, message", [
    ({"type": "multiplicativ", "x": 0.1}, "did you mean 'multiplicative'"),
    ({"type": "multiplicative", "ntau": 2.0, "x": 0.1}, "coloured noise (ntau > 0) is additive"),
    ({"ntau": -1.0, "x": 0.1}, "must be >= 0 ms"),
])
def test_bad_noise_settings_are_one_line(noise, message):
    from cosim.errors import CosimError
    with pytest.raises(CosimError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _independent(2, "euler_maruyama", 0.1, noise, -1.0)


# -- adaptive Dormand–Prince 5(4) ---------------------------------------------------------

def _stuart_landau_exact(t, a, omega, x0):
    """|z|² = a / (1 + (a/r₀² − 1) e^{−2at}), arg z = ω t (z₀ = x0 real)."""
    r2 = a / (1.0 + (a / x0 ** 2 - 1.0) * np.exp(-2.0 * a * t))
    r = np.sqrt(r2)
    return r * np.cos(omega * t), r * np.sin(omega * t)


def _dopri5_stuart_landau(rtol):
    """(max error over 30 ms, accepted substeps) of dopri5 on the limit-cycle approach of
    the Hopf normal form, exact in closed form; asserts the error is within 50 rtol |z|."""
    a, omega, x0, T = 0.2, 1.0, 0.05, 30.0
    conn = make_connectome([[0.0]], [[0.0]], ["a"])
    e = NeuralMassEngine("sl", "stuart_landau", conn, dt_ms=1.0, integrator="dopri5",
                         parameters={"a": a, "omega": omega}, initial={"x": x0, "y": 0.0},
                         rtol=rtol, atol=1e-12, record_period_ms=1.0)
    y = e.advance(0.0, T, {}).records["timeseries"][:, :, 0]
    t = np.arange(1, y.shape[0] + 1) * 1.0
    ex, ey = _stuart_landau_exact(t, a, omega, x0)
    err = np.abs(np.stack([y[:, 0] - ex, y[:, 1] - ey], 1)).max()
    assert err < 50 * rtol * np.sqrt(a), (rtol, err)
    assert err > 1e-3 * rtol * np.sqrt(a)            # (not exact by accident: it adapts)
    accepted = e.state()["substep"][1]
    assert accepted >= T                             # at least one substep per grid step
    return err, accepted


@pytest.mark.parametrize("rtol", [1e-4, 1e-6, 1e-8])
def test_dopri5_meets_its_tolerance_on_stuart_landau(rtol):
    _dopri5_stuart_landau(rtol)


def test_dopri5_error_and_work_scale_with_tolerance():
    """1000x tighter rtol: the error at least 100x smaller, the work ~1000^(1/5) = 4x."""
    errs, work = zip(*[_dopri5_stuart_landau(r) for r in (1e-5, 1e-8)])
    assert errs[1] < 1e-2 * errs[0]                  # 1000x tighter: at least 100x smaller
    ratio = work[1] / work[0]
    assert 2.0 < ratio < 8.0, work                   # ~ 1000^(1/5) = 4


def test_dopri5_instant_coupling_matches_matrix_exponential():
    w = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [0.3, 0.7, 0.0]])
    conn = make_connectome(w, np.zeros((3, 3)), ["a", "b", "c"])
    gamma, G, x0 = -0.2, -0.5, np.array([1.0, -0.5, 0.25])
    e = NeuralMassEngine("ode", "linear", conn, dt_ms=0.5, integrator="dopri5",
                         coupling="linear", coupling_parameters={"G": G},
                         parameters={"gamma": gamma}, initial={"x": x0}, rtol=1e-10,
                         atol=1e-12, record_period_ms=2.0)
    y = e.advance(0.0, 2.0, {}).records["timeseries"][-1, 0]
    np.testing.assert_allclose(y, expm((gamma * np.eye(3) + G * w) * 2.0) @ x0, rtol=0, atol=1e-9)


def test_dopri5_refuses_delays():
    from cosim.errors import CosimError
    conn = make_connectome([[0.0, 1.0], [1.0, 0.0]], [[0.0, 10.0], [10.0, 0.0]], ["a", "b"])
    with pytest.raises(CosimError, match="dopri5 is adaptive and needs a delay-free system; "
                                         "this connectome has delays up to 10 ms") as e:
        NeuralMassEngine("x", "linear", conn, integrator="dopri5", speed_mm_per_ms=1.0)
    assert e.value.key == "integrator"
