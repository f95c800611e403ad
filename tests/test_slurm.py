"""`cosim slurm` and `cosim sweep --slurm` scripts submitted to a real one-node SLURM cluster.

The cluster (tests/slurm_cluster.py) is installed from Debian's packages when missing and
started once per session; the tests are skipped only where that is impossible (not root,
no apt-get).  Each job is waited for at most 120 s and judged by ``scontrol show job``
(JobState, ExitCode) and by the HDF5 files it wrote.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from _hpc import hpc_process
from cosim.slurm import JobOptions, render
from slurm_cluster import SlurmUnavailable, ensure_cluster, stop_cluster, wait_for_job

TINY = """\
[simulation]
duration = 50.0
sync_interval = 1.0
seed = 3
output = "{output}"

[connectome]
source = "tvb:connectivity_76"

[engines.cortex]
type = "neural_mass"
model = "jansen_rit"
dt = 0.1

[record]
period = 1.0
"""


@pytest.fixture(scope="session")
def slurm():
    try:
        cluster = ensure_cluster()
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM cluster: {exc}")
    yield cluster
    stop_cluster(cluster)


def hpc(cluster, *args, cwd):
    return hpc_process(*args, cwd=cwd, env=cluster.env, timeout=120)


def job_id_of(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("submitted job "))
    return line.split()[-1]


def assert_completed(records, log: Path | None = None):
    detail = log.read_text() if log is not None and log.exists() else ""
    for r in records:
        assert r["JobState"] == "COMPLETED", (r, detail)
        assert r["ExitCode"] == "0:0", (r, detail)


def test_generated_script_runs_a_scenario_under_sbatch(slurm, tmp_path):
    out = tmp_path / "tiny.h5"
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY.format(output=out))
    # tasks=1: the in-process runner (until the MPI runtime lands, see test below)
    proc = hpc(slurm, "slurm", str(scenario), "--ntasks", "1", "--time", "5",
               "--mem-per-cpu", "500M", "--partition", "debug", "--script", "job.sbatch",
               "--submit", cwd=tmp_path)
    job = job_id_of(proc)
    records = wait_for_job(slurm, job, timeout=120)
    assert len(records) == 1
    log = tmp_path / f"tiny-{job}.out"
    assert_completed(records, log)
    assert records[0]["Partition"] == "debug" and records[0]["TimeLimit"] == "00:05:00"
    assert f"wrote {out}" in log.read_text()
    with h5py.File(out) as f:
        assert f.attrs["status"] == "completed"
        assert f.attrs["windows_completed"] == 50
        ts = f["engines/cortex/timeseries"][:]
        assert ts.shape[0] == 50 and ts.shape[2] == 76 and np.isfinite(ts).all()


SANITY = """\
import json, os, sys
from mpi4py import MPI
from cosim.launch import launcher_world_size
c = MPI.COMM_WORLD
total = c.allreduce(c.rank + 1)
with open(os.path.join(sys.argv[1], f"rank{c.rank}.json"), "w") as f:
    json.dump({"rank": c.rank, "size": c.size, "sum": total,
               "launcher_size": launcher_world_size()}, f)
"""


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_launch_line_starts_two_mpi_ranks_in_the_allocation(slurm, tmp_path, launcher):
    # The generated script's header and launch prefix, with a two-rank mpi4py program in
    # place of `cosim run` (which runs in one process until the MPI runtime lands).
    opts = JobOptions(job_name=f"sanity-{launcher}", ntasks=2, time="5", launcher=launcher,
                      chdir=tmp_path)
    code = tmp_path / "sanity.py"
    code.write_text(SANITY)
    body = f'{opts.launch_prefix()}"$PYTHON" {shlex.quote(str(code))} {shlex.quote(str(tmp_path))}\n'
    script = tmp_path / "sanity.sbatch"
    script.write_text(render(opts, title="sanity", plan_lines=[], body=body))
    proc = subprocess.run(["sbatch", "--parsable", str(script)], env=slurm.env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip()
    records = wait_for_job(slurm, job, timeout=120)
    assert_completed(records, tmp_path / f"sanity-{launcher}-{job}.out")
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [g["rank"] for g in got] == [0, 1]
    assert all(g["size"] == 2 and g["sum"] == 3 and g["launcher_size"] == 2 for g in got)


def test_sweep_job_array_runs_each_variant(slurm, tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY.format(output=tmp_path / "unused.h5"))
    proc = hpc(slurm, "sweep", str(scenario), "--param", "engines.cortex.coupling.G=0.0,20.0",
               "--slurm", "--out", "grid", "--time", "5", "--submit", cwd=tmp_path)
    job = job_id_of(proc)
    records = wait_for_job(slurm, job, timeout=120)
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "1"]
    assert_completed(records)
    series = []
    for name in ("000_G=0", "001_G=20"):
        with h5py.File(tmp_path / "grid" / f"{name}.h5") as f:
            assert f.attrs["status"] == "completed"
            series.append(f["engines/cortex/timeseries"][:])
            assert "G = 0" in f["scenario"][()].decode() or "G = 20" in f["scenario"][()].decode()
    assert series[0].shape == series[1].shape == (50, series[0].shape[1], 76)
    assert not np.array_equal(series[0], series[1])   # the coupling strength mattered
    assert not (tmp_path / "unused.h5").exists()
