"""Who the coordinator names when the chain of waiting notices ends at a part that waits in
the stop vote (:meth:`cosim.transport.MPITransport._silent`).  The vote is an
``Iallreduce`` over every rank: a rank stopped before (or inside) it holds it back at some
ranks, which then wait for no one in particular — the chain must not end there and name a
part that only waits.  Under real ``mpiexec``; a rank that sleeps makes no MPI progress,
as a stopped one.

- ``vote``, 4 ranks: the coordinator waits for rank 1's output, rank 1 for rank 2's
  data, rank 2 in the vote, rank 3 stopped before joining it → rank 3 is named (before
  the fix: rank 2).
- ``awaited``, 5 ranks: the coordinator waits for rank 1, which waits in the vote; rank 2
  waits for rank 4's data; rank 3 computes (no notice) while rank 4 is stopped → rank 4,
  the one another part waits for, is named, not the first part that gave no notice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi
MPIEXEC = Path(sys.executable).parent / "mpiexec"

SCRIPT = textwrap.dedent("""
    import os, sys, time
    from mpi4py import MPI
    from cosim.messages import Kind
    from cosim.transport import MPITransport, Stalled

    case = sys.argv[1]
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    keys = {r: (f"e{r}", 0) for r in range(1, size)}
    tr = MPITransport(comm, {"bus": 0, **{k: r for r, k in keys.items()}},
                      timeout_s=2.0 if rank == 0 else 12.0,
                      labels={0: "the bus", **{r: f"engine e{r}" for r in keys}})
    stopped = size - 1                       # never joins the vote, sends nothing
    if rank == 0:
        tr.vote_start(0)
        try:
            tr.recv(keys[1], Kind.OUTPUT, "bus")
            print("coordinator: received", flush=True)
        except Stalled as exc:
            print(f"coordinator: {exc}", flush=True)
    elif rank == stopped:
        time.sleep(8.0)
    elif case == "vote" and rank == 1 or case == "awaited" and rank == 2:
        tr.vote_start(0)
        try:                                 # waits for the data of the next rank up
            tr.recv(keys[2 if case == "vote" else 4], Kind.OUTPUT, keys[rank])
        except Stalled:
            pass
    elif case == "vote" and rank == 2 or case == "awaited" and rank == 1:
        try:
            tr.vote_finish(tr.vote_start(0))
        except Stalled:
            pass
    else:                                    # rank 3 of "awaited": computing, no notice
        time.sleep(8.0)
    sys.stdout.flush()
    os._exit(0)                              # (a vote left pending: no MPI_Finalize)
""")


@pytest.mark.parametrize("case, n, named", [("vote", 4, 3), ("awaited", 5, 4)])
def test_a_chain_ending_in_the_stop_vote_names_the_stopped_rank(tmp_path, case, n, named):
    script = tmp_path / "naming.py"
    script.write_text(SCRIPT)
    r = subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, str(script), case],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("coordinator:")]
    assert lines == [f"coordinator: engine e{named} (rank {named}) stopped responding: no "
                     f"message for 2 s (simulation.exchange_timeout / startup_timeout)"], (
        r.stdout, r.stderr)
