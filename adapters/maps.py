"""Declared maps between a population rate (Hz) and a neural-mass coupling variable.

``linear``: ``y = gain · r + offset``.

``inverse_sigmoid`` (Jansen–Rit): the membrane-potential difference ``v`` whose JR sigmoid
``S(v) = 2 e0 / (1 + exp(r_slope (v0 − v)))`` equals the rate, so a spiking region can stand
in for a JR region in sigmoidal coupling.  Rates are converted from Hz to the sigmoid's
unit (1/ms) first and clipped into the open range ``(0, 2 e0)`` by ``eps`` (relative).

``sigmoid`` (Jansen–Rit, forward): ``r = S(v)`` in Hz — maps a JR coupling value to a
rate, for the rate → Poisson direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cosim.schema import Reader


@dataclass(frozen=True)
class RateMap:
    """A pointwise map; :meth:`__call__` applies it to an array."""

    kind: str = "linear"
    gain: float = 1.0
    offset: float = 0.0
    e0: float = 0.0025      # 1/ms, JR half maximal firing rate
    v0: float = 6.0         # mV, JR firing threshold
    r: float = 0.56         # 1/mV, JR sigmoid steepness
    eps: float = 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "linear":
            return self.gain * x + self.offset
        if self.kind == "sigmoid":
            return 1000.0 * 2.0 * self.e0 / (1.0 + np.exp(self.r * (self.v0 - x)))
        if self.kind == "inverse_sigmoid":
            rmax = 2.0 * self.e0
            q = np.clip(x / 1000.0, self.eps * rmax, (1.0 - self.eps) * rmax)
            return self.v0 - np.log(rmax / q - 1.0) / self.r
        raise ValueError(f"unknown map kind {self.kind!r}")


MAP_KINDS = ("linear", "sigmoid", "inverse_sigmoid")


def map_from_config(r: Reader) -> RateMap:
    """Read ``{type = "linear", gain = …, offset = …}`` or the JR forms from a table."""
    kind = r.string("type", "linear", choices=MAP_KINDS)
    if kind == "linear":
        m = RateMap("linear", gain=r.number("gain", 1.0), offset=r.number("offset", 0.0))
    else:
        m = RateMap(kind, e0=r.number("e0", 0.0025, gt=0), v0=r.number("v0", 6.0),
                    r=r.number("r", 0.56, gt=0))
    r.done()
    if not math.isfinite(m.gain):
        raise r.error("gain", "must be finite")
    return m
