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
* agreement: the two runs' rV1 spikes (cell and time) are identical.

Not measured here: the issue's hand-written TVB + NEURON glue (not written yet).

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
        print(json.dumps(worker(a.worker, a.duration_ms, Path(a.out))))
        return 0
    rounds: dict[str, list[dict]] = {k: [] for k in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix="cosim-bench-neuron-") as tmp:
        for name in SCENARIOS:                     # warm-up: numba cache, nrnivmodl cache
            run_worker(name, min(a.duration_ms, 50.0), Path(tmp))
        for _ in range(a.repeats):
            for name in SCENARIOS:
                rounds[name].append(run_worker(name, a.duration_ms, Path(tmp)))
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in rounds.items()}
    sim_s = a.duration_ms / 1000.0
    nrn, mc = best["neuron"], best["multicompartment"]
    overhead = (nrn["v1_compute_s"] - nrn["neuron_s"]) / nrn["v1_compute_s"]
    report = {
        "duration_ms": a.duration_ms, "repeats": a.repeats, "rounds": rounds,
        "wall_per_sim_s": {k: r["wall_s"] / sim_s for k, r in best.items()},
        "v1_compute_s": {k: r["v1_compute_s"] for k, r in best.items()},
        "neuron_s": nrn["neuron_s"], "coupling_overhead": overhead,
        "ratio_neuron_over_cosim_engine": nrn["wall_s"] / mc["wall_s"],
        "spikes_identical": nrn["spikes_sha"] == mc["spikes_sha"],
        "n_spikes": {k: r["n_spikes"] for k, r in best.items()},
        "targets": {"coupling_overhead < 0.05": overhead < 0.05},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"{'rV1 engine':<18}{'wall/sim s':>12}{'v1 compute s':>14}{'in NEURON s':>13}"
          f"{'spikes':>8}")
    for k, r in best.items():
        print(f"{k:<18}{r['wall_s'] / sim_s:>12.3f}{r['v1_compute_s']:>14.3f}"
              f"{r.get('neuron_s', float('nan')):>13.3f}{r['n_spikes']:>8}")
    print(f"coupling overhead of the NEURON engine: {100 * overhead:.2f} % of its compute "
          f"(target < 5 %)")
    print(f"NEURON engine wall / cosim engine wall: {report['ratio_neuron_over_cosim_engine']:.2f}")
    print(f"rV1 spikes identical: {report['spikes_identical']}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
