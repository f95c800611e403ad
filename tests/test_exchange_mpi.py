"""The distributed bus under ``mpiexec`` (oversubscribed): the hybrid scenario with its
neural masses split into 3 and 6 parts and its spiking region into 1 and 2 gives the
one-process bits at P = 5 and 9, and at P = 3 with the spiking region's part running ahead
(rV1's 0-ms self-connection left out) or reading its own self-connection one window later.
A SIGTERM — at P = 5 to a neural-mass part, at P = 3 to the running-ahead spiking part — ends
every rank at one window boundary (status ``terminated``, every completed window kept and
equal to the straight run's), and ``--resume`` from the final checkpoint gives the straight
run's bits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import scenarios as S
from _util import assert_same_data, h5_data, signal_and_wait
from cosim.coupling_layout import coupling_layout
from cosim.exchange import exchange_pattern
from cosim.plan import make_plan
from cosim.scenario import load_scenario
from test_signals import _ends_within, _start, _wait_simulating

pytestmark = pytest.mark.mpi

MPIEXEC = Path(sys.executable).parent / "mpiexec"
DURATION = 160.0


def _scenario(d: Path) -> Path:
    return S.write(d / "h.toml", S.hybrid(duration=DURATION, checkpoint_every=20.0))


def _run(scen: Path, out: Path, n: int = 0, *extra: str) -> None:
    cmd = ([str(MPIEXEC), "-n", str(n)] if n else []) + [
        sys.executable, "-m", "cosim", "run", str(scen), "-o", str(out), "-q", "--no-monitor",
        *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    scen = _scenario(d)
    _run(scen, d / "s.h5")
    return h5_data(d / "s.h5")


def test_split_parts_give_the_one_process_bits_at_p9(tmp_path, straight):
    scen = _scenario(tmp_path)
    plan = make_plan(load_scenario(scen), 9)
    assert {g.name: g.n_parts for g in plan.groups} == {"cortex": 6, "v1": 2}
    _run(scen, tmp_path / "o.h5", 9)
    assert_same_data(h5_data(tmp_path / "o.h5"), straight, "np 9")


def test_run_ahead_at_p3_gives_the_one_process_bits(tmp_path):
    """rV1's part runs ahead (every input delayed ≥ 2 windows) on its own rank."""
    from test_exchange import run_ahead_scenario

    scen = run_ahead_scenario(tmp_path, duration=60.0, checkpoint_every=20.0)
    routes = exchange_pattern(load_scenario(scen), coupling_layout(load_scenario(scen)),
                              make_plan(load_scenario(scen), 3)).routes
    assert routes[("v1", 0)].defer and not routes[("cortex", 0)].defer
    _run(scen, tmp_path / "one.h5")
    _run(scen, tmp_path / "np3.h5", 3)
    assert_same_data(h5_data(tmp_path / "np3.h5"), h5_data(tmp_path / "one.h5"), "np 3")


def test_a_self_connection_of_one_window_at_p3_gives_the_one_process_bits(tmp_path):
    """rV1's self-connection kept, delayed by exactly one window: its part, alone on its
    rank, sends its afferent to itself and reads it one window later."""
    from test_exchange import self_delay_scenario

    scen = self_delay_scenario(tmp_path, 3.0, duration=20.0)
    sc = load_scenario(scen)
    R = list(sc.connectome.region_labels).index("rV1")
    route = exchange_pattern(sc, coupling_layout(sc), make_plan(sc, 3)).routes[("v1", 0)]
    assert R in route.reads and ("v1", 0) in route.sends_to and not route.defer
    _run(scen, tmp_path / "one.h5")
    _run(scen, tmp_path / "np3.h5", 3)
    assert_same_data(h5_data(tmp_path / "np3.h5"), h5_data(tmp_path / "one.h5"), "np 3")


def test_sigterm_at_p5_stops_at_one_boundary_and_resumes(tmp_path, straight):
    scen, out = _scenario(tmp_path), tmp_path / "o.h5"
    assert {g.name: g.n_parts for g in make_plan(load_scenario(scen), 5).groups} == \
        {"cortex": 3, "v1": 1}
    proc = _start(["run", str(scen), "-o", str(out), "-q"], mpi=5)
    t = _wait_simulating(out, 40.0, proc)
    ranks = json.loads(Path(str(out) + ".ranks.json").read_text())
    os.kill(ranks["2"]["pid"], signal.SIGTERM)          # one part of the split neural mass
    rc, err, took = _ends_within(proc, 120)
    assert rc == 143, err
    assert "terminated (SIGTERM) at t = " in err
    with h5py.File(out) as f:
        assert f.attrs["status"] == "terminated"
        w = int(f.attrs["windows_completed"])
        assert t <= w < DURATION                          # 1 ms windows
        ts = f["engines/cortex/timeseries"][()]
    period = 0.5                                          # record period of the builder
    assert ts.shape[0] == round(w / period)
    np.testing.assert_array_equal(ts, straight["engines/cortex/timeseries"][:ts.shape[0]])
    for r in ranks.values():                              # no process left behind
        with pytest.raises(ProcessLookupError):
            os.kill(r["pid"], 0)
    _run(scen, out, 5, "--resume")
    assert_same_data(h5_data(out), straight, "resumed at np 5")


def test_sigterm_to_the_run_ahead_part_at_p3_keeps_every_window_and_resumes(tmp_path, straight):
    """SIGTERM to rV1's rank while its part runs ahead (receives one window late): exit 143
    at one window boundary, every completed window kept and equal to the straight run's, a
    final checkpoint the part caught up for; ``--resume`` gives the straight run's bits."""
    scen, out = _scenario(tmp_path), tmp_path / "o.h5"
    sc = load_scenario(scen)
    routes = exchange_pattern(sc, coupling_layout(sc), make_plan(sc, 3)).routes
    assert routes[("v1", 0)].defer
    proc = _start(["run", str(scen), "-o", str(out), "-q"], mpi=3)
    t = _wait_simulating(out, 40.0, proc)
    ranks = json.loads(Path(str(out) + ".ranks.json").read_text())
    (pid,) = [r["pid"] for r in ranks.values() if r["role"] == "engine v1"]
    _, err, _ = signal_and_wait(proc, pid, signal.SIGTERM, timeout=120)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM) at t = " in err and "Traceback" not in err, err
    with h5py.File(out) as f:
        assert f.attrs["status"] == "terminated"
        w = int(f.attrs["windows_completed"])
        assert t <= w < DURATION                          # 1 ms windows
        got = {k: f[k][()] for k in ("engines/cortex/timeseries", "engines/v1/v")}
    period = 0.5                                          # record period of the builder
    for name, a in got.items():
        assert a.shape[0] == round(w / period), name
        np.testing.assert_array_equal(a, straight[name][:a.shape[0]], err_msg=name)
    for r in ranks.values():                              # no process left behind
        with pytest.raises(ProcessLookupError):
            os.kill(r["pid"], 0)
    _run(scen, out, 3, "--resume")
    assert_same_data(h5_data(out), straight, "resumed at np 3")
