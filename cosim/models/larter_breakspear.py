"""Larter–Breakspear neural mass (Breakspear, Terry & Friston 2003); TVB's
``LarterBreakspear``.

A conductance-based population: mean excitatory membrane potential ``V``, fraction of open
K⁺ channels ``W`` and mean inhibitory potential ``Z`` (dimensionless potentials, time in
ms)::

    m_ion = ½ (1 + tanh((V − T_ion) / δ_ion))                    ion ∈ {Ca, Na, K}
    Q_V = ½ Q_V,max (1 + tanh((V − V_T) / δ_V))
    Q_Z = ½ Q_Z,max (1 + tanh((Z − Z_T) / δ_Z))
    dV/dt = t_s [−(g_Ca + (1 − C) r_NMDA a_ee Q_V + C r_NMDA a_ee c) m_Ca (V − V_Ca)
                 − g_K W (V − V_K) − g_L (V − V_L)
                 − (g_Na m_Na + (1 − C) a_ee Q_V + C a_ee c) (V − V_Na)
                 − a_ie Z Q_Z + a_ne I_ext]
    dW/dt = t_s φ (m_K − W) / τ_K
    dZ/dt = t_s b (a_ni I_ext + a_ei V Q_V)

``c`` is the long-range input, the mean firing rate ``⟨Q_V⟩`` of the afferent regions:
the coupling reads ``V`` of the sources, and ``hyperbolic_tangent`` with ``a = ½ Q_V,max``,
``midpoint = V_T``, ``sigma = δ_V`` (and ``G`` = 1 / number of afferents, or a weight
normalisation) turns it into that rate, as in Breakspear et al.; ``C`` balances
internal against long-range excitation.

References: M. Breakspear, J. R. Terry, K. J. Friston, Network 14:703 (2003);
``tvb.simulator.models.LarterBreakspear`` (same names and defaults).
"""

from __future__ import annotations

import math

from numba import njit

import numpy as np

from ..params import Param
from .base import Model, Observable, Parameter, StateVariable

_NAMES = ("gCa", "gK", "gL", "phi", "gNa", "TK", "TCa", "TNa", "VCa", "VK", "VL", "VNa",
          "d_K", "tau_K", "d_Na", "d_Ca", "aei", "aie", "b", "C", "ane", "ani", "aee", "Iext",
          "rNMDA", "VT", "d_V", "ZT", "d_Z", "QV_max", "QZ_max", "t_scale")


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Larter–Breakspear derivatives of node ``i`` (see module docstring)."""
    gCa = p[i, 0]
    gK = p[i, 1]
    gL = p[i, 2]
    phi = p[i, 3]
    gNa = p[i, 4]
    TK = p[i, 5]
    TCa = p[i, 6]
    TNa = p[i, 7]
    VCa = p[i, 8]
    VK = p[i, 9]
    VL = p[i, 10]
    VNa = p[i, 11]
    d_K = p[i, 12]
    tau_K = p[i, 13]
    d_Na = p[i, 14]
    d_Ca = p[i, 15]
    aei = p[i, 16]
    aie = p[i, 17]
    b = p[i, 18]
    C = p[i, 19]
    ane = p[i, 20]
    ani = p[i, 21]
    aee = p[i, 22]
    Iext = p[i, 23]
    rNMDA = p[i, 24]
    VT = p[i, 25]
    d_V = p[i, 26]
    ZT = p[i, 27]
    d_Z = p[i, 28]
    QV_max = p[i, 29]
    QZ_max = p[i, 30]
    t_scale = p[i, 31]
    V = x[i, 0]
    W = x[i, 1]
    Z = x[i, 2]
    c0 = c[i, 0]
    m_Ca = 0.5 * (1.0 + math.tanh((V - TCa) / d_Ca))
    m_Na = 0.5 * (1.0 + math.tanh((V - TNa) / d_Na))
    m_K = 0.5 * (1.0 + math.tanh((V - TK) / d_K))
    QV = 0.5 * QV_max * (1.0 + math.tanh((V - VT) / d_V))
    QZ = 0.5 * QZ_max * (1.0 + math.tanh((Z - ZT) / d_Z))
    dx[i, 0] = t_scale * (
        -(gCa + (1.0 - C) * (rNMDA * aee) * QV + C * rNMDA * aee * c0) * m_Ca * (V - VCa)
        - gK * W * (V - VK)
        - gL * (V - VL)
        - (gNa * m_Na + (1.0 - C) * aee * QV + C * aee * c0) * (V - VNa)
        - aie * Z * QZ
        + ane * Iext)
    dx[i, 1] = t_scale * phi * (m_K - W) / tau_K
    dx[i, 2] = t_scale * b * (ani * Iext + aei * V * QV)


def rate_hz(V, QV_max, VT, d_V):
    """Firing rate of the excitatory population ``Q_V = ½ Q_V,max (1 + tanh((V − V_T) /
    δ_V))`` in Hz (``QV_max`` in 1/ms)."""
    return 1000.0 * 0.5 * QV_max * (1.0 + np.tanh((V - VT) / d_V))


#: The rate transfer: the model's own Q_V of V, in Hz, with the engine's parameters.
RATE = Observable(
    "rate", "Hz", "firing rate of the excitatory population, 1000 Q_V = 500 QV_max "
    "(1 + tanh((V - VT) / d_V))", ("V",), rate_hz,
    parameters=(Param("QV_max", 1.0, "1/ms", "maximal excitatory firing rate",
                      derived="the engine's QV_max"),
                Param("VT", 0.0, "1", "mean excitatory threshold", derived="the engine's VT"),
                Param("d_V", 0.65, "1", "spread of the excitatory thresholds", gt=0,
                      derived="the engine's d_V")),
    from_model=lambda p: {"QV_max": p["QV_max"], "VT": p["VT"], "d_V": p["d_V"]},
    formula="500*{QV_max}*(1+tanh((V-{VT})/{d_V}))", transfer="larter_breakspear")

MODEL = Model(
    name="larter_breakspear",
    doc=__doc__,
    state_variables=(
        StateVariable("V", "1", "mean membrane potential of the excitatory population", 0.0,
                      (-1.5, 1.5)),
        StateVariable("W", "1", "fraction of open K channels", 0.0, (-1.5, 1.5)),
        StateVariable("Z", "1", "mean membrane potential of the inhibitory population", 0.0,
                      (-1.5, 1.5)),
    ),
    parameters=(
        Parameter("gCa", 1.1, "1", "conductance of the Ca channels"),
        Parameter("gK", 2.0, "1", "conductance of the K channels"),
        Parameter("gL", 0.5, "1", "conductance of the leak channels"),
        Parameter("phi", 0.7, "1", "temperature scaling factor"),
        Parameter("gNa", 6.7, "1", "conductance of the Na channels"),
        Parameter("TK", 0.0, "1", "threshold of the K channels"),
        Parameter("TCa", -0.01, "1", "threshold of the Ca channels"),
        Parameter("TNa", 0.3, "1", "threshold of the Na channels"),
        Parameter("VCa", 1.0, "1", "Ca Nernst potential"),
        Parameter("VK", -0.7, "1", "K Nernst potential"),
        Parameter("VL", -0.5, "1", "leak Nernst potential"),
        Parameter("VNa", 0.53, "1", "Na Nernst potential"),
        Parameter("d_K", 0.3, "1", "spread of the K channel thresholds", gt=0),
        Parameter("tau_K", 1.0, "ms", "K relaxation time", gt=0),
        Parameter("d_Na", 0.15, "1", "spread of the Na channel thresholds", gt=0),
        Parameter("d_Ca", 0.15, "1", "spread of the Ca channel thresholds", gt=0),
        Parameter("aei", 2.0, "1", "excitatory-to-inhibitory synaptic strength"),
        Parameter("aie", 2.0, "1", "inhibitory-to-excitatory synaptic strength"),
        Parameter("b", 0.1, "1", "time-scale factor of Z"),
        Parameter("C", 0.1, "1", "weight of long-range against internal excitation"),
        Parameter("ane", 1.0, "1", "non-specific-to-excitatory synaptic strength"),
        Parameter("ani", 0.4, "1", "non-specific-to-inhibitory synaptic strength"),
        Parameter("aee", 0.4, "1", "excitatory-to-excitatory synaptic strength"),
        Parameter("Iext", 0.3, "1", "non-specific subcortical input"),
        Parameter("rNMDA", 0.25, "1", "ratio of NMDA to AMPA receptors"),
        Parameter("VT", 0.0, "1", "mean threshold of the excitatory cells"),
        Parameter("d_V", 0.65, "1", "spread of the excitatory thresholds", gt=0),
        Parameter("ZT", 0.0, "1", "mean threshold of the inhibitory cells"),
        Parameter("d_Z", 0.7, "1", "spread of the inhibitory thresholds", gt=0),
        Parameter("QV_max", 1.0, "1/ms", "maximal firing rate of the excitatory population"),
        Parameter("QZ_max", 1.0, "1/ms", "maximal firing rate of the inhibitory population"),
        Parameter("t_scale", 1.0, "1", "time-scale factor of the whole system", gt=0),
    ),
    coupling_variables=("V",),
    default_coupling="hyperbolic_tangent",
    dfuns={(): dfun},
    observables={"rate": RATE},
    reference="Breakspear, Terry & Friston, Network 14:703 (2003); TVB LarterBreakspear",
    extra={"tvb": {"class": "LarterBreakspear"}},
)

assert tuple(p.name for p in MODEL.parameters) == _NAMES
