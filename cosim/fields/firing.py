"""Firing functions ``S(u)`` of a neural field (dimensionless, in (0, 1)).

=========  ======================================  ====================================
kind       ``S(u)``                                slope ``S'(u)``
=========  ======================================  ====================================
logistic   ``1 / (1 + e^{−β(u−θ)})``               ``β S (1 − S)``; ``β/4`` at θ
erf        ``(1 + erf(β(u − θ))) / 2``             ``β/√π e^{−β²(u−θ)²}``; ``β/√π`` at θ
=========  ======================================  ====================================

``β`` is ``slope`` (1/unit of u), ``θ`` is ``threshold`` (unit of u).  The numba kernel
:func:`fire` evaluates either one in place (``kind`` 0: logistic, 1: erf) and returns the
sum of ``S`` in index order (the sheet's mean rate, summed in a fixed order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

KINDS = ("logistic", "erf")


@dataclass(frozen=True)
class Firing:
    kind: str
    slope: float
    threshold: float

    @property
    def code(self) -> int:
        return KINDS.index(self.kind)

    def value(self, u):
        x = self.slope * (np.asarray(u, dtype=np.float64) - self.threshold)
        if self.kind == "logistic":
            return 1.0 / (1.0 + np.exp(-x))
        from scipy.special import erf
        return 0.5 * (1.0 + erf(x))

    def derivative(self, u):
        x = self.slope * (np.asarray(u, dtype=np.float64) - self.threshold)
        if self.kind == "logistic":
            s = 1.0 / (1.0 + np.exp(-x))
            return self.slope * s * (1.0 - s)
        return self.slope / math.sqrt(math.pi) * np.exp(-x * x)


@njit(cache=True)
def fire(u, kind, slope, threshold, out):
    """``out[i] = S(u[i])``; returns ``Σ_i out[i]`` summed in index order."""
    acc = 0.0
    for i in range(u.size):
        x = slope * (u[i] - threshold)
        if kind == 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            s = 0.5 * (1.0 + math.erf(x))
        out[i] = s
        acc += s
    return acc
