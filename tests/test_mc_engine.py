"""The multicompartment engine: scenario reading, windows, checkpoints, connectivity, output."""

from __future__ import annotations

import tomllib

import h5py
import numpy as np
import pytest

from cosim.engines.base import BuildContext
from cosim.engines.multicompartment import MulticompartmentEngine
from cosim.errors import CosimError
from cosim.schema import Reader
from cosim.toml_writer import dumps
from scenarios import connectome, multicompartment, record, scenario, simulation, write

NET = """
dt = 0.025
[cells.exc]
n = 16
morphology = "ball_and_stick"
nseg = 5
[cells.exc.mechanisms]
soma = { hh = {} }
dend = { pas = { g = 0.0001, e = -65.0 } }
[cells.inh]
n = 4
morphology = "ball_and_stick"
nseg = 3
[projections.ee]
source = "exc"
target = "exc"
indegree = 4
receptors = ["AMPA", "NMDA"]
weights = [0.002, 0.0005]
delay = [1.0, 2.0]
stp = { U = 0.5, tau_rec = 200.0 }
[projections.ie]
source = "inh"
target = "exc"
indegree = 2
receptors = ["GABA_A"]
weights = [0.004]
section = "soma"
[projections.ei]
source = "exc"
target = "inh"
indegree = 6
receptors = ["AMPA"]
weights = [0.003]
[inputs.bg]
target = "exc"
receptor = "AMPA"
weight = 0.01
per_cell = 2
[probes]
cells = [0, 17]
"""


def make(text=NET, seed=3, sync=1.0, period=0.5, variables=None):
    ctx = BuildContext(file="net.toml", connectome=None, seed=seed, duration_ms=40.0,
                       sync_interval_ms=sync, record_period_ms=period, record_variables=variables)
    eng = MulticompartmentEngine.from_config("ctx", Reader(tomllib.loads(text), "net.toml", "engines.ctx"), ctx)
    eng.build()
    return eng


def events(n_lines, t_end, rate_per_ms=12, seed=0):
    rng = np.random.default_rng(seed)
    n = int(rate_per_ms * t_end)
    return rng.integers(0, n_lines, n), np.sort(rng.uniform(0.0, t_end, n))


def run_windows(eng, ev, t_end, width):
    sp_g, sp_t, vs = [], [], []
    k = np.ceil(ev[1] / eng.dt_ms - 0.5 - 1e-9)
    for w in range(int(round(t_end / width))):
        t0, t1 = w * width, (w + 1) * width
        sel = (k >= round(t0 / eng.dt_ms)) & (k < round(t1 / eng.dt_ms))
        out = eng.advance(t0, t1, {"events": (ev[0][sel], ev[1][sel])})
        g, t = out.exports["spikes"]
        assert g.dtype == np.int64 and t.dtype == np.float64
        sp_g.append(g)
        sp_t.append(t)
        vs.append(out.records["v"])
    return np.concatenate(sp_g), np.concatenate(sp_t), np.concatenate(vs)


def test_window_size_does_not_change_results():
    ev = events(32, 40.0)
    a = run_windows(make(sync=1.0), ev, 40.0, 1.0)
    b = run_windows(make(sync=4.0), ev, 40.0, 4.0)
    assert a[0].size > 10                         # the network is active
    assert set(a[0]) > set(range(16, 20)) & set(a[0])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[2].shape == (80, 1, 2)


def test_checkpoint_resumes_to_the_same_bits():
    ev = events(32, 40.0, seed=1)
    eng = make()
    first = run_windows(eng, (ev[0][ev[1] < 19.98], ev[1][ev[1] < 19.98]), 20.0, 1.0)
    saved = {k: v.copy() for k, v in eng.state().items()}
    late = (ev[0][ev[1] >= 19.98] , ev[1][ev[1] >= 19.98])
    ref = [eng.advance(20.0 + w, 21.0 + w, {"events": _sel(late, eng, 20.0 + w)}) for w in range(20)]
    eng.restore(saved)
    again = [eng.advance(20.0 + w, 21.0 + w, {"events": _sel(late, eng, 20.0 + w)}) for w in range(20)]
    for x, y in zip(ref, again):
        np.testing.assert_array_equal(x.exports["spikes"][1], y.exports["spikes"][1])
        np.testing.assert_array_equal(x.records["v"], y.records["v"])
    assert first[0].size > 0


def _sel(ev, eng, t0):
    k = np.ceil(ev[1] / eng.dt_ms - 0.5 - 1e-9)
    sel = (k >= round(t0 / eng.dt_ms)) & (k < round((t0 + 1.0) / eng.dt_ms))
    return ev[0][sel], ev[1][sel]


def test_fixed_indegree_and_connections_keyed_by_target_id():
    eng = make()
    net = eng.net
    pre = np.array([c[0] for c in net._conns])
    site_cell = np.array([net._sites[c[1]][0] for c in net._conns])
    assert not np.any(pre == site_cell)              # no autapses
    # exc targets: 4 ee (x2 receptors) + 2 ie; inh targets: 6 ei
    counts = np.bincount(site_cell, minlength=20)
    assert list(counts[:16]) == [4 * 2 + 2] * 16 and list(counts[16:]) == [6] * 4
    # more inhibitory cells: the first four receive exactly the same sources
    bigger = make(NET.replace("[cells.inh]\nn = 4", "[cells.inh]\nn = 9"))

    def sources(e, gid, proj_pre_range):
        return sorted(c[0] for c in e.net._conns if e.net._sites[c[1]][0] == gid and c[0] in proj_pre_range)
    for gid in range(16, 20):
        assert sources(eng, gid, range(16)) == sources(bigger, gid, range(16))
    # a different seed gives different connectivity
    other = make(seed=4)
    assert [c[0] for c in other.net._conns] != [c[0] for c in net._conns]


def test_config_errors_name_the_key():
    with pytest.raises(CosimError, match=r"engines\.ctx\.cells\.exc\.nsge: unknown key; did you mean 'nseg'"):
        make(NET.replace("nseg = 5", "nsge = 5"))
    with pytest.raises(CosimError, match=r"projections\.ee\.receptors: unknown receptor 'AMPAR'"):
        make(NET.replace('["AMPA", "NMDA"]', '["AMPAR", "NMDA"]'))
    with pytest.raises(CosimError, match=r"indegree 40 exceeds"):
        make(NET.replace("indegree = 4", "indegree = 40"))
    with pytest.raises(CosimError, match=r"mechanisms\.dend\.pas\.gg: unknown key"):
        make(NET.replace("pas = { g = 0.0001", "pas = { gg = 0.0001"))


def test_events_outside_the_window_are_rejected():
    eng = make()
    with pytest.raises(ValueError, match="events"):
        eng.advance(0.0, 1.0, {"events": (np.array([0]), np.array([-1.0]))})


def test_scenario_run_writes_sonata_spikes(tmp_path):
    """The whole pipeline: scenario file → loader → runtime → HDF5 (SONATA spikes, v)."""
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario
    np.savez(tmp_path / "conn.npz", weights=np.zeros((1, 1)), tract_lengths=np.zeros((1, 1)))
    net = tomllib.loads(NET)
    # NET with a 30 ms current step (amplitude 0.4) into every excitatory soma
    net = {"dt": net.pop("dt"), "clamps": {"drive": {"target": "exc", "duration": 30.0,
                                                     "amplitude": 0.4, "section": "soma"}}, **net}
    write(tmp_path / "s.toml", scenario(simulation(duration=20.0, seed=3),
                                        connectome=connectome("conn.npz"),
                                        engines={"ctx": multicompartment(**net)},
                                        record=record(0.5, ctx={"variables": ["spikes", "v"]})))
    scen = load_scenario(tmp_path / "s.toml", output=tmp_path / "o.h5")
    run_scenario(scen, progress_stream=None)
    ref = make(dumps(net))
    outs = [ref.advance(float(w), float(w + 1), {}) for w in range(20)]
    g = np.concatenate([o.exports["spikes"][0] for o in outs])
    t = np.concatenate([o.exports["spikes"][1] for o in outs])
    assert g.size >= 16
    with h5py.File(tmp_path / "o.h5") as f:
        for pop, r in ref.populations().items():     # one SONATA population per group
            mine = (g >= r.start) & (g < r.stop)
            order = np.lexsort((t[mine], g[mine]))      # completed: by_id (node, then time)
            np.testing.assert_array_equal(f[f"spikes/ctx.{pop}/node_ids"][:],
                                          g[mine][order] - r.start)
            np.testing.assert_array_equal(f[f"spikes/ctx.{pop}/timestamps"][:], t[mine][order])
        assert f["engines/ctx/v"].shape == (40, 1, 2)
