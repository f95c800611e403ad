"""``--resume`` checks what it resumes: a checkpoint of another model (G, seed, cells, sync
interval, a data file) is a one-line error naming what changed; only the duration may
change, and only grow; one-process and MPI checkpoints resume in either layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from _hpc import hpc
from _util import h5_data, small_default

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _hybrid(tmp_path: Path, name="h.toml", duration=60.0) -> Path:
    return small_default(tmp_path, name, **{"duration = 2000.0": f"duration = {duration}",
                                            "seed = 2026": "seed = 2026\ncheckpoint_every = 25.0"})


def _data(path: Path) -> dict:
    return h5_data(path, skip=("timing", "provenance", "scenario"))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A completed one-process run with checkpoints at 25 and 50 ms (resumable from 50)."""
    d = tmp_path_factory.mktemp("resume")
    scen = _hybrid(d)
    r = hpc("run", str(scen), "-o", "out.h5", "-q", "--no-monitor", cwd=d)
    assert r.returncode == 0, r.stderr
    return d, scen


@pytest.mark.parametrize("old,new,key", [
    ("G = 1.0", "G = 0.5", "engines.cortex.coupling.G is 0.5 now but was 1.0"),
    ("seed = 2026", "seed = 7", "simulation.seed is 7 now but was 2026"),
    ("\nn = 12\n", "\nn = 13\n", "engines.v1.cells.inh.n is 13 now but was 12"),
    ("sync_interval = 1.0", "sync_interval = 0.5", "simulation.sync_interval is 0.5 now"),
    ("duration = 60.0", "duration = 40.0", "simulation.duration is 40 ms now but was 60 ms"),
])
def test_a_changed_model_is_refused_naming_what_changed(written, old, new, key):
    d, scen = written
    changed = d / "changed.toml"
    changed.write_text(scen.read_text().replace(old, new))
    before = _data(d / "out.h5")
    r = hpc("run", str(changed), "-o", "out.h5", "-q", "--no-monitor", "--resume", cwd=d)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "cannot resume" in r.stderr and key in r.stderr, r.stderr
    after = _data(d / "out.h5")                                   # untouched
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_changed_data_file_is_refused(tmp_path):
    """The connectome is read from CSV files: editing one is another model (even when the
    numbers stay: the file's content is what the checkpoint remembers)."""
    w = np.array([[0.0, 1.0], [0.5, 0.0]])
    np.savetxt(tmp_path / "w.csv", w, delimiter=",")
    np.savetxt(tmp_path / "l.csv", 30.0 * (w != 0), delimiter=",")
    scen = tmp_path / "two.toml"
    scen.write_text("""
[simulation]
duration = 40.0
sync_interval = 1.0
checkpoint_every = 10.0
[connectome]
source = { weights = "w.csv", tract_lengths = "l.csv" }
[engines.m]
type = "neural_mass"
model = "wilson_cowan"
""")
    r = hpc("run", str(scen), "-o", "out.h5", "-q", "--no-monitor", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "l.csv").write_text((tmp_path / "l.csv").read_text() + "\n")
    r = hpc("run", str(scen), "-o", "out.h5", "-q", "--no-monitor", "--resume", cwd=tmp_path)
    assert r.returncode == 2 and "cannot resume: l.csv changed since the checkpoint" in r.stderr, r.stderr


def test_the_duration_may_grow(tmp_path):
    longer = _hybrid(tmp_path, "long.toml", duration=100.0)
    r = hpc("run", str(longer), "-o", "straight.h5", "-q", "--no-monitor", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    short = _hybrid(tmp_path, "short.toml", duration=60.0)
    assert hpc("run", str(short), "-o", "out.h5", "-q", "--no-monitor", cwd=tmp_path).returncode == 0
    r = hpc("run", str(longer), "-o", "out.h5", "-q", "--no-monitor", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got, ref = _data(tmp_path / "out.h5"), _data(tmp_path / "straight.h5")
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    with h5py.File(tmp_path / "out.h5") as f:
        assert f.attrs["duration_ms"] == 100.0 and f.attrs["status"] == "completed"
        assert f["scenario"][()].decode() == longer.read_text()


@pytest.mark.mpi
def test_checkpoints_resume_across_layouts(written, tmp_path):
    """One process → mpiexec -n 3 and mpiexec -n 3 → one process (both split nothing)."""
    d, scen = written
    ref = _data(d / "out.h5")
    for first, second in ((None, 3), (3, None)):
        out = tmp_path / f"x{first}.h5"
        for n, extra in ((first, []), (second, ["--resume"])):
            cmd = ([str(MPIEXEC), "-n", str(n)] if n else []) + [
                sys.executable, "-m", "cosim", "run", str(scen), "-o", str(out), "-q",
                "--no-monitor", *extra]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stderr
        got = _data(out)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{first} → {second}: {k}")
