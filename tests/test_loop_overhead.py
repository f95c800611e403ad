"""The one-process loop's cheaper paths give the numbers of the plain ones (bitwise):

* :class:`cosim.bus_node.RegionRate` (one kernel call) against
  :meth:`adapters.SpikesToRate.from_counts` of the pooled counts, its mean and map;
* :class:`cosim.sonata.SpikeBuffers` filing every buffered window at the flush against
  filing each window on its own (stable sort by time, split by population);
* :func:`cosim.messages.decode_output` (a plan per key set) inverting
  :func:`~cosim.messages.encode_output`.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from adapters.config import SpikesToRateSpec
from adapters.maps import RateMap
from cosim.bus_node import RegionRate
from cosim.messages import decode_output, encode_output
from cosim.sonata import SpikeBuffers, create_population


@pytest.mark.parametrize("kernel", ["none", "exponential", "alpha"])
@pytest.mark.parametrize("rate_map", [RateMap("linear", gain=0.001, offset=0.3),
                                      RateMap("inverse_sigmoid", e0=0.0025, v0=6.0, r=0.56)])
def test_region_rate_is_from_counts_bitwise(kernel, rate_map):
    spec = SpikesToRateSpec("out", "s0", None, kernel, 5.0, rate_map)
    fast, ref = RegionRate(spec, 37, 0.1), RegionRate(spec, 37, 0.1)
    rng = np.random.default_rng(1)
    for _ in range(50):
        counts = rng.integers(0, 6, (10, 3))
        got = fast.afferent(counts)
        rate = ref.conv.from_counts(counts.sum(axis=1, keepdims=True))[:, 0]
        assert np.array_equal(got, ref.spec.map(rate))
        assert fast.last_rate_hz == float(rate.mean())
    assert all(np.array_equal(fast.state()[k], ref.conv.state()[k]) for k in ("y", "z"))


def _filed_one_by_one(windows, lo_hi):
    """Reference: each window sorted by time (stable) and split, as before the batching."""
    out = {name: ([], []) for name, _, _ in lo_hi}
    for gids, times in windows:
        order = np.argsort(times, kind="stable")
        g, t = gids[order], times[order]
        for name, lo, hi in lo_hi:
            mine = (g >= lo) & (g < hi)
            out[name][0].append((g[mine] - lo).astype(np.uint64))
            out[name][1].append(t[mine])
    return {n: (np.concatenate(a), np.concatenate(b)) for n, (a, b) in out.items()}


def test_spike_buffers_batch_files_as_window_by_window(tmp_path):
    from cosim.engines.spiking import spike_spec

    spec = spike_spec("s0", 0.025, {"exc": range(0, 6), "inh": range(6, 10)})
    buf = SpikeBuffers()
    pops = buf.route("s0", spec)
    rng = np.random.default_rng(2)
    windows = []
    for k in range(7):                      # ties in time, any gid order, an empty window
        n = 0 if k == 3 else int(rng.integers(1, 12))
        times = k + 0.025 * rng.integers(1, 6, n).astype(np.float64)
        windows.append((rng.integers(0, 10, n).astype(np.int64), times))
        buf.add(("s0", spec.dataset), windows[-1])
    with h5py.File(tmp_path / "s.h5", "w") as f:
        for pop in pops:
            create_population(f, pop)
        assert buf.bytes_to_write(f) > 0
        buf.write(f)
        want = _filed_one_by_one(windows, [(name, lo, hi) for name, _, lo, hi in pops])
        for name in want:
            ids, ts = want[name]
            assert np.array_equal(f[f"spikes/{name}/node_ids"][()], ids), name
            assert np.array_equal(f[f"spikes/{name}/timestamps"][()], ts), name


def test_decode_output_inverts_encode_output():
    g, t = np.array([3, 1], dtype=np.int32), np.array([0.5, 0.25])
    for _ in range(2):                      # the second time through the cached plan
        msg = encode_output({"live_rate_hz": np.array(4.5)},
                            {"v": np.ones((2, 1, 3)), "spikes": (g, t), "odd:t": np.zeros(1)},
                            (1.0, 2.0, 3.0, 0))
        x, r, timing = decode_output(msg)
        assert list(x) == ["live_rate_hz"] and float(x["live_rate_hz"]) == 4.5
        assert list(r) == ["v", "spikes", "odd:t"]
        assert r["spikes"][0].dtype == np.int64 and np.array_equal(r["spikes"][0], g)
        assert np.array_equal(r["spikes"][1], t) and np.array_equal(r["v"], np.ones((2, 1, 3)))
        assert list(timing) == [1.0, 2.0, 3.0, 0.0]
