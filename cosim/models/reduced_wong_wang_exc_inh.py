"""Reduced Wong–Wang model with an excitatory and an inhibitory pool (Deco et al. 2014);
TVB's ``ReducedWongWangExcInh``.

NMDA gating ``S_e`` and GABA gating ``S_i`` (0…1) per region; currents in nA, rates in Hz,
time in ms::

    I_e = W_e I_o + w_p J_N S_e − J_i S_i + I_ext + J_N c          [nA]
    I_i = W_i I_o + J_N S_e − S_i + λ J_N c                        [nA]
    H_p(I) = (a_p I − b_p) / (1 − exp(−d_p (a_p I − b_p)))         [Hz]
    dS_e/dt = −S_e / τ_e + (1 − S_e) γ_e H_e(I_e)
    dS_i/dt = −S_i / τ_i + γ_i H_i(I_i)

``c`` is the long-range input, which reads ``S_e`` of the source regions; the global
coupling strength (TVB's model parameter ``G``) is the coupling's ``G`` here, so TVB's
``G · a`` (model ``G`` times the ``Linear`` coupling's ``a``) is cosim's coupling ``G``.
``λ`` (``lamda``) sends the long-range input to the inhibitory pool too (0: excitatory
only).  ``H`` is evaluated with ``expm1`` and its limit ``1/d`` at ``a I = b`` (no 0/0).
``S_e``, ``S_i`` are kept in [0, 1] after every stage (TVB's boundaries).

Feedback inhibition control (Deco et al. 2014) is ``J_i`` set per region (a per-region
parameter array) so that each region's excitatory rate is 3 Hz.

References: G. Deco, A. Ponce-Alvarez, P. Hagmann, G. L. Romani, D. Mantini,
M. Corbetta, J. Neurosci. 34:7886 (2014); ``tvb.simulator.models.ReducedWongWangExcInh``
(same names and defaults; its ``G`` is the coupling's).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .base import Model, Parameter, StateVariable


@njit(inline="always")
def _h(u, d):
    """``u / (1 − exp(−d u))``, with its series near ``u = 0``."""
    if abs(d * u) < 1e-9:
        return 1.0 / d + 0.5 * u
    return u / -math.expm1(-d * u)


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Reduced Wong–Wang excitatory–inhibitory derivatives of node ``i``."""
    a_e = p[i, 0]
    b_e = p[i, 1]
    d_e = p[i, 2]
    gamma_e = p[i, 3]
    tau_e = p[i, 4]
    w_p = p[i, 5]
    J_N = p[i, 6]
    W_e = p[i, 7]
    a_i = p[i, 8]
    b_i = p[i, 9]
    d_i = p[i, 10]
    gamma_i = p[i, 11]
    tau_i = p[i, 12]
    J_i = p[i, 13]
    W_i = p[i, 14]
    I_o = p[i, 15]
    I_ext = p[i, 16]
    lamda = p[i, 17]
    S_e = x[i, 0]
    S_i = x[i, 1]
    cc = J_N * c[i, 0]
    jn_se = J_N * S_e
    u_e = a_e * (w_p * jn_se - J_i * S_i + W_e * I_o + cc + I_ext) - b_e
    u_i = a_i * (jn_se - S_i + W_i * I_o + lamda * cc) - b_i
    dx[i, 0] = -(S_e / tau_e) + (1.0 - S_e) * _h(u_e, d_e) * gamma_e
    dx[i, 1] = -(S_i / tau_i) + _h(u_i, d_i) * gamma_i


PARAMETERS = (
    Parameter("a_e", 310.0, "1/nC", "excitatory gain"),
    Parameter("b_e", 125.0, "Hz", "excitatory threshold"),
    Parameter("d_e", 0.160, "s", "excitatory curvature of H_e", gt=0),
    Parameter("gamma_e", 0.641 / 1000, "1", "excitatory kinetic parameter (x 1e-3 for Hz to "
              "1/ms)"),
    Parameter("tau_e", 100.0, "ms", "NMDA decay time constant", gt=0),
    Parameter("w_p", 1.4, "1", "excitatory recurrence"),
    Parameter("J_N", 0.15, "nA", "NMDA current (excitatory synaptic coupling)"),
    Parameter("W_e", 1.0, "1", "scaling of the external input current to the excitatory pool"),
    Parameter("a_i", 615.0, "1/nC", "inhibitory gain"),
    Parameter("b_i", 177.0, "Hz", "inhibitory threshold"),
    Parameter("d_i", 0.087, "s", "inhibitory curvature of H_i", gt=0),
    Parameter("gamma_i", 1.0 / 1000, "1", "inhibitory kinetic parameter (x 1e-3)"),
    Parameter("tau_i", 10.0, "ms", "GABA decay time constant", gt=0),
    Parameter("J_i", 1.0, "nA", "local feedback inhibitory synaptic coupling (set per region "
              "for feedback inhibition control)"),
    Parameter("W_i", 0.7, "1", "scaling of the external input current to the inhibitory pool"),
    Parameter("I_o", 0.382, "nA", "effective external input"),
    Parameter("I_ext", 0.0, "nA", "external stimulation of the excitatory pool"),
    Parameter("lamda", 0.0, "1", "long-range input to the inhibitory pool (0: none, 1: as to "
              "the excitatory one)", ge=0),
)

MODEL = Model(
    name="reduced_wong_wang_exc_inh",
    doc=__doc__,
    state_variables=(
        StateVariable("S_e", "1", "NMDA gating of the excitatory pool", 0.0, (0.0, 1.0),
                      (0.0, 1.0)),
        StateVariable("S_i", "1", "GABA gating of the inhibitory pool", 0.0, (0.0, 1.0),
                      (0.0, 1.0)),
    ),
    parameters=PARAMETERS,
    coupling_variables=("S_e",),
    default_coupling="linear",
    dfuns={(): dfun},
    reference="Deco et al., J. Neurosci. 34:7886 (2014); TVB ReducedWongWangExcInh",
    extra={"tvb": {"class": "ReducedWongWangExcInh", "drop": ("G",),
                   "notes": {"G": "the global coupling is the coupling's G here "
                                  "([engines.NAME.coupling] G = TVB's model G x coupling a)"}}},
)
