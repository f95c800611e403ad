"""The ``mpi`` / ``slurm`` markers cannot be forgotten: an unmarked test that launches MPI
or SLURM fails (``tests/conftest.py``), so ``pytest -m "not mpi"`` stays the fast loop."""

from __future__ import annotations

import subprocess
import sys

import pytest

from _util import launch_kind


@pytest.mark.parametrize("args,kind", [
    (["/venv/bin/mpiexec", "-n", "3", sys.executable, "-m", "cosim", "run", "s.toml"], "mpi"),
    (["mpirun", "-np", "2", "a.out"], "mpi"),
    ([sys.executable, "-m", "cosim", "run", "s.toml", "--np", "3"], "mpi"),
    ([sys.executable, "-m", "cosim", "sweep", "s.toml", "--np=2"], "mpi"),
    ("mpiexec -n 2 python x.py", "mpi"),
    (["bash", "-c", "mpiexec -n 2 true"], "mpi"),
    (["sbatch", "--parsable", "job.sbatch"], "slurm"),
    (["/usr/sbin/slurmctld", "-D"], "slurm"),
    ([sys.executable, "-m", "cosim", "run", "s.toml", "--quiet"], None),
    ([sys.executable, "-m", "cosim", "slurm", "s.toml", "--launcher", "mpiexec"], None),
    (["bash", "-n", "job.sbatch"], None),
])
def test_launch_kind(args, kind):
    assert launch_kind(args) == kind


def test_an_unmarked_test_cannot_launch_mpi():
    with pytest.raises(pytest.fail.Exception, match=r"not marked @pytest.mark.mpi"):
        subprocess.run(["mpiexec", "-n", "1", "true"])
    with pytest.raises(pytest.fail.Exception, match=r"not marked @pytest.mark.slurm"):
        subprocess.Popen(["sbatch", "job.sbatch"])
    # anything else starts as usual
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0


@pytest.mark.mpi
def test_a_marked_test_may_launch_mpi_but_not_slurm():
    # the launcher itself need not exist: the guard lets the call through to Popen
    with pytest.raises(FileNotFoundError):
        subprocess.run(["mpiexec-not-installed-here", "--np", "1"])
    with pytest.raises(pytest.fail.Exception, match=r"not marked @pytest.mark.slurm"):
        subprocess.run(["sbatch", "job.sbatch"])


@pytest.mark.slurm
def test_slurm_implies_mpi(request):
    assert request.node.get_closest_marker("mpi") is not None
