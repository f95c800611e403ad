"""``cosim analyze`` protects the user (issue 12): a default transient discard, loud warnings
or refusals when FC/FCD/spectra have too few samples, peaks inside the requested band.
Each test first reproduces the finding of the issue on a file whose answer is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from _util import run_cli
from cosim.analysis.fc import functional_connectivity, upper_triangle
from cosim.analysis.report import (MIN_FC_SAMPLES, AnalysisOptions, analyze_output,
                                   default_discard_ms)
from cosim.engines.base import RecordSpec, WindowOutput
from cosim.recording import Recorder

LABELS = ("lA", "lB", "rA", "rB")


def write_output(path, duration_ms, series):
    """An output file of one engine ``cortex`` holding ``series``: dataset → (period_ms,
    data (time, region)), written window by window (100 ms) through the Recorder."""
    conn = SimpleNamespace(source="test", weights=np.ones((4, 4)) - np.eye(4),
                           tract_lengths_mm=np.ones((4, 4)), region_labels=LABELS, centres_mm=None)
    sc = SimpleNamespace(simulation=SimpleNamespace(seed=1, duration_ms=duration_ms,
                                                    sync_interval_ms=100.0),
                         path=path.with_suffix(".toml"), text="# test", connectome=conn,
                         engine_types={"cortex": "neural_mass"})
    specs = [RecordSpec(name, ("x",), ("mV",), LABELS, period) for name, (period, _) in series.items()]
    rec = Recorder(path, sc, {"cortex": specs}, flush_every=1000)
    n_win = int(duration_ms / 100.0)
    for k in range(n_win):
        t0, t1 = 100.0 * k, 100.0 * (k + 1)
        recs = {}
        for name, (period, data) in series.items():
            i0, i1 = int(round(t0 / period)), int(round(t1 / period))
            recs[name] = data[i0:i1, None, :]
        rec.write_window({"cortex": WindowOutput(recs)}, t_end_ms=t1)
    rec.close()
    return path


def test_default_discard_removes_the_transient_that_dominated_fc(tmp_path):
    """A shared decaying start-up transient (τ = 100 ms) on independent noise: over the
    whole run mean FC is large (the issue's 0.60); after the default 500 ms discard it is
    the noise's, ≈ 0 — equal to numpy's correlation of the samples after 500 ms."""
    rng = np.random.default_rng(0)
    t = np.arange(1, 5001) * 1.0                       # 5 s at 1 ms
    x = 20.0 * np.exp(-t / 100.0)[:, None] + rng.standard_normal((t.size, 4))
    path = write_output(tmp_path / "o.h5", 5000.0, {"timeseries": (1.0, x)})
    everything, _ = analyze_output(path, AnalysisOptions(discard_ms=0.0))
    assert everything["fc"]["mean_fc"] > 0.5            # the finding: the transient dominates
    summary, arrays = analyze_output(path)
    assert summary["discard_ms"] == default_discard_ms(5000.0) == 500.0
    assert summary["discard_default"] is True
    want = functional_connectivity(x[t > 500.0])
    np.testing.assert_allclose(arrays["fc/matrix"], want, atol=1e-12)
    assert abs(summary["fc"]["mean_fc"]) < 0.1
    r = run_cli("analyze", str(path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "first 500 ms discarded as transient by default" in r.stdout
    assert default_discard_ms(2000.0) == 500.0 and default_discard_ms(60000.0) == 6000.0
    assert default_discard_ms(400.0) == 200.0          # at most half of a short run


def test_fc_and_fcd_from_too_few_samples_warn_or_refuse(tmp_path):
    """The issue's 20 s run with TR 2 s: 9 BOLD samples gave ``mean FC 1.000`` silently and
    FCD windows of 5 samples.  Now: a warning naming the count, FCD refused."""
    rng = np.random.default_rng(1)
    bold = np.cumsum(rng.standard_normal((10, 4)), axis=0)
    path = write_output(tmp_path / "b.h5", 20000.0, {"bold": (2000.0, bold)})
    summary, _ = analyze_output(path, AnalysisOptions(discard_ms=2000.0, window_ms=10000.0))
    fc = summary["fc"]
    assert fc["n_samples"] == 9 < MIN_FC_SAMPLES
    assert any("only 9 samples" in w and "standard error of about 0.41" in w
               for w in summary["warnings"])
    assert fc["fcd"] is None and "hold 5 samples" in fc["fcd_refused"]
    r = run_cli("analyze", str(path), "--discard", "2000", "--window", "10000", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "WARNING: FC on bold from only 9 samples" in r.stdout
    assert "FCD: refused" in r.stdout
    assert "WARNING" in r.stderr                       # loud: also on stderr
    pytest.importorskip("matplotlib")
    from cosim import plotting
    seen = {}
    original = plotting._save
    plotting._save = lambda fig, p, dpi: seen.setdefault(p.name, fig) and original(fig, p, dpi)
    try:
        from cosim.analysis.figures import plot_output
        plot_output(path, tmp_path / "figs", AnalysisOptions(discard_ms=2000.0), dpi=50)
    finally:
        plotting._save = original
    assert "9 samples — WARNING" in seen["fc.png"]._suptitle.get_text()   # on the figure too


def test_spectral_peak_is_inside_the_requested_band(tmp_path):
    """The issue's ``--fmin 0.5`` printed 0.21 Hz.  A strong 0.2 Hz wave and a weak 7 Hz
    one: the peak in [0.5, ∞) is 7 Hz; in [0.5, 5] there is none (n/a)."""
    t = np.arange(1, 20001) / 1000.0
    x = (10 * np.sin(2 * np.pi * 0.2 * t) + 0.05 * np.sin(2 * np.pi * 7.0 * t))[:, None] \
        * np.ones(4) + 1e-3 * np.random.default_rng(2).standard_normal((t.size, 4))
    path = write_output(tmp_path / "s.h5", 20000.0, {"timeseries": (1.0, x)})
    s, _ = analyze_output(path, AnalysisOptions(discard_ms=0.0, fmin_hz=0.5))
    p = s["spectra"][0]["peak_hz"]
    assert p["min"] == pytest.approx(7.0, abs=0.05) and p["max"] == pytest.approx(7.0, abs=0.05)
    s, _ = analyze_output(path, AnalysisOptions(discard_ms=0.0, fmin_hz=0.5, fmax_hz=5.0))
    assert s["spectra"][0]["peak_hz"]["median"] is None
    short = write_output(tmp_path / "short.h5", 1000.0, {"timeseries": (1.0, x[:1000])})
    s, _ = analyze_output(short, AnalysisOptions(discard_ms=0.0))
    assert any("one 2000 ms segment" in w for w in s["warnings"])


def test_analyze_on_a_sweep_folder_aggregates_the_variants(tmp_path):
    """The issue: ``cosim analyze SWEEPDIR`` failed with a raw HDF5 "Is a directory".  Now a
    table (one row per variant, numbers equal to numpy on each variant's own samples), a
    CSV and one figure of score against the swept parameter."""
    import csv

    import h5py

    from scenarios import connectome, neural_mass, scenario_text, simulation

    (tmp_path / "jr.toml").write_text(scenario_text(
        simulation(duration=1200.0, sync=10.0, seed=3, output="base.h5"),
        connectome=connectome("tvb:connectivity_76"),
        engines={"cortex": neural_mass(coupling={"G": 1.0}, regions=["lA1", "lA2", "rA1", "rA2"],
                                       integrator="stochastic_heun", noise={"y4": 0.05})}))
    r = run_cli("sweep", "jr.toml", "--param", "engines.cortex.coupling.G=0,5,10", "--out",
                "grid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    emp = np.eye(4)
    emp[0, 1] = emp[1, 0] = 0.8                        # homotopic-like structure
    emp[2, 3] = emp[3, 2] = 0.6
    emp[0, 2] = emp[2, 0] = 0.2
    np.savetxt(tmp_path / "emp.csv", emp, delimiter=",")
    r = run_cli("analyze", "grid", "--empirical-fc", "emp.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Is a directory" not in r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["index", "engines.cortex.coupling.G", "status"]
    with open(tmp_path / "grid" / "sweep_analysis.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(x["engines.cortex.coupling.G"]) for x in rows] == [0.0, 5.0, 10.0]
    for row in rows:
        with h5py.File(tmp_path / "grid" / f"{row['name']}.h5") as h:
            t = h["engines/cortex/timeseries_time_ms"][:]
            x = h["engines/cortex/timeseries"][:, 0, :][t > default_discard_ms(1200.0)]
            labels = [str(v) for v in h["connectome/region_labels"].asstr()[:]]
            regions = list(h["engines/cortex/timeseries"].attrs["regions"])
        x = x[:, np.argsort([labels.index(r) for r in regions])]   # FC is in connectome order
        fc = np.corrcoef(x.T)
        assert float(row["mean_fc"]) == pytest.approx(upper_triangle(fc).mean(), abs=1e-9)
        assert float(row["fc_agreement"]) == pytest.approx(
            np.corrcoef(upper_triangle(fc), upper_triangle(emp))[0, 1], abs=1e-9)
        assert row["status"] == "completed"
    assert (tmp_path / "grid" / "sweep_analysis.png").stat().st_size > 1000
    # a folder that is no sweep: one line, exit 2
    (tmp_path / "empty").mkdir()
    r = run_cli("analyze", "empty", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "sweep.json" in r.stderr
