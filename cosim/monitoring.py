"""Live monitoring of a run over ZeroMQ: a :class:`Publisher` in the run, ``cosim watch``.

The run publishes one JSON message per sync window (at most every ``min_interval_s`` of
wall time) on a ZeroMQ PUB socket; any number of watchers subscribe, from this machine or
(with a routable address) another.  Publishing never waits for a watcher: PUB drops
messages for a subscriber whose queue (``SNDHWM`` messages) is full, the send is
non-blocking, and without any subscriber a send costs a few microseconds.

The bound address is written to ``<output>.monitor`` (one line) next to the output file so
``cosim watch results/run.h5`` finds it; the file is removed when the run ends.

Messages (UTF-8 JSON, one ZeroMQ frame each after the topic frame ``b"cosim"``)::

    {"type": "window", "window": k, "t_ms": …, "duration_ms": …, "wall_s": …,
     "rtf": …, "engines": {name: {"compute_s": …}, …}, "rates_hz": {…}, …}
    {"type": "end", "status": "completed" | "failed", "window": k, "t_ms": …,
     "wall_s": …, "message": "…"}

``rtf`` is the real-time factor, simulated seconds per wall second (1 = real time).
Keys of the ``payload`` given to :meth:`Publisher.publish` are merged into the message.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from .errors import CosimError

TOPIC = b"cosim"
DEFAULT_BIND = "tcp://127.0.0.1:*"
MONITOR_SUFFIX = ".monitor"


def monitor_file(output: str | os.PathLike) -> Path:
    """``<output>.monitor``: where a run writes its monitoring address."""
    return Path(str(output) + MONITOR_SUFFIX)


def _json_default(obj: Any):
    if hasattr(obj, "tolist"):      # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class Publisher:
    """Publishes run progress on a ZeroMQ PUB socket without ever blocking the run.

    Parameters
    ----------
    address : str, optional
        Endpoint to bind, default ``tcp://127.0.0.1:*`` (a free port on this machine).
        Use ``tcp://*:5555`` to let other machines watch.
    output : path, optional
        The run's output file; the bound address is written to ``<output>.monitor``.
    duration_ms : float, optional
        Total simulated time, sent with every message (for progress).
    min_interval_s : float
        Send at most one window message per this much wall time (default 0.1 s; 0: every
        window).  A skipped call costs one clock read and its ``payload`` callable is not
        evaluated; a sent message costs ~10-50 µs (JSON encoding, 76 region rates included).
    hwm : int
        Messages queued per subscriber before further ones are dropped (``SNDHWM``).
    """

    def __init__(self, address: str | None = None, *, output: str | os.PathLike | None = None,
                 duration_ms: float | None = None, min_interval_s: float = 0.1, hwm: int = 100):
        import zmq

        self._zmq = zmq
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, int(hwm))
        self._sock.setsockopt(zmq.LINGER, 500)   # ms to deliver the end message at close
        try:
            self._sock.bind(address or DEFAULT_BIND)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            self._ctx.term()
            raise CosimError(f"cannot bind the monitoring socket ({exc})",
                             key=address or DEFAULT_BIND) from None
        self.address: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.duration_ms = duration_ms
        self.min_interval_s = float(min_interval_s)
        self.sent = 0
        self.dropped = 0
        self._t0 = time.perf_counter()
        self._last_send = -math.inf
        self._last = (0, 0.0)
        self._closed = False
        self.monitor_path: Path | None = None
        if output is not None:
            self.monitor_path = monitor_file(output)
            try:
                self.monitor_path.parent.mkdir(parents=True, exist_ok=True)
                self.monitor_path.write_text(self.address + "\n", encoding="utf-8")
            except OSError as exc:
                self._sock.close(linger=0)
                raise CosimError(f"cannot write the monitor address file ({exc.strerror or exc})",
                                 file=str(self.monitor_path)) from None

    # -- sending -------------------------------------------------------------------------
    def _send(self, message: dict) -> bool:
        data = json.dumps(message, default=_json_default, allow_nan=False).encode()
        try:
            self._sock.send_multipart((TOPIC, data), flags=self._zmq.NOBLOCK)
        except self._zmq.Again:      # only if a queue is full and PUB was told not to drop
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def publish(self, window_index: int, t_ms: float,
                payload: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None) -> bool:
        """Publish the state after window ``window_index`` (simulated time ``t_ms``).

        ``payload`` (a dict, or a callable returning one, called only when a message is
        actually sent) adds keys: ``engines`` (per-engine timing), ``rates_hz`` (region
        rates), … — anything JSON can hold, numpy arrays included.  Returns True if a
        message was handed to ZeroMQ, False if skipped (``min_interval_s``) or dropped.
        """
        now = time.perf_counter()
        self._last = (window_index, t_ms)
        if self._closed or now - self._last_send < self.min_interval_s:
            return False
        self._last_send = now
        wall = now - self._t0
        msg = {"type": "window", "window": int(window_index), "t_ms": float(t_ms),
               "duration_ms": self.duration_ms, "wall_s": wall,
               "rtf": _finite(t_ms / 1000.0 / wall) if wall > 0 else None,
               "time_unix": time.time()}
        if payload is not None:
            extra = payload() if callable(payload) else payload
            msg.update(extra)
        try:
            return self._send(msg)
        except (TypeError, ValueError):   # a payload JSON cannot hold: drop, never fail the run
            self.dropped += 1
            return False

    def close(self, status: str = "completed", message: str = "") -> None:
        """Send the end message, close the socket and remove ``<output>.monitor``."""
        if self._closed:
            return
        self._closed = True
        window, t_ms = self._last
        try:
            self._send({"type": "end", "status": status, "window": int(window),
                        "t_ms": float(t_ms), "duration_ms": self.duration_ms,
                        "wall_s": time.perf_counter() - self._t0, "message": message,
                        "time_unix": time.time()})
        finally:
            self._sock.close()           # LINGER bounds how long delivery may take
            self._ctx.term()
            if self.monitor_path is not None:
                self.monitor_path.unlink(missing_ok=True)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close("completed")
        else:
            self.close("failed", f"{exc_type.__name__}: {exc}")


def timing_payload(timing, groups: Mapping[str, Any]) -> dict:
    """Per-window timing for :meth:`Publisher.publish`: the runtime's ``timing`` array
    ``(rank, phase)`` seconds (phases compute, communicate, wait) and the plan's
    ``groups`` (``plan.groups``, or a mapping engine name → ranks).

    ``engines[name]`` holds the slowest of its ranks' compute seconds (what the window
    waited for); ``ranks`` the three phases of every rank.
    """
    rows = [[float(x) for x in row] for row in timing]
    if not isinstance(groups, Mapping):
        groups = {g.name: g.ranks for g in groups}
    engines = {name: {"compute_s": max(rows[r][0] for r in ranks)}
               for name, ranks in groups.items()}
    return {"engines": engines,
            "ranks": {"compute_s": [r[0] for r in rows], "communicate_s": [r[1] for r in rows],
                      "wait_s": [r[2] for r in rows]}}


# -- watching ----------------------------------------------------------------------------------

def resolve_address(target: str, wait_s: float = 0.0) -> str:
    """A ZeroMQ address from ``target``: an address (``tcp://…``), a ``.monitor`` file,
    or a run's output file (whose ``<output>.monitor`` is read, waiting up to ``wait_s``)."""
    if "://" in target:
        return target
    p = Path(target)
    path = p if p.name.endswith(MONITOR_SUFFIX) else monitor_file(p)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = None
        if text:
            address = text.splitlines()[0].strip()
            if "://" not in address:
                raise CosimError(f"does not hold a ZeroMQ address (got {address!r})",
                                 file=str(path))
            return address
        if time.monotonic() >= deadline:
            raise CosimError("no monitoring file: the run has not started, has ended, or "
                             "writes another output (give its output file or its address)",
                             file=str(path))
        time.sleep(0.1)


def format_message(msg: Mapping[str, Any]) -> str:
    """One line for a message: progress, speed, per-engine timing, rates summary."""
    t = msg.get("t_ms", 0.0)
    total = msg.get("duration_ms")
    head = f"t = {t:.1f}" + (f" / {total:.1f} ms ({100.0 * t / total:5.1f} %)" if total else " ms")
    if msg.get("type") == "end":
        text = f"[end] {msg.get('status', '?')}: {head}  wall {msg.get('wall_s', 0.0):.1f} s"
        return text + (f"  {msg['message']}" if msg.get("message") else "")
    parts = [f"[{msg.get('window', '?')}] {head}", f"wall {msg.get('wall_s', 0.0):.1f} s"]
    if msg.get("rtf") is not None:
        parts.append(f"real-time factor {msg['rtf']:.3g}")
    for name, info in (msg.get("engines") or {}).items():
        if isinstance(info, Mapping) and "compute_s" in info:
            parts.append(f"{name} {1000.0 * float(info['compute_s']):.2f} ms")
    waits = (msg.get("ranks") or {}).get("wait_s")
    if isinstance(waits, list) and waits:
        parts.append(f"max wait {1000.0 * max(float(w) for w in waits):.2f} ms")
    rates = msg.get("rates_hz")
    if isinstance(rates, Mapping):
        for name, values in rates.items():
            parts.append(_rates_text(name, values))
    return "  ".join(p for p in parts if p)


def _rates_text(name: str, values) -> str:
    """``v1 rV1 12.30 Hz`` for up to 3 named regions; ``cortex rate mean 4.1 Hz (max 9.2
    at lV1)`` for more; values may be a number, a list, or ``{region: rate}``."""
    if isinstance(values, Mapping):
        named = [(str(k), float(v)) for k, v in values.items() if isinstance(v, (int, float))]
    else:
        vals = values if isinstance(values, list) else [values]
        named = [(None, float(v)) for v in vals if isinstance(v, (int, float))]
    if not named:
        return ""
    if all(k is not None for k, _ in named) and len(named) <= 3:
        return f"{name} " + ", ".join(f"{k} {v:.2f} Hz" for k, v in named)
    nums = [v for _, v in named]
    k_max, v_max = max(named, key=lambda kv: kv[1])
    where = f" at {k_max}" if k_max is not None else ""
    return f"{name} rate mean {sum(nums) / len(nums):.2f} Hz (max {v_max:.2f}{where})"


def watch(address: str, *, once: bool = False, timeout_s: float | None = None,
          as_json: bool = False, stream: TextIO | None = None) -> int:
    """Print one line per message from ``address`` until the run's end message.

    ``once``: stop after the first message.  ``timeout_s``: give up (CosimError) when no
    message arrived for that long.  Returns 0, or 1 if the run reported a failure.
    """
    import zmq

    stream = sys.stdout if stream is None else stream
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1000)
    sock.setsockopt(zmq.SUBSCRIBE, TOPIC)
    try:
        try:
            sock.connect(address)
        except zmq.ZMQError as exc:
            raise CosimError(f"cannot connect ({exc})", key=address) from None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        last = time.monotonic()
        while True:
            # Short polls keep Ctrl-C responsive and let the timeout be checked.
            if not poller.poll(200):
                if timeout_s is not None and time.monotonic() - last > timeout_s:
                    raise CosimError(f"no message for {timeout_s:g} s", key=address)
                continue
            last = time.monotonic()
            frames = sock.recv_multipart()
            try:
                msg = json.loads(frames[-1].decode())
            except (ValueError, UnicodeDecodeError):
                continue
            print(json.dumps(msg) if as_json else format_message(msg), file=stream, flush=True)
            if msg.get("type") == "end":
                return 0 if msg.get("status") == "completed" else 1
            if once:
                return 0
    finally:
        sock.close(0)
        ctx.term()
