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
    ranks = Path(str(output) + ".ranks.json")
    ranks.unlink(missing_ok=True)
    watcher = _RankWatcher(ranks)
    watcher.start()
    try:
        rc = run_command(cmd)
    finally:
        watcher.stop()
    if rc != 0 and watcher.first_dead:
        print(watcher.describe(rc), file=sys.stderr, flush=True)
    return rc


class _RankWatcher:
    """Polls the pids of a run's ranks every 2 ms and remembers which ended first."""

    def __init__(self, ranks_file: Path):
        import threading

        self.path = ranks_file
        self.table: dict = {}
        self.first_dead: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X")
        except (FileNotFoundError, IndexError, PermissionError):
            return False

    def _run(self) -> None:
        import json
        import time

        while not self._stop.is_set() and not self.table:
            try:
                self.table = json.loads(self.path.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
        if not Path("/proc").is_dir():
            return
        while not self._stop.is_set():
            dead = [r for r, e in self.table.items() if not self._alive(int(e["pid"]))]
            if dead:
                self.first_dead = dead
                return
            time.sleep(0.002)

    def describe(self, rc: int) -> str:
        parts = [f"rank {r} ({self.table[r].get('role')}, pid {self.table[r].get('pid')} on "
                 f"{self.table[r].get('host')})" for r in self.first_dead]
        how = f" (signal {rc - 128})" if rc > 128 else (" (killed by signal 9)" if rc == 9 else "")
        return (f"cosim: {' and '.join(parts)} ended first{how}; mpiexec stopped the other "
                f"ranks (exit code {rc})")


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
