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

from cosim.coupling import MIDPOINT
from cosim.models.sigmoid import NU_MAX, R, inverse_sigmoid, sigmoid
from cosim.params import Param, section
from cosim.schema import Reader

MAP_KINDS = ("linear", "sigmoid", "inverse_sigmoid")

TYPE = Param("type", "linear", "", "the map", type="string", choices=MAP_KINDS)
GAIN = Param("gain", 1.0, "", "linear: y = gain r + offset")
OFFSET = Param("offset", 0.0, "", "linear: added after the gain")
#: The JR forms invert the sigmoidal coupling, so they default to its constants.
E0 = NU_MAX.with_(name="e0", doc="(inverse_)sigmoid: half of the maximum rate (the "
                  "coupling's cmax / 2)")
V0 = MIDPOINT.with_(name="v0", doc="(inverse_)sigmoid: potential of half-maximal rate (the "
                    "sigmoidal_jansen_rit coupling's midpoint)")
SLOPE = R.with_(doc="(inverse_)sigmoid: steepness")
EPS = 1e-6

MAP = section("adapters.<name>.map", "spikes_to_rate: rate (Hz) -> the afferent units the "
              "neural masses use (linear, or the Jansen-Rit sigmoid / its inverse)",
              (TYPE, GAIN, OFFSET, E0, V0, SLOPE))


@dataclass(frozen=True)
class RateMap:
    """A pointwise map; :meth:`__call__` applies it to an array."""

    kind: str = TYPE.default
    gain: float = GAIN.default
    offset: float = OFFSET.default
    e0: float = E0.default      # 1/ms, JR half maximal firing rate
    v0: float = V0.default      # mV, JR firing threshold
    r: float = SLOPE.default    # 1/mV, JR sigmoid steepness
    eps: float = EPS

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "linear":
            return self.gain * x + self.offset
        if self.kind == "sigmoid":
            return sigmoid(x, 0.0, 1000.0 * 2.0 * self.e0, self.r, self.v0)
        if self.kind == "inverse_sigmoid":
            rmax = 2.0 * self.e0
            q = np.clip(x / 1000.0, self.eps * rmax, (1.0 - self.eps) * rmax)
            return inverse_sigmoid(q, 0.0, rmax, self.r, self.v0)
        raise ValueError(f"unknown map kind {self.kind!r}")


def map_from_config(r: Reader) -> RateMap:
    """Read ``{type = "linear", gain = …, offset = …}`` or the JR forms from a table."""
    kind = r.param(TYPE)
    if kind == "linear":
        m = RateMap("linear", gain=r.param(GAIN), offset=r.param(OFFSET))
    else:
        m = RateMap(kind, e0=r.param(E0), v0=r.param(V0), r=r.param(SLOPE))
    r.done()
    if not math.isfinite(m.gain):
        raise r.error("gain", "must be finite")
    return m
