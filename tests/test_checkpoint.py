"""Checkpoint and restart: a run interrupted and resumed equals a straight run, bit for bit
(delay history, noise streams, monitors, the output file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import run_cli
from cosim.errors import CosimError
from cosim.runtime import run_scenario
from cosim.scenario import load_scenario
from scenarios import hybrid, neural_mass, record, scenario_text, simulation, write

SCENARIO = scenario_text(
    simulation(duration=200.0, seed=7, output="ck.h5", checkpoint_every=50.0),
    engines={"cortex": neural_mass(integrator="stochastic_heun", noise={"y4": 0.01})},
    record=record(1.0, 7, cortex={"eeg": {"period": 4.0}}))


def _all(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     and not n.startswith(("timing", "provenance")) else None)
        status = f.attrs["status"]
    return out, status


def test_crash_then_resume_equals_straight_run(write_scenario, tmp_path):
    path = write_scenario(SCENARIO, "ck.toml")
    run_scenario(load_scenario(path), output=tmp_path / "straight.h5", progress_stream=None)

    def crash(k, t, payload):
        if k == 120:
            raise RuntimeError("node failure")

    with pytest.raises(RuntimeError):
        run_scenario(load_scenario(path), output=tmp_path / "ck.h5", progress_stream=None,
                     on_window=crash)
    with h5py.File(tmp_path / "ck.h5") as f:
        assert f.attrs["status"] == "failed"
        assert f.attrs["windows_completed"] == 121          # flushed on failure
    ckdir = tmp_path / "ck.h5.checkpoint"
    assert sorted(p.name for p in ckdir.iterdir()) == ["coordinator.npz", "part-cortex-0-w100.npz"]
    # resume through the real command line
    r = run_cli("run", str(path), "--output", str(tmp_path / "ck.h5"), "--resume", "--quiet",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a, sa = _all(tmp_path / "straight.h5")
    b, sb = _all(tmp_path / "ck.h5")
    assert sa == sb == "completed"
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with h5py.File(tmp_path / "ck.h5") as f:
        assert f["timing/window_seconds"].shape[0] == 200


def test_resume_without_checkpoint_is_a_clear_error(write_scenario, tmp_path):
    path = write_scenario(SCENARIO, "ck.toml")
    r = run_cli("run", str(path), "--resume", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "coordinator.npz: no checkpoint to resume from (run with [simulation] checkpoint_every first)"
    with pytest.raises(CosimError, match="whole multiple of simulation.sync_interval"):
        load_scenario(write_scenario(SCENARIO.replace("checkpoint_every = 50.0", "checkpoint_every = 2.5")))


MPIEXEC = Path(sys.executable).parent / "mpiexec"


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec (pip install -e .[mpi])")
@pytest.mark.mpi
def test_hybrid_killed_under_mpiexec_then_resumed_equals_straight_run(tmp_path):
    """Spikes in flight, synapses and STP, Poisson streams, the bus history and the neural
    masses' rings all survive a SIGKILL and a resume under `mpiexec -n 3`."""
    sc = write(tmp_path / "hybrid.toml", hybrid(duration=400.0, checkpoint_every=50.0))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    base = [sys.executable, "-m", "cosim", "run", str(sc), "--quiet", "--no-monitor"]
    r = subprocess.run([str(MPIEXEC), "-n", "3", *base, "--output", "straight.h5"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "cut.h5"
    proc = subprocess.Popen([str(MPIEXEC), "-n", "3", *base, "--output", str(out)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    coordinator = Path(str(out) + ".checkpoint") / "coordinator.npz"
    ranks = Path(str(out) + ".ranks.json")
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if coordinator.exists():
                with np.load(coordinator) as z:
                    if int(z["@window"]) >= 150:
                        break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.kill(json.loads(ranks.read_text())["2"]["pid"], signal.SIGKILL)   # the spiking rank
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    with h5py.File(out) as f:
        # killed: never closed ("running"), or joined afterwards by the watchdog
        assert f.attrs["status"] in ("running", "failed")
    r = subprocess.run([str(MPIEXEC), "-n", "3", *base, "--output", str(out), "--resume"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, sa = _all(tmp_path / "straight.h5")
    b, sb = _all(out)
    assert sa == sb == "completed"
    assert a["spikes/v1.exc/timestamps"].size + a["spikes/v1.inh/timestamps"].size > 50
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
