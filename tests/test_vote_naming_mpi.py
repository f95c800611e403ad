"""Who the coordinator names when the chain of waiting notices ends at a part that waits in
the stop vote (:meth:`cosim.transport.MPITransport._silent`).  The vote is an
``Iallreduce`` over every rank: a rank stopped before (or inside) it holds it back at some
ranks, which then wait for no one in particular — the chain must not end there and name a
part that only waits.  Under real ``mpiexec``; a rank that sleeps makes no MPI progress,
as a stopped one.

The coordinator always waits for rank 1's output; a "computing" rank sends nothing and
joins no vote (as a part busy in its engine).

- ``vote``: rank 1 waits for rank 2's data, rank 2 in the vote, rank 3 stopped before
  joining it, rank 4 computing → rank 3 (before: rank 2, the part left waiting).
- ``awaited``: rank 1 in the vote, rank 2 waits for rank 4's data, ranks 3 and 5
  computing, rank 4 stopped → rank 4, the one another part waits for, not the first part
  that gave no notice.
- ``stale``: rank 1 waits for rank 2's data; rank 2 said it waits in the vote and then
  stopped (its notice is not repeated); rank 3 waits in the vote (its notice is); rank 4
  computing → rank 2."""

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
    from cosim.transport import IN_VOTE, MPITransport, Stalled

    ROLES = {"vote": ["data 2", "vote", "stopped", "computing"],
             "awaited": ["vote", "data 4", "computing", "stopped", "computing"],
             "stale": ["data 2", "said vote, stopped", "vote", "computing"]}
    case = sys.argv[1]
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    assert size == len(ROLES[case]) + 1
    keys = {r: (f"e{r}", 0) for r in range(1, size)}
    tr = MPITransport(comm, {"bus": 0, **{k: r for r, k in keys.items()}},
                      timeout_s=3.0 if rank == 0 else 6.0,
                      labels={0: "the bus", **{r: f"engine e{r}" for r in keys}})
    comm.Barrier()                           # one start for every clock
    role = "coordinator" if rank == 0 else ROLES[case][rank - 1]
    if role == "coordinator":
        tr.vote_start(0)
        try:
            tr.recv(keys[1], Kind.OUTPUT, "bus")
            print("coordinator: received", flush=True)
        except Stalled as exc:
            print(f"coordinator: {exc}", flush=True)
    elif role.startswith("data"):
        tr.vote_start(0)
        try:
            tr.recv(keys[int(role.split()[1])], Kind.OUTPUT, keys[rank])
        except Stalled:
            pass
    elif role == "vote":
        try:
            tr.vote_finish(tr.vote_start(0))
        except Stalled:
            pass
    elif role == "said vote, stopped":
        tr._notice(IN_VOTE)                  # what vote_finish says after its first second
        time.sleep(7.0)
    else:                                    # stopped, or computing
        time.sleep(7.0)
    sys.stdout.flush()
    os._exit(0)                              # (a vote left pending: no MPI_Finalize)
""")


@pytest.mark.parametrize("case, n, named", [("vote", 5, 3), ("awaited", 6, 4), ("stale", 5, 2)])
def test_a_chain_ending_in_the_stop_vote_names_the_stopped_rank(tmp_path, case, n, named):
    script = tmp_path / "naming.py"
    script.write_text(SCRIPT)
    r = subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, str(script), case],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("coordinator:")]
    assert lines == [f"coordinator: engine e{named} (rank {named}) stopped responding: no "
                     f"message for 3 s (simulation.exchange_timeout / startup_timeout)"], (
        r.stdout, r.stderr)
