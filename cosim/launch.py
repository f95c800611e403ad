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


def run_command(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``cmd``, forward its exit code (128 + signal if a signal ended it).

    Ctrl-C reaches mpiexec too (same process group); it forwards it to the ranks.  If they
    have not ended 10 s later, mpiexec is terminated.
    """
    proc = subprocess.Popen(list(cmd), env=None if env is None else dict(env))
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                rc = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        if rc == 0:
            rc = 128 + signal.SIGINT
    return 128 - rc if rc < 0 else rc


def launch_mpiexec(argv: Sequence[str], np: int, *, module: str = "cosim",
                   mpiexec: str | None = None, output: str | os.PathLike | None = None) -> int:
    """Run ``mpiexec -n np python -m <module> <argv without --np>``; return its exit code.

    ``argv`` is the command line after the program name, e.g.
    ``["run", "scenario.toml", "--np", "4", "--overwrite"]``.  With ``output`` (the run's
    output file) the ranks are watched: if the job fails because a process died (killed,
    crashed), one more line names its rank and engine (from ``<output>.ranks.json``, which
    rank 0 writes at start) — mpiexec itself only reports a PID, and not always the one
    that died first.
    """
    cmd = mpiexec_command(np, ["-m", module, *strip_np(argv)], mpiexec=mpiexec)
    if output is None:
        return run_command(cmd)
    import tempfile

    # sentinels may still write notes while the folder is removed: ignore those errors
    with tempfile.TemporaryDirectory(prefix="cosim-ranks-", ignore_cleanup_errors=True) as notes:
        env = dict(os.environ, COSIM_DEATH_NOTES=notes)
        rc = run_command(cmd, env=env)
        if rc != 0:
            note = first_death(Path(notes), Path(str(output) + ".ranks.json"), rc)
            if note:
                print(note, file=sys.stderr, flush=True)
    return rc


# -- which rank died first ------------------------------------------------------------------
#
# mpiexec stops every rank with SIGKILL once one of them dies, so all of them die within a
# few ms, and the order in which their deaths become visible from outside depends on how
# long the kernel takes to tear each one down.  Under ``cosim run --np`` every rank starts a
# small sentinel process that the kernel signals the moment its rank exits
# (``PR_SET_PDEATHSIG``); the sentinel writes the monotonic clock to a note.  The earliest
# note names the rank that died first: the others died because mpiexec killed them.

_SENTINEL = """
import os, signal, sys, time
path = sys.argv[1]
def note(sig, frame):
    with open(path + ".tmp", "w") as fh:
        fh.write(str(time.monotonic_ns()))
    os.replace(path + ".tmp", path)
    os._exit(0)
signal.signal(signal.SIGUSR1, note)
if os.getppid() != int(sys.argv[2]):
    note(None, None)
while True:
    signal.pause()
"""


def start_death_sentinel(rank: int) -> None:
    """Under ``cosim run --np``: start the sentinel of this rank (see above); no-op else."""
    notes = os.environ.get("COSIM_DEATH_NOTES")
    if not notes or not Path(notes).is_dir() or not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getpid()

    def arm():
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGUSR1))   # PR_SET_PDEATHSIG

    try:
        subprocess.Popen([sys.executable, "-c", _SENTINEL, str(Path(notes) / f"rank{rank}"),
                          str(parent)], preexec_fn=arm, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        pass


def first_death(notes: Path, ranks_file: Path, rc: int) -> str | None:
    """``cosim: rank R (engine E, pid P on host) ended first …`` from the sentinels' notes."""
    import json

    times = {}
    for p in notes.glob("rank*"):
        if p.name.endswith(".tmp"):
            continue
        try:
            times[int(p.name[4:])] = int(p.read_text())
        except (ValueError, OSError):
            pass
    if not times:
        return None
    try:
        table = json.loads(ranks_file.read_text())
    except (OSError, ValueError):
        table = {}
    first = min(times, key=times.get)
    e = table.get(str(first), {})
    how = f"signal {rc - 128}" if rc > 128 else ("signal 9, killed" if rc == 9 else f"exit code {rc}")
    return (f"cosim: rank {first} ({e.get('role', 'unknown role')}, pid {e.get('pid', '?')} on "
            f"{e.get('host', '?')}) ended first ({how}); mpiexec stopped the other ranks")


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
