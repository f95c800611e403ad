"""Moving messages between the nodes of a run: the bus node and the engine parts.

A *message* is a ``dict[str, numpy.ndarray]`` of one :class:`~cosim.messages.Kind`.  Nodes
are addressed by name: :data:`BUS` or a part key ``(engine, part)``.  The window loop
(:mod:`cosim.runtime`) is written once against :class:`Transport`; two implementations:

:class:`InProcessTransport`
    every node in this process: a message is handed over as the same object, in order
    (first in, first out per sender, receiver and kind);
:class:`MPITransport`
    one node per rank; moves messages with mpi4py buffer-based point-to-point calls: a
message is packed into one contiguous byte buffer (a small header of names, dtypes and
shapes, then the raw data, 8-byte aligned) and sent with ``Isend``; the receiver matches it
with ``Improbe`` and receives exactly its size with ``Mrecv`` — no pickling of array data.
A rank that fails tells the bus with :meth:`MPITransport.send_error`; whatever the bus is
waiting for, its next receive raises :class:`RemoteError`.

Timing: :class:`MPITransport` accumulates the seconds spent *waiting* for a message to
arrive (polling ``Improbe``: the partner is still computing) separately from the seconds
spent *communicating* (packing, posting, receiving and unpacking), so a run can report how
much of its wall time is communication proper.

Traffic counters: every transport counts, per node and per message kind, the messages and
bytes the node sent and received, cumulatively (a dictionary look-up and four integer adds
per message).  :class:`MPITransport` counts a message's packed size (:func:`pack`: header
and 8-byte-aligned data, exactly the bytes MPI moves); :class:`InProcessTransport` moves
no bytes and counts the payload, ``sum(a.nbytes)`` over the message's arrays (no header).
Code that moves data outside :meth:`Transport.send` / :meth:`Transport.recv` (a collective
over another communicator) reports it with :meth:`Transport.count`.  The window loop calls
:meth:`Transport.window_done` after every window; :meth:`Transport.traffic` gives the
totals and the *steady* per-window figures (every window but the first and the last: no
start-up, no close).
"""

from __future__ import annotations

import json
import time
from collections import deque

import numpy as np

from .messages import Kind, Output

Message = dict
#: The address of the bus node (rank 0 under MPI).
BUS = "bus"

_ALIGN = 8


def pack(msg: Message) -> np.ndarray:
    """One uint8 buffer holding every array of ``msg`` (see module docstring)."""
    items = []
    offset = 0
    arrays = [np.asarray(v, order="C") for v in msg.values()]   # keeps 0-d arrays 0-d
    for name, a in zip(msg, arrays):
        items.append((name, a.dtype.str, list(a.shape), offset, a.nbytes))
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    header = json.dumps(items, separators=(",", ":")).encode()
    hlen = -(-(len(header) + 8) // _ALIGN) * _ALIGN
    buf = np.zeros(hlen + offset, dtype=np.uint8)
    buf[:8] = np.frombuffer(np.array([len(header)], dtype="<u8").tobytes(), dtype=np.uint8)
    buf[8:8 + len(header)] = np.frombuffer(header, dtype=np.uint8)
    for (name, _, _, off, nbytes), a in zip(items, arrays):
        if nbytes:
            buf[hlen + off:hlen + off + nbytes] = a.reshape(-1).view(np.uint8)
    return buf


def unpack(buf: np.ndarray) -> Message:
    """Inverse of :func:`pack` (arrays are copies, independent of ``buf``)."""
    n = int(np.frombuffer(buf[:8].tobytes(), dtype="<u8")[0])
    items = json.loads(buf[8:8 + n].tobytes())
    hlen = -(-(n + 8) // _ALIGN) * _ALIGN
    out = {}
    for name, dtype, shape, off, nbytes in items:
        raw = buf[hlen + off:hlen + off + nbytes]
        out[name] = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype)).reshape(tuple(shape))
    return out


class Stalled(TimeoutError):
    """No message from a partner for the exchange timeout: it stopped responding."""

    def __init__(self, rank: int, who: str, seconds: float):
        super().__init__(f"{who} (rank {rank}) stopped responding: no message for {seconds:g} s "
                         f"(simulation.exchange_timeout / startup_timeout)")
        self.rank, self.who = rank, who


class PartnerLost(RuntimeError):
    """MPI failed while receiving from a partner: it died (the watchdog names who died
    first, see :mod:`cosim.watchdog`)."""

    def __init__(self, rank: int, who: str, detail: str):
        super().__init__(f"lost {who} (rank {rank}): {detail}")
        self.rank, self.who = rank, who


class RemoteError(RuntimeError):
    """A partner rank reported that it failed (see :meth:`MPITransport.send_error`)."""

    def __init__(self, rank: int, text: str, code: int):
        super().__init__(text)
        self.rank, self.code = rank, code


TAG_ERROR = int(Kind.ERROR)
TAG_WAITING = TAG_ERROR + 2        # "I am waiting for rank r" (to the coordinator)
#: the notices' values besides a rank (0: the coordinator): no longer waiting; waiting in
#: the stop vote (for whichever rank has not joined it or stopped half-way through its rounds)
NOT_WAITING, IN_VOTE = -1, -2
#: a waiting part repeats its notice this often; one not repeated for 2 periods is stale
#: (the part stopped while it waited)
NOTICE_S = 1.0


class Transport:
    """What the window loop needs of a transport.

    ``send(dest, kind, msg)`` from this process's node ``src`` (the only node of a rank, or
    any node in one process: pass ``src``), ``recv(src, kind, dest)``; ``flush_sends()``
    once per window, ``close()`` at the end.  ``comm_s`` / ``wait_s``: seconds spent
    communicating and waiting for a partner.
    """

    comm_s: float = 0.0
    wait_s: float = 0.0
    #: whether a message reaches its receiver as the sender's object (in one process)
    hands_over = False
    #: called while a receive or a vote waits (MPI: a part's check for "@abort")
    idle = None
    #: the counters, flat: ``_slot[(node, kind)] = (i, j)``: ``_flat[i:i + 4]`` are the
    #: (node, kind)'s [sent msgs, bytes, received msgs, bytes], ``_flat[j:j + 4]`` the node's
    #: over every kind (one list, so a window's snapshot is one list copy)
    _flat: list | None = None
    _slot: dict | None = None
    _node_at: dict | None = None       # node → j
    _windows: "_WindowTraffic | None" = None
    #: the node of this process when a call does not name one (under MPI: the rank's node)
    node = None

    # -- traffic counters (see the module docstring) ------------------------------------
    def count(self, kind, n_msgs: int, n_bytes: int, node=None, received: bool = False) -> None:
        """Add ``n_msgs`` messages of ``n_bytes`` bytes in all, of ``kind`` (a
        :class:`~cosim.messages.Kind` or a name such as ``"allgather"``), to what ``node``
        (default: this process's node) sent or, with ``received``, received."""
        if node is None:
            node = self.node
        slot = self._slot.get((node, kind)) if self._slot is not None else None
        if slot is None:
            slot = self._new_slot(node, kind)
        i, j = slot
        if received:
            i += 2
            j += 2
        f = self._flat
        f[i] += n_msgs
        f[i + 1] += n_bytes
        f[j] += n_msgs
        f[j + 1] += n_bytes

    def _new_slot(self, node, kind) -> tuple[int, int]:
        if self._slot is None:
            self._flat, self._slot, self._node_at = [], {}, {}
        f = self._flat
        j = self._node_at.get(node)
        if j is None:
            j = self._node_at[node] = len(f)
            f.extend((0, 0, 0, 0))
        slot = self._slot[(node, kind)] = (len(f), j)
        f.extend((0, 0, 0, 0))
        return slot

    def _by_key(self, flat: list | None = None) -> dict:
        """``{(node, kind): [4 counters]}`` of a snapshot of :attr:`_flat` (default: now);
        a key the snapshot predates counts zero."""
        flat = self._flat if flat is None else flat
        out = {}
        for key, (i, _) in (self._slot or {}).items():
            out[key] = list(flat[i:i + 4]) if i < len(flat) else [0, 0, 0, 0]
        return out

    def counters(self) -> dict:
        """``{(node, kind name): [sent messages, sent bytes, received messages, received
        bytes]}``, cumulative since the transport was made (a copy)."""
        return {(n, _kind_name(k)): c for (n, k), c in self._by_key().items()}

    def window_done(self, k: int) -> None:
        """Window ``k`` is over for this process (the window loop calls this once per window)."""
        if self._windows is None:
            self._windows = _WindowTraffic()
        self._windows.done(list(self._flat or ()), self._node_at or {})

    def traffic(self) -> dict:
        """This process's traffic, JSON-ready (nodes as ``"bus"`` / ``"engine/part"``)::

            {"total":  {node: {kind: [sent msgs, sent bytes, recv msgs, recv bytes]}},
             "steady": {node: {kind: [...]}},      # summed over the steady windows
             "steady_windows": n,                   # windows but the first and the last
             "window_max": {node: [...]}, "window_min": {node: [...]}}  # all kinds, per window
        """
        w = self._windows or _WindowTraffic()     # (its figures settle when read)
        steady = {}
        if w.n:
            a, b = self._by_key(w.first), self._by_key(w.prev)
            steady = {key: [c[i] - a[key][i] for i in range(4)] for key, c in b.items()
                      if w.known(key, self._slot)}
        return {"total": _by_node(self._by_key()), "steady": _by_node(steady),
                "steady_windows": w.n, "window_max": {node_name(n): v for n, v in w.max.items()},
                "window_min": {node_name(n): v for n, v in w.min.items()}}

    def send(self, dest, kind: Kind, msg: Message, src=None) -> None:  # pragma: no cover
        raise NotImplementedError

    def recv(self, src, kind: Kind, dest=None) -> Message:  # pragma: no cover
        raise NotImplementedError

    def flush_sends(self) -> None:
        pass

    def lane(self, src, dest, kind: Kind):
        """The messages from node ``src`` to node ``dest`` of ``kind``, held by one end for
        its per-window messages: ``put(msg, n)`` (``n``: the payload bytes,
        :func:`payload_nbytes`) and ``get()`` — here the transport's ``send`` and ``recv``;
        in one process the queue itself (:class:`_Lane`)."""
        return _Relay(self, src, dest, kind)

    def poll(self, src, kind: Kind, dest=None) -> Message | None:
        """A message of ``kind`` from ``src`` if one has arrived, else ``None`` (never waits)."""
        return None

    def vote_start(self, value: int):
        """Start a vote of every process: the largest ``value`` (e.g. a signal number).  The
        handle goes to :meth:`vote_finish`, called by every process at the same point (one
        window later, so the vote travels while the window computes).  In one process every
        node is here: the vote is the value."""
        return int(value)

    def vote_finish(self, handle) -> int:
        return int(handle)

    def vote_ready(self, handle) -> bool:
        """Whether the vote is complete (then it is done with: no :meth:`vote_finish`)."""
        return True

    def linger(self, seconds: float) -> None:
        """A failed rank's last ``seconds`` before it ends itself (see
        :meth:`MPITransport.linger`)."""
        time.sleep(seconds)

    def vote_wait(self, handle, unanswered) -> int:
        """The coordinator's wait for a vote it joined (its parts send no per-window
        output): like :meth:`vote_finish`, but a vote that does not complete names the silent
        rank — ``unanswered(guess)``, ``guess`` where the waiting notices point to."""
        return self.vote_finish(handle)

    def steady(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Lane:
    """The messages of one ``(src, dest, kind)`` in one process, queued with their sizes,
    and the two ends' counter slots (made at the first send and at the first receive).  A
    part's bus messages go through the lane it holds (:meth:`Transport.lane`), so a
    message costs no lookup."""

    __slots__ = ("tr", "src", "dest", "kind", "q", "out", "into")

    def __init__(self, tr, src, dest, kind):
        self.tr, self.src, self.dest, self.kind = tr, src, dest, kind
        self.q: deque = deque()
        self.out = self.into = None

    def put(self, msg, n: int) -> None:
        """Send ``msg`` of ``n`` payload bytes."""
        self.q.append((msg, n))
        if self.out is None:
            tr = self.tr
            tr.count(self.kind, 1, n, self.src)               # makes the sender's slot
            self.out = tr._slot[(tr.node if self.src is None else self.src, self.kind)]
            return
        i, j = self.out
        f = self.tr._flat
        f[i] += 1
        f[i + 1] += n
        f[j] += 1
        f[j + 1] += n

    def get(self):
        """The oldest message (never waits: in one process it was sent before)."""
        if not self.q:
            raise RuntimeError(f"protocol error: node {self.dest!r} waits for a {self.kind.name} "
                               f"message from {self.src!r} that was never sent")
        msg, n = self.q.popleft()
        if self.into is None:
            tr = self.tr
            tr.count(self.kind, 1, n, self.dest, received=True)   # the receiver's slot
            self.into = tr._slot[(tr.node if self.dest is None else self.dest, self.kind)]
            return msg
        i, j = self.into
        f = self.tr._flat
        f[i + 2] += 1
        f[i + 3] += n
        f[j + 2] += 1
        f[j + 3] += n
        return msg


class _Relay:
    """:meth:`Transport.lane` of a transport without lanes: its ``send`` and ``recv``."""

    __slots__ = ("tr", "src", "dest", "kind")

    def __init__(self, tr, src, dest, kind):
        self.tr, self.src, self.dest, self.kind = tr, src, dest, kind

    def put(self, msg, n: int) -> None:
        self.tr.send(self.dest, self.kind, msg, self.src)

    def get(self):
        return self.tr.recv(self.src, self.kind, self.dest)


class InProcessTransport(Transport):
    """Every node in this process: messages are queued and handed over unchanged."""

    def __init__(self):
        self._lanes: dict = {}              # (src, dest, kind) → _Lane

    #: the receiver gets the sender's object (the window loop hands over an OUTPUT as a
    #: :class:`~cosim.messages.Output`, unencoded)
    hands_over = True

    def lane(self, src, dest, kind: Kind) -> _Lane:
        ln = self._lanes.get((src, dest, kind))
        if ln is None:
            ln = self._lanes[(src, dest, kind)] = _Lane(self, src, dest, kind)
        return ln

    def send(self, dest, kind: Kind, msg: Message, src=None) -> None:
        if type(msg) is Output:
            n = msg.nbytes
        elif len(msg) == 1 and type(v := next(iter(msg.values()))) is np.ndarray:
            n = v.nbytes                                       # (a bus message: one array)
        else:
            n = payload_nbytes(msg)
        self.lane(src, dest, kind).put(msg, n)

    def recv(self, src, kind: Kind, dest=None) -> Message:
        ln = self._lanes.get((src, dest, kind))
        if ln is None:
            raise RuntimeError(f"protocol error: node {dest!r} waits for a {kind.name} message "
                               f"from {src!r} that was never sent")
        return ln.get()

    def poll(self, src, kind: Kind, dest=None) -> Message | None:
        ln = self._lanes.get((src, dest, kind))
        return ln.get() if ln is not None and ln.q else None


class MPITransport(Transport):
    """Point-to-point messages over an mpi4py communicator (buffer-based, non-blocking sends).

    ``rank_of``: node address → rank; ``labels``: rank → what it runs (for messages).
    """

    def __init__(self, comm, rank_of: dict, timeout_s: float = 0.0,
                 labels: dict[int, str] | None = None, startup_s: float | None = None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm
        self.rank_of = dict(rank_of)
        #: waits give up after ``startup_s`` until :meth:`steady`, then after ``timeout_s``
        self.steady_s = float(timeout_s)
        self.timeout_s = float(timeout_s if startup_s is None else startup_s)
        self.labels = labels or {}
        self.rank = comm.Get_rank()
        #: called while a receive or a vote waits (a part's check for the coordinator's
        #: "@abort", :func:`cosim.runtime.window_loop`)
        self.idle = None
        self._pending: list = []
        self.wait_s = 0.0
        self.comm_s = 0.0
        self.node = next((n for n, r in self.rank_of.items() if r == self.rank), self.rank)

    def send(self, dest, kind: Kind, msg: Message, src=None) -> None:
        t = time.perf_counter()
        buf = pack(msg)
        req = self.comm.Isend([buf, self.MPI.BYTE], dest=self.rank_of[dest], tag=int(kind))
        self._pending.append((req, buf))  # keep the buffer alive until the send completes
        self.count(kind, 1, buf.nbytes)
        self.comm_s += time.perf_counter() - t

    def recv(self, src, kind: Kind, dest=None) -> Message:
        t0 = time.perf_counter()
        status = self.MPI.Status()
        rank = self.rank_of[src]
        try:
            m = self._wait_for(rank, int(kind), status, t0)
            t1 = time.perf_counter()
            buf = np.empty(status.Get_count(self.MPI.BYTE), dtype=np.uint8)
            m.Recv([buf, self.MPI.BYTE])
        except self.MPI.Exception as exc:     # the partner vanished mid-message
            raise PartnerLost(rank, self.labels.get(rank, "a partner"),
                              str(exc).splitlines()[0]) from None
        msg = unpack(buf)
        self.count(kind, 1, buf.nbytes, received=True)
        t2 = time.perf_counter()
        self.wait_s += t1 - t0
        self.comm_s += t2 - t1
        return msg

    def wait_collective(self, req, partner: int) -> None:
        """Complete a non-blocking collective of an engine's own communicator (a split
        region's spike exchange) the way :meth:`recv` waits (:meth:`_poll`): the idle hook
        runs (a part answers the coordinator's ping while it waits, so the coordinator can
        tell it from a partner that stopped), an error reported to this rank is raised
        after the grace, the coordinator hears whom it waits for (``partner``: the world
        rank of a member it waits with), and the exchange timeout raises :class:`Stalled`.
        (Not counted in ``wait_s``: the engine's exchange is its compute, as the blocking
        collective was.)"""
        def done():
            try:
                return True if req.Test() else None
            except self.MPI.Exception as exc:      # a member died (the watchdog names it)
                raise PartnerLost(partner, self.labels.get(partner, "a partner"),
                                  str(exc).splitlines()[0]) from None
        self._poll(done, partner, time.perf_counter())

    def _wait_for(self, source: int, tag: int, status, t0: float):
        """Matched probe that waits without burning a core (:meth:`_poll` of ``Improbe``)."""
        return self._poll(lambda: self.comm.Improbe(source=source, tag=tag, status=status),
                          source, t0)

    def _poll(self, ready, source: int, t0: float):
        """Poll ``ready()`` until it returns something, spinning for the first ~20 µs (a
        message that is about to arrive), then sleeping with a backoff of up to 100 µs —
        ranks often share cores with the engines they wait for, and a busy-waiting MPI
        receive would take the CPU the partner needs.  Raises :class:`Stalled` after
        ``timeout_s`` (a partner that died without the launcher noticing), so no rank
        waits forever; ``source``: the rank waited for."""
        nap = 0.0
        t_err = None
        told = None
        while True:
            m = ready()
            if m is not None:
                if told is not None:
                    self._notice(NOT_WAITING)
                return m
            if self.idle is not None:
                self.idle()
            now = time.perf_counter()
            if t_err is None and self._error_waiting():
                t_err = now
            if t_err is not None and now - t_err > self.ERROR_GRACE_S:
                # a rank failed: what the others complete without it (every window before
                # the failed one) came in during the grace; this message does not come
                self._check_errors()
            if self.timeout_s and now - t0 > self.timeout_s:
                silent = self._silent(source)
                raise Stalled(silent, self.labels.get(silent, "a partner"), self.timeout_s)
            if self._notice_due(now - t0, told):
                # tell the coordinator whom this rank waits for, every NOTICE_S (and, once
                # it arrives, that it no longer does): on its own timeout it follows such
                # notices to the rank that is really silent
                told = now
                self._notice(source)
            if now - t0 > 20e-6:
                nap = min(100e-6, nap + 10e-6)
                time.sleep(nap)

    def _notice_due(self, waited_s: float, told: float | None) -> bool:
        """Whether a part tells the coordinator that it waits: after 1 s (or half a shorter
        timeout), then every :data:`NOTICE_S` (``told``: when it last did)."""
        return (self.rank != 0 and waited_s > min(NOTICE_S, self.timeout_s / 2 or NOTICE_S)
                and (told is None or time.perf_counter() - told >= NOTICE_S))

    def _drain_notices(self) -> dict[int, int]:
        """The coordinator: read the waiting notices that came in (latest per rank; when
        each was sent, wall-clock seconds, in ``_sent_at``)."""
        waits = self.__dict__.setdefault("_waits", {})
        sent_at = self.__dict__.setdefault("_sent_at", {})
        st = self.MPI.Status()
        while self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=TAG_WAITING, status=st):
            note = np.empty(2, dtype=np.float64)
            self.comm.Recv([note, self.MPI.DOUBLE], source=st.Get_source(), tag=TAG_WAITING)
            waits[st.Get_source()] = int(note[0])
            sent_at[st.Get_source()] = float(note[1])
        return waits

    def _notice(self, source: int) -> None:
        """Fire and forget: the coordinator reads notices only on a timeout, so they are
        not waited for (:meth:`close` frees what is still pending).  Stamped with the wall
        clock (ranks on other nodes: as close as their clocks)."""
        note = np.array([source, time.time()], dtype=np.float64)
        self._notes = [n for n in getattr(self, "_notes", []) if not n[0].Test()]
        self._notes.append((self.comm.Isend([note, self.MPI.DOUBLE], dest=0, tag=TAG_WAITING),
                            note))

    #: after a rank reported an error, how long a receive still waits for its message
    ERROR_GRACE_S = 2.0

    def _silent(self, source: int) -> int:
        """The rank a silent ``source`` is itself waiting for, followed to the end (the
        notices of :meth:`_poll`); ``source`` without notices.  A part whose notice is
        stale (not repeated for 2 × :data:`NOTICE_S`) stopped while it waited: it is the
        one.  A chain that ends at a part waiting in the stop vote (or for the
        coordinator) ends at no one: the vote waits for every rank, and one that stopped
        may have joined it and stopped inside its rounds, so that some ranks complete it
        and others wait.  The silent rank is then a part whose notice is stale, else one
        that does not say it waits — first one that another part waits for."""
        waits = self._drain_notices()
        sent_at = self.__dict__.get("_sent_at", {})
        now = time.time()

        def stale(r: int) -> bool:
            return waits.get(r, NOT_WAITING) != NOT_WAITING and now - sent_at[r] > 2 * NOTICE_S

        seen = {source}
        while not stale(source) and waits.get(source, NOT_WAITING) > 0:
            if waits[source] in seen:
                break
            source = waits[source]
            seen.add(source)
        if stale(source) or waits.get(source, NOT_WAITING) == NOT_WAITING:
            return source
        parts = range(1, self.comm.Get_size())
        quiet = [r for r in parts if waits.get(r, NOT_WAITING) == NOT_WAITING]
        awaited = [r for r in quiet if r in waits.values()]
        return ([r for r in parts if stale(r)] or awaited or quiet or [source])[0]

    def poll(self, src, kind: Kind, dest=None) -> Message | None:
        if self.comm.Iprobe(source=self.rank_of[src], tag=int(kind)):
            return self.recv(src, kind, dest)
        return None

    def vote_start(self, value: int):
        """A non-blocking ``Iallreduce(MAX)`` over every rank of the communicator (no
        other collective runs on it during the loop; O(log P) messages per rank)."""
        t = time.perf_counter()
        send = np.array([value], dtype=np.int64)
        recv = np.zeros(1, dtype=np.int64)
        req = self.comm.Iallreduce([send, self.MPI.INT64_T], [recv, self.MPI.INT64_T],
                                   op=self.MPI.MAX)
        # the votes not known complete, for :meth:`linger` (a completed request is null)
        self._votes = [h for h in getattr(self, "_votes", []) if h[0] != self.MPI.REQUEST_NULL]
        self._votes.append((req, send, recv))
        self.comm_s += time.perf_counter() - t
        return req, send, recv

    def linger(self, seconds: float) -> None:
        """A failed rank's last ``seconds`` (its error sent, the coordinator closing the
        output): keep its open votes progressing.  MPI advances a non-blocking collective
        only inside MPI calls, so a rank that slept here held back the vote of the last
        window it completed — the other ranks' ``Iallreduce`` waited for its part of the
        later rounds — and the coordinator, which learns from that vote that every part
        finished the window, closed the output one window short."""
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            try:
                self._votes = [h for h in getattr(self, "_votes", []) if not h[0].Test()]
            except self.MPI.Exception:        # a partner died: nothing left to complete
                self._votes = []
            time.sleep(1e-3)

    def vote_ready(self, handle) -> bool:
        try:
            return bool(handle[0].Test())
        except self.MPI.Exception as exc:          # a rank died (the watchdog names it)
            raise PartnerLost(0, self.labels.get(0, "the coordinator"),
                              str(exc).splitlines()[0]) from None

    def vote_finish(self, handle) -> int:
        """Complete a vote; polls like :meth:`recv`: an error reported to this rank is
        raised; a vote that does not complete within the timeout raises :class:`Stalled`
        naming the coordinator (rank 0) — it hears from every part every window with the
        shortest timeout and names a silent part first, so a part still waiting for the
        vote waits for it."""
        def stalled() -> int:
            return 0
        return self._complete_vote(handle, stalled, grace=False)

    def vote_wait(self, handle, unanswered) -> int:
        """The coordinator completes a vote: an error a rank reported is raised after
        :attr:`ERROR_GRACE_S` (the windows before the failed one complete meanwhile); on
        the timeout ``unanswered(guess)`` names the silent rank — the notices' chain ends
        at a rank that sent none: silent, or itself waiting in this vote for the silent
        one, so the chain's end is only the guess and the ping tells them apart."""
        def stalled() -> int:
            notices = self._drain_notices()
            start = next((w for w in notices.values() if w > 0),
                         next((r for r, w in notices.items() if w in (IN_VOTE, 0)), None))
            return unanswered(None if start is None else self._silent(start))
        return self._complete_vote(handle, stalled, grace=True)

    def _complete_vote(self, handle, stalled, *, grace: bool) -> int:
        """Poll a vote's request until it completes (spin ~20 µs, then naps of up to
        100 µs); a dead rank raises :class:`PartnerLost`, the timeout :class:`Stalled`
        naming ``stalled()``; errors reported to this rank are raised at once, or with
        ``grace`` after :attr:`ERROR_GRACE_S`."""
        req, _, recv = handle
        t0 = time.perf_counter()
        nap = 0.0
        t_err = None
        told = None
        while True:
            try:
                if req.Test():
                    if told is not None:
                        self._notice(NOT_WAITING)
                    break
            except self.MPI.Exception as exc:      # a rank died (the watchdog names it)
                raise PartnerLost(0, self.labels.get(0, "the coordinator"),
                                  str(exc).splitlines()[0]) from None
            now = time.perf_counter()
            if not grace:
                self._check_errors()
                if self.idle is not None:
                    self.idle()
            else:
                if t_err is None and self._error_waiting():
                    t_err = now
                if t_err is not None and now - t_err > self.ERROR_GRACE_S:
                    self._check_errors()      # the windows before the failed one are done
            if self._notice_due(now - t0, told):
                told = now                  # a part waits in the vote: the coordinator
                self._notice(IN_VOTE)       # follows no chain through it (:meth:`_silent`)
            if self.timeout_s and now - t0 > self.timeout_s:
                silent = stalled()
                label = self.labels.get(silent, "the coordinator" if silent == 0 else "a partner")
                raise Stalled(silent, label, self.timeout_s)
            if now - t0 > 20e-6:
                nap = min(100e-6, nap + 10e-6)
                time.sleep(nap)
        self.wait_s += time.perf_counter() - t0
        return int(recv[0])

    def steady(self) -> None:
        """Start-up is over (the first window is done): from now on the exchange timeout."""
        self.timeout_s = self.steady_s

    def send_error(self, dest, text: str, code: int) -> None:
        """Tell node ``dest`` that this rank failed (``dest`` raises :class:`RemoteError`
        in its next :meth:`recv`, whatever it is waiting for)."""
        rank = self.rank_of.get(dest, dest)
        # the messages this rank sent before it failed (e.g. the outputs of the windows it
        # completed) are delivered first, so that ``dest`` sees them before the error
        t0 = time.perf_counter()
        while self._pending and time.perf_counter() - t0 < 10.0:
            self._pending = [p for p in self._pending if not p[0].Test()]
            time.sleep(1e-4)
        buf = np.frombuffer(text.encode(errors="replace"), dtype=np.uint8).copy()
        self.comm.Send([np.array([code], dtype=np.int64), self.MPI.INT64_T], dest=rank,
                       tag=TAG_ERROR + 1)
        self.comm.Send([buf, self.MPI.BYTE], dest=rank, tag=TAG_ERROR)

    def _error_waiting(self) -> bool:
        return bool(self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=TAG_ERROR + 1))

    def _check_errors(self) -> None:
        st = self.MPI.Status()
        if not self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=TAG_ERROR + 1, status=st):
            return
        src = st.Get_source()
        code = np.empty(1, dtype=np.int64)
        self.comm.Recv([code, self.MPI.INT64_T], source=src, tag=TAG_ERROR + 1)
        st2 = self.MPI.Status()
        self.comm.Probe(source=src, tag=TAG_ERROR, status=st2)
        buf = np.empty(st2.Get_count(self.MPI.BYTE), dtype=np.uint8)
        self.comm.Recv([buf, self.MPI.BYTE], source=src, tag=TAG_ERROR)
        raise RemoteError(src, buf.tobytes().decode(errors="replace"), int(code[0]))

    def flush_sends(self) -> None:
        """Complete sends whose buffers may be reused (call once per window)."""
        if self.rank == 0:
            self._drain_notices()
        if not self._pending:
            return
        t = time.perf_counter()
        self._pending = [p for p in self._pending if not p[0].Test()]
        self.comm_s += time.perf_counter() - t

    def close(self) -> None:
        t = time.perf_counter()
        self.MPI.Request.Waitall([p[0] for p in self._pending])
        self._pending.clear()
        t_end = time.perf_counter() + 2.0
        for req, _ in getattr(self, "_notes", []):
            while not req.Test() and time.perf_counter() < t_end:
                time.sleep(1e-3)
        if self.rank == 0:
            self._drain_notices()
        self.comm_s += time.perf_counter() - t


# --------------------------------------------------------------------------------------
# Traffic counters
# --------------------------------------------------------------------------------------

def payload_nbytes(msg: Message) -> int:
    """The data bytes of a message: ``sum(a.nbytes)`` over its arrays (no header)."""
    n = 0
    for v in msg.values():
        if type(v) is np.ndarray:
            n += v.nbytes
        else:
            nb = getattr(v, "nbytes", None)
            n += np.asarray(v).nbytes if nb is None else nb
    return n


def node_name(node) -> str:
    """``"bus"``, ``"engine/part"`` for a part key, ``str`` otherwise."""
    if isinstance(node, tuple):
        return "/".join(str(x) for x in node)
    return str(node)


def _kind_name(kind) -> str:
    return kind.name if isinstance(kind, Kind) else str(kind)


def _by_node(counts: dict) -> dict:
    out: dict = {}
    for (n, k), c in counts.items():
        out.setdefault(node_name(n), {})[_kind_name(k)] = list(c)
    return out


class _WindowTraffic:
    """Per-window figures from the cumulative counters: the steady windows are every
    window but the first and the last (their sums, and each node's largest and smallest
    window over all kinds).  Per window: one copy of the flat counters
    (:attr:`Transport._flat`); the windows' differences are taken every :attr:`BATCH`
    windows, in one array operation, and before any figure is read (:attr:`n`, :attr:`max`,
    :attr:`min`, :attr:`prev` settle first)."""

    BATCH = 64

    def __init__(self):
        self._n = 0
        self.first: list | None = None   # the counters at the end of the first window
        self._prev: list | None = None   # … of the last window committed (or the first)
        self.pending: list = []          # … of the windows since (the last one held back)
        self.nodes: dict = {}            # node → position of its totals
        self._max: dict = {}
        self._min: dict = {}

    @property
    def n(self) -> int:
        """Steady windows so far (every window but the first and the latest)."""
        self.settle()
        return self._n

    @property
    def prev(self) -> list | None:
        """The counters at the end of the last steady window (or the first window)."""
        self.settle()
        return self._prev

    @property
    def max(self) -> dict:
        self.settle()
        return self._max

    @property
    def min(self) -> dict:
        self.settle()
        return self._min

    def done(self, flat: list, nodes: dict) -> None:
        self.nodes = nodes
        if self.first is None:
            self.first = self._prev = flat
            return
        self.pending.append(flat)
        if len(self.pending) > self.BATCH:
            self.settle()

    def settle(self) -> None:
        """Commit every pending window but the latest (it may be the last window)."""
        if len(self.pending) < 2:
            return
        snaps = [self._prev, *self.pending]       # window i's counters: snaps[i] − snaps[i − 1]
        lengths = [len(x) for x in snaps[:-1]]
        if lengths[0] == lengths[-1]:            # (the usual case: no node came in between)
            a = np.array(snaps[:-1], dtype=np.int64)
        else:
            a = np.zeros((len(lengths), lengths[-1]), dtype=np.int64)
            for i, x in enumerate(snaps[:-1]):
                a[i, :len(x)] = x
        d = np.diff(a, axis=0)                   # the windows committed now, one per row
        lengths = np.array(lengths[1:])          # each window's counter count at its end
        for node, j in self.nodes.items():
            rows = d[lengths > j, j:j + 4]       # (a node that came later: not before it)
            if not rows.shape[0]:
                continue
            hi, lo = rows.max(axis=0).tolist(), rows.min(axis=0).tolist()
            if node in self._max:
                hi = [max(x, y) for x, y in zip(hi, self._max[node])]
                lo = [min(x, y) for x, y in zip(lo, self._min[node])]
            self._max[node], self._min[node] = hi, lo
        self._n += d.shape[0]
        self._prev = snaps[-2]
        self.pending = snaps[-1:]

    def known(self, key, slots: dict) -> bool:
        """Whether ``key`` had counters by the end of the last steady window."""
        return slots[key][0] < len(self.prev)
