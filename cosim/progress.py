"""Progress lines during a run and the summary after it."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np


@dataclass
class RunSummary:
    """What a finished run reports (wall-clock seconds).

    ``status``: ``"completed"`` or ``"terminated"`` (a signal stopped the run at a window
    boundary; ``signal`` names it).  ``traffic``: messages and bytes each rank's nodes sent
    and received (gathered once, at the end of the run).
    """

    output: Path
    simulated_ms: float
    wall_s: float
    build_s: float
    compute_s: dict[str, float] = field(default_factory=dict)
    timing: np.ndarray | None = None            # (window, rank, phase) seconds
    n_ranks: int = 1
    status: str = "completed"
    signal: int = 0
    t_end_ms: float = 0.0
    #: per rank (one entry in one process), :meth:`cosim.transport.Transport.traffic`
    traffic: list[dict] | None = None

    @property
    def wall_per_simulated_s(self) -> float:
        return self.wall_s / (self.simulated_ms / 1000.0) if self.simulated_ms else float("nan")

    def timing_lines(self) -> list[str]:
        """Per-engine compute, per-rank totals of compute / communicate / wait and the
        communication share."""
        lines = [f"engine {n}: compute {s:.2f} s" for n, s in self.compute_s.items()]
        if self.timing is None or not len(self.timing):
            return lines
        tot = self.timing.sum(axis=0)          # (rank, phase)
        for r in range(tot.shape[0]):
            c, m, w = tot[r]
            lines.append(f"rank {r}: compute {c:.2f} s, communicate {m:.3f} s, wait {w:.2f} s")
        share = tot[:, 1].sum() / max(self.wall_s * tot.shape[0], 1e-12)
        lines.append(f"communication: {100 * share:.2f} % of wall time (all ranks)")
        per = self.traffic_per_window()
        if per is not None and len(per) > 1:
            busiest = int(np.argmax(per[:, 0]))
            lines.append(f"messages per window (sent + received): rank 0 {per[0, 0]:g} "
                         f"({per[0, 1]:.0f} B), busiest rank {busiest} {per[busiest, 0]:g} "
                         f"({per[busiest, 1]:.0f} B)")
        return lines

    def traffic_per_window(self) -> np.ndarray | None:
        """``(rank, [messages, bytes])``: what each rank's nodes sent plus received per
        steady window (every window but the first and the last), all kinds; ``None``
        without counts or steady windows."""
        if not self.traffic or not self.traffic[0].get("steady_windows"):
            return None
        out = np.zeros((len(self.traffic), 2))
        for r, t in enumerate(self.traffic):
            for kinds in t["steady"].values():
                for sm, sb, rm, rb in kinds.values():
                    out[r] += (sm + rm, sb + rb)
            out[r] /= t["steady_windows"]
        return out


class Progress:
    """Prints simulated time, wall time and speed to ``stream`` at most every ``every_s``."""

    def __init__(self, total_ms: float, stream: TextIO | None = sys.stderr, every_s: float = 2.0,
                 start_ms: float = 0.0):
        self.total_ms = total_ms
        self.start_ms = start_ms
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
        done = t_ms - self.start_ms
        speed = wall / (done / 1000.0) if done > 0 else float("nan")
        eta = speed * (self.total_ms - t_ms) / 1000.0 if done > 0 else float("nan")
        print(f"[cosim] t = {t_ms:.1f} / {self.total_ms:.1f} ms ({100.0 * t_ms / self.total_ms:5.1f} %)"
              f"  wall {wall:.1f} s  {speed:.3f} s wall per simulated s"
              f"  (real-time factor {1.0 / speed if speed > 0 else float('inf'):.2f})"
              f"  ETA {eta:.1f} s", file=self.stream, flush=True)
