"""What work moved off the window loop onto a second thread saves, in one process.

The question behind it (issue 20): would the coordinator's per-window work (the record
pipeline, the flushes' bookkeeping) cost the loop less on a thread of its own, overlapping
the engines' ``nogil`` kernels on the machine's other core?  This measures it directly on
the hybrid default at a 1 ms sync interval: at the start of every window of the spiking
engine (the longest kernel), ``--work-us`` µs of work is done either

* ``inline``: on the loop's thread, before the engine advances, or
* ``thread``: handed to a helper thread (the loop waits only if the previous window's work
  is not finished yet),

in two kinds: ``nogil`` (a compiled loop that releases the GIL: what an HDF5 write or a
kernel is) and ``python`` (dict and list operations holding the GIL: what the coordinator's
pipeline is).  Each work's own cost is measured alone (warm, median of 200 calls).  Reported:
the loop's wall per window in each mode, interleaved over ``--rounds`` rounds after a warm-up
run (medians), and what one µs of work adds to the loop — 1.0 inline by definition, 0.0 for
work that overlaps perfectly.

    python bench/second_thread.py [--work-us 400] [--duration-ms 1000] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from numba import njit

REPO = Path(__file__).resolve().parents[1]


@njit(nogil=True, cache=True)
def _spin(n):
    x = 0.0
    for i in range(n):
        x += (i % 7) * 0.5
    return x


def _python(n):
    d = {}
    for i in range(n):
        d[i % 97] = i
    return len(d)


def _calibrate(f, target_s: float) -> tuple[int, float]:
    """``(n, seconds)``: the size of ``f``'s work that takes about ``target_s`` alone, and its
    median time (warm, 200 calls)."""
    n = 64
    while True:
        tic = time.perf_counter()
        f(n)
        if time.perf_counter() - tic > target_s / 4:
            break
        n *= 2
    for _ in range(3):
        t = np.median([_timed(f, n) for _ in range(50)])
        n = max(1, int(n * target_s / t))
    return n, float(np.median([_timed(f, n) for _ in range(200)]))


def _timed(f, n) -> float:
    tic = time.perf_counter()
    f(n)
    return time.perf_counter() - tic


class _Helper:
    """A thread that runs one piece of work per :meth:`start`."""

    def __init__(self):
        self.go, self.idle = threading.Event(), threading.Event()
        self.idle.set()
        self.job = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            self.go.wait()
            self.go.clear()
            f, n = self.job
            f(n)
            self.idle.set()

    def start(self, f, n):
        self.idle.wait()
        self.idle.clear()
        self.job = (f, n)
        self.go.set()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(REPO / "scenarios" / "default.toml"))
    p.add_argument("--work-us", type=float, default=400.0, help="work per window (µs, default 400)")
    p.add_argument("--duration-ms", type=float, default=1000.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="write the results as JSON to this path")
    args = p.parse_args(argv)

    import cosim.parts as parts
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    work = {"nogil": _calibrate(_spin, args.work_us * 1e-6),
            "python": _calibrate(_python, args.work_us * 1e-6)}
    helper = _Helper()
    mode = {"how": None, "kind": None}
    step = parts.Part.step

    def hooked(self, k, t0, t1, inputs):
        if mode["how"] is not None and self.key[0] == target:
            f = _spin if mode["kind"] == "nogil" else _python
            n = work[mode["kind"]][0]
            if mode["how"] == "inline":
                f(n)
            else:
                helper.start(f, n)
        return step(self, k, t0, t1, inputs)

    text = Path(args.scenario).read_text()
    text = re.sub(r"(?m)^duration\s*=.*$", f"duration = {args.duration_ms}", text, count=1)
    text = re.sub(r"(?m)^sync_interval\s*=.*$", "sync_interval = 1.0", text, count=1)
    modes = [(None, None)] + [(how, kind) for kind in work for how in ("inline", "thread")]
    walls = {m: [] for m in modes}
    parts.Part.step = hooked
    try:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "s.toml"
            path.write_text(text)

            def run():
                s = run_scenario(load_scenario(path, output=Path(d) / "o.h5"), overwrite=True,
                                 progress_stream=None)
                helper.idle.wait()
                return s

            s = run()                                   # warm-up (numba, data)
            target = max(s.compute_s, key=s.compute_s.get)
            windows = s.simulated_ms / 1.0
            for _ in range(args.rounds):
                for m in modes:
                    mode["how"], mode["kind"] = m
                    walls[m].append(1e6 * run().wall_s / windows)
    finally:
        parts.Part.step = step
    base = float(np.median(walls[(None, None)]))
    result = {"engine": target, "loop_us_per_window": {"none": base}, "work_us": {},
              "loop_us_per_work_us": {}}
    print(f"hybrid default, 1 ms windows, work at the start of each {target!r} window; loop "
          f"without: {base:.0f} µs per window")
    for how, kind in modes[1:]:
        w = 1e6 * work[kind][1]
        loop = float(np.median(walls[(how, kind)]))
        result["work_us"][kind] = w
        result["loop_us_per_window"][f"{how} {kind}"] = loop
        result["loop_us_per_work_us"][f"{how} {kind}"] = (loop - base) / w
        print(f"  {kind:6s} work of {w:5.0f} µs, {how:6s}: loop {loop:6.0f} µs per window, "
              f"{(loop - base) / w:5.2f} µs of loop per µs of work")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
