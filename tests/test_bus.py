"""The delayed connectome bus: an impulse at region j arrives at region i exactly d_ij
bus steps later, weighted by w_ij, whatever the window it falls in; causality checks."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.bus import Bus, BusPart, check_cross_delays
from cosim.engines.base import Take
from cosim.connectome import load_connectome, make_connectome
from cosim.errors import CosimError


def _line_connectome():
    # 0 → 1 (12 steps), 0 → 2 (25 steps), 1 → 2 (10 steps); weights 0.5, 2.0, 1.0
    w = np.zeros((3, 3))
    L = np.zeros((3, 3))
    w[1, 0], L[1, 0] = 0.5, 3.6
    w[2, 0], L[2, 0] = 2.0, 7.5
    w[2, 1], L[2, 1] = 1.0, 3.0
    return make_connectome(w, L, ["a", "b", "c"])


@pytest.mark.parametrize("impulse_step", [1, 7, 10, 23])
def test_impulse_arrives_exactly_after_the_delay(impulse_step):
    c = _line_connectome()
    S = 10
    steps = c.delay_steps(3.0, 0.1)            # rint(L / 3 / 0.1) → 12, 25, 10
    assert steps[1, 0] == 12 and steps[2, 0] == 25 and steps[2, 1] == 10
    bus = Bus(c, steps, S, 1)
    pa = bus.add_part(BusPart("A", 0, Take.SOURCES, np.array([0])))
    pb = bus.add_part(BusPart("B", 0, Take.DRIVE, np.array([1])))
    pc = bus.add_part(BusPart("C", 0, Take.SOURCES, np.array([2])))
    bus.finalise()
    assert list(pc.sources) == [0, 1] and list(pa.sources) == []
    bus.put_initial(np.arange(3), np.zeros((bus.initial_length(), 1, 3)))
    n_windows = 6
    seen_b, seen_c = {}, {}
    for k in range(n_windows):
        drive = bus.drive_input(k, pb)                 # s_b at steps kS … kS+S−1
        for m in range(S):
            if drive[m, 0] != 0.0:
                seen_b[k * S + m] = drive[m, 0]
        src = bus.sources_input(k, pc)               # samples the part must store
        if k > 0:
            for m in range(S):
                if src[m, 0, 0] != 0.0:                  # region a's sample at step (k−1)S+1+m
                    seen_c[(k - 1) * S + 1 + m] = src[m, 0, 0]
        # region a fires one impulse of height 1 at step `impulse_step` (export of its window)
        a = np.zeros((S, 1, 1))
        if k * S < impulse_step <= (k + 1) * S:
            a[impulse_step - k * S - 1, 0, 0] = 1.0
        bus.put_window(k, np.array([0]), a)
        bus.put_window(k, np.array([1]), np.zeros((S, 1, 1)))
    # a spiking region reads w·a(t − d): exactly one nonzero step, 12 steps after the impulse
    assert seen_b == {impulse_step + 12: 0.5}
    # a neural-mass part receives the raw sample with its time stamp, for its own ring
    assert seen_c == ({impulse_step: 1.0} if impulse_step <= (n_windows - 1) * S else {})


def test_initial_history_is_delivered_whole():
    c = _line_connectome()
    bus = Bus(c, c.delay_steps(3.0, 0.1), 10, 1)
    bus.add_part(BusPart("A", 0, Take.SOURCES, np.array([0, 1])))
    pc = bus.add_part(BusPart("C", 0, Take.SOURCES, np.array([2])))
    bus.finalise()
    L = bus.initial_length()
    assert L == 26                                   # max delay 25 steps + t = 0
    hist = np.arange(L * 2, dtype=float).reshape(L, 1, 2)
    bus.put_initial(np.array([0, 1]), hist)
    got = bus.sources_input(0, pc)
    np.testing.assert_array_equal(got, hist)


def test_cross_engine_delay_shorter_than_sync_interval_is_named():
    c = load_connectome("tvb:connectivity_76")
    owner = np.zeros(76, dtype=np.int64)
    owner[c.index_of("rCCA")] = 1          # its shortest fibre: 4.93 mm → 1.6 ms at 3 mm/ms
    steps = c.delay_steps(3.0, 0.1)
    check_cross_delays(c, owner, ["cortex", "cca"], steps, 16, 0.1, 3.0, "s.toml")
    with pytest.raises(CosimError) as err:
        check_cross_delays(c, owner, ["cortex", "cca"], steps, 20, 0.1, 3.0, "s.toml")
    msg = str(err.value)
    assert msg.startswith("s.toml: simulation.sync_interval: 2 ms is longer than the delay of the connection")
    assert "rCCA" in msg and "(1.6 ms: 4.93328 mm at 3 mm/ms)" in msg and "at most 1.6 ms" in msg
    # self-connections never cross engines (connectivity_76 has 66, all of length 0)
    assert np.diag(c.tract_lengths_mm).max() == 0 and (np.diag(c.weights) > 0).sum() == 66
    # the temporal pole's shortest connection is 21.6 mm: 7.2 ms at 3 mm/ms → Δ = 7 ms is fine
    owner[:] = 0
    owner[c.index_of("rTCPOL")] = 1
    check_cross_delays(c, owner, ["cortex", "tcpol"], steps, 70, 0.1, 3.0, "s.toml")
    with pytest.raises(CosimError, match="at most 7.2 ms"):
        check_cross_delays(c, owner, ["cortex", "tcpol"], steps, 80, 0.1, 3.0, "s.toml")
