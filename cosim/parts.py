"""Engine parts as the runtime drives them: one object per (engine, partition).

A part turns bus messages into an engine's ``advance`` call and its window output back into
bus messages, so the same code runs in one process and on MPI ranks:

:class:`NeuralMassPart`
    in: ``sources`` — external afferent samples for its delay ring (see :mod:`cosim.bus`);
    out: ``afferent`` ``(S, n_aff, n_regions)`` for the bus.
:class:`SpikingPart`
    in: ``drive`` ``(S, n_aff)`` — the region's delayed weighted input per bus step, turned
    by its rate → Poisson adapters into events on the part's own input lines; out:
    ``counts`` ``(S, n_populations)`` — spikes of the part's cells per bus bin (the bus sums
    the parts' counts and runs the spikes → rate adapter).
:class:`PlainPart`
    an engine that is not coupled through the bus.

``step`` returns ``(exports, records, compute_seconds)``.
"""

from __future__ import annotations

import time

import numpy as np

from adapters import RateToPoisson


class PlainPart:
    """An engine with no bus traffic (e.g. the only engine of a scenario)."""

    kind = "plain"

    def __init__(self, engine):
        self.engine = engine
        self.name = engine.name

    def build(self) -> None:
        self.engine.build()

    def initial(self) -> dict:
        return {}

    def step(self, k: int, t0: float, t1: float, inputs: dict):
        tic = time.perf_counter()
        out = self.engine.advance(t0, t1, {})
        return {}, out.records, time.perf_counter() - tic

    def state(self) -> dict:
        return self.engine.state()

    def restore(self, state: dict) -> None:
        self.engine.restore(state)


class NeuralMassPart(PlainPart):
    """A neural-mass engine coupled through the bus."""

    kind = "neural_mass"

    def __init__(self, engine):
        super().__init__(engine)
        engine.bus = True          # external sources in its delay ring; afferent exports
        self.regions = np.asarray(engine.region_indices, dtype=np.int64)

    def initial(self) -> dict:
        return {"afferent": np.ascontiguousarray(self.engine.initial_afferent())}

    def step(self, k, t0, t1, inputs):
        tic = time.perf_counter()
        src = inputs.get("sources")
        out = self.engine.advance(t0, t1, {"sources": src} if src is not None and src.size else {})
        return ({"afferent": out.exports["afferent"]}, out.records, time.perf_counter() - tic)


class SpikingPart(PlainPart):
    """One partition of a multicompartment engine standing for a connectome region.

    ``inputs``: the :class:`~adapters.config.RateToPoissonSpec` of the engine;
    ``populations``: names whose spikes are counted (column order of ``counts``).
    """

    kind = "spiking"

    def __init__(self, engine, inputs, seed: int, bus_dt_ms: float, populations):
        super().__init__(engine)
        self.regions = np.asarray(engine.region_indices, dtype=np.int64)
        self.bus_dt_ms = float(bus_dt_ms)
        self.steps_per_bin = int(round(self.bus_dt_ms / engine.dt_ms))
        self.populations = tuple(populations)
        self._pop_of_gid = np.full(engine.n_cells, -1, dtype=np.int64)
        for p, name in enumerate(self.populations):
            r = engine.groups[name]
            self._pop_of_gid[r.start:r.stop] = p
        self.generators = []
        for spec in inputs:
            lines = engine.local_input_lines(spec.input)
            gen = RateToPoisson(lines, seed, engine.name, spec.name, spec.correlation)
            self.generators.append((spec, gen))

    def step(self, k, t0, t1, inputs):
        tic = time.perf_counter()
        drive = inputs.get("drive")
        lines, times = [], []
        for spec, gen in self.generators:
            rate = np.maximum(0.0, spec.gain * drive[:, 0] + spec.offset)
            ln, tt = gen.generate(t0, rate, self.bus_dt_ms)
            lines.append(ln)
            times.append(tt)
        events = (np.concatenate(lines) if lines else np.zeros(0, np.int64),
                  np.concatenate(times) if times else np.zeros(0))
        out = self.engine.advance(t0, t1, {"events": events})
        gids, ts = out.exports["spikes"]
        n_bins = int(round((t1 - t0) / self.bus_dt_ms))
        counts = np.zeros((n_bins, len(self.populations)), dtype=np.int64)
        if len(gids):
            # a spike stamped t = (n+1)·dt happened during step n: times lie in (t0, t1]
            step = np.rint(np.asarray(ts) / self.engine.dt_ms).astype(np.int64)
            step0 = int(round(t0 / self.engine.dt_ms))
            b = (step - step0 - 1) // self.steps_per_bin
            p = self._pop_of_gid[np.asarray(gids, dtype=np.int64)]
            keep = p >= 0
            np.add.at(counts, (b[keep], p[keep]), 1)
        return {"counts": counts}, out.records, time.perf_counter() - tic

    def state(self) -> dict:
        st = {f"engine/{k}": v for k, v in self.engine.state().items()}
        for spec, gen in self.generators:
            st.update({f"poisson/{spec.name}/{k}": v for k, v in gen.state().items()})
        return st

    def restore(self, state: dict) -> None:
        self.engine.restore({k[7:]: v for k, v in state.items() if k.startswith("engine/")})
        for spec, gen in self.generators:
            pre = f"poisson/{spec.name}/"
            gen.restore({k[len(pre):]: v for k, v in state.items() if k.startswith(pre)})
