"""Montbrió–Pazó–Roxin mean field of quadratic integrate-and-fire neurons; TVB's
``MontbrioPazoRoxin``.

The exact (Ott–Antonsen) reduction of an infinite all-to-all network of QIF neurons with
Lorentzian-distributed excitabilities (centre ``η``, half width ``Δ``): population firing
rate ``r`` and mean membrane potential ``V``::

    dr/dt = (Δ / (π τ) + 2 V r) / τ
    dV/dt = (V² − π² τ² r² + η + J τ r + I + c_r c₁ + c_v c₂) / τ

``c₁``, ``c₂`` are the long-range inputs, which read ``r`` and ``V`` of the source regions
(TVB's ``cvar = [0, 1]``); ``c_r`` and ``c_v`` weigh them (rate coupling by default).
``r`` is kept ≥ 0 after every stage (TVB's state-variable boundary).  Dimensionless with
TVB's defaults (time read as ms, ``r`` in 1/ms when ``τ`` is a membrane time in ms).

References: E. Montbrió, D. Pazó, A. Roxin, Phys. Rev. X 5:021028 (2015);
``tvb.simulator.models.MontbrioPazoRoxin`` (same names and defaults; TVB's ``Gamma`` is
unused by its equations and not declared here).
"""

from __future__ import annotations

import math

from numba import njit

from .base import INF, Model, Observable, Parameter, StateVariable

_PI = math.pi
_PI2 = math.pi ** 2


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Montbrió–Pazó–Roxin derivatives of node ``i`` (see module docstring)."""
    tau = p[i, 0]
    I = p[i, 1]
    Delta = p[i, 2]
    J = p[i, 3]
    eta = p[i, 4]
    cr = p[i, 5]
    cv = p[i, 6]
    r = x[i, 0]
    V = x[i, 1]
    dx[i, 0] = 1.0 / tau * (Delta / (_PI * tau) + 2.0 * V * r)
    dx[i, 1] = 1.0 / tau * (V * V - _PI2 * tau * tau * r * r + eta + J * tau * r + I
                            + cr * c[i, 0] + cv * c[i, 1])


#: The rate: the population firing rate r (1/ms) in Hz.
RATE = Observable("rate", "Hz", "population firing rate, 1000 r", ("r",),
                  lambda r: 1000.0 * r, formula="1000*r", transfer="montbrio_pazo_roxin")

MODEL = Model(
    name="montbrio_pazo_roxin",
    doc=__doc__,
    state_variables=(
        StateVariable("r", "1/ms", "population firing rate", 0.0, (0.0, 2.0), (0.0, INF)),
        StateVariable("V", "1", "mean membrane potential", -2.0, (-2.0, 1.5)),
    ),
    parameters=(
        Parameter("tau", 1.0, "ms", "membrane time constant", gt=0),
        Parameter("I", 0.0, "1", "external current"),
        Parameter("Delta", 1.0, "1", "half width of the Lorentzian excitability distribution",
                  gt=0),
        Parameter("J", 15.0, "1", "mean synaptic weight (recurrent coupling)"),
        Parameter("eta", -5.0, "1", "centre of the excitability distribution"),
        Parameter("cr", 1.0, "1", "weight of the long-range input from r"),
        Parameter("cv", 0.0, "1", "weight of the long-range input from V"),
    ),
    coupling_variables=("r", "V"),
    default_coupling="linear",
    dfuns={(): dfun},
    observables={"rate": RATE},
    reference="Montbrió, Pazó & Roxin, Phys. Rev. X 5:021028 (2015); TVB MontbrioPazoRoxin",
    extra={"tvb": {"class": "MontbrioPazoRoxin", "drop": ("Gamma",),
                   "notes": {"Gamma": "unused by TVB's equations; not declared"}}},
)
