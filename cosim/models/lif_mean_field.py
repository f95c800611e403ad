"""LIF mean field of an E/I network: the diffusion approximation's rate model (Siegert
transfer with synaptic filtering), optionally fluctuation-corrected.

Each region is a recurrent network of LIF neurons (τ_m, θ = ``v_th``, V_r = ``v_reset``,
τ_ref = ``t_ref``, NEST's ``iaf_psc_delta`` with delta synapses of weights ``J`` mV and
in-degrees ``K``) receiving Poisson input of total rate ``nu`` on synapses of ``J_ext``.  The
population rates obey the seed's differential–algebraic mean field with the synaptic filter
``τ_s`` on the rates that make the input (``s`` = E or I)::

    τ_s dr_s/dt = −r_s + Φ(μ_s(r), σ_s(r))
    μ_s = mu0 + τ_m (J_sE K_sE r_E + J_sI K_sI r_I + J_ext ν_s)
    σ_s² = τ_m (J_sE² K_sE r_E + J_sI² K_sI r_I + J_ext² ν_s)
    ν_E = nu_e + g_in c,   ν_I = nu_i      (rates in 1/ms inside, Hz in the state)

``r`` is the synaptically filtered rate (so ``μ`` is the filtered input of the seed's
``τ_s dμ/dt = −μ + J K r + I_ext``, exactly, as μ is linear in ``r``); at ``τ_s → 0`` it is
the algebraic ``r = Φ(μ(r), σ(r))``.  Φ is the Siegert function
(:mod:`cosim.models.siegert_kernel`; :func:`cosim.analysis.siegert`), whose fixed points
:func:`cosim.analysis.self_consistent_rates` finds.  ``c``, the long-range input, reads
``r_e`` of the source regions (Hz) and adds ``g_in c`` Hz to E's external input rate.

Option ``transfer``: ``"siegert"`` or ``"corrected"`` — the fluctuation correction
``E[Φ(μ + ξ)] ≈ Φ(μ) + ½ Φ''(μ) s_mu²`` for a Gaussian spread ``ξ`` of the mean input of
s.d. ``s_mu`` (mV) across the population (quenched heterogeneity), Φ'' by central
differences of 0.01 mV, clipped at 0.

Defaults: the stable E/I network of ``tests/test_population_density.py`` (≈ 26 / 23 Hz),
whose population-density simulation gives the same stationary rates.  Units: mV, ms, Hz.
"""

from __future__ import annotations

from numba import njit

from .base import INF, Model, Observable, Option, Parameter, StateVariable
from .siegert_kernel import siegert_per_ms

_H = 0.01       # mV, step of the central difference of Φ''


@njit(cache=True)
def _phi(mu, s2, tau, v_th, v_r, t_ref, corrected, s_mu):
    s = s2 ** 0.5 if s2 > 0.0 else 0.0
    r = siegert_per_ms(mu, s, tau, v_th, v_r, t_ref)
    if corrected:
        rp = siegert_per_ms(mu + _H, s, tau, v_th, v_r, t_ref)
        rm = siegert_per_ms(mu - _H, s, tau, v_th, v_r, t_ref)
        r += 0.5 * (rp - 2.0 * r + rm) / (_H * _H) * s_mu * s_mu
        if r < 0.0:
            r = 0.0
    return r


def _make_dfun(corrected):
    @njit
    def dfun(x, c, p, i, dx):
        tau_s, tau, v_th, v_r, t_ref, mu0 = p[i, 0], p[i, 1], p[i, 2], p[i, 3], p[i, 4], p[i, 5]
        j_ee, j_ei, j_ie, j_ii = p[i, 6], p[i, 7], p[i, 8], p[i, 9]
        k_ee, k_ei, k_ie, k_ii = p[i, 10], p[i, 11], p[i, 12], p[i, 13]
        j_x, nu_e, nu_i, g_in, s_mu = p[i, 14], p[i, 15], p[i, 16], p[i, 17], p[i, 18]
        re = x[i, 0] * 1e-3              # Hz → 1/ms
        ri = x[i, 1] * 1e-3
        ne = (nu_e + g_in * c[i, 0]) * 1e-3
        if ne < 0.0:
            ne = 0.0
        ni = nu_i * 1e-3
        mu_e = mu0 + tau * (j_ee * k_ee * re + j_ei * k_ei * ri + j_x * ne)
        s2_e = tau * (j_ee * j_ee * k_ee * re + j_ei * j_ei * k_ei * ri + j_x * j_x * ne)
        mu_i = mu0 + tau * (j_ie * k_ie * re + j_ii * k_ii * ri + j_x * ni)
        s2_i = tau * (j_ie * j_ie * k_ie * re + j_ii * j_ii * k_ii * ri + j_x * j_x * ni)
        fe = _phi(mu_e, s2_e, tau, v_th, v_r, t_ref, corrected, s_mu) * 1e3
        fi = _phi(mu_i, s2_i, tau, v_th, v_r, t_ref, corrected, s_mu) * 1e3
        dx[i, 0] = (fe - x[i, 0]) / tau_s
        dx[i, 1] = (fi - x[i, 1]) / tau_s
    return dfun


dfun_siegert = _make_dfun(False)
dfun_corrected = _make_dfun(True)

MODEL = Model(
    name="lif_mean_field",
    doc=__doc__,
    state_variables=(
        StateVariable("r_e", "Hz", "filtered rate of the excitatory population", 5.0,
                      (0.0, 50.0), (0.0, INF)),
        StateVariable("r_i", "Hz", "filtered rate of the inhibitory population", 5.0,
                      (0.0, 50.0), (0.0, INF)),
    ),
    parameters=(
        Parameter("tau_s", 5.0, "ms", "synaptic filter of the rates", gt=0),
        Parameter("tau_m", 20.0, "ms", "membrane time constant", gt=0),
        Parameter("v_th", 20.0, "mV", "threshold"),
        Parameter("v_reset", 10.0, "mV", "reset (< v_th)"),
        Parameter("t_ref", 2.0, "ms", "refractory period", ge=0),
        Parameter("mu0", 0.0, "mV", "E_L + tau_m I_e / C_m"),
        Parameter("J_ee", 0.1, "mV", "E -> E weight"),
        Parameter("J_ei", -0.45, "mV", "I -> E weight (negative: inhibitory)"),
        Parameter("J_ie", 0.1, "mV", "E -> I weight"),
        Parameter("J_ii", -0.45, "mV", "I -> I weight"),
        Parameter("K_ee", 400.0, "1", "E -> E in-degree", ge=0),
        Parameter("K_ei", 100.0, "1", "I -> E in-degree", ge=0),
        Parameter("K_ie", 400.0, "1", "E -> I in-degree", ge=0),
        Parameter("K_ii", 100.0, "1", "I -> I in-degree", ge=0),
        Parameter("J_ext", 0.2, "mV", "weight of the external Poisson input"),
        Parameter("nu_e", 5000.0, "Hz", "external input rate per E neuron (all synapses)", ge=0),
        Parameter("nu_i", 4800.0, "Hz", "external input rate per I neuron", ge=0),
        Parameter("g_in", 1.0, "Hz per input unit", "long-range input c -> E's external rate"),
        Parameter("s_mu", 0.0, "mV", "s.d. of the mean input across the population "
                  "(transfer = \"corrected\")", ge=0),
    ),
    coupling_variables=("r_e",),
    default_coupling="linear",
    dfuns={("siegert",): dfun_siegert, ("corrected",): dfun_corrected},
    options=(Option("transfer", ("siegert", "corrected"), "siegert",
                    "Siegert transfer, or with the fluctuation correction 1/2 Phi'' s_mu^2"),),
    observables={"rate": Observable("rate", "Hz", "rate of the excitatory population",
                                    ("r_e",))},
    reference="Siegert (1951); Amit & Brunel, Cereb. Cortex 7:237 (1997); Brunel, J. Comput. "
              "Neurosci. 8:183 (2000)",
)
