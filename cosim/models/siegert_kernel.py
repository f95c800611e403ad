"""The Siegert transfer function in numba, for models' dfuns (the scipy version used by
analysis and tests is :func:`cosim.analysis.lif_transfer.siegert`).

``1/Φ = τ_ref + τ √π ∫_{y_r}^{y_θ} erfcx(−u) du`` (ms; Φ in 1/ms here) with
``erfcx(−u) = e^{u²} erfc(−u)`` evaluated as ``exp(u²)·erfc(−u)`` for ``u ≥ −25`` and by its
asymptotic series ``(1/(√π|u|))(1 − 1/(2u²) + 3/(4u⁴) − 15/(8u⁶) + 105/(16u⁸))`` below (error
< 1e-13); composite 8-point Gauss–Legendre on panels of width ≤ min(0.25, 1/(2 y_θ)) (relative error of the
integral < 1e-12 over the parameter range of the tests).  ``y_θ > 26``: 0 (the rate is below
1e-290).  ``σ = 0``: the deterministic LIF period.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_X, _W = np.polynomial.legendre.leggauss(8)
_SQRT_PI = math.sqrt(math.pi)


@njit(cache=True)
def erfcx_neg(u):
    """``e^{u²} erfc(−u) = e^{u²}(1 + erf u)``."""
    if u >= -25.0:
        return math.exp(u * u) * math.erfc(-u)
    z = 1.0 / (u * u)
    return (1.0 - 0.5 * z + 0.75 * z * z - 1.875 * z ** 3 + 6.5625 * z ** 4) / (_SQRT_PI * -u)


@njit(cache=True)
def siegert_per_ms(mu, sigma, tau, v_th, v_r, t_ref):
    """Stationary LIF rate (1/ms) for input mean ``mu`` and s.d. ``sigma`` (mV)."""
    if sigma <= 0.0:
        if mu <= v_th:
            return 0.0
        return 1.0 / (t_ref + tau * math.log((mu - v_r) / (mu - v_th)))
    hi = (v_th - mu) / sigma
    lo = (v_r - mu) / sigma
    if hi > 26.0:
        return 0.0
    # e^{u²} grows by e^{2u du}: panels no wider than 0.25 nor 1/(2 y_θ)
    n = max(1, int(math.ceil((hi - lo) / min(0.25, 0.5 / max(hi, 1.0)))))
    w = (hi - lo) / n
    acc = 0.0
    for k in range(n):
        mid = lo + (k + 0.5) * w
        for q in range(8):
            acc += _W[q] * erfcx_neg(mid + 0.5 * w * _X[q])
    return 1.0 / (t_ref + tau * _SQRT_PI * 0.5 * w * acc)
