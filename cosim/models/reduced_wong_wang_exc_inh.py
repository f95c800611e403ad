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

Feedback inhibition control (option ``fic = "analytic"``, Deco et al. 2014): ``J_i`` is
set per region so that every region's excitatory rate is ``fic_rate`` (3 Hz) at the
network's fixed point.  Deco et al. tuned ``J_i`` by iterating simulations; here it is the
fixed point solved directly (:func:`fic_j_i`): with every region at ``H_e = r``,
``S_e* = γ_e τ_e r / (1 + γ_e τ_e r)``, the input ``c_i = G S_e* Σ_j w_ij (+ offset)``,
``I_e* = H_e⁻¹(r)``, ``S_i*`` the root of ``S_i / τ_i = γ_i H_i(I_i(S_i))``, and
``J_i = (W_e I_o + w_p J_N S_e* + J_N c_i + I_ext − I_e*) / S_i*``.  It needs the
``linear`` or ``scaling`` coupling; the rows ``Σ_j w_ij`` are over the whole connectome
(regions of other engines assumed at the same fixed point).  The fixed point is not always
stable: on connectivity_76 (raw weights) it attracts for ``G = 0.02`` (tested), while for
``G ≥ 0.05`` the network leaves it for the high-activity state — Deco et al.'s iterative
tuning has the same limit; check the recorded rates.

References: G. Deco, A. Ponce-Alvarez, P. Hagmann, G. L. Romani, D. Mantini,
M. Corbetta, J. Neurosci. 34:7886 (2014); ``tvb.simulator.models.ReducedWongWangExcInh``
(same names and defaults; its ``G`` is the coupling's).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..errors import CosimError
from .base import Model, Observable, Option, Parameter, StateVariable


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

FIC_RATE = Parameter("fic_rate", 3.0, "Hz", "target excitatory rate of feedback inhibition "
                     "control (option fic)", gt=0)


def _h_np(u, d):
    u = np.asarray(u, dtype=float)
    small = np.abs(d * u) < 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        h = u / -np.expm1(-d * u)
    return np.where(small, 1.0 / d + 0.5 * u, h)


def _root(f, lo, hi, n=200):
    """Bisection of an increasing ``f`` on ``[lo, hi]`` (vectorised, to double precision)."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(n):
        mid = 0.5 * (lo + hi)
        up = f(mid) > 0
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return 0.5 * (lo + hi)


def fic_j_i(p: dict, input_c: np.ndarray, rate_hz=FIC_RATE.default) -> np.ndarray:
    """``J_i`` per region (nA) that puts every region at excitatory rate ``rate_hz``;
    ``p``: parameter arrays by name (per region), ``input_c``: the long-range input
    ``c_i`` at the fixed point (see the module docstring for the steps)."""
    r = np.asarray(rate_hz, dtype=float)
    ge_te = p["gamma_e"] * p["tau_e"]
    S_e = ge_te * r / (1.0 + ge_te * r)
    u_e = _root(lambda u: _h_np(u, p["d_e"]) - r, np.full_like(S_e, -1e3), np.full_like(S_e, 1e3))
    I_e = (u_e + p["b_e"]) / p["a_e"]
    cc = p["J_N"] * input_c

    def balance(S_i):   # increasing in S_i: S_i / τ_i − γ_i H_i(I_i(S_i))
        u_i = p["a_i"] * (p["J_N"] * S_e - S_i + p["W_i"] * p["I_o"] + p["lamda"] * cc) - p["b_i"]
        return S_i / p["tau_i"] - p["gamma_i"] * _h_np(u_i, p["d_i"])

    S_i = _root(balance, np.zeros_like(S_e), np.ones_like(S_e))
    return (p["W_e"] * p["I_o"] + p["w_p"] * p["J_N"] * S_e + cc + p["I_ext"] - I_e) / S_i


def prepare(model, options, params, weights, coupling, coupling_params):
    """Engine hook: with ``fic = "analytic"``, replace ``J_i`` by :func:`fic_j_i`.
    ``weights`` (engine region, connectome region) are the engine's rows of the whole
    connectome; ``params`` (region, parameter); ``coupling_params`` (region, parameter)."""
    if dict(zip((o.name for o in model.options), options)).get("fic") != "analytic":
        return params
    if coupling.name not in ("linear", "scaling"):
        raise CosimError(f"feedback inhibition control needs the linear or scaling coupling, "
                         f"not {coupling.name}", key="options.fic")
    names = model.parameter_names
    p = {k: params[:, j] for j, k in enumerate(names)}
    r = p["fic_rate"]
    ge_te = p["gamma_e"] * p["tau_e"]
    S_e = ge_te * r / (1.0 + ge_te * r)
    G = coupling_params[:, 0]
    offset = coupling_params[:, 1] if coupling.name == "linear" else 0.0
    c = G * S_e * weights.sum(axis=1) + offset
    out = params.copy()
    out[:, names.index("J_i")] = fic_j_i(p, c, r)
    if not np.isfinite(out[:, names.index("J_i")]).all():
        raise CosimError("feedback inhibition control found no fixed point", key="options.fic")
    return out


#: The activity BOLD reads by default: the excitatory NMDA gating S_e, the BOLD input of
#: Deco et al. (2014).  (The pool's rate H(x_e) needs the coupling input, not a state.)
RATE = Observable("rate", "", "activity: the NMDA gating S_e of the excitatory pool (Deco "
                  "et al. 2014's BOLD input)", ("S_e",))

MODEL = Model(
    name="reduced_wong_wang_exc_inh",
    doc=__doc__,
    state_variables=(
        StateVariable("S_e", "1", "NMDA gating of the excitatory pool", 0.0, (0.0, 1.0),
                      (0.0, 1.0)),
        StateVariable("S_i", "1", "GABA gating of the inhibitory pool", 0.0, (0.0, 1.0),
                      (0.0, 1.0)),
    ),
    parameters=PARAMETERS + (FIC_RATE,),
    coupling_variables=("S_e",),
    default_coupling="linear",
    dfuns={("none",): dfun, ("analytic",): dfun},
    options=(Option("fic", ("none", "analytic"), "none", "feedback inhibition control: "
                    "\"analytic\" sets J_i per region for an excitatory rate of fic_rate "
                    "(Deco et al. 2014)"),),
    observables={"rate": RATE},
    reference="Deco et al., J. Neurosci. 34:7886 (2014); TVB ReducedWongWangExcInh",
    extra={"prepare": prepare,
           "tvb": {"class": "ReducedWongWangExcInh", "drop": ("G",),
                   "notes": {"G": "the global coupling is the coupling's G here "
                                  "([engines.NAME.coupling] G = TVB's model G x coupling a)"}}},
)
