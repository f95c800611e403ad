"""One neural-mass engine split across ranks automatically (regions in contiguous blocks):
``mpiexec -n 2 … 5 cosim run scenarios/whole_brain_jr.toml`` equals one process bit for
bit; a checkpoint written under one layout resumes under another."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from _util import REPO, assert_same_data, h5_data
from cosim.plan import make_plan
from cosim.scenario import load_scenario

pytestmark = pytest.mark.mpi
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _short_jr(tmp_path: Path, duration: float = 200.0, checkpoint: float = 0.0) -> Path:
    text = (REPO / "scenarios" / "whole_brain_jr.toml").read_text()
    text = text.replace("duration = 10000.0", f"duration = {duration}")
    if checkpoint:
        text = text.replace("seed = 42", f"seed = 42\ncheckpoint_every = {checkpoint}")
    p = tmp_path / "jr.toml"
    p.write_text(text)
    return p


def _same(a: Path, b: Path) -> None:
    assert_same_data(h5_data(a), h5_data(b))


def _run(args, n=None, cwd=None):
    import subprocess

    cmd = ([str(MPIEXEC), "-n", str(n)] if n else []) + [sys.executable, "-m", "cosim", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res


def test_the_plan_splits_the_whole_brain_engine(tmp_path):
    sc = load_scenario(_short_jr(tmp_path))
    assert sc.engines["cortex"].max_parts() == 76
    for n in (2, 3, 5):
        g = make_plan(sc, n).group("cortex")
        assert g.n_parts == n - 1
        blocks = [sc.engines["cortex"].part_regions(p, g.n_parts) for p in range(g.n_parts)]
        np.testing.assert_array_equal(np.concatenate(blocks), np.arange(76))


def test_split_whole_brain_equals_one_process(tmp_path):
    scen = _short_jr(tmp_path)
    _run(["run", str(scen), "-o", str(tmp_path / "one.h5"), "-q", "--no-monitor"])
    for n in (2, 3, 5):
        res = _run(["run", str(scen), "-o", str(tmp_path / f"n{n}.h5"), "-q", "--no-monitor"], n)
        _same(tmp_path / "one.h5", tmp_path / f"n{n}.h5")
    res = _run(["run", str(scen), "-o", str(tmp_path / "np4.h5"), "--np", "4", "--no-monitor"])
    assert "engine cortex part 3/3" in res.stderr
    _same(tmp_path / "one.h5", tmp_path / "np4.h5")


def test_checkpoint_of_a_split_run_resumes(tmp_path):
    """Written by -n 4 (three parts); resumed from its last checkpoint (180 ms) by the same
    layout it equals the straight one-process run; another layout is refused."""
    scen = _short_jr(tmp_path, duration=200.0, checkpoint=60.0)
    _run(["run", str(scen), "-o", str(tmp_path / "one.h5"), "-q", "--no-monitor"])
    out = tmp_path / "split.h5"
    _run(["run", str(scen), "-o", str(out), "-q", "--no-monitor"], 4)
    import subprocess

    bad = subprocess.run([str(MPIEXEC), "-n", "3", sys.executable, "-m", "cosim", "run", str(scen),
                          "-o", str(out), "-q", "--no-monitor", "--resume"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "engine 'cortex' in 3 part(s), this run splits it into 2" in bad.stderr
    _run(["run", str(scen), "-o", str(out), "-q", "--no-monitor", "--resume"], 4)
    _same(tmp_path / "one.h5", out)
