"""Parallel output: every rank writes what it produced; the output file joins the rank files.

Under MPI (more than one process) each rank ``r`` writes ``<output>.d/rank-<r:04d>.h5``
(a folder next to the output, one file per rank).  The output file keeps the one
documented layout (:mod:`cosim.recording`): what a rank wrote appears in it as an HDF5
**virtual dataset** (VDS) whose mappings point into the rank files, so readers —
``cosim analyze``, ``cosim export``, h5py, libsonata — see one file and never learn that
the data lie elsewhere (relative source names: HDF5 looks them up next to the output, so
the output and its ``.d`` folder move together).  Virtual datasets rather than external
links because one dataset of the layout (a region series of a split engine, the timing
table) is assembled from several ranks' blocks, which a link cannot do.

What each rank writes
    A part of an engine without monitors writes its records: its block of every region
    series ``(time, variable, its columns)`` with attribute ``columns`` (the global column
    indices, :func:`columns_of`), each series' time scale, and its cells' spikes (one SONATA
    population per cell group, node ids global within the group).  Every rank (the
    coordinator too) writes its row of ``/timing/window_seconds`` ``(window, 1, phase)``.
    ``/flushes/windows`` and ``/flushes/lengths`` ``(flush, dataset)`` record, at every
    flush, the windows completed and the length of every growing dataset (names in the
    attribute ``names``): the join and ``--resume`` cut each rank file at a flush.

What stays on the coordinator
    An engine with monitors (``[record.<engine>.*]``: BOLD, projections, averages, rates,
    expressions …) sends its records to the coordinator as before, which merges the parts,
    applies the monitors and writes the result into the output file itself.  Monitors of a
    region's own series could run on the part; projections and global averages need every
    region of the engine.  Today all of an engine's monitors stay together on the
    coordinator; that costs one message of the engine's records per part per window.

The join
    Region series and the timing table map every rank's block with an *unlimited* time
    extent from the start (``H5S_UNLIMITED`` hyperslabs), so even a file whose coordinator
    was killed shows every window each rank flushed.  Spikes are 1-D with a length per rank
    known only at the end: their VDS (the concatenation of the parts' blocks in part order)
    is written by :func:`join` — at the close of the run, on the failure path by the
    surviving coordinator, and by ``cosim join OUTPUT`` for a file whose coordinator died.
    :func:`join` also remaps every series with the fixed extent of the last flush all ranks
    reached (``windows_completed`` of the output), so the joined file is consistent.

Spike order
    A completed run's populations are sorted by ``(node_id, time)`` (SONATA ``by_id``): a
    part owns a contiguous block of every cell group's gids (parts in order), so the parts'
    sorted blocks concatenate to the globally sorted array whatever the split, and the
    joined file equals the one-process file bit for bit.  While running (and after a
    failure) each rank's block is in time order and the joined population says ``none``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import output_guard as guard
from .engines.base import RecordSpec
from .errors import CosimError
from .output_guard import FLUSH_MARGIN_BYTES, is_disk_full, series_chunk_rows
from .sonata import (BY_ID, BY_TIME, NONE, SONATA_SORTING, SpikeBuffers, create_population,
                     cut_population, sort_population)

RANK_FORMAT = "cosim-rank"
PHASES = ("compute", "communicate", "wait")
U = h5py.h5s.UNLIMITED


def rank_dir(output: Path) -> Path:
    """``<output>.d``: the folder of the rank files."""
    return Path(str(output) + ".d")


def rank_path(output: Path, rank: int) -> Path:
    return rank_dir(output) / f"rank-{int(rank):04d}.h5"


def columns_of(engine, spec: RecordSpec, part: int, n_parts: int) -> np.ndarray | None:
    """Global column indices (axis 2) of partition ``part``'s records of ``spec``, or
    ``None`` when the partition writes none of it; the engine's ``merge_records`` puts the
    columns there (tests/test_rank_output.py checks the two agree)."""
    n = len(spec.regions)
    if n_parts == 1:
        return np.arange(n, dtype=np.int64)
    if hasattr(engine, "probe_ids_of"):
        return np.asarray(engine.probe_ids_of(part, n_parts), dtype=np.int64)
    regs = np.asarray(engine.part_regions(part, n_parts))
    if 0 < regs.size < len(engine.region_indices):       # a block of the regions
        from .multicompartment.partition import block

        b = block(n, part, n_parts)
        return np.arange(b.start, b.stop, dtype=np.int64)
    # engines whose every part holds the whole state (neural surfaces: part 0 stands for
    # every region) merge to part 0's records
    return np.arange(n, dtype=np.int64) if part == 0 else None


@dataclass
class SeriesMap:
    engine: str
    spec: RecordSpec
    blocks: list          # [(rank, columns)]


@dataclass
class SpikeMap:
    engine: str
    spec: RecordSpec
    ranks: list           # ranks in part order


@dataclass
class OutputLayout:
    """Which rank writes what (computed from the engines' descriptions, no build)."""

    output: Path
    world_size: int
    engines: set = field(default_factory=set)     # engines written by their parts
    series: list = field(default_factory=list)
    spikes: list = field(default_factory=list)

    @classmethod
    def of(cls, scenario, plan, output: Path, specs: dict) -> "OutputLayout":
        lay = cls(Path(output), plan.world_size)
        if plan.world_size <= 1:
            return lay
        for g in plan.groups:
            mon = scenario.monitors.get(g.name)
            if mon is not None and not mon.passthrough:
                continue            # monitors run on the coordinator (module docstring)
            lay.engines.add(g.name)
            eng = scenario.engines[g.name]
            for spec in specs[g.name]:
                if spec.attrs.get("kind") == "spikes":
                    lay.spikes.append(SpikeMap(g.name, spec, list(g.ranks)))
                    continue
                blocks = []
                for p, r in enumerate(g.ranks):
                    cols = columns_of(eng, spec, p, g.n_parts)
                    if cols is not None and cols.size:
                        blocks.append((r, cols))
                lay.series.append(SeriesMap(g.name, spec, blocks))
        return lay

    def of_rank(self, rank: int):
        """``(series [(SeriesMap, columns)], spikes [SpikeMap])`` that ``rank`` writes."""
        series = [(m, c) for m in self.series for r, c in m.blocks if r == rank]
        spikes = [m for m in self.spikes if rank in m.ranks]
        return series, spikes


def _runs(cols: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs ``(local start, global start, width)`` of ``cols``."""
    out = []
    i = 0
    while i < cols.size:
        j = i
        while j + 1 < cols.size and cols[j + 1] == cols[j] + 1:
            j += 1
        out.append((i, int(cols[i]), j - i + 1))
        i = j + 1
    return out


# --------------------------------------------------------------------------------------
# One rank's file
# --------------------------------------------------------------------------------------

class RankWriter:
    """One rank's file: its records (as :class:`OutputLayout` says), its timing row and the
    flush index.  Flushes at the same windows as the coordinator (every ``flush_every``
    windows and before every checkpoint), so a flush index row exists for every window
    the output file was flushed at."""

    def __init__(self, layout: OutputLayout, rank: int, flush_every: int, *,
                 resume_window: int | None = None):
        self.path = rank_path(layout.output, rank)
        self.rank = int(rank)
        self.flush_every = int(flush_every)
        self.layout = layout
        series, spikes = layout.of_rank(rank)
        self._series = {}        # (engine, dataset) -> [data, time, chunks]
        self._spikes = SpikeBuffers()
        self._timing: list = []
        self._buffered = 0
        self.windows_completed = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resume_window is None:
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                self.f = h5py.File(tmp, "w", rdcc_nbytes=0)
                self._create(series, spikes)
                os.replace(tmp, self.path)
            else:
                self.f = h5py.File(self.path, "r+", rdcc_nbytes=0)
                self._reopen(series, spikes, resume_window)
        except (OSError, RuntimeError) as exc:
            why = "disk full" if is_disk_full(exc) else str(exc).split(" (")[0]
            raise CosimError(f"cannot write the rank file {self.path.name} ({why})",
                             file=str(layout.output)) from None
        self._growing = [d for d in self._datasets() if not d.name.startswith("/flushes")]
        self._names = [d.name[1:] for d in self._growing]
        self.f["flushes/lengths"].attrs["names"] = self._names
        self._good = [d.shape[0] for d in self._growing]

    def _datasets(self):
        out = []
        self.f.visititems(lambda n, o: out.append(o) if isinstance(o, h5py.Dataset)
                          and o.maxshape and o.maxshape[0] is None else None)
        return out

    def _create(self, series, spikes) -> None:
        f = self.f
        f.attrs.update(format=RANK_FORMAT, rank=self.rank, status="running", windows_completed=0)
        for m, cols in series:
            nv, nc = len(m.spec.variables), cols.size
            rows = series_chunk_rows(nv, nc)
            g = f.require_group(f"engines/{m.engine}")
            d = g.create_dataset(m.spec.dataset, shape=(0, nv, nc), maxshape=(None, nv, nc),
                                 dtype="f8", chunks=(rows, nv, nc))
            d.attrs["columns"] = cols
            g.create_dataset(f"{m.spec.dataset}_time_ms", shape=(0,), maxshape=(None,),
                             dtype="f8", chunks=(max(rows, 256),))
        for m in spikes:
            for pop in self._spikes.route(m.engine, m.spec):
                create_population(f, pop, resolution_ms=m.spec.period_ms)
        f.create_dataset("timing/window_seconds", shape=(0, 1, len(PHASES)),
                         maxshape=(None, 1, len(PHASES)), dtype="f8", chunks=(256, 1, len(PHASES)))
        f.create_dataset("flushes/windows", shape=(1,), maxshape=(None,), dtype="i8",
                         chunks=(256,), data=[0])
        n = len(self._datasets()) - 1
        f.create_dataset("flushes/lengths", shape=(1, n), maxshape=(None, n), dtype="i8",
                         chunks=(256, n), data=np.zeros((1, n), np.int64))
        self._bind(series)
        f.flush()

    def _bind(self, series) -> None:
        for m, _ in series:
            g = self.f[f"engines/{m.engine}"]
            self._series[(m.engine, m.spec.dataset)] = [g[m.spec.dataset],
                                                        g[f"{m.spec.dataset}_time_ms"], [], m.spec]

    def _reopen(self, series, spikes, window: int) -> None:
        f = self.f
        if f.attrs.get("format") != RANK_FORMAT:
            raise CosimError(f"{self.path.name} is not a cosim rank file; cannot resume",
                             file=str(self.layout.output))
        wins = f["flushes/windows"][()]
        hit = np.flatnonzero(wins == window)
        if not hit.size:
            raise CosimError(f"{self.path.name} was never flushed at window {window} (the "
                             "checkpoint); cannot resume", file=str(self.layout.output))
        i = int(hit[-1])
        names = list(f["flushes/lengths"].attrs["names"])
        lengths = f["flushes/lengths"][i]
        for name, n in zip(names, lengths):
            if name.endswith("/timestamps") or name.endswith("/node_ids"):
                continue
            f[name].resize(int(n), axis=0)
        for m in spikes:
            for pop in self._spikes.route(m.engine, m.spec):
                n = int(lengths[names.index(f"spikes/{pop[0]}/timestamps")])
                cut_population(f[f"spikes/{pop[0]}"], n)
        for ds in ("flushes/windows", "flushes/lengths"):
            f[ds].resize(i + 1, axis=0)
        self._bind(series)
        self.windows_completed = window
        f.attrs.update(status="running", windows_completed=window)
        f.flush()

    # -- per window --------------------------------------------------------------------
    def take(self, engine: str, records: dict) -> dict:
        """Buffer ``engine``'s records this rank writes; return what the coordinator still
        needs (the records of an engine with monitors)."""
        if engine not in self.layout.engines:
            return records
        for dataset, value in records.items():
            key = (engine, dataset)
            if key in self._series:
                arr = np.asarray(value, dtype=np.float64)
                if arr.size:
                    self._series[key][2].append(arr)
            elif key in self._spikes:
                self._spikes.add(key, value)
        return {}

    def end_window(self, k: int, timing, flush: bool = False) -> None:
        """Window ``k`` is done (``timing``: compute, communicate, wait seconds); flush
        every ``flush_every`` windows, or now (``flush``: a checkpoint follows)."""
        self._timing.append(np.asarray(timing, dtype=np.float64)[:3])
        self._buffered += 1
        if flush or self._buffered >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.f is None or not self._buffered:
            return
        try:
            free = guard.free_bytes(self.path)
            if FLUSH_MARGIN_BYTES > free:
                raise OSError(28, "No space left on device")
            self._write()
            self.f.flush()
        except (OSError, RuntimeError) as exc:
            self._abandon(exc)
        self._good = [d.shape[0] for d in self._growing]

    def _write(self) -> None:
        for d, t, chunks, spec in self._series.values():
            if not chunks:
                continue
            block = np.concatenate(chunks, axis=0)
            chunks.clear()
            n0, n1 = d.shape[0], d.shape[0] + block.shape[0]
            d.resize(n1, axis=0)
            d[n0:n1] = block
            t.resize(n1, axis=0)
            t[n0:n1] = spec.start_ms + spec.period_ms * np.arange(n0 + 1, n1 + 1)
        self._spikes.write(self.f)
        if self._timing:
            d = self.f["timing/window_seconds"]
            n0 = d.shape[0]
            d.resize(n0 + len(self._timing), axis=0)
            d[n0:, 0, :] = np.stack(self._timing)
            self._timing.clear()
        self.windows_completed += self._buffered
        self._buffered = 0
        w, ln = self.f["flushes/windows"], self.f["flushes/lengths"]
        i = w.shape[0]
        w.resize(i + 1, axis=0)
        ln.resize(i + 1, axis=0)
        w[i] = self.windows_completed
        ln[i] = [d.shape[0] for d in self._growing]
        self.f.attrs["windows_completed"] = self.windows_completed

    def _abandon(self, exc) -> None:
        why = ("disk full while writing" if is_disk_full(exc)
               else f"cannot write ({str(exc).split(' (')[0]})")
        try:                # back to the last flush (its index row is the last one)
            for d, n in zip(self._growing, self._good):
                if d.shape[0] != n:
                    d.resize(n, axis=0)
            w = self.f["flushes/windows"]
            last = int(np.flatnonzero(w[()] <= self.windows_completed)[-1])
            for ds in ("flushes/windows", "flushes/lengths"):
                self.f[ds].resize(last + 1, axis=0)
            self.f.attrs.update(status="failed")
            self.f.close()
        except Exception:
            try:
                self.f.close()
            except Exception:
                pass
        self.f = None
        raise CosimError(f"{why} the rank file {self.path.name}: it keeps the "
                         f"{self.windows_completed} windows flushed before; free some space "
                         "and run again", file=str(self.layout.output))

    def lengths(self) -> dict[str, int]:
        return {f"@rank/{n}": d.shape[0] for n, d in zip(self._names, self._growing)}

    def close(self, status: str = "completed") -> None:
        """Flush, sort the spikes by ``(node_id, time)`` when the run completed, close."""
        if self.f is None:
            return
        self.flush()
        if status == "completed":
            for name in self._spikes.names():
                sort_population(self.f[f"spikes/{name}"])
        self.f.attrs["status"] = status
        self.f.close()
        self.f = None


# --------------------------------------------------------------------------------------
# The join (in the output file)
# --------------------------------------------------------------------------------------

def _rel(layout: OutputLayout, rank: int) -> bytes:
    return f"{rank_dir(layout.output).name}/{rank_path(layout.output, rank).name}".encode()


def _make_vds(group, name: str, tail: tuple, maps: list, n: int | None, fill=np.nan):
    """Create the virtual dataset ``group[name]`` ``(n | unlimited, *tail)`` float64/uint64.

    ``maps``: ``(file, source name, src tail, src start (axis −1), dst row0, dst start
    (axis −1), width, rows | None)``; ``rows`` None: an unlimited mapping.  The low-level
    API: h5py's ``VirtualLayout`` slicing makes no unlimited hyperslab."""
    from h5py import h5d, h5p, h5s, h5t

    dtype = np.dtype("f8")
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_fill_value(np.array(fill, dtype=dtype))
    shape = ((n if n is not None else 0),) + tuple(tail)
    vspace = h5s.create_simple(shape, (U if n is None else n,) + tuple(tail))
    for m in maps:
        fname, src, stail, s0, row0, d0, width, rows = m[:8]
        if rows == 0:
            continue
        blk = (U if rows is None else rows,)
        vs = vspace.copy()
        ss = h5s.create_simple((rows or 0,) + tuple(stail),
                               (U if rows is None else rows,) + tuple(stail))
        if tail:
            vs.select_hyperslab((row0,) + (0,) * (len(tail) - 1) + (d0,), (1,) * (len(tail) + 1),
                                block=blk + tuple(tail[:-1]) + (width,))
            ss.select_hyperslab((0,) + (0,) * (len(tail) - 1) + (s0,), (1,) * (len(tail) + 1),
                                block=blk + tuple(tail[:-1]) + (width,))
        else:
            vs.select_hyperslab((row0,), (1,), block=blk)
            ss.select_hyperslab((0,), (1,), block=blk)
        dcpl.set_virtual(vs, fname, src.encode(), ss)
    tid = h5t.py_create(dtype)
    dsid = h5d.create(group.id, name.encode(), tid, vspace, dcpl=dcpl)
    return h5py.Dataset(dsid)


def create_virtual(f: h5py.File, layout: OutputLayout, series_attrs) -> None:
    """At the output's creation (and when a run resumes into it): unlimited VDS of every
    part-written series (and its time scale) and of the timing table; the spike
    populations' groups, without data until the join."""
    _series_vds(f, layout, series_attrs, rows=None)
    _timing_vds(f, layout, None)
    for m in layout.spikes:
        for pop in SpikeBuffers().route(m.engine, m.spec):
            g = _pop_group(f, pop, m.spec, NONE)
            for ds in ("timestamps", "node_ids"):
                if ds in g:
                    del g[ds]
    f.attrs["rank_files"] = manifest(layout)


def _pop_group(f, pop, spec, sorting):
    name, group, first_gid, stop_gid = pop
    g = f.require_group(f"spikes/{name}")
    g.attrs.create("sorting", sorting, dtype=SONATA_SORTING)
    g.attrs.update(engine=name[:-len(group) - 1], group=group, first_gid=first_gid,
                   resolution_ms=float(spec.period_ms))
    if stop_gid is not None:
        g.attrs["n_nodes"] = stop_gid - first_gid
    return g


def _series_vds(f, layout, series_attrs, rows: dict | None) -> None:
    for m in layout.series:
        g = f.require_group(f"engines/{m.engine}")
        name = m.spec.dataset
        for n in (name, f"{name}_time_ms"):
            if n in g:
                del g[n]
        nv, nr = len(m.spec.variables), len(m.spec.regions)
        n = None if rows is None else min(rows.get(r, {}).get(f"engines/{m.engine}/{name}", 0)
                                          for r, _ in m.blocks)
        maps = []
        for r, cols in m.blocks:
            for s0, d0, w in _runs(cols):
                maps.append((_rel(layout, r), f"engines/{m.engine}/{name}", (nv, cols.size),
                             s0, 0, d0, w, n))
        d = _make_vds(g, name, (nv, nr), maps, n)
        r0 = m.blocks[0][0]
        t = _make_vds(g, f"{name}_time_ms", (),
                      [(_rel(layout, r0), f"engines/{m.engine}/{name}_time_ms", (), 0, 0, 0, 1, n)],
                      n)
        t.attrs["unit"] = "ms"
        t.make_scale("time_ms")
        d.attrs.update(series_attrs(m.spec))
        d.dims[0].attach_scale(t)
        for i, label in enumerate(("time", "variable", "region")):
            d.dims[i].label = label


def _timing_vds(f, layout, n) -> None:
    g = f.require_group("timing")
    if "window_seconds" in g:
        del g["window_seconds"]
    maps = [(_rel(layout, r), "timing/window_seconds", (1, len(PHASES)), 0, 0, 0, 1, n)
            for r in range(layout.world_size)]
    # the rank axis: one mapping per rank at column r of axis 1
    from h5py import h5d, h5p, h5s, h5t

    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_fill_value(np.array(np.nan))
    tail = (layout.world_size, len(PHASES))
    vspace = h5s.create_simple((n or 0,) + tail, (U if n is None else n,) + tail)
    for fname, src, *_ in maps:
        r = int(fname.decode().rsplit("-", 1)[1][:4])
        vs = vspace.copy()
        vs.select_hyperslab((0, r, 0), (1, 1, 1), block=(U if n is None else n, 1, len(PHASES)))
        ss = h5s.create_simple((n or 0, 1, len(PHASES)), (U if n is None else n, 1, len(PHASES)))
        ss.select_hyperslab((0, 0, 0), (1, 1, 1), block=(U if n is None else n, 1, len(PHASES)))
        dcpl.set_virtual(vs, fname, src.encode(), ss)
    d = h5py.Dataset(h5d.create(g.id, b"window_seconds", h5t.IEEE_F64LE, vspace, dcpl=dcpl))
    d.attrs.update(axes="window, rank, phase", phases=list(PHASES), unit="s")


def _rank_lengths(layout: OutputLayout, windows: int, t_ms: float | None = None
                  ) -> tuple[dict, dict]:
    """Per rank: the lengths of its datasets after ``windows`` completed windows, and
    whether it closed ``completed`` there.  Exact from its flush index when it flushed at
    ``windows``; else (a part flushed on a failure path, ahead of the coordinator) cut at
    ``t_ms``: the samples stamped ≤ t_ms and, in a population still in time order, the
    spikes at ≤ t_ms (a window's spikes lie in (t0, t1])."""
    rows, done = {}, {}
    for r in range(layout.world_size):
        p = rank_path(layout.output, r)
        try:
            with h5py.File(p, "r", locking=False) as rf:
                wins = rf["flushes/windows"][()]
                names = list(rf["flushes/lengths"].attrs["names"])
                hit = np.flatnonzero(wins == windows)
                if hit.size or t_ms is None:
                    ok = hit if hit.size else np.flatnonzero(wins <= windows)
                    i = int(ok[-1]) if ok.size else 0
                    rows[r] = dict(zip(names, (int(x) for x in rf["flushes/lengths"][i])))
                    done[r] = rf.attrs.get("status") == "completed" and int(wins[i]) == windows
                    continue
                rows[r] = {n: _cut(rf, n, windows, t_ms) for n in names}
                done[r] = False
        except (OSError, KeyError, RuntimeError):
            rows[r], done[r] = {}, False
    return rows, done


def _cut(rf, name: str, windows: int, t_ms: float) -> int:
    d = rf[name]
    if name.startswith("timing/"):
        return min(d.shape[0], windows)
    if name.startswith("spikes/"):
        g = rf[name.rsplit("/", 1)[0]]
        if int(g.attrs.get("sorting", BY_TIME)) != BY_TIME:
            return d.shape[0]
        return int(np.searchsorted(g["timestamps"][()], t_ms + 1e-9, side="right"))
    t = rf[name if name.endswith("_time_ms") else name + "_time_ms"][()]
    return int(np.searchsorted(t, t_ms + 1e-9, side="right"))


def join(f: h5py.File, layout: OutputLayout, windows: int, series_attrs) -> bool:
    """Join the rank files into ``f`` as of ``windows`` completed windows: every series and
    the timing table with the fixed extent of that flush, every spike population as the
    concatenation of the parts' blocks.  Returns whether every rank file was complete
    (the populations are then ``by_id``)."""
    rows, done = _rank_lengths(layout, windows, windows * float(f.attrs["sync_interval_ms"]))
    _series_vds(f, layout, series_attrs, rows)
    _timing_vds(f, layout, min(rows[r].get("timing/window_seconds", 0) for r in rows))
    complete = all(done.values())
    for m in layout.spikes:
        for pop in SpikeBuffers().route(m.engine, m.spec):
            g = _pop_group(f, pop, m.spec, BY_ID if complete else NONE)
            for ds in ("timestamps", "node_ids"):
                if ds in g:
                    del g[ds]
                counts = [rows[r].get(f"spikes/{pop[0]}/{ds}", 0) for r in m.ranks]
                off = np.concatenate([[0], np.cumsum(counts)]).astype(int)
                dtype = np.dtype("f8") if ds == "timestamps" else np.dtype("u8")
                maps = [(_rel(layout, r), f"spikes/{pop[0]}/{ds}", (), 0, int(off[i]), 0, 1,
                         int(counts[i]), dtype) for i, r in enumerate(m.ranks)]
                d = _make_vds_1d(g, ds, maps, int(off[-1]), dtype)
                if ds == "timestamps":
                    d.attrs["units"] = "ms"
    return complete


def _make_vds_1d(group, name, maps, n, dtype):
    from h5py import h5d, h5p, h5s, h5t

    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_fill_value(np.array(0, dtype=dtype))
    vspace = h5s.create_simple((n,), (n,))
    for fname, src, _, _, row0, _, _, rows, _ in maps:
        if rows == 0:
            continue
        vs = vspace.copy()
        vs.select_hyperslab((row0,), (1,), block=(rows,))
        ss = h5s.create_simple((rows,), (U,))
        ss.select_hyperslab((0,), (1,), block=(rows,))
        dcpl.set_virtual(vs, fname, src.encode(), ss)
    return h5py.Dataset(h5d.create(group.id, name.encode(), h5t.py_create(dtype), vspace, dcpl=dcpl))


def _spec_json(spec: RecordSpec) -> dict:
    return {"dataset": spec.dataset, "variables": list(spec.variables), "units": list(spec.units),
            "regions": list(spec.regions), "period_ms": spec.period_ms, "start_ms": spec.start_ms,
            "attrs": spec.attrs}


def _spec_of(d: dict) -> RecordSpec:
    attrs = dict(d["attrs"])
    if "populations" in attrs:
        attrs["populations"] = {k: tuple(v) for k, v in attrs["populations"].items()}
    return RecordSpec(d["dataset"], tuple(d["variables"]), tuple(d["units"]), tuple(d["regions"]),
                      d["period_ms"], d["start_ms"], attrs)


def manifest(layout: OutputLayout) -> str:
    """The layout as JSON (the output's attribute ``rank_files``), for :func:`rejoin`."""
    return json.dumps({
        "folder": rank_dir(layout.output).name, "ranks": layout.world_size,
        "engines": sorted(layout.engines),
        "series": [[m.engine, _spec_json(m.spec), [[r, c.tolist()] for r, c in m.blocks]]
                   for m in layout.series],
        "spikes": [[m.engine, _spec_json(m.spec), m.ranks] for m in layout.spikes]},
        default=lambda o: o.tolist() if hasattr(o, "tolist") else list(o))


def from_manifest(output: Path, text: str) -> OutputLayout:
    m = json.loads(text)
    return OutputLayout(Path(output), int(m["ranks"]), set(m["engines"]),
                        [SeriesMap(e, _spec_of(s), [(r, np.array(c, dtype=np.int64)) for r, c in b])
                         for e, s, b in m["series"]],
                        [SpikeMap(e, _spec_of(s), list(r)) for e, s, r in m["spikes"]])


def rejoin(output: Path, into: Path | None = None) -> str:
    """``cosim join OUTPUT``: rebuild the join of an output from its rank files (a run
    whose coordinator died leaves status ``running`` and no spike data; afterwards the
    file holds every window all ranks flushed, status ``failed``).  ``into``: a copy of
    the output to write instead (same folder).  Returns a one-line summary."""
    from .recording import series_attrs

    output = Path(output)
    try:
        f = h5py.File(into or output, "r+")
    except OSError as exc:
        raise CosimError(f"cannot open the output ({str(exc).split(' (')[0]})",
                         file=str(output)) from None
    with f:
        if "rank_files" not in f.attrs:
            raise CosimError("this output has no rank files (a one-process run); nothing "
                             "to join", file=str(output))
        layout = from_manifest(output, f.attrs["rank_files"])
        windows = int(f.attrs["windows_completed"])
        if f.attrs.get("status") == "running":
            windows = _last_common_flush(layout, windows)
            f.attrs.update(status="failed", windows_completed=windows,
                           t_completed_ms=windows * float(f.attrs["sync_interval_ms"]),
                           message="the run ended without closing its output (killed); "
                                   "the rank files were joined afterwards")
        complete = join(f, layout, windows, series_attrs)
    return (f"{output}: joined {layout.world_size} rank files at {windows} windows"
            + ("" if complete else " (spikes of each rank in time order: sorting = none)"))


def repair_after_death(output: Path) -> bool:
    """After every rank of a run ended: an output left ``running`` (the launcher killed
    the coordinator) is joined — in a copy renamed over it, under the output's lock, so a
    reader sees the old file or the joined one.  Returns whether it joined."""
    from .output_guard import OutputLock

    output = Path(output)
    try:
        with h5py.File(output, "r", locking=False) as f:
            if f.attrs.get("status") != "running" or "rank_files" not in f.attrs:
                return False
    except OSError:
        return False
    try:
        lock = OutputLock(output)
    except CosimError:              # a new run (a --resume) has it: leave the file alone
        return False
    tmp = output.with_name(f".{output.name}.{os.getpid()}.join.tmp")
    try:
        shutil.copyfile(output, tmp)
        rejoin(output, into=tmp)
        os.replace(tmp, output)
        return True
    finally:
        tmp.unlink(missing_ok=True)
        lock.release()


def _last_common_flush(layout: OutputLayout, at_most: int) -> int:
    """The largest window count, at most ``at_most``, every rank file was flushed at."""
    common = None
    for r in range(layout.world_size):
        try:
            with h5py.File(rank_path(layout.output, r), "r", locking=False) as rf:
                wins = set(int(w) for w in rf["flushes/windows"][()])
        except (OSError, KeyError):
            wins = {0}
        common = wins if common is None else common & wins
    return max({w for w in common or {0} if w <= at_most} or {0})


# --------------------------------------------------------------------------------------
# Resuming under another layout
# --------------------------------------------------------------------------------------

def resume_layout(output: Path, wanted: OutputLayout, window: int) -> OutputLayout | None:
    """The layout a resumed run writes with.  The same rank files as the run that wrote
    the checkpoint: ``wanted``.  Otherwise the run continues the one-file way (every
    record through the coordinator, ``None``): an output joined from rank files is first
    made whole (:func:`materialize`) as of the checkpoint's ``window``."""
    output = Path(output)
    try:
        with h5py.File(output, "r", locking=False) as f:
            had = f.attrs.get("rank_files")
    except OSError:
        return wanted if wanted.world_size > 1 else None    # the recorder says why
    if had is None:
        return None
    if wanted.world_size > 1 and json.loads(had) == json.loads(manifest(wanted)):
        return wanted
    materialize(output, from_manifest(output, had), window)
    return None


def materialize(output: Path, layout: OutputLayout, window: int) -> None:
    """Copy what the rank files hold up to ``window`` completed windows into ordinary
    datasets of the output (no virtual dataset left, no ``rank_files`` attribute): series
    and timing at that flush, each population's first spikes in time order."""
    from .recording import series_attrs
    from .sonata import CHUNK

    rows, _ = _rank_lengths(layout, window)
    with h5py.File(output, "r+") as f:
        for m in layout.series:
            g = f[f"engines/{m.engine}"]
            name = m.spec.dataset
            n = min(rows[r].get(f"engines/{m.engine}/{name}", 0) for r, _ in m.blocks)
            nv, nr = len(m.spec.variables), len(m.spec.regions)
            data = np.full((n, nv, nr), np.nan)
            for r, cols in m.blocks:
                with h5py.File(rank_path(output, r), "r", locking=False) as rf:
                    data[:, :, cols] = rf[f"engines/{m.engine}/{name}"][:n]
                    if r == m.blocks[0][0]:
                        tms = rf[f"engines/{m.engine}/{name}_time_ms"][:n]
            for ds in (name, f"{name}_time_ms"):
                del g[ds]
            rws = series_chunk_rows(nv, nr)
            d = g.create_dataset(name, data=data, maxshape=(None, nv, nr), chunks=(rws, nv, nr))
            d.attrs.update(series_attrs(m.spec))
            t = g.create_dataset(f"{name}_time_ms", data=tms, maxshape=(None,),
                                 chunks=(max(rws, 256),))
            t.attrs["unit"] = "ms"
            t.make_scale("time_ms")
            d.dims[0].attach_scale(t)
            for i, label in enumerate(("time", "variable", "region")):
                d.dims[i].label = label
        n = min(rows[r].get("timing/window_seconds", 0) for r in rows)
        timing = np.full((n, layout.world_size, len(PHASES)), np.nan)
        for r in range(layout.world_size):
            with h5py.File(rank_path(output, r), "r", locking=False) as rf:
                timing[:, r] = rf["timing/window_seconds"][:n, 0]
        del f["timing/window_seconds"]
        d = f.create_dataset("timing/window_seconds", data=timing,
                             maxshape=(None, None, len(PHASES)), chunks=(256, layout.world_size,
                                                                          len(PHASES)),
                             fillvalue=np.nan)
        d.attrs.update(axes="window, rank, phase", phases=list(PHASES), unit="s")
        for m in layout.spikes:
            for pop in SpikeBuffers().route(m.engine, m.spec):
                ids, ts = [], []
                for r in m.ranks:
                    k = rows[r].get(f"spikes/{pop[0]}/timestamps", 0)
                    with h5py.File(rank_path(output, r), "r", locking=False) as rf:
                        rg = rf[f"spikes/{pop[0]}"]
                        i, t = rg["node_ids"][()], rg["timestamps"][()]
                        order = (np.argsort(t, kind="stable")[:k]
                                 if int(rg.attrs["sorting"]) == BY_ID else np.arange(k))
                    ids.append(i[order])
                    ts.append(t[order])
                g = _pop_group(f, pop, m.spec, BY_TIME)
                for ds, arr, dt in (("timestamps", np.concatenate(ts), "f8"),
                                    ("node_ids", np.concatenate(ids), "u8")):
                    if ds in g:
                        del g[ds]
                    x = g.create_dataset(ds, data=arr.astype(dt), maxshape=(None,), chunks=(CHUNK,))
                    if ds == "timestamps":
                        x.attrs["units"] = "ms"
        del f.attrs["rank_files"]
    shutil.rmtree(rank_dir(output), ignore_errors=True)
