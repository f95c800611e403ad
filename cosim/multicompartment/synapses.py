"""Conductance-based synapses: AMPA, GABA_A (NEURON ``Exp2Syn``) and NMDA with Mg²⁺ block.

Each receptor is a difference of exponentials (NEURON's ``Exp2Syn``)::

    g(t) = B − A,  dA/dt = −A/τ1,  dB/dt = −B/τ2,   (µS)
    on a spike of weight w:  A += w·f,  B += w·f,
    f = 1 / (exp(−tp/τ2) − exp(−tp/τ1)),  tp = τ1·τ2/(τ2 − τ1)·ln(τ2/τ1)

so a single event of weight ``w`` gives a conductance peaking at ``w`` µS.  The current is
``i = g·(v − e)`` (nA), for NMDA ``i = g·B(v)·(v − e)`` with the Jahr & Stevens (1990)
magnesium block ``B(v) = 1 / (1 + [Mg]/3.57 · exp(−0.062·v))`` ([Mg] in mM, v in mV).

Because the kinetics are linear in the conductance, all inputs of one receptor type on
one compartment share one (A, B) state: a "synapse" below is such a site
(cell, compartment, receptor); connections (with their own weight, delay and short-term
plasticity) point at sites.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .fastexp import fexp

#: Receptor defaults: rise and decay time constants (ms), reversal (mV), [Mg] (mM; NMDA).
RECEPTOR_DEFAULTS: dict[str, dict[str, float]] = {
    "AMPA": {"tau_rise_ms": 0.2, "tau_decay_ms": 2.0, "e_rev_mV": 0.0},
    "GABA_A": {"tau_rise_ms": 0.5, "tau_decay_ms": 8.0, "e_rev_mV": -70.0},
    "NMDA": {"tau_rise_ms": 2.0, "tau_decay_ms": 80.0, "e_rev_mV": 0.0, "mg_mM": 1.0},
}

#: Columns of the per-site parameter array used by the kernel.
SYN_PARAMS = ("decay_rise", "decay_decay", "factor", "e_rev_mV", "mg_over_3p57")
DEC1, DEC2, FACTOR, EREV, MGC = range(len(SYN_PARAMS))


def exp2_taus(tau_rise_ms: float, tau_decay_ms: float) -> tuple[float, float]:
    """NEURON Exp2Syn's guard: keep τ1 strictly below τ2 (ratio within [1e-9, 0.9999])."""
    tau1, tau2 = float(tau_rise_ms), float(tau_decay_ms)
    if tau1 / tau2 > 0.9999:
        tau1 = 0.9999 * tau2
    if tau1 / tau2 < 1e-9:
        tau1 = tau2 * 1e-9
    return tau1, tau2


def exp2_factor(tau_rise_ms: float, tau_decay_ms: float) -> float:
    """Normalisation ``f`` making the peak of ``B − A`` equal to the event weight."""
    tau1, tau2 = exp2_taus(tau_rise_ms, tau_decay_ms)
    tp = (tau1 * tau2) / (tau2 - tau1) * math.log(tau2 / tau1)
    return 1.0 / (-math.exp(-tp / tau1) + math.exp(-tp / tau2))


def site_params(receptor: dict[str, float], dt_ms: float) -> np.ndarray:
    """Kernel parameter row (:data:`SYN_PARAMS`) of one receptor at time step ``dt_ms``."""
    tau1, tau2 = exp2_taus(receptor["tau_rise_ms"], receptor["tau_decay_ms"])
    row = np.zeros(len(SYN_PARAMS))
    row[DEC1] = math.exp(-dt_ms / tau1)
    row[DEC2] = math.exp(-dt_ms / tau2)
    row[FACTOR] = exp2_factor(tau1, tau2)
    row[EREV] = receptor["e_rev_mV"]
    row[MGC] = receptor.get("mg_mM", 0.0) / 3.57
    return row


def mg_block(v_mV, mg_mM: float = 1.0):
    """Jahr–Stevens fraction of unblocked NMDA channels at ``v_mV`` (numpy)."""
    return 1.0 / (1.0 + mg_mM / 3.57 * np.exp(-0.062 * np.asarray(v_mV, dtype=float)))


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def syn_current(g, v, e_rev, mgc):
    """Current (nA, outward positive) and its derivative di/dv (µS) of one site."""
    if mgc > 0.0:
        blk = 1.0 / (1.0 + mgc * fexp(-0.062 * v))
        gb = g * blk
        i = gb * (v - e_rev)
        return i, gb + i * 0.062 * (1.0 - blk)
    return g * (v - e_rev), g
