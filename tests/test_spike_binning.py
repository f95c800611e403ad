"""One spike-binning rule: bin b of a window holds t ∈ (t0 + b·bin, t0 + (b+1)·bin].

Pins the rule at exact bin edges, its robustness for grid-stamped times in floating point,
conservation of counts, and that every user — the spiking part's bus counts, the
spikes → rate converter and the spike-rate monitor — bins the same spikes the same way."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.spikes_to_rate import SpikesToRate, count_spikes, spike_bins
from cosim.engines.base import WindowOutput
from cosim.monitors import SpikeGroup, SpikeRateMonitor
from cosim.engines.base import Engine, Export, Take
from cosim.parts import Part

DT, BIN, WINDOW = 0.025, 0.1, 1.0
N_E, N_I = 8, 4


@pytest.mark.parametrize("t0", [0.0, 3.0, 0.1 + 0.2, 7 * 0.1, 12345.6])
def test_rule_at_exact_edges(t0):
    t = np.array([t0, t0 + DT, t0 + BIN, t0 + BIN + DT, t0 + 2 * BIN, t0 + 10 * BIN,
                  t0 + 10 * BIN + DT, t0 - DT])
    np.testing.assert_array_equal(spike_bins(t, t0, BIN), [-1, 0, 0, 1, 1, 9, 10, -1])
    counts, dropped = count_spikes(np.zeros(t.size, dtype=np.int64), t, t0, BIN, 10,
                                   np.array([0]), 1)
    # the spike at t0 belongs to the previous window; t0 − dt and t0 + 10·bin + dt are outside
    assert dropped == 3
    np.testing.assert_array_equal(counts[:, 0], [2, 2, 0, 0, 0, 0, 0, 0, 0, 1])


def test_grid_stamps_in_floating_point_follow_the_integer_step_rule():
    # t0 and stamps computed the ways engines and runtimes compute them (products and sums)
    spb = int(round(BIN / DT))
    for k in range(0, 4000, 37):
        t0 = k * WINDOW
        n0 = int(round(t0 / DT))
        n = np.arange(n0 - 2, n0 + int(WINDOW / DT) + 2)     # step indices around the window
        stamp = (n + 1) * DT                                  # stamped at the step's end
        summed = t0 + (n - n0 + 1) * DT
        expect = (n - n0) // spb
        np.testing.assert_array_equal(spike_bins(stamp, t0, BIN), expect)
        np.testing.assert_array_equal(spike_bins(summed, t0, BIN), expect)
    acc = 0.0                                                 # 0.1 + 0.1 + … (1000 terms)
    for _ in range(1000):
        acc += BIN
    assert spike_bins(np.array([acc]), 0.0, BIN)[0] == 999


def test_counts_are_conserved():
    rng = np.random.default_rng(4)
    gids = rng.integers(0, N_E + N_I, 5000)
    times = rng.integers(0, 200, 5000) * DT                    # grid stamps in [0, 5] ms
    pop = np.r_[np.zeros(N_E, np.int64), np.ones(N_I, np.int64)]
    t0, t1 = 1.0, 3.0
    counts, dropped = count_spikes(gids, times, t0, BIN, int(round((t1 - t0) / BIN)), pop, 2)
    inside = (times > t0 + 1e-12) & (times <= t1 + 1e-12)
    assert counts.sum() == inside.sum() and dropped == (~inside).sum()
    np.testing.assert_array_equal(counts.sum(axis=0),
                                  np.bincount(pop[gids[inside]], minlength=2))


class _StubEngine(Engine):
    """Replays given spikes window by window, as a multicompartment engine exports them."""

    type_name = "stub"
    exports = Export.SPIKE_COUNTS
    takes = Take.DRIVE
    name = "hc"
    dt_ms = DT

    def __init__(self, gids, times):
        self.gids, self.times = gids, times
        self.region_indices = np.array([0])

    @classmethod
    def from_config(cls, name, reader, ctx):  # pragma: no cover
        raise NotImplementedError

    def record_specs(self):
        return []

    def build(self):
        pass

    def populations(self):                           # the last cell is in no population
        return {"exc": range(0, N_E), "inh": range(N_E, N_E + N_I), "other": range(N_E + N_I, N_E + N_I + 1)}

    def advance(self, t0, t1, inputs):
        m = (self.times > t0 + 1e-9) & (self.times <= t1 + 1e-9)
        return WindowOutput(exports={"spikes": (self.gids[m], self.times[m])},
                            records={"spikes": (self.gids[m], self.times[m])})


def test_part_converter_and_monitor_bin_the_same_spikes_alike():
    rng = np.random.default_rng(7)
    n_windows = 6
    n_steps = int(round(n_windows * WINDOW / DT))
    steps = rng.integers(0, n_steps, 3000)
    steps[:40] = np.arange(40) * 4 + 3               # stamps exactly on bin edges
    gids = rng.integers(0, N_E + N_I + 1, steps.size)
    times = (steps + 1) * DT                         # stamped at the end of the step
    n_bins = int(round(WINDOW / BIN))

    eng = _StubEngine(gids, times)
    pops = {p: eng.populations()[p] for p in ("exc", "inh")}
    part = Part(eng, ("hc", 0), coupled=True, bus_dt_ms=BIN, populations=pops)
    conv = SpikesToRate({"exc": np.arange(N_E), "inh": np.arange(N_E, N_E + N_I)}, BIN)
    mon = SpikeRateMonitor([SpikeGroup("exc", "hc", N_E, 0, N_E),
                            SpikeGroup("inh", "hc", N_I, N_E, N_E + N_I)], BIN)
    sizes = np.array([N_E, N_I], dtype=np.float64)
    pop = np.r_[np.zeros(N_E, np.int64), np.ones(N_I, np.int64), [-1]]
    total = 0
    for k in range(n_windows):
        t0, t1 = k * WINDOW, (k + 1) * WINDOW
        run = part.step(k, t0, t1, {"drive": np.zeros((n_bins, 1))})[0]["counts"]
        m = (times > t0 + 1e-9) & (times <= t1 + 1e-9)
        ours, _ = count_spikes(gids[m], times[m], t0, BIN, n_bins, pop, 2)
        from_conv = conv.convert(t0, t1, gids[m], times[m]) * sizes * BIN / 1000.0
        from_mon = mon.update_spikes({"hc": (gids[m], times[m])}, t1)[:, :, 0] * sizes * BIN / 1000.0
        np.testing.assert_array_equal(ours, run)
        np.testing.assert_allclose(from_conv, run, rtol=0, atol=1e-9)
        np.testing.assert_allclose(from_mon, run, rtol=0, atol=1e-9)
        total += run.sum()
    assert total == (gids < N_E + N_I).sum()         # nothing lost at window or bin edges
    assert conv.dropped == (gids == N_E + N_I).sum()


def test_monitor_bins_longer_than_windows_resume_and_match_the_integer_rule():
    """Bins of 2.5 ms over 1 ms windows (a bin is emitted by the window that completes it;
    the spikes of an open bin are carried over, also through a checkpoint), id ranges
    that leave cells out: the monitor's rates equal counts found by integer step
    arithmetic (stamp (n + 1)·dt is in bin n // (bin/dt)), to the bit."""
    rng = np.random.default_rng(11)
    bin_ms, n_windows = 2.5, 12
    spb = int(round(bin_ms / DT))
    n_steps = int(round(n_windows * WINDOW / DT))
    steps = np.sort(rng.integers(0, n_steps, 4000))
    steps[::97] = (steps[::97] // spb) * spb + spb - 1    # some stamps exactly on bin edges
    steps.sort()
    gids = rng.integers(0, N_E + N_I + 3, steps.size)
    times = (steps + 1) * DT
    groups = [SpikeGroup("exc", "hc", N_E, 0, N_E), SpikeGroup("inh", "hc", N_I, N_E, N_E + N_I)]

    def run(restart_at=None):
        mon = SpikeRateMonitor(groups, bin_ms)
        out = []
        for k in range(n_windows):
            if k == restart_at:                       # resume from a checkpoint
                saved = mon.state()
                mon = SpikeRateMonitor(groups, bin_ms)
                mon.restore(saved)
            t0, t1 = k * WINDOW, (k + 1) * WINDOW
            m = (times > t0 + 1e-9) & (times <= t1 + 1e-9)
            out.append(mon.update_spikes({"hc": (gids[m], times[m])}, t1))
        return np.concatenate(out)

    got = run()
    n_bins = int(n_windows * WINDOW // bin_ms)                  # completed bins only
    assert got.shape == (n_bins, 2, 1)
    for g, (lo, hi, n) in enumerate([(0, N_E, N_E), (N_E, N_E + N_I, N_I)]):
        mine = (gids >= lo) & (gids < hi)
        counts = np.bincount(steps[mine] // spb, minlength=n_bins)[:n_bins]
        np.testing.assert_array_equal(got[:, g, 0], counts / (n * bin_ms / 1000.0))
    for k in (1, 2, 5, 7):
        np.testing.assert_array_equal(run(restart_at=k), got)
