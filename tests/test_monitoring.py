"""Live monitoring: the Publisher never slows or blocks a run; `cosim watch` follows it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from cosim.errors import CosimError
from cosim.monitoring import (Publisher, format_message, monitor_file, resolve_address,
                              timing_payload, watch)
from scenarios import neural_mass, scenario, simulation


def _payload(n_regions=76):
    return {"engines": {"cortex": {"compute_s": 1.2e-4}, "spiking": {"compute_s": 3.4e-3}},
            "rates_hz": {"cortex": np.linspace(1.0, 20.0, n_regions)}}


def _publish_until(pub, stop: threading.Event, period_s=0.01):
    k = 0
    while not stop.is_set():
        pub.publish(k, (k + 1) * 1.0, _payload())
        k += 1
        time.sleep(period_s)


def test_monitor_file_holds_the_address_and_is_removed_at_the_end(tmp_path):
    out = tmp_path / "results" / "run.h5"
    pub = Publisher(output=out, duration_ms=100.0)
    assert pub.address.startswith("tcp://127.0.0.1:") and not pub.address.endswith(":*")
    assert monitor_file(out).read_text().strip() == pub.address
    assert resolve_address(str(out)) == pub.address
    assert resolve_address(str(monitor_file(out))) == pub.address
    pub.close()
    assert not monitor_file(out).exists()
    with pytest.raises(CosimError, match="no monitoring file"):
        resolve_address(str(out))


def test_watch_prints_messages_until_the_end_message(tmp_path):
    out = tmp_path / "run.h5"
    pub = Publisher(output=out, duration_ms=50.0)
    proc = subprocess.Popen([sys.executable, "-m", "cosim.hpc_cli", "watch", str(out),
                             "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stop = threading.Event()
    t = threading.Thread(target=_publish_until, args=(pub, stop))
    t.start()
    try:
        first = proc.stdout.readline()          # the watcher is connected and receiving
    finally:
        stop.set()
        t.join()
    pub.close("completed")
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [first] + rest.splitlines()
    assert "/ 50.0 ms" in first and "real-time factor" in first
    assert "cortex 0.12 ms" in first and "cortex rate mean 10.50 Hz (max 20.00)" in first
    assert lines[-1].startswith("[end] completed")


def test_watch_once_by_address_and_failed_end(capsys):
    pub = Publisher(duration_ms=10.0)
    stop = threading.Event()
    t = threading.Thread(target=_publish_until, args=(pub, stop))
    t.start()
    try:
        r = subprocess.run([sys.executable, "-m", "cosim.hpc_cli", "watch", pub.address,
                            "--once", "--json", "--timeout", "20"],
                           capture_output=True, text=True, timeout=60)
    finally:
        stop.set()
        t.join()
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout)
    assert msg["type"] == "window" and msg["duration_ms"] == 10.0
    assert len(msg["rates_hz"]["cortex"]) == 76
    # a run that fails: the watcher prints the end message and exits 1
    results = {}
    w = threading.Thread(target=lambda: results.setdefault("rc", watch(pub.address, timeout_s=20)))
    w.start()
    time.sleep(0.5)                              # let the SUB connect before the end
    pub.close("failed", "RuntimeError: boom")
    w.join(30)
    assert results["rc"] == 1
    assert "[end] failed" in capsys.readouterr().out


def test_watch_times_out_with_one_line_and_exit_2():
    pub = Publisher()
    try:
        r = subprocess.run([sys.executable, "-m", "cosim.hpc_cli", "watch", pub.address,
                            "--timeout", "0.5"], capture_output=True, text=True, timeout=60)
    finally:
        pub.close()
    assert r.returncode == 2
    assert r.stderr.strip().endswith("no message for 0.5 s") and r.stderr.count("\n") == 1


def test_publishing_without_a_watcher_never_blocks_and_throttles():
    """No watcher: every publish is handed to ZeroMQ without blocking (none dropped, none
    waiting); throttled calls do not even build the payload.  (The cost per call is a
    benchmark matter — bench/cosim_overhead.py — not a timed unit test.)"""
    pub = Publisher(duration_ms=1e4, min_interval_s=0.0)
    payload = _payload()
    try:
        n = 2000
        tic = time.perf_counter()
        for k in range(n):
            pub.publish(k, k * 1.0, payload)
        elapsed = time.perf_counter() - tic
        pub.min_interval_s = 3600.0
        calls = []
        for k in range(n):
            pub.publish(k, k * 1.0, lambda: calls.append(1) or payload)
    finally:
        pub.close()
    assert pub.dropped == 0 and n + 1 <= pub.sent <= n + 2   # + the end message (+ one throttled)
    assert len(calls) <= 1                       # throttled: the payload was not built
    assert elapsed < 30.0                        # a hang guard, not a speed target


def test_a_slow_watcher_never_blocks_the_publisher():
    pub = Publisher(hwm=10, min_interval_s=0.0)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 10)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub.address)
    try:
        time.sleep(0.3)                           # connected, then never reads
        big = {"blob": "x" * 50_000}
        n = 2000                                  # 100 MB offered to a reader that reads nothing
        worst = 0.0
        tic = time.perf_counter()
        for k in range(n):
            t0 = time.perf_counter()
            pub.publish(k, float(k), big)
            worst = max(worst, time.perf_counter() - t0)
        total = time.perf_counter() - tic
        received = 0
        while sub.poll(100):
            sub.recv_multipart()
            received += 1
    finally:
        sub.close(0)
        ctx.term()
        pub.close()
    assert total < 5.0 and worst < 0.5, (total, worst)
    assert received < n / 2                       # messages were dropped, not queued


def test_unserialisable_payload_is_dropped_not_raised():
    pub = Publisher(min_interval_s=0.0)
    try:
        assert pub.publish(0, 1.0, {"x": object()}) is False
        assert pub.dropped == 1
        assert pub.publish(1, 2.0, {"x": 1}) is True
    finally:
        pub.close()


def test_format_message_without_optional_fields():
    assert format_message({"type": "window", "window": 3, "t_ms": 4.0}).startswith("[3] t = 4.0 ms")
    line = format_message({"type": "end", "status": "completed", "t_ms": 10.0,
                           "duration_ms": 10.0, "wall_s": 1.0})
    assert line == "[end] completed: t = 10.0 / 10.0 ms (100.0 %)  wall 1.0 s"


def test_the_runtime_window_hook_publishes_every_window(tmp_path, write_scenario):
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    path = write_scenario(scenario(simulation(duration=30.0), engines={"cortex": neural_mass()}))
    sc = load_scenario(path)
    out = tmp_path / "run.h5"
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"cosim")
    try:
        with Publisher(output=out, duration_ms=30.0, min_interval_s=0.0) as pub:
            sub.connect(resolve_address(str(out)))
            time.sleep(0.3)                       # PUB/SUB: let the subscription arrive
            run_scenario(sc, output=out, progress_stream=None, on_window=pub.publish)
        msgs = []
        while sub.poll(2000):
            msgs.append(json.loads(sub.recv_multipart()[1]))
            if msgs[-1]["type"] == "end":
                break
    finally:
        sub.close(0)
        ctx.term()
    assert [m["window"] for m in msgs[:-1]] == list(range(30))
    assert [m["t_ms"] for m in msgs[:-1]] == [float(k + 1) for k in range(30)]
    assert msgs[-1] == {**msgs[-1], "type": "end", "status": "completed", "window": 29, "t_ms": 30.0}
    assert not monitor_file(out).exists()


def test_timing_payload_from_the_runtime_timing_array():
    from cosim.plan import EngineGroup

    timing = np.array([[1e-4, 2e-5, 3e-3], [2e-3, 1e-5, 0.0], [1e-3, 1e-5, 1e-3]])
    groups = (EngineGroup("cortex", "neural_mass", (1, 2)),)
    p = timing_payload(timing, groups)
    assert p["engines"] == {"cortex": {"compute_s": 2e-3}}
    assert p["ranks"]["wait_s"] == [3e-3, 0.0, 1e-3]
    assert timing_payload(timing, {"cortex": [1, 2]}) == p
    line = format_message({"type": "window", "window": 0, "t_ms": 1.0, **p})
    assert line.endswith("cortex 2.00 ms  max wait 3.00 ms")
    json.dumps(p)


def test_a_hybrid_run_publishes_region_rates_and_engine_timing(tmp_path):
    """Live messages of a real run carry per-engine timing and the rates of the spiking
    region (from its spikes) and of the neural masses (their rate monitor)."""
    import json as _json

    from cosim.monitoring import Publisher
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario
    from test_runtime import HYBRID

    sc_path = tmp_path / "h.toml"
    sc_path.write_text(HYBRID + "\n[record.cortex.rate]\n")
    sc = load_scenario(sc_path)
    messages = []

    class Capture(Publisher):
        def _send(self, message):
            messages.append(_json.loads(_json.dumps(message)))
            return True

    with Capture(output=tmp_path / "o.h5", duration_ms=sc.simulation.duration_ms,
                 min_interval_s=0.0) as pub:
        run_scenario(sc, output=tmp_path / "o.h5", progress_stream=None, on_window=pub.publish)
    windows = [m for m in messages if m["type"] == "window"]
    assert len(windows) == 60 and messages[-1]["type"] == "end"
    last = windows[-1]
    assert set(last["engines"]) == {"cortex", "v1"}
    assert last["engines"]["v1"]["compute_s"] > 0
    assert set(last["rates_hz"]) == {"cortex", "v1"}
    assert list(last["rates_hz"]["v1"]) == ["rV1"] and last["rates_hz"]["v1"]["rV1"] >= 0.0
    assert len(last["rates_hz"]["cortex"]) == 75
