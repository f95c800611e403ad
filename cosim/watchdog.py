"""Naming the rank that died first, under any launcher.

When a rank is killed (SIGKILL, the OOM killer) or crashes, no cosim code runs on it, and
``mpiexec`` kills every other rank within milliseconds — so no rank can say which one
died.  Rank 0 therefore starts one small *watchdog* process outside the job (its own
session, so the launcher's clean-up does not reach it) that holds a ``pidfd`` of every rank
and sleeps in ``poll``.  The kernel wakes it the moment the first rank has exited; that rank
died first (the others die only after the launcher noticed, and took time to tear down).
Where it may (root, or an ``RLIMIT_RTPRIO``), it waits at real-time priority, so on a loaded
machine it runs the moment the first rank has exited, before the launcher kills the rest —
otherwise it could wake to find several ended at once and have to guess (the lowest rank).

Ranks that end on purpose — a normal end, or an error that cosim itself reports with its
one line — first write ``<notes>/rank<r>.ok``; the watchdog stays silent when the first rank
to end had written one.  Otherwise it writes one line to the job's stderr (it inherited
rank 0's)::

    cosim: rank 2 (engine v1, pid 1234 on node7) ended first without a word (killed or
    crashed); the launcher stopped the other ranks

and exits when every rank has ended.  ``python -m cosim.watchdog NOTES RANKS_JSON [OUTPUT]``.

With ``OUTPUT`` (a multi-process run's output file), once every rank has ended the watchdog
also joins the rank files of an output left ``running`` (no rank could close it: the
launcher killed them all), so the file shows every window all ranks flushed
(:func:`cosim.rank_output.repair_after_death`).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_NOTES: Path | None = None


def start(table: dict[str, dict], output=None) -> str | None:
    """On rank 0: start the watchdog for ``table`` (rank → pid, host, role); returns the
    notes folder every rank must know (``None`` where pidfds are not available)."""
    global _NOTES
    if not hasattr(os, "pidfd_open") or any(e["host"] != table["0"]["host"] for e in table.values()):
        return None               # pidfds see this host only
    notes = Path(tempfile.mkdtemp(prefix="cosim-watch-"))
    try:
        subprocess.Popen([sys.executable, "-m", "cosim.watchdog", str(notes), json.dumps(table)]
                         + ([str(output)] if output is not None else []),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except OSError:
        shutil.rmtree(notes, ignore_errors=True)
        return None
    _NOTES = notes
    return str(notes)


def attach(notes: str | None) -> None:
    """On every rank: remember the notes folder (from rank 0)."""
    global _NOTES
    _NOTES = Path(notes) if notes else None


def notes() -> str | None:
    """The notes folder of this job's watchdog (on rank 0, for the other ranks)."""
    return None if _NOTES is None else str(_NOTES)


def active() -> bool:
    """Whether a watchdog names the rank that dies first in this job."""
    return _NOTES is not None


def ending_on_purpose(rank: int) -> None:
    """Before a deliberate exit (a normal end, or after cosim printed the failure line)."""
    if _NOTES is not None:
        try:
            (_NOTES / f"rank{rank}.ok").write_text("")
        except OSError:
            pass


def _line(rank: str, e: dict) -> str:
    return (f"cosim: rank {rank} ({e.get('role', '?')}, pid {e.get('pid', '?')} on "
            f"{e.get('host', '?')}) ended first without a word (killed or crashed); the "
            f"launcher stopped the other ranks")


def _first_to_run(on: bool) -> None:
    """While it waits, the watchdog runs before the ranks and the launcher when it may
    (real-time priority: root, or a ``RLIMIT_RTPRIO``): woken by the first exit, it looks
    before the launcher has killed the others, so on a loaded machine it does not find
    several ranks ended at once.  Without the privilege it waits at normal priority."""
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def watch(notes: Path, table: dict[str, dict]) -> int:
    _first_to_run(True)
    try:
        return _watch(notes, table)
    finally:
        _first_to_run(False)    # (also when the line cannot be written: the join is ordinary work)


def _watch(notes: Path, table: dict[str, dict]) -> int:
    fds = {}
    for rank, e in table.items():
        try:
            fds[os.pidfd_open(int(e["pid"]))] = rank
        except OSError:               # already gone before we looked
            if not (notes / f"rank{rank}.ok").exists():
                print(_line(rank, e), file=sys.stderr, flush=True)
                return 0
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    first = None
    while fds:
        ready = [fd for fd, _ in p.poll()]
        if first is None:
            # the earliest exit; several at once (an overloaded machine) → the lowest rank
            # that did not end on purpose
            ended = sorted((fds[fd] for fd in ready), key=int)
            quiet = [r for r in ended if (notes / f"rank{r}.ok").exists()]
            first = quiet[0] if quiet else ended[0]
            if not quiet:
                print(_line(first, table[first]), file=sys.stderr, flush=True)
                sys.stderr.close()      # let the launcher's stdio close
            _first_to_run(False)        # (the join after the run is ordinary work)
        for fd in ready:
            p.unregister(fd)
            os.close(fd)
            del fds[fd]
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    notes, table = Path(argv[0]), json.loads(argv[1])
    try:
        return watch(notes, table)
    finally:
        time.sleep(0.2)
        shutil.rmtree(notes, ignore_errors=True)
        if len(argv) > 2:
            try:
                from .rank_output import repair_after_death

                repair_after_death(Path(argv[2]))
            except Exception:       # best effort: `cosim join OUTPUT` does the same
                pass


if __name__ == "__main__":
    sys.exit(main())
