"""The one-process loop's cheaper paths give the numbers of the plain ones (bitwise):

* :class:`cosim.bus_node.RegionRate` (one kernel call, and the bus's block with a linear
  map in the same call) against :meth:`adapters.SpikesToRate.from_counts` of the pooled
  counts, its mean and map;
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
    fast, block, ref = (RegionRate(spec, 37, 0.1) for _ in range(3))
    rng = np.random.default_rng(1)
    for _ in range(50):
        counts = rng.integers(0, 6, (10, 3))
        got = fast.afferent(counts)
        got_block = block.afferent_block(counts, 2)     # the bus's (S, n_aff, 1) block
        rate = ref.conv.from_counts(counts.sum(axis=1, keepdims=True))[:, 0]
        want = ref.spec.map(rate)
        assert np.array_equal(got, want)
        assert got_block.shape == (10, 2, 1)
        assert np.array_equal(got_block, want.reshape(-1, 1, 1) * np.ones((1, 2, 1)))
        assert fast.last_rate_hz == block.last_rate_hz == float(rate.mean())
    for r in (fast, block):
        assert all(np.array_equal(r.state()[k], ref.conv.state()[k]) for k in ("y", "z"))


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


def test_h5fast_append_writes_what_resize_and_setitem_write(tmp_path):
    """:func:`cosim.h5fast.append` (H5Dset_extent + one hyperslab write) against h5py's
    ``resize`` + ``d[n0:n1] = x``: same extents and bits, for series blocks, 1-d scales,
    uint64 ids and blocks narrower than the dataset (a resumed run's timing rows);
    :class:`cosim.h5fast.Attrs` rewrites attributes in place, their stored type kept."""
    from cosim import h5fast

    rng = np.random.default_rng(3)
    with h5py.File(tmp_path / "a.h5", "w", rdcc_nbytes=0) as fa, \
            h5py.File(tmp_path / "b.h5", "w", rdcc_nbytes=0) as fb:
        specs = {"s": ((0, 2, 5), (None, 2, 5), "f8", (7, 2, 5)),
                 "t": ((0,), (None,), "f8", (256,)), "ids": ((0,), (None,), "u8", (64,)),
                 "w": ((0, 4, 3), (None, None, 3), "f8", (16, 4, 3))}
        for f in (fa, fb):
            for name, (shape, maxshape, dtype, chunks) in specs.items():
                f.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=chunks,
                                 fillvalue=np.nan if name == "w" else 0)
            f.attrs.update(windows_completed=0, t_completed_ms=0.0)
        attrs = h5fast.Attrs(fb)
        for k in range(9):
            n = int(rng.integers(0, 12))
            blocks = {"s": rng.normal(size=(n, 2, 5)), "t": rng.normal(size=n),
                      "ids": rng.integers(0, 1 << 40, n).astype(np.uint64),
                      "w": rng.normal(size=(n, 2 + k % 3, 3))}
            for name, x in blocks.items():
                d = fa[name]
                n0 = d.shape[0]
                d.resize(n0 + x.shape[0], axis=0)
                if name == "w":
                    d[n0:, :x.shape[1]] = x
                else:
                    d[n0:] = x
                assert h5fast.append(fb[name], x, h5fast.length(fb[name])) == d.shape[0]
            fa.attrs["windows_completed"] = k + 1
            fa.attrs["t_completed_ms"] = 2.5 * k
            attrs.set("windows_completed", k + 1)
            attrs.set("t_completed_ms", 2.5 * k)
        for name in specs:
            a, b = fa[name][()], fb[name][()]
            assert a.shape == b.shape and a.dtype == b.dtype, name
            assert np.array_equal(a, b, equal_nan=True), name
        for name in ("windows_completed", "t_completed_ms"):
            assert fa.attrs[name] == fb.attrs[name]
            assert fa.attrs[name].dtype == fb.attrs[name].dtype, name


def test_output_handed_over_counts_and_decodes_as_the_encoded_message():
    """In one process an ``OUTPUT`` travels as a :class:`cosim.messages.Output`: its
    ``nbytes`` is the payload of :func:`encode_output`'s message (what the counters count),
    and the coordinator reads the same exports, records and timing from it (bitwise) as
    :func:`decode_output` gives of the encoded message."""
    from cosim.messages import Output
    from cosim.transport import payload_nbytes

    rng = np.random.default_rng(4)
    for n in (0, 1, 7):
        g = rng.integers(0, 50, n).astype(np.int32)            # encoded as int64
        t = np.sort(rng.random(n))
        cases = [({}, {}), ({"live_rate_hz": np.array(3.25)}, {"y1": rng.normal(size=(n, 1, 4)),
                                                              "spikes": (g, t)}),
                 ({"live_rate_hz": 2.5}, {"spikes": (list(g), t), "v": rng.normal(size=(n, 1, 2))})]
        for live, records in cases:
            timing = (float(rng.random()), 0.0, 1e-6 * n, 0)
            out, msg = Output(live, records, timing), encode_output(live, records, timing)
            assert out.nbytes == payload_nbytes(msg)
            assert "@stop" not in out
            x, r, tm = decode_output(msg)
            assert list(out.timing[:3]) == tm.tolist()[:3]
            assert list(out.records) == list(r) and list(out.exports) == list(x)
            for name, v in r.items():
                w = out.records[name]
                if isinstance(v, tuple):
                    assert np.array_equal(np.asarray(w[0], dtype=np.int64), v[0])
                    assert np.array_equal(np.asarray(w[1], dtype=np.float64), v[1])
                else:
                    assert np.array_equal(w, v)
            assert {k: float(v) for k, v in out.exports.items()} == {k: float(v) for k, v in x.items()}


def test_h5fast_append_writes_what_h5py_writes(tmp_path):
    """:func:`cosim.h5fast.append` (its dataspaces and memory types made once per shape and
    dtype) against h5py's ``d.resize`` + ``d[a:b] = x``: the same stored values, shapes and
    dtypes, with conversions (float32 → float64, int64 → uint64), narrower blocks and blocks
    of a shape seen before."""
    from cosim import h5fast

    rng = np.random.default_rng(3)
    cases = [("f8", (4,), np.float32), ("f8", (2, 5), np.float64), ("u8", (), np.int64),
             ("f8", (), np.float64)]
    with h5py.File(tmp_path / "fast.h5", "w", rdcc_nbytes=0) as fast, \
            h5py.File(tmp_path / "ref.h5", "w") as ref:
        for i, (dtype, tail, src) in enumerate(cases):
            kw = dict(shape=(0,) + tail, maxshape=(None,) + tail, chunks=(7,) + tail, dtype=dtype)
            a, b = fast.create_dataset(f"d{i}", **kw), ref.create_dataset(f"d{i}", **kw)
            n = 0
            for rows in (3, 5, 3, 0, 9, 3):
                width = tail[:1] and (tail[0] - (rows % 2),)     # sometimes narrower
                block = (rng.random((rows,) + width + tail[1:]) * 1000).astype(src)
                assert h5fast.append(a, block) == n + rows
                b.resize(n + rows, axis=0)
                b[(slice(n, n + rows),) + tuple(slice(0, w) for w in block.shape[1:])] = block
                n += rows
        for i in range(len(cases)):
            x, y = fast[f"d{i}"], ref[f"d{i}"]
            assert x.shape == y.shape and x.dtype == y.dtype
            assert np.array_equal(x[()], y[()])
