"""Helpers shared by tests (importable as ``from _util import …``)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m cosim ARGS`` in a subprocess (as a user would run ``cosim``)."""
    env = dict(os.environ)
    env.pop("COSIM_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cosim", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


MPI_LAUNCHERS = frozenset({"mpiexec", "mpirun", "mpiexec.hydra", "mpiexec.mpich", "orterun"})
SLURM_CLIENTS = frozenset({"sbatch", "srun", "salloc", "scontrol", "squeue", "sacct",
                           "slurmctld", "slurmd", "munged"})


def launch_kind(args) -> str | None:
    """``"mpi"``, ``"slurm"`` or None: what a ``subprocess.Popen(args)`` would start.

    MPI: an MPI launcher as the program, or an ``--np`` option anywhere (``cosim run --np``
    and ``cosim sweep --np`` launch ``mpiexec`` themselves).  SLURM: a SLURM client or daemon.
    """
    if isinstance(args, (str, bytes, os.PathLike)):
        argv = shlex.split(os.fsdecode(args))
    else:
        argv = [os.fsdecode(a) for a in args]
    if len(argv) >= 3 and os.path.basename(argv[0]) in ("sh", "bash") and argv[1] == "-c":
        argv = shlex.split(argv[2])
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in SLURM_CLIENTS:
        return "slurm"
    if program in MPI_LAUNCHERS or any(a == "--np" or a.startswith("--np=") for a in argv):
        return "mpi"
    return None


def h5_data(path, skip=("timing", "provenance")) -> dict:
    """Every dataset of an output file (name → array), but those under ``skip``."""
    import h5py

    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     and not n.startswith(tuple(skip)) else None)
    return out


def assert_same_data(a: dict, b: dict, what: str = "") -> None:
    """Bitwise equality of two :func:`h5_data` results."""
    import numpy as np

    assert set(a) == set(b), (what, sorted(set(a) ^ set(b)))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what} {k}")


def wait_windows(out: Path, proc, n: int, timeout: float = 240.0) -> tuple[dict, int]:
    """Block until a running job (``proc``) has ``n`` windows of ``out`` on disk; returns its
    rank table (``<out>.ranks.json``) and the windows seen.  Fails if the job ends first."""
    import json
    import time

    import h5py

    ranks = Path(str(out) + ".ranks.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if ranks.exists() and out.exists():
            try:
                with h5py.File(out, "r", locking=False) as f:
                    w = int(f.attrs.get("windows_completed", 0))
                if w >= n:
                    return json.loads(ranks.read_text()), w
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"the run did not reach {n} windows")


def signal_and_wait(proc, pid: int, sig, timeout: float = 60.0) -> tuple[str, str, float]:
    """Send ``sig`` to process ``pid`` (one rank of the job ``proc``), then wait for the job
    to end: its stdout, stderr and the seconds it took.  A job still running after
    ``timeout`` is killed (its process group when it leads one) and the wait fails."""
    import signal
    import time

    t0 = time.monotonic()
    os.kill(pid, sig)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.communicate()
    return stdout, stderr, time.monotonic() - t0


def crash_at(scenario_path, out: Path, at_window: int) -> Path:
    """Run ``scenario_path`` into ``out`` until an exception after window ``at_window``
    (a node failure, as :func:`cosim.runtime.run_scenario`'s ``on_window`` sees it)."""
    import pytest

    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    def crash(k, t, payload):
        if k == at_window:
            raise RuntimeError("node failure")

    with pytest.raises(RuntimeError, match="node failure"):
        run_scenario(load_scenario(scenario_path), output=out, progress_stream=None,
                     on_window=crash)
    return out


def crash_and_resume(scenario_path, out: Path, at_window: int) -> Path:
    """:func:`crash_at`, then resume in process from the last checkpoint; returns ``out``."""
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    crash_at(scenario_path, out, at_window)
    run_scenario(load_scenario(scenario_path), output=out, progress_stream=None, resume=True)
    return out


def small_default(tmp_path: Path, name: str = "h.toml", **subs) -> Path:
    """``scenarios/default.toml`` made small for tests: 24 + 12 cells, 1 ms windows, no
    output key; ``subs`` are further ``old → new`` text replacements (each must match)."""
    text = (REPO / "scenarios" / "default.toml").read_text()
    for old, new in {"\nn = 240\n": "\nn = 24\n", "\nn = 60\n": "\nn = 12\n",
                     "sync_interval = 5.0": "sync_interval = 1.0",
                     'output = "results/default.h5"\n': "", **subs}.items():
        assert old in text, old
        text = text.replace(old, new)
    p = Path(tmp_path) / name
    p.write_text(text)
    return p
