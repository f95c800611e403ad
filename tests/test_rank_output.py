"""Parallel output (:mod:`cosim.rank_output`): under ``mpiexec -n 5`` (the neural masses
split in two, the spiking region split in two) every rank writes its own file and the
output joins them by HDF5 virtual datasets.  Checked against the one-process run: the
joined file reads back bit for bit the same (series, spikes — by_id —, stimuli, header),
libsonata reads the joined spikes, each rank file holds only what its rank produced, a
SIGKILL of an engine rank leaves every window flushed before readable (equal to the
one-process prefix), and a resume cuts the rank files back and continues bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import REPO, assert_same_data, h5_data, small_default
from cosim.multicompartment.partition import block
from cosim.plan import make_plan
from cosim.rank_output import OutputLayout, columns_of, rank_path
from cosim.scenario import load_scenario
from cosim.sonata import BY_ID, BY_TIME, cut_population, sort_population

MPIEXEC = Path(sys.executable).parent / "mpiexec"
DURATION = 300.0


def _scenario(tmp_path: Path, name: str = "p.toml", **subs) -> Path:
    """The small default with 48 + 12 cells and no monitors: at -n 5 the plan splits the
    neural masses and rV1 in two parts each."""
    return small_default(tmp_path, name, **{
        "\nn = 24\n": "\nn = 48\n",
        "[record.cortex.rate]\n": "", "[record.v1.rate]\nbin = 1.0\n": "",
        "duration = 2000.0": f"duration = {DURATION}",
        "seed = 2026": "seed = 2026\ncheckpoint_every = 70.0",
        "[record]\nperiod = 1.0": "[record]\nperiod = 1.0\nflush_every = 10", **subs})


def _run(args, n=None, check=True):
    cmd = ([str(MPIEXEC), "-n", str(n)] if n else []) + [sys.executable, "-m", "cosim", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check:
        assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """The one-process output of the scenario (the reference)."""
    d = tmp_path_factory.mktemp("one")
    scen = _scenario(d)
    _run(["run", str(scen), "-o", str(d / "one.h5"), "-q", "--no-monitor"])
    return scen, d / "one.h5"


# -- without MPI -----------------------------------------------------------------------

def test_columns_agree_with_the_engines_merge(tmp_path):
    """columns_of (where each part's block goes) = where merge_records puts it."""
    sc = load_scenario(_scenario(tmp_path))
    eng = sc.engines["cortex"]
    spec = eng.record_specs()[0]
    for n in (2, 3, 5):
        sizes = [block(len(spec.regions), p, n) for p in range(n)]
        parts = [{spec.dataset: np.full((2, 1, len(b)), float(p)) +
                  np.arange(len(b)) / 1000.0} for p, b in enumerate(sizes)]
        merged = eng.merge_records(parts)[spec.dataset]
        for p in range(n):
            cols = columns_of(eng, spec, p, n)
            np.testing.assert_array_equal(merged[:, :, cols], parts[p][spec.dataset])
    lay = OutputLayout.of(sc, make_plan(sc, 5), tmp_path / "x.h5",
                          {k: e.record_specs() for k, e in sc.engines.items()})
    assert lay.engines == {"cortex", "v1"}
    assert [m.ranks for m in lay.spikes] == [[3, 4]]
    assert [[r for r, _ in m.blocks] for m in lay.series] == [[1, 2]]


def test_sort_by_id_and_cut_back_to_a_checkpoint(tmp_path):
    """sort_population = numpy's lexsort by (node, time); cut_population of a sorted
    population gives back exactly the spikes of the first windows (time order)."""
    from cosim.sonata import create_population

    rng = np.random.default_rng(3)
    ts = np.sort(rng.integers(0, 400, 300)).astype(float) * 0.025
    ids = rng.permutation(300) % 37
    with h5py.File(tmp_path / "s.h5", "w") as f:
        create_population(f, ("e.x", "x", 0, 37))
        g = f["spikes/e.x"]
        for ds, a in (("timestamps", ts), ("node_ids", ids.astype(np.uint64))):
            g[ds].resize(a.size, axis=0)
            g[ds][:] = a
        sort_population(g)
        assert int(g.attrs["sorting"]) == BY_ID
        order = np.lexsort((ts, ids))
        np.testing.assert_array_equal(g["node_ids"][()], ids[order])
        np.testing.assert_array_equal(g["timestamps"][()], ts[order])
        n = int(np.searchsorted(ts, 5.0, side="right"))
        cut_population(g, n)
        assert int(g.attrs["sorting"]) == BY_TIME
        np.testing.assert_array_equal(g["timestamps"][()], ts[:n])
        kept = sorted(zip(g["node_ids"][()].tolist(), g["timestamps"][()].tolist()))
        assert kept == sorted(zip(ids[:n].tolist(), ts[:n].tolist()))


def test_one_process_file_is_sorted_by_id_and_direct(one):
    _, ref = one
    with h5py.File(ref) as f:
        assert "rank_files" not in f.attrs
        for pop in ("v1.exc", "v1.inh"):
            g = f[f"spikes/{pop}"]
            assert int(g.attrs["sorting"]) == BY_ID and not g["node_ids"].is_virtual
            ids, ts = g["node_ids"][()], g["timestamps"][()]
            assert ids.size > 20
            np.testing.assert_array_equal(np.lexsort((ts, ids)), np.arange(ids.size))
    assert not Path(str(ref) + ".d").exists()


# -- under mpiexec -n 5 ----------------------------------------------------------------

@pytest.mark.mpi
def test_joined_file_equals_one_process_and_ranks_write_their_own(one, tmp_path):
    scen, ref = one
    out = tmp_path / "n5.h5"
    _run(["run", str(scen), "-o", str(out), "-q", "--no-monitor"], 5)
    assert_same_data(h5_data(ref), h5_data(out), "joined vs one process")
    sc = load_scenario(scen)
    plan = make_plan(sc, 5)
    assert [(g.name, g.ranks) for g in plan.groups] == [("cortex", (1, 2)), ("v1", (3, 4))]
    with h5py.File(out) as f:
        assert f.attrs["status"] == "completed"
        assert f["engines/cortex/timeseries"].is_virtual
        assert f["spikes/v1.exc/timestamps"].is_virtual
        assert int(f["spikes/v1.exc"].attrs["sorting"]) == BY_ID
        assert f["timing/window_seconds"].shape == (int(DURATION), 5, 3)
        assert np.isfinite(f["timing/window_seconds"][()]).all()
        files = {s.file_name for s in f["spikes/v1.inh/node_ids"].virtual_sources()}
        assert files == {"n5.h5.d/rank-0003.h5", "n5.h5.d/rank-0004.h5"}
    # what each rank wrote: its own regions' block, its own cells' spikes, its timing
    v1 = sc.engines["v1"]
    for r in range(5):
        with h5py.File(rank_path(out, r)) as rf:
            assert rf.attrs["rank"] == r and rf.attrs["status"] == "completed"
            assert rf["timing/window_seconds"].shape == (int(DURATION), 1, 3)
            assert ("spikes" in rf) == (r in (3, 4))
            assert ("engines" in rf) == (r in (1, 2))
            if r in (1, 2):
                cols = rf["engines/cortex/timeseries"].attrs["columns"]
                b = block(75, r - 1, 2)
                np.testing.assert_array_equal(cols, np.arange(b.start, b.stop))
            if r in (3, 4):
                for pop, n in (("exc", 48), ("inh", 12)):
                    ids = rf[f"spikes/v1.{pop}/node_ids"][()]
                    b = block(n, r - 3, 2)
                    assert ids.size and ((ids >= b.start) & (ids < b.stop)).all(), (r, pop)
    libsonata = pytest.importorskip("libsonata")
    reader = libsonata.SpikeReader(str(out))
    assert set(reader.get_population_names()) == {"v1.exc", "v1.inh"}
    with h5py.File(ref) as f:
        for pop in ("v1.exc", "v1.inh"):
            got = np.array(reader[pop].get(), dtype=float)
            want = np.stack([f[f"spikes/{pop}/node_ids"][()].astype(float),
                             f[f"spikes/{pop}/timestamps"][()]], axis=1)
            assert reader[pop].sorting == "by_id"
            np.testing.assert_array_equal(got, want)


@pytest.mark.mpi
def test_resume_cuts_the_rank_files_back(one, tmp_path):
    """A completed -n 5 run resumed from its last checkpoint (280 ms): the rank files and
    the by_id populations are cut back to 280 ms and the run ends with the same bits."""
    scen, ref = one
    out = tmp_path / "r.h5"
    _run(["run", str(scen), "-o", str(out), "-q", "--no-monitor"], 5)
    _run(["run", str(scen), "-o", str(out), "-q", "--no-monitor", "--resume"], 5)
    assert_same_data(h5_data(ref), h5_data(out), "resumed vs one process")
    with h5py.File(rank_path(out, 3)) as rf:
        assert 280 in rf["flushes/windows"][()].tolist()


@pytest.mark.mpi
def test_sigkill_of_an_engine_rank_keeps_every_flushed_window(one, tmp_path):
    """rV1's second part (rank 4) is killed mid-run: the surviving coordinator joins what
    every rank flushed; the joined file equals the first W windows of the one-process run
    (series bit for bit, spikes as a set — each rank's block in time order,
    sorting = none); ``cosim join`` rebuilds the same join."""
    scen, ref = one
    out = tmp_path / "k.h5"
    cmd = [str(MPIEXEC), "-n", "5", sys.executable, "-m", "cosim", "run", str(scen), "-o",
           str(out), "-q", "--no-monitor"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        target = rank_path(out, 4)
        deadline = time.monotonic() + 300
        w = 0
        while w < 60 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                with h5py.File(target, "r", locking=False) as rf:
                    w = int(rf.attrs["windows_completed"])
            except (OSError, KeyError):
                pass
        assert proc.poll() is None, "the run ended before the kill"
        pid = json.loads(Path(str(out) + ".ranks.json").read_text())["4"]["pid"]
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "rank 4 (engine v1 part 2/2" in err and "ended first without a word" in err, err
    # the launcher killed every rank; the watchdog, outside the job, joins the rank files
    status, deadline = "running", time.monotonic() + 60
    while status == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        with h5py.File(out, "r", locking=False) as f:
            status = f.attrs["status"]
    with h5py.File(out) as f, h5py.File(ref) as g:
        assert f.attrs["status"] == "failed", err
        W = int(f.attrs["windows_completed"])
        assert 60 <= W < DURATION, W
        n = W  # 1 ms windows, 1 ms period: one sample per window
        for name in ("engines/cortex/timeseries", "engines/cortex/timeseries_time_ms"):
            assert f[name].shape[0] == n
            np.testing.assert_array_equal(f[name][()], g[name][:n])
        for pop in ("v1.exc", "v1.inh"):
            assert int(f[f"spikes/{pop}"].attrs["sorting"]) == 0        # none
            got = sorted(zip(f[f"spikes/{pop}/node_ids"][()].tolist(),
                             f[f"spikes/{pop}/timestamps"][()].tolist()))
            ts = g[f"spikes/{pop}/timestamps"][()]
            keep = ts <= W * 1.0
            want = sorted(zip(g[f"spikes/{pop}/node_ids"][()][keep].tolist(), ts[keep].tolist()))
            assert got == want and len(got) > 5, pop
        before = h5_data(out)
    res = _run(["join", str(out)])
    assert f"joined 5 rank files at {W} windows" in res.stdout
    assert_same_data(before, h5_data(out), "cosim join vs the coordinator's join")
