"""Linear stability of the homogeneous state of a neural-field sheet.

Linearising ``τ ∂u/∂t = −u + w ⊛ S(u(t − d)) + I`` about a homogeneous fixed point ``u₀``
(``u₀ = ŵ(0) S(u₀) + I₀``) with ``u = u₀ + ε e^{λt + ik·x}`` gives the dispersion relation

    τ λ = −1 + g ŵ(k) e^{−λ d},       g = S'(u₀)

(seeds 001 and 004; Coombes, *Biol. Cybern.* 93, 2005).

* ``d = 0``: ``λ(k) = (g ŵ(k) − 1) / τ``.
* ``d > 0``: with ``z = λ + 1/τ``, ``z d e^{z d} = (g ŵ d / τ) e^{d/τ}``, so
  ``λ_b(k) = −1/τ + W_b((g ŵ(k) d / τ) e^{d/τ}) / d`` for the branches ``b`` of the Lambert
  W function.  For a real argument the principal branch ``b = 0`` has the largest real part
  of all branches (Shinozaki & Mori, *Automatica* 42, 2006), so it is the leading root
  (with its conjugate on ``b = −1`` when complex).

Onsets (the gain ``g`` at which the leading ``Re λ`` crosses 0):

* **static / Turing**: ``g ŵ(k) = 1`` at ``λ = 0``, first at ``k* = argmax ŵ(k)``:
  ``g_c = 1 / max ŵ``; a pattern of wavelength ``2π / k*`` when ``k* > 0`` (Turing), a
  homogeneous switch when ``k* = 0``.  The same for any ``d``.
* **Hopf** (``d > 0``, needs ``ŵ(k) < 0`` somewhere for ``g > 0``): at ``λ = iω``,
  ``1 = −g|ŵ| cos ωd`` and ``ωτ = g|ŵ| sin ωd``, so ``tan(ωd) = −ωτ`` with
  ``ωd ∈ (π/2, π)`` — a frequency independent of the kernel — and
  ``g_h = √(1 + ω²τ²) / |min ŵ|`` at ``k_h = argmin ŵ(k)``.

Kernels are those of :mod:`cosim.fields.kernels` (``hat(k, D)``); ``k`` in rad/mm, times in
ms, rates ``λ`` in 1/ms, frequencies in Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def growth_rate(w_hat, gain: float, tau_ms: float, delay_ms: float = 0.0,
                branch: int = 0) -> np.ndarray:
    """``λ`` (1/ms, complex) for kernel transform values ``w_hat`` (array or scalar)."""
    G = gain * np.asarray(w_hat, dtype=np.float64)
    if delay_ms == 0:
        return ((G - 1.0) / tau_ms).astype(np.complex128)
    from scipy.special import lambertw
    d = float(delay_ms)
    x = G * d / tau_ms * math.exp(d / tau_ms)
    return -1.0 / tau_ms + lambertw(x, branch) / d


def dispersion(kernel, dims: int, k, gain: float, tau_ms: float, delay_ms: float = 0.0,
               branch: int = 0) -> np.ndarray:
    """``λ(k)`` of the leading branch for ``kernel`` in ``dims`` dimensions."""
    return growth_rate(kernel.hat(np.asarray(k, dtype=np.float64), dims), gain, tau_ms,
                       delay_ms, branch)


def residual(lam, w_hat, gain: float, tau_ms: float, delay_ms: float):
    """``τλ + 1 − g ŵ e^{−λd}`` (0 at a root)."""
    return tau_ms * lam + 1.0 - gain * w_hat * np.exp(-lam * delay_ms)


def _extremum(kernel, dims: int, k_max: float, sign: float) -> tuple[float, float]:
    """``(k, ŵ(k))`` maximising ``sign · ŵ`` on ``[0, k_max]`` (scan, then refinement)."""
    from scipy.optimize import minimize_scalar
    k = np.linspace(0.0, k_max, 4001)
    v = sign * kernel.hat(k, dims)
    i = int(np.argmax(v))
    lo, hi = k[max(i - 1, 0)], k[min(i + 1, k.size - 1)]
    if hi > lo:
        res = minimize_scalar(lambda q: -sign * float(kernel.hat(q, dims)), bounds=(lo, hi),
                              method="bounded", options={"xatol": 1e-12 * max(1.0, hi)})
        if -res.fun > v[i]:
            return float(res.x), float(kernel.hat(res.x, dims))
    return float(k[i]), float(kernel.hat(k[i], dims))


@dataclass(frozen=True)
class Onset:
    """An instability of the homogeneous state: ``kind`` ("turing", "bulk" or "hopf"),
    critical gain ``g`` (= S'(u₀)), wavenumber ``k`` (rad/mm), wavelength (mm, inf at k = 0),
    angular frequency ``omega`` (rad/ms) and frequency (Hz) at onset (0 when static)."""

    kind: str
    gain: float
    k: float
    omega: float = 0.0

    @property
    def wavelength_mm(self) -> float:
        return 2 * math.pi / self.k if self.k > 0 else math.inf

    @property
    def frequency_hz(self) -> float:
        return self.omega / (2 * math.pi) * 1000.0


def default_k_max(kernel) -> float:
    """Wavenumbers beyond ``20 / reach`` carry nothing for the kernels here."""
    return 20.0 / kernel.reach_mm()


def turing_onset(kernel, dims: int, k_max: float | None = None) -> Onset | None:
    """The static onset ``g_c = 1 / max ŵ`` at ``k* = argmax ŵ`` (None if ŵ ≤ 0)."""
    k, w = _extremum(kernel, dims, k_max or default_k_max(kernel), +1.0)
    if w <= 0:
        return None
    return Onset("turing" if k > 0 else "bulk", 1.0 / w, k)


def hopf_frequency(tau_ms: float, delay_ms: float) -> float:
    """``ω`` (rad/ms) solving ``tan(ωd) = −ωτ`` with ``ωd ∈ (π/2, π)``."""
    from scipy.optimize import brentq
    d, tau = float(delay_ms), float(tau_ms)
    f = lambda x: math.sin(x) + (x * tau / d) * math.cos(x)   # x = ωd; tan x = −xτ/d
    x = brentq(f, math.pi / 2, math.pi, xtol=1e-15, rtol=1e-15)
    return x / d


def hopf_onset(kernel, dims: int, tau_ms: float, delay_ms: float,
               k_max: float | None = None) -> Onset | None:
    """The oscillatory onset for ``d > 0`` (None if ``d = 0`` or ŵ ≥ 0 everywhere)."""
    if delay_ms <= 0:
        return None
    k, w = _extremum(kernel, dims, k_max or default_k_max(kernel), -1.0)
    if w >= 0:
        return None
    omega = hopf_frequency(tau_ms, delay_ms)
    return Onset("hopf", math.sqrt(1.0 + (omega * tau_ms) ** 2) / abs(w), k, omega)


def critical(kernel, dims: int, tau_ms: float, delay_ms: float = 0.0,
             k_max: float | None = None) -> Onset | None:
    """The first instability met as the gain grows from 0 (lowest critical gain)."""
    found = [o for o in (turing_onset(kernel, dims, k_max),
                         hopf_onset(kernel, dims, tau_ms, delay_ms, k_max)) if o is not None]
    return min(found, key=lambda o: o.gain) if found else None


def fixed_points(kernel, dims: int, firing, I0: float, lo: float = -1e3,
                 hi: float = 1e3) -> list[float]:
    """Homogeneous fixed points ``u₀ = ŵ(0) S(u₀) + I₀`` (ascending)."""
    from scipy.optimize import brentq
    w0 = float(kernel.hat(0.0, dims))
    f = lambda u: u - w0 * float(firing.value(u)) - I0
    # S ∈ (0, 1): every root lies in [I0 + min(0, w0), I0 + max(0, w0)]
    a, b = I0 + min(0.0, w0) - 1e-9, I0 + max(0.0, w0) + 1e-9
    x = np.linspace(max(a, lo), min(b, hi), 20001)
    v = np.array([f(q) for q in x])
    roots = [float(x[i]) for i in np.flatnonzero(v == 0)]
    for i in np.flatnonzero(v[:-1] * v[1:] < 0):
        roots.append(brentq(f, x[i], x[i + 1], xtol=1e-14))
    return sorted(set(roots))
