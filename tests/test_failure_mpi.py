"""A rank that dies mid-run ends the whole MPI job quickly, with a message naming its engine
and rank, and the output file keeps every window flushed before the failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import signal_and_wait, wait_windows
from scenarios import neural_mass, record, scenario_text, simulation

pytestmark = pytest.mark.mpi

MPIEXEC = Path(sys.executable).parent / "mpiexec"
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec (pip install -e .[mpi])")
def test_sigkill_of_one_rank_ends_the_job_and_names_it(tmp_path):
    text = (REPO / "scenarios" / "default.toml").read_text()
    text = text.replace("duration = 2000.0", "duration = 60000.0")
    text = text.replace("[record]\nperiod = 1.0", "[record]\nperiod = 1.0\nflush_every = 20")
    sc = tmp_path / "long.toml"
    sc.write_text(text)
    out = tmp_path / "long.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cosim", "run", str(sc), "--np", "3",
                             "--output", str(out), "--quiet", "--no-monitor"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    table, _ = wait_windows(out, proc, 40, timeout=120)
    assert table["2"]["role"] == "engine v1"
    stdout, stderr, ended = signal_and_wait(proc, table["2"]["pid"], signal.SIGKILL, timeout=30)
    assert proc.returncode != 0
    assert ended < 10.0
    # one line names the rank seen to end first, its engine and pid (best effort: every
    # rank dies by SIGKILL within milliseconds; usually it is the one we killed)
    ours = [ln for ln in stderr.splitlines() if ln.startswith("cosim: rank ")]
    assert len(ours) == 1, stderr
    named = [r for r, e in table.items()
             if ours[0].startswith(f"cosim: rank {r} ({e['role']}, pid {e['pid']} on {e['host']}) ended first")]
    assert named, ours[0]
    assert "Traceback" not in stderr
    with h5py.File(out, "r") as f:                       # the file opens and holds whole windows
        done = int(f.attrs["windows_completed"])
        assert done >= 40
        ts = f["engines/cortex/timeseries"]
        assert ts.shape[0] == done * 5                    # 5 samples per 5 ms window
        assert f["engines/cortex/timeseries_time_ms"][-1] == done * 5.0


BLOWUP = scenario_text(
    simulation(duration=400.0, seed=1, output="blow.h5"),
    engines={"calm": neural_mass("linear", regions=["rV1"]),
             "wild": neural_mass("linear", regions="rest", parameters={"gamma": 5.0},
                                 initial={"x": 1.0})},
    record=record(1.0, 1000))


def _blow_up(tmp_path, scen, n: int, bound_s: float) -> tuple[str, np.ndarray]:
    """Run ``scen`` under ``mpiexec -n n``: it ends within ``bound_s`` with exit 2 and one
    line (nothing else on stderr); that line and the output's ``wild`` series — status
    failed, every window before the blow-up kept, all finite."""
    import re

    t0 = time.monotonic()
    r = subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "cosim", "run",
                        str(scen), "--quiet", "--no-monitor"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=bound_s * 1.5, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert time.monotonic() - t0 < bound_s
    assert r.returncode == 2, r.stderr
    ours = [ln for ln in r.stderr.splitlines() if ln.strip()]     # the one line, nothing else
    assert len(ours) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "is inf" in ours[0] or "is nan" in ours[0], ours[0]
    t_bad = float(re.search(r"at t = ([0-9.]+) ms", ours[0]).group(1))
    with h5py.File(tmp_path / "blow.h5") as f:
        assert f.attrs["status"] == "failed"
        done = int(f.attrs["windows_completed"])
        assert done > 50 and done <= t_bad <= done + 1.0   # every window before the blow-up
        x = f["engines/wild/timeseries"][:]
        assert x.shape[0] == done and np.isfinite(x).all()
    return ours[0], x


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec (pip install -e .[mpi])")
def test_engine_error_under_mpiexec_names_engine_and_rank_and_keeps_the_file(tmp_path):
    # x' = 5 x + coupling overflows a double after ~0.1 s: a NumericalError on "wild"'s rank
    sc = tmp_path / "blow.toml"
    sc.write_text(BLOWUP)
    line, _ = _blow_up(tmp_path, sc, 3, 60.0)
    assert line.startswith("cosim: engine wild (rank 2) failed: engine wild: region ")


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec (pip install -e .[mpi])")
def test_engine_error_on_one_part_at_p9_names_engine_and_rank_and_keeps_every_window(tmp_path):
    """``wild`` split into 7 parts (ranks 2–8): one region of its 4th part (rank 5) grows as
    e^{5 t/ms} and overflows; the line names engine wild, rank 5 and that region; exit 2; the
    file — joined from the rank files — holds every window before the blow-up, finite."""
    from cosim.plan import make_plan
    from cosim.scenario import load_scenario
    from scenarios import scenario, write

    probe = write(tmp_path / "probe.toml", scenario(
        simulation(duration=400.0, seed=1, output="blow.h5"),
        engines={"calm": neural_mass("linear", regions=["rV1"]),
                 "wild": neural_mass("linear", regions="rest")}))
    sc = load_scenario(probe)
    wild = make_plan(sc, 9).group("wild")
    assert wild.ranks == (2, 3, 4, 5, 6, 7, 8)
    r_bad = int(sc.engines["wild"].part_regions(3, 7)[1])
    region = str(sc.connectome.region_labels[r_bad])
    k = list(sc.engines["wild"].region_indices).index(r_bad)      # its column in the output
    path = write(tmp_path / "blow9.toml", scenario(
        simulation(duration=400.0, seed=1, output="blow.h5"),
        engines={"calm": neural_mass("linear", regions=["rV1"]),
                 "wild": neural_mass("linear", regions="rest",
                                     parameters={"gamma": {"default": -10.0, region: 5.0}},
                                     initial={"x": {"default": 0.0, region: 1.0}})},
        record=record(1.0, 1000)))
    line, x = _blow_up(tmp_path, path, 9, 120.0)
    assert line.startswith(f"cosim: engine wild (rank 5) failed: engine wild: region "
                           f"{region}: variable x is "), line
    # the region that blew up leads the 74 others in its last kept sample (they only follow
    # it through the coupling, later and damped)
    last = np.abs(x[-1, 0])
    assert last.argmax() == k and last[k] > 1e100, (last[k], np.delete(last, k).max())


#: ``python -c`` under mpiexec: the coordinator's 3rd append to the cortex series fails with
#: an error of cosim's own (no I/O error), then ``cosim`` runs as the CLI does
FAULTY_APPEND = """
import sys
from cosim import h5fast
real, calls = h5fast.append, []
def append(d, block, n0=None):
    if d.name == "/engines/cortex/timeseries":
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("rows out of place")
    return real(d, block, n0)
h5fast.append = append
from cosim.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec (pip install -e .[mpi])")
def test_a_coordinator_write_failing_with_no_io_error_ends_the_job_cut_back(tmp_path):
    """Under ``mpiexec -n 3`` the coordinator writes the monitored series itself, at once
    (no write behind); its 3rd flush (windows 41–60) fails with a ValueError: the job ends
    with exit 1 and one line naming the bus, and the file holds exactly the 40 windows
    flushed before — the straight run's, every series and the spikes before 40 ms — with
    no rows of the failed flush under a later one."""
    from _util import small_default

    sc = small_default(tmp_path, "h.toml", **{
        "duration = 2000.0": "duration = 300.0",
        "[record]\nperiod = 1.0": "[record]\nperiod = 1.0\nflush_every = 20"})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("COSIM_DEBUG", None)
    run = [str(MPIEXEC), "-n", "3", sys.executable]
    args = ["run", str(sc), "--quiet", "--no-monitor", "--output"]
    r = subprocess.run([*run, "-c", FAULTY_APPEND, *args, "bad.h5"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ["cosim: bus (rank 0) failed: ValueError: rows out of place"], r.stderr
    good = subprocess.run([*run, "-m", "cosim", *args, "good.h5"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    with h5py.File(tmp_path / "bad.h5") as f, h5py.File(tmp_path / "good.h5") as g:
        assert f.attrs["status"] == "failed" and f.attrs["windows_completed"] == 40
        assert f.attrs["message"] == ("cannot write the output (ValueError: rows out of "
                                      "place): the file keeps the 40 windows (40 ms) flushed "
                                      "before")
        np.testing.assert_array_equal(f["engines/cortex/timeseries_time_ms"][()],
                                      np.arange(1.0, 41.0))
        for ds in ("engines/cortex/timeseries", "engines/cortex/rate", "engines/v1/rate"):
            assert f[ds].shape[0] == 40, ds
            np.testing.assert_array_equal(f[ds][()], g[ds][:40], err_msg=ds)
        for pop in ("v1.exc", "v1.inh"):
            t = g[f"spikes/{pop}/timestamps"][()]
            assert np.array_equal(np.sort(f[f"spikes/{pop}/timestamps"][()]), np.sort(t[t < 40.0]))
        assert f["timing/window_seconds"].shape[0] == 40
    assert not (tmp_path / "bad.h5.lock").exists()
