"""Figures a lab meeting can use (issue 12): populations coloured in rasters, region names and
hemisphere lines on FC and heat maps, the transient out of colour scales, EEG instead of
raw state variables.  Each figure is inspected through its matplotlib objects."""

from __future__ import annotations

import numpy as np
import pytest

from _util import run_cli
from cosim import plotting
from cosim.analysis.figures import plot_output
from cosim.analysis.report import AnalysisOptions
from cosim.connectome import load_connectome
from scenarios import hybrid, neural_mass, scenario_text, simulation, write

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved by cosim.plotting, by file name."""
    saved = {}
    original = plotting._save

    def keep(fig, path, dpi):
        saved[path.name] = fig
        return original(fig, path, dpi)

    monkeypatch.setattr(plotting, "_save", keep)
    return saved


def test_raster_colours_each_cell_population(tmp_path, figures):
    data = hybrid(duration=60.0)
    data["record"]["v1"]["rate"] = {"bin": 5.0}
    sc = write(tmp_path / "h.toml", data)
    assert run_cli("run", str(sc), "-o", "h.h5", "-q", "--no-monitor", cwd=tmp_path).returncode == 0
    plot_output(tmp_path / "h.h5", tmp_path / "figs", AnalysisOptions(discard_ms=0.0), dpi=50)
    fig = figures["raster_v1.png"]
    ax = fig.axes[0]
    pts = {c.get_label(): c for c in ax.collections}
    assert set(pts) == {"exc (24)", "inh (8)"}
    assert not np.allclose(pts["exc (24)"].get_edgecolor()[0], pts["inh (8)"].get_edgecolor()[0])
    exc_y = pts["exc (24)"].get_offsets()[:, 1]
    inh_y = pts["inh (8)"].get_offsets()[:, 1]
    assert exc_y.size and inh_y.size
    assert exc_y.max() < 24 <= inh_y.min() and inh_y.max() < 32     # engine gids, by group
    assert [ln.get_ydata()[0] for ln in ax.lines] == [23.5]          # the group separator
    rate_labels = [ln.get_label() for ln in fig.axes[1].lines]
    assert rate_labels == ["exc", "inh"]


def test_fc_names_regions_and_separates_hemispheres(tmp_path, figures):
    labels = list(load_connectome("tvb:connectivity_76").region_labels)
    assert labels[37][0] == "r" and labels[38][0] == "l"             # TVB: right, then left
    fc = np.corrcoef(np.random.default_rng(0).standard_normal((200, 76)).T)
    plotting.plot_fc(tmp_path / "fc.png", fc, regions=labels, dpi=50)
    ax = figures["fc.png"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert sorted(ln.get_xdata()[0] for ln in ax.lines if ln.get_xdata()[0] == ln.get_xdata()[1]) \
        == [37.5]
    assert sorted(ln.get_ydata()[0] for ln in ax.lines if ln.get_ydata()[0] == ln.get_ydata()[1]) \
        == [37.5]
    assert plotting.hemisphere_breaks(labels) == [38]


def test_eeg_drawn_instead_of_raw_state_and_transient_out_of_the_colour_scale(tmp_path, figures):
    """A Jansen–Rit run on 20 regions (a heat map): the figure is EEG = y1 − y2, the model's
    declared observable, not y1 and y2; its colour limits are the 0.5–99.5 percentiles of
    the samples after the discarded transient even when the window shown starts at 0."""
    regions = list(load_connectome("tvb:connectivity_76").region_labels)[:20]
    (tmp_path / "jr.toml").write_text(scenario_text(
        simulation(duration=1000.0, sync=10.0, seed=1),
        engines={"cortex": neural_mass(regions=regions, integrator="stochastic_heun",
                                       noise={"y4": 0.05})}))
    r = run_cli("run", "jr.toml", "-o", "jr.h5", "-q", "--no-monitor", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    paths = plot_output(tmp_path / "jr.h5", tmp_path / "figs", AnalysisOptions(discard_ms=500.0),
                        t_range_ms=(0.0, 1000.0), dpi=50)
    names = {p.name for p in paths}
    assert "timeseries_cortex_eeg.png" in names and "timeseries_cortex_timeseries.png" not in names
    from cosim.analysis.io import Output
    with Output(tmp_path / "jr.h5") as out:
        s = out.series("cortex", "timeseries")
    eeg = s.variable("y1") - s.variable("y2")
    ax = figures["timeseries_cortex_eeg.png"].axes[0]
    im = ax.images[0]
    np.testing.assert_allclose(np.asarray(im.get_array()).T, eeg[s.time_ms <= 1000.0])
    lo, hi = np.percentile(eeg[s.time_ms > 500.0], [0.5, 99.5])
    assert im.get_clim() == pytest.approx((lo, hi))
    assert eeg[s.time_ms <= 500.0].max() > hi or eeg[s.time_ms <= 500.0].min() < lo  # the transient
    assert [t.get_text() for t in ax.get_yticklabels()] == regions
    assert "y1 - y2" in figures["timeseries_cortex_eeg.png"]._suptitle.get_text()
