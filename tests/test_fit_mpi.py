"""`cosim fit --np K`: the waves' evaluations spread over MPI ranks give the same fit as one
process; bad input under mpiexec is exit 2 with one line, from every failure point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from _hpc import hpc, hpc_process
from cosim.fitting.driver import VOLATILE
from cosim.launch import find_mpiexec
from fit_cases import DATA, fit_text, linear_net, truth_series, write_toml

pytestmark = pytest.mark.mpi

G = {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03]}}


def _setup(tmp_path, **target):
    if find_mpiexec() is None:
        pytest.skip("no mpiexec (install the mpi extra)")
    np.save(tmp_path / "truth.npy", truth_series(tmp_path, 5000.0))
    # the fit's [connectome] replaces the base scenario's (on every rank)
    base = linear_net(5000.0)
    for name, f in (("w", "six_weights.csv"), ("l", "six_lengths.csv")):
        np.save(tmp_path / f"{name}.npy", np.loadtxt(DATA / f, delimiter=","))
    base["connectome"]["source"] = "tvb:connectivity_76"
    write_toml(tmp_path / "net.toml", base)
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", {"timeseries": "truth.npy", "dataset": "timeseries", **target}, G,
        budget=7, loss={"fc": 1.0, "fc_mse": 10.0}, sets={"simulation.seed": 8},
        optimizer={"method": "cmaes", "population": 4},
        connectome={"weights": "w.npy", "tract_lengths": "l.npy"}))


def _records(folder):
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in (folder / "evaluations.jsonl").read_text().splitlines()]


def test_fit_over_two_ranks_equals_the_single_process_fit(tmp_path):
    _setup(tmp_path)
    one = hpc("fit", "fit.toml", "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = hpc_process("fit", "fit.toml", "--out", "two", "--np", "2", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("fit: 4/7 evaluations, wave 0") == 1        # rank 0 reports
    assert "fit: 7/7 evaluations, wave 1" in two.stderr
    assert _records(tmp_path / "two") == _records(tmp_path / "one")
    # evaluation j of a wave ran on rank j mod 2: each rank's finish one after the other,
    # all before the wave's end
    raw = [json.loads(line) for line in (tmp_path / "two" / "evaluations.jsonl").read_text()
           .splitlines()]
    for w, (lo, hi) in enumerate(((0, 4), (4, 7))):
        wave = raw[lo:hi]
        assert all(r["wave"] == w and r["finished_s"] <= r["time_s"] for r in wave)
        for rank in (0, 1):
            done = [r["finished_s"] for j, r in enumerate(wave) if j % 2 == rank]
            assert done == sorted(done), (w, rank, done)
    # ... the same as the scenario with the matrices in its own [connectome]
    from cosim.scenario import load_scenario

    sc = load_scenario(tmp_path / "two" / "evaluations" / "00005.toml")
    assert sc.connectome.n_regions == 6
    assert json.loads((tmp_path / "two" / "best.json").read_text())["params"] == \
        json.loads((tmp_path / "one" / "best.json").read_text())["params"]
    for i in range(7):                           # every evaluation's output is the same
        import h5py

        with h5py.File(tmp_path / "one" / "evaluations" / f"{i:05d}.h5") as a, \
                h5py.File(tmp_path / "two" / "evaluations" / f"{i:05d}.h5") as b:
            np.testing.assert_array_equal(a["engines/net/timeseries"][:],
                                          b["engines/net/timeseries"][:])


@pytest.mark.parametrize("target, key", [
    ({"discard": -1.0}, "fit.toml: target.discard: must be >= 0"),              # reading
    ({"dataset": "bold"}, "fit.toml: target.dataset: the scenario records no dataset 'bold'"),
])
def test_bad_input_under_mpiexec_is_exit_2_with_one_line(tmp_path, target, key):
    _setup(tmp_path, **target)
    cmd = [find_mpiexec(), "-n", "2", sys.executable, "-m", "cosim.fitting.worker",
           str(tmp_path / "fit.toml"), "--out", str(tmp_path / "w")]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(key), r.stderr
