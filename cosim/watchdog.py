"""Naming the rank that died first, under any launcher.

When a rank is killed (SIGKILL, the OOM killer) or crashes, no cosim code runs on it, and
``mpiexec`` kills every other rank within milliseconds — so no rank can say which one
died.  Rank 0 therefore starts one small *watchdog* process outside the job (its own
session, so the launcher's clean-up does not reach it) that holds a ``pidfd`` of every rank
and sleeps in ``poll``.  The kernel wakes it the moment the first rank has exited; that rank
died first (the others die only after the launcher noticed, and took time to tear down).

A pidfd is readable only when the process has *finished* exiting, and the first step of a
large rank's exit (freeing its memory) can take tens of milliseconds — long enough for a
partner to see it vanish inside MPI, have the job aborted and die first.  Where the
kernel's *taskstats* exit events may be read (``CAP_NET_ADMIN``, e.g. root), the watchdog
therefore also listens to them: the kernel sends one as each thread *begins* to exit,
before its memory is freed, so the rank whose exit began first is the one named.
Where it may (root, or an ``RLIMIT_RTPRIO``), it waits at real-time priority, so on a loaded
machine it runs the moment the first rank's exit is known, before the launcher kills the
rest — otherwise it could wake to find several ended at once and have to guess (the lowest
rank).

Ranks that end on purpose — a normal end, or an error that cosim itself reports with its
one line — first write ``<notes>/rank<r>.ok``; the watchdog stays silent when the first rank
to end had written one.  A rank that reports an error and then aborts the job writes
``abort`` into its note: from then on every exit is the abort's doing (the launcher kills
the ranks in no set order, and a stopped or hung rank may die before the reporting one), so
the watchdog stays silent whichever rank it sees end first.  Otherwise it writes one line to the job's stderr (it inherited
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

import errno
import json
import os
import select
import shutil
import struct
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


def ending_on_purpose(rank: int, aborting: bool = False) -> None:
    """Before a deliberate exit (a normal end, or after cosim printed the failure line);
    ``aborting``: this rank is about to abort the whole job (``MPI_Abort``)."""
    if _NOTES is not None:
        try:
            (_NOTES / f"rank{rank}.ok").write_text(ABORT if aborting else "")
        except OSError:
            pass


ABORT = "abort"


def _announced(notes: Path, ranks) -> bool:
    """Whether a rank said it aborts the job (after its one line)."""
    for r in ranks:
        try:
            if (notes / f"rank{r}.ok").read_text() == ABORT:
                return True
        except OSError:
            pass
    return False


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
    exits = ExitEvents.open()         # before the pidfds: no exit falls between the two
    fds = {}
    for rank, e in table.items():
        try:
            fds[os.pidfd_open(int(e["pid"]))] = rank
        except OSError:               # already gone before we looked
            if not (notes / f"rank{rank}.ok").exists() and not _announced(notes, table):
                print(_line(rank, e), file=sys.stderr, flush=True)
                return 0
    rank_of = {int(e["pid"]): rank for rank, e in table.items()}
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    if exits is not None:
        p.register(exits.fileno(), select.POLLIN)
    first = None
    # ranks whose exit began before the events were heard (killed during start-up): they
    # come first
    already = sorted((r for r, e in table.items() if _exiting(int(e["pid"]))), key=int)
    while fds:
        ready = [] if already else [fd for fd, _ in p.poll()]
        if first is None:
            # the earliest exit (begun: taskstats; or finished: pidfd); several at once (an
            # overloaded machine) → the lowest rank that did not end on purpose
            ended = already or sorted({fds[fd] for fd in ready if fd in fds}, key=int)
            already = []
            if exits is not None and exits.fileno() in ready:
                began = exits.first_ending(rank_of)
                if began is not None:           # the order the exits began in
                    ended = [rank_of[began]]
            if ended:
                quiet = [r for r in ended if (notes / f"rank{r}.ok").exists()]
                first = quiet[0] if quiet else ended[0]
                if not quiet and not _announced(notes, table):
                    print(_line(first, table[first]), file=sys.stderr, flush=True)
                    sys.stderr.close()      # let the launcher's stdio close
                _first_to_run(False)        # (the join after the run is ordinary work)
                if exits is not None:
                    p.unregister(exits.fileno())
                    exits.close()
                    exits = None
        for fd in ready:
            if fd in fds:
                p.unregister(fd)
                os.close(fd)
                del fds[fd]
    if exits is not None:
        exits.close()
    return 0


class ExitEvents:
    """The kernel's taskstats exit events (generic netlink, family ``TASKSTATS``): one
    message per exiting thread, sent from ``do_exit`` before the thread's memory is freed
    (``Documentation/accounting/taskstats.rst``).  Listening to every CPU needs
    ``CAP_NET_ADMIN`` in the initial namespaces; :meth:`open` returns ``None`` where it is
    refused or missing."""

    _CTRL, _GETFAMILY, _FAMILY_ID, _FAMILY_NAME = 0x10, 3, 1, 2      # genetlink control
    _GET, _REGISTER = 1, 3      # TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK
    _PID, _TGID, _STATS, _AGGR_PID, _AGGR_TGID = 1, 2, 3, 4, 5       # TASKSTATS_TYPE_*
    _ERROR = 2                                                       # NLMSG_ERROR

    def __init__(self, sock):
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    @classmethod
    def open(cls) -> "ExitEvents | None":
        import socket

        try:
            cpus = Path("/sys/devices/system/cpu/possible").read_text().strip()
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)   # NETLINK_GENERIC
        except (OSError, AttributeError):
            return None
        try:
            sock.bind((0, 0))
            sock.settimeout(2.0)
            sock.send(cls._request(cls._CTRL, cls._GETFAMILY,
                                   cls._attr(cls._FAMILY_NAME, b"TASKSTATS\0")))
            kind, body = cls._split(sock.recv(65536))
            if kind == cls._ERROR:
                raise OSError("no taskstats")
            family = struct.unpack_from("H", cls._attrs(body[4:])[cls._FAMILY_ID][0])[0]
            sock.send(cls._request(family, cls._GET,
                                   cls._attr(cls._REGISTER, cpus.encode() + b"\0"), ack=True))
            for _ in range(1000):          # (exit events may come before the answer)
                kind, body = cls._split(sock.recv(65536))
                if kind == cls._ERROR:
                    break
            if kind != cls._ERROR or struct.unpack_from("i", body)[0] != 0:
                raise OSError("taskstats refused")           # (EPERM without CAP_NET_ADMIN)
            sock.setblocking(False)
        except (OSError, KeyError, struct.error):
            sock.close()
            return None
        return cls(sock)

    def first_ending(self, pids) -> int | None:
        """The first process of ``pids``, in the order of the events read now, whose exit
        began; ``None`` for none (or when the events cannot be read).  A thread's exit
        counts when its exit code (``ac_exitcode``, set before the event) is not 0: the
        whole process is going (a kill, a crash, ``exit_group``) — a thread that ends
        while its process lives on (a pool's worker) exits with 0."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:         # ENOBUFS: events were dropped; read on
                if exc.errno == errno.ENOBUFS:
                    continue
                return None
            try:
                pid = self._first(data, pids)
            except (struct.error, ValueError, IndexError):
                pid = None                 # a message not understood: the pidfds remain
            if pid is not None:
                return pid

    def _first(self, data: bytes, pids) -> int | None:
        while len(data) >= 16:
            length = struct.unpack_from("I", data)[0]
            if length < 16 or length > len(data):
                return None
            kind, body = self._split(data[:length])
            data = data[(length + 3) & ~3:]
            if kind < 0x10 or len(body) < 4:         # (control messages)
                continue
            attrs = self._attrs(body[4:])
            for nested in attrs.get(self._AGGR_PID, []):
                a = self._attrs(nested)
                if self._PID not in a or self._STATS not in a:
                    continue
                tid = struct.unpack_from("I", a[self._PID][0])[0]
                if struct.unpack_from("I", a[self._STATS][0], 4)[0] == 0:   # ac_exitcode
                    continue
                pid = tid if tid in pids else _tgid(tid)
                if pid in pids:
                    return pid
            for nested in attrs.get(self._AGGR_TGID, []):   # the last thread of a process
                for v in self._attrs(nested).get(self._TGID, []):
                    pid = struct.unpack_from("I", v)[0]
                    if pid in pids:
                        return pid
        return None

    @staticmethod
    def _attr(kind: int, data: bytes) -> bytes:
        n = 4 + len(data)
        return struct.pack("HH", n, kind) + data + b"\0" * (-n % 4)

    @staticmethod
    def _attrs(buf: bytes) -> dict[int, list[bytes]]:
        out: dict[int, list[bytes]] = {}
        while len(buf) >= 4:
            n, kind = struct.unpack_from("HH", buf)
            if n < 4:
                break
            out.setdefault(kind & 0x3FFF, []).append(buf[4:n])
            buf = buf[(n + 3) & ~3:]
        return out

    @classmethod
    def _request(cls, family: int, cmd: int, attrs: bytes, ack: bool = False) -> bytes:
        payload = struct.pack("BBH", cmd, 1, 0) + attrs
        flags = 1 | (4 if ack else 0)                       # NLM_F_REQUEST | NLM_F_ACK
        return struct.pack("IHHII", 16 + len(payload), family, flags, 1, 0) + payload

    @staticmethod
    def _split(msg: bytes) -> tuple[int, bytes]:
        return struct.unpack_from("H", msg, 4)[0], msg[16:]


def _exiting(pid: int) -> bool:
    """Whether process ``pid``'s exit has begun: gone, a zombie, or its exit code set (the
    kernel sets it as ``do_exit`` begins, before the memory is freed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return stat[0] in ("Z", "X") or (len(stat) >= 50 and stat[-1] != "0")


def _tgid(tid: int) -> int:
    """The process a thread belongs to (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{tid}/status").read_text().splitlines():
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
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
