"""Zerlaut first-order mean field of adaptive exponential (AdEx) networks; TVB's
``ZerlautAdaptationFirstOrder``.

Excitatory and inhibitory population rates ``E``, ``I`` (kHz), their adaptation currents
``W_e``, ``W_i`` (pA) and an Ornstein–Uhlenbeck drive ``ou_drift`` (time in ms; potentials
in mV, conductances in nS, capacitance in pF)::

    T dE/dt = F_e(E, I, W_e) − E            T dI/dt = F_i(E, I, W_i) − I
    dW_p/dt = −W_p / τ_w,p + b_p E + a_p (μ_V,p − E_L,p) / τ_w,p
    d ou_drift/dt = −ou_drift / τ_OU

The transfer function ``F`` (El Boustani & Destexhe 2009; Zerlaut et al. 2018) is the
rate of a neuron whose membrane potential fluctuates with mean ``μ_V``, standard deviation
``σ_V`` and autocorrelation time ``T_V`` under Poisson shot-noise conductances::

    f_e = (E + 10⁻⁶)(1 − g) p_e N + F_ext K_ext,e        f_i = (I + 10⁻⁶) g p_i N
    μ_Ge = Q_e τ_e f_e,  μ_Gi = Q_i τ_i f_i,  μ_G = g_L + μ_Ge + μ_Gi,  T_m = C_m / μ_G
    μ_V = (μ_Ge E_e + μ_Gi E_i + g_L E_L − W) / μ_G
    U_s = Q_s (E_s − μ_V) / μ_G
    σ_V² = Σ_s f_s (U_s τ_s)² / (2 (τ_s + T_m)),  T_V = Σ_s f_s (U_s τ_s)² / Σ_s f_s (U_s τ_s)² / (τ_s + T_m)
    V_thr = 10³ P(μ_V, σ_V, T_V g_L / C_m)      (the fitted second-order polynomial P_0 … P_9)
    F = erfc((V_thr − μ_V) / (√2 σ_V)) / (2 T_V)

``F_ext = c + weight_noise · ou_drift`` (set to 0 where it would be negative) plus the
``external_input_*`` rates; ``c`` is the long-range input, which reads ``E`` of the source
regions.  ``E``, ``I`` are kept ≥ 0 after every stage (TVB's boundaries).  TVB's array
parameters ``P_e``, ``P_i`` are the scalars ``P_e_0`` … ``P_e_9``, ``P_i_0`` … ``P_i_9``.

References: Y. Zerlaut, S. Chemla, F. Chavane, A. Destexhe, J. Comput. Neurosci. 44:45
(2018); M. di Volo, A. Romagnoni, C. Capone, A. Destexhe, Neural Comput. 31:653 (2019);
``tvb.simulator.models.ZerlautAdaptationFirstOrder`` (same names and defaults; its
``S_i`` is unused by the first-order equations and not declared here).
"""

from __future__ import annotations

import math

from numba import njit

from .base import INF, Model, Observable, Parameter, StateVariable

_SQRT2 = math.sqrt(2.0)

#: TVB's fitted threshold polynomials (Zerlaut et al. 2018, regular-spiking / fast-spiking).
P_E = (-0.04983106, 0.005063550882777035, -0.023470121807314552, 0.0022951513725067503,
       -0.0004105302652029825, 0.010547051343547399, -0.03659252821136933,
       0.007437487505797858, 0.001265064721846073, -0.04072161294490446)
P_I = (-0.05149122024209484, 0.004003689190271077, -0.008352013668528155,
       0.0002414237992765705, -0.0005070645080016026, 0.0014345394104282397,
       -0.014686689498949967, 0.004502706285435741, 0.0028472190352532454,
       -0.015357804594594548)


@njit(inline="always")
def _fluct(Fe, Fi, Fe_ext, Fi_ext, W, Q_e, tau_e, E_e, Q_i, tau_i, E_i, g_L, C_m, E_L,
           N_tot, p_e, p_i, g, K_ext_e, K_ext_i):
    """(μ_V mV, σ_V mV, T_V ms) of the module docstring."""
    fe = (Fe + 1.0e-6) * (1.0 - g) * p_e * N_tot + Fe_ext * K_ext_e
    fi = (Fi + 1.0e-6) * g * p_i * N_tot + Fi_ext * K_ext_i
    mu_Ge = Q_e * tau_e * fe
    mu_Gi = Q_i * tau_i * fi
    mu_G = g_L + mu_Ge + mu_Gi
    T_m = C_m / mu_G
    mu_V = (mu_Ge * E_e + mu_Gi * E_i + g_L * E_L - W) / mu_G
    U_e = Q_e / mu_G * (E_e - mu_V)
    U_i = Q_i / mu_G * (E_i - mu_V)
    ae = fe * (U_e * tau_e) ** 2
    ai = fi * (U_i * tau_i) ** 2
    sigma_V = math.sqrt(ae / (2.0 * (tau_e + T_m)) + ai / (2.0 * (tau_i + T_m)))
    T_V = (ae + ai) / (ae / (tau_e + T_m) + ai / (tau_i + T_m))
    return mu_V, sigma_V, T_V


@njit(inline="always")
def _rate(mu_V, sigma_V, T_V, g_L, C_m, p, i, k):
    """The transfer F: threshold polynomial p[i, k … k+9], then erfc (kHz)."""
    V = (mu_V - -60.0) / 10.0
    S = (sigma_V - 4.0) / 6.0
    T = (T_V * g_L / C_m - 0.5) / 1.0
    v_thr = (p[i, k] + p[i, k + 1] * V + p[i, k + 2] * S + p[i, k + 3] * T
             + p[i, k + 4] * V ** 2 + p[i, k + 5] * S ** 2 + p[i, k + 6] * T ** 2
             + p[i, k + 7] * V * S + p[i, k + 8] * V * T + p[i, k + 9] * S * T) * 1e3
    return math.erfc((v_thr - mu_V) / (_SQRT2 * sigma_V)) / (2.0 * T_V)


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Zerlaut first-order derivatives of node ``i`` (see module docstring)."""
    g_L, E_L_e, E_L_i, C_m = p[i, 0], p[i, 1], p[i, 2], p[i, 3]
    b_e, a_e, b_i, a_i = p[i, 4], p[i, 5], p[i, 6], p[i, 7]
    tau_w_e, tau_w_i, E_e, E_i = p[i, 8], p[i, 9], p[i, 10], p[i, 11]
    Q_e, Q_i, tau_e, tau_i = p[i, 12], p[i, 13], p[i, 14], p[i, 15]
    N_tot, p_e, p_i, g = p[i, 16], p[i, 17], p[i, 18], p[i, 19]
    K_ext_e, K_ext_i, T = p[i, 20], p[i, 21], p[i, 22]
    ext_ex_ex, ext_ex_in, ext_in_ex, ext_in_in = p[i, 23], p[i, 24], p[i, 25], p[i, 26]
    tau_OU, weight_noise = p[i, 27], p[i, 28]
    E = x[i, 0]
    I = x[i, 1]
    W_e = x[i, 2]
    W_i = x[i, 3]
    ou = x[i, 4]
    Fe_ext = c[i, 0] + weight_noise * ou
    if Fe_ext * K_ext_e < 0.0:
        Fe_ext = 0.0
    Fi_ext = 0.0
    mu, sd, tv = _fluct(E, I, Fe_ext + ext_ex_ex, Fi_ext + ext_ex_in, W_e, Q_e, tau_e, E_e,
                        Q_i, tau_i, E_i, g_L, C_m, E_L_e, N_tot, p_e, p_i, g, K_ext_e, K_ext_i)
    dx[i, 0] = (_rate(mu, sd, tv, g_L, C_m, p, i, 29) - E) / T
    dx[i, 2] = -W_e / tau_w_e + b_e * E + a_e * (mu - E_L_e) / tau_w_e
    mu, sd, tv = _fluct(E, I, Fe_ext + ext_in_ex, Fi_ext + ext_in_in, W_i, Q_e, tau_e, E_e,
                        Q_i, tau_i, E_i, g_L, C_m, E_L_i, N_tot, p_e, p_i, g, K_ext_e, K_ext_i)
    dx[i, 1] = (_rate(mu, sd, tv, g_L, C_m, p, i, 39) - I) / T
    dx[i, 3] = -W_i / tau_w_i + b_i * I + a_i * (mu - E_L_i) / tau_w_i
    dx[i, 4] = -ou / tau_OU


#: The rate: the excitatory firing rate E (kHz) in Hz.
RATE = Observable("rate", "Hz", "excitatory firing rate, 1000 E", ("E",),
                  lambda E: 1000.0 * E, formula="1000*E", transfer="zerlaut")

MODEL = Model(
    name="zerlaut_first_order",
    doc=__doc__,
    state_variables=(
        StateVariable("E", "kHz", "firing rate of the excitatory population", 0.0,
                      (0.001, 0.25), (0.0, INF)),
        StateVariable("I", "kHz", "firing rate of the inhibitory population", 0.0,
                      (0.001, 0.25), (0.0, INF)),
        StateVariable("W_e", "pA", "adaptation current of the excitatory population", 0.0,
                      (0.0, 200.0)),
        # random initial ranges: TVB's [0, 0] for W_i and ou_drift, widened to a small
        # interval (a declared range is lo < hi)
        StateVariable("W_i", "pA", "adaptation current of the inhibitory population", 0.0,
                      (0.0, 1e-3)),
        StateVariable("ou_drift", "kHz", "Ornstein-Uhlenbeck drive (add noise to it)", 0.0,
                      (0.0, 1e-3)),
    ),
    parameters=(
        Parameter("g_L", 10.0, "nS", "leak conductance", gt=0),
        Parameter("E_L_e", -65.0, "mV", "leak reversal potential of excitatory cells"),
        Parameter("E_L_i", -65.0, "mV", "leak reversal potential of inhibitory cells"),
        Parameter("C_m", 200.0, "pF", "membrane capacitance", gt=0),
        Parameter("b_e", 60.0, "pA", "spike-triggered adaptation of excitatory cells"),
        Parameter("a_e", 4.0, "nS", "subthreshold adaptation of excitatory cells"),
        Parameter("b_i", 0.0, "pA", "spike-triggered adaptation of inhibitory cells"),
        Parameter("a_i", 0.0, "nS", "subthreshold adaptation of inhibitory cells"),
        Parameter("tau_w_e", 500.0, "ms", "adaptation time constant of excitatory cells", gt=0),
        Parameter("tau_w_i", 1.0, "ms", "adaptation time constant of inhibitory cells", gt=0),
        Parameter("E_e", 0.0, "mV", "excitatory reversal potential"),
        Parameter("E_i", -80.0, "mV", "inhibitory reversal potential"),
        Parameter("Q_e", 1.5, "nS", "excitatory quantal conductance"),
        Parameter("Q_i", 5.0, "nS", "inhibitory quantal conductance"),
        Parameter("tau_e", 5.0, "ms", "excitatory synaptic decay", gt=0),
        Parameter("tau_i", 5.0, "ms", "inhibitory synaptic decay", gt=0),
        Parameter("N_tot", 10000.0, "1", "number of cells", gt=0),
        Parameter("p_connect_e", 0.05, "1", "excitatory connection probability"),
        Parameter("p_connect_i", 0.05, "1", "inhibitory connection probability"),
        Parameter("g", 0.2, "1", "fraction of inhibitory cells"),
        Parameter("K_ext_e", 400.0, "1", "excitatory connections from the external population"),
        Parameter("K_ext_i", 0.0, "1", "inhibitory connections from the external population"),
        Parameter("T", 20.0, "ms", "time scale of the network activity", gt=0),
        Parameter("external_input_ex_ex", 0.0, "kHz", "external excitatory drive of E"),
        Parameter("external_input_ex_in", 0.0, "kHz", "external inhibitory drive of E"),
        Parameter("external_input_in_ex", 0.0, "kHz", "external excitatory drive of I"),
        Parameter("external_input_in_in", 0.0, "kHz", "external inhibitory drive of I"),
        Parameter("tau_OU", 5.0, "ms", "time constant of ou_drift", gt=0),
        Parameter("weight_noise", 10.5, "1", "weight of ou_drift in the excitatory input"),
    ) + tuple(Parameter(f"P_e_{k}", v, "V", f"coefficient {k} of the excitatory threshold "
                        "polynomial (TVB's P_e[%d])" % k) for k, v in enumerate(P_E))
      + tuple(Parameter(f"P_i_{k}", v, "V", f"coefficient {k} of the inhibitory threshold "
                        "polynomial (TVB's P_i[%d])" % k) for k, v in enumerate(P_I)),
    coupling_variables=("E",),
    default_coupling="linear",
    dfuns={(): dfun},
    observables={"rate": RATE},
    reference="Zerlaut et al., J. Comput. Neurosci. 44:45 (2018); TVB ZerlautAdaptationFirstOrder",
    extra={"tvb": {"class": "ZerlautAdaptationFirstOrder", "drop": ("S_i",),
                   "arrays": {"P_e": "P_e_", "P_i": "P_i_"},
                   "notes": {"S_i": "unused by the first-order equations; not declared",
                             "P_e": "the array is P_e_0 ... P_e_9 here",
                             "P_i": "the array is P_i_0 ... P_i_9 here"}}},
)
