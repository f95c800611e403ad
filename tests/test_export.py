"""``cosim export`` (NWB, TVB H5) and ``cosim.io`` loaders: each file read back with the
other project's own reader (pynwb + nwbinspector, tvb-library, neo) and compared with the
cosim output it came from."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from _util import run_cli
from cosim.analysis.io import Output
from scenarios import hybrid, write

DURATION_MS = 60.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Hybrid run: Jansen–Rit (y1, y2 and EEG monitor) + a 24 exc / 8 inh spiking v1 with a
    spike-rate monitor."""
    tmp = tmp_path_factory.mktemp("export")
    data = hybrid(duration=DURATION_MS)
    data["record"]["v1"]["rate"] = {"bin": 5.0}
    data["record"]["cortex"]["eeg"] = {"period": 4.0}
    sc = write(tmp / "h.toml", data)
    r = run_cli("run", str(sc), "--output", "h.h5", "--quiet", "--no-monitor", cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp / "h.h5"


@pytest.fixture(scope="module")
def nwb_file(run):
    r = run_cli("export", str(run), "--nwb", "h.nwb", cwd=run.parent)
    assert r.returncode == 0, r.stderr
    return run.parent / "h.nwb"


def test_nwb_units_series_and_scenario_read_back_with_pynwb(run, nwb_file):
    pynwb = pytest.importorskip("pynwb")
    with Output(run) as out, pynwb.NWBHDF5IO(str(nwb_file), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert len(units) == 32                       # every cell, silent ones too
        assert nwb.units.resolution == pytest.approx(0.025e-3)
        n_spikes = 0
        for sp in out.spikes():
            rows = units[units["population"] == sp.population]
            assert len(rows) == sp.n_nodes and list(rows["node_id"]) == list(range(sp.n_nodes))
            assert set(rows["group"]) == {sp.group} and set(rows["engine"]) == {"v1"}
            for k, times_s in zip(rows["node_id"], rows["spike_times"]):
                np.testing.assert_allclose(np.asarray(times_s) * 1000.0,
                                           np.sort(sp.timestamps_ms[sp.node_ids == k]), rtol=1e-12)
                n_spikes += len(times_s)
        assert n_spikes == sum(s.timestamps_ms.size for s in out.spikes()) > 20
        y1 = out.series("cortex", "timeseries")
        ts = nwb.acquisition["cortex_timeseries_y1"]
        np.testing.assert_array_equal(ts.data[:], y1.variable("y1"))
        assert ts.rate == pytest.approx(1000.0 / y1.period_ms)
        assert ts.starting_time == pytest.approx(y1.time_ms[0] / 1000.0)
        assert ts.unit == "mV" and ts.comments == "regions: " + ", ".join(y1.regions)
        misc = nwb.processing["misc"]
        rate = out.series("v1", "rate")
        np.testing.assert_array_equal(misc["v1_rate_exc"].data[:], rate.variable("exc"))
        np.testing.assert_array_equal(misc["cortex_eeg_eeg"].data[:],
                                      out.series("cortex", "eeg").variable())
        assert list(misc["regions"]["label"][:]) == list(out.region_labels())
        assert nwb.source_script == out.f["scenario"][()].decode()
        assert json.loads(nwb.notes)["seed"] == 11


def test_nwb_passes_the_nwb_inspector(nwb_file):
    inspector = pytest.importorskip("nwbinspector")
    # Not applicable to a simulation: a model has no age or species; the 60 ms test run has
    # fewer EEG samples than regions (a real run has far more), which the orientation check
    # takes for transposed data.
    ignore = ["check_subject_age", "check_subject_species_exists", "check_data_orientation"]
    msgs = [m for m in inspector.inspect_nwbfile(nwbfile_path=str(nwb_file), ignore=ignore)
            if m.importance.value >= inspector.Importance.BEST_PRACTICE_VIOLATION.value]
    assert not msgs, [(m.check_function_name, m.message) for m in msgs]


def test_tvb_connectivity_and_time_series_open_in_tvb_library(run):
    from tvb.datatypes.connectivity import Connectivity
    from tvb.datatypes.time_series import TimeSeriesRegion

    r = run_cli("export", str(run), "--tvb", "tvb", cwd=run.parent)
    assert r.returncode == 0, r.stderr
    out_dir = run.parent / "tvb"
    conn = Connectivity.from_file(str(out_dir / "Connectivity.h5"))
    conn.configure()
    ref = Connectivity.from_file("connectivity_76.zip")       # TVB's own copy of the data
    ref.configure()
    with Output(run) as out:
        np.testing.assert_array_equal(conn.weights, out.weights())
        assert [str(x.decode() if isinstance(x, bytes) else x) for x in conn.region_labels] == \
            list(out.region_labels()) == list(ref.region_labels)
        # hemispheres inferred from the labels agree with TVB's own table
        np.testing.assert_array_equal(conn.hemispheres, ref.hemispheres)
        np.testing.assert_allclose(conn.tract_lengths, ref.tract_lengths)
        s = out.series("cortex", "timeseries")
        with h5py.File(out_dir / "TimeSeriesRegion_cortex_timeseries.h5") as f:
            ts = TimeSeriesRegion(data=f["data"][()], time=f["time"][()], connectivity=conn,
                                  sample_period=float(f.attrs["TVB_sample_period"]),
                                  sample_period_unit=str(f.attrs["TVB_sample_period_unit"]),
                                  labels_ordering=json.loads(f.attrs["TVB_labels_ordering"]),
                                  labels_dimensions=json.loads(f.attrs["TVB_labels_dimensions"]))
            idx = f["region_indices"][()]
        ts.configure()
        assert ts.data.shape == (s.data.shape[0], 2, len(s.regions), 1)
        assert ts.sample_period == s.period_ms and ts.sample_rate == pytest.approx(2000.0)  # Hz
        assert [ref.region_labels[i] for i in idx] == list(s.regions)
        assert ts.labels_dimensions["State Variable"] == ["y1", "y2"]
        np.testing.assert_array_equal(ts.data[:, :, :, 0], s.data)


def test_spiketrains_are_neo_trains_annotated_with_their_population(run):
    pytest.importorskip("neo")
    from cosim.io import spiketrains

    trains = spiketrains(run)
    assert len(trains) == 32
    with Output(run) as out:
        for sp in out.spikes():
            mine = [t for t in trains if t.annotations["population"] == sp.population]
            assert [t.annotations["node_id"] for t in mine] == list(range(sp.n_nodes))
            assert {t.annotations["group"] for t in mine} == {sp.group}
            for t in mine:
                k = t.annotations["node_id"]
                np.testing.assert_array_equal(t.rescale("ms").magnitude,
                                              np.sort(sp.timestamps_ms[sp.node_ids == k]))
                assert t.annotations["gid"] == sp.first_gid + k
                assert float(t.t_stop.rescale("ms")) == DURATION_MS
    assert len(spiketrains(run, population="v1.inh")) == 8


@pytest.mark.parametrize("with_xarray", [True, False])
def test_timeseries_is_a_labelled_view(run, with_xarray, monkeypatch):
    from cosim.io import Labelled, timeseries

    if with_xarray:
        pytest.importorskip("xarray")
    else:
        import builtins
        real = builtins.__import__
        monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (
            (_ for _ in ()).throw(ImportError(name)) if name == "xarray" else real(name, *a, **k)))
    v = timeseries(run, "cortex")
    assert isinstance(v, Labelled) != with_xarray
    with Output(run) as out:
        s = out.series("cortex", "timeseries")
    assert v.dims == ("time", "variable", "region")
    np.testing.assert_array_equal(np.asarray(v.coords["time"]), s.time_ms)
    one = v.sel(variable="y2", region=s.regions[3])
    np.testing.assert_array_equal(np.asarray(one.values), s.data[:, 1, 3])
    assert v.attrs["units"] == ["mV", "mV"]


def test_export_errors_are_one_line(run, tmp_path, capsys):
    from cosim.cli import main

    def cli(*args):                           # in process: the CLI's one-line errors
        code = main(list(args))
        return code, capsys.readouterr().err

    code, err = cli("export", str(run))
    assert code == 2 and err.count("\n") == 1 and "nothing to export" in err
    (tmp_path / "x.h5").write_text("no")
    code, err = cli("export", str(tmp_path / "x.h5"), "--tvb", str(tmp_path / "d"))
    assert code == 2 and err.count("\n") == 1 and "x.h5" in err
    code, err = cli("export", str(run), "--nwb", str(run))          # never over the input
    assert code == 2 and "is the file being exported" in err
    (tmp_path / "x.nwb").write_text("mine")
    code, err = cli("export", str(run), "--nwb", str(tmp_path / "x.nwb"))
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1
    assert (tmp_path / "x.nwb").read_text() == "mine"
    from cosim.errors import CosimError
    from cosim.io import timeseries
    with pytest.raises(CosimError, match="no engine 'nope'"):
        timeseries(run, "nope")
