"""The Siegert transfer function of a leaky integrate-and-fire neuron, and the self-consistent
rates of a recurrent network of LIF populations (the diffusion approximation).

A LIF neuron driven by Gaussian white noise, ``τ dV = (μ − V) dt + σ √τ dW``, with
threshold ``V_th``, reset ``V_r`` and refractory period ``τ_ref``, fires at the stationary
rate (Siegert 1951; Brunel 2000, eq. 21; Amit & Brunel 1997)::

    1 / Φ(μ, σ) = τ_ref + τ √π ∫_{(V_r − μ)/σ}^{(V_th − μ)/σ} e^{u²} (1 + erf u) du

The integrand is written ``erfcx(−u)`` (``scipy.special.erfcx``: ``e^{x²} erfc x``), which
is finite and smooth for every ``u`` below ≈ 26; above, the rate is below ``e^{−670}`` and
returned as 0.  The integral is adaptive Gauss–Kronrod (``scipy.integrate.quad``) with
relative tolerance 1e-12.  ``σ = 0`` is the deterministic limit ``τ ln((μ − V_r)/(μ − V_th))``
(0 below threshold).

Diffusion approximation of Poisson input.  ``K`` synapses of weight ``J`` (mV, a jump of V
per spike, current-based delta synapses as NEST's ``iaf_psc_delta``) each receiving rate ``ν``
add ``τ J K ν`` to μ and ``τ J² K ν`` to σ² (Brunel 2000, eqs. 3–4).  A recurrent network
of populations ``k`` with in-degrees ``K_kj`` and weights ``J_kj`` from population ``j``
rests where ``r_k = Φ_k(μ_k(r), σ_k(r))`` for every ``k`` — :func:`self_consistent_rates` finds these
self-consistent rates.

Units: mV, ms; rates in Hz (``Φ`` returns Hz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import integrate, optimize, special

#: Above this upper limit of the Siegert integral the rate underflows (e^{u²} > 1e290).
_U_MAX = 26.0


@dataclass(frozen=True)
class LIF:
    """One LIF population's neuron: membrane time constant ``tau_m_ms``, threshold
    ``v_th_mv``, reset ``v_reset_mv``, refractory period ``t_ref_ms``, resting potential
    ``e_l_mv``, and a constant current ``i_e_pa`` into capacitance ``c_m_pf`` (NEST's
    ``iaf_psc_delta`` names: ``μ₀ = E_L + τ I_e / C_m``)."""

    tau_m_ms: float = 20.0
    v_th_mv: float = 20.0
    v_reset_mv: float = 10.0
    t_ref_ms: float = 2.0
    e_l_mv: float = 0.0
    i_e_pa: float = 0.0
    c_m_pf: float = 1.0

    @property
    def mu0_mv(self) -> float:
        return self.e_l_mv + self.tau_m_ms * self.i_e_pa / self.c_m_pf


def siegert(mu_mv, sigma_mv, neuron: LIF = LIF()) -> np.ndarray:
    """Stationary rate Φ(μ, σ) (Hz) of ``neuron`` for mean input ``mu_mv`` and noise
    ``sigma_mv`` (arrays broadcast); see the module docstring."""
    mu, sigma = np.broadcast_arrays(np.asarray(mu_mv, dtype=np.float64),
                                    np.asarray(sigma_mv, dtype=np.float64))
    out = np.empty(mu.shape)
    for idx in np.ndindex(mu.shape):
        out[idx] = _siegert1(float(mu[idx]), float(sigma[idx]), neuron)
    return out if out.ndim else float(out)


def _siegert1(mu: float, sigma: float, n: LIF) -> float:
    if sigma < 0 or not (math.isfinite(mu) and math.isfinite(sigma)):
        raise ValueError(f"siegert: need finite mu and sigma >= 0, got {mu}, {sigma}")
    tau = n.tau_m_ms
    if sigma == 0.0:
        if mu <= n.v_th_mv:
            return 0.0
        return 1000.0 / (n.t_ref_ms + tau * math.log((mu - n.v_reset_mv) / (mu - n.v_th_mv)))
    hi = (n.v_th_mv - mu) / sigma
    lo = (n.v_reset_mv - mu) / sigma
    if hi > _U_MAX:
        return 0.0
    val, err = integrate.quad(lambda u: special.erfcx(-u), lo, hi, epsabs=0.0, epsrel=1e-12,
                              limit=500)
    return 1000.0 / (n.t_ref_ms + tau * math.sqrt(math.pi) * val)


def siegert_derivatives(mu_mv: float, sigma_mv: float, neuron: LIF = LIF(),
                        h_mv: float = 1e-3) -> tuple[float, float]:
    """``(∂Φ/∂μ, ∂²Φ/∂μ²)`` (Hz/mV, Hz/mV²) by central differences of step ``h_mv`` — the
    slope and curvature the fluctuation correction ``E[Φ] ≈ Φ + ½ Φ'' s²`` uses."""
    f0 = _siegert1(mu_mv, sigma_mv, neuron)
    fp = _siegert1(mu_mv + h_mv, sigma_mv, neuron)
    fm = _siegert1(mu_mv - h_mv, sigma_mv, neuron)
    return (fp - fm) / (2 * h_mv), (fp - 2 * f0 + fm) / h_mv ** 2


def input_moments(tau_m_ms: float, weights_mv, indegrees, rates_hz) -> tuple[float, float]:
    """``(Δμ, Δσ²)`` (mV, mV²) of Poisson inputs: ``τ Σ J K ν`` and ``τ Σ J² K ν``
    (``rates_hz`` per synapse; the diffusion approximation, module docstring)."""
    J = np.asarray(weights_mv, dtype=np.float64)
    K = np.asarray(indegrees, dtype=np.float64)
    nu = np.asarray(rates_hz, dtype=np.float64) / 1000.0
    return float(tau_m_ms * np.sum(J * K * nu)), float(tau_m_ms * np.sum(J * J * K * nu))


@dataclass
class Network:
    """Populations ``k`` of LIF neurons (``neurons[k]``) coupled by in-degrees
    ``indegree[k, j]`` and weights ``weight_mv[k, j]`` (from ``j`` to ``k``), with external
    Poisson input ``ext_rate_hz[k]`` on ``ext_indegree[k]`` synapses of ``ext_weight_mv[k]``."""

    neurons: Sequence[LIF]
    weight_mv: np.ndarray
    indegree: np.ndarray
    ext_weight_mv: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ext_indegree: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ext_rate_hz: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        n = len(self.neurons)
        self.weight_mv = np.asarray(self.weight_mv, dtype=np.float64).reshape(n, n)
        self.indegree = np.asarray(self.indegree, dtype=np.float64).reshape(n, n)
        for name in ("ext_weight_mv", "ext_indegree", "ext_rate_hz"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            setattr(self, name, np.zeros(n) if v.size == 0 else np.broadcast_to(v, (n,)).copy())

    def moments(self, rates_hz) -> tuple[np.ndarray, np.ndarray]:
        """``(μ_k, σ_k)`` (mV) of every population at recurrent rates ``rates_hz``."""
        r = np.asarray(rates_hz, dtype=np.float64)
        mu = np.empty(len(self.neurons))
        sig = np.empty(len(self.neurons))
        for k, n in enumerate(self.neurons):
            w = np.concatenate([self.weight_mv[k], [self.ext_weight_mv[k]]])
            K = np.concatenate([self.indegree[k], [self.ext_indegree[k]]])
            nu = np.concatenate([r, [self.ext_rate_hz[k]]])
            dm, ds2 = input_moments(n.tau_m_ms, w, K, nu)
            mu[k] = n.mu0_mv + dm
            sig[k] = math.sqrt(ds2)
        return mu, sig

    def transfer(self, rates_hz) -> np.ndarray:
        """``Φ_k(μ_k(r), σ_k(r))`` (Hz) for every population."""
        mu, sig = self.moments(rates_hz)
        return np.array([_siegert1(m, s, n) for m, s, n in zip(mu, sig, self.neurons)])


def self_consistent_rates(net: Network, guesses: Sequence[Sequence[float]] | None = None,
                 tol_hz: float = 1e-9) -> list[np.ndarray]:
    """Self-consistent rates ``r = Φ(μ(r), σ(r))`` (Hz) of ``net``, one per distinct root
    found from ``guesses`` (default: a few rates from 0.1 to 100 Hz), sorted by the first
    population's rate.  Roots are polished by Powell's hybrid method on ``log r`` (rates stay
    positive) to ``|r − Φ(r)| < tol_hz``."""
    n = len(net.neurons)
    if guesses is None:
        guesses = [np.full(n, g) for g in (0.1, 1.0, 5.0, 20.0, 100.0)]
    found: list[np.ndarray] = []
    for g in guesses:
        x0 = np.log(np.maximum(np.asarray(g, dtype=np.float64), 1e-12))
        sol = optimize.root(lambda x: np.log(np.maximum(net.transfer(np.exp(x)), 1e-300)) - x,
                            x0, method="hybr", tol=1e-14)
        r = np.exp(sol.x)
        if not np.all(np.isfinite(r)) or np.max(np.abs(net.transfer(r) - r)) > tol_hz:
            continue
        if not any(np.allclose(r, f, rtol=1e-6, atol=1e-9) for f in found):
            found.append(r)
    return sorted(found, key=lambda r: float(r[0]))
