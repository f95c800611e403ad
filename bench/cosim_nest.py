"""cosim vs a hand-written TVB + NEST glue: the hybrid of ``scenarios/hybrid_nest.toml``.

Both sides simulate the same model in **one process**, with the same 5 ms exchange:
Jansen–Rit (TVB's parameters, ``SigmoidalJansenRit`` coupling, deterministic Heun,
dt 0.1 ms) on TVB's ``connectivity_76`` at 3 mm/ms, with region rV1 replaced by the
2500-neuron Brunel network of the scenario in NEST (same neuron model, connectivity rules,
weights, delays, background drive, 0.1 ms resolution, one thread).

* **cosim**: ``cosim.runtime.run_scenario`` on the scenario (duration overridden), HDF5
  output on; rV1's delayed input → ``rate_to_poisson`` (cosim's counter-based trains, one
  spike_generator per E cell), E's spikes → ``spikes_to_rate`` → rV1's afferent on the bus.
* **glue**, written the way TVB-Multiscale users write it: a TVB ``Simulator`` advanced in
  5 ms chunks (``sim(simulation_length=5)``) with a ``Raw`` monitor; per chunk, rV1's
  delayed input ``Σ_j w_ij S(y1_j − y2_j)(t − d_ij)`` is computed from the recorded states,
  turned into the rate of an ``inhomogeneous_poisson_generator`` on E (``rate_times`` every
  0.1 ms), NEST advanced with ``nest.Run(5)`` inside ``Prepare/Cleanup``, E's spikes read
  from a ``spike_recorder``, filtered by the same exponential kernel (τ = 5 ms) and written
  into rV1's state in TVB (y1 set so that S(y1 − y2) is the mapped rate, y2 = 0).

Timed: the window loop only (not imports, building, JIT).  Each side runs in a worker
process of its own (NEST's kernel is one per process), rounds interleaved, minimum over
rounds.  Reported: wall seconds of both, the ratio glue ÷ cosim (> 1: cosim faster), and
cosim's exchange overhead = (loop wall − Σ engine compute) ÷ loop wall — the bus, the
adapters' bus halves, messages and recording (the rate → Poisson generation runs inside
the NEST part and counts as its compute).  Targets: ratio ≥ 2, overhead < 5 %.

    python bench/cosim_nest.py [--duration-ms 500] [--repeats 2] [--scale 1] [--json out.json]

``--scale s`` shrinks the NEST network to s × 2500 neurons (in-degrees kept), which shows
how the ratio depends on the share of the run NEST itself takes (identical on both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "hybrid_nest.toml"
SYNC_MS, DT_MS, SPEED = 5.0, 0.1, 3.0
GAIN, OFFSET, MAP_GAIN, TAU_MS = 200.0, 10.0, 0.00005, 5.0      # as in the scenario


def _sizes(scale: float) -> tuple[int, int]:
    """N_E, N_I of the Brunel network at ``scale`` (1: the scenario's 2000, 500)."""
    return int(round(2000 * scale)), int(round(500 * scale))


def _scenario(duration_ms: float, tmp: Path, scale: float = 1.0) -> Path:
    text = SCENARIO.read_text()
    n_e, n_i = _sizes(scale)
    text = re.sub(r"(?m)^n = 2000$", f"n = {n_e}", text, count=1)
    text = re.sub(r"(?m)^n = 500$", f"n = {n_i}", text, count=1)
    text = re.sub(r"(?m)^duration\s*=.*$", f"duration = {float(duration_ms)}", text, count=1)
    text = re.sub(r'(?m)^output\s*=.*$', f'output = "{tmp / "bench.h5"}"', text, count=1)
    out = tmp / "hybrid_nest.toml"
    out.write_text(text)
    return out


# ---------------------------------------------------------------------------- workers

def run_cosim(duration_ms: float, scale: float) -> dict:
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario
    with tempfile.TemporaryDirectory() as d:
        sc = load_scenario(_scenario(duration_ms, Path(d), scale))
        s = run_scenario(sc, overwrite=True, progress_stream=None)
        import h5py
        with h5py.File(s.output) as f:
            n_e = int(f["spikes/v1.E/timestamps"].shape[0])
    compute = sum(s.compute_s.values())
    return {"wall_s": s.wall_s, "build_s": s.build_s, "engine_compute_s": dict(s.compute_s),
            "overhead_fraction": (s.wall_s - compute) / s.wall_s,
            "rate_E_hz": n_e / _sizes(scale)[0] / (duration_ms / 1000.0)}


def _brunel(nest, scale: float):
    """The NEST network of scenarios/hybrid_nest.toml, in plain PyNEST."""
    neuron = {"tau_m": 20.0, "C_m": 1.0, "E_L": 0.0, "V_th": 20.0, "V_reset": 10.0, "t_ref": 2.0}
    n_e, n_i = _sizes(scale)
    E = nest.Create("iaf_psc_delta", n_e, params=neuron)
    I = nest.Create("iaf_psc_delta", n_i, params=neuron)
    for p in (E, I):
        p.V_m = nest.random.uniform(min=0.0, max=20.0)
    bg = nest.Create("poisson_generator", params={"rate": 4000.0})
    conn_e = {"rule": "fixed_indegree", "indegree": 200, "allow_autapses": False}
    conn_i = {"rule": "fixed_indegree", "indegree": 50, "allow_autapses": False}
    for tgt in (E, I):
        nest.Connect(E, tgt, conn_e, {"weight": 0.5, "delay": 1.5})
        nest.Connect(I, tgt, conn_i, {"weight": -2.5, "delay": 1.5})
        nest.Connect(bg, tgt, syn_spec={"weight": 0.5, "delay": 1.5})
    drive = nest.Create("inhomogeneous_poisson_generator")
    nest.Connect(drive, E, syn_spec={"weight": 0.5, "delay": 1.5})
    rec = nest.Create("spike_recorder")
    nest.Connect(E, rec)
    return E, drive, rec


def run_glue(duration_ms: float, scale: float) -> dict:
    import logging

    import numpy as np
    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest
    from tvb.datatypes.connectivity import Connectivity
    from tvb.simulator import coupling, integrators, models, monitors, simulator
    logging.getLogger("tvb").setLevel(logging.ERROR)

    tic0 = time.perf_counter()
    conn = Connectivity.from_file("connectivity_76.zip")
    conn.speed = np.array([SPEED])
    conn.configure()
    v1 = list(conn.region_labels).index("rV1")
    model = models.JansenRit()
    sim = simulator.Simulator(model=model, connectivity=conn, coupling=coupling.SigmoidalJansenRit(),
                              integrator=integrators.HeunDeterministic(dt=DT_MS),
                              monitors=(monitors.Raw(),), simulation_length=duration_ms)
    sim.configure()
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": DT_MS, "local_num_threads": 1, "rng_seed": 1})
    E, drive, rec = _brunel(nest, scale)
    n_e = len(E)
    steps = np.rint(conn.tract_lengths[v1] / SPEED / DT_MS).astype(int)    # d_{v1,j}
    w = conn.weights[v1].copy()
    w[v1] = 0.0
    src = np.flatnonzero(w)
    L = int(steps.max()) + int(SYNC_MS / DT_MS) + 1
    e0, v0, r = float(model.nu_max[0]), float(model.v0[0]), float(model.r[0])
    sigm = lambda v: 2 * e0 / (1 + np.exp(r * (v0 - v)))               # noqa: E731
    ring = np.full((L, conn.number_of_regions), sigm(0.0))               # S(y1 − y2), circular
    pos = 0
    n_sync = int(round(duration_ms / SYNC_MS))
    S = int(round(SYNC_MS / DT_MS))
    rate_filtered, seen = 0.0, 0
    nest.Prepare()
    build_s = time.perf_counter() - tic0
    tic = time.perf_counter()
    for k in range(n_sync):
        t0 = k * SYNC_MS
        # TVB → NEST: rV1's delayed input at each 0.1 ms step of the window, from the ring
        # step n of the window (t = t0 + n·dt) reads sample n − d of the ring; the ring's
        # write position `pos` is the next sample (t0 / dt); the initial history is constant
        idx = (pos + np.arange(S)[:, None] - steps[src][None, :]) % L
        s_in = (ring[idx, src] * w[src]).sum(axis=1)
        drive.set(rate_times=(t0 + DT_MS * np.arange(1, S + 1)).round(6).tolist(),
                  rate_values=np.maximum(0.0, OFFSET + GAIN * s_in).tolist())
        nest.Run(SYNC_MS)
        ev = rec.get("events")
        t = np.asarray(ev["times"])[seen:]
        seen += t.size
        # NEST → TVB: pooled E rate through the exponential kernel, into rV1's state
        counts = np.histogram(t, bins=S, range=(t0, t0 + SYNC_MS))[0]
        for c in counts:
            rate_filtered += (c / n_e / (DT_MS / 1000.0) - rate_filtered) * DT_MS / TAU_MS
        target = np.clip(MAP_GAIN * rate_filtered, 1e-9, 2 * e0 * (1 - 1e-9))
        sim.current_state[1, v1] = v0 - np.log(2 * e0 / target - 1) / r   # y1 − y2 with y2 = 0
        sim.current_state[2, v1] = 0.0
        for (_, y), in sim(simulation_length=SYNC_MS):
            ring[pos % L] = sigm(y[1, :, 0] - y[2, :, 0])
            pos += 1
    wall = time.perf_counter() - tic
    nest.Cleanup()
    return {"wall_s": wall, "build_s": build_s, "rate_E_hz": seen / n_e / (duration_ms / 1000.0)}


# ---------------------------------------------------------------------------- driver

def _worker(kind: str, duration_ms: float, scale: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", PYNEST_QUIET="1")
    r = subprocess.run([sys.executable, __file__, "--worker", kind, "--duration-ms",
                        str(duration_ms), "--scale", str(scale)], env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"{kind} worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-ms", type=float, default=500.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--scale", type=float, default=1.0, help="size of the NEST network relative "
                   "to the scenario's 2500 neurons (in-degrees kept; >= 0.125)")
    p.add_argument("--json", help="write the results as JSON to this path")
    p.add_argument("--worker", choices=("cosim", "glue"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        out = (run_cosim if args.worker == "cosim" else run_glue)(args.duration_ms, args.scale)
        print(json.dumps(out))
        return 0
    rounds = {"cosim": [], "glue": []}
    for _ in range(args.repeats):
        for kind in ("cosim", "glue"):                       # interleaved rounds
            rounds[kind].append(_worker(kind, args.duration_ms, args.scale))
    best = {k: min(v, key=lambda x: x["wall_s"]) for k, v in rounds.items()}
    ratio = best["glue"]["wall_s"] / best["cosim"]["wall_s"]
    res = {"duration_ms": args.duration_ms, "sync_interval_ms": SYNC_MS,
           "nest_neurons": sum(_sizes(args.scale)),
           "cosim_wall_s": best["cosim"]["wall_s"], "glue_wall_s": best["glue"]["wall_s"],
           "ratio_glue_over_cosim": ratio,
           "cosim_exchange_overhead_fraction": best["cosim"]["overhead_fraction"],
           "cosim_engine_compute_s": best["cosim"]["engine_compute_s"],
           "rate_E_hz": {k: best[k]["rate_E_hz"] for k in best},
           "targets": {"ratio_at_least": 2.0, "overhead_below": 0.05},
           "rounds": rounds}
    print(f"{args.duration_ms:g} ms simulated, {res['nest_neurons']} NEST neurons, 5 ms exchange, "
          f"one process each (min of {args.repeats} rounds)")
    print(f"  cosim : {res['cosim_wall_s']:.2f} s  (engines: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in res["cosim_engine_compute_s"].items())
          + f"; exchange overhead {100 * res['cosim_exchange_overhead_fraction']:.2f} %)")
    print(f"  glue  : {res['glue_wall_s']:.2f} s")
    print(f"  glue ÷ cosim = {ratio:.2f}  (target ≥ 2);  E rate cosim "
          f"{res['rate_E_hz']['cosim']:.1f} Hz, glue {res['rate_E_hz']['glue']:.1f} Hz")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
