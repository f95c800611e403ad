"""The ``neuron`` engine type (cosim.engines.neuron_engine) against independent references.

* the engine alone ≡ a plain NEURON script of the same model and input events (same spike
  times, voltages to round-off);
* the cross-check of issue 18: rV1 of ``scenarios/default.toml`` written as a NEURON model
  (``scenarios/neuron_region/``) inside the hybrid brain gives the same spikes and voltages
  (≤ 0.1 mV) as cosim's own multicompartment engine on the same input trains;
* one process ≡ ``mpiexec -n 3`` (bus | neural masses | NEURON region), bitwise;
* errors: the model's own exception, a missing or non-compiling ``.mod``, CVode — one line.

NEURON holds one model per process, so every run of the engine is a subprocess.
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

pytest.importorskip("neuron")

from _util import REPO, run_cli  # noqa: E402
from scenarios import (connectome, neural_mass, rate_to_poisson, record, scenario, simulation,  # noqa: E402
                       spikes_to_rate)

DATA = REPO / "tests" / "data" / "neuron"
REGION = REPO / "scenarios" / "neuron_region"
DT = 0.025
V_TOL_MV = 0.1          # the bound for the cross-check; measured 1.3e-7 mV


@pytest.fixture(scope="module", autouse=True)
def mod_cache(tmp_path_factory):
    """One nrnivmodl cache for the module's runs (compiled once, then reused)."""
    old = os.environ.get("COSIM_CACHE_DIR")
    os.environ["COSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("cosim_cache"))
    yield
    if old is None:
        os.environ.pop("COSIM_CACHE_DIR", None)
    else:
        os.environ["COSIM_CACHE_DIR"] = old


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-c", code, *args], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


# -- the engine alone against a plain NEURON script -------------------------------------------

N_RING, T_RING, W_RING, D_RING = 5, 60.0, 0.02, 2.0
WINDOW = 0.1            # ms: short windows, so that some spikes fall on a window's last step

_PLAIN = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from neuron import h
import ring
ev = np.load(sys.argv[2])
h.load_file("stdrun.hoc")
pc = h.ParallelContext()
h.dt, h.celsius, h.secondorder = 0.025, 6.3, 0
n = int(ev["n"])
cells = {g: ring.Cell(h, g) for g in range(n)}
dets = []
for g, c in cells.items():
    pc.set_gid2node(g, pc.id())
    nc = h.NetCon(c.soma(0.5)._ref_v, None, sec=c.soma)
    nc.threshold = 0.0
    pc.cell(g, nc)
    dets.append(nc)
ncs = ring.wire(pc, cells, n, float(ev["w"]), float(ev["d"]))
lines = []
for g in range(n):                       # group "exc": 2 lines per cell onto syn
    for _ in range(2):
        lines.append(h.NetCon(None, cells[g].syn)); lines[-1].weight[0] = 0.004
for g in range(n):                       # group "inh": line j onto inh[j]
    for j in range(2):
        lines.append(h.NetCon(None, cells[g].inh[j])); lines[-1].weight[0] = 0.003
tv, iv = h.Vector(), h.Vector()
pc.spike_record(-1, tv, iv)
vs = [h.Vector().record(cells[g].soma(0.5)._ref_v) for g in (0, 3)]
vd = h.Vector().record(cells[1].dend[0](0.7)._ref_v)
h.finitialize(-65.0)
for k in np.lexsort((ev["line"], ev["t"])):
    lines[ev["line"][k]].event(float(ev["t"][k]))
pc.set_maxstep(10.0)
pc.psolve(float(ev["tstop"]))
np.savez(sys.argv[3], t=tv.as_numpy(), g=iv.as_numpy(),
         v=np.array([np.array(v)[1:] for v in vs + [vd]]).T)
"""

_ENGINE = r"""
import sys
import numpy as np
from cosim.engines.neuron_engine import NeuronEngine
from cosim.engines.neuron_config import Population, NeuronInput
ev = np.load(sys.argv[2])
n = int(ev["n"])
eng = NeuronEngine("ring", model_path=sys.argv[1] + "/ring.py", connect_name="connect",
                   populations=[Population("a", 3), Population("b", n - 3)],
                   args={"w_ring": float(ev["w"]), "delay": float(ev["d"])},
                   inputs=[NeuronInput("exc", "a", "syn", 0.004, 2),
                           NeuronInput("exc_b", "b", "syn", 0.004, 2),
                           NeuronInput("inh", "a", "inh", 0.003, 2),
                           NeuronInput("inh_b", "b", "inh", 0.003, 2)],
                   probes=[(0, "soma", 0.5), (3, "soma", 0.5), (1, "dend[0]", 0.7)],
                   dt_ms=0.025, sync_interval_ms=5.0, record_period_ms=0.025,
                   mod_dir=sys.argv[4] or None)
eng.window_in_hoc = sys.argv[5] == "hoc"
eng.build()
# a mod_dir compiles cosim's bulk event queue with the model's mechanisms (C, not hoc)
assert hasattr(eng._live.h, "cosim_queue_events") == bool(sys.argv[4])
# lines: group after group, cell after cell — exc(a), exc_b(b), inh(a), inh_b(b) is the
# plain script's order exc(all cells), inh(all cells), so the line ids are the same
lines = ev["line"].astype(np.int64)
gs, ts, vs = [], [], []
t0 = 0.0
while t0 < float(ev["tstop"]) - 1e-9:
    t1 = t0 + float(ev["window"])
    sel = (ev["t"] >= t0) & (ev["t"] < t1)
    out = eng.advance(t0, t1, {"events": (lines[sel], ev["t"][sel])})
    g, t = out.records["spikes"]
    assert ((t > t0) & (t <= t1 + 1e-9)).all()
    gs.append(g); ts.append(t); vs.append(out.records["v"][:, 0, :])
    t0 = t1
np.savez(sys.argv[3], t=np.concatenate(ts), g=np.concatenate(gs), v=np.concatenate(vs))
"""


@pytest.mark.parametrize("mod_dir, window", [("", "hoc"), (str(REGION / "mod"), "hoc"),
                                             ("", "python")],
                         ids=["hoc-queue", "c-queue", "python-window"])
def test_engine_equals_a_plain_neuron_script(tmp_path, mod_dir, window):
    """The engine's events (queued in one hoc loop, or in C by cosim's compiled
    ``cosim_queue_events`` when the model has a ``mod_dir``) and its relayed spikes (the
    window in one hoc call, or the Python loop of several partitions) equal a plain
    script's ``NetCon.event`` per event and NEURON's own ``gid_connect``, bit for bit."""
    rng = np.random.default_rng(7)
    n_lines = N_RING * 2 * 2
    k = 400
    ev_line = rng.integers(0, n_lines, size=k)
    ev_t = np.sort(rng.uniform(0.0, T_RING - 10.0, size=k))
    ev_t[:5] = [0.0, 5.0, 5.0125, 9.9875, 10.0]            # window edges and half steps
    evf = tmp_path / "events.npz"
    np.savez(evf, line=ev_line, t=ev_t, n=N_RING, w=W_RING, d=D_RING, tstop=T_RING,
             window=WINDOW)
    _python(_PLAIN, str(DATA), str(evf), str(tmp_path / "plain.npz"))
    _python(_ENGINE, str(DATA), str(evf), str(tmp_path / "engine.npz"), mod_dir, window)
    plain, eng = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "engine.npz")
    order = np.lexsort((plain["g"], plain["t"]))
    t_ref, g_ref = plain["t"][order], plain["g"][order].astype(np.int64)
    assert t_ref.size >= 10                       # the ring fires
    on_edge = np.abs(t_ref / WINDOW - np.rint(t_ref / WINDOW)) < 1e-6
    assert on_edge.any()            # NEURON reports these only in the next window's psolve
    np.testing.assert_array_equal(eng["g"], g_ref)
    assert np.max(np.abs(eng["t"] - t_ref)) < 1e-9          # NEURON's t + 1e-10 → grid t
    np.testing.assert_array_equal(eng["t"], np.rint(t_ref / DT) * DT)
    assert eng["v"].shape == plain["v"].shape == (int(round(T_RING / DT)), 3)
    assert np.max(np.abs(eng["v"] - plain["v"])) <= 1e-9     # measured: 0 (same arithmetic)


def test_partitions_share_out_cells_lines_and_probes_and_merge_back():
    """Description only (nothing is built): every gid, input line and probe belongs to
    exactly one of K partitions, and merge_records rebuilds the one-process layout."""
    from cosim.engines.neuron_config import NeuronInput, Population
    from cosim.engines.neuron_engine import NeuronEngine
    eng = NeuronEngine("r", model_path=str(DATA / "ring.py"),
                       populations=[Population("a", 7), Population("b", 4)],
                       inputs=[NeuronInput("x", "a", "syn", 0.001, 3),
                               NeuronInput("y", "b", "syn", 0.001, 2)],
                       probes=[(0, "soma", 0.5), (6, "soma", 0.5), (7, "soma", 0.5),
                               (10, "soma", 0.5)])
    assert eng.partition(0, 1) is eng and eng.max_parts() == 11
    for k in (2, 3, 5):
        parts = [eng.partition(p, k) for p in range(k)]
        np.testing.assert_array_equal(np.sort(np.concatenate([p.local_gids for p in parts])),
                                      np.arange(11))
        for grp, n in (("x", 21), ("y", 8)):
            lines = np.concatenate([p.local_input_lines(grp) for p in parts])
            np.testing.assert_array_equal(np.sort(lines), eng.local_input_lines(grp))
            assert lines.size == n
        ids = [p.probe_ids for p in parts]
        np.testing.assert_array_equal(np.sort(np.concatenate(ids)), np.arange(4))
        v = np.arange(3 * 4, dtype=float).reshape(3, 1, 4)
        by_part = [{"v": v[:, :, i], "spikes": (np.array([10 - q]), np.array([1.0 + q % 2]))}
                   for q, i in enumerate(ids)]
        merged = eng.merge_records(by_part)
        np.testing.assert_array_equal(merged["v"], v)
        g, t = merged["spikes"]
        assert (np.diff(t) >= 0).all() and sorted(g.tolist()) == sorted(10 - q for q in range(k))


# -- the cross-check: rV1 as a NEURON model ≡ cosim's multicompartment engine ------------------

N_EXC, N_INH = 24, 8
INDEGREE = {"ee": 5, "ei": 5, "ie": 3, "ii": 3}
PROBE_CELLS = [0, 7, 24, 31]


def _mc_rv1() -> dict:
    mech = {"soma": {"hh": {}}, "dend": {"pas": {"g": 0.0001, "e": -65.0}}}
    cells = {"exc": {"n": N_EXC, "morphology": "ball_and_stick", "nseg": 10, "mechanisms": mech},
             "inh": {"n": N_INH, "morphology": "ball_and_stick", "nseg": 4, "mechanisms": mech}}
    proj = {"ee": dict(source="exc", target="exc", receptors=["AMPA", "NMDA"],
                       weights=[0.0004, 0.0001], section="dend", x=0.5, delay=[1.0, 3.0],
                       stp={"U": 0.5, "tau_rec": 800.0, "tau_fac": 0.0}),
            "ei": dict(source="exc", target="inh", receptors=["AMPA"], weights=[0.0008],
                       section="soma", x=0.5, delay=[1.0, 2.0]),
            "ie": dict(source="inh", target="exc", receptors=["GABA_A"], weights=[0.002],
                       section="soma", x=0.5, delay=[1.0, 2.0]),
            "ii": dict(source="inh", target="inh", receptors=["GABA_A"], weights=[0.001],
                       section="soma", x=0.5, delay=[1.0, 2.0])}
    for k, p in proj.items():
        p["indegree"] = INDEGREE[k]
    inputs = {"bg_exc": dict(target="exc", receptor="AMPA", section="dend", x=0.8,
                             weight=0.0008, per_cell=20),
              "bg_inh": dict(target="inh", receptor="AMPA", section="soma", x=0.5,
                             weight=0.0006, per_cell=20)}
    return dict(type="multicompartment", region="rV1", dt=DT, celsius=6.3, cells=cells,
                projections=proj, inputs=inputs,
                probes={"cells": PROBE_CELLS, "sections": ["soma"], "x": 0.5})


def _neuron_rv1(model: Path = REGION / "rv1.py", mod_dir: Path | None = REGION / "mod",
                args: dict | None = None, synapse: str = "syn_bg") -> dict:
    """rV1 as the NEURON model of scenarios/neuron_region (or another model file)."""
    if args is None:
        args = {f"indegree_{k}": v for k, v in INDEGREE.items()}
    eng = dict(type="neuron", region="rV1", dt=DT, celsius=6.3, model=str(model),
               connect="connect", mod_dir=None if mod_dir is None else str(mod_dir), args=args,
               populations={"exc": {"n": N_EXC}, "inh": {"n": N_INH}},
               inputs={"bg_exc": dict(target="exc", synapse=synapse, weight=0.0008, per_cell=20),
                       "bg_inh": dict(target="inh", synapse=synapse, weight=0.0006, per_cell=20)},
               probes={"cells": PROBE_CELLS, "sections": ["soma"], "x": 0.5})
    return {k: v for k, v in eng.items() if v is not None}


RING = dict(model=DATA / "ring.py", mod_dir=None, synapse="syn")


def _hybrid(v1: dict, output: Path, duration: float = 40.0) -> dict:
    return scenario(
        simulation(duration, 5.0, 2026, output),
        engines={"cortex": neural_mass(regions="rest", integrator="heun",
                                       parameters={"v0": 6.0},
                                       coupling={"type": "sigmoidal_jansen_rit", "G": 1.0}),
                 "v1": v1},
        connectome=connectome(driven_self_connections="drop"),
        adapters={"v1_in_exc": rate_to_poisson("v1", "bg_exc", gain=100.0, offset=10.0),
                  "v1_in_inh": rate_to_poisson("v1", "bg_inh", gain=100.0, offset=10.0),
                  "v1_out": spikes_to_rate("v1", populations=["exc"], kernel="exponential",
                                           tau=5.0, map={"type": "linear", "gain": 0.001})},
        record=record(1.0, cortex={"variables": ["y0", "y1", "y2"]},
                      v1={"variables": ["spikes", "v"]}))


def _spikes(f, engine: str = "v1") -> tuple[np.ndarray, np.ndarray]:
    """Every spike of ``engine`` as (global gid, time ms), sorted by (time, gid), from its
    SONATA populations ``/spikes/<engine>.<group>`` (node ids from 0 in each group)."""
    gids, times = [], []
    for name, g in f["spikes"].items():
        if name.startswith(engine + "."):
            gids.append(g["node_ids"][()].astype(np.int64) + int(g.attrs["first_gid"]))
            times.append(g["timestamps"][()])
    gids, times = np.concatenate(gids), np.concatenate(times)
    order = np.lexsort((gids, times))
    return gids[order], times[order]


def _read(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        out["spikes/v1/node_ids"], out["spikes/v1/timestamps"] = _spikes(f)
        for key in ("engines/v1/v", "engines/cortex/timeseries"):
            out[key] = f[key][()]
    return out


@pytest.fixture(scope="module")
def neuron_hybrid(tmp_path_factory, mod_cache):
    """The small hybrid with rV1 as the NEURON model, run in one process."""
    d = tmp_path_factory.mktemp("neuron_hybrid")
    scen = d / "neuron.toml"
    scen.write_text(_text(_hybrid(_neuron_rv1(), d / "one.h5")))
    res = run_cli("run", str(scen), "-q", "--no-monitor", "--overwrite")
    assert res.returncode == 0, res.stderr
    return scen, d / "one.h5"


def _text(data: dict) -> str:
    from cosim.toml_writer import dumps
    return dumps(data)


def test_rv1_as_a_neuron_model_equals_the_multicompartment_engine(neuron_hybrid, tmp_path):
    _, one = neuron_hybrid
    scen = tmp_path / "mc.toml"
    scen.write_text(_text(_hybrid(_mc_rv1(), tmp_path / "mc.h5")))
    res = run_cli("run", str(scen), "-q", "--no-monitor")
    assert res.returncode == 0, res.stderr
    a, b = _read(one), _read(tmp_path / "mc.h5")
    assert a["spikes/v1/timestamps"].size >= 10
    np.testing.assert_array_equal(a["spikes/v1/node_ids"], b["spikes/v1/node_ids"])
    np.testing.assert_array_equal(a["spikes/v1/timestamps"], b["spikes/v1/timestamps"])
    dv = np.max(np.abs(a["engines/v1/v"] - b["engines/v1/v"]))
    assert a["engines/v1/v"].shape == (40, 1, len(PROBE_CELLS))
    assert dv <= V_TOL_MV, dv
    # same spikes → same rate on the bus → the whole brain is the same to round-off
    np.testing.assert_allclose(a["engines/cortex/timeseries"], b["engines/cortex/timeseries"],
                               rtol=0, atol=1e-9)


@pytest.mark.mpi
def test_mpiexec_3_and_5_equal_one_process_and_model_errors_name_the_rank(neuron_hybrid,
                                                                          tmp_path):
    """-n 3: bus | neural masses | the NEURON region; -n 5: the region split over 3 ranks
    (cells by contiguous blocks, spikes exchanged through cosim's Allgatherv)."""
    from cosim.launch import find_mpiexec
    scen, one = neuron_hybrid
    a = _read(one)
    for n in (3, 5):
        out = tmp_path / f"n{n}.h5"
        res = subprocess.run([find_mpiexec(), "-n", str(n), sys.executable, "-m", "cosim", "run",
                              str(scen), "-o", str(out), "-q", "--no-monitor"], env=_env(),
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        roles = [r["role"] for r in json.loads(Path(f"{out}.ranks.json").read_text()).values()]
        assert roles.count("engine v1" if n == 3 else "engine v1 part 1/3") == 1, roles
        b = _read(out)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"-n {n}: {key}")
    # an exception in the model's build, on the engine's rank, ends the job in one line
    bad = tmp_path / "bad.toml"
    bad.write_text(_text(_hybrid(_neuron_rv1(**RING, args={"fail": True}), tmp_path / "b.h5")))
    res = subprocess.run([find_mpiexec(), "-n", "3", sys.executable, "-m", "cosim", "run",
                          str(bad), "-q", "--no-monitor"], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "refuses to build" in ln]
    assert lines and "engine v1 (rank 2)" in lines[0] and "ValueError" in lines[0], res.stderr


# -- errors: one line ---------------------------------------------------------------------------

def _standalone(tmp_path: Path, **v1) -> Path:
    """Only the NEURON region (no bus traffic): cheap runs for the error paths."""
    data = scenario(simulation(10.0, 5.0, 1, tmp_path / "out.h5"),
                    engines={"v1": _neuron_rv1(**v1)}, record=record(1.0))
    path = tmp_path / "s.toml"
    path.write_text(_text(data))
    return path


def _one_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_an_error_in_the_model_code_is_one_line_naming_engine_and_partition(tmp_path):
    scen = _standalone(tmp_path, **RING, args={"fail": True})
    res = run_cli("run", str(scen), "-q", "--no-monitor")
    assert res.returncode == 2
    line = _one_line(res)
    assert "engines.v1.build" in line and "engine 'v1' (neuron, partition 0 of 1)" in line
    assert "ValueError: the model refuses to build (ring.py line" in line


def test_variable_step_is_refused(tmp_path):
    scen = _standalone(tmp_path, **RING, args={"cvode": True})
    res = run_cli("run", str(scen), "-q", "--no-monitor")
    assert res.returncode == 2
    assert "variable step (CVode)" in _one_line(res)


def test_missing_files_are_scenario_errors(tmp_path):
    res = run_cli("validate", str(_standalone(tmp_path, mod_dir=tmp_path / "nomod")))
    assert res.returncode == 2
    assert "engines.v1.mod_dir: folder" in _one_line(res) and "not found" in res.stderr
    res = run_cli("validate", str(_standalone(tmp_path, model=tmp_path / "nomodel.py")))
    assert res.returncode == 2
    assert "engines.v1.model: file" in _one_line(res)
    (tmp_path / "empty").mkdir()
    res = run_cli("validate", str(_standalone(tmp_path, mod_dir=tmp_path / "empty")))
    assert res.returncode == 2 and "holds no .mod file" in _one_line(res)
    res = run_cli("validate", str(_standalone(tmp_path, **RING)))
    assert res.returncode == 0, res.stderr


def test_a_mod_file_that_does_not_compile_is_one_line_naming_it(tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "good.mod").write_text((REGION / "mod" / "cosim_exp2syn.mod").read_text())
    (mods / "broken.mod").write_text("NEURON {\n  POINT_PROCESS Broken\n}\n"
                                     "BREAKPOINT { y = x }\n")
    res = run_cli("run", str(_standalone(tmp_path, **dict(RING, mod_dir=mods))),
                  "-q", "--no-monitor")
    assert res.returncode == 2
    line = _one_line(res)
    assert "broken.mod" in line and "engines.v1.mod_dir" in line and "nrnivmodl failed" in line


def test_a_hoc_template_model(tmp_path):
    """``model = "cell.hoc"``, ``build`` = a template: one cell per gid, spikes recorded."""
    v1 = _neuron_rv1(DATA / "cell.hoc", None, synapse="syn")
    v1.update(build="StimCell")
    del v1["connect"], v1["args"]
    path = tmp_path / "h.toml"
    path.write_text(_text(scenario(simulation(20.0, 5.0, 1, tmp_path / "out.h5"),
                                   engines={"v1": v1}, record=record(1.0))))
    res = run_cli("run", str(path), "-q", "--no-monitor")
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "out.h5", "r") as f:
        gids, times = _spikes(f)
        v = f["engines/v1/v"][()]
    # identical cells under the same clamp: every cell fires at the same steps
    assert sorted(set(gids.tolist())) == list(range(N_EXC + N_INH))
    per_cell = [times[gids == g] for g in range(N_EXC + N_INH)]
    assert all(np.array_equal(per_cell[0], t) for t in per_cell)
    assert v.shape == (20, 1, len(PROBE_CELLS)) and (v[:, 0, :] == v[:, :1, 0]).all()


def test_checkpointing_is_refused(tmp_path):
    data = scenario(simulation(10.0, 5.0, 1, tmp_path / "out.h5", checkpoint_every=5.0),
                    engines={"v1": _neuron_rv1(**RING)},
                    record=record(1.0))
    path = tmp_path / "c.toml"
    path.write_text(_text(data))
    res = run_cli("validate", str(path))
    assert res.returncode == 2
    assert "simulation.checkpoint_every" in _one_line(res) and "v1" in res.stderr


def test_compiled_mods_are_cached_by_content(tmp_path):
    from cosim.engines.neuron_mod import compile_mods, content_key
    from cosim.engines.neuron_model import EVENTS_MOD
    import neuron
    ours = {"cosim_events.mod": EVENTS_MOD}     # as the engine compiles (one compile here)
    first = compile_mods(REGION / "mod", neuron.__version__, extra=ours)
    assert first.name == content_key(REGION / "mod", neuron.__version__, ours)
    assert first.name != content_key(REGION / "mod", neuron.__version__)
    assert (first / "cosim_events.mod").read_text() == EVENTS_MOD
    stamp = first.stat().st_mtime_ns
    assert compile_mods(REGION / "mod", neuron.__version__, extra=ours) == first
    assert first.stat().st_mtime_ns == stamp           # not compiled again
    copy = tmp_path / "mod"
    copy.mkdir()
    for p in (REGION / "mod").glob("*.mod"):
        (copy / p.name).write_text(p.read_text())
    assert content_key(copy, neuron.__version__, ours) == first.name      # content, not path
    (copy / "cosim_nmda.mod").write_text((copy / "cosim_nmda.mod").read_text() + "\n")
    assert content_key(copy, neuron.__version__, ours) != first.name
    (copy / "cosim_events.mod").write_text("")     # a user's file may not take our name
    from cosim.errors import CosimError
    with pytest.raises(CosimError, match="cosim_events.mod, a name cosim.s own"):
        compile_mods(copy, neuron.__version__, extra=ours)
