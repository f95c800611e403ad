"""The default hybrid with rV1 in NEURON (``type = "neuron"``) versus rV1 in cosim's own
multicompartment engine, one process, 5 ms exchange.

Runs ``scenarios/neuron_region/rv1_neuron.toml`` and ``scenarios/default.toml`` (the same
brain, adapters, input trains and rV1 network; only the engine of rV1 differs) in a worker
process each (NEURON holds one model per process), timed rounds interleaved, minimum over
the rounds.  Reports, per run:

* ``wall_per_sim_s``: wall seconds of the window loop per simulated second (no build);
* ``v1_compute_s``: the rV1 part's compute (adapters, ``advance``, spike counting);
* for the NEURON engine, ``neuron_s``: wall time inside NEURON's ``psolve`` and
  ``coupling_overhead``: (v1 compute − neuron_s) / v1 compute — everything cosim adds
  around NEURON on the region's rank (Poisson trains, NetCon events, spike collection and
  delivery, probes, counting).  Target: < 5 %;
* ``ratio``: the NEURON engine's wall ÷ cosim's own engine's (> 1: cosim's engine faster);
* agreement: the two runs' rV1 spikes (cell and time) are identical;
* ``glue``: the same model through a hand-written TVB + NEURON glue, one process, 5 ms
  exchange, written the way users glue the two today: a TVB ``Simulator`` (Jansen–Rit,
  ``SigmoidalJansenRit``, deterministic Heun, dt 0.1 ms, ``Raw`` monitor) advanced in 5 ms
  chunks; rV1's delayed input ``Σ_j w_ij S(y1_j − y2_j)(t − d_ij)`` from a ring of TVB's
  samples; per chunk, Poisson event times for every background line drawn with numpy at the
  rate ``offset + gain · input`` of each 0.1 ms step and queued with ``NetCon.event``; the
  rV1 network of ``rv1.py`` built with NEURON's own ``gid_connect`` and advanced with
  ``psolve``; E's spikes from ``spike_record``, filtered (τ = 5 ms) and written into rV1's
  TVB state.  ``ratio_glue_over_cosim``: the glue's loop wall ÷ cosim + NEURON's
  (target ≥ 2).

    python bench/neuron_region.py [--duration-ms 2000] [--repeats 3] [--json out.json]
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

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = {"neuron": REPO / "scenarios" / "neuron_region" / "rv1_neuron.toml",
             "multicompartment": REPO / "scenarios" / "default.toml"}
SINGLE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                  "NUMBA_NUM_THREADS")}


def worker(name: str, duration_ms: float, out: Path) -> dict:
    """One run in this process: load, override duration and output, run, report."""
    import h5py
    import numpy as np

    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    text = SCENARIOS[name].read_text()
    import re
    text = re.sub(r"(?m)^duration\s*=.*$", f"duration = {float(duration_ms)}", text, count=1)
    path = SCENARIOS[name].parent / f".bench_{os.getpid()}.toml"
    path.write_text(text)
    try:
        sc = load_scenario(path)
    finally:
        path.unlink()
    summary = run_scenario(sc, output=out, overwrite=True, progress_stream=None)
    eng = sc.engines["v1"]
    res = {"wall_s": summary.wall_s, "build_s": summary.build_s,
           "simulated_ms": summary.simulated_ms, "v1_compute_s": summary.compute_s.get("v1")}
    if hasattr(eng, "timing"):
        res.update(eng.timing)
    with h5py.File(out, "r") as f:
        pops = [g for name, g in sorted(f["spikes"].items()) if name.startswith("v1.")]
        res["n_spikes"] = int(sum(g["timestamps"].shape[0] for g in pops))
        res["spikes_sha"] = __import__("hashlib").sha256(b"".join(
            np.ascontiguousarray(g[k][()]).tobytes() for g in pops
            for k in ("timestamps", "node_ids"))).hexdigest()
    return res


SYNC_MS, TVB_DT_MS = 5.0, 0.1


def glue(duration_ms: float) -> dict:
    """The hand-written TVB + NEURON glue (see the module docstring); loop wall and spikes."""
    import hashlib
    import logging
    import tomllib
    from types import SimpleNamespace

    import numpy as np
    from neuron import h, load_mechanisms
    from tvb.datatypes.connectivity import Connectivity
    from tvb.simulator import coupling, integrators, models, monitors, simulator

    from cosim.engines.neuron_mod import compile_mods
    from cosim.engines.neuron_model import EVENTS_MOD
    from cosim.rng import Streams
    logging.getLogger("tvb").setLevel(logging.ERROR)
    sc = tomllib.loads(SCENARIOS["neuron"].read_text())
    v1c, sim_c = sc["engines"]["v1"], sc["simulation"]
    pops = {k: int(v["n"]) for k, v in v1c["populations"].items()}
    tic0 = time.perf_counter()
    # ---- TVB: the brain
    conn = Connectivity.from_file("connectivity_76.zip")
    conn.speed = np.array([3.0])
    conn.configure()
    v1 = list(conn.region_labels).index("rV1")
    model = models.JansenRit(v0=np.array([6.0]))
    sim = simulator.Simulator(model=model, connectivity=conn,
                              coupling=coupling.SigmoidalJansenRit(a=np.array([1.0])),
                              integrator=integrators.HeunDeterministic(dt=TVB_DT_MS),
                              monitors=(monitors.Raw(),), simulation_length=duration_ms)
    sim.configure()
    steps = np.rint(conn.tract_lengths[v1] / 3.0 / TVB_DT_MS).astype(int)
    w = conn.weights[v1].copy()
    w[v1] = 0.0
    src = np.flatnonzero(w)
    S = int(round(SYNC_MS / TVB_DT_MS))
    L = int(steps.max()) + S + 1
    e0, v0, r = float(model.nu_max[0]), float(model.v0[0]), float(model.r[0])
    sigm = lambda v: 2 * e0 / (1 + np.exp(r * (v0 - v)))               # noqa: E731
    ring = np.full((L, conn.number_of_regions), sigm(0.0))
    # ---- NEURON: rV1 from rv1.py, NEURON's own gids and spike exchange
    # the engine's library (the model's .mod files + cosim's unused event queue): one compile
    load_mechanisms(str(compile_mods(SCENARIOS["neuron"].parent / v1c["mod_dir"],
                                     h.nrnversion(5), extra={"cosim_events.mod": EVENTS_MOD})),
                    warn_if_already_loaded=False)
    h.load_file("stdrun.hoc")
    pc = h.ParallelContext()
    h.dt = float(v1c["dt"])
    h.celsius = float(v1c["celsius"])
    spec = __import__("importlib.util").util.spec_from_file_location(
        "rv1_glue", SCENARIOS["neuron"].parent / v1c["model"])
    rv1 = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(rv1)
    ranges, start = {}, 0
    for name, n in pops.items():
        ranges[name] = range(start, start + n)
        start += n
    ctx = SimpleNamespace(name="v1", gids=np.arange(start), populations=ranges, h=h, pc=pc,
                          dt_ms=h.dt, rng=Streams(int(sim_c["seed"])),
                          population_of=lambda g: next(k for k, v in ranges.items() if g in v))
    cells = rv1.build(ctx)
    for gid, cell in cells.items():
        pc.set_gid2node(gid, 0)
        nc = h.NetCon(cell.soma(0.5)._ref_v, None, sec=cell.soma)
        nc.threshold = 0.0
        pc.cell(gid, nc)
    rv1.connect(ctx, cells)
    lines = []                       # (population, NetCon onto the background synapse)
    for gname, g in v1c["inputs"].items():
        for gid in ranges[g["target"]]:
            for _ in range(int(g["per_cell"])):
                nc = h.NetCon(None, getattr(cells[gid], g["synapse"]))
                nc.weight[0] = float(g["weight"])
                lines.append((gname, nc))
    adapt = {a["input"]: (float(a["gain"]), float(a["offset"]))
             for a in sc["adapters"].values() if a["type"] == "rate_to_poisson"}
    by_group = {gname: [nc for k, nc in lines if k == gname] for gname in v1c["inputs"]}
    spike_t, spike_gid = h.Vector(), h.Vector()
    pc.spike_record(-1, spike_t, spike_gid)
    n_e = pops["exc"]
    pc.set_maxstep(SYNC_MS)
    h.finitialize(-65.0)
    rng = np.random.default_rng(int(sim_c["seed"]))
    # TVB's numba kernels compile at their first call: compile them before the clock starts
    model.dfun(sim.current_state, np.zeros((2, conn.number_of_regions, 1)))
    pos, rate_filtered = 0, 0.0
    build_s = time.perf_counter() - tic0
    tic = time.perf_counter()
    n_spikes_e, digest = 0, hashlib.sha256()
    nrn_s = tvb_s = 0.0
    clock = time.perf_counter
    for k in range(int(round(duration_ms / SYNC_MS))):
        t0 = k * SYNC_MS
        # TVB → NEURON: rV1's delayed input per 0.1 ms step, Poisson events per line
        idx = (pos + np.arange(S)[:, None] - steps[src][None, :]) % L
        s_in = (ring[idx, src] * w[src]).sum(axis=1)
        for gname, ncs in by_group.items():
            gain, offset = adapt[gname]
            lam = np.maximum(0.0, offset + gain * s_in) * TVB_DT_MS / 1000.0   # per step
            counts = rng.poisson(np.broadcast_to(lam, (len(ncs), S)))
            j, b = np.nonzero(counts)
            j, b = np.repeat(j, counts[j, b]), np.repeat(b, counts[j, b])
            when = t0 + TVB_DT_MS * (b + rng.random(b.size))
            for jj, tt in zip(j.tolist(), when.tolist()):
                ncs[jj].event(tt)
        t_a = clock()
        pc.psolve(t0 + SYNC_MS)
        nrn_s += clock() - t_a
        # NEURON → TVB: pooled E rate through the exponential kernel into rV1's state
        t = spike_t.as_numpy().copy()
        g = spike_gid.as_numpy().copy()
        spike_t.resize(0)
        spike_gid.resize(0)
        digest.update(t.tobytes())
        te = t[g < n_e]
        n_spikes_e += te.size
        counts = np.histogram(te, bins=S, range=(t0, t0 + SYNC_MS))[0]
        for c in counts:
            rate_filtered += (c / n_e / (TVB_DT_MS / 1000.0) - rate_filtered) * TVB_DT_MS / 5.0
        target = np.clip(0.001 * rate_filtered, 1e-9, 2 * e0 * (1 - 1e-9))
        sim.current_state[1, v1] = v0 - np.log(2 * e0 / target - 1) / r
        sim.current_state[2, v1] = 0.0
        t_a = clock()
        for (_, y), in sim(simulation_length=SYNC_MS):
            ring[pos % L] = sigm(y[1, :, 0] - y[2, :, 0])
            pos += 1
        tvb_s += clock() - t_a
    wall = time.perf_counter() - tic
    return {"wall_s": wall, "build_s": build_s, "simulated_ms": duration_ms,
            "neuron_s": nrn_s, "tvb_s": tvb_s, "exchange_s": wall - nrn_s - tvb_s,
            "rate_exc_hz": n_spikes_e / n_e / (duration_ms / 1000.0)}


def run_worker(name: str, duration_ms: float, tmp: Path) -> dict:
    out = tmp / f"{name}.h5"
    env = {**os.environ, **SINGLE_THREAD, "NEURON_MODULE_OPTIONS": "-nogui",
           "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in os.environ.get(
               "PYTHONPATH", "").split(os.pathsep) if p])}
    r = subprocess.run([sys.executable, __file__, "--worker", name, "--duration-ms",
                        str(duration_ms), "--out", str(out)], env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"{name}: worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration-ms", type=float, default=2000.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write every number to this JSON file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        res = glue(a.duration_ms) if a.worker == "glue" else worker(a.worker, a.duration_ms,
                                                                      Path(a.out))
        print(json.dumps(res))
        return 0
    kinds = [*SCENARIOS, "glue"]
    rounds: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="cosim-bench-neuron-") as tmp:
        for name in kinds:                         # warm-up: numba cache, nrnivmodl cache
            run_worker(name, min(a.duration_ms, 50.0), Path(tmp))
        for _ in range(a.repeats):
            for name in kinds:
                rounds[name].append(run_worker(name, a.duration_ms, Path(tmp)))
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in rounds.items()}
    sim_s = a.duration_ms / 1000.0
    nrn, mc, gl = best["neuron"], best["multicompartment"], best["glue"]
    overhead = (nrn["v1_compute_s"] - nrn["neuron_s"]) / nrn["v1_compute_s"]
    report = {
        "duration_ms": a.duration_ms, "repeats": a.repeats, "rounds": rounds,
        "wall_per_sim_s": {k: r["wall_s"] / sim_s for k, r in best.items()},
        "v1_compute_s": {k: r["v1_compute_s"] for k, r in best.items() if "v1_compute_s" in r},
        "neuron_s": nrn["neuron_s"], "coupling_overhead": overhead,
        "ratio_neuron_over_cosim_engine": nrn["wall_s"] / mc["wall_s"],
        "spikes_identical": nrn["spikes_sha"] == mc["spikes_sha"],
        "n_spikes": {k: r["n_spikes"] for k, r in best.items() if "n_spikes" in r},
        "ratio_glue_over_cosim": gl["wall_s"] / nrn["wall_s"],
        "glue_rate_exc_hz": gl["rate_exc_hz"],
        "ratios": {"glue": gl["wall_s"] / nrn["wall_s"]},
        # the glue's loop split: NEURON's psolve, TVB's chunks, the Python exchange between
        "glue_split_s": {k: gl[k] for k in ("neuron_s", "tvb_s", "exchange_s")},
        # the most glue ÷ cosim + NEURON can be: (NEURON + TVB + exchange) ÷ NEURON, were
        # cosim's wall its psolve alone — from the glue's own psolve, and from cosim's
        "glue_bound": gl["wall_s"] / gl["neuron_s"],
        "glue_bound_vs_cosim_psolve": gl["wall_s"] / nrn["neuron_s"],
        "targets": {"coupling_overhead < 0.05": overhead < 0.05,
                    "glue / cosim >= 2": gl["wall_s"] / nrn["wall_s"] >= 2.0},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"{'rV1 engine':<18}{'wall/sim s':>12}{'v1 compute s':>14}{'in NEURON s':>13}"
          f"{'spikes':>8}")
    for k, r in best.items():
        print(f"{k:<18}{r['wall_s'] / sim_s:>12.3f}{r.get('v1_compute_s', float('nan')):>14.3f}"
              f"{r.get('neuron_s', float('nan')):>13.3f}{r.get('n_spikes', '-'):>8}")
    print(f"coupling overhead of the NEURON engine: {100 * overhead:.2f} % of its compute "
          f"(target < 5 %)")
    print(f"NEURON engine wall / cosim engine wall: {report['ratio_neuron_over_cosim_engine']:.2f}")
    print(f"rV1 spikes identical: {report['spikes_identical']}")
    print(f"TVB + NEURON glue wall / cosim + NEURON wall: {report['ratio_glue_over_cosim']:.2f} "
          f"(target >= 2; glue E rate {gl['rate_exc_hz']:.1f} Hz)")
    print(f"glue split: NEURON {gl['neuron_s']:.3f} s, TVB {gl['tvb_s']:.3f} s, exchange "
          f"{gl['exchange_s']:.3f} s; bound (NEURON + TVB + exchange) / NEURON = "
          f"{report['glue_bound']:.3f} (glue wall / cosim's psolve "
          f"{report['glue_bound_vs_cosim_psolve']:.3f})")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
