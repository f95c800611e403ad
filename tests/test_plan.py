"""The plan (which rank runs what) from the engines' declarations only, on stub engines;
the messages of the window protocol and their encoding; the in-process transport."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cosim.engines.base import Engine, Export, Take
from cosim.errors import CosimError
from cosim.messages import Kind, decode_output, encode_output
from cosim.plan import make_plan
from cosim.transport import BUS, InProcessTransport, pack, unpack


class Stub(Engine):
    type_name = "stub"
    exports = Export.AFFERENT
    takes = Take.SOURCES

    def __init__(self, name, work=1.0, max_parts=1):
        self.name, self.dt_ms = name, 0.1
        self._work, self._max = work, max_parts

    @classmethod
    def from_config(cls, name, reader, ctx):  # pragma: no cover - not read from a file
        raise NotImplementedError

    def record_specs(self):
        return []

    def build(self):
        pass

    def advance(self, t0, t1, inputs):  # pragma: no cover
        raise NotImplementedError

    def work(self):
        return self._work

    def max_parts(self):
        return self._max


def scenario(*engines):
    return SimpleNamespace(engines={e.name: e for e in engines}, path=Path("s.toml"))


def test_one_process_runs_everything_on_rank_0():
    plan = make_plan(scenario(Stub("a", max_parts=9), Stub("b")), 1)
    assert plan.in_process and [g.ranks for g in plan.groups] == [(0,), (0,)]


def test_each_engine_gets_a_rank_then_extra_ranks_go_to_the_most_work_per_rank():
    sc = scenario(Stub("small", work=10.0, max_parts=8), Stub("big", work=35.0, max_parts=8),
                  Stub("fixed", work=1000.0, max_parts=1))
    plan = make_plan(sc, 8)          # bus + 3 engines + 4 extra
    parts = {g.name: g.n_parts for g in plan.groups}
    # work per rank: big 35 → 17.5 → 11.7 → 8.75 while small stays 10 → then small 2 (5)
    assert parts == {"small": 2, "big": 4, "fixed": 1}
    ranks = [r for g in plan.groups for r in g.ranks]
    assert sorted(ranks) == list(range(1, 8)) and plan.role(0) == ("bus", None, 0)
    assert plan.role(3) == ("engine", "big", 0) and plan.role(4) == ("engine", "big", 1)


def test_an_engine_is_never_split_beyond_its_max_parts():
    sc = scenario(Stub("a", work=100.0, max_parts=2), Stub("b", work=1.0, max_parts=3))
    assert {g.name: g.n_parts for g in make_plan(sc, 6).groups} == {"a": 2, "b": 3}
    with pytest.raises(CosimError, match="at most 6 processes"):
        make_plan(sc, 7)


def test_too_few_processes_name_the_engines():
    with pytest.raises(CosimError, match="at least 3.*a, b"):
        make_plan(scenario(Stub("a"), Stub("b")), 2)


def test_output_message_roundtrip_keeps_every_array_and_spike_pair():
    exports = {"afferent": np.arange(6.0).reshape(3, 1, 2), "spikes": (np.array([3, 1]), np.array([0.5, 0.25]))}
    records = {"timeseries": np.ones((2, 3, 4)), "spikes": (np.array([7], np.int64), np.array([1.5]))}
    msg = unpack(pack(encode_output(exports, records, (0.1, 0.2, 0.3, 15))))
    ex, rec, timing = decode_output(msg)
    assert set(ex) == {"afferent", "spikes"} and set(rec) == {"timeseries", "spikes"}
    np.testing.assert_array_equal(ex["afferent"], exports["afferent"])
    np.testing.assert_array_equal(ex["spikes"][0], [3, 1])
    np.testing.assert_array_equal(rec["spikes"][1], [1.5])
    assert rec["spikes"][0].dtype == np.int64 and timing.tolist() == [0.1, 0.2, 0.3, 15.0]


def test_kinds_are_distinct_tags():
    assert len({int(k) for k in Kind}) == len(Kind)


def test_in_process_transport_is_fifo_per_sender_receiver_and_kind():
    t = InProcessTransport()
    t.send(("a", 0), Kind.INPUT, {"k": np.array(1)}, BUS)
    t.send(("a", 0), Kind.INPUT, {"k": np.array(2)}, BUS)
    t.send(("b", 0), Kind.INPUT, {"k": np.array(3)}, BUS)
    assert int(t.recv(BUS, Kind.INPUT, ("a", 0))["k"]) == 1
    assert int(t.recv(BUS, Kind.INPUT, ("b", 0))["k"]) == 3
    assert int(t.recv(BUS, Kind.INPUT, ("a", 0))["k"]) == 2
    with pytest.raises(RuntimeError, match="never sent"):
        t.recv(BUS, Kind.OUTPUT, ("a", 0))
