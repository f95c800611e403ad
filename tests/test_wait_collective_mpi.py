"""A split spiking region's spike exchange (a collective of the region's own communicator)
waits like a receive (:meth:`cosim.transport.MPITransport.wait_collective`): while a
member is stopped, the one waiting for it keeps running its idle hook (it answers the
coordinator's ping there) and ends with ``Stalled`` naming the stopped member after the
exchange timeout — a blocking ``Allgatherv`` would sit in MPI for ever.  Under
``mpiexec -n 3``: rank 0 the coordinator, ranks 1 and 2 the region's members; rank 2
stops (sleeps) before the exchange."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi
MPIEXEC = Path(sys.executable).parent / "mpiexec"

SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from mpi4py import MPI
    from cosim.runtime import _allgather_exchange
    from cosim.transport import MPITransport, Stalled

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    ecomm = comm.Split(0 if rank == 0 else 1, rank)
    tr = MPITransport(comm, {"bus": 0, ("v1", 0): 1, ("v1", 1): 2}, timeout_s=2.0,
                      labels={0: "the bus", 1: "engine v1", 2: "engine v1"})
    idle = [0]
    tr.idle = lambda: idle.__setitem__(0, idle[0] + 1)
    if rank == 0:
        time.sleep(6.0)
        print("coordinator done", flush=True)
    else:
        exchange = _allgather_exchange(ecomm, tr, [3 - rank])
        g, t = exchange(np.array([rank]), np.array([0.5 * rank]))      # both members alive
        assert g.tolist() == [1, 2] and t.tolist() == [0.5, 1.0], (g, t)
        if rank == 2:
            time.sleep(5.0)                 # stopped: never joins the second exchange
            print("member 2 woke", flush=True)
        else:
            t0 = time.perf_counter()
            try:
                exchange(np.array([1]), np.array([2.0]))
                print("member 1: exchange completed", flush=True)
            except Stalled as exc:
                print(f"member 1: {exc} after {time.perf_counter() - t0:.1f} s, "
                      f"idle {idle[0] > 100}", flush=True)
    sys.stdout.flush()
    import os
    os._exit(0)                             # (an exchange left pending: no MPI_Finalize)
""")


def test_a_member_waiting_for_a_stopped_partner_keeps_answering_and_times_out(tmp_path):
    script = tmp_path / "wait.py"
    script.write_text(SCRIPT)
    r = subprocess.run([str(MPIEXEC), "-n", "3", sys.executable, str(script)],
                       capture_output=True, text=True, timeout=120)
    lines = r.stdout.splitlines()
    member1 = [ln for ln in lines if ln.startswith("member 1:")]
    assert member1, (r.stdout, r.stderr)
    assert member1[0].startswith("member 1: engine v1 (rank 2) stopped responding: no message "
                                 "for 2 s"), member1
    took = float(member1[0].split(" after ")[1].split(" s,")[0])
    assert 2.0 <= took < 4.0, member1
    assert member1[0].endswith("idle True"), member1       # the ping would be answered
