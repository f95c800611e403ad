"""Zerlaut second-order (moment-closure) mean field: rates, covariances, adaptation.

TVB's ``ZerlautAdaptationSecondOrder``.

El Boustani & Destexhe's (2009) master equation closed at second order: besides the rates
``E``, ``I`` (kHz) the model carries the covariances ``C_ee``, ``C_ei``, ``C_ii`` of the
population activities (over a time bin ``T``, finite-size fluctuations of ``N_e = N_tot (1 − g)``
and ``N_i = N_tot g`` cells).  With ``F_e``, ``F_i`` the transfer function of
:mod:`cosim.models.zerlaut` (same parameters, same fitted threshold polynomials)::

    T dE/dt   = F_e − E + ½ (C_ee F_e,ee + C_ei (F_e,ei + F_e,ie) + C_ii F_e,ii)
    T dI/dt   = F_i − I + ½ (C_ee F_i,ee + C_ei (F_i,ei + F_i,ie) + C_ii F_i,ii)
    T dC_ee/dt = F_e (1/T − F_e) / N_e + (F_e − E)² + 2 C_ee F_e,e + 2 C_ei F_e,i − 2 C_ee
    T dC_ei/dt = (F_e − E)(F_i − I) + C_ee F_e,e + C_ei F_i,e + C_ei F_e,i + C_ii F_i,i − 2 C_ei
    T dC_ii/dt = F_i (1/T − F_i) / N_i + (F_i − I)² + 2 C_ii F_i,i + 2 C_ei F_i,e − 2 C_ii
    dW_p/dt   = −W_p / τ_w,p + b_p ν_p + a_p (μ_V,p − E_L,p) / τ_w,p
    d ou_drift/dt = −ou_drift / τ_OU

``F_p,x`` and ``F_p,xy`` are the first and second derivatives of ``F_p`` in the rates, taken
as TVB takes them: central differences with step ``h = 10⁻⁷`` kHz, the mixed ones nested,
each difference divided by the step *in Hz* (``2 h · 10³``, ``(h · 10³)²``), so ``F_p,x`` is
10⁻³ and ``F_p,xy`` 10⁻⁶ of the derivative in kHz.  These are TVB's equations as shipped
(tvb-library 2.x), kept for parity: in kHz units the derivative terms are scaled down by
those factors, and TVB's ``C_ei`` equation pairs ``C_ee`` with ``F_e,e`` and ``C_ii`` with
``F_i,i`` where the closure of El Boustani & Destexhe has ``F_i,e`` and ``F_e,i``.  With the
covariances at zero the rate and adaptation equations are those of ``zerlaut_first_order``.

Inputs: the excitatory drive of E is ``c + external_input_ex_ex + weight_noise · ou_drift``,
that of I is ``S_i c + external_input_in_ex + weight_noise · ou_drift`` (each set to 0 where
negative); the inhibitory drives are ``external_input_ex_in`` and ``external_input_in_in``;
``c`` is the long-range input, which reads ``E`` of the source regions.  ``E``, ``I`` are
kept ≥ 0 after every stage (TVB's boundaries).

References: S. El Boustani, A. Destexhe, Neural Comput. 21:46 (2009); Y. Zerlaut et al.,
J. Comput. Neurosci. 44:45 (2018); M. di Volo et al., Neural Comput. 31:653 (2019);
``tvb.simulator.models.ZerlautAdaptationSecondOrder`` (same names and defaults).
"""

from __future__ import annotations

from numba import njit

from . import zerlaut
from .base import Model, Parameter, StateVariable
from .zerlaut import _fluct, _rate

#: TVB's finite-difference step of the transfer-function derivatives (kHz).
DF = 1.0e-7
#: Index of S_i in the parameter row (after the first-order model's parameters).
_S_I = len(zerlaut.MODEL.parameters)
#: Offsets of the threshold polynomials P_e_0 and P_i_0 in the parameter row.
_PE, _PI = zerlaut.MODEL.parameter_names.index("P_e_0"), zerlaut.MODEL.parameter_names.index("P_i_0")


@njit(inline="always")
def _tf(fe, fi, fe_ext, fi_ext, W, E_L, p, i, k):
    """Transfer function F(fe, fi) of the population whose polynomial starts at p[i, k]."""
    g_L, C_m = p[i, 0], p[i, 3]
    mu, sd, tv = _fluct(fe, fi, fe_ext, fi_ext, W, p[i, 12], p[i, 14], p[i, 10], p[i, 13],
                        p[i, 15], p[i, 11], g_L, C_m, E_L, p[i, 16], p[i, 17], p[i, 18],
                        p[i, 19], p[i, 20], p[i, 21])
    return _rate(mu, sd, tv, g_L, C_m, p, i, k)


@njit(inline="always")
def _d_fe(fe, fi, fe_ext, fi_ext, W, E_L, p, i, k):
    return (_tf(fe + DF, fi, fe_ext, fi_ext, W, E_L, p, i, k)
            - _tf(fe - DF, fi, fe_ext, fi_ext, W, E_L, p, i, k)) / (2 * DF * 1e3)


@njit(inline="always")
def _d_fi(fe, fi, fe_ext, fi_ext, W, E_L, p, i, k):
    return (_tf(fe, fi + DF, fe_ext, fi_ext, W, E_L, p, i, k)
            - _tf(fe, fi - DF, fe_ext, fi_ext, W, E_L, p, i, k)) / (2 * DF * 1e3)


@njit(inline="always")
def _moments(fe, fi, fe_ext, fi_ext, W, E_L, p, i, k):
    """(F, F_e, F_i, F_ee, F_ei, F_ie, F_ii) in TVB's finite differences."""
    F = _tf(fe, fi, fe_ext, fi_ext, W, E_L, p, i, k)
    d_e = _d_fe(fe, fi, fe_ext, fi_ext, W, E_L, p, i, k)
    d_i = _d_fi(fe, fi, fe_ext, fi_ext, W, E_L, p, i, k)
    d_ee = (_tf(fe + DF, fi, fe_ext, fi_ext, W, E_L, p, i, k) - 2 * F
            + _tf(fe - DF, fi, fe_ext, fi_ext, W, E_L, p, i, k)) / ((DF * 1e3) ** 2)
    d_ii = (_tf(fe, fi + DF, fe_ext, fi_ext, W, E_L, p, i, k) - 2 * F
            + _tf(fe, fi - DF, fe_ext, fi_ext, W, E_L, p, i, k)) / ((DF * 1e3) ** 2)
    d_ei = (_d_fe(fe, fi + DF, fe_ext, fi_ext, W, E_L, p, i, k)
            - _d_fe(fe, fi - DF, fe_ext, fi_ext, W, E_L, p, i, k)) / (2 * DF * 1e3)
    d_ie = (_d_fi(fe + DF, fi, fe_ext, fi_ext, W, E_L, p, i, k)
            - _d_fi(fe - DF, fi, fe_ext, fi_ext, W, E_L, p, i, k)) / (2 * DF * 1e3)
    return F, d_e, d_i, d_ee, d_ei, d_ie, d_ii


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Zerlaut second-order derivatives of node ``i`` (see module docstring)."""
    g_L, E_L_e, E_L_i, C_m = p[i, 0], p[i, 1], p[i, 2], p[i, 3]
    b_e, a_e, b_i, a_i = p[i, 4], p[i, 5], p[i, 6], p[i, 7]
    tau_w_e, tau_w_i = p[i, 8], p[i, 9]
    N_tot, g, T = p[i, 16], p[i, 19], p[i, 22]
    ext_ex_ex, ext_ex_in, ext_in_ex, ext_in_in = p[i, 23], p[i, 24], p[i, 25], p[i, 26]
    tau_OU, weight_noise, S_i = p[i, 27], p[i, 28], p[i, _S_I]
    N_e = N_tot * (1 - g)
    N_i = N_tot * g
    E = x[i, 0]
    I = x[i, 1]
    C_ee = x[i, 2]
    C_ei = x[i, 3]
    C_ii = x[i, 4]
    W_e = x[i, 5]
    W_i = x[i, 6]
    ou = x[i, 7]
    # excitatory and inhibitory drives of E (…_e) and of I (…_i), TVB's order of sums
    exc_e = c[i, 0] + ext_ex_ex + weight_noise * ou
    if exc_e < 0.0:
        exc_e = 0.0
    exc_i = S_i * c[i, 0] + ext_in_ex + weight_noise * ou
    if exc_i < 0.0:
        exc_i = 0.0
    inh_e = ext_ex_in
    inh_i = ext_in_in
    Fe, Fe_e, Fe_i, Fe_ee, Fe_ei, Fe_ie, Fe_ii = _moments(E, I, exc_e, inh_e, W_e, E_L_e,
                                                          p, i, _PE)
    Fi, Fi_e, Fi_i, Fi_ee, Fi_ei, Fi_ie, Fi_ii = _moments(E, I, exc_i, inh_i, W_i, E_L_i,
                                                          p, i, _PI)
    dx[i, 0] = (Fe - E + .5 * C_ee * Fe_ee + .5 * C_ei * Fe_ei + .5 * C_ei * Fe_ie
                + .5 * C_ii * Fe_ii) / T
    dx[i, 1] = (Fi - I + .5 * C_ee * Fi_ee + .5 * C_ei * Fi_ei + .5 * C_ei * Fi_ie
                + .5 * C_ii * Fi_ii) / T
    dx[i, 2] = (Fe * (1. / T - Fe) / N_e + (Fe - E) ** 2 + 2. * C_ee * Fe_e
                + 2. * C_ei * Fe_i - 2. * C_ee) / T
    dx[i, 3] = ((Fe - E) * (Fi - I) + C_ee * Fe_e + C_ei * Fi_e + C_ei * Fe_i
                + C_ii * Fi_i - 2. * C_ei) / T
    dx[i, 4] = (Fi * (1. / T - Fi) / N_i + (Fi - I) ** 2 + 2. * C_ii * Fi_i
                + 2. * C_ei * Fi_e - 2. * C_ii) / T
    mu, sd, tv = _fluct(E, I, exc_e, inh_e, W_e, p[i, 12], p[i, 14], p[i, 10], p[i, 13],
                        p[i, 15], p[i, 11], g_L, C_m, E_L_e, N_tot, p[i, 17], p[i, 18], g,
                        p[i, 20], p[i, 21])
    dx[i, 5] = -W_e / tau_w_e + b_e * E + a_e * (mu - E_L_e) / tau_w_e
    mu, sd, tv = _fluct(E, I, exc_i, inh_i, W_i, p[i, 12], p[i, 14], p[i, 10], p[i, 13],
                        p[i, 15], p[i, 11], g_L, C_m, E_L_i, N_tot, p[i, 17], p[i, 18], g,
                        p[i, 20], p[i, 21])
    dx[i, 6] = -W_i / tau_w_i + b_i * I + a_i * (mu - E_L_i) / tau_w_i
    dx[i, 7] = -ou / tau_OU


_FIRST = {v.name: v for v in zerlaut.MODEL.state_variables}

MODEL = Model(
    name="zerlaut_second_order",
    doc=__doc__,
    state_variables=(
        _FIRST["E"],
        _FIRST["I"],
        StateVariable("C_ee", "kHz^2", "variance of the excitatory activity", 0.0,
                      (0.0, 0.5e-3)),
        StateVariable("C_ei", "kHz^2", "covariance of the excitatory and inhibitory activities",
                      0.0, (-0.5e-3, 0.5e-3)),
        StateVariable("C_ii", "kHz^2", "variance of the inhibitory activity", 0.0,
                      (0.0, 0.5e-3)),
        _FIRST["W_e"],
        _FIRST["W_i"],
        _FIRST["ou_drift"],
    ),
    # the first-order model's parameters, then S_i (the row layout dfun reads)
    parameters=zerlaut.MODEL.parameters + (
        Parameter("S_i", 1.0, "1", "scaling of the long-range input to the inhibitory "
                  "population relative to the excitatory one"),
    ),
    coupling_variables=("E",),
    default_coupling="linear",
    dfuns={(): dfun},
    observables={"rate": zerlaut.RATE},
    reference="El Boustani & Destexhe, Neural Comput. 21:46 (2009); Zerlaut et al., "
              "J. Comput. Neurosci. 44:45 (2018); TVB ZerlautAdaptationSecondOrder",
    extra={"tvb": {"class": "ZerlautAdaptationSecondOrder",
                   "arrays": {"P_e": "P_e_", "P_i": "P_i_"},
                   "notes": {"P_e": "the array is P_e_0 ... P_e_9 here",
                             "P_i": "the array is P_i_0 ... P_i_9 here"}}},
)
