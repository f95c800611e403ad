"""The main loop: advance every engine over sync windows, record, report progress.

This module runs a scenario in **one process** (the in-process case of DESIGN.md); the
MPI runtime distributes the same loop over ranks.  Window ``k`` covers
``[k·Δ, (k+1)·Δ)`` ms; times are computed as ``k·Δ`` (never accumulated) so no rounding
drift builds up over long runs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from .recording import Recorder, default_output_path


@dataclass
class RunSummary:
    """What a finished run reports (all times in seconds of wall-clock time)."""

    output: Path
    simulated_ms: float
    wall_s: float
    build_s: float
    compute_s: dict[str, float] = field(default_factory=dict)

    @property
    def wall_per_simulated_s(self) -> float:
        return self.wall_s / (self.simulated_ms / 1000.0) if self.simulated_ms else float("nan")


class Progress:
    """Prints simulated time, wall time and speed to ``stream`` at most every ``every_s``."""

    def __init__(self, total_ms: float, stream: TextIO | None = sys.stderr, every_s: float = 2.0):
        self.total_ms = total_ms
        self.stream = stream
        self.every_s = every_s
        self.t_start = time.perf_counter()
        self._last = self.t_start

    def update(self, t_ms: float, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        wall = now - self.t_start
        speed = wall / (t_ms / 1000.0) if t_ms > 0 else float("nan")
        eta = speed * (self.total_ms - t_ms) / 1000.0 if t_ms > 0 else float("nan")
        print(f"[cosim] t = {t_ms:.1f} / {self.total_ms:.1f} ms ({100.0 * t_ms / self.total_ms:5.1f} %)"
              f"  wall {wall:.1f} s  {speed:.3f} s wall per simulated s"
              f"  (real-time factor {1.0 / speed if speed > 0 else float('inf'):.2f})"
              f"  ETA {eta:.1f} s", file=self.stream, flush=True)


def run_scenario(scenario, *, output: Path | None = None, overwrite: bool = False,
                 progress_stream: TextIO | None = sys.stderr,
                 on_window: Callable[[int, float], None] | None = None) -> RunSummary:
    """Run ``scenario`` in this process and write its HDF5 output.

    Engines are built first (kernels compiled; time reported as ``build_s``), then the
    loop advances every engine window by window.  On an exception the output file is
    closed with ``status = "failed"`` and the exception propagates.
    """
    sim = scenario.simulation
    out_path = Path(output) if output is not None else (sim.output or default_output_path(scenario))
    monitors = getattr(scenario, "monitors", None) or {}
    specs = {name: (monitors[name].record_specs() if name in monitors else e.record_specs())
             for name, e in scenario.engines.items()}
    recorder = Recorder(out_path, scenario, specs, n_ranks=1,
                        flush_every=scenario.record.flush_every, overwrite=overwrite)
    try:
        t_build = time.perf_counter()
        for engine in scenario.engines.values():
            engine.build()
        build_s = time.perf_counter() - t_build

        progress = Progress(sim.duration_ms, progress_stream)
        compute = {name: 0.0 for name in scenario.engines}
        timing = np.zeros((1, 3))
        t_loop = time.perf_counter()
        dt_sync = sim.sync_interval_ms
        for k in range(sim.n_windows):
            t0, t1 = k * dt_sync, (k + 1) * dt_sync
            outputs = {}
            timing[:] = 0.0
            for name, engine in scenario.engines.items():
                tic = time.perf_counter()
                out = engine.advance(t0, t1, {})
                if name in monitors:
                    out.records = monitors[name].apply(out.records, t1)
                outputs[name] = out
                spent = time.perf_counter() - tic
                compute[name] += spent
                timing[0, 0] += spent
            recorder.write_window(outputs, timing, t_end_ms=t1)
            progress.update(t1)
            if on_window is not None:
                on_window(k, t1)
        wall = time.perf_counter() - t_loop
        progress.update(sim.duration_ms, force=True)
    except BaseException as exc:
        recorder.close("failed", f"{type(exc).__name__}: {exc}")
        raise
    recorder.close("completed")
    return RunSummary(out_path, sim.duration_ms, wall, build_s, compute)
