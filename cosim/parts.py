"""An engine partition as the runtime drives it: bus messages in, an ``advance`` call, bus
messages out — the same code in one process and on an MPI rank.

What crosses the bus follows the engine's declarations (:mod:`cosim.engines.base`):

* ``Take.SOURCES``: the input ``sources`` goes to ``advance`` as it is;
* ``Take.DRIVE``: the input ``drive`` ``(S, n_aff)`` goes to ``advance``; the part-side
  halves of the region's rate → Poisson adapters turn it into events on the partition's own
  input lines (``inputs["events"]``), from counter-based streams keyed by input line;
* ``Export.AFFERENT``: ``exports["afferent"]`` goes to the bus as it is;
* ``Export.SPIKE_COUNTS``: the partition's spikes are counted per bus bin and population
  (``counts`` ``(S, n_populations)``, int64); the region's first part sums the parts' counts (exact) and
  runs the bus-side half of the spikes → rate adapter.

``step`` returns ``(exports, records, compute_seconds)``.  ``link``: the part's end of the
distributed bus (:class:`cosim.exchange.PartLink`, ``None`` off the bus), which keeps the
history the part reads; it is part of the part's checkpoint state (``bus/…``).
"""

from __future__ import annotations

import time

import numpy as np

from adapters import RateToPoisson
from adapters.spikes_to_rate import count_spikes

from .engines.base import Engine, Export, Take
from .rng import Streams


class Part:
    """Partition ``key = (engine name, part index)`` of an engine (built on its own rank).

    ``layout``: the scenario's :class:`~cosim.coupling_layout.CouplingLayout`, or ``None``
    when the engine is not coupled through the bus; ``populations``: name → gids whose spikes
    are counted (column order), for ``Export.SPIKE_COUNTS``.
    """

    def __init__(self, engine: Engine, key: tuple[str, int], *, coupled: bool, seed: Streams | int = 0,
                 bus_dt_ms: float = 0.0, rate_inputs=(), populations: dict | None = None,
                 initial_length: int = 0):
        self.engine = engine
        self.key = key
        self.is_coupled = bool(coupled)
        self.takes = engine.takes if coupled else Take.NOTHING
        self.exports = engine.exports if coupled else Export.NOTHING
        self.bus_dt_ms = float(bus_dt_ms)
        self.initial_length = int(initial_length)
        self.generators = []
        for spec in rate_inputs if coupled else ():
            lines = engine.local_input_lines(spec.input)
            gen = RateToPoisson(lines, seed, engine.name, spec.name, spec.correlation)
            self.generators.append((spec, gen))
        self.link = None
        self._pop_of_gid = None
        if self.exports is Export.SPIKE_COUNTS:
            top = max(r.stop for r in engine.populations().values())
            self._pop_of_gid = np.full(top, -1, dtype=np.int64)
            for p, gids in enumerate(populations.values()):
                self._pop_of_gid[gids.start:gids.stop] = p
            self._n_pops = len(populations)

    def build(self) -> None:
        if self.is_coupled:
            self.engine.coupled()
        self.engine.build()

    def initial(self) -> dict:
        """``INIT`` payload: the initial afferent history of an afferent exporter."""
        return (self.engine.initial(self.initial_length) if self.exports is Export.AFFERENT
                else {})

    def step(self, k: int, t0: float, t1: float, inputs: dict):
        tic = time.perf_counter()
        out = self.engine.advance(t0, t1, self._engine_inputs(t0, inputs))
        if self.exports is Export.AFFERENT:
            exports = {"afferent": out.exports["afferent"]}
        elif self.exports is Export.SPIKE_COUNTS:
            exports = {"counts": self._counts(t0, t1, *out.exports["spikes"])}
        else:
            exports = {}
        return exports, out.records, time.perf_counter() - tic

    def _engine_inputs(self, t0: float, inputs: dict) -> dict:
        if self.takes is Take.SOURCES:
            src = inputs.get("sources")
            return {"sources": src} if src is not None and src.size else {}
        if self.takes is Take.DRIVE:
            drive = inputs["drive"]
            out = {"drive": drive}
            if self.generators:
                lines, times = [], []
                for spec, gen in self.generators:
                    # (a negative rate counts as 0: the generator's own rule)
                    ln, tt = gen.generate(t0, spec.gain * drive[:, 0] + spec.offset, self.bus_dt_ms)
                    lines.append(ln)
                    times.append(tt)
                out["events"] = (np.concatenate(lines), np.concatenate(times))
            return out
        return {}

    def _counts(self, t0: float, t1: float, gids, times) -> np.ndarray:
        """Spikes per bus bin and population (:func:`adapters.spikes_to_rate.spike_bins`:
        bin ``b`` holds ``t ∈ (t0 + b·bin, t0 + (b+1)·bin]``)."""
        n_bins = int(round((t1 - t0) / self.bus_dt_ms))
        counts, _ = count_spikes(np.asarray(gids, dtype=np.int64), np.asarray(times, dtype=np.float64),
                                 t0, self.bus_dt_ms, n_bins, self._pop_of_gid, self._n_pops)
        return counts

    def state(self) -> dict:
        st = {f"engine/{k}": v for k, v in self.engine.state().items()}
        for spec, gen in self.generators:
            st.update({f"poisson/{spec.name}/{k}": v for k, v in gen.state().items()})
        if self.link is not None:
            st.update({f"bus/{k}": v for k, v in self.link.state().items()})
        return st

    def restore(self, state: dict) -> None:
        self.engine.restore({k[7:]: v for k, v in state.items() if k.startswith("engine/")})
        for spec, gen in self.generators:
            pre = f"poisson/{spec.name}/"
            gen.restore({k[len(pre):]: v for k, v in state.items() if k.startswith(pre)})
        if self.link is not None:
            self.link.restore({k[4:]: v for k, v in state.items() if k.startswith("bus/")})


def make_part(scenario, layout, plan, key: tuple[str, int], exchange=None, pattern=None) -> Part:
    """Describe → partition → :class:`Part`, on the rank that runs ``key`` (not built);
    ``pattern``: the distributed bus's (:func:`cosim.exchange.exchange_pattern`)."""
    part = _make_part(scenario, layout, plan, key, exchange)
    if part.is_coupled:
        from .exchange import make_link

        part.link = make_link(scenario, layout, pattern, key)
    return part


def _make_part(scenario, layout, plan, key: tuple[str, int], exchange=None) -> Part:
    name, p = key
    engine = scenario.engines[name].partition(p, plan.group(name).n_parts, exchange)
    coupled = layout.active(plan) and name in layout.coupled
    if not coupled:
        return Part(engine, key, coupled=False)
    pops = (layout.spike_populations(scenario, name)
            if engine.exports is Export.SPIKE_COUNTS else None)
    return Part(engine, key, coupled=True, seed=Streams(scenario.simulation.seed),
                bus_dt_ms=layout.bus_dt_ms, rate_inputs=layout.inputs_of.get(name, ()),
                populations=pops, initial_length=layout.initial_length(scenario.connectome))
