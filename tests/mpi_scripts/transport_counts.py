"""A known message sequence through :class:`cosim.transport.MPITransport` on 2 ranks.

Run as ``mpiexec -n 2 python transport_counts.py out.json``: per window, node ``a``
(rank 1) sends ``b`` (rank 0) one ``OUTPUT`` of the window's arrays and ``b`` answers
with one ``INPUT``; before the windows one ``HELLO``, after them a ``DONE``.  Each rank
writes its :meth:`~cosim.transport.Transport.traffic` to ``out.json.<rank>``, with the
packed sizes it computed itself from :func:`cosim.transport.pack`.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from mpi4py import MPI

from cosim.messages import Kind
from cosim.transport import MPITransport, pack


def messages(k: int) -> tuple[dict, dict]:
    """Window ``k``'s OUTPUT (sizes change with k) and INPUT."""
    out = {"x:cortex": np.arange(3 + k, dtype=np.float64), "timing": np.zeros(3)}
    inp = {"sources": np.ones((2, 5), dtype=np.float32), "@stop": np.array(k)}
    return out, inp


def main(path: str, n_windows: int = 5) -> None:
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    tr = MPITransport(comm, {"b": 0, "a": 1}, timeout_s=60.0)
    hello = {"pid": np.array(7), "host": np.frombuffer(b"node", dtype=np.uint8).copy()}
    sizes = {"HELLO": pack(hello).nbytes, "DONE": pack({}).nbytes,
             "OUTPUT": [pack(messages(k)[0]).nbytes for k in range(n_windows)],
             "INPUT": [pack(messages(k)[1]).nbytes for k in range(n_windows)]}
    if rank == 1:
        tr.send("b", Kind.HELLO, hello)
    else:
        tr.recv("a", Kind.HELLO)
    for k in range(n_windows):
        out, inp = messages(k)
        if rank == 1:
            tr.send("b", Kind.OUTPUT, out)
            got = tr.recv("b", Kind.INPUT)
            assert np.array_equal(got["sources"], inp["sources"])
        else:
            tr.recv("a", Kind.OUTPUT)
            tr.send("a", Kind.INPUT, inp)
        tr.flush_sends()
        tr.window_done(k)
    if rank == 0:
        tr.send("a", Kind.DONE, {})
    else:
        tr.recv("b", Kind.DONE)
    tr.close()
    with open(f"{path}.{rank}", "w") as f:
        json.dump({"traffic": tr.traffic(), "sizes": sizes, "node": tr.node}, f)


if __name__ == "__main__":
    main(sys.argv[1])
