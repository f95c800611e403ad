"""Signals as SLURM and users send them: SIGTERM / SIGINT to the one process, to
``mpiexec`` or to one rank ends the whole job at the next window boundary, within seconds:
exit code 128 + signal, one line, the output closed with status ``terminated`` holding every
completed window, a final checkpoint; ``--resume`` then gives the straight run's bits.
Also the start-up failures that used to hang ``mpiexec -n 3``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from _util import assert_same_data, h5_data, small_default

MPIEXEC = Path(sys.executable).parent / "mpiexec"
DURATION = 3000.0


def _hybrid(tmp_path: Path, duration=DURATION, name="h.toml") -> Path:
    """The default scenario, small (:func:`_util.small_default`), with checkpoints."""
    return small_default(tmp_path, name, **{
        "duration = 2000.0": f"duration = {duration}",
        "seed = 2026": "seed = 2026\ncheckpoint_every = 50.0",
        "[record]\nperiod = 1.0": "[record]\nperiod = 1.0\nflush_every = 10"})


def _start(args, mpi: int = 0, cwd=None) -> subprocess.Popen:
    cmd = ([str(MPIEXEC), "-n", str(mpi)] if mpi else []) + [sys.executable, "-m", "cosim", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, start_new_session=True)


def _wait_simulating(out: Path, t_ms: float, proc, timeout=120.0) -> float:
    """Block until the run's live monitor reports simulated time ≥ ``t_ms``."""
    import zmq

    mon = Path(str(out) + ".monitor")
    deadline = time.monotonic() + timeout
    while not mon.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(mon.read_text().strip())
    try:
        while time.monotonic() < deadline:
            if sock.poll(200):
                msg = json.loads(sock.recv_multipart()[-1])
                if msg.get("t_ms", 0.0) >= t_ms:
                    return msg["t_ms"]
            assert proc.poll() is None, proc.communicate()
        raise AssertionError("the run did not reach the moment to signal it")
    finally:
        sock.close(0)
        ctx.term()


def _ends_within(proc, seconds: float):
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=seconds)
    return proc.returncode, err, time.monotonic() - t0


def _check_terminated(out: Path, t_signal: float):
    with h5py.File(out) as f:
        assert f.attrs["status"] == "terminated"
        w = int(f.attrs["windows_completed"])
        assert w * 1.0 >= t_signal                                 # nothing before it lost
        assert f["engines/cortex/timeseries"].shape[0] == w         # 1 ms windows, 1 ms period
        assert w < DURATION
    return w


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    scen = _hybrid(d)
    res = subprocess.run([sys.executable, "-m", "cosim", "run", str(scen), "-o", str(d / "s.h5"),
                          "-q", "--no-monitor"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    return h5_data(d / "s.h5")


def _resume_equals(straight, scen, out, mpi=0):
    cmd = ([str(MPIEXEC), "-n", str(mpi)] if mpi else []) + [
        sys.executable, "-m", "cosim", "run", str(scen), "-o", str(out), "-q", "--no-monitor",
        "--resume"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    assert_same_data(h5_data(out), straight)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_one_process(tmp_path, straight, sig):
    scen, out = _hybrid(tmp_path), tmp_path / "o.h5"
    proc = _start(["run", str(scen), "-o", str(out), "-q"])
    t = _wait_simulating(out, 300.0, proc)
    os.kill(proc.pid, sig)
    rc, err, took = _ends_within(proc, 30)
    assert rc == 128 + sig and took < 10, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"({sig.name}) at t = " in lines[0], err
    _check_terminated(out, t)
    _resume_equals(straight, scen, out)


@pytest.mark.mpi
@pytest.mark.parametrize("target", ["mpiexec", "rank 1", "rank 2"])
def test_sigterm_under_mpiexec(tmp_path, straight, target):
    scen, out = _hybrid(tmp_path), tmp_path / "o.h5"
    proc = _start(["run", str(scen), "-o", str(out), "-q"], mpi=3)
    t = _wait_simulating(out, 300.0, proc)
    ranks = json.loads(Path(str(out) + ".ranks.json").read_text())
    pid = proc.pid if target == "mpiexec" else ranks[target.split()[1]]["pid"]
    os.kill(pid, signal.SIGTERM)
    rc, err, took = _ends_within(proc, 60)
    assert rc == 143 and took < 15, err
    assert "terminated (SIGTERM) at t = " in err
    _check_terminated(out, t)
    for r in ranks.values():                          # no process left behind
        with pytest.raises(ProcessLookupError):
            os.kill(r["pid"], 0)
    _resume_equals(straight, scen, out, mpi=3)


# -- start-up failures that hung mpiexec -n 3 -------------------------------------------------

def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


@pytest.mark.mpi
@pytest.mark.parametrize("case, n_proc", [("proc_output", 3), ("monitor_garbage", 3),
                                          ("monitor_port_taken", 3), ("truncated_checkpoint", 3),
                                          ("truncated_part_checkpoint", 9)])
def test_startup_failures_end_every_rank(tmp_path, case, n_proc):
    """A start-up failure of the bus ends every rank: exit 2, one line naming the culprit.
    At P = 9 (the neural mass in 6 parts, rV1 in 2): a resume from a checkpoint one of whose
    part files is truncated — that part fails at its build and names the file, the 8 other
    ranks end with it."""
    scen = _hybrid(tmp_path, duration=60.0)            # one checkpoint, at 50 ms
    out, extra, keep = tmp_path / "o.h5", [], None
    if case == "proc_output":
        out = Path("/proc/cosim-test/o.h5")
    elif case == "monitor_garbage":
        extra = ["--monitor", "garbage"]
    elif case == "monitor_port_taken":
        keep, port = _busy_port()
        extra = ["--monitor", f"tcp://127.0.0.1:{port}"]
    else:
        first = [str(MPIEXEC), "-n", str(n_proc)] if n_proc > 3 else []
        res = subprocess.run(first + [sys.executable, "-m", "cosim", "run", str(scen), "-o",
                                      str(out), "-q", "--no-monitor"],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        ck = Path(str(out) + ".checkpoint") / ("coordinator.npz" if case == "truncated_checkpoint"
                                              else "part-cortex-3-w50.npz")
        ck.write_bytes(ck.read_bytes()[:100])
        extra = ["--resume", "--no-monitor"]
    try:
        res = subprocess.run([str(MPIEXEC), "-n", str(n_proc), sys.executable, "-m", "cosim",
                              "run", str(scen), "-o", str(out), "-q", *extra],
                             capture_output=True, text=True, timeout=120)
    finally:
        if keep is not None:
            keep.close()
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "internal error" not in lines[0], res.stderr
    assert {"proc_output": "o.h5", "monitor_garbage": "garbage",
            "monitor_port_taken": str(port) if keep else "", "truncated_checkpoint":
            "coordinator.npz", "truncated_part_checkpoint": "part-cortex-3-w50.npz"}[case] \
        in lines[0], lines[0]
