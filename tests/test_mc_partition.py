"""A spiking region split over partitions gives the bits of the unsplit region.

The partitions run in this process: in lock step (``begin_window / run_interval /
deliver / end_window``), and each in its own thread calling ``advance`` with a
barrier-based allgather as ``exchange`` (the shape of the MPI runtime's Allgatherv).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest

from cosim.errors import CosimError
from cosim.multicompartment import Network, ball_and_stick, discretise, y_shaped
from cosim.multicompartment.partition import advance_in_lockstep, block, gather_spikes, merge_outputs

_spec = importlib.util.spec_from_file_location(
    "mc_partition_net", Path(__file__).parent / "mpi_scripts" / "mc_partition_net.py")
NET = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(NET)

WIDTH_MS = 2.0                  # partitioned runs: 2 ms windows; the reference: 1 ms
N_WINDOWS = int(NET.T_END_MS / WIDTH_MS)


def site_state(engines) -> dict:
    """Synaptic (A, B) of every site, keyed by (gid, node, receptor): the most sensitive
    place for summation order (one ulp there rarely reaches v)."""
    return {key: tuple(ab) for e in engines for key, ab in zip(e.net._sites, e.net._site_ab)}


def sorted_spikes(g, t):
    order = np.lexsort((g, t))
    return g[order], t[order]


@pytest.fixture(scope="module")
def reference():
    eng = NET.region(sync_ms=1.0)
    eng.build()
    ev = NET.events(eng.n_input_lines)
    g, t, v, sites = [], [], [], []
    for w in range(int(NET.T_END_MS)):
        out = eng.advance(float(w), w + 1.0, NET.window_events(ev, w, w + 1.0, eng.dt_ms))
        g.append(out.records["spikes"][0])
        t.append(out.records["spikes"][1])
        v.append(out.records["v"])
        if (w + 1) % WIDTH_MS == 0:
            sites.append(site_state([eng]))
    g, t = np.concatenate(g), np.concatenate(t)
    assert np.array_equal((g, t), sorted_spikes(g, t))   # an unsplit run is in (time, gid) order
    return {"events": ev, "gids": g, "times": t, "v": np.concatenate(v), "sites": sites}


def test_reference_network_is_active(reference):
    g = reference["gids"]
    assert g.size > 60
    assert set(range(NET.N_EXC + NET.N_INH)) <= set(g)        # every cell, E and I, fires


@pytest.mark.parametrize("n_parts", [2, 3])
def test_lockstep_partitions_give_the_same_bits(reference, n_parts):
    rng = np.random.default_rng(n_parts)
    ev = reference["events"]
    shuffled = rng.permutation(ev[0].size)          # input order must not matter either
    ev = (ev[0][shuffled], ev[1][shuffled])
    whole = NET.region(sync_ms=WIDTH_MS)
    parts = [whole.partition(p, n_parts) for p in range(n_parts)]
    for p in parts:
        p.build()
    g, t, v = [], [], []
    for w in range(N_WINDOWS):
        t0, t1 = w * WIDTH_MS, (w + 1) * WIDTH_MS
        for p in parts:
            p.begin_window(t0, t1, NET.window_events(ev, t0, t1, p.dt_ms))
        while not parts[0].window_done:
            spikes = gather_spikes([p.run_interval() for p in parts])
            perm = rng.permutation(spikes[0].size)   # any order out of the exchange
            for p in parts:
                p.deliver(spikes[0][perm], spikes[1][perm])
        outs = [p.end_window() for p in parts]
        for p, o in zip(parts, outs):                # local cells only
            assert np.isin(o.records["spikes"][0], p.net.gids).all()
            assert o.records["v"].shape[2] == p.probe_ids.size
        merged = merge_outputs(parts, outs)
        g.append(merged.records["spikes"][0])
        t.append(merged.records["spikes"][1])
        v.append(merged.records["v"])
        assert site_state(parts) == reference["sites"][w]
    np.testing.assert_array_equal(np.concatenate(g), reference["gids"])
    np.testing.assert_array_equal(np.concatenate(t), reference["times"])
    np.testing.assert_array_equal(np.concatenate(v), reference["v"])


class ThreadAllgather:
    """``exchange`` functions for partitions running in threads of one process."""

    def __init__(self, n: int):
        self.slots = [None] * n
        self.calls = [0] * n
        self.barrier = threading.Barrier(n, timeout=30.0)

    def exchange_of(self, part: int):
        def exchange(gids, times):
            self.calls[part] += 1
            self.slots[part] = (gids.copy(), times.copy())
            self.barrier.wait()
            out = gather_spikes(self.slots)
            self.barrier.wait()                      # all have read before anyone writes
            return out
        return exchange


def test_threaded_partitions_with_an_allgather_exchange(reference):
    n_parts = 3
    ag = ThreadAllgather(n_parts)
    whole = NET.region(sync_ms=WIDTH_MS)
    parts = [whole.partition(p, n_parts, ag.exchange_of(p)) for p in range(n_parts)]
    for p in parts:
        p.build()
    outs = [[] for _ in parts]
    errors = []

    def run(i):
        try:
            for w in range(N_WINDOWS):
                t0, t1 = w * WIDTH_MS, (w + 1) * WIDTH_MS
                outs[i].append(parts[i].advance(t0, t1, NET.window_events(reference["events"], t0, t1, 0.025)))
        except BaseException as exc:        # noqa: BLE001 — reported below
            errors.append(exc)
            ag.barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_parts)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60.0)
    assert not errors, errors
    # one exchange per sub-interval, no longer than the shortest delay (0.6 ms = 24 steps)
    assert parts[0].min_delay_steps == 24
    assert ag.calls == [N_WINDOWS * int(np.ceil(80 / 24))] * n_parts
    merged = [merge_outputs(parts, [o[w] for o in outs]) for w in range(N_WINDOWS)]
    g = np.concatenate([m.exports["spikes"][0] for m in merged])
    t = np.concatenate([m.exports["spikes"][1] for m in merged])
    np.testing.assert_array_equal(g, reference["gids"])
    np.testing.assert_array_equal(t, reference["times"])
    np.testing.assert_array_equal(np.concatenate([m.records["v"] for m in merged]), reference["v"])


def test_partition_layout_and_ownership():
    whole = NET.region(n_inh=2)                      # 3 partitions: one without inh cells
    parts = [whole.partition(p, 3) for p in range(3)]
    assert [list(p.local_gids("exc")) for p in parts] == [list(range(0, 11)), list(range(11, 22)),
                                                          list(range(22, 32))]
    assert [list(p.local_gids("inh")) for p in parts] == [[32], [33], []]
    assert list(block(10, 3, 4)) == [8, 9] and list(block(2, 3, 4)) == []
    for grp in ("bg", "bg2", "bg_inh"):
        lines = np.concatenate([p.local_input_lines(grp) for p in parts])
        np.testing.assert_array_equal(lines, np.arange(whole.input_lines[grp].start,
                                                       whole.input_lines[grp].stop))
    np.testing.assert_array_equal(np.sort(np.concatenate([p.probe_ids for p in parts])),
                                  np.arange(len(whole.probes)))
    assert all(p.record_specs() == whole.record_specs() for p in parts)
    # each partition builds only the incoming connections of its cells
    whole.build()
    n_conn = [len(p.net._conns) for p in parts]
    assert sum(n_conn) == len(whole.net._conns) and min(n_conn) > 0
    # events of other partitions' lines are ignored
    p2 = parts[2]
    p2.build()
    foreign = parts[0].local_input_lines("bg")
    p2.begin_window(0.0, 1.0, {"events": (foreign, np.full(foreign.size, 0.5))})
    assert not p2.net._ring.any()


def test_empty_population_partition_runs_and_matches():
    ev = NET.events(NET.region(n_inh=2).n_input_lines, t_end_ms=6.0, seed=9)
    one = NET.region(n_inh=2)
    one.build()
    ref = [one.advance(float(w), w + 1.0, NET.window_events(ev, w, w + 1.0, 0.025)) for w in range(6)]
    whole = NET.region(n_inh=2)
    parts = [whole.partition(p, 3) for p in range(3)]
    for p in parts:
        p.build()
    for w in range(6):
        outs = advance_in_lockstep(parts, float(w), w + 1.0, NET.window_events(ev, w, w + 1.0, 0.025))
        m = merge_outputs(parts, outs)
        np.testing.assert_array_equal(m.records["v"], ref[w].records["v"])
        np.testing.assert_array_equal(m.records["spikes"][1], ref[w].records["spikes"][1])


def test_delays_shorter_than_dt_are_rejected_with_the_projection_key():
    with pytest.raises(CosimError, match=r"projections\.ee\.delay: delay 0\.01 ms is shorter than dt") as e:
        NET.region(ee_delay=(0.01, 0.7))
    assert e.value.key == "engines.ctx.projections.ee.delay"
    with pytest.raises(CosimError, match=r"projections\.ee\.delay"):
        NET.region(ee_delay=(0.02, 0.02)).partition(1, 2)


def test_partition_arguments_are_checked():
    whole = NET.region()
    with pytest.raises(CosimError, match="partition 3 outside"):
        whole.partition(3, 3)
    lone = whole.partition(0, 2)                    # split but no exchange given
    lone.build()
    with pytest.raises(CosimError, match="needs an exchange"):
        lone.advance(0.0, 1.0, {})


def _tiny_net():
    """One local cell (gid 20), five remote sources and one external line onto one site,
    with weights that make floating-point sums order-sensitive."""
    net = Network(0.025, max_window_ms=1.0)
    net.add_cells(discretise(ball_and_stick(dend_nseg=3)), 1, first_gid=20)
    site = net.add_site(20, ("dend", 0.5), "AMPA")
    for pre, w in zip(range(5), [1e-3, 1e-19, 3e-20, 7e-20, 1e-19]):
        net.connect(pre, site, w, 0.5)
    net.add_external(site, 1e-19)
    net.build()
    return net


def test_deliver_sums_in_canonical_order_whatever_the_arrival_order():
    gids = np.array([0, 1, 2, 3, 4, 1, 3], dtype=np.int64)
    times = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.075, 0.075])
    rng = np.random.default_rng(1)
    ref = None
    for trial in range(8):
        net = _tiny_net()
        net.advance(4, deliver=False)
        if trial % 2:                                # one call per spike time, in time order
            for tt in (0.075, 0.1):
                sel = rng.permutation(np.flatnonzero(times == tt))
                net.deliver(gids[sel], times[sel])
        else:                                        # all at once, in any order
            perm = rng.permutation(gids.size)
            net.deliver(gids[perm], times[perm])
        if ref is None:
            ref = net._ring.copy()
            # slot = spike step + 20 (0.5 ms); sum in gid order: 1e-3 absorbs each tiny term
            assert ref[1, 24, 0] == 1e-3 and ref[1, 23, 0] == 1e-19 + 7e-20
        np.testing.assert_array_equal(net._ring, ref)
    net.advance(30, deliver=False)
    with pytest.raises(ValueError, match="too late"):
        net.deliver(np.array([0]), np.array([0.1]))


def test_external_events_and_spikes_sum_the_same_whatever_comes_first():
    """External events and spikes due in one step: the sum must not depend on whether a
    window's events were scheduled before or after the spikes (window cuts)."""
    due = []
    for events_first in (True, False):
        net = _tiny_net()
        net.advance(4, deliver=False)
        if events_first:
            net.schedule(np.array([0, 0]), np.array([0.6, 0.6]))
        net.deliver(np.array([0, 1]), np.array([0.1, 0.1]))     # due at 0.6 ms (step 24)
        if not events_first:
            net.schedule(np.array([0, 0]), np.array([0.6, 0.6]))
        due.append(net._ring[0, 24, 0] + net._ring[1, 24, 0])    # what step 24 adds
    assert due[0] == due[1] == 2e-19 + 1e-3


def test_inline_and_deferred_delivery_give_the_same_bits():
    results = []
    for inline in (True, False):
        net = Network(0.025, max_window_ms=2.0)
        gids = net.add_cells(discretise(ball_and_stick(dend_nseg=3)), 6)
        net.add_cells(discretise(y_shaped(nseg=2)), 3)
        for tgt in range(9):
            site = net.add_site(tgt, ("soma", 0.5), "AMPA")
            for pre in range(9):
                if pre != tgt:
                    net.connect(pre, site, 0.003 + 1e-4 * pre, 0.5 + 0.025 * (pre % 3), (0.3, 100.0, 20.0))
        for g in gids:
            net.add_current_clamp(g, ("soma", 0.5), 1.0 + 0.1 * g, 20.0, 0.3)
        net.add_probe(7, ("soma", 0.5))
        net.build()
        g_all, t_all, vs = [], [], []
        for _ in range(50):                          # 0.5 ms = the shortest delay
            (g, t), v = net.advance(20, deliver=inline)
            if not inline:
                net.deliver(g, t)
            g_all.append(g)
            t_all.append(t)
            vs.append(v)
        results.append((np.concatenate(g_all), np.concatenate(t_all), np.concatenate(vs),
                        net._site_ab.copy()))
    assert results[0][0].size > 9
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
