"""The failure paths of the newer engines under a real ``mpiexec``: a population-density
region and the cortical surface, on ranks of their own.

* SIGTERM (what SLURM sends) to the population-density rank ends the job at a window
  boundary with exit 143, the output closed ``terminated`` with every window up to the
  signal, a final checkpoint; ``--resume`` under ``mpiexec`` gives the straight run's bits.
* SIGKILL of the surface rank ends the job within seconds, one line naming the rank seen to
  end first, no process left, and the file opens with every flushed window.
* A bad key of either engine under ``mpiexec -n 3`` is one line, exit 2, no output file —
  among them the geodesic local connectivity's ``[engines.cortex.local_kernel]`` and the
  surface's ``[record.cortex.bold]``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from _util import REPO, assert_same_data, h5_data, signal_and_wait, wait_windows

pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(not (Path(sys.executable).parent / "mpiexec").exists(),
                                 reason="no mpiexec (pip install -e .[mpi])")]

MPIEXEC = Path(sys.executable).parent / "mpiexec"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _scenario(tmp_path: Path, shipped: str, name: str, **subs) -> Path:
    text = (REPO / "scenarios" / shipped).read_text()
    for old, new in subs.items():
        assert old in text, old
        text = text.replace(old, new)
    p = tmp_path / name
    p.write_text(text)
    return p


def _pd(tmp_path: Path, duration: float) -> Path:
    """scenarios/hybrid_population_density.toml: cortex on rank 1, rV1's densities on rank 2;
    checkpoints every 50 ms, flushes every window."""
    return _scenario(tmp_path, "hybrid_population_density.toml", "pd.toml", **{
        "duration = 1000.0": f"duration = {duration}",
        "seed = 1\n": "seed = 1\ncheckpoint_every = 50.0\n",
        'output = "results/hybrid_population_density.h5"': 'output = "pd.h5"',
        "[record]\n": "[record]\nflush_every = 1\n"})


def _cli(args, np_: int = 0, **kw) -> subprocess.CompletedProcess:
    cmd = ([str(MPIEXEC), "-n", str(np_)] if np_ else []) + [sys.executable, "-m", "cosim", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV, **kw)


def _start(args, np_: int, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([str(MPIEXEC), "-n", str(np_), sys.executable, "-m", "cosim", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=ENV, start_new_session=True)


def _gone(table: dict) -> None:
    for r in table.values():
        with pytest.raises(ProcessLookupError):
            os.kill(r["pid"], 0)


def test_sigterm_to_the_population_density_rank_then_resume(tmp_path):
    scen = _pd(tmp_path, 600.0)
    r = _cli(["run", str(scen), "-o", str(tmp_path / "straight.h5"), "-q", "--no-monitor"],
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "cut.h5"
    proc = _start(["run", str(scen), "-o", str(out), "-q", "--no-monitor"], 3, tmp_path)
    table, seen = wait_windows(out, proc, 20)
    assert table["2"]["role"] == "engine v1"
    _, err, _ = signal_and_wait(proc, table["2"]["pid"], signal.SIGTERM)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM) at t = " in err and "Traceback" not in err, err
    _gone(table)
    with h5py.File(out) as f:
        assert f.attrs["status"] == "terminated"
        w = int(f.attrs["windows_completed"])
        assert seen <= w < 120                                  # 5 ms windows of 600 ms
        assert f["engines/v1/timeseries"].shape[0] == w * 5     # 1 ms record period
    ckdir = Path(str(out) + ".checkpoint")
    assert any(p.name.startswith(f"part-v1-0-w{w}") for p in ckdir.iterdir()), \
        sorted(p.name for p in ckdir.iterdir())
    r = _cli(["run", str(scen), "-o", str(out), "-q", "--no-monitor", "--resume"], 3, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_data(h5_data(tmp_path / "straight.h5"), h5_data(out))


def test_sigkill_of_the_surface_rank_ends_the_job_and_keeps_the_file(tmp_path):
    scen = _scenario(tmp_path, "surface_hybrid.toml", "sh.toml", **{
        "duration = 200.0": "duration = 5000.0",
        'output = "results/surface_hybrid.h5"': 'output = "sh.h5"',
        "[record]\n": "[record]\nflush_every = 2\n"})
    out = tmp_path / "sh.h5"
    proc = _start(["run", str(scen), "-o", str(out), "-q", "--no-monitor"], 3, tmp_path)
    table, seen = wait_windows(out, proc, 6)
    assert table["2"]["role"] == "engine cortex"
    _, err, ended = signal_and_wait(proc, table["2"]["pid"], signal.SIGKILL)
    assert proc.returncode != 0 and ended < 15.0, err
    ours = [ln for ln in err.splitlines() if ln.startswith("cosim: rank ")]
    assert len(ours) == 1 and "ended first" in ours[0], err
    assert "Traceback" not in err, err
    _gone(table)
    with h5py.File(out) as f:
        # mpiexec takes every rank down at once: the bus may not get to mark the file
        # "failed"; whatever it says, the flushed windows are there and whole
        assert f.attrs["status"] in ("running", "failed")
        w = int(f.attrs["windows_completed"])
        assert w >= seen
        assert f["engines/cortex/regions"].shape[0] == w         # 1 ms windows, 1 ms period
        assert f["engines/subcortex/timeseries"].shape[0] == w


_GEODESIC = {'local_connectivity = "tvb:local_connectivity_16384"': 'local_connectivity = "geodesic"',
             "[engines.cortex.coupling]": '[engines.cortex.local_kernel]\nsurface = "tvb:cortex_16384"\n'
                                          'cutoff = 5.0\ntype = "gaussian"\nsigma = 2.0\n'
                                          "[engines.cortex.coupling]"}


def _bold(**keys) -> dict:
    table = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return {"[record]\nperiod = 1.0\n": f"[record]\nperiod = 1.0\n[record.cortex.bold]\n{table}"}


@pytest.mark.parametrize("shipped, subs, line", [
    ("hybrid_population_density.toml", {"dv = 0.1 ": "dv = -0.1 "},
     "engines.v1.dv: must be > 0"),
    ("surface_hybrid.toml", {'exclude_regions = ["rAMYG"': 'exclude_regions = ["rAMYX"'},
     "engines.cortex.exclude_regions"),
    # the geodesic local connectivity's kernel table
    ("surface_hybrid.toml", {**_GEODESIC, "cutoff = 5.0": "cutoff = -1.0"},
     "engines.cortex.local_kernel.cutoff: must be > 0, got -1"),
    ("surface_hybrid.toml", {**_GEODESIC, '"tvb:cortex_16384"': '"tvb:cortex_8000"'},
     "engines.cortex.local_kernel.surface: unknown tvb-data surface 'tvb:cortex_8000'"),
    # BOLD of the surface's region averages
    ("surface_hybrid.toml", _bold(input='"Q"'),
     "record.cortex.bold.input: variable 'Q' is not recorded (recorded: V, W)"),
])
def test_bad_key_under_mpiexec_is_one_line(tmp_path, shipped, subs, line):
    scen = _scenario(tmp_path, shipped, "bad.toml", **subs)
    r = _cli(["run", str(scen), "-o", str(tmp_path / "x.h5"), "-q", "--no-monitor"], 3,
             cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"bad.toml: {line}"), r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.h5").exists()
