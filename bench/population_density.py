"""cosim's population-density engine vs the NEST networks it reproduces (10 000 and 100 000
LIF neurons): wall time per simulated second, side by side, and the error of the rate.

The model (as ``tests/test_population_density_nest.py``): unconnected LIF neurons
(τ = 20 ms, θ = 20 mV, V_r = 10 mV, τ_ref = 2 ms, I_e = −0.45 pA) with Poisson input of
J = 0.2 mV; the input rate steps from 6.25 to 7.8125 spikes/ms at 1/4 of the run
(μ: 16 → 22.25 mV, σ: 2.24 → 2.5 mV), so the rate goes through a transient of ≈ 10× its
baseline.  Everyone starts in the same stationary state (NEST's V drawn from the density).

* **density**: one population, dv = ``--dv`` (0.1 mV), dt 0.1 ms, one backward-Euler step
  per dt (the settings of an engine on the bus of a hybrid scenario); min over repeats.
* **nest_N**: NEST 3.10, ``iaf_psc_delta`` + one ``poisson_generator`` (independent trains
  per neuron), resolution 0.1 ms, one thread — the fastest NEST form of the network, the
  peer of the speed ratios ``nest_10000`` and ``nest_100000`` (NEST ÷ density).
* **nest_ps_100000** (unless ``--no-precise``): the same with ``iaf_psc_delta_ps`` +
  ``poisson_generator_ps`` (exact integration, spikes at exact times) — the network the
  density approximates (the grid version's one jump per step biases its rate by several %,
  see the test's docstring); the reference of the rate error.

Rate error: relative RMS over 1 ms bins, ``‖r_density − r_ref‖ / ‖r_ref‖``, against the
largest precise network; reported with that network's own sampling error (the same norm of
``√(N r b)/(N b)``, Poisson bound) and the density's discretisation error (against a density
at dv/4, 20 substeps).  "Equal accuracy": the density's discretisation error is below the
100 000-neuron network's sampling error.  Target: ``nest_100000`` ≥ 100.

    python bench/population_density.py [--duration-ms 200] [--repeats 3] [--scale 1]
                                       [--no-precise] [--json out.json]

``--scale s`` multiplies both network sizes (the JSON keys keep their names; the sizes are
stored).  Each simulator runs in a worker process of its own, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DT, BIN = 0.1, 1.0
J, K1, K2, MU0 = 0.2, 6.25, 7.8125, -9.0
LIF = {"tau_m": 20.0, "C_m": 1.0, "E_L": 0.0, "V_th": 20.0, "V_reset": 10.0, "t_ref": 2.0}
SIZES = (10_000, 100_000)
TARGET = 100.0


def _engine(dv, substeps):
    from cosim.engines.population_density import Input, Population, PopulationDensityEngine

    pop = Population("E", I_e=MU0 / 20.0, v_min=-20.0)
    return PopulationDensityEngine("pd", populations=[pop], inputs=[
        Input("bg", "E", J, 1.0, rate_hz=1000 * K1, gain=1000.0)], dt_ms=DT, substeps=substeps,
        dv_mv=dv)


def _start(dv, substeps):
    """A fresh engine in the stationary state of the first input, and that state (the
    stationary density of the scheme does not depend on the time step: relaxed with one)."""
    st = _engine(dv, 1)
    st.build()
    st.advance(0.0, 400.0, {})
    p = st.density("E").copy()
    v, h = st.grid("E")
    ir = int(st._grid.reset_cell[0])
    missing = 1.0 - h * p.sum()
    q = p.copy()
    q[ir - 1] += missing / (2 * h)
    q[ir] += missing / (2 * h)
    eng = _engine(dv, substeps)
    eng.build()
    eng.set_density("E", q)
    return eng, p, v, h


def _drive(T):
    d = np.zeros((int(round(T / DT)), 1))
    d[int(round(T / 4 / DT)) + 1:, 0] = K2 - K1
    return d


def run_density(T, dv, substeps, repeats, warm=True):
    if warm:
        eng, *_ = _start(dv, substeps)           # JIT and warm-up (kernels cached)
        eng.advance(0.0, T, {"drive": _drive(T)})
    walls, rate = [], None
    for _ in range(repeats):
        eng, *_ = _start(dv, substeps)
        tic = time.perf_counter()
        out = eng.advance(0.0, T, {"drive": _drive(T)})
        walls.append(time.perf_counter() - tic)
        rate = out.records["timeseries"][:, 0, 0]
    rb = rate.reshape(-1, int(round(BIN / DT))).mean(axis=1)
    return {"wall_s": min(walls), "walls_s": walls, "rate_hz": rb.tolist(),
            "cells": int(eng.n_cells[0])}


def run_nest(T, n, precise, seed=5):
    os.environ.setdefault("PYNEST_QUIET", "1")
    from cosim.engines.nest import import_nest

    _, p, v, h = _start(0.05, 1)
    rng = np.random.default_rng(seed)
    cells = rng.choice(p.size, size=n, p=p / p.sum())
    V = v[cells] + (rng.random(n) - 0.5) * h
    nest = import_nest()
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": DT, "rng_seed": seed, "local_num_threads": 1})
    tic = time.perf_counter()
    model, gen = ("iaf_psc_delta_ps", "poisson_generator_ps") if precise else \
        ("iaf_psc_delta", "poisson_generator")
    pop = nest.Create(model, n, dict(LIF, I_e=MU0 / 20.0))
    pop.V_m = V.tolist()
    T0 = T / 4
    for params in ({"rate": 1000 * K1, "stop": T0}, {"rate": 1000 * K2, "start": T0}):
        nest.Connect(nest.Create(gen, params=params), pop, syn_spec={"weight": J, "delay": DT})
    rec = nest.Create("spike_recorder")
    nest.Connect(pop, rec)
    build = time.perf_counter() - tic
    tic = time.perf_counter()
    nest.Simulate(T)
    wall = time.perf_counter() - tic
    counts = np.histogram(rec.events["times"], bins=np.arange(0.0, T + BIN / 2, BIN))[0]
    return {"wall_s": wall, "build_s": build, "rate_hz": (counts / (n * BIN / 1000)).tolist(),
            "neurons": n, "version": nest.__version__}


def _worker(kind, args, n=None):
    cmd = [sys.executable, __file__, "--worker", kind, "--duration-ms", str(args.duration_ms),
           "--repeats", str(args.repeats), "--dv", str(args.dv)]
    if n is not None:
        cmd += ["--neurons", str(n)]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep) if p]))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=7200)
    if r.returncode != 0:
        return {"skipped": f"{kind} worker failed: {r.stderr.strip().splitlines()[-1:]}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _rel_rms(a, ref):
    a, ref = np.asarray(a), np.asarray(ref)
    return float(np.sqrt(np.mean((a - ref) ** 2)) / np.sqrt(np.mean(ref ** 2)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-ms", type=float, default=200.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--dv", type=float, default=0.1, help="grid spacing of the density (mV)")
    p.add_argument("--no-precise", action="store_true", help="skip the precise-timing networks")
    p.add_argument("--json", help="write the results as JSON to this path")
    p.add_argument("--worker", choices=("density", "reference", "nest", "nest_ps"),
                   help=argparse.SUPPRESS)
    p.add_argument("--neurons", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    T = args.duration_ms
    if args.worker:
        if args.worker == "density":
            out = run_density(T, args.dv, 1, args.repeats)
        elif args.worker == "reference":
            out = run_density(T, args.dv / 4, 20, 1, warm=False)
        else:
            out = run_nest(T, args.neurons, args.worker == "nest_ps")
        print(json.dumps(out))
        return 0

    sizes = [max(10, int(round(s * args.scale))) for s in SIZES]
    dens = _worker("density", args)
    ref = _worker("reference", args)
    nest, ps = {}, {}
    for key, n in zip(("nest_10000", "nest_100000"), sizes):
        nest[key] = _worker("nest", args, n)
        if not args.no_precise and key == "nest_100000":      # the rate error's reference
            ps[key] = _worker("nest_ps", args, n)
    per_s = 1000.0 / T
    ratios = {k: (v["wall_s"] / dens["wall_s"] if "wall_s" in v else None) for k, v in nest.items()}
    ratios_ps = {k: (v["wall_s"] / dens["wall_s"] if "wall_s" in v else None) for k, v in ps.items()}
    exact = ps.get("nest_100000", {}) if ps else {}
    if "rate_hz" not in exact:
        exact = nest.get("nest_100000", {})
    rate_error = disc = sampling = None
    if "rate_hz" in exact:
        r_ref = np.asarray(exact["rate_hz"])
        rate_error = _rel_rms(dens["rate_hz"], r_ref)
        d = np.asarray(dens["rate_hz"])
        n_ref = exact["neurons"]
        sampling = float(np.sqrt(np.mean(d * 1000 / (n_ref * BIN))) / np.sqrt(np.mean(d ** 2)))
    if "rate_hz" in ref:
        disc = _rel_rms(dens["rate_hz"], ref["rate_hz"])
    grid_bias = {k: _rel_rms(v["rate_hz"], ref["rate_hz"]) for k, v in nest.items()
                 if "rate_hz" in v and "rate_hz" in ref}
    res = {"ratios": ratios, "rate_error": rate_error,
           "ratios_precise": ratios_ps,
           "seconds_per_sim_second": {"density": dens["wall_s"] * per_s,
                                      **{k: v.get("wall_s", float("nan")) * per_s for k, v in nest.items()},
                                      **{k.replace("nest", "nest_ps"): v.get("wall_s", float("nan")) * per_s
                                         for k, v in ps.items()}},
           "density_discretisation_error": disc, "reference_sampling_error": sampling,
           "rate_error_reference": f"nest_ps {exact.get('neurons')}" if ps else
                                   f"nest {exact.get('neurons')}",
           "nest_grid_error_vs_converged_density": grid_bias,
           "equal_accuracy": (disc is not None and sampling is not None and disc <= sampling),
           "targets": {"nest_100000_at_least": TARGET},
           "met": {"nest_100000": bool(ratios.get("nest_100000") and ratios["nest_100000"] >= TARGET)},
           "neurons": dict(zip(("nest_10000", "nest_100000"), sizes)), "duration_ms": T,
           "density_cells": dens.get("cells"), "dv_mv": args.dv, "dt_ms": DT,
           "skipped": {k: v["skipped"] for k, v in {**nest, **{"ps_" + k: v for k, v in ps.items()}}.items()
                       if "skipped" in v}}
    print(f"{T:g} ms simulated; density: {dens['cells']} cells, dv {args.dv:g} mV, dt {DT:g} ms")
    print(f"  {'simulator':<22}{'s per sim s':>14}{'NEST / density':>16}")
    print(f"  {'density':<22}{dens['wall_s'] * per_s:>14.4f}{'':>16}")
    for k, n in zip(nest, sizes):
        for label, table, rt in (("iaf_psc_delta", nest, ratios), ("iaf_psc_delta_ps", ps, ratios_ps)):
            v = table.get(k)
            if v and "wall_s" in v:
                print(f"  {label + ' ' + str(n):<22}{v['wall_s'] * per_s:>14.3f}{rt[k]:>16.1f}")
    print(f"  rate error vs {res['rate_error_reference']}: {rate_error}; its sampling error "
          f"{sampling}; density discretisation error {disc}; NEST grid error {grid_bias}")
    print(f"  target NEST(100 000) / density >= {TARGET:g}: "
          f"{'met' if res['met']['nest_100000'] else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
