"""Randomized fault injection: short hybrid runs (some under ``cosim run --np P``, some
under plain ``mpiexec -n P``), each hit at a random moment by SIGKILL, SIGSTOP, SIGTERM or
SIGINT on a random rank.  At P = 3: 50 runs (``COSIM_FAULT_RUNS``), everything drawn at
random.  At P = 5 (cortex in 3 parts) and P = 9 (cortex in 6 parts, rV1 in 2): 3 runs each
(``COSIM_FAULT_RUNS_5``, ``COSIM_FAULT_RUNS_9``): a SIGKILL, a SIGSTOP and a SIGTERM or
SIGINT, mid-run, each to another kind of rank (the bus, a neural-mass part, a spiking
part); further runs are random.  For every run: the job ends within the bound, the line
names the right rank (a signal stops it cleanly instead), no process is left, the output
opens and holds every window it says it completed (at P > 3 joined from the rank files),
equal to the straight one-process run's (every series, and the spikes before its end), and
— where a checkpoint exists (at P > 3 not after a SIGSTOP) — ``--resume`` under
``mpiexec -n P`` gives the straight run's bits."""

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
from cosim.plan import make_plan
from cosim.scenario import load_scenario

pytestmark = pytest.mark.mpi
MPIEXEC = Path(sys.executable).parent / "mpiexec"
N_RUNS = {3: int(os.environ.get("COSIM_FAULT_RUNS", "50")),
          5: int(os.environ.get("COSIM_FAULT_RUNS_5", "3")),
          9: int(os.environ.get("COSIM_FAULT_RUNS_9", "3"))}
SIGNALS = [signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM, signal.SIGINT]
TIMEOUT_S = 3.0                       # [simulation] exchange_timeout of the test scenario
STARTUP_S = 15.0                      # [simulation] startup_timeout (builds under CPU load)
#: every time series of the output, checked window by window after a fault
SERIES = ("engines/cortex/timeseries", "engines/cortex/rate", "engines/v1/rate")


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
def cpu_load(request):
    """A busy process competing for the cores for the whole test (blame under load).  At
    P > 3 the job's own ranks oversubscribe the cores already: no burner there."""
    if request.node.callspec.params.get("n_proc", 3) > 3:
        yield
        return
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    burner.kill()
    burner.wait()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The one-process run of the scenario: the reference of every faulted run."""
    d = tmp_path_factory.mktemp("straight")
    res = subprocess.run([sys.executable, "-m", "cosim", "run", str(_scenario(d)), "-o",
                          str(d / "straight.h5"), "-q", "--no-monitor"], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return h5_data(d / "straight.h5")


def _launch(cmd: list[str], out: Path):
    """Start ``cmd`` in a session of its own; wait for its ranks table: ``(proc, table)``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    ranks_json = Path(str(out) + ".ranks.json")
    t0 = time.monotonic()
    while not ranks_json.exists() and proc.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.02)
    assert ranks_json.exists(), proc.communicate()
    return proc, json.loads(ranks_json.read_text())


def _left_after(table: dict, what: str) -> None:
    """No rank of ``table`` alive 5 s after its launcher ended (9 ranks on 2 loaded cores
    may take a few seconds to be reaped)."""
    t_end = time.monotonic() + 5.0
    left = [r for r, e in table.items() if _alive(e["pid"])]
    while left and time.monotonic() < t_end:
        time.sleep(0.1)
        left = [r for r, e in table.items() if _alive(e["pid"])]
    assert not left, f"{what}: ranks {left} left running 5 s after the launcher ended"


def _labels(scen: Path, n_proc: int) -> dict[int, str]:
    """Rank → what the plan runs there, as the job's lines name it."""
    plan = make_plan(load_scenario(scen), n_proc)
    return {0: "the bus", **{r: f"engine {g.name}" for g in plan.groups for r in g.ranks}}


def _spikes(data: dict, t_ms: float) -> dict[str, list]:
    """Each population's spikes before ``t_ms`` as sorted ``(node, time)`` pairs (the
    populations that have any)."""
    out = {}
    for k in data:
        if k.startswith("spikes/") and k.endswith("/timestamps"):
            pop = k[:-len("/timestamps")]
            t, ids = data[k], data[pop + "/node_ids"]
            if (t < t_ms).any():
                out[pop] = sorted(zip(ids[t < t_ms].tolist(), t[t < t_ms].tolist()))
    return out


def _draws(rng: random.Random, labels: dict[int, str], n_runs: int):
    """``(launcher, target rank, signal, at_ms, delay)`` of each run: the fault comes at
    simulated time ``at_ms`` or, with ``at_ms = None`` (a third of the runs), ``delay``
    seconds after start-up (build, compilation).  At P = 3 every draw is random (the 50-run
    sequence of old); at larger P the first three runs are a SIGKILL, a SIGSTOP and a
    SIGTERM or SIGINT, in random order, mid-run after the first checkpoint, each on a
    random rank of another kind (the bus, a part of the split neural mass, a part of the
    spiking region); the rest random."""
    n_proc = len(labels)
    first, kinds = [], []
    if n_proc > 3:
        first = rng.sample([signal.SIGKILL, signal.SIGSTOP,
                            rng.choice([signal.SIGTERM, signal.SIGINT])], 3)
        kinds = rng.sample([[r for r in sorted(labels) if labels[r] == what]
                            for what in sorted(set(labels.values()))], 3)
    for i in range(n_runs):
        launcher, target = rng.choice(["np", "mpiexec"]), rng.randrange(n_proc)
        if i < len(first):
            target = rng.choice(kinds[i])
        sig = first[i] if i < len(first) else rng.choice(SIGNALS)
        at_ms = None if rng.random() < 1 / 3 and i >= len(first) else rng.uniform(5.0, 550.0)
        if i < len(first):         # after the first checkpoint (100 ms): a resume follows
            at_ms = 120.0 + (at_ms - 5.0) * (430.0 / 545.0)
        yield launcher, target, sig, at_ms, rng.uniform(0.0, 1.0)


@pytest.mark.parametrize("n_proc", sorted(N_RUNS))
def test_random_faults(tmp_path, cpu_load, straight, n_proc):
    scen = _scenario(tmp_path)
    ref = straight
    labels = _labels(scen, n_proc)
    assert len(labels) == n_proc
    n_runs = N_RUNS[n_proc]
    rng = random.Random(20261201 if n_proc == 3 else 20261201 + n_proc)
    report = []
    for i, (launcher, target, sig, at_ms, delay) in enumerate(_draws(rng, labels, n_runs)):
        out = tmp_path / f"run{i}.h5"
        args = ["run", str(scen), "-o", str(out), "-q"]
        cmd = ([sys.executable, "-m", "cosim", *args, "--np", str(n_proc)] if launcher == "np"
               else [str(MPIEXEC), "-n", str(n_proc), sys.executable, "-m", "cosim", *args])
        proc, table = _launch(cmd, out)
        if at_ms is None:
            time.sleep(delay)
            when = f"{delay:.2f} s after start-up"
        else:
            _wait_simulated(out, at_ms, proc)
            when = f"at t ≥ {at_ms:.0f} ms"
        what = f"P = {n_proc}, run {i}: {launcher}, {sig.name} to rank {target} {when}"
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
            assert len(ours) == 1 and ours[0].startswith(
                f"cosim: {labels[target]} (rank {target}) stopped responding"), f"{what}\n{err}"
        _left_after(table, what)             # the launcher has ended: its ranks go with it
        assert not _alive(proc.pid)
        ck = Path(str(out) + ".checkpoint") / "coordinator.npz"
        if not out.exists():                  # ended before the output was created
            assert not ck.exists(), what
            report.append(f"{what} — ended in {took:.1f} s before the output existed")
            continue
        with h5py.File(out) as f:             # opens, and holds what it says it has
            done = int(f.attrs["windows_completed"])
            for name in SERIES:                # 1 ms windows, 1 ms record period
                assert f[name].shape[0] == done, (what, name)
                np.testing.assert_array_equal(f[name][()], ref[name][:done],
                                              err_msg=f"{what}: {name}")
            kept = {k: f[k][()] for k in ref if k.startswith("spikes/") and k in f}
        assert _spikes(kept, float(done)) == _spikes(ref, float(done)), what
        resumed = ""
        # (CI time: at P > 3 the resumes after a kill or a signal only)
        if ck.exists() and (n_proc == 3 or sig != signal.SIGSTOP):
            r = subprocess.run([str(MPIEXEC), "-n", str(n_proc), sys.executable, "-m", "cosim",
                                *args, "--resume", "--no-monitor"], capture_output=True,
                               text=True, timeout=600)
            assert r.returncode == 0, f"{what}: resume failed\n{r.stderr}"
            assert_same_data(h5_data(out), ref, what)
            resumed = ", resumed bitwise"
        report.append(f"{what} — ended in {took:.1f} s, {done} windows kept{resumed}")
    print("\n".join(report))
    assert sum("finished first" not in r for r in report) >= n_runs * 0.8


@pytest.mark.parametrize("member", [0, 1])
def test_a_stopped_member_of_a_split_spiking_region_is_the_one_named(tmp_path, member):
    """SIGSTOP to one of rV1's two parts at P = 9: its partner waits for it inside the
    region's spike exchange (a collective of the region's own communicator), and must still
    answer the coordinator's ping there, or the coordinator would find two silent parts and
    name the first of them."""
    scen = _scenario(tmp_path)
    labels = _labels(scen, 9)
    target = [r for r in sorted(labels) if labels[r] == "engine v1"][member]
    out = tmp_path / "stop.h5"
    proc, table = _launch([str(MPIEXEC), "-n", "9", sys.executable, "-m", "cosim", "run",
                           str(scen), "-o", str(out), "-q"], out)
    _wait_simulated(out, 150.0, proc)
    assert proc.poll() is None
    os.kill(table[str(target)]["pid"], signal.SIGSTOP)
    try:
        _, err = proc.communicate(timeout=TIMEOUT_S + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"SIGSTOP to rank {target}: still running after {TIMEOUT_S + 60:g} s")
    ours = [ln for ln in err.splitlines() if ln.startswith("cosim:")]
    assert len(ours) == 1 and ours[0].startswith(
        f"cosim: engine v1 (rank {target}) stopped responding"), err
    _left_after(table, f"SIGSTOP to rank {target}")
