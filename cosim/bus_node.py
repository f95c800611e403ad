"""The bus-side half of a spikes → rate adapter, :class:`RegionRate`.

There is no central bus node any more: the bus is distributed over the parts
(:mod:`cosim.exchange`), and a spiking region's :class:`RegionRate` runs on the region's
first part, which sums the spike counts of the region's parts and sends the afferent to
the region's readers.
"""

from __future__ import annotations

import numpy as np

from adapters import SpikesToRate
from adapters.config import SpikesToRateSpec


class RegionRate:
    """Bus-side half of a spikes → rate adapter: a spiking region's pooled population rate
    → its afferent on the bus."""

    def __init__(self, spec: SpikesToRateSpec, n_cells: int, bin_ms: float):
        self.spec = spec
        self.conv = SpikesToRate({"pooled": np.arange(n_cells)}, bin_ms, spec.kernel, spec.tau_ms)
        self.last_rate_hz = 0.0

    def initial_afferent(self) -> float:
        return float(self.spec.map(np.array([0.0]))[0])

    def afferent(self, counts: np.ndarray) -> np.ndarray:
        """``counts`` (S, n_populations) summed over parts → afferent (S,)."""
        pooled = np.asarray(counts).sum(axis=1, keepdims=True)
        rate = self.conv.from_counts(pooled)[:, 0]
        self.last_rate_hz = float(rate.mean()) if rate.size else 0.0
        return self.spec.map(rate)

    def state(self) -> dict:
        return self.conv.state()

    def restore(self, state: dict) -> None:
        self.conv.restore(state)
