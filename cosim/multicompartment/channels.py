"""Membrane mechanisms: Hodgkin–Huxley (NEURON's ``hh``) and the passive leak (``pas``).

Densities are S/cm² and reversal potentials mV (NEURON's units); the discretisation
(:mod:`.compartments`) multiplies densities by segment area to get µS per compartment.

``hh`` — Hodgkin & Huxley (1952) squid axon, exactly the kinetics of NEURON's
``hh.mod`` (without its rate table, i.e. ``usetable_hh = 0``)::

    i = gnabar·m³h·(v − ena) + gkbar·n⁴·(v − ek) + gl·(v − el)
    dx/dt = (x∞(v) − x) / τx(v),  x∞ = α/(α+β),  τx = 1 / (q10·(α+β)),
    q10 = 3^((celsius − 6.3)/10)
    αm = 0.1·vtrap(−(v+40), 10)   βm = 4·exp(−(v+65)/18)
    αh = 0.07·exp(−(v+65)/20)     βh = 1 / (exp(−(v+35)/10) + 1)
    αn = 0.01·vtrap(−(v+55), 10)  βn = 0.125·exp(−(v+65)/80)
    vtrap(x, y) = x / (exp(x/y) − 1)   (y·(1 − x/y/2) when |x/y| < 1e-6)

(rates in 1/ms, v in mV).  ``pas``: ``i = g·(v − e)``.

All six exponentials are computed from two calls of :func:`~.fastexp.fexp`:
with ``u = −(v+65)``, ``exp(u/10)``, ``exp(u/20)``, ``exp(u/80)`` are powers of
``exp(u/80)`` and the vtrap/βh exponentials are those times constants ``e^2.5, e, e^3``.
"""

from __future__ import annotations

import math

from numba import njit

from ..params import Param
from .fastexp import fexp

#: Parameters of each mechanism, declared once (NEURON's defaults; ena/ek are NEURON's
#: default ion reversal potentials of na and k).  Conductance densities are >= 0.
MECHANISMS: dict[str, tuple[Param, ...]] = {
    "hh": (Param("gnabar", 0.12, "S/cm²", "maximal Na+ conductance density", ge=0),
           Param("gkbar", 0.036, "S/cm²", "maximal K+ conductance density", ge=0),
           Param("gl", 0.0003, "S/cm²", "leak conductance density", ge=0),
           Param("el", -54.3, "mV", "leak reversal potential"),
           Param("ena", 50.0, "mV", "Na+ reversal potential"),
           Param("ek", -77.0, "mV", "K+ reversal potential")),
    "pas": (Param("g", 0.001, "S/cm²", "passive conductance density", ge=0),
            Param("e", -70.0, "mV", "passive reversal potential")),
}

#: ``{mechanism: {parameter: default}}`` (from :data:`MECHANISMS`).
MECHANISM_DEFAULTS: dict[str, dict[str, float]] = {
    m: {p.name: p.default for p in params} for m, params in MECHANISMS.items()}

_E1 = math.exp(1.0)
_E25 = math.exp(2.5)
_E3 = math.exp(3.0)


def hh_q10(celsius: float) -> float:
    """Temperature factor ``3^((celsius − 6.3)/10)`` of the HH rates."""
    return 3.0 ** ((celsius - 6.3) / 10.0)


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def _vtrap10(x, ex):
    """``x / (exp(x/10) − 1)`` given ``ex = exp(x/10)`` (NEURON's vtrap with y = 10)."""
    if abs(x * 0.1) < 1e-6:
        return 10.0 * (1.0 - x * 0.05)
    return x / (ex - 1.0)


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def hh_rates(v, q10):
    """HH steady states and rates at ``v`` (mV).

    Returns ``(minf, hinf, ninf, km, kh, kn)`` with ``kx = 1/τx = q10·(αx+βx)`` (1/ms).
    """
    u = -(v + 65.0)
    e80 = fexp(u * 0.0125)
    e40 = e80 * e80
    e20 = e40 * e40
    e10 = e20 * e20
    e18 = fexp(u * (1.0 / 18.0))
    am = 0.1 * _vtrap10(u + 25.0, e10 * _E25)
    bm = 4.0 * e18
    ah = 0.07 * e20
    bh = 1.0 / (e10 * _E3 + 1.0)
    an = 0.01 * _vtrap10(u + 10.0, e10 * _E1)
    bn = 0.125 * e80
    sm = am + bm
    sh = ah + bh
    sn = an + bn
    return am / sm, ah / sh, an / sn, q10 * sm, q10 * sh, q10 * sn


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def hh_gate_step(x, xinf, k, dt):
    """Exponential-Euler (NEURON ``cnexp``) update of one gate over ``dt`` at fixed v."""
    return x + (1.0 - fexp(-dt * k)) * (xinf - x)
