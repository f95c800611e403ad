"""The distributed bus: every part receives its input from the parts whose regions it reads.

There is no central bus history.  From the connectome weights and the plan, every process
computes the same :class:`Pattern` (it is never sent): for each coupled part

* ``reads``: the regions whose afferent samples it keeps, ascending — for a part that
  takes **sources** (``Take.SOURCES``) its external sources (every outside region with a
  nonzero weight into one of its regions), for a part that takes **drive**
  (``Take.DRIVE``) every region with a nonzero weight into its one region ``R``;
* who sends it which of those columns: the **owner** of region ``j`` is the part that
  exports ``j``'s afferent (``Export.AFFERENT``), or, for a spiking region with a
  spikes → rate adapter, the region's first part (its **head**).

Per window ``k`` (``S`` bus steps) a part, in three phases run over every part of the
process (all of them in one process, one under MPI — the same code):

1. takes its input from what it keeps (:meth:`PartLink.input`), advances its engine, and
   sends each reader the columns it reads of its afferent export (``AFFERENT``); a part of a
   spiking region sends its spike counts to the region's head (``COUNTS``);
2. a head sums its region's counts in part order (integers: exact), runs the region's
   spikes → rate adapter (:class:`~cosim.bus_node.RegionRate`) and sends the afferent to
   the region's readers;
3. receives window ``k``'s columns from its owners (ascending owner order) into what it
   keeps: a sources part the block of new samples its engine takes next window, a drive
   part the ring ``(slot, afferent, read region)`` from which its drive is summed with the
   bus kernel (:func:`cosim.bus._delayed_weighted_sum`, sources in increasing index).
   The drive of window ``k`` reads samples of windows ``< k`` only, so a drive part's
   self-connection delayed by less than one window cannot be served — by this bus or the
   central one — and :func:`exchange_pattern` refuses it as the load-time check does
   (:func:`cosim.bus.check_driven_self_delays`).

**Run-ahead.**  A drive part whose every received column is delayed by at least two
windows (``d ≥ 2S``, checked from the delays when the pattern is made, never configured)
*defers* phase 3: in window ``k`` it receives window ``k − 1``'s columns, after advancing —
its drive of window ``k`` reads only samples of windows ``≤ k − 2`` — so it computes window
``k`` while window ``k − 1``'s messages travel instead of waiting for them.  Before a
checkpoint (and at a stop or the end) it catches up, so what it saves is what a lock-step
part saves.  A sources part takes the samples of window ``k − 1`` in window ``k`` (the
engine contract, :mod:`cosim.engines.base`), so it does not run ahead.

The numbers are those of the central bus (:class:`cosim.bus.Bus`), computed by the same
code in the same order, so results are bitwise the same in every layout.  Before window 0
the owners send their initial history (``HISTORY``); a checkpoint keeps what a part keeps
(:meth:`PartLink.state`), so a resumed part needs no history from anyone.

Messages per part and window: one per (owner, reader) pair it is in, plus one per extra
part of its spiking region — they depend on the connectome's neighbourhoods, never on the
number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bus import _delayed_weighted_sum, check_driven_self_delays, max_delay_steps
from .bus_node import RegionRate
from .engines.base import Export, Take
from .errors import CosimError
from .messages import Kind
from .transport import payload_nbytes

Key = tuple[str, int]


@dataclass
class Route:
    """One part's place in the pattern (see module docstring).

    ``send``: ``(reader, columns of the export)`` in reader order — an index into the
    part's export columns (a slice when contiguous); ``recv``: ``(owner, positions in
    reads)`` in owner order; ``head``: the head of the part's spiking region (the part
    itself for the head), ``followers``: for a head, the region's other parts.
    """

    key: Key
    takes: Take
    exports: Export
    regions: np.ndarray
    reads: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    send: list = field(default_factory=list)
    recv: list = field(default_factory=list)
    head: Key | None = None
    followers: tuple = ()
    rate: bool = False                  # a head with a spikes → rate adapter
    defer: bool = False                 # receives one window late (run-ahead)

    @property
    def sends_to(self) -> dict[Key, np.ndarray]:
        """Reader → global region indices this part sends it (for tests and counts)."""
        cols = self.regions if not self.rate else self.regions[:1]
        return {dest: np.asarray(cols)[idx] for dest, idx in self.send}


@dataclass
class Pattern:
    """Routes of every coupled part (``routes[key]``), plus what the ring needs."""

    routes: dict[Key, Route]
    window_steps: int
    n_afferent: int
    ring: int                           # ring slots (as the central bus keeps)
    initial_length: int


def _as_index(pos: np.ndarray):
    """A slice when ``pos`` is a contiguous ascending run (cheap indexing), else ``pos``."""
    pos = np.asarray(pos, dtype=np.int64)
    if pos.size and np.array_equal(pos, np.arange(pos[0], pos[0] + pos.size)):
        return slice(int(pos[0]), int(pos[0]) + pos.size)
    return pos


def _columns(a: np.ndarray, idx) -> np.ndarray:
    """``a[:, :, idx]``: a slice's view, or an index array's columns by ``take`` (the same
    copy as fancy indexing, at half its cost)."""
    return a[:, :, idx] if type(idx) is slice else a.take(idx, axis=2)


def _runs(pos, most: int = 4):
    """``pos`` as ``[(destination slice, source slice)]`` of contiguous runs (a few slice
    copies are cheaper than one fancy-indexed assignment), or ``None`` for many runs."""
    if isinstance(pos, slice):
        return [(pos, slice(0, pos.stop - pos.start))]
    cuts = np.flatnonzero(np.diff(pos) != 1) + 1
    if cuts.size + 1 > most:
        return None
    bounds = [0, *cuts.tolist(), pos.size]
    return [(slice(int(pos[a]), int(pos[b - 1]) + 1), slice(a, b))
            for a, b in zip(bounds[:-1], bounds[1:])]


def exchange_pattern(scenario, layout, plan) -> Pattern | None:
    """The pattern of ``scenario`` in ``plan`` (``None`` when the bus is not used); the same
    on every rank (computed, never sent)."""
    if not layout.active(plan):
        return None
    weights = np.asarray(scenario.connectome.weights, dtype=np.float64)
    routes: dict[Key, Route] = {}
    owner: dict[int, Key] = {}
    for g in plan.groups:
        if g.name not in layout.coupled:
            continue
        eng = scenario.engines[g.name]
        for p in range(g.n_parts):
            key = (g.name, p)
            regions = np.asarray(eng.part_regions(p, g.n_parts), dtype=np.int64)
            r = Route(key, eng.takes, eng.exports, regions)
            if eng.exports is Export.SPIKE_COUNTS:
                r.head = (g.name, 0)
                if p == 0:
                    r.followers = tuple((g.name, q) for q in range(1, g.n_parts))
                    r.rate = g.name in layout.outputs_of
            routes[key] = r
            if eng.exports is Export.AFFERENT:
                for j in regions:
                    owner[int(j)] = key             # (a later exporter wins, as on the bus)
            elif r.rate:
                owner[int(regions[0])] = key
    for r in routes.values():
        if r.takes is Take.SOURCES:
            srcs = np.flatnonzero((weights[r.regions] != 0).any(axis=0))
            r.reads = srcs[~np.isin(srcs, r.regions)].astype(np.int64)
        elif r.takes is Take.DRIVE:
            if r.regions.size != 1:
                raise ValueError(f"engine {r.key[0]!r} takes the drive of one region, "
                                 f"but stands for {r.regions.size}")
            r.reads = np.flatnonzero(weights[int(r.regions[0])]).astype(np.int64)
    driven = {int(r.regions[0]): r.key[0] for r in routes.values()
              if r.takes is Take.DRIVE and getattr(layout, "uses_bus", True)}
    check_driven_self_delays(weights, np.asarray(layout.steps), driven, int(layout.window_steps),
                             layout.bus_dt_ms, scenario.connectome.region_labels,
                             {r: int(getattr(scenario.engines[n], "bus_read_ahead_steps", 0))
                              for r, n in driven.items()})
    for dest in sorted(routes):
        reads = routes[dest].reads
        by_owner: dict[Key, list[int]] = {}
        for pos, j in enumerate(reads):
            src = owner.get(int(j))
            if src is not None:
                by_owner.setdefault(src, []).append(pos)
        for src in sorted(by_owner):
            pos = np.array(by_owner[src], dtype=np.int64)
            s = routes[src]
            cols = reads[pos]
            idx = (np.zeros(cols.size, dtype=np.int64) if s.rate
                   else np.searchsorted(s.regions, cols) if np.all(np.diff(s.regions) > 0)
                   else np.array([int(np.flatnonzero(s.regions == c)[-1]) for c in cols]))
            s.send.append((dest, _as_index(idx)))
            routes[dest].recv.append((src, _as_index(pos)))
    S = int(layout.window_steps)
    steps = np.asarray(layout.steps)
    for r in routes.values():
        if r.takes is Take.DRIVE and r.recv:
            got = np.concatenate([np.atleast_1d(r.reads[pos]) for _, pos in r.recv])
            r.defer = bool(steps[int(r.regions[0]), got].min() >= 2 * S)
    max_delay = max_delay_steps(weights, layout.steps)
    ring = max_delay + int(layout.read_ahead) + 2 * S + 1
    return Pattern(routes, S, int(layout.n_afferent), ring, max_delay + 1 + int(layout.read_ahead))


class PartLink:
    """A part's end of the distributed bus: what it keeps, sends and receives (see module
    docstring).  ``rate``: the region's :class:`RegionRate` on a head with an adapter."""

    def __init__(self, pattern: Pattern, key: Key, steps: np.ndarray, weights: np.ndarray,
                 rate: RegionRate | None = None, label: str = ""):
        self.route = r = pattern.routes[key]
        self.key = key
        self.S = pattern.window_steps
        self.n_aff = pattern.n_afferent
        self.L = pattern.initial_length
        self.H = pattern.ring
        self.rate = rate
        self.label = label
        n_reads = r.reads.size
        self._initial = np.zeros((self.L, self.n_aff, n_reads))
        self._counts = None
        self._started = False                   # whether the first window has run
        self.defer = r.defer
        self._late: int | None = None            # a window whose columns are still to come
        if r.takes is Take.SOURCES:
            self.block = np.zeros((self.S, self.n_aff, n_reads))
        elif r.takes is Take.DRIVE:
            R = int(r.regions[0])
            self.hist = np.zeros((self.H, self.n_aff, n_reads))
            self._srcs = np.arange(n_reads, dtype=np.int64)        # reads are ascending
            self._delays = np.asarray(steps[R, r.reads], dtype=np.int64).copy()
            self._w = np.asarray(weights[R, r.reads], dtype=np.float64).copy()
        self._ones = np.ones((1, self.n_aff, 1))
        #: an adapter that gives the afferent block itself (RegionRate.afferent_block)
        self._block = getattr(rate, "afferent_block", None)
        self._recv = [(src, pos, _runs(pos)) for src, pos in r.recv]
        self._tr = None                          # the transport the lanes below are of

    @property
    def live_rate_hz(self) -> float:
        """A spiking region's head: its last window's mean pooled rate (Hz; live monitor)."""
        return self.rate.last_rate_hz if self.rate is not None else 0.0

    # -- set-up ------------------------------------------------------------------------
    def send_initial(self, transport, initial: dict) -> None:
        """Send the initial history (steps ``−(L−1) … 0``) to every reader."""
        r = self.route
        if not r.send:
            return
        if r.rate:
            a = np.full((self.L, self.n_aff, 1), self.rate.initial_afferent())
        else:
            a = initial.get("afferent") if initial else None
            if a is None or a.shape[0] < self.L:
                got = 0 if a is None else a.shape[0]
                raise RuntimeError(f"engine {self.key[0]!r} exported {got} initial samples, "
                                   f"the bus needs {self.L}")
            a = a[a.shape[0] - self.L:]
        for dest, idx in r.send:
            transport.send(dest, Kind.HISTORY, {"a": _columns(a, idx)}, self.key)

    def recv_initial(self, transport) -> None:
        for src, pos in self.route.recv:
            self._initial[:, :, pos] = transport.recv(src, Kind.HISTORY, self.key)["a"]
        if self.route.takes is Take.DRIVE:
            L = self.L
            for i in range(L):
                self.hist[(i - (L - 1)) % self.H] = self._initial[i]

    # -- per window --------------------------------------------------------------------
    def _bind(self, transport) -> None:
        """This part's per-window lanes (:meth:`cosim.transport.Transport.lane`), once."""
        self._tr = transport
        r, me = self.route, self.key
        self._out = [(transport.lane(me, dest, Kind.AFFERENT), idx) for dest, idx in r.send]
        self._in = [(transport.lane(src, me, Kind.AFFERENT), pos, runs)
                    for src, pos, runs in self._recv]
        self._to_head = (transport.lane(me, r.head, Kind.COUNTS)
                         if r.head is not None and r.head != me else None)
        self._from = [transport.lane(f, me, Kind.COUNTS) for f in r.followers]

    def input(self, k: int) -> dict:
        """What the part's engine takes in window ``k``."""
        r = self.route
        if r.takes is Take.SOURCES:
            return {"sources": self.block if self._started else self._initial}
        if r.takes is Take.DRIVE:
            out = np.empty((self.S, self.n_aff))
            _delayed_weighted_sum(self.hist, k * self.S, self._srcs, self._delays, self._w, out)
            return {"drive": out}
        return {}

    def send(self, k: int, exports: dict, transport) -> None:
        """Phase 1: the afferent columns to each reader, or the spike counts to the head."""
        if self._tr is not transport:
            self._bind(transport)
        if "afferent" in exports:
            a = exports["afferent"]
            for lane, idx in self._out:
                x = _columns(a, idx)
                lane.put({"a": x}, x.nbytes)
        elif "counts" in exports:
            if self.route.head == self.key:
                self._counts = exports["counts"]
            elif self._to_head is not None:
                msg = {"c": exports["counts"]}
                self._to_head.put(msg, payload_nbytes(msg))

    def combine(self, k: int, transport) -> None:
        """Phase 2 (a head): the region's counts, summed in part order → its afferent."""
        r = self.route
        if r.head != self.key:
            return
        if self._tr is not transport:
            self._bind(transport)
        c = self._counts
        for lane in self._from:
            c = c + lane.get()["c"]
        self._counts = None
        if not r.rate:
            return
        if self._block is not None:                           # (S, n_aff, 1) in one call
            a = self._block(c, self.n_aff)
        else:
            a = self.rate.afferent(c).reshape(-1, 1, 1) * self._ones          # (S,) → block
        for lane, idx in self._out:
            x = _columns(a, idx)
            lane.put({"a": x}, x.nbytes)

    def receive(self, k: int, transport) -> None:
        """Phase 3: window ``k``'s columns from every owner into what the part keeps."""
        r = self.route
        self._started = True
        if self._tr is not transport:
            self._bind(transport)
        if r.takes is Take.SOURCES:
            for lane, pos, runs in self._in:
                a = lane.get()["a"]
                if runs is None:
                    self.block[:, :, pos] = a
                else:
                    for dst, col in runs:
                        self.block[:, :, dst] = a[:, :, col]
        elif r.takes is Take.DRIVE:
            s0 = (k * self.S + 1) % self.H
            split = min(self.S, self.H - s0)
            hist = self.hist
            for lane, pos, runs in self._in:
                a = lane.get()["a"]
                if runs is None:
                    hist[s0:s0 + split, :, pos] = a[:split]
                    if split < self.S:
                        hist[:self.S - split, :, pos] = a[split:]
                    continue
                for dst, col in runs:
                    hist[s0:s0 + split, :, dst] = a[:split, :, col]
                    if split < self.S:
                        hist[:self.S - split, :, dst] = a[split:, :, col]

    def arrive(self, k: int, transport, hold: bool) -> None:
        """Phase 3 as the loop calls it: window ``k``'s columns now, or — a deferring part,
        ``hold`` — the previous window's, leaving window ``k``'s for the next call."""
        if self._late is not None:
            self.receive(self._late, transport)
            self._late = None
        if self.defer and hold:
            self._late = k
            self._started = True
        else:
            self.receive(k, transport)

    def catch_up(self, transport) -> None:
        """Receive a deferred window (before a final checkpoint, at the end)."""
        if self._late is not None:
            self.receive(self._late, transport)
            self._late = None

    # -- checkpoints ------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        assert self._late is None, "state of a part with a window still to come"
        st = {}
        if self.route.takes is Take.SOURCES:
            st["block"] = self.block.copy()
        elif self.route.takes is Take.DRIVE:
            st["hist"] = self.hist.copy()
        if self.rate is not None:
            st.update({f"rate/{k}": v for k, v in self.rate.state().items()})
        return st

    def restore(self, st: dict[str, np.ndarray]) -> None:
        kept = {Take.SOURCES: "block", Take.DRIVE: "hist"}.get(self.route.takes)
        if kept is not None and kept not in st:
            raise CosimError(f"the checkpoint of engine {self.key[0]!r} partition {self.key[1]} "
                             f"holds no bus history (written by a cosim with a central bus?); "
                             f"it cannot be resumed")
        self._started = True
        if "block" in st:
            self.block[...] = st["block"]
        if "hist" in st:
            self.hist[...] = st["hist"]
        if self.rate is not None:
            self.rate.restore({k[5:]: v for k, v in st.items() if k.startswith("rate/")})


def make_link(scenario, layout, pattern: Pattern | None, key: Key) -> PartLink | None:
    """The :class:`PartLink` of part ``key`` (``None``: the part is not on the bus)."""
    if pattern is None or key not in pattern.routes:
        return None
    r = pattern.routes[key]
    rate = None
    if r.rate:
        spec = layout.outputs_of[key[0]]
        n = sum(len(g) for g in layout.spike_populations(scenario, key[0]).values())
        rate = RegionRate(spec, n, layout.bus_dt_ms)
    label = scenario.connectome.region_labels[int(r.regions[0])] if r.regions.size else ""
    return PartLink(pattern, key, layout.steps, np.asarray(scenario.connectome.weights,
                                                           dtype=np.float64), rate, label)
