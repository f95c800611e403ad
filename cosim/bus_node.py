"""The bus node: the delayed connectome bus and the bus-side halves of the adapters.

Rank 0 under MPI (or the one process) runs it.  Per window ``k`` it answers each coupled
part's ``INPUT`` from the bus history (:meth:`BusNode.input`), takes each part's exports
into the history (:meth:`BusNode.take`), and, once every part's output is in, turns the
summed spike counts of each spiking region into its afferent with the region's
spikes → rate adapter (:meth:`BusNode.finish`).  What a part sends and takes is what its
engine declares (:mod:`cosim.engines.base`); the node never asks for an engine type.
"""

from __future__ import annotations

import numpy as np

from adapters import SpikesToRate
from adapters.config import SpikesToRateSpec

from .bus import Bus, BusPart
from .engines.base import Export


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


class BusNode:
    """The bus of one run: one :class:`~cosim.bus.BusPart` per coupled engine partition."""

    def __init__(self, scenario, layout, plan):
        self.labels = scenario.connectome.region_labels
        self.bus = Bus(scenario.connectome, layout.steps, layout.window_steps, layout.n_afferent,
                       layout.read_ahead)
        self.parts: dict[tuple[str, int], BusPart] = {}
        self.exports: dict[str, Export] = {}
        for g in plan.groups:
            if g.name not in layout.coupled:
                continue
            eng = scenario.engines[g.name]
            self.exports[g.name] = eng.exports
            for p in range(g.n_parts):
                self.parts[(g.name, p)] = self.bus.add_part(
                    BusPart(g.name, p, eng.takes, eng.part_regions(p, g.n_parts)))
        self.bus.finalise()
        self.rates: dict[str, RegionRate] = {}
        for name, spec in layout.outputs_of.items():
            n = sum(len(r) for r in layout.spike_populations(scenario, name).values())
            self.rates[name] = RegionRate(spec, n, layout.bus_dt_ms)
        self._regions = {name: next(bp.regions for (n, _), bp in self.parts.items() if n == name)
                         for name in self.rates}
        self._counts: dict[str, np.ndarray] = {}
        #: latest spiking-region rates for live monitoring: engine → {region: Hz}
        self.live_rates: dict[str, dict[str, float]] = {}

    # -- set-up ---------------------------------------------------------------------
    def initial(self, key, msg: dict) -> None:
        """The ``INIT`` of part ``key``: its last ``initial_length()`` afferent samples."""
        if "afferent" not in msg:
            return
        aff = msg["afferent"]
        L = self.bus.initial_length()
        if aff.shape[0] < L:
            raise RuntimeError(f"engine {key[0]!r} exported {aff.shape[0]} initial samples, "
                               f"the bus needs {L}")
        self.bus.put_initial(self.parts[key].regions, aff[aff.shape[0] - L:])

    def begin(self, resume_state: dict | None) -> None:
        """After every ``INIT``: restore a checkpoint, or give each spiking region with a
        rate adapter its initial afferent (the map of 0 Hz)."""
        if resume_state is not None:
            self.restore(resume_state)
            return
        L = self.bus.initial_length()
        for name, adapter in self.rates.items():
            self.bus.put_initial(self._regions[name],
                                 np.full((L, self.bus.n_aff, 1), adapter.initial_afferent()))

    # -- per window -----------------------------------------------------------------
    def input(self, k: int, key) -> dict:
        part = self.parts.get(key)
        return {} if part is None else self.bus.input(k, part)

    def take(self, k: int, key, exports: dict) -> None:
        part = self.parts.get(key)
        if part is None:
            return
        if "afferent" in exports:
            self.bus.put_window(k, part.regions, exports["afferent"])
        elif "counts" in exports:
            c = self._counts.get(key[0])
            self._counts[key[0]] = exports["counts"] if c is None else c + exports["counts"]

    def finish(self, k: int) -> None:
        """Spiking regions' afferents of window ``k`` into the history (after every
        :meth:`take`); from here on the inputs of window ``k + 1`` can be sent."""
        for name, counts in self._counts.items():
            adapter = self.rates.get(name)
            if adapter is None:
                continue
            aff = adapter.afferent(counts)                                   # (S,)
            regions = self._regions[name]
            self.live_rates[name] = {self.labels[int(regions[0])]: adapter.last_rate_hz}
            self.bus.put_window(k, regions, aff.reshape(-1, 1, 1) * np.ones((1, self.bus.n_aff, 1)))
        self._counts.clear()

    def state(self) -> dict[str, np.ndarray]:
        st = {f"bus:{k}": v for k, v in self.bus.state().items()}
        for name, a in self.rates.items():
            st.update({f"rate:{name}:{k}": v for k, v in a.state().items()})
        return st

    def restore(self, st: dict[str, np.ndarray]) -> None:
        self.bus.restore(_sub(st, "bus:"))
        for name, a in self.rates.items():
            a.restore(_sub(st, f"rate:{name}:"))


def _sub(st: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in st.items() if k.startswith(prefix)}
