"""Reduced Wong–Wang model (dynamic mean field, Deco et al. 2013), TVB's parameterisation.

One NMDA gating variable ``S`` (0…1) per region, time in ms, rates in kHz::

    x    = w J_N S + I_o + J_N c                          [nA]
    H(x) = (a x − b) / (1 − exp(−d (a x − b)))            [kHz]
    dS/dt = −S / τ_s + (1 − S) γ H(x)

``c`` is the long-range input, which reads ``S`` of the source regions (the coupling
strength ``G`` of the paper is the coupling's ``G``).  ``H`` is evaluated with ``expm1``
and its limit ``1/d`` at ``a x = b``, so it has no 0/0 there.  ``S`` is kept in [0, 1]
after every integration stage (as TVB's state-variable boundaries do).

References: G. Deco et al., J. Neurosci. 33:11239 (2013), eqs. 8–10;
``tvb.simulator.models.ReducedWongWang`` (same names and defaults).
"""

from __future__ import annotations

import math

from numba import njit

from .base import Model, Parameter, StateVariable


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Reduced Wong–Wang derivative of node ``i`` (see module docstring)."""
    a = p[i, 0]
    b = p[i, 1]
    d = p[i, 2]
    gamma = p[i, 3]
    tau_s = p[i, 4]
    w = p[i, 5]
    J_N = p[i, 6]
    I_o = p[i, 7]
    S = x[i, 0]
    u = a * (w * J_N * S + I_o + J_N * c[i, 0]) - b
    if abs(d * u) < 1e-9:
        H = 1.0 / d + 0.5 * u   # series of u / (1 − exp(−d u)) around u = 0
    else:
        H = u / -math.expm1(-d * u)
    dx[i, 0] = -S / tau_s + (1.0 - S) * gamma * H


MODEL = Model(
    name="wong_wang",
    doc=__doc__,
    state_variables=(
        StateVariable("S", "1", "NMDA synaptic gating variable", 0.0, (0.0, 1.0), (0.0, 1.0)),
    ),
    parameters=(
        Parameter("a", 0.270, "1/nC", "input gain of H"),
        Parameter("b", 0.108, "kHz", "input shift of H"),
        Parameter("d", 154.0, "ms", "curvature of H"),
        Parameter("gamma", 0.641, "1", "kinetic parameter"),
        Parameter("tau_s", 100.0, "ms", "NMDA decay time constant"),
        Parameter("w", 0.6, "1", "local excitatory recurrence"),
        Parameter("J_N", 0.2609, "nA", "NMDA synaptic coupling"),
        Parameter("I_o", 0.33, "nA", "effective external input"),
    ),
    coupling_variables=("S",),
    default_coupling="linear",
    dfuns={(): dfun},
    reference="Deco et al., J. Neurosci. 33:11239 (2013); TVB ReducedWongWang",
    extra={"tvb": {"class": "ReducedWongWang"}},
)
