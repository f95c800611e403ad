"""Spikes in valid SONATA: libsonata (the reference reader, independent of cosim) reads every
spiking output; populations, node ids and times equal the run's own records."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cosim import recording
from cosim.recording import Recorder
from cosim.analysis.io import Output
from cosim.runtime import run_scenario
from cosim.scenario import load_scenario
from scenarios import hybrid, write

libsonata = pytest.importorskip("libsonata")

DURATION_MS = 60.0


@pytest.fixture(scope="module")
def hybrid_run(tmp_path_factory):
    """The hybrid scenario (exc + inh cell groups of v1) with a spike-rate monitor, run in
    one process; every window's spike records as the recorder received them."""
    tmp = tmp_path_factory.mktemp("sonata")
    data = hybrid(duration=DURATION_MS)
    data["record"]["v1"]["rate"] = {"bin": 5.0}
    sc = load_scenario(write(tmp / "h.toml", data), output=tmp / "h.h5")
    seen: list = []
    original = recording.Recorder._buffer_records   # (one window's, or a batch's)

    def spy(self, outputs, *a, **k):
        if "v1" in outputs and "spikes" in outputs["v1"].records:
            g, t = outputs["v1"].records["spikes"]
            seen.append((np.array(g), np.array(t)))
        return original(self, outputs, *a, **k)

    recording.Recorder._buffer_records = spy
    try:
        run_scenario(sc, progress_stream=None)
    finally:
        recording.Recorder._buffer_records = original
    g = np.concatenate([s[0] for s in seen])
    t = np.concatenate([s[1] for s in seen])
    return tmp / "h.h5", sc.engines["v1"].populations(), g, t


def test_libsonata_reads_one_population_per_cell_group(hybrid_run):
    path, pops, g, t = hybrid_run
    reader = libsonata.SpikeReader(str(path))
    assert sorted(reader.get_population_names()) == ["v1.exc", "v1.inh"]
    assert g.size > 20
    total = 0
    for group, r in pops.items():
        pop = reader[f"v1.{group}"]
        assert pop.sorting == "by_id"              # a completed run: (node_id, time)
        assert pop.time_units == "ms"
        mine = (g >= r.start) & (g < r.stop)
        # the run's own records, sorted by (node id, time) as the file promises
        order = np.lexsort((t[mine], g[mine]))
        want_ids, want_t = (g[mine] - r.start)[order], t[mine][order]
        got = pop.get()                          # [(node_id, timestamp), …]
        ids = np.array([x[0] for x in got], dtype=np.int64)
        ts = np.array([x[1] for x in got])
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(ts, want_t)
        assert ids.min(initial=0) >= 0 and ids.max(initial=0) < len(r)
        assert np.all((np.diff(ids) > 0) | ((np.diff(ids) == 0) & (np.diff(ts) > 0)))
        assert 0.0 < ts.min() and ts.max() <= DURATION_MS
        first = int(want_ids[0])                  # libsonata's own node-id selection
        np.testing.assert_array_equal([x[1] for x in pop.get(node_ids=[first])],
                                      want_t[want_ids == first])
        total += ids.size
    assert total == g.size                      # every spike filed, none twice


def test_sorting_is_the_sonata_hdf5_enum(hybrid_run):
    path = hybrid_run[0]
    with h5py.File(path) as f:
        a = f["spikes/v1.exc"].attrs
        dt = a.get_id("sorting").get_type()
        assert dt.get_class() == h5py.h5t.ENUM
        names = {dt.get_member_name(i).decode(): dt.get_member_value(i) for i in range(dt.get_nmembers())}
        assert names == {"none": 0, "by_id": 1, "by_time": 2}
        assert f["spikes/v1.exc/timestamps"].attrs["units"] == "ms"
        assert f["spikes/v1.exc/node_ids"].dtype == np.uint64
        assert a["first_gid"] == 0 and f["spikes/v1.inh"].attrs["first_gid"] == 24


def test_readers_and_the_rate_monitor_agree_with_the_populations(hybrid_run):
    """cosim's reader rebuilds the engine's gids; the spike-rate monitor (written from the
    same records) counts the same spikes per group: Σ rate·bin·n = spikes in its bins."""
    path, pops, g, t = hybrid_run
    with Output(path) as out:
        gg, tt = out.engine_spikes("v1")
        order = np.lexsort((g, t))
        np.testing.assert_array_equal(gg, g[order])
        np.testing.assert_array_equal(tt, t[order])
        rate = out.series("v1", "rate")
        for k, sp in enumerate(sorted(out.spikes(), key=lambda s: s.first_gid)):
            assert (sp.engine, sp.group, sp.n_nodes) == ("v1", list(pops)[k], len(pops[sp.group]))
            col = rate.variables.index(sp.group)
            n_bins = rate.data.shape[0]
            counted = np.sum(sp.timestamps_ms <= n_bins * 5.0)
            np.testing.assert_allclose(rate.data[:, col, 0].sum() * 5e-3 * sp.n_nodes, counted,
                                       rtol=0, atol=1e-9)


def test_libsonata_reads_a_spike_spec_without_declared_groups(tmp_path):
    """An engine whose spike spec names one population and no groups (a wrapped simulator):
    one SONATA population ``<engine>.<population>`` with the recorded ids as node ids."""
    from types import SimpleNamespace

    from cosim.engines.base import RecordSpec, WindowOutput

    conn = SimpleNamespace(source="t", weights=np.zeros((1, 1)), tract_lengths_mm=np.zeros((1, 1)),
                           region_labels=("H",), centres_mm=None)
    sc = SimpleNamespace(simulation=SimpleNamespace(seed=1, duration_ms=20.0, sync_interval_ms=10.0),
                         path=tmp_path / "s.toml", text="", connectome=conn, engine_types={})
    spec = RecordSpec("spikes", (), (), ("H",), 0.1, attrs={"kind": "spikes", "population": "pyr"})
    rec = Recorder(tmp_path / "o.h5", sc, {"hc": [spec]})
    g = [np.array([3, 1, 3]), np.array([0, 2])]
    t = [np.array([2.5, 0.5, 9.0]), np.array([12.0, 11.0])]     # unsorted within a window
    for k in range(2):
        rec.write_window({"hc": WindowOutput({"spikes": (g[k], t[k])})}, t_end_ms=10.0 * (k + 1))
    rec.close()
    pop = libsonata.SpikeReader(str(tmp_path / "o.h5"))["hc.pyr"]
    assert pop.sorting == "by_id"
    assert pop.get() == [(0, 12.0), (1, 0.5), (2, 11.0), (3, 2.5), (3, 9.0)]
