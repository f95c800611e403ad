"""`cosim fit --slurm`: each wave of candidates is one job array on a real one-node SLURM
cluster (tests/slurm_cluster.py), and the fit is the one run in a single process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _hpc import hpc, hpc_process
from cosim.fitting.driver import VOLATILE
from fit_cases import fit_text, linear_net, truth_series, write_toml
from slurm_cluster import SlurmUnavailable, ensure_cluster

pytestmark = pytest.mark.slurm          # implies mpi (tests/conftest.py)


def _records(folder):
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in (folder / "evaluations.jsonl").read_text().splitlines()]


def test_fit_waves_as_slurm_arrays_equal_the_local_fit(tmp_path):
    try:
        cluster = ensure_cluster()
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM cluster: {exc}")
    np.save(tmp_path / "truth.npy", truth_series(tmp_path, 3000.0))
    write_toml(tmp_path / "net.toml", linear_net(3000.0))
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", {"timeseries": "truth.npy", "dataset": "timeseries"},
        {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03]}}, budget=4,
        loss={"fc": 1.0, "fc_mse": 10.0}, sets={"simulation.seed": 8},
        optimizer={"method": "cmaes", "population": 2}))
    local = hpc("fit", "fit.toml", "--out", "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    r = hpc_process("fit", "fit.toml", "--out", "arrays", "--slurm", "--partition", "debug",
                    "--time", "5", "--mem-per-cpu", "500M", cwd=tmp_path, env=cluster.env,
                    timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.count("as SLURM job") == 2                # two waves, two arrays
    scripts = sorted((tmp_path / "arrays" / "evaluations").glob("wave_*.sbatch"))
    assert [s.name for s in scripts] == ["wave_00000.sbatch", "wave_00002.sbatch"]
    assert "#SBATCH --array=0-1" in scripts[0].read_text()
    assert _records(tmp_path / "arrays") == _records(tmp_path / "local")
    # a task's finish is its output's mtime on the session's clock: after the previous
    # wave ended (its array is submitted then) and before its own wave's end was logged
    raw = [json.loads(line) for line in
           (tmp_path / "arrays" / "evaluations.jsonl").read_text().splitlines()]
    for w, wave in enumerate((raw[:2], raw[2:])):
        begun = raw[1]["time_s"] if w else 0.0
        assert all(r["wave"] == w and begun < r["finished_s"] <= r["time_s"] + 0.01
                   for r in wave), wave
