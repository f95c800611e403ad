"""The watchdog (cosim.watchdog) on its own: it names the process that ended first without
a word, stays silent for one that said it ends on purpose, and waits at real-time priority
where it may, so that it looks before a launcher has killed the rest."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


@contextlib.contextmanager
def _watched(n: int):
    """``n`` sleeping processes as ranks and their watchdog, which has had a second to open
    its pidfds: ``(processes, notes folder, watchdog, rank table)``."""
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
             for _ in range(n)]
    notes = Path(tempfile.mkdtemp(prefix="cosim-watch-test-"))
    table = {str(r): {"pid": p.pid, "host": socket.gethostname(), "role": f"engine e{r}"}
             for r, p in enumerate(procs)}
    w = subprocess.Popen([sys.executable, "-m", "cosim.watchdog", str(notes), json.dumps(table)],
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        yield procs, notes, w, table
    finally:
        for p in procs:
            p.kill()
        w.kill()


def _named(rank: str, table: dict) -> str:
    """The watchdog's line for ``rank`` of ``table`` (the text users read, written out)."""
    e = table[rank]
    return (f"cosim: rank {rank} ({e['role']}, pid {e['pid']} on {e['host']}) ended first "
            f"without a word (killed or crashed); the launcher stopped the other ranks")


def _policy(pid: int) -> int:
    """The scheduling policy of ``pid`` (field 41 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[38])


def _may_use_fifo() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux ≥ 5.3")
def test_the_watchdog_names_the_first_to_end_and_waits_first_in_line():
    fifo = _may_use_fifo()
    with _watched(3) as (procs, notes, w, table):
        t_end = time.monotonic() + 20.0              # (a loaded machine: it starts late)
        while fifo and _policy(w.pid) != os.SCHED_FIFO and time.monotonic() < t_end:
            time.sleep(0.05)
        assert _policy(w.pid) == (os.SCHED_FIFO if fifo else os.SCHED_OTHER)
        procs[2].send_signal(signal.SIGKILL)
        procs[2].wait()
        t_end = time.monotonic() + 20.0
        while _policy(w.pid) != os.SCHED_OTHER and time.monotonic() < t_end:
            time.sleep(0.05)
        assert _policy(w.pid) == os.SCHED_OTHER        # back to ordinary work, ranks alive
        for p in procs[:2]:                        # the launcher's clean-up, later
            p.kill()
            p.wait()
        _, err = w.communicate(timeout=20)
    assert err.splitlines() == [_named("2", table)]
    assert w.returncode == 0 and not notes.exists()


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux ≥ 5.3")
def test_the_watchdog_is_silent_when_the_first_to_end_said_so():
    with _watched(2) as (procs, notes, w, _):
        (notes / "rank1.ok").write_text("")        # watchdog.ending_on_purpose(1)
        procs[1].terminate()
        procs[1].wait()
        time.sleep(0.3)
        procs[0].kill()
        procs[0].wait()
        _, err = w.communicate(timeout=20)
    assert err == "" and w.returncode == 0


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux ≥ 5.3")
def test_the_watchdog_is_silent_once_a_rank_announced_the_abort():
    """Rank 1 printed why (a partner stopped answering) and aborts the job; the launcher
    kills the ranks in no set order, and the stopped rank 0 ends first: the abort's doing,
    not a death to name.  A plain note (a normal end) does not silence it."""
    from cosim.watchdog import ABORT

    with _watched(3) as (procs, notes, w, _):
        (notes / "rank1.ok").write_text(ABORT)      # ending_on_purpose(1, aborting=True)
        for p in procs:                            # the launcher's kill, rank 0 first
            p.kill()
            p.wait()
        _, err = w.communicate(timeout=20)
    assert err == "" and w.returncode == 0
    with _watched(3) as (procs, notes, w, table):
        (notes / "rank1.ok").write_text("")         # ending_on_purpose(1): a normal end
        for p in procs:
            p.kill()
            p.wait()
        _, err = w.communicate(timeout=20)
    assert err.splitlines() == [_named("0", table)]


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux ≥ 5.3")
def test_the_rank_whose_exit_began_first_is_named():
    """A pidfd is readable once a process has *finished* exiting, and a large process
    spends long freeing its memory first: rank 0 (1 GB touched) is killed, rank 1 (small)
    5 ms later — rank 1's pidfd is readable first (by ~0.1–0.6 s here), as when a partner
    sees a dying rank vanish inside MPI, the job is aborted and the partner dies first.
    The taskstats exit events (sent as an exit begins) name rank 0.  Rank 1 starts and
    ends a thread every few milliseconds all along: a thread's own end is not its
    process's."""
    from cosim.watchdog import ExitEvents

    events = ExitEvents.open()
    if events is None:       # (a container without CAP_NET_ADMIN, or not the initial pid ns)
        pytest.skip("taskstats exit events need CAP_NET_ADMIN in the initial namespaces")
    events.close()
    big = ("import time\nx = bytearray(1_000_000_000)\n"
           "for i in range(0, len(x), 4096):\n    x[i] = 1\nprint('ready', flush=True)\n"
           "time.sleep(60)")
    churn = ("import threading, time\nprint('ready', flush=True)\nt_end = time.time() + 60\n"
             "while time.time() < t_end:\n    t = threading.Thread(target=time.sleep, "
             "args=(0.002,))\n    t.start()\n    t.join()")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for code in (big, churn)]
    notes = Path(tempfile.mkdtemp(prefix="cosim-watch-test-"))
    table = {str(r): {"pid": p.pid, "host": socket.gethostname(), "role": f"engine e{r}"}
             for r, p in enumerate(procs)}
    w = None
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n"
        w = subprocess.Popen([sys.executable, "-m", "cosim.watchdog", str(notes),
                              json.dumps(table)], stderr=subprocess.PIPE, text=True)
        t_end = time.monotonic() + 20.0
        while _policy(w.pid) != os.SCHED_FIFO and time.monotonic() < t_end:
            time.sleep(0.05)
        time.sleep(1.0)                            # listening, its pidfds open
        procs[0].kill()
        time.sleep(0.005)
        procs[1].kill()
        _, err = w.communicate(timeout=30)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if w is not None:
            w.kill()
    assert err.splitlines() == [_named("0", table)], err


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux ≥ 5.3")
def test_a_rank_whose_exit_began_before_the_watchdog_listened_is_named(monkeypatch):
    """A kill in the start-up, before the watchdog listens: rank 0 (1 GB touched) is
    killed and still freeing its memory when the watching begins; rank 1 (small) is killed
    5 ms into it and is gone long before rank 0 — rank 0, whose exit began first (its
    exit code is set as the exit begins), is named."""
    from cosim import watchdog

    big = ("import time\nx = bytearray(1_000_000_000)\n"
           "for i in range(0, len(x), 4096):\n    x[i] = 1\nprint('ready', flush=True)\n"
           "time.sleep(60)")
    small = "import time; print('ready', flush=True); time.sleep(60)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for code in (big, small)]
    notes = Path(tempfile.mkdtemp(prefix="cosim-watch-test-"))
    table = {str(r): {"pid": p.pid, "host": socket.gethostname(), "role": f"engine e{r}"}
             for r, p in enumerate(procs)}
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n"
        procs[0].kill()
        import threading

        import io

        err = io.StringIO()
        err.close = lambda: None                  # (the watchdog closes its stderr)
        monkeypatch.setattr(sys, "stderr", err)
        threading.Timer(0.005, procs[1].kill).start()
        watchdog._watch(notes, table)
        monkeypatch.undo()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert err.getvalue().splitlines() == [_named("0", table)]
