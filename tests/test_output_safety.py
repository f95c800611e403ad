"""The output file is safe: a refused run never touches a file another run writes; an output
that cannot fit is refused before the run; a disk that fills during the run ends it with one
line and a file that opens holding every flushed window; the output cannot be an input."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import run_cli
from cosim.cli import main

JR = """
[simulation]
duration = {duration}
sync_interval = 2.0
seed = 7
output = "run.h5"

[connectome]
source = {source}

[engines.cortex]
type = "neural_mass"
model = "jansen_rit"
dt = 0.1

[record]
period = 1.0
flush_every = {flush_every}
[record.cortex]
variables = ["y1", "y2"]
"""


def _scenario(folder: Path, duration=8000.0, flush_every=20, source='"tvb:connectivity_76"',
              name="jr.toml") -> Path:
    p = folder / name
    p.write_text(JR.format(duration=duration, flush_every=flush_every, source=source))
    return p


def _start(*args, cwd, env=None) -> subprocess.Popen:
    env = dict(os.environ if env is None else env)
    env.pop("COSIM_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "cosim", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _windows_on_disk(out: Path) -> int:
    try:
        with h5py.File(out, "r", locking=False) as f:
            return int(f.attrs.get("windows_completed", 0))
    except (OSError, KeyError):
        return 0


def _wait_for_windows(out: Path, n: int, proc: subprocess.Popen, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while _windows_on_disk(out) < n:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run wrote no windows in time")
        time.sleep(0.1)


def _cli(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(list(args))
    return rc, err.getvalue()


@pytest.fixture
def small_tmpfs(tmp_path):
    """``mount(size)`` → a folder on a tmpfs of that size (skips where mounting is impossible)."""
    mounted = []

    def mount(size: str) -> Path:
        d = tmp_path / f"tmpfs{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'})")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _fill(folder: Path) -> None:
    """Fill the filesystem of ``folder`` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        block = b"\0" * 65536
        while True:
            try:
                fh.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                block = block[: len(block) // 2]
                if not block:
                    return


def _assert_holds_whole_windows(out: Path, windows: int) -> None:
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "failed"
        assert int(f.attrs["windows_completed"]) == windows
        ts = f["engines/cortex/timeseries"][:]
        t = f["engines/cortex/timeseries_time_ms"][:]
        assert ts.shape == (2 * windows, 2, 76)              # 2 samples per 2 ms window
        np.testing.assert_array_equal(t, np.arange(1, 2 * windows + 1, dtype=float))
        assert np.isfinite(ts).all() and (ts != 0).any()
        assert f["timing/window_seconds"].shape[0] == windows


# -- a second run on the same output -------------------------------------------------------

def test_a_refused_second_run_leaves_the_running_jobs_file_intact(tmp_path):
    """Before: the second `--overwrite` run was refused (`unable to lock file`) only after
    HDF5's create-with-truncate had emptied the file; the first then wrote into a broken file."""
    sc = _scenario(tmp_path)
    out = tmp_path / "run.h5"
    first = _start("run", str(sc), "-o", str(out), "--overwrite", "-q", "--no-monitor",
                   cwd=tmp_path)
    try:
        _wait_for_windows(out, 20, first)
        # held still while the second is tried: the test does not race the first run's end
        first.send_signal(signal.SIGSTOP)
        try:
            second = run_cli("run", str(sc), "-o", str(out), "--overwrite", "-q",
                             "--no-monitor", cwd=tmp_path)
            assert first.poll() is None, "the first run ended before the second was tried"
        finally:
            first.send_signal(signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1, second.stderr
    assert second.stderr.startswith(f"run.h5: held by another run (pid {first.pid} on "), second.stderr
    assert first.returncode == 0, stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "completed"
        assert f.attrs["windows_completed"] == 4000
        assert f["engines/cortex/timeseries"].shape == (8000, 2, 76)
    assert not Path(str(out) + ".lock").exists()
    assert not list(tmp_path.glob(".run.h5.*.tmp"))


TWO_ENGINES = JR.replace("""[engines.cortex]
type = "neural_mass"
model = "jansen_rit"
dt = 0.1
""", """[engines.left]
type = "neural_mass"
model = "jansen_rit"
regions = ["rA1", "rV1"]
dt = 0.1
[engines.right]
type = "neural_mass"
model = "jansen_rit"
regions = "rest"
dt = 0.1
""").replace("[record.cortex]\nvariables = [\"y1\", \"y2\"]\n", "")


@pytest.mark.skipif(not (Path(sys.executable).parent / "mpiexec").exists(),
                    reason="no mpiexec (pip install -e .[mpi])")
@pytest.mark.mpi
def test_a_refused_run_leaves_the_file_of_a_job_under_mpiexec_intact(tmp_path):
    """The same with the first job under `--np 3`, the second refused under `--np 3` too.
    The first job is long (parallel output makes it quick, and a quiet machine quicker) and
    is ended by SIGTERM once the second was refused: its file keeps every window it did."""
    sc = tmp_path / "two.toml"
    sc.write_text(TWO_ENGINES.format(duration=200000.0, flush_every=20, source='"tvb:connectivity_76"'))
    out = tmp_path / "two.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = _start("run", str(sc), "--np", "3", "-o", str(out), "--overwrite", "-q",
                   "--no-monitor", cwd=tmp_path, env=env)
    try:
        _wait_for_windows(out, 20, first)
        second = run_cli("run", str(sc), "--np", "3", "-o", str(out), "--overwrite", "-q",
                         "--no-monitor", cwd=tmp_path)
        assert first.poll() is None, "the first run ended before the second was tried"
        first.send_signal(signal.SIGTERM)
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1, second.stderr
    assert second.stderr.startswith("two.h5: held by another run (pid "), second.stderr
    assert first.returncode == 128 + signal.SIGTERM, stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "terminated"
        windows = int(f.attrs["windows_completed"])
        assert 20 <= windows < 100000
        ts = f["engines/right/timeseries"]
        assert ts.shape[0] == 2 * windows
        assert np.isfinite(ts[-2:]).all() and (ts[-2:] != 0).any()
        assert f["timing/window_seconds"].shape[0] == windows


# -- the output is an input ----------------------------------------------------------------

def test_output_equal_to_an_input_is_refused_even_with_overwrite(tmp_path):
    """Before: `--output w.csv --overwrite` replaced the connectome with an HDF5 file."""
    w = np.ones((3, 3)) - np.eye(3)
    (tmp_path / "data").mkdir()
    np.savetxt(tmp_path / "data" / "w.csv", w, delimiter=",")
    np.savetxt(tmp_path / "data" / "l.csv", 20.0 * w, delimiter=",")
    sc = _scenario(tmp_path, duration=10.0, source='{ weights = "data/w.csv", '
                                                   'tract_lengths = "data/l.csv" }')
    (tmp_path / "link.toml").symlink_to(sc)
    before = {p: p.read_bytes() for p in (sc, tmp_path / "data" / "w.csv", tmp_path / "data" / "l.csv")}
    for target, named in ((sc, "jr.toml"), (tmp_path / "link.toml", "jr.toml"),
                          (tmp_path / "data" / "w.csv", "w.csv"),
                          (tmp_path / "data" / ".." / "data" / "l.csv", "l.csv")):
        rc, err = _cli("run", str(sc), "-o", str(target), "--overwrite", "-q", "--no-monitor")
        assert rc == 2 and err.count("\n") == 1, err
        assert f"the output file is an input of the run (" in err and named in err, err
    r = run_cli("run", str(sc), "-o", "data/w.csv", "--overwrite", "-q", "--no-monitor",
                cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("w.csv: the output file is an input of the run"), r.stderr
    assert {p: p.read_bytes() for p in before} == before


# -- an output folder that cannot be written -------------------------------------------------

@pytest.mark.mpi
def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, small_tmpfs):
    """Before: `internal error: OSError: [Errno 30] Read-only file system: '….h5.monitor'`
    (exit 1; under mpiexec a hang)."""
    sc = _scenario(tmp_path, duration=10.0)
    ro = small_tmpfs("1m")
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    for out, why in ((ro / "out.h5", "(Read-only file system)"), (Path("/proc/out.h5"), "")):
        r = run_cli("run", str(sc), "-o", str(out), "-q", cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(f"out.h5: cannot write in {out.parent} "), r.stderr
        assert why in r.stderr
    if (Path(sys.executable).parent / "mpiexec").exists():
        r = run_cli("run", str(sc), "--np", "2", "-o", str(ro / "out.h5"), "-q", cwd=tmp_path,
                    timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(f"out.h5: cannot write in {ro} (Read-only file system)")


# -- free space ----------------------------------------------------------------------------

@pytest.mark.mpi
def test_an_output_that_cannot_fit_is_refused_before_the_run(tmp_path, small_tmpfs):
    disk = small_tmpfs("1m")
    sc = _scenario(tmp_path)                     # 8000 × 2 × 76 × 8 B ≈ 9.3 MiB of samples
    r = run_cli("run", str(sc), "-o", str(disk / "run.h5"), "-q", "--no-monitor", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("run.h5: not enough free space: the output needs about 1"), r.stderr
    assert re.search(r"needs about 1\d\.\d MiB \(estimated from the record specs\), "
                     r"10\d\d\.\d KiB free$", r.stderr), r.stderr
    assert list(disk.iterdir()) == []            # no file, no temporary, no lock left
    if (Path(sys.executable).parent / "mpiexec").exists():     # refused before any rank runs
        two = tmp_path / "two.toml"
        two.write_text(TWO_ENGINES.format(duration=8000.0, flush_every=20,
                                          source='"tvb:connectivity_76"'))
        r = run_cli("run", str(two), "--np", "3", "-o", str(disk / "two.h5"), "-q",
                    "--no-monitor", cwd=tmp_path, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("two.h5: not enough free space: the output needs about ")
        assert list(disk.iterdir()) == []


def test_free_space_estimate_counts_samples_and_refuses_in_process(tmp_path, monkeypatch):
    from cosim import output_guard
    from cosim.pipeline import record_specs as _record_specs
    from cosim.scenario import load_scenario

    sc = load_scenario(_scenario(tmp_path))
    est = output_guard.estimate_output_bytes(_record_specs(sc), sc)
    samples = 8000 * 2 * 76 * 8
    assert samples < est < samples + 4 * (1 << 20)
    monkeypatch.setattr(output_guard, "free_bytes", lambda path: est - 1)
    rc, err = _cli("run", str(tmp_path / "jr.toml"), "-o", str(tmp_path / "o.h5"), "-q",
                   "--no-monitor")
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("o.h5: not enough free space") and not (tmp_path / "o.h5").exists()


# -- the disk fills during the run ---------------------------------------------------------

def test_a_disk_that_fills_during_the_run_ends_it_with_every_flushed_window(tmp_path, small_tmpfs):
    """Before: a segfault (exit 139) after 14 h5py tracebacks, `windows_completed` said 100
    and every dataset read failed (`addr overflow`)."""
    disk = small_tmpfs("14m")
    sc = _scenario(tmp_path)                     # fits at the start: ~10 MiB
    out = disk / "run.h5"
    proc = _start("run", str(sc), "-o", str(out), "-q", "--no-monitor", cwd=tmp_path)
    try:
        _wait_for_windows(out, 100, proc)
        _fill(disk)                              # another process takes the rest of the disk
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("run.h5: disk full while writing the output"), stderr
    kept = int(stderr.split("the file keeps the ")[1].split()[0])
    assert 100 <= kept < 4000
    _assert_holds_whole_windows(out, kept)


ENOSPC_IN_HDF5 = """
import sys
from cosim import output_guard
output_guard.free_bytes = lambda path: 1 << 50   # the checks see room: HDF5's write fails
from cosim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_enospc_inside_an_hdf5_write_keeps_every_flushed_window(tmp_path, small_tmpfs):
    """The space checks passed (another process filled the disk in between): HDF5's own
    write fails with ENOSPC; the file is cut back to the last flushed window and closed."""
    disk = small_tmpfs("14m")
    sc = _scenario(tmp_path)
    out = disk / "run.h5"
    env = dict(os.environ)
    env.pop("COSIM_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-c", ENOSPC_IN_HDF5, "run", str(sc), "-o", str(out),
                             "-q", "--no-monitor"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_windows(out, 100, proc)
        _fill(disk)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("run.h5: disk full while writing the output: the file keeps the "), stderr
    kept = int(stderr.split("the file keeps the ")[1].split()[0])
    assert 100 <= kept < 4000
    _assert_holds_whole_windows(out, kept)


def test_a_failed_write_is_rolled_back_to_the_last_flushed_window(tmp_path, monkeypatch):
    """The same logic without a small disk: the 3rd data write raises ENOSPC."""
    from cosim.errors import CosimError
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    from cosim import h5fast

    sc = load_scenario(_scenario(tmp_path, duration=400.0, flush_every=20))
    real = h5fast.append            # the recorder's data writes (cosim.h5fast)
    calls = {"n": 0}

    def failing(d, block, n0=None):
        if d.name == "/engines/cortex/timeseries":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(d, block, n0)

    monkeypatch.setattr(h5fast, "append", failing)
    out = tmp_path / "o.h5"
    with pytest.raises(CosimError) as err:
        run_scenario(sc, output=out, progress_stream=None)
    monkeypatch.undo()
    assert err.value.message().startswith("o.h5: disk full while writing the output: the file "
                                          "keeps the 40 windows (80 ms) flushed before")
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "failed" and f.attrs["windows_completed"] == 40
        assert f.attrs["t_completed_ms"] == 80.0
        assert f["engines/cortex/timeseries"].shape == (80, 2, 76)
        assert f["engines/cortex/timeseries_time_ms"][-1] == 80.0
    assert not Path(str(out) + ".lock").exists()


def test_sigkill_in_one_process_keeps_every_flushed_window(tmp_path):
    """A one-process run killed (SIGKILL) while it writes: the file opens and holds every
    window its last completed flush counted — the flush's appends (cosim.h5fast: extents
    and data written with no file flush in between, the file flushed once after them)."""
    sc = _scenario(tmp_path)
    out = tmp_path / "run.h5"
    proc = _start("run", str(sc), "-o", str(out), "-q", "--no-monitor", cwd=tmp_path)
    try:
        _wait_for_windows(out, 60, proc)
        time.sleep(0.3)                    # somewhere in a later window or flush
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with h5py.File(out, "r") as f:
        w = int(f.attrs["windows_completed"])
        assert w >= 60 and w % 20 == 0 and f.attrs["status"] == "running"
        assert f.attrs["t_completed_ms"] == 2.0 * w
        ts = f["engines/cortex/timeseries"][: 2 * w]
        t = f["engines/cortex/timeseries_time_ms"][: 2 * w]
        assert ts.shape == (2 * w, 2, 76) and np.isfinite(ts).all() and (ts != 0).any()
        np.testing.assert_array_equal(t, np.arange(1, 2 * w + 1, dtype=float))
        assert f["timing/window_seconds"].shape[0] >= w
        assert np.isfinite(f["timing/window_seconds"][:w]).all()
