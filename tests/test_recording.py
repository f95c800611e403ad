"""The HDF5 recorder and the single-process loop, driven by a clock engine whose exact
output is known: every sample must carry the value of sin(ω·t) at its own time stamp."""

from __future__ import annotations

from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from cosim.connectome import load_connectome
from cosim.engines.base import Engine, RecordSpec, WindowOutput
from cosim.errors import CosimError
from cosim.recording import Recorder
from cosim.runtime import run_scenario
from cosim.scenario import RecordSpecGlobal, SimulationSpec

OMEGA = 2 * np.pi * 0.01  # rad/ms


class ClockEngine(Engine):
    """Records sin(ω t) for two 'regions' every period; spikes every 2.5 ms from node 7."""

    type_name = "clock"

    @classmethod
    def from_config(cls, name, reader, ctx):  # pragma: no cover - built in Python
        raise NotImplementedError

    def state(self):
        return {}

    def __init__(self, period_ms=0.5, dt_ms=0.25, fail_at_ms=None):
        self.name = "clock"
        self.dt_ms = dt_ms
        self.period_ms = period_ms
        self.fail_at_ms = fail_at_ms

    def record_specs(self):
        return [RecordSpec("timeseries", ("x",), ("mV",), ("a", "b"), self.period_ms),
                RecordSpec("spikes", (), (), (), 0.0, attrs={"kind": "spikes", "population": "exc"})]

    def build(self):
        pass

    def advance(self, t0, t1, inputs):
        if self.fail_at_ms is not None and t1 > self.fail_at_ms:
            raise RuntimeError("boom")
        k0 = int(round(t0 / self.period_ms)) + 1
        k1 = int(round(t1 / self.period_ms))
        t = self.period_ms * np.arange(k0, k1 + 1)
        x = np.stack([np.sin(OMEGA * t), -np.sin(OMEGA * t)], axis=1)[:, None, :]
        s = np.arange(np.ceil(t0 / 2.5), np.ceil(t1 / 2.5)) * 2.5
        s = s[(s >= t0) & (s < t1)]
        return WindowOutput(records={"timeseries": x,
                                     "spikes": (np.full(s.size, 7), s)})


def _scenario(tmp_path, engine, duration=100.0, sync=1.0, flush_every=7):
    return SimpleNamespace(
        path=tmp_path / "s.toml", text="# scenario text\n",
        simulation=SimulationSpec(duration, sync, 5, None),
        connectome=load_connectome("tvb:connectivity_66"),
        engines={"clock": engine}, engine_types={"clock": "test"},
        record=RecordSpecGlobal(engine.period_ms, flush_every), adapters={}, monitors={},
        speed_mm_per_ms=3.0)


def test_timeseries_values_sit_at_their_time_stamps(tmp_path):
    sc = _scenario(tmp_path, ClockEngine())
    out = tmp_path / "o.h5"
    summary = run_scenario(sc, output=out, progress_stream=None)
    assert summary.simulated_ms == 100.0
    with h5py.File(out) as f:
        assert f.attrs["status"] == "completed"
        assert f.attrs["windows_completed"] == 100
        assert f.attrs["t_completed_ms"] == 100.0
        d = f["engines/clock/timeseries"]
        t = f["engines/clock/timeseries_time_ms"][:]
        assert d.shape == (200, 1, 2)
        np.testing.assert_allclose(t, 0.5 * np.arange(1, 201))
        np.testing.assert_allclose(d[:, 0, 0], np.sin(OMEGA * t), rtol=0, atol=1e-15)
        np.testing.assert_allclose(d[:, 0, 1], -np.sin(OMEGA * t), rtol=0, atol=1e-15)
        assert list(d.attrs["regions"]) == ["a", "b"]
        assert d.dims[0][0].name.endswith("timeseries_time_ms")
        ts = f["spikes/clock.exc/timestamps"][:]
        np.testing.assert_allclose(ts, 2.5 * np.arange(40))
        assert (f["spikes/clock.exc/node_ids"][:] == 7).all()
        assert f["spikes/clock.exc/timestamps"].attrs["units"] == "ms"
        assert f["scenario"][()].decode() == "# scenario text\n"
        assert f["timing/window_seconds"].shape == (100, 1, 3)
        assert f["connectome/weights"].shape == (66, 66)
        assert "numpy" in f["provenance"].attrs


def test_failed_run_keeps_every_flushed_window(tmp_path):
    sc = _scenario(tmp_path, ClockEngine(fail_at_ms=50.5), flush_every=7)
    out = tmp_path / "o.h5"
    with pytest.raises(RuntimeError):
        run_scenario(sc, output=out, progress_stream=None)
    with h5py.File(out) as f:
        assert f.attrs["status"] == "failed"
        assert "boom" in f.attrs["message"]
        # windows 0..49 completed; the failure closes the file after flushing them all
        assert f.attrs["windows_completed"] == 50
        t = f["engines/clock/timeseries_time_ms"][:]
        assert t[-1] == 50.0
        np.testing.assert_allclose(f["engines/clock/timeseries"][:, 0, 0], np.sin(OMEGA * t), atol=1e-15)


def _appends_by_thread(monkeypatch, fail=None, error=None):
    """Record every data append of the recorder (cosim.h5fast) with the thread it ran on;
    ``fail(dataset name, n0)`` true: that append raises ``error`` (default ENOSPC)."""
    import errno
    import threading

    from cosim import h5fast

    real, seen = h5fast.append, []

    def append(d, block, n0=None):
        seen.append((threading.current_thread().name, d.name, n0, len(block)))
        if fail is not None and fail(d.name, n0):
            raise error or OSError(errno.ENOSPC, "No space left on device")
        return real(d, block, n0)
    monkeypatch.setattr(h5fast, "append", append)
    return seen


def test_periodic_flushes_write_behind_the_run_and_the_close_waits(tmp_path, monkeypatch):
    """One process: each periodic flush's appends are made on the recorder's writer thread
    while the windows go on, one flush after the other (rows contiguous); the close writes
    the rest on the run's thread, after the last one finished — the file is the one of
    the synchronous writes (the clock's analytic samples, every window)."""
    seen = _appends_by_thread(monkeypatch)
    sc = _scenario(tmp_path, ClockEngine(), flush_every=7)
    out = tmp_path / "o.h5"
    run_scenario(sc, output=out, progress_stream=None)
    series = [(th, n0, n) for th, name, n0, n in seen if name == "/engines/clock/timeseries"]
    # 100 windows, flushes after 7, 14, … 98 (behind), then the close (2 windows)
    assert [th for th, _, _ in series] == ["cosim-flush"] * 14 + ["MainThread"]
    assert [n0 for _, n0, _ in series] == [14 * i for i in range(15)]
    assert [n for _, _, n in series] == [14] * 14 + [4]
    with h5py.File(out) as f:
        assert f.attrs["status"] == "completed" and f.attrs["windows_completed"] == 100
        t = f["engines/clock/timeseries_time_ms"][:]
        np.testing.assert_array_equal(t, 0.5 * np.arange(1, 201))
        np.testing.assert_allclose(f["engines/clock/timeseries"][:, 0, 0], np.sin(OMEGA * t),
                                   rtol=0, atol=1e-15)
        np.testing.assert_array_equal(f["spikes/clock.exc/timestamps"][:], 2.5 * np.arange(40))
        assert f["timing/window_seconds"].shape == (100, 1, 3)


@pytest.mark.parametrize("error, why", [
    (None, "disk full while writing the output"),
    (RuntimeError("Can't write data (file write failed: errno = 5)"),
     "cannot write the output (Can't write data)")])
def test_a_failed_write_behind_ends_the_run_cut_back_to_the_flush_before(tmp_path, monkeypatch,
                                                                        error, why):
    """The writer thread's append fails (ENOSPC, or HDF5's own write error, at the 3rd
    flush, windows 15–21): the run ends at its next flush with the one line of a failed
    write, the file cut back to the 14 windows flushed before, closed ``failed``, the lock
    released."""
    seen = _appends_by_thread(monkeypatch, error=error, fail=lambda name, n0: (
        name == "/engines/clock/timeseries" and n0 == 28))
    sc = _scenario(tmp_path, ClockEngine(), flush_every=7)
    out = tmp_path / "o.h5"
    with pytest.raises(CosimError) as err:
        run_scenario(sc, output=out, progress_stream=None)
    assert [th for th, name, n0, _ in seen if n0 == 28 and name.endswith("timeseries")] == [
        "cosim-flush"]
    assert err.value.message().startswith(f"o.h5: {why}: the file keeps the 14 windows "
                                          "(14 ms) flushed before")
    with h5py.File(out) as f:
        assert f.attrs["status"] == "failed" and f.attrs["windows_completed"] == 14
        assert f["engines/clock/timeseries"].shape == (28, 1, 2)
        assert f["engines/clock/timeseries_time_ms"][-1] == 14.0
        assert f["spikes/clock.exc/timestamps"][-1] < 14.0
    assert not (tmp_path / "o.h5.lock").exists()


@pytest.mark.parametrize("behind, where", [(True, "append"), (False, "append"),
                                           (True, "take")])
def test_a_write_failing_with_no_io_error_leaves_the_file_cut_back(tmp_path, monkeypatch,
                                                                  behind, where):
    """A flush that fails with an error of cosim's own (here a ValueError at the 3rd
    flush, windows 15–21) — in an append on the writer thread or on the run's, or while
    the buffers are taken, the time series' already: that error ends the run (an internal
    error, not a disk's), and the file is cut back to the 14 windows flushed before and
    says why — no later flush writes on past the rows the failed one left unwritten (they
    would read as zeros under a larger ``windows_completed``)."""
    from cosim.sonata import SpikeBuffers

    seen = _appends_by_thread(monkeypatch, error=ValueError("rows out of place"),
                              fail=lambda name, n0: where == "append" and n0 == 28
                              and name == "/engines/clock/timeseries")
    if where == "take":
        real, calls = SpikeBuffers.writes, []

        def writes(self, f):
            calls.append(1)
            if len(calls) == 3:
                raise ValueError("rows out of place")
            return real(self, f)
        monkeypatch.setattr(SpikeBuffers, "writes", writes)
    if not behind:                  # (as the coordinator of an MPI run writes)
        init = Recorder.__init__
        monkeypatch.setattr(Recorder, "__init__", lambda self, *a, **kw: init(
            self, *a, **{**kw, "background": False}))
    sc = _scenario(tmp_path, ClockEngine(), flush_every=7)
    out = tmp_path / "o.h5"
    with pytest.raises(ValueError, match="rows out of place"):
        run_scenario(sc, output=out, progress_stream=None)
    assert [th for th, name, n0, _ in seen if n0 == 28 and name.endswith("timeseries")] == (
        [] if where == "take" else ["cosim-flush" if behind else "MainThread"])
    with h5py.File(out) as f:
        assert f.attrs["status"] == "failed" and f.attrs["windows_completed"] == 14
        assert f.attrs["message"] == ("cannot write the output (ValueError: rows out of place): "
                                      "the file keeps the 14 windows (14 ms) flushed before")
        assert f["engines/clock/timeseries"].shape == (28, 1, 2)
        t = f["engines/clock/timeseries_time_ms"][:]
        np.testing.assert_array_equal(t, 0.5 * np.arange(1, 29))
        np.testing.assert_allclose(f["engines/clock/timeseries"][:, 0, 0], np.sin(OMEGA * t),
                                   rtol=0, atol=1e-15)
        assert f["timing/window_seconds"].shape[0] == 14
    assert not (tmp_path / "o.h5.lock").exists()


def test_the_window_kernels_release_the_gil():
    """The writes behind overlap the compute only if the engines' window kernels let go
    of the GIL: the cable's window and the neural-mass integrators are ``nogil``."""
    from cosim.coupling import COUPLINGS
    from cosim.integrators import get_kernels
    from cosim.models import get_model
    from cosim.multicompartment import cable, codegen

    assert cable.run_window.targetoptions.get("nogil") is True
    assert "nogil=True" in codegen._template().split("def run_window")[0]   # (its mechanisms' too)
    model = get_model("jansen_rit")
    k = get_kernels(model.name, (), model.dfun(()), COUPLINGS["sigmoidal_jansen_rit"])
    assert k.step.targetoptions.get("nogil") is True
    assert k.adaptive.targetoptions.get("nogil") is True


def _spinning_thread():
    """A Python thread counting as fast as it can: ``(count, stop)``."""
    import threading

    count, running = [0], [True]

    def spin():
        while running[0]:
            count[0] += 1

    th = threading.Thread(target=spin, daemon=True)
    th.start()

    def stop():
        running[0] = False
        th.join()
    return count, stop


def test_another_thread_runs_while_the_engines_kernels_run(tmp_path, monkeypatch):
    """What the flags promise, seen running: while the engines' window kernels of the
    hybrid default run (the cable network's window, the Jansen–Rit integrator), a Python
    thread counting on the other core keeps its pace.  The controls, in calls as long as
    each kernel's and measured right after it: a compiled loop that lets go of the GIL (the
    pace to keep: ≥ 75 % of it) and one that keeps it (≈ 10–25 % here, so the test can tell
    them apart; if every core is busy it cannot, and says so)."""
    import dataclasses
    import sys
    import time

    from numba import njit

    from cosim.engines.neural_mass import NeuralMassEngine
    from cosim.multicompartment.network import Network
    from cosim.scenario import load_scenario

    from _util import small_default

    def spin(n):
        x = 0.0
        for i in range(n):
            x += (i % 7) * 0.5
        return x

    free, held = njit(nogil=True)(spin), njit(spin)
    free(10), held(10)
    # the default's rV1 at full size and Jansen–Rit at dt = 0.025 ms: each kernel call of a
    # 5-ms window lasts milliseconds, so the Python between calls counts for little
    path = small_default(tmp_path, **{"sync_interval = 5.0": "sync_interval = 5.0",
                                      "duration = 2000.0": "duration = 60.0",
                                      "\nn = 240\n": "\nn = 240\n", "\nn = 60\n": "\nn = 60\n",
                                      "dt = 0.1\nintegrator": "dt = 0.025\nintegrator"})
    run_scenario(load_scenario(path, output=tmp_path / "warm.h5"), progress_stream=None)  # (JIT)
    during: dict[str, list] = {}

    def timed(name, f):
        def call(*a, **kw):
            c0, tic = count[0], time.perf_counter()
            try:
                return f(*a, **kw)
            finally:
                d = during.setdefault(name, [0, 0.0, 0])
                d[0] += count[0] - c0
                d[1] += time.perf_counter() - tic
                d[2] += 1
        call.timed = True
        return call

    monkeypatch.setattr(Network, "advance", timed("cable window", Network.advance))
    nm_advance = NeuralMassEngine.advance

    def nm(self, *a, **kw):
        k = self._kernels
        if not getattr(k.step, "timed", False):
            self._kernels = dataclasses.replace(k, step=timed("Jansen–Rit", k.step),
                                                adaptive=timed("Jansen–Rit", k.adaptive))
        return nm_advance(self, *a, **kw)

    monkeypatch.setattr(NeuralMassEngine, "advance", nm)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)       # (the counting thread hands the GIL back quickly)
    count, stop = _spinning_thread()
    try:
        run_scenario(load_scenario(path, output=tmp_path / "o.h5"), progress_stream=None)
        # each kernel's controls in calls as long as its own (as many GIL hand-overs)
        for name, (_, seconds, calls) in list(during.items()):
            n = 100_000
            for _ in range(3):
                tic = time.perf_counter()
                free(n)
                n = max(1000, int(n * seconds / calls / (time.perf_counter() - tic)))
            for control, f in (("free", free), ("held", held)):
                tic = time.perf_counter()
                while time.perf_counter() - tic < 0.15:
                    timed(f"{control} {name}", f)(n)
    finally:
        stop()
        sys.setswitchinterval(interval)
    pace = {name: n / seconds for name, (n, seconds, _) in during.items()}
    for name in ("cable window", "Jansen–Rit"):
        free_pace, held_pace = pace[f"free {name}"], pace[f"held {name}"]
        if held_pace > 0.6 * free_pace:     # (every core busy: the controls look alike)
            pytest.skip(f"the machine is too busy to tell a kernel that lets go of the GIL "
                        f"from one that keeps it ({name}: {held_pace / free_pace:.2f})")
        assert pace[name] > 0.75 * free_pace, (name, pace)


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "o.h5"
    out.write_bytes(b"precious")
    sc = _scenario(tmp_path, ClockEngine())
    with pytest.raises(CosimError, match="output file exists; pass --overwrite"):
        Recorder(out, sc, {"clock": ClockEngine().record_specs()})
    assert out.read_bytes() == b"precious"
    run_scenario(sc, output=out, overwrite=True, progress_stream=None)
    with h5py.File(out) as f:
        assert f.attrs["status"] == "completed"


def test_a_batch_of_timing_rows_is_stored_as_each_window_alone(tmp_path):
    """write_windows' timing rows (the coordinator's lists, or arrays) made one array at
    once: the table holds each window's rows as given; rows of the wrong size, or of
    different sizes, are refused as one window's are."""
    sc = _scenario(tmp_path, ClockEngine())
    rec = Recorder(tmp_path / "o.h5", sc, {"clock": ClockEngine().record_specs()}, n_ranks=2)
    rows = [[[0.1 * k, 0.2, 0.3], [0.4, 0.5 + k, 0.6]] for k in range(5)]
    rec.write_windows({}, rows[:3], [(k, k + 1.0) for k in range(3)])
    rec.write_windows({}, [np.array(r) for r in rows[3:]], [(k, k + 1.0) for k in range(3, 5)])
    with pytest.raises(ValueError):
        rec.write_windows({}, [[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]], [(5, 6.0), (6, 7.0)])
    with pytest.raises(ValueError):         # ragged: no one array, each window's refused
        rec.write_windows({}, [[[1.0, 2.0, 3.0]], rows[0]], [(5, 6.0), (6, 7.0)])
    rec.close()
    with h5py.File(tmp_path / "o.h5") as f:
        np.testing.assert_array_equal(f["timing/window_seconds"][()], np.array(rows))
