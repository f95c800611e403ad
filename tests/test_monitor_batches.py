"""The record pipeline hands several windows at once to the monitors and the recorder
(every flush, checkpoint and end): the file must be the one written window by window.

* every monitor class that declares ``chunk_invariant`` gives, bit for bit, the same output
  and state for one-window chunks as for the same samples batched;
* a hybrid run (spikes, a spike-rate monitor, Jansen–Rit rate and BOLD monitors, the raw
  series) with checkpoints and flushes between batches writes the same file batched as
  window by window — and really batched;
* a run that fails in the middle of a batch still writes every window it completed.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

import cosim.monitors as mons
import cosim.monitors_tvb as mons_tvb
import cosim.pipeline as pipeline
from cosim.engines.base import RecordSpec
from cosim.monitors import (AverageMonitor, BoldMonitor, EegMonitor, Monitor, RateMonitor,
                            SpikeGroup, SpikeRateMonitor, jansen_rit_rate_signal,
                            variable_signal)
from cosim.monitors_tvb import ExpressionMonitor, SpatialAverageMonitor, VolterraBoldMonitor
from cosim.recording import Recorder
from cosim.runtime import run_scenario
from cosim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
JR = RecordSpec("state", ("y0", "y1", "y2"), ("mV",) * 3, tuple("ABCDE"), 1.0)

#: one instance of every monitor class that says it may be batched
MAKERS = {
    AverageMonitor: lambda: AverageMonitor(JR, 3.0),
    RateMonitor: lambda: RateMonitor(JR, jansen_rit_rate_signal(JR), period_ms=2.0),
    BoldMonitor: lambda: BoldMonitor(JR, variable_signal(JR, "y1", 0.05), tr_ms=20.0,
                                     step_ms=4.0),
    SpatialAverageMonitor: lambda: SpatialAverageMonitor(JR, [("ab", [0, 1]), ("edc", [4, 3, 2])]),
    ExpressionMonitor: lambda: ExpressionMonitor(JR, {"v": "y1 - y2", "s": "sigmoid(y0)"},
                                                 period_ms=2.0),
    VolterraBoldMonitor: lambda: VolterraBoldMonitor(JR, variable_signal(JR, "y0"), tr_ms=8.0,
                                                     step_ms=2.0, length_ms=40.0),
    EegMonitor: lambda: EegMonitor(JR, period_ms=2.0),
}


def _classes(base):
    for c in base.__subclasses__():
        yield c
        yield from _classes(c)


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 5)) * 3.0 + np.array([0.0, 10.0, 2.0])[None, :, None]


def test_every_monitor_that_may_be_batched_is_checked_here():
    declared = {c for c in _classes(Monitor) if getattr(c, "chunk_invariant", False) is True
                and c.__module__ in (mons.__name__, mons_tvb.__name__)}
    declared.add(EegMonitor)           # per instance: without a lead field
    assert declared - {SpikeRateMonitor} == set(MAKERS)
    assert EegMonitor(JR, leadfield=np.ones((2, 5))).chunk_invariant is False
    assert Monitor.chunk_invariant is False


@pytest.mark.parametrize("cls", list(MAKERS), ids=lambda c: c.__name__)
def test_windows_one_by_one_equal_the_batch(cls):
    x = _samples(331)
    one_by_one, batched = MAKERS[cls](), MAKERS[cls]()
    assert one_by_one.chunk_invariant
    a = np.concatenate([one_by_one.update(x[i:i + 1]) for i in range(301)])
    b = np.concatenate([batched.update(x[i:min(i + 37, 301)]) for i in range(0, 301, 37)])
    assert a.shape[0] >= 15
    np.testing.assert_array_equal(a, b)
    # checkpointed after window 301 (not a whole number of blocks) and resumed: the same
    tails = []
    for mon in (one_by_one, batched):
        again = MAKERS[cls]()
        again.restore({k: np.copy(v) for k, v in mon.state().items()})
        tails.append(again.update(x[301:]))
    assert tails[0].shape[0] >= 1
    np.testing.assert_array_equal(tails[0], tails[1])


def test_spike_rate_windows_one_by_one_equal_the_batch():
    groups = [SpikeGroup("exc", "hc", 40, 0, 40), SpikeGroup("inh", "hc", 10, 40, 50)]
    rng = np.random.default_rng(3)
    windows = []
    for k in range(60):          # 1-ms windows, spikes at 0.025-ms step ends in (k, k + 1]
        t = np.sort(k + rng.integers(1, 41, rng.poisson(6)) * 0.025)
        windows.append({"spikes": (rng.integers(0, 50, t.size), t)})
    one, many = SpikeRateMonitor(groups, bin_ms=2.5), SpikeRateMonitor(groups, bin_ms=2.5)
    a = np.concatenate([one.update_spikes({"hc": w["spikes"]}, k + 1.0)
                        for k, w in enumerate(windows)])
    b = []
    for k0 in range(0, 60, 7):
        joined = pipeline.join_records(windows[k0:k0 + 7])["spikes"]
        b.append(many.update_spikes({"hc": joined}, min(k0 + 7, 60) * 1.0))
    b = np.concatenate(b)
    assert a.shape == (24, 2, 1) and a.sum() > 0
    np.testing.assert_array_equal(a, b)
    for k, v in one.state().items():
        np.testing.assert_array_equal(v, many.state()[k], err_msg=k)


def _scenario(tmp_path: Path, duration_ms: float = 60.0) -> Path:
    text = (REPO / "scenarios" / "default.toml").read_text()
    text = re.sub(r"(?m)^duration = .*$", f"duration = {duration_ms}", text, count=1)
    text = re.sub(r"(?m)^sync_interval = .*$", "sync_interval = 1.0\ncheckpoint_every = 11.0",
                  text, count=1)
    text = re.sub(r"(?m)^n = 240$", "n = 80", text)
    text = re.sub(r"(?m)^n = 60$", "n = 30", text)
    text = text.replace("[record]\nperiod = 1.0\n", "[record]\nperiod = 1.0\nflush_every = 7\n")
    text = text.replace("[record.cortex.rate]\n", "[record.cortex.rate]\n[record.cortex.bold]\n"
                        "tr = 10.0\n")
    assert "flush_every = 7" in text and "[record.cortex.bold]" in text
    path = tmp_path / "batches.toml"
    path.write_text(text)
    return path


def _datasets(path: Path) -> dict:
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     and not n.startswith("timing") else None)
        out["@"] = {k: f.attrs[k] for k in ("windows_completed", "t_completed_ms", "status")}
    return out


def _run(path: Path, out: Path, monkeypatch, batch: bool, **kw):
    made = []

    want = batch

    class Pipeline(pipeline.RecordPipeline):
        def __init__(self, scenario, plan, recorder, batch=False):
            super().__init__(scenario, plan, recorder, batch=want)
            made.append(self)

    monkeypatch.setattr("cosim.runtime.RecordPipeline", Pipeline)
    spans = []
    write_windows = Recorder.write_windows
    monkeypatch.setattr(Recorder, "write_windows",
                        lambda self, o, t, s: (spans.append(len(s)), write_windows(self, o, t, s)))
    try:
        return run_scenario(load_scenario(path, output=out), overwrite=True,
                            progress_stream=None, **kw), made, spans
    finally:
        monkeypatch.undo()


def test_a_batched_run_writes_the_file_of_one_window_at_a_time(tmp_path, monkeypatch):
    path = _scenario(tmp_path)
    _, made, spans = _run(path, tmp_path / "one.h5", monkeypatch, batch=False)
    assert not made[0].batch and len(spans) == 60 and set(spans) == {1}   # one by one
    _, made, spans = _run(path, tmp_path / "many.h5", monkeypatch, batch=True)
    assert made[0].batch
    # flushes every 7 windows, checkpoints every 11 (each commit flushes): every window
    # went in a batch, and the batches end at both
    assert sum(spans) == 60 and spans[:4] == [7, 4, 7, 4]
    a, b = _datasets(tmp_path / "one.h5"), _datasets(tmp_path / "many.h5")
    assert a.keys() == b.keys() and "engines/cortex/bold" in a and "engines/v1/rate" in a
    assert a["@"] == b["@"] and int(a["@"]["windows_completed"]) == 60
    assert a["spikes/v1.exc/timestamps"].size > 0
    for k in a:
        if k != "@":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # and resumed from its last checkpoint (window 55), batched: the same file again
    run_scenario(load_scenario(path, output=tmp_path / "many.h5"), resume=True,
                 progress_stream=None)
    c = _datasets(tmp_path / "many.h5")
    for k in a:
        if k != "@":
            np.testing.assert_array_equal(a[k], c[k], err_msg=k)


def test_a_failure_inside_a_batch_keeps_every_completed_window(tmp_path, monkeypatch):
    from cosim.engines.neural_mass import NeuralMassEngine

    path = _scenario(tmp_path, 40.0)
    advance = NeuralMassEngine.advance

    def failing(self, t0_ms, t1_ms, inputs):
        # window 24: flushes and commits came after windows 7, 11, 18 and 22 (every 7
        # windows, and each checkpoint every 11), so windows 22 and 23 are held
        if t0_ms >= 24.0:
            raise RuntimeError("injected")
        return advance(self, t0_ms, t1_ms, inputs)

    spans = []
    write_windows = Recorder.write_windows
    monkeypatch.setattr(Recorder, "write_windows",
                        lambda self, o, t, s: (spans.append(len(s)), write_windows(self, o, t, s)))
    monkeypatch.setattr(NeuralMassEngine, "advance", failing)
    with pytest.raises(Exception, match="injected"):
        run_scenario(load_scenario(path, output=tmp_path / "f.h5"), overwrite=True,
                     progress_stream=None)
    monkeypatch.undo()
    assert spans == [7, 4, 7, 4, 2]                   # the last: the two held, at the failure
    _run(path, tmp_path / "ok.h5", monkeypatch, batch=False)
    got, ref = _datasets(tmp_path / "f.h5"), _datasets(tmp_path / "ok.h5")
    assert got["@"]["status"] == "failed" and int(got["@"]["windows_completed"]) == 24
    n = got["engines/cortex/timeseries"].shape[0]
    assert n == 24
    np.testing.assert_array_equal(got["engines/cortex/timeseries"], ref["engines/cortex/timeseries"][:n])
    np.testing.assert_array_equal(got["engines/cortex/rate"], ref["engines/cortex/rate"][:n])
