"""`cosim/launch.py`: finding mpiexec, building and running the command, PMI detection."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cosim import launch
from cosim.errors import CosimError
from scenarios import neural_mass, scenario_text, simulation

SCENARIO = scenario_text(simulation(duration=2.0), engines={"cortex": neural_mass()})


def _fake_exe(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_mpiexec_next_to_python_wins_over_path(tmp_path, monkeypatch):
    venv_bin, other = tmp_path / "venv" / "bin", tmp_path / "other"
    venv_bin.mkdir(parents=True)
    other.mkdir()
    _fake_exe(other / "mpiexec")
    monkeypatch.setenv("PATH", str(other))
    python = venv_bin / "python"
    assert launch.find_mpiexec(python) == str(other / "mpiexec")
    _fake_exe(venv_bin / "mpiexec")
    assert launch.find_mpiexec(python) == str(venv_bin / "mpiexec")


def test_no_mpiexec_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CosimError) as err:
        launch.mpiexec_command(2, ["-m", "cosim"], python=str(tmp_path / "python"))
    assert "pip install cosim[mpi]" in err.value.message()
    with pytest.raises(CosimError, match="--np must be ≥ 1"):
        launch.mpiexec_command(0, [], mpiexec="mpiexec")


def test_strip_np_and_command():
    argv = ["run", "s.toml", "--np", "4", "--overwrite", "--np=3", "--", "--np"]
    assert launch.strip_np(argv) == ["run", "s.toml", "--overwrite", "--", "--np"]
    cmd = launch.mpiexec_command(3, ["-m", "cosim", "run", "s.toml"], mpiexec="/x/mpiexec")
    assert cmd == ["/x/mpiexec", "-n", "3", sys.executable, "-m", "cosim", "run", "s.toml"]


def test_launcher_world_size_from_the_environment():
    assert launch.launcher_world_size({}) is None
    # a batch script inside an allocation is not a launched rank
    assert launch.launcher_world_size({"SLURM_NTASKS": "4", "SLURM_PROCID": "0"}) is None
    assert launch.launcher_world_size({"PMI_RANK": "1", "PMI_SIZE": "4"}) == 4
    assert launch.launcher_world_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert launch.launcher_world_size({"PMIX_RANK": "0"}) == -1
    srun_none = {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"}
    assert launch.srun_without_mpi_plugin(srun_none) == 4
    assert launch.srun_without_mpi_plugin({**srun_none, "PMI_SIZE": "4"}) is None
    # Hydra inside an allocation: its proxy step has 1 task per node, PMI_SIZE says 2
    assert launch.srun_without_mpi_plugin({"SLURM_STEP_ID": "1", "SLURM_STEP_NUM_TASKS": "1",
                                           "PMI_SIZE": "2"}) is None


@pytest.mark.mpi
def test_launch_mpiexec_runs_every_rank_and_forwards_the_exit_code(tmp_path):
    if launch.find_mpiexec() is None:
        pytest.skip("no mpiexec (install the mpi extra)")
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    code = ("import sys; from cosim.launch import launch_mpiexec; "
            "sys.exit(launch_mpiexec(sys.argv[1:], 2))")
    ok = subprocess.run([sys.executable, "-c", code, "validate", str(scenario), "--np", "2"],
                        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("s.toml: ok") == 2          # both ranks ran, --np was removed
    bad = subprocess.run([sys.executable, "-c", code, "validate", str(tmp_path / "none.toml"),
                          "--np=2"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "none.toml: no such file" in bad.stderr


def test_run_command_reports_a_signal_as_128_plus_signal():
    rc = launch.run_command([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
    assert rc == 128 + 15
