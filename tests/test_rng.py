"""cosim.rng: the one random-key scheme — its exact encoding (against an independent
implementation), unambiguous ids, independent streams, and numba Philox ≡ numpy Philox for
the keys it produces."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from cosim import rng
from cosim.engines.base import BuildContext
from cosim.philox import philox4x64
from cosim.rng import DOMAINS, NodeStreams, Streams, encode, stream, stream_key

ROOT = Path(__file__).resolve().parents[1]


def _reference_key(seed, domain, *ids):
    """The documented encoding, written independently with struct + hashlib."""
    msg = b""
    for x in (seed, domain, *ids):
        if isinstance(x, str):
            b = x.encode("utf-8")
            msg += b"s" + struct.pack("<I", len(b)) + b
        else:
            msg += b"i" + struct.pack("<q", x)
    d = hashlib.sha256(msg).digest()
    return struct.unpack("<QQ", d[:16])


def test_encoding_is_the_documented_one():
    assert encode(7, "ab", -1) == (b"i" + (7).to_bytes(8, "little") + b"s\x02\x00\x00\x00ab"
                                   + b"i" + b"\xff" * 8)
    assert encode(0, "é") == b"i" + bytes(8) + b"s\x02\x00\x00\x00\xc3\xa9"


@pytest.mark.parametrize("args", [
    (42, "neural_mass.noise", 3),
    (0, "multicompartment.connect", "spiking", "ee", 17),
    (2**63 - 1, "rate_to_poisson", "hc", "drive"),
    (5, "x", -(2**63), "ünïcode", ""),
])
def test_key_matches_an_independent_implementation(args):
    assert tuple(int(k) for k in stream_key(*args)) == _reference_key(*args)


def test_fixed_known_key():
    # pinned: a change of the scheme must be deliberate (it changes every run's numbers)
    k = stream_key(42, "neural_mass.noise", 3)
    assert k.dtype == np.uint64 and k.shape == (2,)
    assert [int(x) for x in k] == list(_reference_key(42, "neural_mass.noise", 3))
    assert [int(x) for x in k] == [10906692746299942919, 16959026507975417108]


def test_distinct_domains_ids_and_seeds_give_distinct_keys():
    keys = {tuple(int(x) for x in stream_key(s, d, *ids))
            for s in (0, 1) for d in DOMAINS for ids in [(), (0,), (1,), ("0",), ("a", 0)]}
    assert len(keys) == 2 * len(DOMAINS) * 5


@pytest.mark.parametrize("a, b", [
    (("a", "bc"), ("ab", "c")),
    (("a", "b"), ("a\x00b",)),
    ((1,), ("1",)),
    ((1, 2), (12,)),
    ((), ("",)),
    ((0,), ()),
    ((np.int64(2**32),), (0, 1)),
])
def test_ids_are_not_ambiguous(a, b):
    assert encode(1, "d", *a) != encode(1, "d", *b)
    assert not np.array_equal(stream_key(1, "d", *a), stream_key(1, "d", *b))


def test_numpy_integers_equal_python_ints_and_bad_ids_are_rejected():
    assert np.array_equal(stream_key(np.uint8(3), "d", np.int32(-4)), stream_key(3, "d", -4))
    for bad in (True, 1.0, None, 2**63, -(2**63) - 1):
        with pytest.raises((TypeError, ValueError)):
            stream_key(1, "d", bad)
    with pytest.raises(TypeError):
        stream_key(1, "")
    with pytest.raises(ValueError):
        Streams(-1)
    with pytest.raises(TypeError):
        Streams(True)


def test_numba_philox_equals_numpy_philox_for_scheme_keys():
    for args in [(42, "neural_mass.noise", 3), (9, "rate_to_poisson", "r", "nmda")]:
        key = stream_key(*args)
        raw = np.random.Philox(key=key).random_raw(4 * 5)
        got = []
        for n in range(5):  # numpy's n-th block is philox4x64((n+1, 0, 0, 0), key)
            got += [int(x) for x in philox4x64(np.uint64(n + 1), np.uint64(0), np.uint64(0),
                                               np.uint64(0), key[0], key[1])]
        assert got == [int(x) for x in raw]
        # and the Generator is exactly that bit generator
        a = stream(*args).integers(0, 2**63, 8)
        b = np.random.Generator(np.random.Philox(key=key)).integers(0, 2**63, 8)
        np.testing.assert_array_equal(a, b)


def test_a_stream_does_not_depend_on_other_streams():
    s = Streams(11)
    alone = s.generator("neural_mass.noise", 5).standard_normal(16)
    many = NodeStreams(s, "neural_mass.noise", [9, 2, 5, 0])
    others = [s.generator("neural_mass.initial", 5).random(3) for _ in range(3)]
    out = np.empty((4, 16))
    many.standard_normal(out)
    np.testing.assert_array_equal(out[2], alone)
    np.testing.assert_array_equal(NodeStreams(11, "neural_mass.noise", [5]).standard_normal(
        np.empty((1, 16)))[0], alone)
    assert not np.array_equal(others[0][:1], alone[:1])


def test_node_streams_state_round_trip():
    ns = Streams(3).nodes("neural_mass.noise", [0, 4])
    ns.standard_normal(np.empty((2, 3)))
    st = ns.pack_state()
    a = ns.standard_normal(np.empty((2, 5))).copy()
    ns.unpack_state(st)
    np.testing.assert_array_equal(ns.standard_normal(np.empty((2, 5))), a)


def test_build_context_carries_the_streams():
    args = dict(file="s.toml", connectome=None, seed=7, duration_ms=1.0, sync_interval_ms=1.0,
                record_period_ms=1.0)
    assert BuildContext(**args).rng == Streams(7)
    assert BuildContext(**args, rng=Streams(7)).rng.seed == 7
    with pytest.raises(ValueError):
        BuildContext(**args, rng=Streams(8))
    assert Streams.of(Streams(7)) == Streams.of(7) == Streams(7)


def test_every_domain_used_in_cosim_is_in_the_table():
    """The domains passed as literals to the scheme in cosim/ and adapters/ are exactly
    those of DOMAINS, and every one is in the module docstring's table."""
    call = re.compile(r"""(?:rng\.key|rng\.generator|rng\.nodes|NodeStreams|stream_key|\bstream)\(\s*"""
                      r"""(?:[\w.]+,\s*)?"([a-z_.]+)\"""")
    used = set()
    for path in list((ROOT / "cosim").rglob("*.py")) + list((ROOT / "adapters").rglob("*.py")):
        used |= set(call.findall(path.read_text()))
    used |= {"neural_mass.initial"}   # passed through cfg.initial_history as a value
    assert used == set(DOMAINS), used ^ set(DOMAINS)
    for d in DOMAINS:
        assert f"``{d}``" in rng.__doc__
