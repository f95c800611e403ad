"""Integrators and delay history through the real engine, against exact solutions.

* Delay equation ``x'(t) = −b x(t − τ)``: with the history ``x(t) = e^{λt}`` for t ≤ 0,
  where ``λ = W₀(−bτ)/τ`` (Lambert W) solves ``λ = −b e^{−λτ}``, the solution is
  ``e^{λt}`` for all t — smooth, so the observed order of convergence is the scheme's.
  Built as the ``linear`` model (γ = 0) with linear coupling G = −b on a 1- or 2-node
  connectome whose tract length gives the delay; delays from 1 to 80 steps exercise the
  far (blocked), near and d = 1 paths of :mod:`cosim.history`.
* Zero-delay coupling ``x' = (γ I + G W) x``: exact ``expm``.
* Additive noise on an Ornstein–Uhlenbeck process: stationary variance of the discrete
  schemes, known in closed form.
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


@pytest.mark.parametrize("integrator", ["heun", "rk4", "euler_maruyama"])
def test_held_coupling_and_euler_are_first_order(integrator):
    # "step" holds c(t_n) over the step (TVB's rule): the delayed term is first order.
    evaluation = "stage" if integrator == "euler_maruyama" else "step"
    errors = [_delay_error(integrator, evaluation, dt, 1.0, two_nodes=False) for dt in DTS]
    assert np.all(np.abs(_orders(errors) - 1) < 0.1), errors


@pytest.mark.parametrize("integrator, evaluation, order",
                         [("heun", "stage", 2), ("rk4", "stage", 4), ("rk4", "step", 1)])
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
