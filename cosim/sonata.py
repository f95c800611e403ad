"""Spikes of the output file in SONATA's layout (the recorder's spike part).

One SONATA population per cell group: ``/spikes/<engine>.<group>/`` with ``timestamps``
(float64, ms, attribute ``units = "ms"``) and ``node_ids`` (uint64, the cell's index in its
group: gid − first_gid, from 0), and the group attribute ``sorting`` as SONATA's HDF5 enum
(``none`` | ``by_id`` | ``by_time``), which libsonata's ``SpikeReader``
reads.  Extra group attributes: ``engine``, ``group``, ``first_gid``, ``n_nodes`` (when the
group's size is declared) and ``resolution_ms`` (the engine's time step).

An engine's spike :class:`~cosim.engines.base.RecordSpec` declares its groups in
``attrs["populations"]`` (group → ``(first_gid, stop_gid)``, its
:meth:`~cosim.engines.base.Engine.populations`); its records are engine-wide ``(gids,
times_ms)`` per window.  A spec without that attribute is one group named
``attrs["population"]`` (else the dataset name) whose node ids are the recorded ids.  Each
window's spikes are sorted by time (stable), and windows arrive in time order, so while
the run goes every population is sorted by time (``by_time``); when the run completes,
:func:`sort_population` sorts it by ``(node_id, time)`` (``by_id``) — the order that the
parts of a split engine can each produce for their own block of cells
(:mod:`cosim.rank_output`), so one process and any split give the same bits.
"""

from __future__ import annotations

import h5py
import numpy as np

from . import h5fast
from .engines.base import RecordSpec
from .output_guard import chunked_bytes

#: SONATA's ``sorting`` attribute: an HDF5 enum (libsonata reads no string here)
SONATA_SORTING = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")
NONE, BY_ID, BY_TIME = 0, 1, 2
CHUNK = 65536

#: ``(name, group, first_gid, stop_gid)``; ``stop_gid`` None: an open range
Population = tuple[str, str, int, "int | None"]


def spike_populations(engine: str, spec: RecordSpec) -> list[Population]:
    """SONATA populations of one spike spec, ``name = "<engine>.<group>"``."""
    groups = spec.attrs.get("populations")
    if not groups:
        group = str(spec.attrs.get("population", spec.dataset))
        return [(f"{engine}.{group}", group, 0, None)]
    return [(f"{engine}.{g}", str(g), int(r[0]), int(r[1])) for g, r in groups.items()]


def create_population(f: h5py.File, pop: Population, *, resolution_ms: float = 0.0) -> None:
    """Create ``/spikes/<name>`` with empty growing ``timestamps`` and ``node_ids``."""
    name, group, first_gid, stop_gid = pop
    g = f.require_group(f"spikes/{name}")
    g.attrs.create("sorting", BY_TIME, dtype=SONATA_SORTING)
    g.attrs.update(engine=name[:-len(group) - 1], group=group, first_gid=first_gid,
                   resolution_ms=float(resolution_ms))
    if stop_gid is not None:
        g.attrs["n_nodes"] = stop_gid - first_gid
    ts = g.create_dataset("timestamps", shape=(0,), maxshape=(None,), dtype="f8",
                          chunks=(CHUNK,))
    ts.attrs["units"] = "ms"
    g.create_dataset("node_ids", shape=(0,), maxshape=(None,), dtype="u8", chunks=(CHUNK,))


class SpikeBuffers:
    """The spikes of the windows not yet written, filed by SONATA population.

    A window's spikes are kept as they come (:meth:`add`: a list append); they are sorted
    and filed by population once per flush (:meth:`_settle`), for every buffered window at
    once — the same order as filing each window on its own: by window, then by time
    (stable)."""

    def __init__(self):
        self._parts: dict[str, list] = {}            # population → [(node_ids, times)]
        self._routes: dict[tuple[str, str], list[Population]] = {}
        self._raw: dict[tuple[str, str], list] = {}  # key → [(gids, times)] per window
        self._file = None                            # the file of the handles in _ds
        self._ds: dict[str, tuple] = {}              # population → (timestamps, node_ids)

    def route(self, engine: str, spec: RecordSpec) -> list[Population]:
        """Register ``engine``'s spike dataset; returns its populations."""
        pops = spike_populations(engine, spec)
        for name, *_ in pops:
            if name in self._parts:
                raise ValueError(f"two spike datasets write SONATA population {name!r}")
            self._parts[name] = []
        self._routes[(engine, spec.dataset)] = pops
        self._raw[(engine, spec.dataset)] = []
        return pops

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._routes

    def add(self, key: tuple[str, str], value) -> None:
        """Buffer one window's ``(gids, times_ms)`` of ``key``; they are filed under its
        populations, sorted by time (stable: spikes of one step keep their order), by the
        next :meth:`bytes_to_write` or :meth:`write`."""
        gids = np.asarray(value[0], dtype=np.int64).ravel()
        times = np.asarray(value[1], dtype=np.float64).ravel()
        if gids.size != times.size:
            raise ValueError(f"spikes of {key[0]!r}: {gids.size} ids, {times.size} times")
        if gids.size:
            # kept until the flush: a writeable view (of a buffer its engine may reuse) is copied
            if not gids.flags.owndata and gids.flags.writeable:
                gids = gids.copy()
            if not times.flags.owndata and times.flags.writeable:
                times = times.copy()
            self._raw[key].append((gids, times))

    def _settle(self) -> None:
        """File the buffered windows' spikes under their populations."""
        for key, windows in self._raw.items():
            if not windows:
                continue
            if len(windows) == 1:
                gids, times = windows[0]
                order = np.argsort(times, kind="stable")
            else:
                gids = np.concatenate([w[0] for w in windows])
                times = np.concatenate([w[1] for w in windows])
                win = np.repeat(np.arange(len(windows)), [w[0].size for w in windows])
                order = np.lexsort((times, win))        # by window, then time; stable
            windows.clear()
            gids, times = gids[order], times[order]
            placed = 0
            for name, _, lo, hi in self._routes[key]:
                mine = (gids >= lo) if hi is None else ((gids >= lo) & (gids < hi))
                n = int(np.count_nonzero(mine))
                if n:
                    self._parts[name].append(((gids[mine] - lo).astype(np.uint64), times[mine]))
                placed += n
            if placed != gids.size:
                raise ValueError(f"engine {key[0]!r} recorded spikes of gids outside its "
                                 f"populations ({gids.size - placed} spikes)")

    def _handles(self, f: h5py.File, name: str) -> tuple:
        """``(timestamps, node_ids)`` of population ``name`` in ``f`` (looked up once)."""
        if self._file is not f:
            self._file, self._ds = f, {}
        ds = self._ds.get(name)
        if ds is None:
            g = f[f"spikes/{name}"]
            ds = self._ds[name] = (g["timestamps"], g["node_ids"])
        return ds

    def bytes_to_write(self, f: h5py.File) -> int:
        """Bytes the buffered spikes add to the file (whole new chunks)."""
        self._settle()
        need = 0
        for name, parts in self._parts.items():
            if parts:
                n0 = h5fast.length(self._handles(f, name)[0])
                n1 = n0 + sum(len(p[1]) for p in parts)
                need += chunked_bytes(n1, CHUNK, 16) - chunked_bytes(n0, CHUNK, 16)
        return need

    def write(self, f: h5py.File) -> None:
        """Append the buffered spikes to their populations and empty the buffers."""
        for d, arr, n0 in self.writes(f):                  # (no file flush in between)
            h5fast.append(d, arr, n0)

    def writes(self, f: h5py.File) -> list[tuple]:
        """:meth:`write` as its appends ``(dataset, rows, first row)``, the buffers emptied
        (the recorder may make them on another thread)."""
        self._settle()
        out = []
        for name, parts in self._parts.items():
            if not parts:
                continue
            ids = np.concatenate([p[0] for p in parts])
            ts = np.concatenate([p[1] for p in parts])
            parts.clear()
            d_ts, d_ids = self._handles(f, name)
            n0 = h5fast.length(d_ts)
            out += [(d_ts, ts, n0), (d_ids, ids, n0)]
        return out

    def names(self) -> list[str]:
        return list(self._parts)

    def clear(self) -> None:
        for parts in self._parts.values():
            parts.clear()
        for windows in self._raw.values():
            windows.clear()


def sort_population(g: h5py.Group) -> None:
    """Sort a population by ``(node_id, time)`` in place and mark it ``by_id`` (a cell
    spikes at most once per time step, so the order is unique)."""
    ids, ts = g["node_ids"][()], g["timestamps"][()]
    order = np.lexsort((ts, ids))
    if ids.size:
        g["node_ids"][:] = ids[order]
        g["timestamps"][:] = ts[order]
    g.attrs.create("sorting", BY_ID, dtype=SONATA_SORTING)


def cut_population(g: h5py.Group, n: int) -> None:
    """Keep the first ``n`` spikes in time order (to resume at a checkpoint).  A ``by_id``
    population (a completed run) is put back in time order first — stable, so spikes of
    one time keep their node order; windows never overlap in time, so the first ``n`` are
    exactly the spikes of the windows before the checkpoint."""
    if int(g.attrs.get("sorting", BY_TIME)) == BY_ID:
        ids, ts = g["node_ids"][()], g["timestamps"][()]
        order = np.argsort(ts, kind="stable")[:n]
        for ds, arr in (("timestamps", ts[order]), ("node_ids", ids[order])):
            g[ds].resize(n, axis=0)
            g[ds][:] = arr
        g.attrs.create("sorting", BY_TIME, dtype=SONATA_SORTING)
    else:
        for ds in ("timestamps", "node_ids"):
            g[ds].resize(n, axis=0)
