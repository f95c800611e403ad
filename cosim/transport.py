"""Moving named arrays between the bus and the engines.

A *message* is a ``dict[str, numpy.ndarray]``.  In one process the runtime hands messages
from the coordinator to the parts directly (the same objects, in the same order); across
processes :class:`MPITransport` moves them with mpi4py buffer-based point-to-point calls: a
message is packed into one contiguous byte buffer (a small header of names, dtypes and
shapes, then the raw data, 8-byte aligned) and sent with ``Isend``; the receiver matches it
with ``Improbe`` and receives exactly its size with ``Mrecv`` — no pickling of array data.
A rank that fails tells the bus with :meth:`MPITransport.send_error`; whatever the bus is
waiting for, its next receive raises :class:`RemoteError`.

Timing: :class:`MPITransport` accumulates the seconds spent *waiting* for a message to
arrive (polling ``Improbe``: the partner is still computing) separately from the seconds
spent *communicating* (packing, posting, receiving and unpacking), so a run can report how
much of its wall time is communication proper.
"""

from __future__ import annotations

import json
import time

import numpy as np

Message = dict

_ALIGN = 8


def pack(msg: Message) -> np.ndarray:
    """One uint8 buffer holding every array of ``msg`` (see module docstring)."""
    items = []
    offset = 0
    for name, value in msg.items():
        a = np.ascontiguousarray(value)
        items.append((name, a.dtype.str, list(a.shape), offset, a.nbytes))
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    header = json.dumps(items, separators=(",", ":")).encode()
    hlen = -(-(len(header) + 8) // _ALIGN) * _ALIGN
    buf = np.zeros(hlen + offset, dtype=np.uint8)
    buf[:8] = np.frombuffer(np.array([len(header)], dtype="<u8").tobytes(), dtype=np.uint8)
    buf[8:8 + len(header)] = np.frombuffer(header, dtype=np.uint8)
    for (name, _, _, off, nbytes), value in zip(items, msg.values()):
        if nbytes:
            buf[hlen + off:hlen + off + nbytes] = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
    return buf


def unpack(buf: np.ndarray) -> Message:
    """Inverse of :func:`pack` (arrays are copies, independent of ``buf``)."""
    n = int(np.frombuffer(buf[:8].tobytes(), dtype="<u8")[0])
    items = json.loads(buf[8:8 + n].tobytes())
    hlen = -(-(n + 8) // _ALIGN) * _ALIGN
    out = {}
    for name, dtype, shape, off, nbytes in items:
        raw = buf[hlen + off:hlen + off + nbytes]
        out[name] = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype)).reshape(shape)
    return out


class RemoteError(RuntimeError):
    """A partner rank reported that it failed (see :meth:`MPITransport.send_error`)."""

    def __init__(self, rank: int, text: str, code: int):
        super().__init__(text)
        self.rank, self.code = rank, code


TAG_ERROR = 99


class MPITransport:
    """Point-to-point messages over an mpi4py communicator (buffer-based, non-blocking sends)."""

    def __init__(self, comm, timeout_s: float = 0.0, labels: dict[int, str] | None = None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm
        self.timeout_s = float(timeout_s)
        self.labels = labels or {}
        self.rank = comm.Get_rank()
        self._pending: list = []
        self.wait_s = 0.0
        self.comm_s = 0.0

    def send(self, source: int, dest: int, tag: int, msg: Message) -> None:
        t = time.perf_counter()
        buf = pack(msg)
        req = self.comm.Isend([buf, self.MPI.BYTE], dest=dest, tag=tag)
        self._pending.append((req, buf))  # keep the buffer alive until the send completes
        self.comm_s += time.perf_counter() - t

    def recv(self, source: int, dest: int, tag: int) -> Message:
        t0 = time.perf_counter()
        status = self.MPI.Status()
        m = self._wait_for(source, tag, status, t0)
        t1 = time.perf_counter()
        buf = np.empty(status.Get_count(self.MPI.BYTE), dtype=np.uint8)
        m.Recv([buf, self.MPI.BYTE])
        msg = unpack(buf)
        t2 = time.perf_counter()
        self.wait_s += t1 - t0
        self.comm_s += t2 - t1
        return msg

    def _wait_for(self, source: int, tag: int, status, t0: float):
        """Matched probe that waits without burning a core: poll ``Improbe``, spinning for
        the first ~20 µs (a message that is about to arrive), then sleeping with a backoff
        of up to 100 µs — ranks often share cores with the engines they wait for, and a
        busy-waiting MPI receive would take the CPU the partner needs.  Raises
        :class:`TimeoutError` after ``timeout_s`` (a partner that died without the launcher
        noticing), so no rank waits forever."""
        nap = 0.0
        while True:
            m = self.comm.Improbe(source=source, tag=tag, status=status)
            if m is not None:
                return m
            self._check_errors()
            now = time.perf_counter()
            if self.timeout_s and now - t0 > self.timeout_s:
                who = self.labels.get(source, "a partner")
                raise TimeoutError(f"no message from {who} (rank {source}) for "
                                   f"{self.timeout_s:g} s; it stopped responding")
            if now - t0 > 20e-6:
                nap = min(100e-6, nap + 10e-6)
                time.sleep(nap)

    def send_error(self, dest: int, text: str, code: int) -> None:
        """Tell ``dest`` that this rank failed (``dest`` raises :class:`RemoteError` in its
        next :meth:`recv`, whatever it is waiting for)."""
        buf = np.frombuffer(text.encode(errors="replace"), dtype=np.uint8).copy()
        self.comm.Send([np.array([code], dtype=np.int64), self.MPI.INT64_T], dest=dest,
                       tag=TAG_ERROR + 1)
        self.comm.Send([buf, self.MPI.BYTE], dest=dest, tag=TAG_ERROR)

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
        if not self._pending:
            return
        t = time.perf_counter()
        self._pending = [p for p in self._pending if not p[0].Test()]
        self.comm_s += time.perf_counter() - t

    def close(self) -> None:
        t = time.perf_counter()
        self.MPI.Request.Waitall([p[0] for p in self._pending])
        self._pending.clear()
        self.comm_s += time.perf_counter() - t
