"""A brain split into several neural-mass engines, coupled as the bus couples them, gives
the same bits as one engine simulating every region.

A tiny router stands in for :mod:`cosim.bus`: it keeps every region's afferent samples
(initial history from :meth:`NeuralMassEngine.initial_afferent`, then each window's
``exports["afferent"]``) and, before window ``k``, gives every engine the samples of its
``external_sources`` it has not had yet — the initial history at ``k = 0``, then steps
``(k−1)S+1 … kS``.  Splits on ``connectivity_76`` (speed 3 mm/ms, dt 0.1 ms):

* one region ``rCCR`` (its connections: ≥ 45 steps) against the other 75;
* the two hemispheres (the shortest connection between them: 16 steps) — windows close to
  that delay make far-sum blocks read external samples that arrive one window later;
* three engines (``{rCCR, lCCR}``, ``{rTCPOL}``, the rest);
* at 30 mm/ms, external connections of 5–8 steps (the ring's *near* edges).
"""

from __future__ import annotations

import numpy as np
import pytest

import cosim.engines.neural_mass as nm_module
from cosim.connectome import load_connectome, make_connectome
from cosim.engines.neural_mass import NeuralMassEngine

DT = 0.1
R = 5                   # rCCR
HEMI_MIN_DELAY = 16     # steps, shortest connection between the hemispheres at 3 mm/ms

SETUPS = {              # coupling → (model, engine keyword arguments)
    "linear": ("wilson_cowan", dict(coupling_parameters={"G": 0.8})),
    "difference": ("stuart_landau", dict(coupling_parameters={"G": 0.05},
                                         parameters={"a": 0.05})),
    "sigmoidal_jansen_rit": ("jansen_rit", dict(coupling_parameters={"G": 8.0})),
}


@pytest.fixture(scope="module")
def conn76():
    return load_connectome("tvb:connectivity_76")


def _engine(conn, coupling, regions, bus, name="nm", **kw):
    model, args = SETUPS[coupling]
    args = dict(args, dt_ms=DT, coupling=coupling, record_period_ms=DT, random_initial=True,
                seed=7, regions=regions, bus=bus)
    args.update(kw)
    return NeuralMassEngine(name, model, conn, **args)


def _run_whole(conn, coupling, S, n_windows, **kw):
    e = _engine(conn, coupling, None, False, **kw)
    recs = [e.advance(k * S * DT, (k + 1) * S * DT, {}).records["timeseries"]
            for k in range(n_windows)]
    return np.concatenate(recs)


class Router:
    """Every region's afferent samples by step; what the bus would send each engine."""

    def __init__(self, engines, n_regions, n_windows, S):
        self.engines, self.S = engines, S
        init = [e.initial_afferent() for e in engines]
        self.L = init[0].shape[0]
        self.hist = np.full((self.L + n_windows * S, init[0].shape[1], n_regions), np.nan)
        for e, a in zip(engines, init):
            assert a.shape == (e.max_delay_steps + 1 + e.bus_read_ahead_steps,
                               e.n_afferent, e.n_regions)
            self.hist[:self.L, :, list(e.region_indices)] = a

    def row(self, step):
        return self.L - 1 + step

    def sources(self, k, e):
        if k == 0:
            rows = slice(0, self.L)
        else:
            rows = slice(self.row((k - 1) * self.S + 1), self.row(k * self.S) + 1)
        return np.ascontiguousarray(self.hist[rows][:, :, e.external_sources])

    def store(self, k, e, afferent):
        rows = slice(self.row(k * self.S + 1), self.row((k + 1) * self.S) + 1)
        self.hist[rows][:, :, list(e.region_indices)] = afferent


def _run_split(conn, coupling, parts, S, n_windows, late=False, engines=None, k0=0,
               router=None, **kw):
    """Run the parts window by window through the router; records in connectome order.
    ``late``: a broken router that sends every window's sources one window too late."""
    if engines is None:
        engines = [_engine(conn, coupling, list(p), True, name=f"part{i}", **kw)
                   for i, p in enumerate(parts)]
    router = router or Router(engines, conn.n_regions, n_windows, S)
    recs = []
    for k in range(k0, n_windows):
        res = []
        for e in engines:
            src = router.sources(k - 1 if late and k > 1 else k, e)
            res.append(e.advance(k * S * DT, (k + 1) * S * DT, {"sources": src}))
        for e, r in zip(engines, res):
            assert r.exports["afferent"].shape == (S, e.n_afferent, e.n_regions)
            router.store(k, e, r.exports["afferent"])
        rec = np.full(res[0].records["timeseries"].shape[:2] + (conn.n_regions,), np.nan)
        for e, r in zip(engines, res):
            rec[:, :, list(e.region_indices)] = r.records["timeseries"]
        recs.append(rec)
    return np.concatenate(recs), engines, router


def _rest(conn, *taken):
    return [i for i in range(conn.n_regions) if i not in taken]


def _assert_same_bits(whole, split):
    assert np.isfinite(whole).all()
    assert whole.shape == split.shape
    if not np.array_equal(whole, split):
        bad = np.argwhere(whole != split)
        raise AssertionError(f"{len(bad)} values differ, first at (step, variable, region) "
                             f"{tuple(bad[0])}: {whole[tuple(bad[0])]!r} vs {split[tuple(bad[0])]!r}")


# -- one region against the rest ------------------------------------------------------------

@pytest.mark.parametrize("coupling", list(SETUPS))
@pytest.mark.parametrize("integrator, evaluation", [("heun", "stage"), ("heun", "step"),
                                                    ("rk4", "stage"), ("rk4", "step")])
@pytest.mark.parametrize("tight", [False, True], ids=["S10", "S=delay"])
def test_one_region_split_is_bitwise(conn76, coupling, integrator, evaluation, tight):
    kw = dict(integrator=integrator, coupling_evaluation=evaluation)
    probe = _engine(conn76, coupling, [R], True, **kw)
    assert probe.min_external_delay_steps == 45
    # the longest window the delays allow (RK4 "stage" reads one step ahead)
    S = 45 - probe.bus_read_ahead_steps if tight else 10
    n_windows = 700 // S
    whole = _run_whole(conn76, coupling, S, n_windows, **kw)
    split, _, _ = _run_split(conn76, coupling, [_rest(conn76, R), [R]], S, n_windows, **kw)
    _assert_same_bits(whole, split)


@pytest.mark.parametrize("coupling", list(SETUPS))
def test_router_sensitivity(conn76, coupling):
    """The comparison can fail: sources sent one window late change the result, in both
    engines (R's own input, and R's afferents to the rest)."""
    kw = dict(integrator="rk4")
    whole = _run_whole(conn76, coupling, 10, 70, **kw)
    late, _, _ = _run_split(conn76, coupling, [_rest(conn76, R), [R]], 10, 70, late=True, **kw)
    assert not np.array_equal(whole[:, :, R], late[:, :, R])
    assert not np.array_equal(whole[:, :, _rest(conn76, R)], late[:, :, _rest(conn76, R)])


# -- hemispheres: external far sums that arrive one window after a block was computed -------

def _hemispheres(conn):
    left = [i for i, lab in enumerate(conn.region_labels) if lab.startswith("l")]
    return [left, _rest(conn, *left)]


@pytest.mark.parametrize("coupling", list(SETUPS))
@pytest.mark.parametrize("integrator, evaluation", [("heun", "stage"), ("rk4", "stage"),
                                                    ("rk4", "step")])
@pytest.mark.parametrize("longest", [False, True], ids=["S10", "S=delay"])
def test_hemisphere_split_is_bitwise(conn76, coupling, integrator, evaluation, longest):
    kw = dict(integrator=integrator, coupling_evaluation=evaluation)
    S = HEMI_MIN_DELAY - (integrator == "rk4" and evaluation == "stage") if longest else 10
    whole = _run_whole(conn76, coupling, S, 600 // S, **kw)
    split, engines, _ = _run_split(conn76, coupling, _hemispheres(conn76), S, 600 // S, **kw)
    assert [e.min_external_delay_steps for e in engines] == [HEMI_MIN_DELAY] * 2
    assert all(e.external_sources.size > 10 for e in engines)
    _assert_same_bits(whole, split)


def test_stale_far_blocks_are_recomputed(conn76, monkeypatch):
    """Without recomputing the far sums that read not-yet-arrived external samples, the
    hemisphere split would differ: the test above does exercise that path."""
    kw = dict(integrator="rk4")
    S = HEMI_MIN_DELAY - 1
    whole = _run_whole(conn76, "sigmoidal_jansen_rit", S, 40, **kw)
    monkeypatch.setattr(nm_module, "far_restart", lambda dnext, *args: dnext)
    split, _, _ = _run_split(conn76, "sigmoidal_jansen_rit", _hemispheres(conn76), S, 40, **kw)
    assert not np.array_equal(whole, split)


# -- three engines, noise, near edges, checkpoints ---------------------------------------------

@pytest.mark.parametrize("S", [10, 44])
@pytest.mark.parametrize("coupling", ["difference", "sigmoidal_jansen_rit"])
def test_three_engine_split_is_bitwise(conn76, coupling, S):
    kw = dict(integrator="rk4")
    b, c = [43, 5], [32]             # {lCCR, rCCR} (connected: 45 steps), {rTCPOL}
    whole = _run_whole(conn76, coupling, S, 700 // S, **kw)
    split, engines, _ = _run_split(conn76, coupling, [_rest(conn76, *b, *c), b, c], S,
                                   700 // S, **kw)
    assert 5 in engines[2].external_sources and 43 not in engines[2].external_sources
    _assert_same_bits(whole, split)


def test_stochastic_split_is_bitwise(conn76):
    kw = dict(integrator="stochastic_heun", noise={"y4": 0.05})
    whole = _run_whole(conn76, "sigmoidal_jansen_rit", 10, 50, **kw)
    split, _, _ = _run_split(conn76, "sigmoidal_jansen_rit", [_rest(conn76, R), [R]], 10, 50, **kw)
    _assert_same_bits(whole, split)


@pytest.mark.parametrize("integrator, S", [("heun", 5), ("rk4", 4), ("rk4", 1)])
def test_near_external_edges_split_is_bitwise(conn76, integrator, S):
    """At 30 mm/ms rCCR's connections are 5–8 steps: kept in the ring's near lists."""
    kw = dict(integrator=integrator, speed_mm_per_ms=30.0)
    probe = _engine(conn76, "sigmoidal_jansen_rit", [R], True, **kw)
    assert probe.min_external_delay_steps == 5
    whole = _run_whole(conn76, "sigmoidal_jansen_rit", S, 400 // S, **kw)
    split, _, _ = _run_split(conn76, "sigmoidal_jansen_rit", [_rest(conn76, R), [R]], S,
                             400 // S, **kw)
    _assert_same_bits(whole, split)


@pytest.mark.parametrize("integrator", ["heun", "rk4"])
def test_varying_initial_history_split_is_bitwise(integrator):
    """A non-constant initial history, and the longest connection crossing engines: the
    samples before t = 0 that RK4's half-step stencil reads come from the initial history
    exchanged (``initial_afferent``: one sample beyond the largest delay for RK4)."""
    rng = np.random.default_rng(3)
    n = 6
    w = rng.uniform(0.2, 1.0, (n, n)) * (rng.random((n, n)) < 0.8)
    lengths = rng.uniform(0.0, 30.0, (n, n))
    a, b = [0, 1, 2, 3], [4, 5]
    lengths[np.ix_(a, b)] = rng.uniform(4.0, 30.0, (4, 2))     # ≥ 13 steps between a and b
    lengths[np.ix_(b, a)] = rng.uniform(4.0, 30.0, (2, 4))
    w[0, 5], lengths[0, 5] = 1.0, 40.0                          # the longest: 133 steps
    conn = make_connectome(w, lengths, [f"r{i}" for i in range(n)])
    t = np.arange(-300, 1)[:, None, None] * DT
    history = 0.5 * np.sin(0.3 * t + np.arange(6)[None, :, None] + np.arange(n)[None, None, :])
    kw = dict(integrator=integrator, random_initial=False)
    whole = _run_whole(conn, "sigmoidal_jansen_rit", 10, 40, initial_history=history, **kw)

    def parts():
        return [_engine(conn, "sigmoidal_jansen_rit", p, True, name=f"part{i}",
                        initial_history=history[:, :, p], **kw) for i, p in enumerate([a, b])]

    split, engines, _ = _run_split(conn, None, None, 10, 40, engines=parts())
    assert engines[0].max_delay_steps == 133
    _assert_same_bits(whole, split)
    if integrator == "rk4":
        # without the extra sample, the first half step reads a wrong value
        engines = parts()
        router = Router(engines, n, 40, 10)
        router.hist[0] = router.hist[1]        # as if only max_delay + 1 samples were sent
        short, _, _ = _run_split(conn, None, None, 10, 40, engines=engines, router=router)
        assert not np.array_equal(whole, short)


def test_split_checkpoint_restores_bitwise(conn76):
    kw = dict(integrator="rk4")
    parts, S, n = _hemispheres(conn76), HEMI_MIN_DELAY - 1, 30
    whole = _run_whole(conn76, "sigmoidal_jansen_rit", S, n, **kw)
    first, engines, router = _run_split(conn76, "sigmoidal_jansen_rit", parts, S, n // 2, **kw)
    snaps = [e.state() for e in engines]
    fresh = [_engine(conn76, "sigmoidal_jansen_rit", p, True, name=f"part{i}", seed=99, **kw)
             for i, p in enumerate(parts)]
    for e, snap in zip(fresh, snaps):
        e.restore(snap)
    big = Router(fresh, conn76.n_regions, n, S)
    big.hist[:router.hist.shape[0]] = router.hist
    rest, _, _ = _run_split(conn76, "sigmoidal_jansen_rit", parts, S, n, engines=fresh,
                            k0=n // 2, router=big)
    _assert_same_bits(whole, np.concatenate([first, rest]))


# -- the engine's side of the protocol ------------------------------------------------------------

def test_external_sources_and_read_ahead(conn76):
    e = _engine(conn76, "sigmoidal_jansen_rit", [R, 43], False)
    w = conn76.weights
    expect = [j for j in range(76) if j not in (R, 43) and (w[[R, 43], j] != 0).any()]
    assert e.external_sources.dtype == np.int64
    assert e.external_sources.tolist() == expect
    assert e.max_delay_steps == int(conn76.delay_steps(3.0, DT)[w != 0].max())
    reads = {(i, ev): _engine(conn76, "sigmoidal_jansen_rit", [R], True, integrator=i,
                              coupling_evaluation=ev).bus_read_ahead_steps
             for i in ("heun", "rk4", "euler_maruyama", "stochastic_heun")
             for ev in ("stage", "step")}
    assert reads.pop(("rk4", "stage")) == 1
    assert set(reads.values()) == {0}


def test_bus_protocol_errors(conn76):
    e = _engine(conn76, "sigmoidal_jansen_rit", [R], True, integrator="rk4")
    n_ext = e.external_sources.size
    with pytest.raises(ValueError, match="needs input 'sources'"):
        e.advance(0.0, 1.0, {})
    L = e.max_delay_steps + 2
    with pytest.raises(ValueError, match=rf"must have shape \(L, 1, {n_ext}\)"):
        e.advance(0.0, 1.0, {"sources": np.zeros((L, 1, n_ext + 1))})
    with pytest.raises(ValueError, match="at most 44 steps"):
        e.advance(0.0, 4.5, {"sources": np.zeros((L, 1, n_ext))})
    e.advance(0.0, 1.0, {"sources": np.zeros((L, 1, n_ext))})
    with pytest.raises(ValueError, match=r"steps 1 … 10 \(10\), got 9"):
        e.advance(1.0, 2.0, {"sources": np.zeros((9, 1, n_ext))})
    plain = _engine(conn76, "sigmoidal_jansen_rit", [R], False)
    with pytest.raises(ValueError, match="not coupled through the bus"):
        plain.advance(0.0, 1.0, {"sources": np.zeros((L, 1, n_ext))})
    plain.build()
    with pytest.raises(RuntimeError, match="before build"):
        plain.bus = True


def test_bus_attribute_set_after_construction(conn76):
    """The runtime builds engines from the scenario, then switches the coupled ones to the
    bus: the same as constructing them with ``bus=True``."""
    a = _engine(conn76, "sigmoidal_jansen_rit", _rest(conn76, R), False)
    a.bus = True
    b = _engine(conn76, "sigmoidal_jansen_rit", _rest(conn76, R), True)
    assert a.external_sources.tolist() == b.external_sources.tolist() == [R]
    assert np.array_equal(a.initial_afferent(), b.initial_afferent())
    for x, y in zip(a._net, b._net):
        assert np.array_equal(x, y)
