"""`cosim slurm` and `cosim sweep --slurm` scripts submitted to a real one-node SLURM cluster.

The cluster (tests/slurm_cluster.py) is installed from Debian's packages when missing and
started once per session; the tests are skipped only where that is impossible (not root,
no apt-get).  Jobs run the scenario in one process and on 2 MPI ranks (srun --mpi=pmi2,
and the mpiexec of the mpich wheel inside the allocation; the node has as many CPUs as this
machine, 2 in CI).  Each job is waited for at most 120 s and judged by ``scontrol show job``
(JobState, ExitCode) and by the HDF5 files it wrote.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from _hpc import hpc_process
from slurm_cluster import SlurmUnavailable, ensure_cluster, stop_cluster, wait_for_job
from scenarios import neural_mass, record, scenario_text, simulation

pytestmark = pytest.mark.slurm          # implies mpi (tests/conftest.py)


def tiny(output) -> str:
    """50 ms of Jansen–Rit on connectivity_76, written to ``output``."""
    return scenario_text(simulation(duration=50.0, seed=3, output=output),
                         engines={"cortex": neural_mass()}, record=record(1.0))


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


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny scenario run in this process: what every job layout must reproduce."""
    from cosim.cli import main as cli_main

    d = tmp_path_factory.mktemp("reference")
    (d / "tiny.toml").write_text(tiny(d / "ref.h5"))
    assert cli_main(["run", str(d / "tiny.toml"), "--quiet"]) == 0
    with h5py.File(d / "ref.h5") as f:
        return f["engines/cortex/timeseries"][:]


@pytest.mark.parametrize("ntasks,launcher", [(1, "srun"), (None, "srun"), (2, "mpiexec")],
                         ids=["1-task", "plan-minimum-srun-pmi2", "2-tasks-mpiexec"])
def test_generated_script_runs_a_scenario_under_sbatch(slurm, tmp_path, reference, ntasks, launcher):
    out = tmp_path / "tiny.h5"
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(tiny(out))
    tasks = [] if ntasks is None else ["--ntasks", str(ntasks)]
    proc = hpc(slurm, "slurm", str(scenario), *tasks, "--launcher", launcher, "--time", "5",
               "--mem-per-cpu", "500M", "--partition", "debug", "--script", "job.sbatch",
               "--submit", cwd=tmp_path)
    job = job_id_of(proc)
    records = wait_for_job(slurm, job, timeout=120)
    assert len(records) == 1
    log = tmp_path / f"tiny-{job}.out"
    assert_completed(records, log)
    k = ntasks or 2                                   # the plan: bus + one engine
    assert records[0]["NumTasks"] == str(k)
    assert records[0]["Partition"] == "debug" and records[0]["TimeLimit"] == "00:05:00"
    assert f"wrote {out}" in log.read_text()
    with h5py.File(out) as f:
        assert f.attrs["status"] == "completed"
        assert f.attrs["windows_completed"] == 50
        assert f["timing/window_seconds"].shape == (50, k, 3)     # k ranks took part
        # layout independence: bitwise the one-process result
        np.testing.assert_array_equal(f["engines/cortex/timeseries"][:], reference)


def test_sweep_job_array_runs_each_variant(slurm, tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(tiny(tmp_path / "unused.h5"))
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


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_nest_hybrid_under_sbatch_equals_one_process(slurm, tmp_path, launcher):
    """A NEST region inside the brain, as a batch job on 3 tasks (bus | Jansen–Rit | NEST)
    with ``--overcommit`` (2 CPUs in CI: more tasks than CPUs): NEST's MPI-less wheel starts under srun's and
    Hydra's PMI variables and the job writes the one-process file bit for bit."""
    pytest.importorskip("nest")
    from _util import run_cli
    from test_nest_engine import _datasets, hybrid_nest
    from scenarios import write

    sc = write(tmp_path / "h.toml", hybrid_nest(duration=20.0))
    r = run_cli("run", str(sc), "--output", "one.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    proc = hpc(slurm, "slurm", str(sc), "--ntasks", "3", "--overcommit", "--launcher", launcher,
               "--time", "5",
               "--mem-per-cpu", "800M", "--partition", "debug", "--output", "job.h5",
               "--script", "job.sbatch", "--submit", cwd=tmp_path)
    job = job_id_of(proc)
    records = wait_for_job(slurm, job, timeout=180)
    assert_completed(records, tmp_path / f"h-{job}.out")
    assert records[0]["NumTasks"] == "3"
    one, batch = _datasets(tmp_path / "one.h5"), _datasets(tmp_path / "job.h5")
    assert one["spikes/v1.E/timestamps"].size > 20
    assert set(one) == set(batch)
    for name in one:
        np.testing.assert_array_equal(one[name], batch[name], err_msg=name)
    with h5py.File(tmp_path / "job.h5") as f:
        assert f["timing/window_seconds"].shape[1] == 3          # three ranks took part


def test_multi_part_job_with_more_tasks_than_cores_equals_one_process(slurm, tmp_path):
    """Issue 20's SLURM criterion: ``bench/scale.py``'s P = 5 scenario (a ring of 13
    regions: Jansen–Rit split by the plan into three parts, one multicompartment spiking
    region with its two adapters) as a batch job on 5 tasks with ``--overcommit`` — more
    tasks than this node's CPUs — writes the one-process data bit for bit."""
    import sys

    from _util import REPO, assert_same_data, h5_data, run_cli
    from cosim.plan import make_plan
    from cosim.scenario import load_scenario

    sys.path.insert(0, str(REPO / "bench"))
    import scale

    ntasks = 5                     # above the 2 CPUs of CI's node (and of most laptops)
    sc = scale.write_scenario(ntasks, tmp_path, 20.0)
    plan = make_plan(load_scenario(sc), ntasks)
    assert [g.n_parts for g in plan.groups] == [3, 1]          # cortex in 3 parts, s0
    r = run_cli("run", str(sc), "--output", "one.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    proc = hpc(slurm, "slurm", str(sc), "--ntasks", str(ntasks), "--overcommit",
               "--launcher", "srun", "--time", "5", "--mem-per-cpu", "500M",
               "--partition", "debug", "--output", "job.h5", "--script", "job.sbatch",
               "--submit", cwd=tmp_path)
    job = job_id_of(proc)
    records = wait_for_job(slurm, job, timeout=180)
    assert_completed(records, tmp_path / f"{sc.stem}-{job}.out")
    assert records[0]["NumTasks"] == str(ntasks)
    one, batch = h5_data(tmp_path / "one.h5"), h5_data(tmp_path / "job.h5")
    spikes = [k for k in one if "spikes" in k and one[k].size]
    assert spikes, sorted(one)                                  # the spiking region spiked
    assert_same_data(one, batch)
    with h5py.File(tmp_path / "job.h5") as f:
        assert f.attrs["status"] == "completed"
        assert f["timing/window_seconds"].shape[1] == ntasks     # five ranks took part
