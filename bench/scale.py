"""Scale figures: messages and bytes per rank per window as the number of processes grows.

A weak-scaling scenario family (:func:`scenario`): a ring connectome of N regions, each
region connected to its two nearest neighbours on either side (in-degree 4 whatever N);
Jansen–Rit neural masses on every region but a few, split by the plan into parts of
``--regions-per-part`` contiguous regions; every fourth rank or so a small spiking region
(ball-and-stick cells driven by a rate → Poisson adapter, its rate back to the bus).  For
P processes: 1 rank for the bus, S = max(1, (P − 1) // 4) spiking regions, P − 1 − S
neural-mass parts; N grows with P, the work per part does not.

For each P in ``--np`` (3 5 9 17 33: oversubscribed on a small machine — the figures are
*counts*, not times) the scenario runs under ``mpiexec -n P``; every rank's transport
counts the messages and bytes its node sent and received (:mod:`cosim.transport`, summed
over the *steady* windows: every window but the first and the last, so no start-up and no
close), gathered once at the end of the run (:attr:`cosim.progress.RunSummary.traffic`).
Reported per P: the largest per-rank messages and bytes per window (sent + received), the
coordinator's (rank 0), and rank 0's per-window work (compute + communicate, waiting
excluded: the median over the steady windows of ``/timing``'s phases), and — from a second,
traced run per P — rank 0's per-window *operations* (``Hub.window``'s Python bytecodes and C
calls: a count, which oversubscription cannot inflate the way it inflates wall times).

A ping-pong (``mpiexec -n 2``, mpi4py buffers) measures the per-message latency (8-byte
messages) and the bandwidth (4 MiB messages) of this machine's MPI; with them a model of
weak scaling to 256 and 1024 ranks (see bench/README.md for its assumptions):
per-window time of the busiest rank = messages × latency + bytes / bandwidth + the
coordinator's work (its operations per window × its seconds per operation at the smallest
P), each extrapolated linearly in P from the measured points (P ≥ 5), plus the stop vote (an ``Iallreduce`` the counters leave out: 2⌈log₂ P⌉ messages).  Wall-time figures (one process and ``--wall-np``, 3 by default) are taken
with ``--wall-ms`` of simulated time.

    python bench/scale.py [--np 3 5 9 17 33] [--duration-ms 8] [--json out.json]

``--json PATH`` writes, among the rest, ``{"max_messages_per_rank_per_window": {"3": …},
"max_bytes_per_rank_per_window": {"3": …}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import machine_info, mpiexec, print_table, write_json  # noqa: E402

DEFAULT_NP = (3, 5, 9, 17, 33)
MODEL_NP = (256, 1024)
#: neighbours on either side of a ring region (in-degree 2 × this)
RING_REACH = 2
TRACT_MM = 15.0          # per ring step: 5 ms per step at connectome.speed = 3 mm/ms


def layout(n_proc: int) -> tuple[int, int]:
    """``(spiking regions, neural-mass parts)`` for ``n_proc`` processes (one is the bus)."""
    if n_proc < 3:
        raise ValueError(f"the scale scenario needs at least 3 processes, got {n_proc}")
    n_spiking = max(1, (n_proc - 1) // 4)
    return n_spiking, n_proc - 1 - n_spiking


def ring_connectome(n: int, path: Path) -> Path:
    """``n`` regions ``r0 … r{n-1}`` on a ring, each reading from its ``RING_REACH``
    nearest neighbours on either side (weight 1 / distance, tract length
    ``TRACT_MM`` × distance), written as an ``.npz`` connectome."""
    w = np.zeros((n, n))
    lengths = np.zeros((n, n))
    for i in range(n):
        for d in range(1, RING_REACH + 1):
            for j in ((i + d) % n, (i - d) % n):
                if j != i:
                    w[i, j] = 1.0 / d
                    lengths[i, j] = TRACT_MM * d
    labels = np.array([f"r{i}" for i in range(n)])
    np.savez(path, weights=w, tract_lengths=lengths, region_labels=labels)
    return path


def scenario(n_proc: int, tmp: Path, duration_ms: float, regions_per_part: int = 4,
             output: str = "out.h5") -> dict:
    """The scenario of the family for ``n_proc`` processes (a dict for
    :func:`cosim.toml_writer.dumps`); its connectome is written into ``tmp``."""
    sys.path.insert(0, str(REPO / "tests"))
    from scenarios import (ball_and_stick, multicompartment, neural_mass, rate_to_poisson,
                           record, simulation, spikes_to_rate)
    from scenarios import scenario as make

    n_spiking, n_nm = layout(n_proc)
    n = regions_per_part * n_nm + n_spiking
    conn = ring_connectome(n, tmp / f"ring{n}.npz")
    spiking_at = [round(j * n / n_spiking) for j in range(n_spiking)]
    engines = {"cortex": neural_mass(regions="rest", parameters={"v0": 6.0})}
    adapters = {}
    rec = {"cortex": {"variables": ["y1"]}}
    for j, r in enumerate(spiking_at):
        name = f"s{j}"
        engines[name] = multicompartment(
            region=f"r{r}", cells={"exc": ball_and_stick(2, 2)},
            inputs={"bg": {"target": "exc", "receptor": "AMPA", "section": "dend", "x": 0.8,
                           "weight": 0.0015, "per_cell": 10}})
        adapters[f"in_{name}"] = rate_to_poisson(name, "bg", gain=2000.0, offset=20.0)
        adapters[f"out_{name}"] = spikes_to_rate(name, populations=["exc"], kernel="exponential",
                                                 tau=5.0, map={"type": "linear", "gain": 0.001})
        rec[name] = {"variables": ["spikes"]}
    return make(simulation(duration_ms, 1.0, 7, output),
                engines=engines, connectome={"source": str(conn)}, adapters=adapters,
                record=record(1.0, **rec))


def write_scenario(n_proc: int, tmp: Path, duration_ms: float, regions_per_part: int = 4,
                   output: str = "out.h5") -> Path:
    from cosim.toml_writer import dumps

    path = tmp / f"scale{n_proc}.toml"
    path.write_text(dumps(scenario(n_proc, tmp, duration_ms, regions_per_part, output)))
    return path


# --------------------------------------------------------------------------- workers

def _run_worker(scen: str, out_json: str) -> None:
    """Run ``scen`` (under MPI when launched by mpiexec with more than one rank, else in
    this process); rank 0 writes the summary's traffic and timing to ``out_json``."""
    from cosim.scenario import load_scenario

    sc = load_scenario(scen)
    out = Path(out_json).with_suffix(".h5")
    ops = _count_coordinator_ops() if os.environ.get("COSIM_SCALE_COUNT_OPS") else None
    from cosim.launch import launcher_world_size
    size = launcher_world_size()
    if size and size > 1:
        from mpi4py import MPI

        from cosim import watchdog
        from cosim.runtime import run_mpi
        rank = MPI.COMM_WORLD.Get_rank()
        try:
            summary = run_mpi(sc, MPI.COMM_WORLD, output=out, overwrite=True, progress_stream=None)
        finally:
            watchdog.ending_on_purpose(rank)     # rank 0 may end first: no "crashed" report
        if rank != 0:
            return
    else:
        from cosim.runtime import run_scenario
        summary = run_scenario(sc, output=out, overwrite=True, progress_stream=None)
    Path(out_json).write_text(json.dumps({
        "traffic": summary.traffic, "timing": np.asarray(summary.timing).tolist(),
        "wall_s": summary.wall_s, "simulated_ms": summary.simulated_ms,
        "n_ranks": summary.n_ranks, "compute_s": summary.compute_s,
        "coordinator_ops_per_window": ops[0] / ops[1] if ops and ops[1] else None}))


def _count_coordinator_ops() -> list[int]:
    """Count the operations of the coordinator's per-window work
    (:meth:`cosim.runtime.Hub.window`, on rank 0): Python bytecodes executed (so a Python
    loop over the ranks would show) plus C functions called, ``[operations, windows]``,
    filled as the run goes.  A count does not depend on what else the machine runs, so it
    shows whether rank 0's work grows with P where oversubscribed wall times cannot
    (work inside one C call, e.g. numpy on a P-long array, is one operation)."""
    from cosim import runtime

    counts = [0, 0]
    window = runtime.Hub.window

    def opcode(frame, event, arg):
        if event == "opcode":
            counts[0] += 1
        return opcode

    def trace(frame, event, arg):
        frame.f_trace_opcodes = True
        return opcode

    def prof(frame, event, arg):
        if event == "c_call":
            counts[0] += 1

    def counted(self, k, n):
        sys.settrace(trace)
        sys.setprofile(prof)
        try:
            return window(self, k, n)
        finally:
            sys.setprofile(None)
            sys.settrace(None)
            counts[1] += 1

    runtime.Hub.window = counted
    return counts


def _pingpong(out_json: str, small: int = 8, large: int = 1 << 22) -> None:
    """Two ranks bounce a message; half the round trip: latency (``small`` bytes) and
    bandwidth (``large`` bytes)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    other = 1 - rank
    res = {}
    for size, reps in ((small, 2000), (large, 20)):
        buf = np.zeros(size, dtype=np.uint8)
        best = float("inf")
        for _round in range(3):
            comm.Barrier()
            t = time.perf_counter()
            for _ in range(reps):
                if rank == 0:
                    comm.Send([buf, MPI.BYTE], dest=other, tag=1)
                    comm.Recv([buf, MPI.BYTE], source=other, tag=1)
                else:
                    comm.Recv([buf, MPI.BYTE], source=other, tag=1)
                    comm.Send([buf, MPI.BYTE], dest=other, tag=1)
            best = min(best, (time.perf_counter() - t) / (2 * reps))
        res[size] = best
    if rank == 0:
        Path(out_json).write_text(json.dumps({
            "latency_s": res[small], "small_bytes": small, "large_bytes": large,
            "bandwidth_bytes_per_s": large / max(res[large] - res[small], 1e-12)}))


# --------------------------------------------------------------------------- figures

def figures(result: dict) -> dict:
    """Per-rank steady per-window counts, the largest over ranks, rank 0's and rank 0's
    per-window work, from one worker's result."""
    ranks = []
    for r, t in enumerate(result["traffic"]):
        n = t["steady_windows"]
        tot = np.zeros(4)
        for kinds in t["steady"].values():
            for c in kinds.values():
                tot += c
        per = [float(x) for x in (tot / n if n else tot * np.nan)]
        whole = np.zeros(4, dtype=np.int64)
        for kinds in t["total"].values():
            for c in kinds.values():
                whole += c
        ranks.append({"rank": r, "sent_messages": per[0], "sent_bytes": per[1],
                      "received_messages": per[2], "received_bytes": per[3],
                      "messages": per[0] + per[2], "bytes": per[1] + per[3],
                      "window_max": t["window_max"], "window_min": t["window_min"],
                      "run_sent": [int(whole[0]), int(whole[1])],
                      "run_received": [int(whole[2]), int(whole[3])]})
    timing = np.asarray(result["timing"])        # (window, rank, phase)
    steady = timing[1:-1] if len(timing) > 2 else timing
    busiest = max(ranks, key=lambda x: (x["messages"], x["bytes"]))
    return {
        "ranks": ranks,
        "max_messages": max(x["messages"] for x in ranks),
        "max_bytes": max(x["bytes"] for x in ranks),
        "busiest_rank": busiest["rank"],
        "max_messages_besides_rank0": max((x["messages"] for x in ranks[1:]), default=0.0),
        "max_bytes_besides_rank0": max((x["bytes"] for x in ranks[1:]), default=0.0),
        "rank0_messages": ranks[0]["messages"], "rank0_bytes": ranks[0]["bytes"],
        "rank0_received_messages": ranks[0]["received_messages"],
        "rank0_work_s": float(np.median(steady[:, 0, 0] + steady[:, 0, 1])),
        "rank0_ops_per_window": result.get("coordinator_ops_per_window"),
        "part_compute_s": float(np.median(steady[:, 1:, 0])) if timing.shape[1] > 1
        else float(np.median(steady[:, 0, 0])),
        "steady_windows": result["traffic"][0]["steady_windows"],
    }


#: a cluster interconnect for the model's second column (an assumption, not a measurement:
#: the order of an InfiniBand HDR / Omni-Path MPI ping-pong)
INTERCONNECT = {"latency_s": 1.5e-6, "bandwidth_bytes_per_s": 10e9}
#: issue 20's measurement of rank 0's per-part work per window, without oversubscription
ISSUE20_COORDINATOR_PER_PART_S = 100e-6


def model(fig: dict[int, dict], pp: dict, targets=MODEL_NP) -> dict:
    """Extrapolate the busiest rank's messages and bytes and rank 0's work linearly in P
    (least squares over the measured P ≥ 5), add the stop vote's tree messages, and cost
    them with (a) the ping-pong's latency and bandwidth and rank 0's work (its counted
    operations per window, fitted, times its seconds per operation at the smallest P), (b) :data:`INTERCONNECT` and issue 20's
    per-part coordinator work, charged per message rank 0 receives per window (one per part
    with the star; what is left of them after the distributed bus) — see the README."""
    ps = np.array(sorted(fig), dtype=float)
    if (ps >= 5).sum() >= 2:     # P = 3 has one spiking region: no part has the family's
        ps = ps[ps >= 5]         # full neighbourhood yet, so its point is not on the line

    def fit(key):
        y = np.array([fig[int(p)][key] for p in ps], dtype=float)
        if len(ps) == 1:
            return 0.0, float(y[0])
        slope, icept = np.polyfit(ps, y, 1)
        return float(slope), float(icept)

    fits = {k: fit(k) for k in ("max_messages", "max_bytes", "rank0_work_s",
                                "rank0_received_messages", "rank0_ops_per_window")}
    # rank 0's work, modelled as its operations per window (a count of bytecodes and C
    # calls, fitted in P) times the seconds per operation at the smallest P (the least
    # oversubscribed run): oversubscribed
    # wall times grow with P through preemption, whatever the work (see the README)
    p0 = min(fig)
    per_op = fig[p0]["rank0_work_s"] / max(fig[p0]["rank0_ops_per_window"], 1.0)
    ops = fits["rank0_ops_per_window"]
    fits["rank0_work_from_ops_s"] = (per_op * ops[0], per_op * ops[1])
    part = float(np.mean([fig[int(q)]["part_compute_s"] for q in ps]))
    # the interconnect case: issue 20's work per part's OUTPUT rank 0 receives per window
    per_msg = ISSUE20_COORDINATOR_PER_PART_S
    r0 = fits["rank0_received_messages"]
    cases = {"measured": (pp["latency_s"], pp["bandwidth_bytes_per_s"],
                          fits["rank0_work_from_ops_s"]),
             "interconnect": (INTERCONNECT["latency_s"], INTERCONNECT["bandwidth_bytes_per_s"],
                              (per_msg * r0[0], per_msg * r0[1]))}
    out = {"fits_slope_intercept": fits, "pingpong": pp, "interconnect": INTERCONNECT,
           "issue20_coordinator_per_part_s": ISSUE20_COORDINATOR_PER_PART_S,
           "part_compute_s": part, "P": {}}
    for p in targets:
        # plus the stop vote, which the counters leave out (an MPI collective): a
        # recursive-doubling Iallreduce of one int64, ⌈log₂ P⌉ rounds of one send and one
        # receive per rank
        vote = 2 * math.ceil(math.log2(p))
        m = max(0.0, fits["max_messages"][0] * p + fits["max_messages"][1]) + vote
        b = max(0.0, fits["max_bytes"][0] * p + fits["max_bytes"][1]) + 8 * vote
        row = {"messages": m, "bytes": b, "vote_messages": vote}
        for case, (lat, bw, (slope, icept)) in cases.items():
            exch = m * lat + b / bw
            w0 = max(0.0, slope * p + icept)
            row[case] = {"exchange_s": exch, "coordinator_work_s": w0, "window_s": exch + w0,
                         "efficiency": part / (part + exch + w0) if part > 0 else None}
        out["P"][str(p)] = row
    return out


# --------------------------------------------------------------------------- driver

def _launch(n: int | None, args: list[str], env: dict, timeout: float) -> None:
    cmd = ([mpiexec(), "-n", str(n)] if n else []) + [sys.executable, __file__, *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-4000:]}")


def measure(n_proc: int, tmp: Path, duration_ms: float, regions_per_part: int, env: dict,
            timeout: float = 1200.0, mpi: bool = True) -> dict:
    """Run the family's ``n_proc`` scenario (``mpi=False``: in one process) → worker result."""
    scen = write_scenario(n_proc, tmp, duration_ms, regions_per_part)
    out = tmp / f"res{n_proc}{'' if mpi else '_one'}.json"
    _launch(n_proc if mpi else None, ["--worker", str(scen), str(out)], env, timeout)
    return json.loads(out.read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--np", type=int, nargs="+", default=list(DEFAULT_NP),
                   help="process counts (default 3 5 9 17 33)")
    p.add_argument("--duration-ms", type=float, default=8.0,
                   help="simulated ms of the count runs (1 ms windows; default 8)")
    p.add_argument("--regions-per-part", type=int, default=4)
    p.add_argument("--wall-ms", type=float, default=200.0,
                   help="simulated ms of the wall-time runs (0: none; default 200)")
    p.add_argument("--wall-np", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1, help="(accepted for the smoke test)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--pingpong", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _run_worker(*args.worker)
        return 0
    if args.pingpong:
        _pingpong(args.pingpong)
        return 0

    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    payload: dict = {"machine": machine_info(), "duration_ms": args.duration_ms,
                     "regions_per_part": args.regions_per_part, "np": args.np}
    fig: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        _launch(2, ["--pingpong", str(tmp / "pp.json")], env, 300)
        pp = json.loads((tmp / "pp.json").read_text())
        for n in args.np:
            t = time.perf_counter()
            fig[n] = figures(measure(n, tmp, args.duration_ms, args.regions_per_part, env))
            # a second run counts rank 0's operations (tracing slows it: not timed)
            fig[n]["rank0_ops_per_window"] = measure(
                n, tmp, args.duration_ms, args.regions_per_part,
                dict(env, COSIM_SCALE_COUNT_OPS="1"))["coordinator_ops_per_window"]
            print(f"P = {n}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        wall = {}
        if args.wall_ms > 0:
            for label, mpi in (("1", False), (str(args.wall_np), True)):
                r = measure(args.wall_np, tmp, args.wall_ms, args.regions_per_part, env, mpi=mpi)
                wall[label] = {"wall_s": r["wall_s"], "simulated_ms": r["simulated_ms"],
                               "wall_per_simulated_s": r["wall_s"] / (r["simulated_ms"] / 1e3)}
                if not mpi:      # one process: what the loop spends besides the engines
                    windows, parts = len(r["timing"]), len(r["compute_s"])
                    wall[label]["non_compute_us_per_part_per_window"] = (
                        1e6 * (r["wall_s"] - sum(r["compute_s"].values())) / windows / parts)
    rows = []
    for n in args.np:
        f = fig[n]
        s, nm = layout(n)
        rows.append([n, nm, s, f["max_messages"], f["max_bytes"], f["busiest_rank"],
                     f["rank0_messages"], f["rank0_bytes"], f["max_messages_besides_rank0"],
                     f["max_bytes_besides_rank0"], f["rank0_work_s"] * 1e6,
                     f["rank0_ops_per_window"], f["part_compute_s"] * 1e6])
    print_table(["P", "NM parts", "spiking", "max msgs/rank/win", "max bytes/rank/win",
                 "busiest", "rank0 msgs", "rank0 bytes", "others' max msgs", "others' max bytes",
                 "rank0 work µs", "rank0 ops/win", "part compute µs"], rows)
    mod = model(fig, pp)
    print(f"ping-pong: latency {pp['latency_s'] * 1e6:.2f} µs, "
          f"bandwidth {pp['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s")
    for n, m in mod["P"].items():
        for case in ("measured", "interconnect"):
            c = m[case]
            print(f"model P = {n} ({case}): busiest rank {m['messages']:.0f} msgs, "
                  f"{m['bytes']:.0f} B per window → exchange {c['exchange_s'] * 1e6:.0f} µs + "
                  f"coordinator {c['coordinator_work_s'] * 1e6:.0f} µs vs part compute "
                  f"{mod['part_compute_s'] * 1e6:.0f} µs: efficiency {c['efficiency']:.3f}")
    for label, w in wall.items():
        extra = ("" if "non_compute_us_per_part_per_window" not in w else
                 f" (besides the engines: {w['non_compute_us_per_part_per_window']:.0f} µs per "
                 "part per window)")
        print(f"wall P = {label}: {w['wall_per_simulated_s']:.3f} s per simulated s{extra}")
    payload.update({
        "max_messages_per_rank_per_window": {str(n): fig[n]["max_messages"] for n in args.np},
        "max_bytes_per_rank_per_window": {str(n): fig[n]["max_bytes"] for n in args.np},
        "rank0_messages_per_window": {str(n): fig[n]["rank0_messages"] for n in args.np},
        "rank0_bytes_per_window": {str(n): fig[n]["rank0_bytes"] for n in args.np},
        "rank0_work_s_per_window": {str(n): fig[n]["rank0_work_s"] for n in args.np},
        "rank0_ops_per_window": {str(n): fig[n]["rank0_ops_per_window"] for n in args.np},
        "max_messages_besides_rank0": {str(n): fig[n]["max_messages_besides_rank0"] for n in args.np},
        "max_bytes_besides_rank0": {str(n): fig[n]["max_bytes_besides_rank0"] for n in args.np},
        "per_rank": {str(n): fig[n]["ranks"] for n in args.np},
        "pingpong": pp, "model": mod, "wall": wall})
    if args.json:
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
