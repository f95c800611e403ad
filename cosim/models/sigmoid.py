"""The one sigmoid: Jansen–Rit's firing-rate transfer, shared by the model, the coupling,
the rate monitor and the adapter maps.

::

    S(v) = lo + (hi − lo) / (1 + exp(r (v0 − v)))

Jansen–Rit's model uses ``lo = 0, hi = 2 ν_max`` (``ν_max`` in 1/ms; half-maximal rate at
``v = v0``); TVB's ``SigmoidalJansenRit`` coupling uses ``lo = cmin, hi = cmax``.  The same
source serves numpy arrays (:func:`sigmoid`, plain Python) and numba kernels
(:data:`sigmoid_nb`, the same function compiled), so both give the same numbers.

Declared defaults (TVB's ``JansenRit``): :data:`NU_MAX`, :data:`V0`, :data:`R`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..params import Param

NU_MAX = Param("nu_max", 0.0025, "1/ms", "half of the maximum firing rate (S saturates at "
               "2 nu_max)", gt=0)
V0 = Param("v0", 5.52, "mV", "firing threshold: potential of half-maximal firing (TVB's "
           "JansenRit; Jansen & Rit 1995 used 6 mV)")
R = Param("r", 0.56, "1/mV", "steepness of the sigmoid", gt=0)


def sigmoid(v, lo, hi, r, v0):
    """``lo + (hi − lo) / (1 + exp(r (v0 − v)))`` (scalars or broadcasting arrays)."""
    return lo + (hi - lo) / (1.0 + np.exp(r * (v0 - v)))


def inverse_sigmoid(s, lo, hi, r, v0):
    """The ``v`` with ``sigmoid(v, lo, hi, r, v0) == s``, for ``lo < s < hi``."""
    return v0 - np.log((hi - lo) / (s - lo) - 1.0) / r


#: :func:`sigmoid` compiled for numba kernels (scalar arguments), inlined into its callers
#: with the kernels' error model (no division check).
sigmoid_nb = njit(inline="always", error_model="numpy")(sigmoid)
