"""Adapters: statistics of the Poisson generator and exactness/causality of the rate
estimator, against the analytic properties of Poisson processes and linear filters."""

from __future__ import annotations

import numpy as np
import pytest

from adapters import RateMap, RateToPoisson, SpikesToRate
from cosim.philox import philox4x64


def test_philox_matches_numpy_bit_for_bit():
    for key, ctr in [((1, 2), (0, 0, 0, 0)), ((2**63 + 5, 12345), (77, 7, 3, 9)),
                     ((0, 0), (2**64 - 1, 0, 0, 0))]:
        ref = np.random.Philox(counter=np.array(ctr, dtype=np.uint64),
                               key=np.array(key, dtype=np.uint64)).random_raw(4)
        c = list(ctr)
        # numpy pre-increments its 256-bit counter (with carry)
        c[0] = (c[0] + 1) % 2**64
        if c[0] == 0:
            c[1] += 1
        got = [int(x) for x in philox4x64(*[np.uint64(v) for v in c], np.uint64(key[0]), np.uint64(key[1]))]
        assert got == [int(x) for x in ref]


def _trains(rate_hz, n_syn=400, duration_ms=20000.0, window_ms=1.0, bin_ms=0.1, c=0.0, seed=3):
    gen = RateToPoisson(np.arange(n_syn), seed, "region", "ampa", correlation=c)
    n_win = int(duration_ms / window_ms)
    rates = np.full(int(round(window_ms / bin_ms)), rate_hz)
    syn, t = [], []
    for k in range(n_win):
        s, tt = gen.generate(k * window_ms, rates, bin_ms)
        assert (tt >= k * window_ms).all() and (tt < (k + 1) * window_ms).all()
        syn.append(s)
        t.append(tt)
    return np.concatenate(syn), np.concatenate(t)


def test_poisson_rate_fano_cv_and_independence():
    rate, n_syn, T = 20.0, 400, 20000.0
    syn, t = _trains(rate, n_syn, T)
    counts = np.bincount(syn, minlength=n_syn)
    # total count ~ Poisson(rate·T·N): recovered rate within 3σ
    expected = rate * T / 1000.0 * n_syn
    assert abs(counts.sum() - expected) < 3 * np.sqrt(expected)
    # Fano factor of 100 ms counts ≈ 1 (standard error ≈ sqrt(2/(n-1)))
    bins = np.floor(t / 100.0).astype(int)
    per = np.zeros((n_syn, int(T / 100.0)))
    np.add.at(per, (syn, bins), 1)
    fano = per.var(axis=1, ddof=1) / per.mean(axis=1)
    assert abs(fano.mean() - 1.0) < 3 * np.sqrt(2.0 / (per.shape[1] - 1)) / np.sqrt(n_syn) + 0.02
    # ISI CV ≈ 1 for an exponential ISI distribution
    cvs = []
    for s in range(0, n_syn, 4):
        isi = np.diff(np.sort(t[syn == s]))
        cvs.append(isi.std() / isi.mean())
    assert abs(np.mean(cvs) - 1.0) < 0.03
    # no cross-correlation: pairwise correlation of 100 ms counts ≈ 0
    cc = np.corrcoef(per[:50])
    off = cc[np.triu_indices(50, 1)]
    assert abs(off.mean()) < 3 * (1 / np.sqrt(per.shape[1])) / np.sqrt(off.size)


def test_correlated_poisson_shares_fraction_c():
    c = 0.3
    syn, t = _trains(10.0, n_syn=40, duration_ms=40000.0, c=c)
    counts = np.bincount(syn, minlength=40)
    expected = 10.0 * 40.0 * 40
    assert abs(counts.sum() - expected) < 3 * np.sqrt(expected / c)  # overdispersed by sharing
    per = np.zeros((40, 400))
    np.add.at(per, (syn, np.floor(t / 100.0).astype(int)), 1)
    cc = np.corrcoef(per)[np.triu_indices(40, 1)]
    assert abs(cc.mean() - c) < 0.03


def test_streams_do_not_depend_on_partition_or_windowing():
    ids = np.arange(100)
    rates = np.linspace(5, 50, 40)  # time-varying rate over 4 ms at 0.1 ms bins
    whole = RateToPoisson(ids, 9, "r", "nmda")
    s_all, t_all = whole.generate(0.0, rates, 0.1)
    # split the synapses over two "ranks": bit-identical
    parts = [RateToPoisson(sub, 9, "r", "nmda").generate(0.0, rates, 0.1) for sub in (ids[::2], ids[1::2])]
    s = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    order = np.lexsort((s, t))
    np.testing.assert_array_equal(s[order], s_all)
    np.testing.assert_array_equal(t[order], t_all)
    # and the time into two windows: the same events, times equal to rounding
    g = RateToPoisson(ids, 9, "r", "nmda")
    w = [g.generate(2.0 * k, rates[20 * k:20 * (k + 1)], 0.1) for k in range(2)]
    np.testing.assert_array_equal(np.concatenate([x[0] for x in w]), s_all)
    np.testing.assert_allclose(np.concatenate([x[1] for x in w]), t_all, rtol=0, atol=1e-12)
    # a checkpoint restores the stream exactly
    g = RateToPoisson(ids, 9, "r", "nmda")
    g.generate(0.0, rates[:20], 0.1)
    st = g.state()
    a = g.generate(2.0, rates[20:], 0.1)
    g.restore(st)
    b = g.generate(2.0, rates[20:], 0.1)
    np.testing.assert_array_equal(a[1], b[1])


def test_independent_trains_go_on_where_the_buffer_ran_out():
    """The generator's buffers are sized for the mean count plus ten standard deviations; a
    window with more events goes on from the first synapse that did not fit, its stream left
    as it was.  Forced here with buffers of 7 events: the same events, in the same order, and
    the same per-synapse residuals and counters as one call with room for all of them."""
    from adapters.rate_to_poisson import _cumulative, _independent

    ids = np.arange(3, 203, dtype=np.uint64)
    g = RateToPoisson(ids, 4, "r", "ampa")
    cum = np.empty(6)
    _cumulative(np.array([80.0, 0.0, 400.0, 20.0, 150.0]), 0.5, 1.0, cum)
    whole = (g._residual.copy(), g._counter.copy(), np.empty(5000, np.uint64), np.empty(5000))
    n_all, done = _independent(cum, 3.0, 0.5, ids, whole[0], whole[1], g._key[0], g._key[1],
                               whole[2], whole[3], 0, 0)
    assert done == ids.size and 30 < n_all < 110      # (Poisson, mean 65)
    res, cnt = g._residual.copy(), g._counter.copy()
    out_s, out_t = np.empty(7, np.uint64), np.empty(7)
    n, i, calls = 0, 0, 0
    while i < ids.size:
        n, i = _independent(cum, 3.0, 0.5, ids, res, cnt, g._key[0], g._key[1], out_s, out_t, i, n)
        calls += 1
        if i < ids.size:
            assert n <= out_s.size
            out_s = np.concatenate((out_s, np.empty(7, np.uint64)))
            out_t = np.concatenate((out_t, np.empty(7)))
    assert calls > 5 and n == n_all
    np.testing.assert_array_equal(out_s[:n], whole[2][:n_all])
    np.testing.assert_array_equal(out_t[:n], whole[3][:n_all])
    np.testing.assert_array_equal(res, whole[0])
    np.testing.assert_array_equal(cnt, whole[1])


def test_generate_grows_its_buffers_without_drawing_twice(monkeypatch):
    """:meth:`RateToPoisson.generate` with its first buffers forced to 16 events (every
    window overflows them): the same events and streams as a generator with room."""
    import types

    from adapters import rate_to_poisson

    ids, rates = np.arange(300), np.full(5, 300.0)
    roomy = RateToPoisson(ids, 5, "r", "ampa")
    expected = [roomy.generate(w * 1.0, rates, 0.2) for w in range(10)]
    # the buffer size is mean + 10·sqrt(mean + 1) + 16: with this sqrt it is 16
    monkeypatch.setattr(rate_to_poisson, "math", types.SimpleNamespace(sqrt=lambda x: -(x - 1.0) / 10))
    tight = RateToPoisson(ids, 5, "r", "ampa")
    for w, (s_ref, t_ref) in enumerate(expected):
        s, t = tight.generate(w * 1.0, rates, 0.2)
        assert s.size > 16
        np.testing.assert_array_equal(s, s_ref)
        np.testing.assert_array_equal(t, t_ref)
    for k, v in tight.state().items():
        np.testing.assert_array_equal(v, roomy.state()[k])


@pytest.mark.parametrize("ids", [np.arange(40), np.arange(40)[::-1].copy()], ids=["ascending", "descending"])
def test_events_are_sorted_by_time_then_synapse(ids):
    """Both orders of the ids give the events by time, ties by synapse id (as
    ``np.lexsort((ids, times))``): correlation 1 makes every synapse copy every mother
    event, so each time is shared by all 40 synapses."""
    s, t = RateToPoisson(ids, 5, "r", "ampa", correlation=1.0).generate(0.0, np.full(10, 400.0), 0.5)
    assert s.dtype == np.int64 and s.size == 40 * np.unique(t).size > 0
    order = np.lexsort((s, t))
    np.testing.assert_array_equal(order, np.arange(s.size))
    np.testing.assert_array_equal(s[:40], np.arange(40))


@pytest.mark.parametrize("correlation", [0.0, 0.4])
def test_a_negative_rate_counts_as_zero(correlation):
    """The rate → Poisson adapter's rate ``gain · drive + offset`` may go below 0; such a
    bin makes no events and draws nothing: the same events and stream state as 0 Hz."""
    rates = np.array([-50.0, 1200.0, -1e-9, 3000.0, -7.0])
    a = RateToPoisson(np.arange(60), 3, "r", "ampa", correlation)
    b = RateToPoisson(np.arange(60), 3, "r", "ampa", correlation)
    for w in range(3):
        ea = a.generate(2.5 * w, rates, 0.5)
        eb = b.generate(2.5 * w, np.maximum(rates, 0.0), 0.5)
        assert ea[0].size > 0
        np.testing.assert_array_equal(ea[0], eb[0])
        np.testing.assert_array_equal(ea[1], eb[1])
    for k, v in a.state().items():
        np.testing.assert_array_equal(v, b.state()[k])


def test_inhomogeneous_rate_follows_the_profile():
    # rate 0 in the first half of each window, 80 Hz in the second: no events in the first half
    syn, t = _trains(0.0, n_syn=1, duration_ms=1.0)  # warm the kernels
    gen = RateToPoisson(np.arange(500), 1, "r", "ampa")
    rates = np.r_[np.zeros(5), np.full(5, 80.0)]
    n_first = n_second = 0
    for k in range(2000):
        _, tt = gen.generate(k * 1.0, rates, 0.1)
        phase = tt - k
        n_first += (phase < 0.5).sum()
        n_second += (phase >= 0.5).sum()
    expected = 80.0 * 0.5e-3 * 500 * 2000
    assert n_first == 0
    assert abs(n_second - expected) < 3 * np.sqrt(expected)


def test_rate_estimator_counts_exactly():
    conv = SpikesToRate({"E": np.arange(0, 80), "I": np.arange(80, 100)}, bin_ms=0.5)
    gids = np.array([0, 5, 85, 79, 99, 1])
    times = np.array([0.01, 0.49, 0.51, 1.2, 1.999, 0.0])   # t = 0 is the previous window's
    r = conv.convert(0.0, 2.0, gids, times)
    # bin 0 = (0, 0.5]: two E spikes → 2 / (80 · 0.5 ms) = 50 Hz
    np.testing.assert_allclose(r[:, 0], [50.0, 0.0, 25.0, 0.0])
    np.testing.assert_allclose(r[:, 1], [0.0, 100.0, 0.0, 100.0])
    assert conv.dropped == 1


@pytest.mark.parametrize("kernel", ["exponential", "alpha"])
def test_kernels_unit_gain_causal_and_match_continuous_response(kernel):
    tau, b = 5.0, 0.1
    conv = SpikesToRate({"P": np.arange(10)}, bin_ms=b, kernel=kernel, tau_ms=tau)
    # one spike of one cell in the bin (10, 10.1] ms in a 10-cell population: impulse of
    # area 1/10 spike/cell
    n = 1000
    out = np.concatenate([conv.convert(w * 1.0, (w + 1) * 1.0,
                                       np.array([0]) if w == 10 else np.array([], dtype=int),
                                       np.array([10.05]) if w == 10 else np.array([]))
                          for w in range(n // 10)])
    t_end = b * np.arange(1, n + 1)  # sample time of each output
    # causality: nothing before the spike's bin ends
    assert (out[t_end <= 10.0 + 1e-12, 0] == 0.0).all()
    # continuous response to a box of width b at 10 ms with height 1/(10·b) spikes/ms/cell
    area_hz_ms = 1000.0 / 10.0
    s = t_end - 10.0
    if kernel == "exponential":
        step = lambda u: np.where(u > 0, 1 - np.exp(-np.clip(u, 0, None) / tau), 0.0)
    else:
        step = lambda u: np.where(u > 0, 1 - np.exp(-np.clip(u, 0, None) / tau) * (1 + np.clip(u, 0, None) / tau), 0.0)
    exact = area_hz_ms / b * (step(s) - step(s - b))
    np.testing.assert_allclose(out[:, 0], exact, rtol=1e-9, atol=1e-9)
    # unit DC gain: the integral of the response equals the impulse area
    assert abs(out[:, 0].sum() * b - area_hz_ms) < 1e-3 * area_hz_ms


def test_chunked_rate_equals_one_shot():
    rng = np.random.default_rng(0)
    gids = rng.integers(0, 50, 3000)
    times = np.sort(rng.uniform(0, 100, 3000))
    a = SpikesToRate({"E": np.arange(50)}, 0.5, "alpha", 3.0)
    one = a.convert(0.0, 100.0, gids, times)
    b = SpikesToRate({"E": np.arange(50)}, 0.5, "alpha", 3.0)
    win = [(times > w) & (times <= w + 1) for w in range(100)]   # windows (w, w + 1]
    chunks = [b.convert(w, w + 1.0, gids[m], times[m]) for w, m in enumerate(win)]
    np.testing.assert_array_equal(np.concatenate(chunks), one)


def test_jansen_rit_maps_invert_each_other():
    fwd = RateMap("sigmoid")
    inv = RateMap("inverse_sigmoid")
    v = np.linspace(-5, 15, 50)
    np.testing.assert_allclose(inv(fwd(v)), v, atol=1e-9)
    # S(v0) = e0 (in Hz: 2.5)
    assert fwd(np.array([6.0]))[0] == pytest.approx(2.5)
    assert RateMap("linear", gain=2.0, offset=1.0)(np.array([3.0]))[0] == 7.0


def test_one_input_group_is_driven_by_one_adapter(tmp_path):
    from cosim.errors import CosimError
    from cosim.scenario import load_scenario
    from _util import REPO

    text = (REPO / "scenarios" / "default.toml").read_text()
    text = text.replace('input = "bg_inh"', 'input = "bg_exc"')
    p = tmp_path / "twice.toml"
    p.write_text(text)
    with pytest.raises(CosimError, match=r"^twice.toml: adapters.v1_in_inh.input: input group "
                                         r"'bg_exc' of engine 'v1' is already driven by adapter 'v1_in_exc'$"):
        load_scenario(p)
