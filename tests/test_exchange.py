"""The distributed bus's pattern (cosim/exchange.py): every part receives exactly the
samples it reads, from the part that owns them — against a brute-force computation from
the weights, and against what the neural-mass engine itself lists as its external sources;
and the parts' inputs equal the central bus's (cosim/bus.py) bit for bit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import scenarios as S
from cosim.bus import Bus, BusPart
from cosim.coupling_layout import coupling_layout
from cosim.engines.base import Export, Take
from cosim.exchange import PartLink, exchange_pattern
from cosim.parts import make_part
from cosim.plan import make_plan
from cosim.scenario import load_scenario
from cosim.transport import InProcessTransport


def brute_force(weights, parts):
    """``{(owner, reader): set of regions}`` by looping over every weight.  ``parts``:
    key → (takes, exports, regions, has a rate adapter)."""
    owner = {}
    for key, (takes, exports, regions, rate) in parts.items():
        if exports is Export.AFFERENT:
            for j in regions:
                owner[int(j)] = key
        elif exports is Export.SPIKE_COUNTS and rate and key[1] == 0:
            owner[int(regions[0])] = key
    expect: dict = {}
    n = weights.shape[0]
    for q, (takes, _, regions, _) in parts.items():
        own = {int(r) for r in regions}
        for j in range(n):
            if takes is Take.SOURCES:
                reads = j not in own and any(weights[i, j] != 0 for i in own)
            elif takes is Take.DRIVE:
                reads = weights[int(regions[0]), j] != 0
            else:
                reads = False
            if reads and j in owner:
                expect.setdefault((owner[j], q), set()).add(j)
    return expect


def pattern_sends(pattern):
    got = {}
    for key, r in pattern.routes.items():
        for dest, cols in r.sends_to.items():
            got[(key, dest)] = {int(c) for c in cols}
    return got


def check_recv_mirrors_send(pattern):
    """What a reader expects from an owner is what the owner sends it, in its read order."""
    for dest, r in pattern.routes.items():
        for src, pos in r.recv:
            np.testing.assert_array_equal(r.reads[pos], pattern.routes[src].sends_to[dest])


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    d = tmp_path_factory.mktemp("hybrid")
    return S.write(d / "h.toml", S.hybrid(duration=4.0))


@pytest.mark.parametrize("world", [1, 3, 5, 9])
def test_the_pattern_sends_each_part_exactly_what_it_reads(hybrid, world):
    sc = load_scenario(hybrid)
    layout = coupling_layout(sc)
    plan = make_plan(sc, world)
    pattern = exchange_pattern(sc, layout, plan)
    parts = {}
    for g in plan.groups:
        e = sc.engines[g.name]
        for p in range(g.n_parts):
            parts[(g.name, p)] = (e.takes, e.exports, np.asarray(e.part_regions(p, g.n_parts)),
                                  g.name in layout.outputs_of)
    w = np.asarray(sc.connectome.weights)
    assert pattern_sends(pattern) == brute_force(w, parts)
    check_recv_mirrors_send(pattern)
    # the neural-mass parts read exactly the external sources their engine simulates
    for g in plan.groups:
        if sc.engines[g.name].takes is not Take.SOURCES:
            continue
        for p in range(g.n_parts):
            part = make_part(sc, layout, plan, (g.name, p), None, pattern)
            part.engine.coupled()
            np.testing.assert_array_equal(pattern.routes[(g.name, p)].reads,
                                          part.engine.external_sources)
    # the spiking region's counts go to its first part, which sends its afferent
    v1 = plan.group("v1")
    head = pattern.routes[("v1", 0)]
    assert head.followers == tuple(("v1", p) for p in range(1, v1.n_parts)) and head.rate
    assert set(head.sends_to) == {k for k, r in pattern.routes.items()
                                  if np.isin(head.regions[0], r.reads)}


def _stub_layout(weights, steps, S, n_aff, outputs=()):
    return SimpleNamespace(active=lambda plan: True, coupled=("a", "b", "c", "d"),
                           outputs_of={n: None for n in outputs}, steps=steps, window_steps=S,
                           n_afferent=n_aff, read_ahead=0, bus_dt_ms=0.1)


def _stub_scenario(weights, engines):
    return SimpleNamespace(connectome=SimpleNamespace(weights=weights,
                                                      region_labels=[f"r{i}" for i in range(len(weights))]),
                           engines=engines)


class _Eng:
    def __init__(self, regions, takes, exports, split=True):
        self.regions, self.takes, self.exports, self.split = np.asarray(regions), takes, exports, split

    def part_regions(self, p, n):
        if not self.split:
            return self.regions
        return np.array_split(self.regions, n)[p]


def _random_case(seed):
    """A sparse random connectome (self-connections, regions nobody simulates, interleaved
    blocks) with a split neural mass, a split spiking region, a drive-only engine."""
    rng = np.random.default_rng(seed)
    n = 14
    w = np.where(rng.random((n, n)) < 0.3, rng.random((n, n)), 0.0)
    steps = rng.integers(3, 9, size=(n, n))
    engines = {"a": _Eng([0, 2, 3, 5, 7, 8, 11], Take.SOURCES, Export.AFFERENT),
               "b": _Eng([4], Take.DRIVE, Export.SPIKE_COUNTS, split=False),
               "c": _Eng([9], Take.DRIVE, Export.NOTHING, split=False),
               "d": _Eng([1, 6, 10], Take.SOURCES, Export.AFFERENT)}
    plan = SimpleNamespace(groups=[SimpleNamespace(name=k, n_parts=m) for k, m in
                                   (("a", 3), ("b", 2), ("c", 1), ("d", 2))])
    return w, steps, engines, plan


@pytest.mark.parametrize("seed", range(6))
def test_random_connectomes_brute_force_and_central_bus(seed):
    w, steps, engines, plan = _random_case(seed)
    S, n_aff = 3, 2
    sc = _stub_scenario(w, engines)
    layout = _stub_layout(w, steps, S, n_aff, outputs=("b",))
    pattern = exchange_pattern(sc, layout, plan)
    parts = {(g.name, p): (engines[g.name].takes, engines[g.name].exports,
                           engines[g.name].part_regions(p, g.n_parts), g.name == "b")
             for g in plan.groups for p in range(g.n_parts)}
    assert pattern_sends(pattern) == brute_force(w, parts)
    check_recv_mirrors_send(pattern)

    # run windows through the links and through the central bus: the same inputs, bitwise
    conn = SimpleNamespace(weights=w)
    bus = Bus(conn, steps, S, n_aff)
    bparts = {key: bus.add_part(BusPart(key[0], key[1], t, np.asarray(r)))
              for key, (t, e, r, _) in parts.items() if t is not Take.NOTHING}
    bus.finalise()
    rate_aff = {}
    links = {key: PartLink(pattern, key, steps, w, _FakeRate(rate_aff, key) if key == ("b", 0) else None)
             for key in parts}
    tr = InProcessTransport()
    rng = np.random.default_rng(100 + seed)
    L = pattern.initial_length
    init = {key: rng.random((L + 2, n_aff, len(r))) for key, (t, e, r, _) in parts.items()
            if e is Export.AFFERENT}
    for key, link in links.items():
        link.send_initial(tr, {"afferent": init[key]} if key in init else {})
    for link in links.values():
        link.recv_initial(tr)
    for key, a in init.items():
        bus.put_initial(bparts[key].regions, a[-L:])
    bus.put_initial(np.array([4]), np.full((L, n_aff, 1), 0.25))
    for k in range(7):
        for key, link in links.items():
            got, want = link.input(k), bus.input(k, bparts[key])
            assert got.keys() == want.keys()
            for name in got:
                np.testing.assert_array_equal(got[name], want[name])
        exports = {key: {"afferent": rng.random((S, n_aff, len(parts[key][2])))} for key in init}
        counts = {key: {"counts": rng.integers(0, 5, size=(S, 2))} for key in parts if key[0] == "b"}
        for key, link in links.items():
            link.send(k, exports.get(key) or counts.get(key, {}), tr)
        for link in links.values():
            link.combine(k, tr)
        for link in links.values():
            link.receive(k, tr)
        for key, ex in exports.items():
            bus.put_window(k, bparts[key].regions, ex["afferent"])
        total = counts[("b", 0)]["counts"] + counts[("b", 1)]["counts"]
        np.testing.assert_array_equal(rate_aff["counts"], total)
        bus.put_window(k, np.array([4]), rate_aff["aff"].reshape(-1, 1, 1) * np.ones((1, n_aff, 1)))


class _FakeRate:
    """Stands in for RegionRate: an afferent that depends on the summed counts."""

    last_rate_hz = 0.0

    def __init__(self, seen, key):
        self.seen = seen

    def initial_afferent(self):
        return 0.25

    def afferent(self, counts):
        self.seen["counts"] = counts
        self.seen["aff"] = counts.sum(axis=1) * 0.125 + 0.5
        return self.seen["aff"]


# -- run-ahead ---------------------------------------------------------------------------------

def run_ahead_scenario(d, duration=30.0, **simulation_keys):
    """The hybrid scenario (rV1's 0-ms self-connection left out): every input of the
    spiking region is delayed by ≥ 2 windows, so its part runs ahead."""
    return S.write(d / "ra.toml", S.hybrid(duration=duration, **simulation_keys))


def self_delay_scenario(d, self_mm, duration=4.0, sync=1.0, **simulation_keys):
    """The hybrid scenario with rV1's self-connection kept (``driven_self_connections =
    "keep"``) and given a tract length of ``self_mm`` (3 mm/ms: 3 mm is 1 ms), in an
    ``.npz`` copy of connectivity_76."""
    from cosim.connectome import load_connectome

    c = load_connectome("tvb:connectivity_76")
    R = c.index_of("rV1")
    lengths = np.array(c.tract_lengths_mm, dtype=np.float64)
    lengths[R, R] = self_mm
    np.savez(d / f"c{self_mm:g}.npz", weights=np.asarray(c.weights), tract_lengths=lengths,
             region_labels=np.array(c.region_labels), centres=np.asarray(c.centres_mm))
    data = S.hybrid(duration=duration, sync=sync, **simulation_keys)
    data["connectome"] = S.connectome(str(d / f"c{self_mm:g}.npz"), allow_disconnected=True,
                                      driven_self_connections="keep")
    return S.write(d / f"self{self_mm:g}.toml", data)


def test_run_ahead_is_decided_from_the_delays(tmp_path, hybrid):
    # rV1's self-connection kept at one window (3 mm = 1 ms = S): served, but no run-ahead
    one_window = self_delay_scenario(tmp_path, 3.0)
    for path, v1_defers in ((one_window, False), (run_ahead_scenario(tmp_path), True)):
        sc = load_scenario(path)
        layout = coupling_layout(sc)
        for world in (1, 9):
            routes = exchange_pattern(sc, layout, make_plan(sc, world)).routes
            for key, r in routes.items():
                R = r.regions[0] if r.regions.size else -1
                d = np.asarray(layout.steps)[R, r.reads] if r.takes is Take.DRIVE else None
                assert r.defer == (key[0] == "v1" and v1_defers), key
                if r.defer:
                    assert d.min() >= 2 * layout.window_steps
    sc = load_scenario(one_window)
    R = list(sc.connectome.region_labels).index("rV1")
    assert sc.connectome.weights[R, R] != 0
    assert coupling_layout(sc).steps[R, R] == coupling_layout(sc).window_steps


def test_run_ahead_gives_the_lock_step_bits_and_resumes(tmp_path, monkeypatch):
    import cosim.runtime as rt
    from _util import assert_same_data, crash_and_resume, h5_data
    from cosim.runtime import run_scenario

    scen = run_ahead_scenario(tmp_path, duration=30.0, checkpoint_every=7.0)
    run_scenario(load_scenario(scen), output=tmp_path / "ahead.h5", progress_stream=None)
    real = rt.exchange_pattern

    def lock_step(*a):
        pattern = real(*a)
        assert any(r.defer for r in pattern.routes.values())
        for r in pattern.routes.values():
            r.defer = False
        return pattern

    monkeypatch.setattr(rt, "exchange_pattern", lock_step)
    run_scenario(load_scenario(scen), output=tmp_path / "lock.h5", progress_stream=None)
    monkeypatch.setattr(rt, "exchange_pattern", real)
    assert_same_data(h5_data(tmp_path / "ahead.h5"), h5_data(tmp_path / "lock.h5"), "run-ahead")
    # a crash after window 24, then resume from the checkpoint of window 21 (the part
    # caught up before saving it)
    assert_same_data(h5_data(crash_and_resume(scen, tmp_path / "crash.h5", at_window=24)),
                     h5_data(tmp_path / "lock.h5"), "resumed")


def test_a_part_checkpoint_without_bus_history_is_refused(hybrid):
    """A part checkpoint of the central-bus era holds no bus history: resuming from it
    would start the part from zeros, so it is an error naming the engine."""
    from cosim.errors import CosimError

    sc = load_scenario(hybrid)
    layout = coupling_layout(sc)
    plan = make_plan(sc, 1)
    pattern = exchange_pattern(sc, layout, plan)
    for key in pattern.routes:
        part = make_part(sc, layout, plan, key, None, pattern)
        state = {k: v for k, v in part.link.state().items()}
        part.link.restore(state)                                    # its own state: fine
        with pytest.raises(CosimError, match=f"engine '{key[0]}' partition 0 holds no bus history"):
            part.link.restore({})
