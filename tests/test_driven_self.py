"""A region whose engine takes drive (a spiking region) and its own self-connection.

The drive of window ``k`` is summed before the window runs, from samples of windows ``< k``.
A self-connection delayed by less than the sync interval would need the region's output of
window ``k`` itself: no bus can serve it (the ring handed out the sample one ring length
old — rV1's 0-ms self-connection on connectivity_76 did).  So it is refused, by the central
bus (:class:`cosim.bus.Bus`), the distributed one (:func:`cosim.exchange.exchange_pattern`)
and at load time, with one message; ``[connectome] driven_self_connections = "drop"`` leaves
it out.  Delayed by ≥ one window, it is served: the drive equals ``Σ_j w_Rj a_j(t − d_Rj)``
summed by brute force from every sample exported, in both buses, bit for bit.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import scenarios as S
from _util import run_cli
from cosim.bus import Bus, BusPart
from cosim.connectome import load_connectome
from cosim.coupling_layout import coupling_layout
from cosim.engines.base import Export, Take
from cosim.errors import CosimError
from cosim.exchange import PartLink, exchange_pattern
from cosim.plan import make_plan
from cosim.scenario import load_scenario
from cosim.transport import InProcessTransport
from test_exchange import self_delay_scenario

S_WIN = 4                        # bus steps per window


class _Eng:
    def __init__(self, regions, takes, exports):
        self.regions, self.takes, self.exports = np.asarray(regions), takes, exports

    def part_regions(self, p, n):          # a spiking region: every part stands for it
        return self.regions if self.takes is Take.DRIVE else np.array_split(self.regions, n)[p]


class _Rate:
    """Stands in for RegionRate: afferent = 0.5 + counts / 8 (exact in binary)."""

    last_rate_hz = 0.0

    def initial_afferent(self):
        return 0.25

    def afferent(self, counts):
        return counts.sum(axis=1) * 0.125 + 0.5


def _case(d_self):
    """Regions 0–2 a neural mass in two parts, region 3 a spiking region in two parts with
    a rate adapter, reading 0, 2 and itself (delay ``d_self``)."""
    w = np.zeros((4, 4))
    w[3, 0], w[3, 2], w[3, 3] = 0.3, 0.7, 1.9
    w[0, 1], w[1, 3], w[2, 0] = 0.2, 0.4, 0.6
    steps = np.full((4, 4), 2 * S_WIN + 1, dtype=np.int64)
    steps[3, 3] = d_self
    steps[3, 0] = 2 * S_WIN
    engines = {"nm": _Eng([0, 1, 2], Take.SOURCES, Export.AFFERENT),
               "sp": _Eng([3], Take.DRIVE, Export.SPIKE_COUNTS)}
    plan = SimpleNamespace(groups=[SimpleNamespace(name="nm", n_parts=2),
                                   SimpleNamespace(name="sp", n_parts=2)])
    labels = ["A", "B", "C", "V"]
    sc = SimpleNamespace(connectome=SimpleNamespace(weights=w, region_labels=labels),
                         engines=engines)
    layout = SimpleNamespace(active=lambda plan: True, coupled=("nm", "sp"),
                             outputs_of={"sp": None}, steps=steps, window_steps=S_WIN,
                             n_afferent=1, read_ahead=0, bus_dt_ms=0.25)
    return w, steps, sc, layout, plan


@pytest.mark.parametrize("d_self", [S_WIN, S_WIN + 1, 2 * S_WIN, 2 * S_WIN + 3])
def test_a_self_connection_of_one_window_or_more_reads_the_output_d_steps_earlier(d_self):
    w, steps, sc, layout, plan = _case(d_self)
    pattern = exchange_pattern(sc, layout, plan)
    assert pattern.routes[("sp", 0)].defer == (d_self >= 2 * S_WIN)
    keys = [(g.name, p) for g in plan.groups for p in range(g.n_parts)]
    links = {k: PartLink(pattern, k, steps, w, _Rate() if k == ("sp", 0) else None)
             for k in keys}
    bus = Bus(SimpleNamespace(weights=w, region_labels=sc.connectome.region_labels),
              steps, S_WIN, 1)
    bparts = {k: bus.add_part(BusPart(k[0], k[1], sc.engines[k[0]].takes,
                                      sc.engines[k[0]].part_regions(k[1], 2))) for k in keys}
    bus.finalise()
    tr = InProcessTransport()
    rng = np.random.default_rng(d_self)
    L = pattern.initial_length
    # a[t] for t = −(L−1) … 0, then every window's samples: the brute-force record
    history = {t: np.zeros(4) for t in range(-(L - 1), 1)}
    init = {}
    for k in keys[:2]:
        regions = bparts[k].regions
        init[k] = rng.random((L, 1, regions.size))
        for i, t in enumerate(range(-(L - 1), 1)):
            history[t][regions] = init[k][i, 0]
        bus.put_initial(regions, init[k])
    for t in history:
        history[t][3] = 0.25
    bus.put_initial(np.array([3]), np.full((L, 1, 1), 0.25))
    for k, link in links.items():
        link.send_initial(tr, {"afferent": init[k]} if k in init else {})
    for link in links.values():
        link.recv_initial(tr)
    srcs = np.flatnonzero(w[3])
    for win in range(6):
        drive = links[("sp", 0)].input(win)["drive"][:, 0]
        np.testing.assert_array_equal(links[("sp", 1)].input(win)["drive"][:, 0], drive)
        np.testing.assert_array_equal(bus.input(win, bparts[("sp", 0)])["drive"][:, 0], drive)
        for m in range(S_WIN):
            acc = 0.0
            for j in srcs:                                   # increasing index, as the bus
                acc += w[3, j] * history[win * S_WIN + m - steps[3, j]][j]
            assert drive[m] == acc, (win, m)
        ex = {k: rng.random((S_WIN, 1, bparts[k].regions.size)) for k in keys[:2]}
        counts = {k: rng.integers(0, 6, size=(S_WIN, 2)) for k in keys[2:]}
        for k, link in links.items():
            link.send(win, {"afferent": ex[k]} if k in ex else {"counts": counts[k]}, tr)
        for link in links.values():
            link.combine(win, tr)
        for link in links.values():
            link.receive(win, tr)
        aff = (counts[("sp", 0)] + counts[("sp", 1)]).sum(axis=1) * 0.125 + 0.5
        for m in range(S_WIN):
            t = win * S_WIN + 1 + m
            history[t] = np.zeros(4)
            for k in keys[:2]:
                history[t][bparts[k].regions] = ex[k][m, 0]
            history[t][3] = aff[m]
        for k in keys[:2]:
            bus.put_window(win, bparts[k].regions, ex[k])
        bus.put_window(win, np.array([3]), aff.reshape(-1, 1, 1))


@pytest.mark.parametrize("d_self", [0, 1, S_WIN - 1])
def test_a_self_connection_shorter_than_a_window_is_refused_by_both_buses(d_self):
    w, steps, sc, layout, plan = _case(d_self)
    with pytest.raises(CosimError) as distributed:
        exchange_pattern(sc, layout, plan)
    bus = Bus(SimpleNamespace(weights=w, region_labels=sc.connectome.region_labels),
              steps, S_WIN, 1)
    bus.add_part(BusPart("nm", 0, Take.SOURCES, np.array([0, 1, 2])))
    bus.add_part(BusPart("sp", 0, Take.DRIVE, np.array([3])))
    with pytest.raises(CosimError) as central:
        bus.finalise()
    for exc in (distributed.value, central.value):
        assert exc.key == "connectome.driven_self_connections"
        assert exc.reason.startswith("the self-connection of V is delayed by ")
        assert "engine sp takes its drive from the bus before each window" in exc.reason
        assert ('set driven_self_connections = "drop"' in exc.reason)
        assert ("shorten the sync interval" in exc.reason) == (d_self > 0)
    # the same problem, in ms for the distributed bus (it knows bus_dt), in steps centrally
    assert f"delayed by {d_self * 0.25:g} ms, less than the sync interval (1 ms)" \
        in distributed.value.reason
    assert f"delayed by {d_self} bus steps, less than the sync interval (4 bus steps)" \
        in central.value.reason
    # a zero weight is no connection, whatever its delay
    w[3, 3] = 0.0
    exchange_pattern(sc, layout, plan)


def _keep(**keys):
    data = S.hybrid(duration=4.0, **keys)
    data["connectome"] = S.connectome(driven_self_connections="keep")
    return data


@pytest.mark.parametrize("make, line", [
    (lambda d: S.write(d / "h.toml", _keep()),
     "h.toml: connectome.driven_self_connections: the self-connection of rV1 is delayed by "
     "0 ms, less than the sync interval (1 ms), but engine v1 takes its drive from the bus "
     "before each window, so it cannot read its own output of the same window; set "
     "driven_self_connections = \"drop\" (the engine's network stands for the region's "
     "recurrence)\n"),
    (lambda d: self_delay_scenario(d, 1.5),                         # 0.5 ms at 3 mm/ms
     "self1.5.toml: connectome.driven_self_connections: the self-connection of rV1 is "
     "delayed by 0.5 ms, less than the sync interval (1 ms), but engine v1 takes its drive "
     "from the bus before each window, so it cannot read its own output of the same window; "
     "set driven_self_connections = \"drop\" (the engine's network stands for the region's "
     "recurrence) or shorten the sync interval to at most 0.5 ms\n"),
])
def test_a_short_self_connection_of_a_spiking_region_is_one_line_at_load(tmp_path, make, line):
    r = run_cli("validate", str(make(tmp_path)), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == line, r.stderr


def test_drop_leaves_out_only_the_spiking_regions_self_connection(tmp_path):
    sc = load_scenario(S.write(tmp_path / "h.toml", S.hybrid(duration=4.0)))
    tvb = load_connectome("tvb:connectivity_76")
    R = tvb.index_of("rV1")
    assert tvb.weights[R, R] == 2.0 and sc.connectome.weights[R, R] == 0.0
    expect = np.array(tvb.weights)
    expect[R, R] = 0.0
    np.testing.assert_array_equal(sc.connectome.weights, expect)
    np.testing.assert_array_equal(sc.connectome.tract_lengths_mm, tvb.tract_lengths_mm)
    routes = exchange_pattern(sc, coupling_layout(sc), make_plan(sc, 1)).routes
    np.testing.assert_array_equal(routes[("v1", 0)].reads,
                                  np.flatnonzero(expect[R]))
    assert R not in routes[("v1", 0)].reads
    # the neural masses keep their own self-connections
    cortex = [int(i) for i in sc.engines["cortex"].region_indices]
    np.testing.assert_array_equal(np.diag(sc.connectome.weights)[cortex],
                                  np.diag(tvb.weights)[cortex])


def test_a_spiking_region_alone_is_not_refused(tmp_path):
    """Without a bus (one engine, no adapters) nobody reads the self-connection."""
    data = S.scenario(S.simulation(duration=2.0),
                      {"v1": S.multicompartment(region="rV1",
                                                cells={"exc": S.ball_and_stick(2, 2)})},
                      connectome=S.connectome(driven_self_connections="keep"))
    sc = load_scenario(S.write(tmp_path / "alone.toml", data))
    R = sc.connectome.index_of("rV1")
    assert sc.connectome.weights[R, R] == 2.0 and not coupling_layout(sc).uses_bus
