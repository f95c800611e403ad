"""Co-simulation overhead of the default hybrid scenario under ``mpiexec``.

Runs ``mpiexec -n K cosim run scenarios/default.toml`` (K = 3 by default: bus, neural
masses, the spiking region) and reads the per-window timing every rank stored in the output
(``/timing/window_seconds``, ``(window, rank, phase)`` with phases compute, communicate,
wait).  Reports

* ``comm_fraction``: the share of wall time the ranks spend *communicating* — packing,
  posting, receiving and unpacking messages — summed over ranks and divided by
  (wall time × ranks).  Time blocked waiting for a slower engine is excluded (it is load
  imbalance, not communication) and reported separately as ``wait_fraction``;
* ``latency_us``: exchange latency per window — the median over windows of the bus rank's
  communicate time for one window (all messages of the window in and out);
* wall seconds per simulated second, and the same scenario in one process for reference;
* ``one_process``: the same scenario run in this process at each ``--sync-ms`` (1 and 5 ms
  by default), the loop's time besides the engines — (loop wall − Σ the parts'
  ``Part.step``) ÷ windows ÷ parts, µs per part per window (issue 20: ≤ 50) — and its share
  of the loop; min and median of ``--repeats`` runs after a warm-up run.  ``--split``
  adds where that time goes, from per-call timers in further runs: the bus (the parts'
  links: inputs, sends, the spiking heads' combine, arrivals; and the traffic figures), the
  coordinator's records and output (``Hub.window``: the parts' outputs taken, the record
  pipeline's batches, the flushes' part on the run's thread), and the loop's own steps (the
  rest) — each in µs per window and as a share of the untimed loop; the timers' own cost,
  measured on an empty call, is taken off.

Target: communication < 5 % of wall time.

    python bench/cosim_overhead.py [--np 3] [--duration-ms 2000] [--sync-ms 1 5] [--json out.json]
    python bench/cosim_overhead.py --one-process-only --duration-ms 400 --sync-ms 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import mpiexec  # noqa: E402


def _scenario(src: Path, duration_ms: float | None, tmp: Path,
              sync_ms: float | None = None) -> Path:
    import re

    text = src.read_text()
    if duration_ms is not None:
        text = re.sub(r"(?m)^duration\s*=.*$", f"duration = {float(duration_ms)}", text, count=1)
    if sync_ms is not None:
        text = re.sub(r"(?m)^sync_interval\s*=.*$", f"sync_interval = {float(sync_ms)}", text,
                      count=1)
    out = tmp / (src.name if sync_ms is None else f"sync{sync_ms:g}-{src.name}")
    out.write_text(text)
    return out


def one_process(src: Path, sync_ms: float, duration_ms: float, repeats: int, tmp: Path) -> dict:
    """The scenario at ``sync_ms`` in this process (one part per engine): non-compute µs
    per part per window."""
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    path = _scenario(src, duration_ms, tmp, sync_ms)
    per, share = [], []
    for r in range(repeats + 1):                 # run 0 warms the caches (numba, data)
        s = run_scenario(load_scenario(path, output=tmp / f"sync{sync_ms:g}.h5"), overwrite=True,
                         progress_stream=None)
        if r == 0:
            continue
        windows = s.simulated_ms / sync_ms
        other = s.wall_s - sum(s.compute_s.values())
        per.append(1e6 * other / windows / len(s.compute_s))
        share.append(other / s.wall_s)
    return {"non_compute_us_per_part_per_window": {"min": min(per), "median": float(np.median(per))},
            "share_of_loop": {"min": min(share), "median": float(np.median(share))},
            "loop_us_per_window": 1e6 * s.wall_s / windows, "parts": len(s.compute_s),
            "windows": int(round(windows)), "repeats": repeats}


#: ``--split``: what each timed call is part of
SPLIT = {"bus": [("cosim.exchange", "PartLink", m) for m in ("input", "send", "combine", "arrive",
                                                               "catch_up")]
         + [("cosim.transport", "Transport", "window_done")],
         "records and output": [("cosim.runtime", "Hub", "window")]}


def split(src: Path, sync_ms: float, duration_ms: float, repeats: int, tmp: Path,
          untimed: dict) -> dict:
    """Per-call timers on the calls of :data:`SPLIT` (``repeats`` runs, medians): µs per
    window of each, less the timers' own cost; ``loop`` is the rest of the untimed runs'
    time besides the engines."""
    import importlib

    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    spent = {cat: 0.0 for cat in SPLIT}
    calls = {cat: 0 for cat in SPLIT}

    def timed(f, cat):
        def call(*a, **kw):
            tic = time.perf_counter()
            try:
                return f(*a, **kw)
            finally:
                spent[cat] += time.perf_counter() - tic
                calls[cat] += 1
        return call

    # the timers' own cost inside what they time: one timed empty call
    probe = timed(lambda: None, "bus")
    for _ in range(100_000):
        probe()
    per_call = spent["bus"] / calls["bus"]
    spent["bus"], calls["bus"] = 0.0, 0

    originals = []
    for cat, names in SPLIT.items():
        for mod, cls, meth in names:
            owner = getattr(importlib.import_module(mod), cls)
            originals.append((owner, meth, getattr(owner, meth)))
            setattr(owner, meth, timed(getattr(owner, meth), cat))
    path = _scenario(src, duration_ms, tmp, sync_ms)
    per = {cat: [] for cat in SPLIT}
    try:
        for _ in range(repeats):
            for cat in SPLIT:
                spent[cat], calls[cat] = 0.0, 0
            s = run_scenario(load_scenario(path, output=tmp / f"split{sync_ms:g}.h5"),
                             overwrite=True, progress_stream=None)
            windows = s.simulated_ms / sync_ms
            for cat in SPLIT:
                per[cat].append(1e6 * (spent[cat] - calls[cat] * per_call) / windows)
    finally:
        for owner, meth, f in originals:
            setattr(owner, meth, f)
    loop_us = untimed["loop_us_per_window"]
    other = untimed["non_compute_us_per_part_per_window"]["median"] * untimed["parts"]
    out = {cat: float(np.median(v)) for cat, v in per.items()}
    out["loop"] = other - sum(out.values())
    return {"us_per_window": out, "share_of_loop": {c: v / loop_us for c, v in out.items()},
            "timer_us_per_call": 1e6 * per_call}


def _run(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(REPO / "scenarios" / "default.toml"))
    p.add_argument("--np", type=int, default=3, help="MPI processes (default 3)")
    p.add_argument("--duration-ms", type=float, default=None, help="override the duration")
    p.add_argument("--json", help="write the results as JSON to this path")
    p.add_argument("--sync-ms", type=float, nargs="+", default=[1.0, 5.0],
                   help="sync intervals of the one-process runs (default 1 5)")
    p.add_argument("--repeats", type=int, default=3, help="one-process runs per interval")
    p.add_argument("--one-process-only", action="store_true",
                   help="only the one-process figures (no mpiexec run)")
    p.add_argument("--split", action="store_true",
                   help="also where the one-process time besides the engines goes (timed runs)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    ones = {}
    with tempfile.TemporaryDirectory() as d:
        for sync in args.sync_ms:
            r = ones[f"{sync:g}"] = one_process(Path(args.scenario), sync, args.duration_ms or 400.0,
                                                args.repeats, Path(d))
            q = r["non_compute_us_per_part_per_window"]
            print(f"one process, sync {sync:g} ms: besides the engines {q['min']:.1f} µs per part "
                  f"per window (median {q['median']:.1f}; issue 20: ≤ 50), "
                  f"{100 * r['share_of_loop']['median']:.1f} % of the loop "
                  f"({r['loop_us_per_window']:.0f} µs per window, {r['parts']} parts)")
            if args.split:
                sp = r["split"] = split(Path(args.scenario), sync, args.duration_ms or 400.0,
                                        args.repeats, Path(d), r)
                print("  of which, µs per window (share of the loop): " + "; ".join(
                    f"{c} {sp['us_per_window'][c]:.1f} ({100 * sp['share_of_loop'][c]:.1f} %)"
                    for c in sp["us_per_window"]))
    if args.one_process_only:
        if args.json:
            Path(args.json).write_text(json.dumps({"one_process": ones}, indent=2))
        return 0

    import h5py

    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sc = _scenario(Path(args.scenario), args.duration_ms, tmp)
        cosim = [sys.executable, "-m", "cosim", "run", str(sc), "--quiet", "--overwrite"]
        # warm the numba cache so that neither run pays compilation
        _run(cosim + ["--output", str(tmp / "warm.h5")], env)
        one_wall = _run(cosim + ["--output", str(tmp / "one.h5")], env)
        mpi_wall = _run([mpiexec(), "-n", str(args.np)] + cosim + ["--output", str(tmp / "mpi.h5")], env)
        with h5py.File(tmp / "mpi.h5") as f:
            timing = f["timing/window_seconds"][:]          # (window, rank, phase)
            duration_ms = float(f.attrs["duration_ms"])
            status = f.attrs["status"]
        with h5py.File(tmp / "one.h5") as f1, h5py.File(tmp / "mpi.h5") as f2:
            same = all(np_equal(f1, f2, name) for name in _datasets(f1))
    loop_wall = timing[:, 0, :].sum()          # the bus rank is busy or waiting all along
    per_rank = timing.sum(axis=0)              # (rank, phase)
    comm_fraction = float(per_rank[:, 1].sum() / (loop_wall * timing.shape[1]))
    wait_fraction = float(per_rank[:, 2].sum() / (loop_wall * timing.shape[1]))
    latency_us = float(np.median(timing[:, 0, 1]) * 1e6)
    sim_s = duration_ms / 1000.0
    result = {
        "scenario": str(args.scenario), "np": args.np, "duration_ms": duration_ms,
        "status": str(status), "identical_to_one_process": bool(same),
        "comm_fraction": comm_fraction, "wait_fraction": wait_fraction,
        "latency_us": latency_us,
        "loop_wall_s": float(loop_wall),
        "wall_s_per_simulated_s": {"mpi_loop": float(loop_wall) / sim_s,
                                   "mpi_process": mpi_wall / sim_s,
                                   "one_process": one_wall / sim_s},
        "one_process": ones,
        "per_rank_seconds": {f"rank {r}": dict(zip(("compute", "communicate", "wait"),
                                                   map(float, per_rank[r])))
                             for r in range(per_rank.shape[0])},
    }
    print(f"default scenario, mpiexec -n {args.np}, {duration_ms:g} ms simulated")
    for r in range(per_rank.shape[0]):
        c, m, w = per_rank[r]
        print(f"  rank {r}: compute {c:7.3f} s  communicate {m:7.4f} s  wait {w:7.3f} s")
    print(f"  communication: {100 * comm_fraction:.2f} % of wall time (target < 5 %); "
          f"waiting on slower engines: {100 * wait_fraction:.1f} %")
    print(f"  exchange latency per window (bus rank): {latency_us:.1f} µs")
    print(f"  wall per simulated s: loop {loop_wall / sim_s:.2f}, whole mpiexec {mpi_wall / sim_s:.2f}, "
          f"one process {one_wall / sim_s:.2f}")
    print(f"  outputs identical to the one-process run: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _datasets(f) -> list[str]:
    names = []
    f.visititems(lambda n, o: names.append(n) if hasattr(o, "shape") and not n.startswith(("timing", "provenance")) else None)
    return names


def np_equal(a, b, name: str) -> bool:
    x, y = a[name][()], b[name][()]
    return bool(np.array_equal(x, y)) if hasattr(x, "shape") else x == y


if __name__ == "__main__":
    sys.exit(main())
