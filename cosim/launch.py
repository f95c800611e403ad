"""Starting cosim under ``mpiexec`` from cosim itself (``cosim run FILE --np K``).

:func:`launch_mpiexec` re-runs the same command line as ``mpiexec -n K python -m cosim …``
(without ``--np``), waits, and returns the exit code.  The ``mpiexec`` is the one next to
the running Python first — the ``mpich`` wheel installed by ``pip install cosim[mpi]``
puts it there, and it matches the libmpi that mpi4py loads — then the first on ``PATH``.

:func:`launcher_world_size` tells a process whether an MPI launcher (``mpiexec``, ``srun``)
started it, from the environment the launcher's process manager sets (PMI / PMIx / Open
MPI / SLURM variables), without initialising MPI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from .errors import CosimError

NO_MPIEXEC = ("no mpiexec found (looked next to {python} and on PATH); install the mpi "
              "extra: pip install cosim[mpi]")

# Variables holding the world size, by process manager: PMI_SIZE (MPICH's Hydra mpiexec,
# Intel MPI, srun --mpi=pmi2), OMPI_COMM_WORLD_SIZE (Open MPI's mpirun), PMIX_SIZE (some
# PMIx launchers; PMIX_RANK is the standard one), MV2_COMM_WORLD_SIZE (MVAPICH).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def find_mpiexec(python: str | os.PathLike | None = None) -> str | None:
    """Path of the ``mpiexec`` to use for ``python`` (default: this interpreter), or None.

    Looks next to the interpreter (a venv's ``bin/``, where the ``mpich`` wheel installs its
    ``mpiexec``) without resolving symlinks, then on ``PATH``.
    """
    exe = Path(python if python is not None else sys.executable)
    for name in ("mpiexec", "mpirun"):
        candidate = exe.parent / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("mpiexec") or shutil.which("mpirun")


def strip_np(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--np K`` / ``--np=K`` (the ranks must not launch again)."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--np":
            skip = True
            continue
        if a.startswith("--np="):
            continue
        if a == "--":           # everything after a bare -- is positional
            out.extend(argv[i:])
            break
        out.append(a)
    return out


def mpiexec_command(np: int, python_args: Sequence[str], *, mpiexec: str | None = None,
                    python: str | None = None) -> list[str]:
    """``[mpiexec, -n, K, python, *python_args]``; CosimError if there is no mpiexec."""
    if int(np) < 1:
        raise CosimError(f"--np must be ≥ 1, got {np}")
    python = python or sys.executable
    mpiexec = mpiexec or find_mpiexec(python)
    if mpiexec is None:
        raise CosimError(NO_MPIEXEC.format(python=Path(python).parent))
    return [mpiexec, "-n", str(int(np)), python, *python_args]


# -- running the job: signals reach it, nothing of it outlives the launcher ------------------
#
# ``mpiexec`` forwards SIGINT and SIGTERM to every rank, but its proxies and ranks live in
# sessions of their own, so signalling its process group does not reach them.  The launcher
# therefore (1) answers SIGTERM / SIGINT / SIGHUP by sending SIGTERM to mpiexec (Hydra prints
# two lines for a SIGINT and aborts hard at a second one; a Ctrl-C at the terminal has already
# reached mpiexec, which shares the launcher's process group), (2) is a child subreaper
# (``PR_SET_CHILD_SUBREAPER``) while the job runs, so that whatever mpiexec leaves behind is
# re-parented to it, not to init, and (3) after mpiexec has ended — or ``GRACE_S`` after a
# signal, when mpiexec is killed — kills what the job left behind (never the caller's other
# children).  mpiexec gets ``PR_SET_PDEATHSIG`` = SIGTERM, so that it (and through it the
# ranks) also ends when the launcher is killed outright.

GRACE_S = 5.0           # s from a forwarded signal until the job is killed (SIGKILL)
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 1, 36, 37


def _prctl(option: int, value) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _subreaper(on: bool) -> bool:
    """Make this process a child subreaper (or not); return whether it was one."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    was = ctypes.c_int(0)
    _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was))
    _prctl(_PR_SET_CHILD_SUBREAPER, int(on))
    return bool(was.value)


def _die_with(parent: int):
    """preexec_fn: the child gets SIGTERM when ``parent`` dies (also if it already has)."""

    def arm():
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:
            os._exit(128 + signal.SIGTERM)
    return arm


def _processes() -> dict[int, tuple[str, int]]:
    """pid → (state, parent pid) of every process, from /proc (empty elsewhere)."""
    out = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for d in entries:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                out[int(d)] = (fields[0], int(fields[1]))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _children(pid: int, table: dict[int, tuple[str, int]]) -> set[int]:
    return {c for c, (_, ppid) in table.items() if ppid == pid}


def _descendants(roots, table: dict[int, tuple[str, int]]) -> list[int]:
    """Live (not zombie) processes among ``roots`` and their descendants."""
    out, stack, seen = [], list(roots), set()
    while stack:
        p = stack.pop()
        if p in seen or p not in table:
            continue
        seen.add(p)
        if table[p][0] != "Z":
            out.append(p)
        stack.extend(_children(p, table))
    return out


def _end_leftovers(deadline: float, keep: set[int]) -> None:
    """Reap and end what the job left behind: processes re-parented to this subreaper (its
    children other than ``keep``, the children it had before) and their descendants; they
    get until ``deadline`` (monotonic s), then SIGKILL (giving up 5 s later on a process
    that cannot die, e.g. stuck in the kernel)."""
    me = os.getpid()
    while time.monotonic() < deadline + 5.0:
        table = _processes()
        orphans = _children(me, table) - keep
        for pid in orphans:
            if table[pid][0] == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        left = _descendants(orphans, table)
        if not left:
            return
        if time.monotonic() >= deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.05)


def _terminal_sent_it() -> bool:
    """Is this process in the foreground of its terminal?  Then Ctrl-C reached the whole
    foreground process group, mpiexec included (it shares the launcher's group)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _run(cmd: Sequence[str], env: Mapping[str, str] | None = None,
         grace_s: float = GRACE_S) -> tuple[int, int | None]:
    """Run ``cmd`` (see above); return its exit code and the signal this process got, if any."""
    keep = _children(os.getpid(), _processes())      # not ours to end
    was_subreaper = _subreaper(True)
    proc = subprocess.Popen(list(cmd), env=None if env is None else dict(env),
                            preexec_fn=_die_with(os.getpid()))
    got: list[int] = []

    def forward(signum, frame):
        got.append(signum)
        if signum == signal.SIGINT and _terminal_sent_it():
            return                  # mpiexec has its own; a second one aborts it hard
        try:
            proc.send_signal(signal.SIGTERM)
        except OSError:
            pass

    old = {}
    try:
        for sig in _FORWARDED:
            old[sig] = signal.signal(sig, forward)
    except ValueError:              # not the main thread: no handlers, still no orphans
        pass
    try:
        deadline = None
        while True:
            try:
                rc = proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if got and deadline is None:
                deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() >= deadline:
                proc.kill()
        _end_leftovers(deadline if deadline is not None else time.monotonic() + 1.0, keep)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _subreaper(was_subreaper)
    return (128 - rc if rc < 0 else rc), (got[0] if got else None)


def _signal_line(signum: int) -> str:
    name = signal.Signals(signum).name
    return f"cosim: interrupted ({name})" if signum == signal.SIGINT else f"cosim: terminated ({name})"


def run_command(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``cmd``, forward its exit code (128 + signal if a signal ended it).

    SIGTERM / SIGINT / SIGHUP to this process send SIGTERM to ``cmd`` (mpiexec passes it to
    every rank); ``GRACE_S`` later whatever is left is killed; then one line
    ``cosim: terminated (SIGTERM)`` and exit code 128 + signal.  No process of the job
    outlives this one (see above).
    """
    rc, got = _run(cmd, env)
    if got is not None:
        print(_signal_line(got), file=sys.stderr, flush=True)
        return 128 + got
    return rc


def launch_mpiexec(argv: Sequence[str], np: int, *, module: str = "cosim",
                   mpiexec: str | None = None, output: str | os.PathLike | None = None) -> int:
    """Run ``mpiexec -n np python -m <module> <argv without --np>``; return its exit code.

    ``argv`` is the command line after the program name, e.g.
    ``["run", "scenario.toml", "--np", "4", "--overwrite"]``.  A rank that dies without a
    word is named by the run's watchdog (:mod:`cosim.watchdog`), as under a plain
    ``mpiexec``; ``output`` is accepted for compatibility.  Signals: see :func:`run_command`.
    """
    cmd = mpiexec_command(np, ["-m", module, *strip_np(argv)], mpiexec=mpiexec)
    rc, got = _run(cmd)
    if got is not None:             # we ended the job: no rank is to blame
        if rc not in (128 + signal.SIGTERM, 128 + signal.SIGINT):   # ranks stopped and said so
            print(_signal_line(got), file=sys.stderr, flush=True)
        return 128 + got
    return rc


def launcher_world_size(env: Mapping[str, str] | None = None) -> int | None:
    """World size announced by an MPI launcher's process manager in ``env``, or None.

    ``mpiexec`` (Hydra, also inside a SLURM allocation) and ``srun --mpi=pmi2`` set
    ``PMI_RANK`` / ``PMI_SIZE``; Open MPI sets ``OMPI_COMM_WORLD_SIZE``; a PMIx launcher
    sets ``PMIX_RANK`` (-1 is returned when only a rank variable says a launcher is there).
    A batch script inside an allocation has ``SLURM_NTASKS`` and ``SLURM_PROCID=0`` but no
    PMI variable, and is correctly not counted as a launched rank.
    """
    env = os.environ if env is None else env
    for var in _SIZE_VARS:
        value = env.get(var)
        if value and value.isdigit():
            return int(value)
    if any(env.get(v) for v in _RANK_VARS):
        return -1
    return None


def srun_without_mpi_plugin(env: Mapping[str, str] | None = None) -> int | None:
    """K when ``srun`` started this process as one of K > 1 tasks *without* an MPI plugin
    (``--mpi=none``): every task would initialise MPI as a world of its own.  Else None.

    (Hydra's mpiexec inside an allocation starts one proxy per node with ``srun``, so
    ``SLURM_STEP_NUM_TASKS`` counts nodes there; it also sets ``PMI_SIZE``, checked first.)
    """
    env = os.environ if env is None else env
    if launcher_world_size(env) is not None:
        return None
    n = env.get("SLURM_STEP_NUM_TASKS", "")
    return int(n) if n.isdigit() and int(n) > 1 and env.get("SLURM_STEP_ID") else None
