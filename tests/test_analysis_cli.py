"""End to end: engines' windows → monitors → Recorder → ``cosim analyze`` / ``cosim plot``."""

import argparse
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from cosim.analysis.cli import add_analyze_arguments, add_plot_arguments, analyze_main, plot_main
from cosim.analysis.fc import fc_agreement, functional_connectivity
from cosim.analysis.io import Output
from cosim.engines.base import RecordSpec, WindowOutput
from cosim.errors import CosimError
from cosim.monitor_config import monitors_from_config
from cosim.recording import Recorder
from cosim.schema import Reader

LABELS = ("A", "B", "C", "D", "H")
DURATION_MS, WINDOW_MS, N_NEURONS, F_ALPHA = 40000.0, 100.0, 40, 10.0


def _fake_scenario(tmp_path):
    w = np.abs(np.random.default_rng(0).standard_normal((5, 5)))
    conn = SimpleNamespace(source="test", weights=w + w.T, tract_lengths_mm=np.ones((5, 5)),
                           region_labels=LABELS, centres_mm=None)
    sim = SimpleNamespace(seed=1, duration_ms=DURATION_MS, sync_interval_ms=WINDOW_MS)
    return SimpleNamespace(simulation=sim, path=tmp_path / "s.toml", text="# test",
                           connectome=conn, engine_types={"cortex": "neural_mass",
                                                          "hc": "multicompartment"})


def _signals(n):
    """Jansen–Rit-like samples (1 ms): y1 − y2 = 10-Hz rhythm whose amplitude follows a
    slow drive shared by A and B, independent for C and D."""
    rng = np.random.default_rng(7)
    t = np.arange(1, n + 1) / 1000.0
    slow = np.cumsum(rng.standard_normal((n, 3)), axis=0) / 300.0
    slow -= slow.mean(axis=0)
    drive = np.stack([slow[:, 0], slow[:, 0], slow[:, 1], slow[:, 2]], axis=1)
    alpha = np.sin(2 * np.pi * F_ALPHA * t[:, None] + rng.uniform(0, 6, 4)[None, :])
    y1 = 8.0 + 3.0 * drive + alpha + 0.2 * rng.standard_normal((n, 4))
    y2 = 2.0 + 0.1 * rng.standard_normal((n, 4))
    return np.stack([np.zeros((n, 4)), y1, y2], axis=1)        # (time, variable, region)


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """A 40-s run of a neural-mass engine (4 regions) and a spiking engine (1 region),
    recorded window by window through the monitors as the runtime would."""
    tmp = tmp_path_factory.mktemp("run")
    sc = _fake_scenario(tmp)
    state = RecordSpec("state", ("y0", "y1", "y2"), ("mV",) * 3, LABELS[:4], 1.0)
    spikes = RecordSpec("spikes", (), (), ("H",), 0.025,
                        attrs={"kind": "spikes", "population": "hc_exc", "n_nodes": N_NEURONS})
    cortex = monitors_from_config(
        Reader({"bold": {"tr": 500.0, "preset": "stephan2007"}, "eeg": {"period": 2.0},
                "rate": {"period": 10.0}}, str(sc.path), "record.cortex"),
        "cortex", [state], model="jansen_rit", region_labels=LABELS)
    hc = monitors_from_config(Reader({"rate": {"bin": 5.0}, "bold": {"tr": 500.0, "scale": 0.05}},
                                     str(sc.path), "record.hc"), "hc", [spikes])
    rec = Recorder(tmp / "run.h5", sc, {"cortex": cortex.record_specs(),
                                        "hc": hc.record_specs()}, flush_every=50)
    n_per = int(WINDOW_MS)
    x = _signals(int(DURATION_MS))
    rng = np.random.default_rng(3)
    for k in range(int(DURATION_MS / WINDOW_MS)):
        t0, t1 = k * WINDOW_MS, (k + 1) * WINDOW_MS
        n_sp = rng.poisson(20.0 * N_NEURONS * WINDOW_MS / 1000.0)     # 20 Hz per neuron
        times = np.sort(rng.uniform(t0, t1, n_sp))
        ids = rng.integers(0, N_NEURONS, n_sp)
        outs = {"cortex": WindowOutput({"state": x[k * n_per:(k + 1) * n_per]}),
                "hc": WindowOutput({"spikes": (ids, times)})}
        for name, mon in (("cortex", cortex), ("hc", hc)):
            outs[name].records = mon.apply(outs[name].records, t1)
        rec.write_window(outs, t_end_ms=t1)
    rec.close()
    emp = np.eye(5)
    emp[0, 1] = emp[1, 0] = 0.8
    emp[2, 3] = emp[3, 2] = -0.2
    np.savetxt(tmp / "emp_fc.csv", emp, delimiter=",")
    return tmp


def _args(adder, argv):
    p = argparse.ArgumentParser()
    adder(p)
    return p.parse_args(argv)


def test_monitor_outputs_in_file(output):
    with Output(output / "run.h5") as out:
        bold = out.series("cortex", "bold")
        assert bold.data.shape == (80, 1, 4) and bold.period_ms == 500.0
        np.testing.assert_allclose(bold.time_ms[:2], [500.0, 1000.0])
        eeg = out.series("cortex", "eeg")
        assert eeg.data.shape == (20000, 1, 4) and eeg.units == ("mV",)
        rate = out.series("hc", "rate")
        assert rate.variables == ("hc_exc",) and rate.data.shape == (8000, 1, 1)
        assert rate.data.mean() == pytest.approx(20.0, rel=0.03)       # Poisson 20 Hz
        assert "state" in out.datasets("cortex")                       # raw kept by default


def test_analyze_summary_numbers(output, capsys):
    args = _args(add_analyze_arguments, [str(output / "run.h5"), "--discard", "10000",
                                         "--window", "10000", "--step", "2000", "--json",
                                         "--empirical-fc", str(output / "emp_fc.csv"),
                                         "--save", str(output / "analysis.h5")])
    assert analyze_main(args) == 0
    s = json.loads(capsys.readouterr().out)
    peaks = {(e["dataset"], e["variable"]): e["peak_hz"] for e in s["spectra"]}
    assert peaks[("eeg", "eeg")]["min"] == pytest.approx(F_ALPHA, abs=0.1)
    assert peaks[("eeg", "eeg")]["max"] == pytest.approx(F_ALPHA, abs=0.1)
    fc = s["fc"]
    # whole-brain BOLD: the cortex engine's 4 regions and the spiking region H, joined
    assert fc["dataset"] == "bold" and fc["engines"] == ["cortex", "hc"]
    assert fc["n_regions"] == 5 and fc["n_samples"] == 60
    assert fc["fcd"]["n_windows"] == 11
    with Output(output / "run.h5") as out:
        bold = np.hstack([out.series(e, "bold").after(10000.0).variable() for e in ("cortex", "hc")])
    mine = functional_connectivity(bold)
    assert mine[0, 1] > 0.9                                          # shared slow drive
    emp = np.loadtxt(output / "emp_fc.csv", delimiter=",")
    assert fc["fc_agreement"] == pytest.approx(fc_agreement(mine, emp), abs=1e-12)
    import h5py
    with h5py.File(output / "analysis.h5") as f:
        np.testing.assert_allclose(f["fc/matrix"][()], mine, atol=1e-12)
        fcd = f["fcd/matrix"][()]
        np.testing.assert_array_equal(fcd, fcd.T)


def test_analyze_text_output(output, capsys):
    assert analyze_main(_args(add_analyze_arguments, [str(output / "run.h5")])) == 0
    text = capsys.readouterr().out
    assert "FC on bold (bold) of cortex, hc: 5 regions" in text and "cortex/eeg/eeg: 10.0" in text


def test_plot_writes_labelled_pngs(output, capsys):
    out_dir = output / "plots"
    args = _args(add_plot_arguments, [str(output / "run.h5"), "--out", str(out_dir),
                                      "--discard", "10000", "--window", "10000", "--dpi", "100"])
    assert plot_main(args) == 0
    names = sorted(p.name for p in out_dir.iterdir())
    for expected in ("raster_hc.png", "timeseries_cortex_eeg.png", "spectrum_cortex_eeg.png",
                     "bold.png", "fc.png", "fcd.png", "timeseries_hc_rate.png"):
        assert expected in names
    for p in out_dir.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_not_a_cosim_file_is_a_clean_error(tmp_path):
    import h5py
    with h5py.File(tmp_path / "x.h5", "w"):
        pass
    with pytest.raises(CosimError, match="not a cosim output file"):
        analyze_main(_args(add_analyze_arguments, [str(tmp_path / "x.h5")]))
    with pytest.raises(CosimError, match="no such file"):
        analyze_main(_args(add_analyze_arguments, [str(tmp_path / "missing.h5")]))


def test_missing_matplotlib_says_how_to_install(output, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    args = _args(add_plot_arguments, [str(output / "run.h5"), "--out", str(output / "p2")])
    with pytest.raises(CosimError, match=r"pip install matplotlib"):
        plot_main(args)


def test_join_regions_puts_engines_in_connectome_order(tmp_path):
    from cosim.analysis.report import join_regions

    sc = _fake_scenario(tmp_path)
    sc.connectome.region_labels = ("A", "H", "B", "C", "D")
    specs = {"cortex": [RecordSpec("bold", ("bold",), ("%",), ("D", "A", "C", "B"), 500.0)],
             "hc": [RecordSpec("bold", ("bold",), ("%",), ("H",), 500.0)]}
    rec = Recorder(tmp_path / "j.h5", sc, specs)
    rec.write_window({"cortex": WindowOutput({"bold": np.array([[[4.0, 1.0, 3.0, 2.0]]] * 3)}),
                      "hc": WindowOutput({"bold": np.array([[[9.0]]] * 4)})})
    rec.close()
    with Output(tmp_path / "j.h5") as out:
        j = join_regions(out, "bold")
    assert j.regions == ("A", "H", "B", "C", "D")
    np.testing.assert_array_equal(j.connectome_index, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(j.data, [[1.0, 9.0, 2.0, 3.0, 4.0]] * 3)   # 3 common samples
