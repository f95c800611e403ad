"""The record pipeline: the parts' records of a window → merged → monitors → recorder.

Each engine merges its own partitions' records into the one-process layout
(:meth:`cosim.engines.base.Engine.merge_records`, called on the engine's description, so
the node that writes never builds a partition); the engine's monitors
(:mod:`cosim.monitor_config`) then map them to what is written; the
:class:`~cosim.recording.Recorder` buffers and flushes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Out:
    records: dict


class RecordPipeline:
    """Merging, monitors and the recorder of one run (on the bus node)."""

    def __init__(self, scenario, plan, recorder, batch: bool = False):
        self.engines = scenario.engines
        self.monitors = scenario.monitors
        self.groups = plan.groups
        self.recorder = recorder
        self.sync_interval_ms = scenario.simulation.sync_interval_ms
        parallel = getattr(recorder, "parallel", None)
        #: engines whose parts write their own records (cosim.rank_output)
        self.written_by_parts = set(parallel.engines) if parallel is not None else set()
        self._records: dict[str, dict[int, dict]] = {g.name: {} for g in plan.groups}
        #: the engines whose records come here (not the parts' own; a window's work is
        #: theirs, however many engines write their own): (engine, its records by part,
        #: its parts, its merge — None: unsplit, its records as they are)
        self._merge = [(g.name, self._records[g.name], range(g.n_parts),
                        self.engines[g.name].merge_records if g.n_parts > 1 else None)
                       for g in plan.groups if g.name not in self.written_by_parts]
        #: latest rate-monitor sample per engine, for live monitoring: (regions, values)
        self._live: dict[str, tuple] = {}
        self._rate_specs: dict[str, list] = {}       # engine → its rate monitors' specs
        #: windows merged but not yet through the monitors and the recorder (``batch``):
        #: they go together at the next flush, checkpoint or end, so the per-window Python
        #: of the monitors and the recorder is paid once per batch.  Only where every
        #: monitor gives the same numbers for any split of its input in time
        #: (``chunk_invariant``), so the file is the one written window by window.
        self.batch = batch and all(m.chunk_invariant for m in self.monitors.values())
        self._held: list[tuple] = []

    def take(self, key, records: dict) -> None:
        if key[0] not in self.written_by_parts:      # (those are in the parts' rank files)
            self._records[key[0]][key[1]] = records

    def finish(self, k: int, t1: float, timing: np.ndarray, hold: bool = False) -> None:
        """Merge window ``k``'s records, apply monitors, hand them to the recorder.
        ``hold``: the window may wait for the next one (:attr:`batch`; no checkpoint and
        no end after it) unless the recorder flushes with it."""
        merged = {}
        for name, by_part, parts, merge in self._merge:
            merged[name] = (by_part.pop(0) if merge is None
                            else merge([by_part[p] for p in parts]))
            by_part.clear()
        span = (k * self.sync_interval_ms, t1)
        if not self.batch:
            self._write(merged, [timing], [span])
            return
        self._held.append((merged, timing, span))
        if not hold or self.recorder.windows_buffered + len(self._held) >= self.recorder.flush_every:
            self.drain()

    def drain(self) -> None:
        """The held windows through the monitors and into the recorder (before a
        checkpoint, a flush or the output's close).  If a monitor or the recorder fails
        here, the held windows go with the failure (their monitor state has moved on): a
        failure of the pipeline itself may cost up to ``flush_every − 1`` windows, where
        one window at a time it cost that window.  Memory: up to ``flush_every`` windows
        of the engines' records (raw, before the monitors) are held."""
        held, self._held = self._held, []
        if not held:
            return
        merged = held[0][0] if len(held) == 1 else {
            name: join_records([h[0][name] for h in held]) for name in held[0][0]}
        self._write(merged, [h[1] for h in held], [h[2] for h in held])

    def _write(self, merged: dict, timings: list, spans: list) -> None:
        t1 = spans[-1][1]
        outputs = {}
        for name, recs in merged.items():
            if name in self.monitors:
                recs = self.monitors[name].apply(recs, t1)
                self._note_rates(name, recs)
            outputs[name] = _Out(recs)
        self.recorder.write_windows(outputs, timings, spans)

    def _note_rates(self, engine: str, records: dict) -> None:
        """Remember the last sample of a rate monitor (``[record.<engine>.rate]``)."""
        specs = self._rate_specs.get(engine)
        if specs is None:       # (a monitor's specs do not change during the run)
            specs = self._rate_specs[engine] = [
                s for s in self.monitors[engine].record_specs() if s.attrs.get("monitor") == "rate"]
        for spec in specs:
            if spec.dataset in records:
                x = records[spec.dataset]
                if x.shape[0]:
                    self._live[engine] = (spec.regions, x[-1, 0])

    @property
    def live_rates(self) -> dict[str, dict[str, float]]:
        """The latest rate-monitor samples: engine → {region: Hz} (built when asked)."""
        return {engine: {str(r): float(v) for r, v in zip(regions, x)}
                for engine, (regions, x) in self._live.items()}

    def state(self) -> dict[str, np.ndarray]:
        st = {}
        for n, m in self.monitors.items():
            st.update({f"monitor:{n}:{k}": v for k, v in m.state().items()})
        return st

    def restore(self, st: dict[str, np.ndarray]) -> None:
        for n, m in self.monitors.items():
            prefix = f"monitor:{n}:"
            m.restore({k[len(prefix):]: v for k, v in st.items() if k.startswith(prefix)})


def join_records(windows: list[dict]) -> dict:
    """Consecutive windows' records of one engine as one window's: arrays joined along
    time (axis 0), spike pairs ``(ids, times)`` one after the other (so still by window,
    then by time)."""
    out = {}
    for ds in dict.fromkeys(ds for w in windows for ds in w):   # every window's, in order
        values = [w[ds] for w in windows if ds in w]
        if isinstance(values[0], tuple):
            out[ds] = (np.concatenate([np.asarray(v[0], dtype=np.int64).ravel() for v in values]),
                       np.concatenate([np.asarray(v[1], dtype=np.float64).ravel() for v in values]))
        else:
            out[ds] = np.concatenate([np.asarray(v) for v in values], axis=0)
    return out


def record_specs(scenario) -> dict:
    """What the recorder creates per engine: its monitors' specs, else the engine's own."""
    monitors = scenario.monitors
    return {name: (monitors[name].record_specs() if name in monitors else e.record_specs())
            for name, e in scenario.engines.items()}
