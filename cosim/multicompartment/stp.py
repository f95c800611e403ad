"""Tsodyks–Markram short-term plasticity, event-driven (exact between spikes).

State per connection: utilisation ``u`` (decays to 0 with τ_fac) and available
resources ``x`` (recover to 1 with τ_rec).  On each presynaptic spike, with ``Δ`` the time
since the previous one (Tsodyks & Markram 1997; Markram, Wang & Tsodyks 1998)::

    u ← u·exp(−Δ/τ_fac);   u ← u + U·(1 − u)          (facilitation; u = U if τ_fac = 0)
    x ← 1 − (1 − x)·exp(−Δ/τ_rec)                      (recovery)
    w_eff = w · u · x;     x ← x − u·x                  (release)

Before the first spike ``u = 0, x = 1``, so the first spike transmits ``w·U``: ``w`` is
the absolute synaptic efficacy (A_SE).  For a regular train this reproduces the
recursion ``u_{n+1} = U + u_n(1−U)e^{−Δ/F}``, ``R_{n+1} = 1 + (R_n − u_n R_n − 1)e^{−Δ/D}``.
A connection without STP has ``U = 1, τ_rec = 0, τ_fac = 0`` here and always transmits ``w``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Columns of the per-connection STP parameter and state arrays.
STP_PARAMS = ("U", "tau_rec_ms", "tau_fac_ms")
STP_STATE = ("u", "x", "t_last_ms")
NO_STP = (1.0, 0.0, 0.0)


@njit(inline="always", error_model="numpy", cache=True)
def tm_transmit(state, par, q, t_ms):
    """Update connection ``q``'s TM state for a spike at ``t_ms``; return the factor u·x."""
    U = par[q, 0]
    tau_rec = par[q, 1]
    tau_fac = par[q, 2]
    u = state[q, 0]
    x = state[q, 1]
    dt = t_ms - state[q, 2]
    if tau_fac > 0.0:
        u = u * math.exp(-dt / tau_fac)
    else:
        u = 0.0
    u = u + U * (1.0 - u)
    if tau_rec > 0.0:
        x = 1.0 - (1.0 - x) * math.exp(-dt / tau_rec)
    else:
        x = 1.0
    out = u * x
    state[q, 0] = u
    state[q, 1] = x - out
    state[q, 2] = t_ms
    return out


def initial_state(n: int) -> np.ndarray:
    """TM state before any spike: ``u = 0``, ``x = 1``, last spike at −∞."""
    st = np.zeros((n, 3))
    st[:, 1] = 1.0
    st[:, 2] = -np.inf
    return st


@njit(cache=True)
def tm_train(times_ms, U, tau_rec_ms, tau_fac_ms):
    """Efficacy factors ``u·x`` for a spike train on one connection (for tests/analysis)."""
    par = np.array([[U, tau_rec_ms, tau_fac_ms]])
    state = np.zeros((1, 3))
    state[0, 1] = 1.0
    state[0, 2] = -np.inf
    out = np.empty(times_ms.size)
    for j in range(times_ms.size):
        out[j] = tm_transmit(state, par, 0, times_ms[j])
    return out
