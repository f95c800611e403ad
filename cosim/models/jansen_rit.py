"""Jansen–Rit neural mass (Jansen & Rit 1995), in The Virtual Brain's parameterisation.

Three populations (pyramidal, excitatory and inhibitory interneurons), each a second-order
linear synapse driven by a sigmoid of the membrane potential of another population.  With
time in ms (rates in ms⁻¹, i.e. kHz)::

    S(v)  = 2 ν_max / (1 + exp(r (v0 − v)))                       [ms⁻¹]
    y0' = y3                 y3' = A a S(y1 − y2)                  − 2a y3 − a² y0
    y1' = y4                 y4' = A a (μ + a_2 J S(a_1 J y0) + c) − 2a y4 − a² y1
    y2' = y5                 y5' = B b  a_4 J S(a_3 J y0)          − 2b y5 − b² y2

``y1 − y2`` is the pyramidal membrane potential (the EEG-like output).  The long-range input
``c`` (a pulse density, ms⁻¹) enters the excitatory-interneuron equation; the coupling reads
``y1`` and ``y2`` of the source regions (TVB's ``cvar = [1, 2]``), and the usual coupling is
:data:`cosim.coupling.SIGMOIDAL_JANSEN_RIT`.

References: B. H. Jansen, V. G. Rit, Biol. Cybern. 73:357–366 (1995);
``tvb.simulator.models.JansenRit`` (same parameter names and defaults).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..params import Param
from .base import Model, Observable, Parameter, StateVariable
from .sigmoid import NU_MAX, R, V0, sigmoid, sigmoid_nb


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Jansen–Rit derivatives of node ``i`` (see module docstring; parameters as declared)."""
    A = p[i, 0]
    B = p[i, 1]
    a = p[i, 2]
    b = p[i, 3]
    v0 = p[i, 4]
    nu_max = p[i, 5]
    r = p[i, 6]
    J = p[i, 7]
    a_1 = p[i, 8]
    a_2 = p[i, 9]
    a_3 = p[i, 10]
    a_4 = p[i, 11]
    mu = p[i, 12]
    y0 = x[i, 0]
    y1 = x[i, 1]
    y2 = x[i, 2]
    y3 = x[i, 3]
    y4 = x[i, 4]
    y5 = x[i, 5]
    s_max = 2.0 * nu_max
    s_pyr = sigmoid_nb(y1 - y2, 0.0, s_max, r, v0)
    s_exc = sigmoid_nb(a_1 * J * y0, 0.0, s_max, r, v0)
    s_inh = sigmoid_nb(a_3 * J * y0, 0.0, s_max, r, v0)
    dx[i, 0] = y3
    dx[i, 1] = y4
    dx[i, 2] = y5
    dx[i, 3] = A * a * s_pyr - 2.0 * a * y3 - a * a * y0
    dx[i, 4] = A * a * (mu + a_2 * J * s_exc + c[i, 0]) - 2.0 * a * y4 - a * a * y1
    dx[i, 5] = B * b * (a_4 * J * s_inh) - 2.0 * b * y5 - b * b * y2


def rate_hz(y1, y2, e0, v0, r):
    """Firing rate of the pyramidal population ``S(y1 − y2)`` in Hz (``e0``: half the
    maximum rate, Hz; ``v0`` mV; ``r`` 1/mV; scalars or per-region arrays)."""
    with np.errstate(over="ignore"):               # exp → inf gives the limit rate 0
        return sigmoid(y1 - y2, 0.0, 2.0 * e0, r, v0)


#: The rate transfer: the model's sigmoid of the pyramidal potential, in Hz.  Its
#: parameters default to the engine's own nu_max (x 1000), v0 and r.
RATE = Observable(
    "rate", "Hz", "firing rate of the pyramidal population, S(y1 - y2) = 2 e0 / "
    "(1 + exp(r (v0 - (y1 - y2))))", ("y1", "y2"), rate_hz,
    parameters=(Param("e0", 1000.0 * NU_MAX.default, "Hz", "half of the maximum rate",
                      gt=0, derived="1000 x the engine's nu_max"),
                V0.with_(derived="the engine's v0"), R.with_(derived="the engine's r")),
    from_model=lambda p: {"e0": 1000.0 * np.asarray(p["nu_max"]), "v0": p["v0"], "r": p["r"]},
    formula="2*{e0}/(1+exp({r}*({v0}-(y1-y2))))",
    transfer="jansen_rit")

#: The EEG source: the pyramidal membrane potential.
EEG = Observable("eeg", "mV", "pyramidal membrane potential y1 - y2", ("y1", "y2"),
                 lambda y1, y2: y1 - y2, formula="y1 - y2")


MODEL = Model(
    name="jansen_rit",
    doc=__doc__,
    state_variables=(
        StateVariable("y0", "mV", "PSP of the pyramidal population", 0.0, (-1.0, 1.0)),
        StateVariable("y1", "mV", "PSP of the excitatory interneurons", 0.0, (-500.0, 500.0)),
        StateVariable("y2", "mV", "PSP of the inhibitory interneurons", 0.0, (-50.0, 50.0)),
        StateVariable("y3", "mV/ms", "time derivative of y0", 0.0, (-6.0, 6.0)),
        StateVariable("y4", "mV/ms", "time derivative of y1", 0.0, (-20.0, 20.0)),
        StateVariable("y5", "mV/ms", "time derivative of y2", 0.0, (-500.0, 500.0)),
    ),
    parameters=(
        Parameter("A", 3.25, "mV", "maximum amplitude of the EPSP (excitatory synaptic gain)"),
        Parameter("B", 22.0, "mV", "maximum amplitude of the IPSP (inhibitory synaptic gain)"),
        Parameter("a", 0.1, "1/ms", "reciprocal excitatory time constant"),
        Parameter("b", 0.05, "1/ms", "reciprocal inhibitory time constant"),
        V0,
        NU_MAX,
        R,
        Parameter("J", 135.0, "1", "average number of synapses between populations"),
        Parameter("a_1", 1.0, "1", "connectivity pyramidal -> excitatory interneurons (x J)"),
        Parameter("a_2", 0.8, "1", "connectivity excitatory interneurons -> pyramidal (x J)"),
        Parameter("a_3", 0.25, "1", "connectivity pyramidal -> inhibitory interneurons (x J)"),
        Parameter("a_4", 0.25, "1", "connectivity inhibitory interneurons -> pyramidal (x J)"),
        Parameter("mu", 0.22, "1/ms", "mean external input pulse density p(t)"),
    ),
    coupling_variables=("y1", "y2"),
    default_coupling="sigmoidal_jansen_rit",
    dfuns={(): dfun},
    observables={"rate": RATE, "eeg": EEG},
    reference="Jansen & Rit, Biol. Cybern. 73:357 (1995); TVB JansenRit",
    extra={"tvb": {"class": "JansenRit"}},
)
