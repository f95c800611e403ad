"""`cosim slurm`: the sbatch script written for a scenario (submitted for real in test_slurm.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _hpc import hpc, hpc_process
from scenarios import neural_mass, scenario_text, simulation

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "slurm" / "whole_brain_jr.sbatch"
EXAMPLE_ARGS = ["--time", "02:00:00", "--partition", "standard", "--account", "myproject",
                "--mem-per-cpu", "2G", "--module", "mpich",
                "--python", "/home/user/cosim/.venv/bin/python"]

TWO_ENGINES = scenario_text(
    simulation(duration=10.0, output="out/two.h5"),
    engines={"left": neural_mass(regions=["rA1", "rV1"]), "right": neural_mass(regions="rest")})


def slurm(*args, cwd):
    return hpc("slurm", *args, cwd=cwd)


def sbatch_options(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([a-z-]+)=(.*)$", text, flags=re.M))


def test_default_is_the_plan_minimum_with_srun_pmi2(tmp_path):
    (tmp_path / "two.toml").write_text(TWO_ENGINES)
    r = hpc_process("slurm", "two.toml", "--partition", "short", "--account", "proj",
                    "--mem-per-cpu", "1500M", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote two.sbatch (3 tasks, srun)" in r.stdout
    text = (tmp_path / "two.sbatch").read_text()
    opts = sbatch_options(text)
    assert opts == {"job-name": "two", "ntasks": "3", "nodes": "1", "time": "01:00:00",
                    "partition": "short", "account": "proj", "mem-per-cpu": "1500M",
                    "chdir": str(tmp_path), "output": "%x-%j.out", "signal": "B:TERM@60"}
    assert "#   rank 0: bus and output file\n#   rank 1: engine left (neural_mass)\n" \
           "#   rank 2: engine right (neural_mass)\n" in text
    assert f"#   output: {tmp_path}/out/two.h5\n" in text
    assert text.rstrip().endswith(f'srun --mpi=pmi2 --kill-on-bad-exit=1 "$PYTHON" -m cosim run '
                                  f'{tmp_path}/two.toml')
    assert f"PYTHON={sys.executable}\n" in text
    assert os.access(tmp_path / "two.sbatch", os.X_OK)
    assert subprocess.run(["bash", "-n", str(tmp_path / "two.sbatch")]).returncode == 0
    # no partition/account/memory lines unless asked for
    r = slurm("two.toml", "--script", "-", "--nodes", "", cwd=tmp_path)
    assert set(sbatch_options(r.stdout)) == {"job-name", "ntasks", "time", "chdir", "output",
                                             "signal"}


def test_launcher_choices_and_more_ranks(tmp_path):
    (tmp_path / "two.toml").write_text(TWO_ENGINES)
    r = slurm("two.toml", "--script", "-", "--ntasks", "5", "--mpi", "pmix", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --ntasks=5" in r.stdout and "srun --mpi=pmix " in r.stdout
    assert "rank 4: engine right (neural_mass) part 3/3" in r.stdout   # plan.describe()
    r = slurm("two.toml", "--script", "-", "--launcher", "mpiexec", "--output", "x.h5",
              "--overwrite", "--module", "openmpi/4", "--setup", "source env.sh", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from cosim.launch import find_mpiexec

    assert f"MPIEXEC={find_mpiexec() or 'mpiexec'}\n" in r.stdout
    assert "module load openmpi/4\nsource env.sh\n" in r.stdout
    assert r.stdout.rstrip().endswith(f'"$MPIEXEC" -n "$SLURM_NTASKS" "$PYTHON" -m cosim run '
                                      f'{tmp_path}/two.toml --output x.h5 --overwrite')
    assert "#   output: " + str(tmp_path / "x.h5") in r.stdout
    # more tasks than CPUs: --overcommit for the allocation and for srun
    r = slurm("two.toml", "--script", "-", "--ntasks", "9", "--overcommit", cwd=tmp_path)
    assert "#SBATCH --overcommit\n" in r.stdout
    assert "srun --mpi=pmi2 --kill-on-bad-exit=1 --overcommit \"$PYTHON\"" in r.stdout
    # one task: the single-process runner, no MPI launcher
    r = slurm("two.toml", "--script", "-", "--ntasks", "1", cwd=tmp_path)
    assert "#   rank 0: bus + left, right (one process)" in r.stdout
    assert r.stdout.rstrip().endswith(f'\nexec "$PYTHON" -m cosim run {tmp_path}/two.toml')


@pytest.mark.parametrize("args,key", [
    (["--ntasks", "2"], "needs 1 process or at least 3"),
    (["--time", "1h"], "--time: expected a SLURM time"),
    (["--mem-per-cpu", "2 GB"], "--mem-per-cpu: expected a size"),
    (["--nodes", "two"], "--nodes: expected"),
    (["--partition", "a b"], "--partition: expected a partition name"),
    (["--setup", "a\nb"], "--setup: must be one non-empty line"),
    (["--sbatch", "qos=x"], "--sbatch: expected an sbatch option"),
    (["--ntasks", "0"], "--ntasks: must be ≥ 1"),
    (["--signal-lead", "-5"], "--signal-lead: must be between 0 and 65535 s, got -5"),
    (["--chdir", "/a b"], "--chdir: #SBATCH lines cannot hold a path with spaces"),
])
def test_bad_options_are_one_line_exit_2(tmp_path, args, key):
    (tmp_path / "two.toml").write_text(TWO_ENGINES)
    r = slurm("two.toml", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout
    assert key in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "two.sbatch").exists()


def test_existing_script_missing_scenario_and_submit_without_sbatch(tmp_path):
    (tmp_path / "two.toml").write_text(TWO_ENGINES)
    assert slurm("two.toml", cwd=tmp_path).returncode == 0
    r = slurm("two.toml", cwd=tmp_path)
    assert r.returncode == 2 and "two.sbatch: script exists; pass --force" in r.stderr
    assert slurm("two.toml", "--force", cwd=tmp_path).returncode == 0
    r = slurm("nope.toml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == "nope.toml: no such file"
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    r = hpc_process("slurm", "two.toml", "--force", "--submit", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "sbatch not found" in r.stderr


def _example_text(cwd: Path) -> str:
    r = slurm("scenarios/whole_brain_jr.toml", *EXAMPLE_ARGS, "--script", "-", cwd=cwd)
    assert r.returncode == 0, r.stderr
    text = r.stdout.replace(str(REPO), "/home/user/cosim")
    return re.sub(r"^# Written by .*$", "# Written by `cosim slurm`.", text, flags=re.M)


def test_the_example_in_slurm_folder_is_what_cosim_slurm_writes():
    got = _example_text(REPO)
    if os.environ.get("COSIM_REGEN_EXAMPLES"):
        EXAMPLE.write_text(got.replace("sbatch <this file>", "sbatch slurm/whole_brain_jr.sbatch"))
    want = EXAMPLE.read_text().replace("sbatch slurm/whole_brain_jr.sbatch", "sbatch <this file>")
    assert got == want, ("slurm/whole_brain_jr.sbatch is out of date; regenerate it with "
                         "COSIM_REGEN_EXAMPLES=1 python -m pytest tests/test_slurm_script.py")


def test_sigterm_before_the_time_limit_reaches_the_launcher(tmp_path):
    """SLURM sends SIGTERM to the batch shell 60 s (``--signal-lead``) before the limit, and
    the shell has exec'd the launcher, so the signal reaches srun / mpiexec / the single
    process — the run flushes its file and checkpoints instead of being killed at the limit."""
    (tmp_path / "two.toml").write_text(TWO_ENGINES)
    for args, launch in ((["--ntasks", "1"], 'exec "$PYTHON" -m cosim run '),
                         ([], 'exec srun --mpi=pmi2 --kill-on-bad-exit=1 "$PYTHON" -m cosim run '),
                         (["--launcher", "mpiexec"], 'exec "$MPIEXEC" -n "$SLURM_NTASKS" "$PYTHON"')):
        r = slurm("two.toml", "--script", "-", *args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert sbatch_options(r.stdout)["signal"] == "B:TERM@60"
        last = r.stdout.rstrip().splitlines()[-1]
        assert last.startswith(launch), last
    r = slurm("two.toml", "--script", "-", "--signal-lead", "300", cwd=tmp_path)
    assert sbatch_options(r.stdout)["signal"] == "B:TERM@300"
    r = slurm("two.toml", "--script", "-", "--signal-lead", "0", cwd=tmp_path)
    assert "signal" not in sbatch_options(r.stdout)
    # a sweep array's script: the same signal line, the run line exec'd
    r = hpc("sweep", "two.toml", "--param", "simulation.seed=1:2:2", "--slurm",
            "--out", "grid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "grid" / "sweep.sbatch").read_text()
    assert sbatch_options(text)["signal"] == "B:TERM@60"
    assert text.rstrip().splitlines()[-1].startswith('exec "$PYTHON" -m cosim run "$SCENARIO"')
