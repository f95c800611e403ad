"""Randomized fault injection: 50 short hybrid runs (some under ``cosim run --np 3``, some
under plain ``mpiexec -n 3``), each hit at a random moment by SIGKILL, SIGSTOP, SIGTERM or
SIGINT on a random rank.  For every run: the job ends within the bound, the line names the
right rank (a signal stops it cleanly instead), no process is left, the output opens and
holds every window it says it completed, and — where a checkpoint exists — ``--resume``
gives the straight run's bits."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import assert_same_data, h5_data, small_default

pytestmark = pytest.mark.mpi
MPIEXEC = Path(sys.executable).parent / "mpiexec"
N_RUNS = int(os.environ.get("COSIM_FAULT_RUNS", "50"))
TIMEOUT_S = 3.0                       # [simulation] exchange_timeout of the test scenario
STARTUP_S = 15.0                      # [simulation] startup_timeout (builds under CPU load)
ROLES = {0: "the bus (rank 0)", 1: "engine cortex (rank 1)", 2: "engine v1 (rank 2)"}


def _scenario(tmp_path: Path) -> Path:
    return small_default(tmp_path, "f.toml", **{
        "duration = 2000.0": "duration = 600.0",
        "seed = 2026": f"seed = 2026\ncheckpoint_every = 100.0\nexchange_timeout = {TIMEOUT_S}"
                       f"\nstartup_timeout = {STARTUP_S}",
        "[record]\nperiod = 1.0": "[record]\nperiod = 1.0\nflush_every = 20"})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                   # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_simulated(out: Path, t_ms: float, proc) -> None:
    """Until the live monitor reports simulated time ≥ ``t_ms`` (or the run ends)."""
    import zmq

    mon = Path(str(out) + ".monitor")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        sock.connect(mon.read_text().strip())
        while proc.poll() is None:
            if sock.poll(50) and json.loads(sock.recv_multipart()[-1]).get("t_ms", 0) >= t_ms:
                return
    finally:
        sock.close(0)
        ctx.term()


@pytest.fixture
def cpu_load():
    """A busy process competing for the cores for the whole test (blame under load)."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    burner.kill()
    burner.wait()


def test_random_faults(tmp_path, cpu_load):
    scen = _scenario(tmp_path)
    straight = tmp_path / "straight.h5"
    res = subprocess.run([sys.executable, "-m", "cosim", "run", str(scen), "-o", str(straight),
                          "-q", "--no-monitor"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    ref = h5_data(straight)
    rng = random.Random(20261201)
    report = []
    for i in range(N_RUNS):
        launcher = rng.choice(["np", "mpiexec"])
        target = rng.randrange(3)
        sig = rng.choice([signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM, signal.SIGINT])
        # a third of the faults hit the start-up (build, compilation), the rest a random
        # simulated moment, read from the run's live monitor
        at_ms = None if rng.random() < 1 / 3 else rng.uniform(5.0, 550.0)
        delay = rng.uniform(0.0, 1.0)
        out = tmp_path / f"run{i}.h5"
        args = ["run", str(scen), "-o", str(out), "-q"]
        cmd = ([sys.executable, "-m", "cosim", *args, "--np", "3"] if launcher == "np"
               else [str(MPIEXEC), "-n", "3", sys.executable, "-m", "cosim", *args])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        ranks_json = Path(str(out) + ".ranks.json")
        t0 = time.monotonic()
        while not ranks_json.exists() and proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.02)
        assert ranks_json.exists(), proc.communicate()
        table = json.loads(ranks_json.read_text())
        if at_ms is None:
            time.sleep(delay)
            when = f"{delay:.2f} s after start-up"
        else:
            _wait_simulated(out, at_ms, proc)
            when = f"at t ≥ {at_ms:.0f} ms"
        what = f"run {i}: {launcher}, {sig.name} to rank {target} {when}"
        if proc.poll() is not None:            # finished before the fault: nothing to test
            report.append(what + " — finished first")
            continue
        os.kill(table[str(target)]["pid"], sig)
        t_sig = time.monotonic()
        # a stop signal in the start-up ends the run at its first window boundary, after the
        # build (allowed STARTUP_S under this load)
        bound = {signal.SIGSTOP: (TIMEOUT_S if at_ms is not None else STARTUP_S) + 20.0}.get(
            sig, 15.0 if at_ms is not None or sig == signal.SIGKILL else STARTUP_S + 15.0)
        try:
            _, err = proc.communicate(timeout=bound + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{what}: still running after {bound + 30:g} s")
        took = time.monotonic() - t_sig
        ours = [ln for ln in err.splitlines() if ln.startswith("cosim:")]
        assert took < bound, f"{what}: took {took:.1f} s\n{err}"
        if sig in (signal.SIGTERM, signal.SIGINT):
            finished = proc.returncode == 0          # the signal came with the last window
            assert finished or proc.returncode == 128 + sig, f"{what}: rc {proc.returncode}\n{err}"
            assert finished or (len(ours) == 1 and f"({sig.name}) at t = " in ours[0]), f"{what}\n{err}"
        elif sig == signal.SIGKILL:
            e = table[str(target)]
            assert ours == [f"cosim: rank {target} ({e['role']}, pid {e['pid']} on {e['host']}) "
                            f"ended first without a word (killed or crashed); the launcher "
                            f"stopped the other ranks"], f"{what}\n{err}"
        else:
            assert len(ours) == 1 and ours[0].startswith(f"cosim: {ROLES[target]} stopped "
                                                         f"responding"), f"{what}\n{err}"
        time.sleep(0.3)
        left = [r for r, e in table.items() if _alive(e["pid"])]
        assert not left, f"{what}: ranks {left} left running"
        assert not _alive(proc.pid)
        ck = Path(str(out) + ".checkpoint") / "coordinator.npz"
        if not out.exists():                  # ended before the output was created
            assert not ck.exists(), what
            report.append(f"{what} — ended in {took:.1f} s before the output existed")
            continue
        with h5py.File(out) as f:             # opens, and holds what it says it has
            done = int(f.attrs["windows_completed"])
            assert f["engines/cortex/timeseries"].shape[0] == done, what
            np.testing.assert_array_equal(f["engines/cortex/timeseries"][()],
                                          ref["engines/cortex/timeseries"][:done], err_msg=what)
        resumed = ""
        if ck.exists():
            r = subprocess.run([str(MPIEXEC), "-n", "3", sys.executable, "-m", "cosim", *args,
                                "--resume", "--no-monitor"], capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, f"{what}: resume failed\n{r.stderr}"
            assert_same_data(h5_data(out), ref, what)
            resumed = ", resumed bitwise"
        report.append(f"{what} — ended in {took:.1f} s, {done} windows kept{resumed}")
    print("\n".join(report))
    assert sum("finished first" not in r for r in report) >= N_RUNS * 0.8
