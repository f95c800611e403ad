"""Per-window cost of the bus exchange in one process: the distributed bus against the
central bus it replaced, side by side.

For a scenario (default: ``scenarios/default.toml``, Jansen–Rit on 75 regions plus the
spiking region rV1) and a process layout (``--parts``: as ``mpiexec -n K`` would split the
engines, but every part in this process, through the in-process transport), one sync
window of bus work is timed, with fixed synthetic exports (the engines do not run):

* ``distributed``: every part's :class:`cosim.exchange.PartLink` — input, send, the spiking
  region's counts → rate adapter, receive (what :func:`cosim.runtime.window_loop` does
  besides ``advance``);
* ``central``: the reference central bus :class:`cosim.bus.Bus` (one history of every
  region, what rank 0 did before) — every part's input, every part's exports into the
  history, the spiking region's counts summed and turned into its afferent.

Both are first checked to compute the same inputs, bit for bit (``inputs_agree``).

Rounds are interleaved (round r times A, then B) and the minimum over rounds is reported,
so load from other programs on a shared machine hits both alike.  Target: ≤ 50 µs per part
per window for the distributed bus.

    python bench/exchange_overhead.py [--parts 1 3 9] [--rounds 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_US_PER_PART = 50.0


def _setup(scenario_path: Path, world: int, seed: int = 0):
    from cosim.bus import Bus, BusPart
    from cosim.bus_node import RegionRate
    from cosim.coupling_layout import coupling_layout
    from cosim.engines.base import Export, Take
    from cosim.exchange import exchange_pattern, make_link
    from cosim.plan import make_plan
    from cosim.scenario import load_scenario
    from cosim.transport import InProcessTransport

    sc = load_scenario(scenario_path)
    layout = coupling_layout(sc)
    plan = make_plan(sc, world)
    pattern = exchange_pattern(sc, layout, plan)
    S, n_aff, L = layout.window_steps, layout.n_afferent, pattern.initial_length
    rng = np.random.default_rng(seed)
    routes = pattern.routes
    keys = sorted(routes)
    exports, init = {}, {}
    for key in keys:
        r = routes[key]
        if r.exports is Export.AFFERENT:
            exports[key] = {"afferent": rng.random((S, n_aff, r.regions.size))}
            init[key] = {"afferent": rng.random((L, n_aff, r.regions.size))}
        elif r.exports is Export.SPIKE_COUNTS:
            n_pops = len(layout.populations[key[0]])
            exports[key] = {"counts": rng.integers(0, 4, size=(S, n_pops))}
            init[key] = {}
        else:
            exports[key], init[key] = {}, {}

    # the distributed bus
    tr = InProcessTransport()
    links = [make_link(sc, layout, pattern, key) for key in keys]
    for key, link in zip(keys, links):
        link.send_initial(tr, init[key])
    for link in links:
        link.recv_initial(tr)

    def distributed(k, seen=None):
        for key, link in zip(keys, links):
            got = link.input(k)
            if seen is not None:
                seen.append({n: v.copy() for n, v in got.items()})
            link.send(k, exports[key], tr)
        for link in links:
            link.combine(k, tr)
        for link in links:
            link.receive(k, tr)

    # the central bus, as rank 0 ran it
    bus = Bus(sc.connectome, layout.steps, S, n_aff, layout.read_ahead)
    bparts = {key: bus.add_part(BusPart(key[0], key[1], routes[key].takes, routes[key].regions))
              for key in keys}
    bus.finalise()
    rates = {}
    for key in keys:
        if routes[key].rate:
            spec = layout.outputs_of[key[0]]
            n = sum(len(g) for g in layout.spike_populations(sc, key[0]).values())
            rates[key[0]] = (RegionRate(spec, n, layout.bus_dt_ms), routes[key].regions[:1])
    for key in keys:
        if "afferent" in init[key]:
            bus.put_initial(bparts[key].regions, init[key]["afferent"])
    ones = np.ones((1, n_aff, 1))

    def central(k, seen=None):
        for key in keys:
            got = bus.input(k, bparts[key])
            if seen is not None:
                seen.append(got)
        counts = {}
        for key in keys:
            ex = exports[key]
            if "afferent" in ex:
                bus.put_window(k, bparts[key].regions, ex["afferent"])
            elif "counts" in ex:
                c = counts.get(key[0])
                counts[key[0]] = ex["counts"] if c is None else c + ex["counts"]
        for name, c in counts.items():
            if name in rates:
                rate, regions = rates[name]
                bus.put_window(k, regions, rate.afferent(c).reshape(-1, 1, 1) * ones)

    described = [f"{g.name} × {g.n_parts}" for g in plan.groups]
    return distributed, central, len(keys), described, Take


def _time(f, k0: int, windows: int) -> float:
    t = time.perf_counter()
    for k in range(k0, k0 + windows):
        f(k)
    return (time.perf_counter() - t) / windows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(REPO / "scenarios" / "default.toml"))
    p.add_argument("--parts", type=int, nargs="+", default=[1, 3, 9],
                   help="process counts whose layout is timed (1: one part per engine)")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--windows", type=int, default=50, help="windows per timed round")
    p.add_argument("--json", help="write the results as JSON to this path")
    args = p.parse_args(argv)

    results = {}
    for world in args.parts:
        distributed, central, n_parts, described, _ = _setup(Path(args.scenario), world)
        # the two compute the same inputs (bitwise), which also warms them up (JIT)
        agree = True
        for k in range(4):
            a, b = [], []
            distributed(k, a)
            central(k, b)
            agree &= len(a) == len(b) and all(
                x.keys() == y.keys() and all(np.array_equal(x[n], y[n]) for n in x)
                for x, y in zip(a, b))
        best = {"distributed": np.inf, "central": np.inf}
        k = 4
        for _ in range(args.rounds):
            for name, f in (("distributed", distributed), ("central", central)):
                best[name] = min(best[name], _time(f, k, args.windows))
            k += args.windows
        d_us, c_us = best["distributed"] * 1e6, best["central"] * 1e6
        results[str(world)] = {
            "layout": described, "parts": n_parts,
            "distributed_us_per_window": d_us, "central_us_per_window": c_us,
            "distributed_us_per_part": d_us / n_parts, "central_us_per_part": c_us / n_parts,
            "ratio_central_over_distributed": c_us / d_us, "inputs_agree": bool(agree),
            "meets_target": d_us / n_parts <= TARGET_US_PER_PART,
        }
        print(f"np {world:>3} ({', '.join(described)}): distributed {d_us:7.1f} µs/window "
              f"({d_us / n_parts:5.1f} per part), central {c_us:7.1f} µs/window — "
              f"central / distributed {c_us / d_us:4.2f}; target ≤ {TARGET_US_PER_PART:g} µs "
              f"per part: {'met' if d_us / n_parts <= TARGET_US_PER_PART else 'NOT met'}"
              + ("" if agree else "; INPUTS DIFFER"))
    if args.json:
        Path(args.json).write_text(json.dumps({"scenario": args.scenario, "rounds": args.rounds,
                                               "windows": args.windows,
                                               "target_us_per_part": TARGET_US_PER_PART,
                                               "results": results}, indent=1))
    return 0 if all(r["inputs_agree"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
