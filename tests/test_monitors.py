"""Streaming monitors: numbers, window-by-window = one shot, scenario configuration."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from cosim.analysis.hemodynamics import BalloonParams, balloon_windkessel
from cosim.engines.base import RecordSpec
from cosim.errors import CosimError
from cosim.monitor_config import monitors_from_config
from cosim.monitors import (AverageMonitor, BlockMean, BoldMonitor, EegMonitor, RateMonitor,
                            SpikeGroup, SpikeRateMonitor, jansen_rit_rate,
                            jansen_rit_rate_signal, variable_signal)
from cosim.schema import Reader

JR = RecordSpec("state", ("y0", "y1", "y2"), ("mV",) * 3, ("A", "B", "C"), 1.0)


def _samples(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 3)) + np.array([0.0, 10.0, 2.0])[None, :, None]


def _chunks(x, seed=1):
    """Split along time at random places, including empty and one-sample chunks."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(np.concatenate([[0, 0, 1, x.shape[0]], rng.integers(0, x.shape[0], 12)]))
    return [x[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def _stream(make, x):
    one = make().update(x)
    mon = make()
    parts = [mon.update(c) for c in _chunks(x)]
    return one, np.concatenate(parts)


@pytest.mark.parametrize("make", [
    lambda: AverageMonitor(JR, 10.0),
    lambda: AverageMonitor(JR, 7.0, mode="subsample", variables=["y2"]),
    lambda: BoldMonitor(JR, variable_signal(JR, "y1", 0.05), tr_ms=720.0),
    lambda: BoldMonitor(JR, variable_signal(JR, "y1", 0.05), tr_ms=720.0, step_ms=0.0),
    lambda: EegMonitor(JR, period_ms=4.0, leadfield=np.arange(6.0).reshape(2, 3)),
    lambda: RateMonitor(JR, jansen_rit_rate_signal(JR), period_ms=3.0),
])
def test_window_by_window_equals_one_shot(make):
    one, parts = _stream(make, _samples())
    assert one.shape[0] > 3
    np.testing.assert_array_equal(parts, one)


def test_checkpoint_restore_continues_identically():
    x = _samples(3000)
    a = BoldMonitor(JR, variable_signal(JR, "y1", 0.05), tr_ms=100.0)
    full = a.update(x)
    b = BoldMonitor(JR, variable_signal(JR, "y1", 0.05), tr_ms=100.0)
    first = b.update(x[:1234])
    c = BoldMonitor(JR, variable_signal(JR, "y1", 0.05), tr_ms=100.0)
    c.restore({k: np.copy(v) for k, v in b.state().items()})
    np.testing.assert_array_equal(np.concatenate([first, c.update(x[1234:])]), full)


def test_average_and_subsample_values():
    x = np.arange(12.0).reshape(12, 1, 1) * np.ones((1, 3, 3))
    avg = AverageMonitor(JR, 4.0)
    np.testing.assert_array_equal(avg.update(x)[:, 0, 0], [1.5, 5.5, 9.5])
    assert avg.spec.period_ms == 4.0 and avg.spec.dataset == "average"
    sub = AverageMonitor(JR, 4.0, mode="subsample")
    np.testing.assert_array_equal(sub.update(x)[:, 0, 0], [3.0, 7.0, 11.0])  # t = 4, 8, 12 ms
    with pytest.raises(ValueError, match="whole multiple"):
        AverageMonitor(JR, 2.5)


def test_block_mean_partial_blocks():
    bm = BlockMean(3)
    assert bm.push(np.array([1.0, 2.0])).shape == (0,)
    np.testing.assert_array_equal(bm.push(np.array([3.0, 4.0, 5.0, 6.0, 7.0])), [2.0, 5.0])


def test_bold_monitor_equals_offline_model_at_tr():
    x = _samples(6000)
    z = 0.1 * (x[:, 1, :] - 9.0)
    exact = BoldMonitor(JR, variable_signal(JR, "y1"), tr_ms=500.0, scale=0.1, offset=9.0,
                        step_ms=0.0)
    y = exact.update(x)
    ref = balloon_windkessel(z, 1.0, BalloonParams())[499::500]
    np.testing.assert_allclose(y[:, 0, :], ref, rtol=1e-12, atol=1e-14)
    assert exact.spec.period_ms == 500.0 and exact.spec.units == ("%",)
    assert y.shape == (12, 1, 3)
    # default: input averaged over 10-ms blocks, RK4 at 10 ms
    fast = BoldMonitor(JR, variable_signal(JR, "y1"), tr_ms=500.0, scale=0.1, offset=9.0)
    assert fast.m == 10
    coarse = balloon_windkessel(z.reshape(600, 10, 3).mean(axis=1), 10.0)[49::50]
    np.testing.assert_allclose(fast.update(x)[:, 0, :], coarse, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(coarse, ref, atol=2e-3 * np.abs(ref).max())


def test_eeg_is_pyramidal_potential_projected_by_leadfield():
    x = _samples(100)
    lf = np.array([[1.0, 0.5, 0.0], [0.0, -1.0, 2.0]])
    mon = EegMonitor(JR, leadfield=lf, sensors=["Fz", "Cz"])
    y = mon.update(x)
    np.testing.assert_allclose(y[:, 0, :], (x[:, 1, :] - x[:, 2, :]) @ lf.T)
    assert mon.spec.regions == ("Fz", "Cz")
    plain = EegMonitor(JR)
    np.testing.assert_array_equal(plain.update(x)[:, 0, :], x[:, 1, :] - x[:, 2, :])
    assert plain.spec.units == ("mV",)
    with pytest.raises(ValueError, match="columns"):
        EegMonitor(JR, leadfield=np.ones((2, 4)))


def test_jansen_rit_rate_transfer():
    # S(v0) = e0 (half of the maximum 2 e0); saturates at 2 e0 = 5 Hz.
    assert jansen_rit_rate(np.array(6.0), np.array(0.0), v0_mv=6.0) == pytest.approx(2.5)
    assert jansen_rit_rate(np.array(100.0), np.array(0.0)) == pytest.approx(5.0)
    x = _samples(10)
    mon = RateMonitor(JR, jansen_rit_rate_signal(JR, v0_mv=6.0))
    np.testing.assert_allclose(mon.update(x)[:, 0, :],
                               5.0 / (1 + np.exp(0.56 * (6.0 - (x[:, 1, :] - x[:, 2, :])))))
    assert mon.spec.units == ("Hz",)
    # per-region parameters
    per = RateMonitor(JR, jansen_rit_rate_signal(JR, e0_hz=np.array([1.0, 2.0, 3.0])))
    saturated = np.zeros((1, 3, 3))
    saturated[:, 1] = 100.0                                    # y1 − y2 = 100 mV
    np.testing.assert_allclose(per.update(saturated)[0, 0], [2.0, 4.0, 6.0])


def test_spike_rate_bins_across_windows():
    mon = SpikeRateMonitor([SpikeGroup("exc", "hc", 10, 0, 10), SpikeGroup("inh", "hc", 4, 10, 14)],
                           bin_ms=2.0)
    # window 1: (0, 3] -- one complete bin (0, 2]; t = 0 is before it (the previous window),
    # t = 2.0 ends it; the spike at 2.5 waits for the next.
    r1 = mon.update_spikes({"hc": (np.array([0, 1, 2, 3, 12]),
                                   np.array([0.0, 1.9, 2.0, 2.5, 1.0]))}, t_end_ms=3.0)
    np.testing.assert_allclose(r1[:, :, 0], [[2 / (10 * 0.002), 1 / (4 * 0.002)]])
    r2 = mon.update_spikes({"hc": (np.array([4]), np.array([3.99]))}, t_end_ms=6.0)
    np.testing.assert_allclose(r2[:, 0, 0], [2 / (10 * 0.002), 0.0])
    assert mon.spec.units == ("Hz", "Hz") and mon.spec.period_ms == 2.0
    assert mon.spec.variables == ("exc", "inh")


# -- configuration ------------------------------------------------------------------------

def _reader(table, tmp_path):
    """The [record.cortex] table of a scenario file in tmp_path (paths resolve there)."""
    return Reader(table, str(tmp_path / "s.toml"), "record.cortex")


def test_config_builds_monitors_and_applies_them(tmp_path):
    np.save(tmp_path / "lf.npy", np.ones((2, 5)))           # columns = connectome regions
    r = _reader({"raw": False,
                 "average": {"period": 5.0},
                 "bold": {"tr": 100.0, "scale": 0.5},
                 "eeg": {"leadfield": "lf.npy", "sensors": ["a", "b"], "period": 2.0},
                 "rate": {"period": 10.0}}, tmp_path)
    em = monitors_from_config(r, "cortex", [JR], model="jansen_rit",
                              region_labels=["X", "A", "Y", "B", "C"])
    r.done()
    names = [s.dataset for s in em.record_specs()]
    assert names == ["average", "bold", "eeg", "rate"]          # raw = false
    out = em.apply({"state": _samples(200)}, t_end_ms=200.0)
    assert out["average"].shape == (40, 3, 3)
    assert out["bold"].shape == (2, 1, 3)
    assert out["eeg"].shape == (100, 1, 2)
    assert out["rate"].shape == (20, 1, 3)
    # BOLD's default input is the model's firing rate (Jansen–Rit sigmoid)
    bold_spec = next(s for s in em.record_specs() if s.dataset == "bold")
    assert "exp(0.56" in bold_spec.attrs["input"]


def test_config_spiking_engine_rate():
    spikes = RecordSpec("spikes", (), (), ("hc",), 0.025,
                        attrs={"kind": "spikes", "population": "hc", "n_nodes": 50})
    em = monitors_from_config(Reader({"rate": {"bin": 5.0}}, "s.toml", "record.hc"), "hc",
                              [spikes])
    specs = em.record_specs()
    assert [s.dataset for s in specs] == ["spikes", "rate"]
    # bin (0, 5]: a spike at the window end 5.0 is in it
    out = em.apply({"spikes": (np.arange(5), np.linspace(0.1, 5.0, 5))}, t_end_ms=5.0)
    np.testing.assert_allclose(out["rate"][:, 0, 0], [5 / (50 * 0.005)])
    assert out["spikes"][0].size == 5
    # an engine with cell groups (multicompartment: name -> range of gids) and a region
    engine = SimpleNamespace(groups={"exc": range(0, 8), "inh": range(8, 10)}, region_indices=(2,))
    em = monitors_from_config(Reader({"rate": {"bin": 5.0}}, "s.toml", "record.hc"), "hc",
                              [spikes], engine_object=engine, region_labels=["a", "b", "CA1"])
    spec = em.record_specs()[-1]
    assert spec.variables == ("exc", "inh") and spec.regions == ("CA1",)
    out = em.apply({"spikes": (np.array([0, 7, 8, 9, 9]), np.full(5, 1.0))}, t_end_ms=5.0)
    np.testing.assert_allclose(out["rate"][0, :, 0], [2 / (8 * 0.005), 3 / (2 * 0.005)])
    with pytest.raises(CosimError, match="size of population 'hc' unknown"):
        monitors_from_config(Reader({"rate": {"bin": 5.0}}, "s.toml", "record.hc"), "hc",
                             [replace(spikes, attrs={"kind": "spikes", "population": "hc"})])


def test_no_table_is_passthrough():
    em = monitors_from_config(None, "cortex", [JR])
    rec = {"state": _samples(3)}
    assert em.passthrough and em.apply(rec, 3.0) is rec and em.record_specs() == [JR]


@pytest.mark.parametrize("table, key, message", [
    ({"bold": {"tr": 2.5, "input": "y1"}}, "record.cortex.bold.tr", "whole multiple"),
    ({"bold": {"input": "V"}}, "record.cortex.bold.input", "not recorded"),
    ({"bold": {"trr": 2000.0, "input": "y1"}}, "record.cortex.bold.trr", "unknown key; did you mean 'tr'"),
    ({"eeg": {"subtract": "y9"}}, "record.cortex.eeg.variable", "'y9' is not recorded"),
    ({"eeg": {"leadfield": "missing.npy"}}, "record.cortex.eeg.leadfield", "no such file"),
    ({"rate": {}}, "record.cortex.rate.transfer", "no default firing-rate transfer"),
    ({"average": {"period": -1.0}}, "record.cortex.average.period", "must be > 0"),
])
def test_config_errors_name_the_key(table, key, message):
    with pytest.raises(CosimError) as err:
        monitors_from_config(Reader(table, "s.toml", "record.cortex"), "cortex", [JR], model=None)
    assert err.value.key == key
    assert message in err.value.reason


def test_config_leadfield_column_mismatch(tmp_path):
    np.save(tmp_path / "lf.npy", np.ones((2, 4)))
    r = Reader({"eeg": {"leadfield": "lf.npy"}}, str(tmp_path / "s.toml"), "record.cortex")
    with pytest.raises(CosimError, match="has 4 columns; expected 3"):
        monitors_from_config(r, "cortex", [JR], region_labels=["A", "B", "C", "D", "E"])


def test_dataset_name_clash_is_an_error():
    spec = RecordSpec("bold", ("y1",), ("mV",), ("A",), 1.0)
    with pytest.raises(CosimError, match="not unique"):
        monitors_from_config(Reader({"bold": {"input": "y1"}}, "s.toml", "record.c"), "c", [spec])


def test_jansen_rit_engine_eeg_alpha_and_rate_monitor():
    """The neural-mass engine's Jansen–Rit (JR 1995 parameters: v0 = 6 mV, p = 220 Hz)
    through the EEG and rate monitors, window by window: a ≈ 10.9-Hz rhythm (the same
    model in plain numpy gives 10.93 Hz), rate from the engine's own sigmoid parameters."""
    nm = pytest.importorskip("cosim.engines.neural_mass")
    from cosim.analysis.spectra import peak_frequencies, power_spectra
    from cosim.connectome import make_connectome

    conn = make_connectome(np.zeros((2, 2)), np.ones((2, 2)), ["L", "R"])
    eng = nm.NeuralMassEngine("cortex", "jansen_rit", conn, dt_ms=0.1, integrator="heun",
                              record_period_ms=1.0, parameters={"v0": 6.0},
                              initial={"y1": [1.0, 4.0]})
    em = monitors_from_config(Reader({"eeg": {}, "rate": {}}, "s.toml", "record.cortex"),
                              "cortex", eng.record_specs(), engine_object=eng)
    eng.build()
    out = [em.apply(eng.advance(k * 50.0, (k + 1) * 50.0, {}).records, (k + 1) * 50.0)
           for k in range(80)]
    eeg = np.concatenate([o["eeg"] for o in out])[:, 0, :]
    state = np.concatenate([o[eng.record_specs()[0].dataset] for o in out])
    y1, y2 = state[:, eng.record_variables.index("y1")], state[:, eng.record_variables.index("y2")]
    np.testing.assert_array_equal(eeg, y1 - y2)
    rate = np.concatenate([o["rate"] for o in out])[:, 0, :]
    np.testing.assert_allclose(rate, 5.0 / (1 + np.exp(0.56 * (6.0 - (y1 - y2)))), rtol=1e-12)
    freq, psd = power_spectra(eeg[1000:], 1.0)
    peaks = peak_frequencies(freq, psd, fmin=2.0)
    np.testing.assert_allclose(peaks, 10.93, atol=0.3)


def test_spiking_engine_bold_is_driven_by_its_population_rate():
    spikes = RecordSpec("spikes", (), (), ("hc",), 0.025,
                        attrs={"kind": "spikes", "population": "hc"})
    engine = SimpleNamespace(groups={"exc": range(0, 8), "inh": range(8, 10)})
    table = {"rate": {"bin": 10.0}, "bold": {"tr": 100.0, "scale": 0.1, "step": 0.0}}
    em = monitors_from_config(Reader(table, "s.toml", "record.hc"), "hc", [spikes],
                              engine_object=engine)
    assert [s.dataset for s in em.record_specs()] == ["spikes", "rate", "bold"]
    rng = np.random.default_rng(0)
    rates, bold = [], []
    for k in range(20):                                  # 20 windows of 25 ms
        t = np.sort(rng.uniform(25.0 * k, 25.0 * (k + 1), 30))
        out = em.apply({"spikes": (rng.integers(0, 10, 30), t)}, 25.0 * (k + 1))
        rates.append(out["rate"])
        bold.append(out["bold"])
    rates, bold = np.concatenate(rates), np.concatenate(bold)
    assert rates.shape == (50, 2, 1) and bold.shape == (5, 1, 1)
    total = (8 * rates[:, 0, 0] + 2 * rates[:, 1, 0]) / 10      # all cells, Hz
    np.testing.assert_allclose(total.mean(), 30 / (10 * 0.025), rtol=0.1)   # 120 Hz
    ref = balloon_windkessel(0.1 * total, 10.0)[9::10]
    np.testing.assert_allclose(bold[:, 0, 0], ref, rtol=1e-12)
    with pytest.raises(CosimError, match=r"add \[record.hc.rate\]"):
        monitors_from_config(Reader({"bold": {}}, "s.toml", "record.hc"), "hc", [spikes],
                             engine_object=engine)
