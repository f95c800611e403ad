"""Kuramoto phase oscillator, TVB's ``Kuramoto`` model.

One phase ``θ`` (rad) per region::

    dθ/dt = ω + c

``c`` is the long-range input; with the ``kuramoto`` coupling
``c_i = G Σ_j w_ij sin(θ_j(t − d_ij) − θ_i(t))`` (:mod:`cosim.coupling`) this is the
delayed Kuramoto network of Cabral et al. (2011).  ``θ`` is not wrapped: it grows by
``ω`` per ms; ``sin θ`` and ``cos θ`` are the observable signals.

References: Y. Kuramoto, Lecture Notes in Physics 39:420 (1975); S. H. Strogatz,
Physica D 143:1 (2000); J. Cabral et al., NeuroImage 57:130 (2011);
``tvb.simulator.models.Kuramoto`` (same name and default).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .base import Model, Observable, Parameter, StateVariable


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """``dθ = ω + c`` for node ``i``."""
    dx[i, 0] = p[i, 0] + c[i, 0]


MODEL = Model(
    name="kuramoto",
    doc=__doc__,
    state_variables=(
        StateVariable("theta", "rad", "phase of the oscillation", 0.0, (0.0, 2.0 * math.pi)),
    ),
    parameters=(
        Parameter("omega", 1.0, "rad/ms", "natural angular frequency"),
    ),
    coupling_variables=("theta",),
    default_coupling="kuramoto",
    dfuns={(): dfun},
    observables={"eeg": Observable("eeg", "1", "sin(theta)", ("theta",), np.sin,
                                   formula="sin(theta)")},
    reference="Kuramoto (1975); Cabral et al., NeuroImage 57:130 (2011); TVB Kuramoto",
    extra={"tvb": {"class": "Kuramoto"}},
)
