"""The NEST engine (``type = "nest"``) against independent sources:

* a plain NEST script of the same network, seed and threads, run in one ``Simulate``,
  gives exactly the engine's spike times (windows of ``Prepare/Run``, not a multiple of the
  min delay; input events set by the script itself with the documented grid rule);
* input events reach the cells by the written rule ``(⌊t/h⌋ + 1)·h + delay`` (parrot
  neurons replay them), and the trains are cosim's counter-based ones — the trains the
  multicompartment engine gets for the same lines;
* one process and ``mpiexec -n 3`` (Jansen–Rit + the NEST region) give identical files;
* a rate step in a neural-mass region reaches the NEST region exactly d_ij later;
* scenario errors: ``checkpoint_every``, unknown model / parameter / synapse / rule (one
  line naming the key, with NEST's close matches), a second NEST engine in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

nest = pytest.importorskip("nest")

from _util import run_cli  # noqa: E402
from adapters import RateToPoisson  # noqa: E402
from cosim.connectome import load_connectome  # noqa: E402
from cosim.engines import nest_config as cfg  # noqa: E402
from cosim.engines.nest import (InputGroup, NestEngine,  # noqa: E402
                                Population, grid_times, nest_seed)
from cosim.rng import Streams  # noqa: E402
from scenarios import (connectome, neural_mass, rate_to_poisson, record, scenario, simulation,  # noqa: E402
                       spikes_to_rate)

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def nest_region(region="rV1", n_e=40, n_i=10, threads=1, **keys):
    """``type = "nest"``: a small E/I network of ``iaf_psc_alpha`` with a Poisson
    background, E→E through ``tsodyks2_synapse``, and an input group ``bg`` on E."""
    return dict(type="nest", region=region, resolution=0.1, threads=threads,
                populations={
                    "E": {"model": "iaf_psc_alpha", "n": n_e,
                          "params": {"I_e": 200.0, "V_m": {"distribution": "uniform",
                                                           "min": -70.0, "max": -56.0}},
                          "record": ["V_m"], "cells": [0, 5]},
                    "I": {"model": "iaf_psc_alpha", "n": n_i},
                    "noise": {"model": "poisson_generator", "n": 1, "params": {"rate": 9000.0}}},
                projections={
                    "EE": {"source": "E", "target": "E", "rule": "fixed_indegree",
                           "conn": {"indegree": 8}, "synapse": "tsodyks2_synapse",
                           "weight": 30.0, "delay": {"distribution": "uniform", "min": 1.0,
                                                     "max": 2.5},
                           "syn": {"U": 0.4, "tau_rec": 400.0}},
                    "EI": {"source": "E", "target": "I", "rule": "pairwise_bernoulli",
                           "conn": {"p": 0.3}, "weight": 40.0, "delay": 1.3},
                    "IE": {"source": "I", "target": "E", "rule": "fixed_indegree",
                           "conn": {"indegree": 4},
                           "weight": {"distribution": "normal", "mean": -80.0, "std": 10.0,
                                      "max": 0.0}, "delay": 0.7},
                    "nE": {"source": "noise", "target": "E", "weight": 12.0, "delay": 1.0},
                    "nI": {"source": "noise", "target": "I", "weight": 12.0, "delay": 1.0}},
                inputs={"bg": {"target": "E", "weight": 25.0, "delay": 0.5, "per_cell": 2}},
                **keys)


def hybrid_nest(duration=60.0, sync=2.5, seed=7, threads=1, **sim_keys):
    """Jansen–Rit on every region but rV1; rV1 a NEST network; rate → Poisson onto E,
    E's rate back to the bus."""
    return scenario(
        simulation(duration, sync, seed, "out.h5", **sim_keys),
        engines={"cortex": neural_mass(regions="rest", parameters={"v0": 6.0}),
                 "v1": nest_region(threads=threads)},
        connectome=connectome(driven_self_connections="drop"),
        adapters={"in": rate_to_poisson("v1", "bg", gain=500.0, offset=50.0),
                  "out": spikes_to_rate("v1", populations=["E"], kernel="exponential",
                                        tau=5.0, map={"type": "linear", "gain": 0.001})},
        record=record(0.5, cortex={"variables": ["y1"]}))


def _describe(sc_dict, tmp_path, name="v1"):
    """The engine described from a scenario dict (through the scenario loader)."""
    from cosim.scenario import load_scenario
    from scenarios import write
    return load_scenario(write(tmp_path / "s.toml", sc_dict)).engines[name]


# -- the cache ------------------------------------------------------------------------------

def test_cached_model_list_is_the_installed_nests():
    assert cfg.models() == json.loads(json.dumps(cfg.model_list(nest)))


# -- the engine alone ≡ a plain NEST script -------------------------------------------------

def _plain_nest(spec: dict, seed: int, threads: int, events, duration_ms: float):
    """The network of :func:`nest_region` written directly against PyNEST, one Simulate."""
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": threads, "rng_seed": seed})
    pops = spec["populations"]
    E = nest.Create("iaf_psc_alpha", pops["E"]["n"])
    I = nest.Create("iaf_psc_alpha", pops["I"]["n"])
    noise = nest.Create("poisson_generator", 1)
    E.set({"I_e": 200.0, "V_m": nest.random.uniform(min=-70.0, max=-56.0)})
    noise.set({"rate": 9000.0})
    nest.Connect(E, E, {"rule": "fixed_indegree", "indegree": 8},
                 {"synapse_model": "tsodyks2_synapse", "weight": 30.0,
                  "delay": nest.random.uniform(min=1.0, max=2.5), "U": 0.4, "tau_rec": 400.0})
    nest.Connect(E, I, {"rule": "pairwise_bernoulli", "p": 0.3},
                 {"synapse_model": "static_synapse", "weight": 40.0, "delay": 1.3})
    nest.Connect(I, E, {"rule": "fixed_indegree", "indegree": 4},
                 {"synapse_model": "static_synapse", "delay": 0.7,
                  "weight": nest.math.redraw(nest.random.normal(mean=-80.0, std=10.0),
                                             min=-np.inf, max=0.0)})
    for tgt in (E, I):
        nest.Connect(noise, tgt, "all_to_all", {"synapse_model": "static_synapse",
                                                "weight": 12.0, "delay": 1.0})
    gens = nest.Create("spike_generator", len(E))
    nest.Connect(gens, E, "one_to_one", {"synapse_model": "static_synapse", "weight": 25.0,
                                         "delay": 0.5, "receptor_type": 0})
    lines, times = events
    cell = lines // 2                         # per_cell = 2: line = 2·cell + k
    th = (np.floor(times / 0.1 + 1e-9) + 1) * 0.1
    gens.set([{"spike_times": sorted(th[cell == c].tolist())} for c in range(len(E))])
    rec = nest.Create("spike_recorder")
    nest.Connect(E + I, rec)
    nest.Simulate(duration_ms)
    ev = rec.get("events")
    gids = np.asarray(ev["senders"]) - E[0].global_id
    t = np.asarray(ev["times"])
    order = np.lexsort((gids, t))
    return gids[order], t[order]


@pytest.mark.parametrize("threads,sync,block", [(1, 2.5, 10.0), (2, 0.3, 1000.0)])
def test_engine_equals_a_plain_nest_script(threads, sync, block, monkeypatch):
    """Windows of 2.5 ms (recorders of 10 ms: nine of them) and of 0.3 ms (shorter than the
    network's min delay 0.7 ms, two threads)."""
    monkeypatch.setattr("cosim.engines.nest.RECORDER_BLOCK_MS", block)
    spec = nest_region(threads=threads)
    rng = np.random.default_rng(1)            # test data: 3000 events on the 80 input lines
    duration = 90.0
    lines = rng.integers(0, 80, 3000)
    times = np.sort(rng.uniform(0.0, duration, 3000))
    times[:50] = np.round(times[:50], 1)      # some on the grid, too
    times.sort()

    from cosim.schema import Reader
    from cosim.engines.base import BuildContext
    ctx = BuildContext(file="t.toml", connectome=load_connectome("tvb:connectivity_76"), seed=4,
                       duration_ms=duration, sync_interval_ms=sync, record_period_ms=sync)
    eng = NestEngine.from_config("v1", Reader(spec, "t.toml", "engines.v1"), ctx)
    assert eng.threads == threads and eng.populations() == {"E": range(0, 40), "I": range(40, 50)}
    eng.build()
    assert len(eng._recorders) == (9 if block == 10.0 else 1)
    n = int(round(duration / sync))
    g_all, t_all = [], []
    for k in range(n):
        t0, t1 = k * sync, (k + 1) * sync
        mine = (times >= t0) & (times < t1)
        out = eng.advance(t0, t1, {"events": (lines[mine], times[mine])})
        g, t = out.exports["spikes"]
        assert np.all((t > t0 - 1e-9) & (t <= t1 + 1e-9))      # stamps in (t0, t1]
        g_all.append(g)
        t_all.append(t)
    assert eng._done                          # Cleanup after the last window
    g, t = np.concatenate(g_all), np.concatenate(t_all)
    assert g.size > 100
    ref_g, ref_t = _plain_nest(spec, nest_seed(Streams(4), "v1"), threads, (lines, times), duration)
    np.testing.assert_array_equal(g, ref_g)
    np.testing.assert_array_equal(t, ref_t)


# -- input events: the grid rule, and cosim's trains ----------------------------------------

def _parrots(per_cell=1, delay=0.4, sync=1.0, duration=5.0):
    return NestEngine("relay", populations=[Population("P", "parrot_neuron", 3)],
                      inputs=[InputGroup("in", "P", 1.0, delay, per_cell=per_cell)],
                      resolution_ms=0.1, sync_interval_ms=sync, duration_ms=duration, seed=1)


def test_event_times_follow_the_grid_rule():
    eng = _parrots()
    eng.build()
    # on-grid (0.3, 1.0 = t0 of window 1), off-grid (0.25, 0.3999), two in one step (line 2)
    ev = {0: (np.array([0, 1, 2, 2]), np.array([0.3, 0.25, 0.51, 0.55])),
          1: (np.array([0, 1]), np.array([1.0, 1.3999])), 2: (np.array([2]), np.array([2.95]))}
    got = []
    for k in range(5):
        out = eng.advance(float(k), k + 1.0, {"events": ev.get(k, (np.zeros(0, int), np.zeros(0)))})
        got.append(np.stack(out.exports["spikes"], 1) if out.exports["spikes"][0].size else np.zeros((0, 2)))
    got = np.concatenate(got)
    want = sorted((round(t, 9), g) for g, t in [(0, 0.4 + 0.4), (1, 0.3 + 0.4), (2, 0.6 + 0.4),
                                                (2, 0.6 + 0.4), (0, 1.1 + 0.4), (1, 1.4 + 0.4),
                                                (2, 3.0 + 0.4)])
    assert sorted((round(t, 9), int(g)) for g, t in got) == want
    np.testing.assert_allclose(grid_times(np.array([0.0, 0.05, 0.1, 0.1999]), 0.1), [0.1, 0.1, 0.2, 0.2])


def test_input_trains_are_cosims_counter_based_trains():
    """The events a rate_to_poisson adapter makes for the NEST engine's lines are the ones it
    makes for a multicompartment engine with the same lines (keyed by engine, adapter, line),
    and NEST delivers each at its grid time + delay."""
    from cosim.engines.multicompartment import CellGroup, InputGroup as McInput, MulticompartmentEngine
    from cosim.multicompartment import ball_and_stick
    eng = _parrots(per_cell=2, delay=0.1, sync=1.0, duration=20.0)
    mc = MulticompartmentEngine("relay", cells=[CellGroup("P", 3, ball_and_stick())],
                                inputs=[McInput("in", "P", "AMPA", 0.001, per_cell=2)])
    np.testing.assert_array_equal(eng.local_input_lines("in"), mc.local_input_lines("in"))
    gen_a = RateToPoisson(eng.local_input_lines("in"), Streams(9), "relay", "in", 0.0)
    gen_b = RateToPoisson(mc.local_input_lines("in"), Streams(9), "relay", "in", 0.0)
    eng.build()
    sent, got = [], []
    for k in range(20):
        rate = np.full(10, 300.0 + 20.0 * k)              # Hz per bus step of 0.1 ms
        lines, times = gen_a.generate(float(k), rate, 0.1)
        lb, tb = gen_b.generate(float(k), rate, 0.1)
        np.testing.assert_array_equal(lines, lb)
        np.testing.assert_array_equal(times, tb)
        sent.append((lines // 2, grid_times(times, 0.1) + 0.1))
        out = eng.advance(float(k), k + 1.0, {"events": (lines, times)})
        got.append(out.exports["spikes"])
    cell = np.concatenate([s[0] for s in sent])
    t = np.concatenate([s[1] for s in sent])
    keep = t <= 20.0 + 1e-9                                 # arrivals after the run are not seen
    want = sorted(zip(np.round(t[keep], 9), cell[keep]))
    g = np.concatenate([x[0] for x in got])
    tt = np.concatenate([x[1] for x in got])
    assert len(want) > 30
    assert sorted(zip(np.round(tt, 9), g)) == want


# -- through the runtime ---------------------------------------------------------------------

def _datasets(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path) as f:
        assert f.attrs["status"] == "completed", f.attrs["message"]

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith(("timing", "provenance")):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def test_hybrid_runs_in_one_process(write_scenario, tmp_path):
    sc = write_scenario(hybrid_nest(duration=30.0), "h.toml")
    r = run_cli("run", str(sc), "--output", "one.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = _datasets(tmp_path / "one.h5")
    assert d["spikes/v1.E/timestamps"].size > 50
    assert d["spikes/v1.E/node_ids"].max() < 40 and d["spikes/v1.I/node_ids"].max() < 10
    # a completed run's populations are sorted by_id: by node, then time
    ids, ts = d["spikes/v1.E/node_ids"], d["spikes/v1.E/timestamps"]
    assert np.array_equal(np.lexsort((ts, ids)), np.arange(ids.size))
    assert d["engines/v1/state.E"].shape == (12, 1, 2)      # every 2.5 ms: V_m of 2 cells
    assert np.all(d["engines/v1/state.E"][:, 0] < -40.0)    # V_m in mV, below threshold


@pytest.mark.mpi
@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec next to the interpreter")
def test_one_process_equals_mpiexec_n3_and_np3(write_scenario, tmp_path):
    sc = write_scenario(hybrid_nest(duration=40.0, threads=2), "h.toml")
    r = run_cli("run", str(sc), "--output", "one.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("COSIM_DEBUG", None)
    r = subprocess.run([str(MPIEXEC), "-n", "3", sys.executable, "-m", "cosim", "run", str(sc),
                        "--output", "three.h5", "--quiet"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    r = run_cli("run", str(sc), "--np", "3", "--output", "np3.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a = _datasets(tmp_path / "one.h5")
    assert a["spikes/v1.E/timestamps"].size > 50
    for other in ("three.h5", "np3.h5"):
        b = _datasets(tmp_path / other)
        assert set(a) == set(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{other}: {name}")


def test_rate_step_reaches_the_nest_region_exactly_d_ij_later(write_scenario, tmp_path):
    """Region lV1 (a linear node, held at x = 1 for t ≤ 0, decaying after) is the only
    source of rV1's drive; the adapter's rate is G·(1 − x(t − d)) ≥ 0: zero until the
    first change of x reaches rV1, then large.  Parrot neurons replay the input events (delay 0.1 ms), so their
    first spike follows the first nonzero source sample by exactly d."""
    c = load_connectome("tvb:connectivity_76")
    src, tgt = c.index_of("lV1"), c.index_of("rV1")
    assert c.weights[tgt, src] > 0
    w = c.weights[tgt, src]
    d_steps = c.delay_steps(3.0, 0.1)[tgt, src]
    region = {"type": "nest", "region": "rV1", "resolution": 0.1,
              "populations": {"P": {"model": "parrot_neuron", "n": 50}},
              "inputs": {"in": {"target": "P", "weight": 1.0, "delay": 0.1}}}
    G = 2.0e5
    sc = scenario(simulation(duration=float(np.ceil(d_steps * 0.1) + 5.0), sync=1.0, seed=3, output="out.h5"),
                  engines={"src": neural_mass("linear", regions=["lV1"], parameters={"gamma": -10.0},
                                              initial={"x": 1.0},
                                              coupling={"type": "linear", "G": 0.0}),
                           "v1": region},
                  connectome=connectome(driven_self_connections="drop"),
                  adapters={"in": rate_to_poisson("v1", "in", gain=-G / w, offset=G),
                            "out": spikes_to_rate("v1", map={"type": "linear", "gain": 0.0})},
                  record=record(0.1))
    r = run_cli("run", str(write_scenario(sc, "step.toml")), "--output", "s.h5", "--quiet",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "s.h5") as f:
        t = f["spikes/v1.P/timestamps"][:]
    d = d_steps * 0.1
    assert t.size > 100
    # x first drops below 1 at its sample t = 0.1 ms; the drive is sampled at the start of
    # each bus step (cosim.bus), so the rate is zero before t = 0.1 + d and, at 2e5 Hz over
    # 50 lines, certainly has events in the bus step [0.1 + d, 0.2 + d) → emitted at 0.2 + d
    # (grid rule) → the parrots spike 0.1 ms later
    assert t.min() == pytest.approx(d + 0.3, abs=1e-9)


# -- scenario errors -------------------------------------------------------------------------

def _one_line_error(write_scenario, tmp_path, sc) -> str:
    r = run_cli("validate", str(write_scenario(sc, "bad.toml")), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "bad.toml" in lines[0]
    return lines[0]


def test_checkpoint_every_with_nest_is_a_scenario_error(write_scenario, tmp_path):
    line = _one_line_error(write_scenario, tmp_path, hybrid_nest(checkpoint_every=10.0))
    assert "simulation.checkpoint_every" in line and "v1" in line


@pytest.mark.parametrize("path,value,key,hint", [
    (("populations", "E", "model"), "iaf_psc_alfa", "engines.v1.populations.E.model", "iaf_psc_alpha"),
    (("populations", "E", "params"), {"V_thr": 1.0}, "engines.v1.populations.E.params.V_thr", "V_th"),
    (("populations", "E", "record"), ["V_n"], "engines.v1.populations.E.record", "V_m"),
    (("projections", "EE", "synapse"), "tsodyks_synapse2", "engines.v1.projections.EE.synapse",
     "tsodyks2_synapse"),
    (("projections", "EE", "rule"), "fixed_in_degree", "engines.v1.projections.EE.rule",
     "fixed_indegree"),
    (("projections", "EE", "syn"), {"tau_recc": 1.0}, "engines.v1.projections.EE.syn.tau_recc",
     "tau_rec"),
    (("resolution",), 0.7, "engines.v1.resolution", "whole multiple"),
    (("projections", "EI", "delay"), 0.05, "engines.v1.projections.EI.delay",
     "shorter than the resolution"),
    (("inputs", "bg", "delay"), 0.05, "engines.v1.inputs.bg.delay", "shorter than the resolution"),
    (("populations", "noise", "model"), "spike_recorder", "engines.v1.populations.noise.model",
     "recorder"),
])
def test_unknown_nest_names_are_one_line_errors(write_scenario, tmp_path, path, value, key, hint):
    """Checked in process (the CLI's one-line form of the same error: the test below)."""
    from cosim.errors import CosimError
    from cosim.scenario import load_scenario
    sc = hybrid_nest()
    t = sc["engines"]["v1"]
    for p in path[:-1]:
        t = t[p]
    t[path[-1]] = value
    with pytest.raises(CosimError) as exc:
        load_scenario(write_scenario(sc, "bad.toml"))
    line = exc.value.message()
    assert "\n" not in line and "bad.toml" in line and key in line and hint in line, line


def test_unknown_nest_model_is_one_line_from_the_cli(write_scenario, tmp_path):
    sc = hybrid_nest()
    sc["engines"]["v1"]["populations"]["E"]["model"] = "iaf_cond_exb"
    line = _one_line_error(write_scenario, tmp_path, sc)
    assert "engines.v1.populations.E.model" in line and "iaf_cond_exp" in line, line


def test_validation_does_not_import_nest(write_scenario, tmp_path):
    sc = write_scenario(hybrid_nest(), "ok.toml")
    code = ("import sys; from cosim.scenario import load_scenario; "
            f"load_scenario({str(sc)!r}); print('nest' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_second_nest_engine_in_one_process_is_a_scenario_error(write_scenario, tmp_path):
    sc = hybrid_nest()
    sc["engines"]["v2"] = nest_region(region="lV1")
    r = run_cli("run", str(write_scenario(sc, "two.toml")), "--output", "o.h5", "--quiet",
                cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "engines.v2" in line and "--np" in line and "Traceback" not in r.stderr


def test_nest_refusing_a_value_is_one_line_naming_the_population(write_scenario, tmp_path):
    sc = hybrid_nest()
    sc["engines"]["v1"]["populations"]["E"]["params"]["C_m"] = -1.0   # NEST refuses it at build
    r = run_cli("run", str(write_scenario(sc, "neg.toml")), "--output", "o.h5", "--quiet",
                cwd=tmp_path)
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and "engines.v1.populations.E" in line[0] and "Capacitance" in line[0]


def test_shipped_hybrid_nest_scenario_validates(tmp_path):
    path = Path(__file__).resolve().parents[1] / "scenarios" / "hybrid_nest.toml"
    r = run_cli("validate", str(path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "v1 (nest, 1 region, dt 0.1 ms)" in r.stdout
