"""The bus-side half of a spikes → rate adapter, :class:`RegionRate`.

There is no central bus node any more: the bus is distributed over the parts
(:mod:`cosim.exchange`), and a spiking region's :class:`RegionRate` runs on the region's
first part, which sums the spike counts of the region's parts and sends the afferent to
the region's readers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from adapters import SpikesToRate
from adapters.config import SpikesToRateSpec
from adapters.spikes_to_rate import _filter


class RegionRate:
    """Bus-side half of a spikes → rate adapter: a spiking region's pooled population rate
    → its afferent on the bus."""

    def __init__(self, spec: SpikesToRateSpec, n_cells: int, bin_ms: float):
        self.spec = spec
        self.conv = c = SpikesToRate({"pooled": np.arange(n_cells)}, bin_ms, spec.kernel,
                                     spec.tau_ms)
        self._rate = np.zeros(0)             # the last window's pooled rate (Hz)
        # SpikesToRate.from_counts of the pooled counts, in one kernel call: the same
        # divisor (count / (N · bin / 1000) Hz) and filter, so the same numbers
        self._divisor = float(c.sizes[0] * (c.bin_ms / 1000.0))
        self._h_over_tau = c.bin_ms / c.tau_ms

    def initial_afferent(self) -> float:
        return float(self.spec.map(np.array([0.0]))[0])

    def afferent(self, counts: np.ndarray) -> np.ndarray:
        """``counts`` (S, n_populations) summed over parts → afferent (S,)."""
        counts = np.asarray(counts, dtype=np.int64)
        rate = np.empty(counts.shape[0])
        c = self.conv
        _pooled_rate(counts, self._divisor, c._kind, c._a, self._h_over_tau, c._y, c._z, rate)
        self._rate = rate
        return self.spec.map(rate)

    def afferent_block(self, counts: np.ndarray, width: int) -> np.ndarray:
        """:meth:`afferent` as the block the bus carries, ``(S, width, 1)`` (the afferent
        in each of ``width`` variables); a linear map in the same kernel call — the same
        numbers (``gain · r + offset``, rounded twice as numpy does)."""
        m = self.spec.map
        if m.kind != "linear":
            return self.afferent(counts).reshape(-1, 1, 1) * np.ones((1, width, 1))
        counts = np.asarray(counts, dtype=np.int64)
        rate = np.empty(counts.shape[0])
        out = np.empty((counts.shape[0], width, 1))
        c = self.conv
        _pooled_afferent(counts, self._divisor, c._kind, c._a, self._h_over_tau, c._y, c._z,
                         float(m.gain), float(m.offset), rate, out)
        self._rate = rate
        return out

    @property
    def last_rate_hz(self) -> float:
        """The last window's mean pooled rate (Hz), computed when a live monitor asks."""
        r = self._rate
        # = r.mean(): numpy's mean is this sum over the size
        return float(np.add.reduce(r)) / r.size if r.size else 0.0

    def state(self) -> dict:
        return self.conv.state()

    def restore(self, state: dict) -> None:
        self.conv.restore(state)


@njit(cache=True)
def _pooled_rate(counts, divisor, kind, a, h_over_tau, y, z, out):
    """``out[n]`` = the filtered rate (Hz) of ``Σ_p counts[n, p]`` spikes (bin ``n``)."""
    x = np.empty((counts.shape[0], 1))
    for n in range(counts.shape[0]):
        total = 0
        for p in range(counts.shape[1]):
            total += counts[n, p]
        x[n, 0] = total / divisor
    _filter(x, kind, a, h_over_tau, y, z)
    for n in range(x.shape[0]):
        out[n] = x[n, 0]


@njit(cache=True)
def _pooled_afferent(counts, divisor, kind, a, h_over_tau, y, z, gain, offset, rate, out):
    """:func:`_pooled_rate` into ``rate``, then ``out[n, :, 0] = gain · rate[n] + offset``."""
    _pooled_rate(counts, divisor, kind, a, h_over_tau, y, z, rate)
    for n in range(rate.shape[0]):
        v = gain * rate[n] + offset
        for i in range(out.shape[1]):
            out[n, i, 0] = v
