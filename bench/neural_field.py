"""Neural-field benchmark: the cortical surface in cosim vs The Virtual Brain, side by side,
and the periodic sheet's cost versus grid size.

**Cortical surface (cosim vs TVB).**  tvb-data's cortex_16384 (16 384 vertices, region
mapping to connectivity_76, its local_connectivity_16384 matrix with coupling strength
κ = 0.02), a Generic2dOscillator at every vertex, Linear long-range coupling (a = G = 0.05)
with delays at 3 mm/ms, deterministic Heun, dt = 0.1 ms, the same random initial state
(cosim's worker draws it and hands it to TVB).  Both record the region averages every 1 ms
(TVB: ``SpatialAverage(period=1)`` over the region mapping; cosim: the ``regions``
dataset).  Timed: TVB's ``Simulator.run()`` (configured beforehand); cosim's
``engine.advance`` over 1 ms windows, as the runtime calls it (no HDF5 output).

**Sheet.**  cosim's neural-field sheet on a 2-D torus of n × n points (DoG kernel, logistic
firing, delay 1 ms so that Heun needs one FFT convolution per step), for n = 64 … 512:
steps per second and the cost per step divided by N log₂ N (flat when the FFT dominates).

Every simulator runs in a worker process of its own, one thread, interleaved rounds,
minimum over ``--repeats`` (see ``_common``).  The ratio is TVB ÷ cosim of wall seconds per
simulated second; target ≥ 10.  ``--cosim-threads 1 2`` (the default) also times cosim's
surface on 2 numba threads (``threads = 2``: the same bits; worker ``cosim-2threads``, numba's
OpenMP layer as :func:`cosim.numba_threads.choose` picks it, ``OMP_NUM_THREADS=2``) against
the same one-thread TVB: ``ratios_cosim_threads`` in the JSON; ``ratios.tvb`` stays the
one-thread-each ratio.

Usage::

    python bench/neural_field.py [--duration-ms 1000] [--repeats 3] [--grids 64 128 256 512]
                                 [--clock wall|cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TARGETS = {"tvb": 10.0}
SURFACE = {"dt_ms": 0.1, "G": 0.05, "kappa": 0.02, "speed_mm_per_ms": 3.0,
           "record_period_ms": 1.0, "sync_interval_ms": 1.0, "seed": 3}
WARMUP_MS = 2.0


def _clock(config):
    """The timer of the timed runs: wall (``time.perf_counter``) or, with ``--clock cpu``,
    the worker's CPU time (``time.process_time``: all its threads; on a loaded machine it
    leaves out the time the cores give to other processes)."""
    return time.process_time if config.get("clock") == "cpu" else time.perf_counter


class CosimSurfaceRunner:
    def __init__(self, config):
        self.c = config

    def versions(self):
        import cosim
        from importlib.metadata import version
        return {"cosim": cosim.__version__, "numba": version("numba")}

    def _engine(self):
        from cosim import numba_threads
        from cosim.connectome import load_connectome
        from cosim.engines.neural_surface import NeuralSurfaceEngine
        c = self.c
        numba_threads.choose({"neural_field"})      # as the runtime does for this process
        eng = NeuralSurfaceEngine("cortex", "generic_2d_oscillator",
                                  load_connectome("tvb:connectivity_76"), coupling="linear",
                                  coupling_parameters={"G": c["G"]},
                                  local_coupling_strength=c["kappa"], random_initial=True,
                                  seed=c["seed"], dt_ms=c["dt_ms"],
                                  speed_mm_per_ms=c["speed_mm_per_ms"],
                                  record_period_ms=c["record_period_ms"],
                                  threads=c.get("threads", 1))
        eng.build()
        return eng

    def _advance(self, eng, duration):
        import numpy as np
        sync = self.c["sync_interval_ms"]
        clock = _clock(self.c)
        tic = clock()
        recs = [eng.advance(k * sync, (k + 1) * sync).records["regions"]
                for k in range(round(duration / sync))]
        return clock() - tic, np.concatenate(recs)

    def warmup(self):
        self._advance(self._engine(), WARMUP_MS)

    def build(self):
        self.eng = self._engine()
        self.s0 = self.eng.state()
        return {"initial_state": self.eng.initial_vertex_state().tolist(),
                "n_vertices": self.eng.n_vertices, "floor_us_per_step": self.floor()}

    def floor(self, reps=50):
        """µs per step of the split parts' per-step path: the two derivative passes of a
        Heun step (fixed-width local product + region input + model in one scalar pass per
        vertex), best of ``reps``.  The one-part window of a flat (arithmetic-only) dfun
        runs the model vectorised (``cosim.fields.surface._t_window_flat``) and may be
        faster than this, updates and region sums included; for a fused window it is a
        bound."""
        e = self.eng
        lp, lm, lin = e._local
        e._local_q(e._x, lp, lm, e._q)
        best = float("inf")
        for _ in range(reps):
            tic = time.perf_counter()
            for k in (e._k1, e._k2):
                e._derivs(e._x, e._q, e._cr, e._rk, e._L, lin, 0,
                          e.n_vertices, e._p, e._c, k)
            best = min(best, time.perf_counter() - tic)
        return best * 1e6

    def run(self):
        import numpy as np
        self.eng.restore(self.s0)
        wall, rec = self._advance(self.eng, self.c["duration_ms"])
        t = self.c["record_period_ms"] * np.arange(1, rec.shape[0] + 1)
        return wall, {"t_ms": t, "y": rec}


class TvbSurfaceRunner:
    def __init__(self, config):
        try:
            import tvb.simulator  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"tvb-library is not installed ({exc})") from None
        import logging
        import warnings
        logging.getLogger("tvb").setLevel(logging.ERROR)
        warnings.simplefilter("ignore")
        self.c = config

    def versions(self):
        from importlib.metadata import version
        return {"tvb-library": version("tvb-library"), "tvb-data": version("tvb-data")}

    def _sim(self, duration):
        import numpy as np
        from tvb.simulator.lab import (connectivity, cortex, coupling, integrators, models,
                                       monitors, simulator)
        c = self.c
        tc = connectivity.Connectivity.from_file("connectivity_76.zip")
        tc.speed = np.array([c["speed_mm_per_ms"]])
        ctx = cortex.Cortex.from_file(source_file="cortex_16384.zip",
                                      region_mapping_file="regionMapping_16k_76.txt",
                                      local_connectivity_file="local_connectivity_16384.mat")
        ctx.region_mapping_data.connectivity = tc
        ctx.coupling_strength = np.array([c["kappa"]])

        def make(ic=None):
            return simulator.Simulator(
                model=models.Generic2dOscillator(variables_of_interest=("V", "W")),
                connectivity=tc, coupling=coupling.Linear(a=np.array([c["G"]])),
                integrator=integrators.HeunDeterministic(dt=c["dt_ms"]),
                monitors=(monitors.SpatialAverage(period=c["record_period_ms"]),),
                surface=ctx, simulation_length=duration, initial_conditions=ic).configure()
        horizon = make().connectivity.horizon
        x0 = np.asarray(c["initial_state"])                      # (vertex, state)
        sim = make(np.repeat(x0.T[None, :, :, None], horizon, axis=0))
        # TVB counts the given history's steps (current_step = horizon − 1), which shifts
        # the monitor's sampling phase; the history is constant, so step 0 is the same state
        sim.current_step = 0
        return sim

    def warmup(self):
        self._sim(WARMUP_MS).run()

    def build(self):
        self.sim = self._sim(self.c["duration_ms"])
        return {"floor_us_per_step": self.floor()}

    def floor(self, reps=50):
        """µs per step of TVB's sparse products alone: a Heun step's two local-coupling
        products (the prepared ``Cortex`` matrix times the ``(vertex, 1)`` state column,
        as the model's dfun computes it), best of ``reps``."""
        import numpy as np
        lc = self.sim.surface.prepare_local_coupling(self.sim.number_of_nodes)
        v = np.ascontiguousarray(self.sim.current_state[0])
        best = float("inf")
        for _ in range(reps):
            tic = time.perf_counter()
            lc @ v
            lc @ v
            best = min(best, time.perf_counter() - tic)
        return best * 1e6

    def run(self):
        import numpy as np
        sim = self.sim if self.sim is not None else self._sim(self.c["duration_ms"])
        self.sim = None
        clock = _clock(self.c)
        tic = clock()
        ((t, y),) = sim.run()
        wall = clock() - tic
        t = self.c["record_period_ms"] * np.arange(1, len(t) + 1)
        return wall, {"t_ms": t, "y": y[:, :, :, 0]}


class SheetRunner:
    def __init__(self, config):
        self.c = config

    def versions(self):
        return {}

    def _sheet(self):
        import numpy as np
        from cosim.fields.firing import Firing
        from cosim.fields.kernels import DifferenceOfGaussians
        from cosim.fields.sheet import Sheet
        n = self.c["n"]
        s = Sheet((n, n), 0.5, 10.0, DifferenceOfGaussians(3.0, 1.0, 2.0, 2.0),
                  Firing("logistic", 3.2, 0.0), 10, 0.1, "heun", -0.5)
        s.build(1e-4 * np.random.default_rng(0).standard_normal(n * n))
        return s

    def warmup(self):
        self._sheet().run(5)

    def build(self):
        self.sheet = self._sheet()
        return {"points": self.c["n"] ** 2}

    def run(self):
        clock = _clock(self.c)
        tic = clock()
        self.sheet.run(self.c["steps"])
        return clock() - tic, {}


def factories():
    f = {"cosim": CosimSurfaceRunner, "tvb": TvbSurfaceRunner}
    f.update({f"cosim-{t}threads": CosimSurfaceRunner for t in range(2, 65)})
    f.update({f"sheet-{n}": SheetRunner for n in (16, 32, 64, 128, 256, 512, 1024)})
    return f


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration-ms", type=float, default=1000.0,
                   help="simulated time of the surface runs (default 1000)")
    p.add_argument("--grids", type=int, nargs="+", default=[64, 128, 256, 512],
                   help="sheet sizes n (n × n points; default 64 128 256 512)")
    p.add_argument("--sheet-steps", type=int, default=400,
                   help="steps per timed sheet run at 64² (scaled down as 1/N above)")
    p.add_argument("--cosim-threads", type=int, nargs="+", default=[1, 2],
                   help="numba threads of cosim's surface workers (default 1 2; TVB: 1)")
    p.add_argument("--agree-rtol", type=float, default=1e-4,
                   help="largest allowed |cosim − TVB| / range of a region average")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time the runs by wall clock (default) or by the worker's CPU time "
                        "(process_time; a loaded machine's share of the cores left out)")
    C.add_common_args(p, repeats=3)
    args = p.parse_args(argv)
    if args.worker:
        C.worker_main(factories(), args.worker)
        return 0
    dur = args.duration_ms
    print(f"neural-field benchmark: cortical surface 16384 vertices, {dur:g} ms, dt 0.1 ms; "
          f"sheet {args.grids}; TVB 1 thread, cosim {args.cosim_threads} threads, sheet 1; "
          f"min over {args.repeats} rounds, {args.clock} clock", flush=True)
    surf = dict(SURFACE, duration_ms=dur, clock=args.clock)

    def initial_from_cosim(results, out_dir):
        r = results.get("cosim")
        if r is None or r["status"] != "ok":
            raise C.PeerUnavailable("cosim's surface did not set up")
        return {"initial_state": r["setup"]["info"]["initial_state"]}

    threaded = {f"cosim-{t}threads": t for t in args.cosim_threads if t > 1}
    plan = [{"name": "cosim", "config": surf},
            {"name": "tvb", "config": surf, "before_setup": initial_from_cosim}]
    # numba's OpenMP layer (cosim.numba_threads.choose) with t threads and OpenMP's default
    # wait policy (spin a little, then sleep): with OMP_WAIT_POLICY=passive a step was 2.3×
    # slower, with the workqueue layer 3× (bench/README.md)
    plan += [{"name": n, "config": dict(surf, threads=t),
              "env": {"NUMBA_NUM_THREADS": str(t), "OMP_NUM_THREADS": str(t)}}
             for n, t in threaded.items()]
    for n in args.grids:
        steps = max(5, round(args.sheet_steps * 64 ** 2 / n ** 2))
        plan.append({"name": f"sheet-{n}", "config": {"n": n, "steps": steps,
                                                      "clock": args.clock}})
    if args.only:
        plan = [x for x in plan if x["name"] in args.only]
    results = C.run_interleaved(__file__, plan, args.repeats, verbose=args.verbose,
                                cold_jit=args.cold_jit,
                                log=lambda s: print(s, file=sys.stderr, flush=True))
    sps, skipped, versions, sheet = {}, {}, {}, {}
    for item in plan:
        name = item["name"]
        r = results[name]
        if r["status"] != "ok":
            skipped[name] = r["reason"]
            continue
        versions.update(r["setup"]["versions"])
        if name.startswith("sheet-"):
            n, steps = item["config"]["n"], item["config"]["steps"]
            per_step = min(r["walls_s"]) / steps
            N = n * n
            sheet[name] = {"points": N, "steps_per_second": 1.0 / per_step,
                           "ns_per_point_log2N": per_step / (N * math.log2(N)) * 1e9}
        else:
            sps[name] = min(r["walls_s"]) / (dur / 1000.0)
    ratios = {"tvb": C.ratio(sps.get("tvb"), sps.get("cosim"))}
    ratios_threads = {n: C.ratio(sps.get("tvb"), sps.get(n)) for n in threaded if n in sps}
    # per-step floors (see the runners' floor()): TVB's sparse products, cosim's split-part
    # derivative passes (a bound on a fused window, not on the flat one)
    floors = {n: results[n]["setup"]["info"].get("floor_us_per_step")
              for n in ("cosim", "tvb") if n in sps}
    steps_per_s = 1000.0 / SURFACE["dt_ms"]
    if "tvb" in sps and floors.get("cosim"):
        floors["tvb_step_us"] = sps["tvb"] / steps_per_s * 1e6
        floors["cosim_step_us"] = sps["cosim"] / steps_per_s * 1e6
        floors["bound_tvb_step_over_cosim_floor"] = floors["tvb_step_us"] / floors["cosim"]
    agreement = None
    if "tvb" in sps and "cosim" in sps:
        import numpy as np
        a, b = results["cosim"]["arrays"]["y"], results["tvb"]["arrays"]["y"]
        m = min(len(a), len(b))
        span = np.ptp(b[:m], axis=(0, 2))
        rel = float((np.abs(a[:m] - b[:m]) / np.where(span > 0, span, 1)[None, :, None]).max())
        agreement = {"n_samples": m, "max_rel_diff": rel, "agree": rel <= args.agree_rtol}
        # the threaded kernel promises the one-thread bits
        agreement["threads_bitwise"] = {
            n: bool(np.array_equal(results[n]["arrays"]["y"], a)) for n in threaded if n in sps}
        agreement["agree"] = agreement["agree"] and all(agreement["threads_bitwise"].values())
    print()
    threads = {"cosim": 1, "tvb": 1, **threaded}
    C.print_table(["simulator", "threads", f"{args.clock} s / sim s", "TVB÷cosim"],
                  [[n, threads[n], sps.get(n),
                    ratios["tvb"] if n == "cosim" else ratios_threads.get(n)]
                   for n in ("cosim", *threaded, "tvb") if n in sps or n in skipped])
    if sheet:
        print()
        C.print_table(["sheet", "points", "steps / s", "ns / (N log2 N)"],
                      [[k, v["points"], v["steps_per_second"], v["ns_per_point_log2N"]]
                       for k, v in sheet.items()])
    if "bound_tvb_step_over_cosim_floor" in floors:
        print(f"\nper step: cosim {floors['cosim_step_us']:.0f} µs (its split parts' two "
              f"derivative passes {floors['cosim']:.0f} µs), TVB {floors['tvb_step_us']:.0f} µs (its two "
              f"sparse products alone {floors['tvb']:.0f} µs); TVB step ÷ those passes "
              f"{floors['bound_tvb_step_over_cosim_floor']:.1f}×")
    for name, reason in skipped.items():
        print(f"  {name}: skipped — {reason}")
    if agreement:
        print(f"\nagreement cosim-tvb: max |Δ|/range {agreement['max_rel_diff']:.2e} over "
              f"{agreement['n_samples']} samples → {'AGREE' if agreement['agree'] else 'DISAGREE'}")
        for n, same in agreement["threads_bitwise"].items():
            print(f"{n} vs cosim (1 thread): {'bitwise equal' if same else 'DIFFERENT'}")
    print("one thread each:")
    targets = C.check_targets(ratios, TARGETS, at_least={"tvb"})
    # cosim on every thread it was given (a surface's `threads`), TVB on its one: what a
    # user of this machine waits for either simulator
    targets_threads = {}
    for n, r in ratios_threads.items():
        print(f"{n} (cosim on {threaded[n]} threads, TVB on 1):")
        targets_threads[n] = C.check_targets({"tvb": r}, TARGETS, at_least={"tvb"})["tvb"]
    if args.json:
        C.write_json(args.json, {
            "benchmark": "neural_field", "ratios": ratios, "ratios_cosim_threads": ratios_threads,
            "threads": threads, "seconds_per_sim_second": sps, "floors_us_per_step": floors,
            "sheet": sheet, "agreement": agreement, "targets_met": targets,
            "targets_met_cosim_threads": targets_threads,
            "skipped": skipped, "duration_ms": dur, "repeats": args.repeats,
            "clock": args.clock,
            "surface": SURFACE, "versions": versions, "machine": C.machine_info(),
            "wall_seconds_all_rounds": {n: results[n]["walls_s"] for n in results
                                        if results[n]["status"] == "ok"}})
    return 0 if agreement is None or agreement["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
