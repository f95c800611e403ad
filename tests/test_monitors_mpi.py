"""The TVB-style monitors under MPI: the whole-brain engine split over two ranks gives the
one-process bits for MEG, SEEG, averages, expressions, afferent coupling and kernel BOLD
(monitors run on the bus rank, on the merged records); a bad expression fails every rank
with one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _util import assert_same_data, h5_data
from scenarios import neural_mass, record, scenario, simulation
from test_monitors_more import MONITORS, _run

pytestmark = pytest.mark.mpi
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _mpi(n, *args, cwd=None):
    env = dict(os.environ)
    env.pop("COSIM_DEBUG", None)
    return subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "cosim", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def test_split_run_gives_the_one_process_bits(write_scenario, tmp_path):
    path = write_scenario(scenario(
        simulation(duration=40.0, seed=3, output="out.h5"),
        engines={"cortex": neural_mass(integrator="heun")},
        record=record(1.0, cortex={**MONITORS, "seeg": {"period": 4.0}})))
    _run(path, tmp_path / "one.h5")
    r = _mpi(3, "run", str(path), "-o", str(tmp_path / "n3.h5"), "-q", "--no-monitor")
    assert r.returncode == 0, r.stderr
    one, split = h5_data(tmp_path / "one.h5"), h5_data(tmp_path / "n3.h5")
    assert {"engines/cortex/seeg", "engines/cortex/afferent_coupling",
            "engines/cortex/bold"} <= set(one)
    assert_same_data(one, split)


def test_bad_expression_under_mpiexec_is_one_line(write_scenario, tmp_path):
    path = write_scenario(scenario(
        simulation(duration=10.0, output="out.h5"), engines={"cortex": neural_mass()},
        record=record(1.0, cortex={"expression": {"expression": "exp(y1) - y2 + w"}})),
        "bad.toml")
    r = _mpi(2, "run", str(path), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = set(r.stderr.strip().splitlines())            # every rank says the same line
    assert lines == {"bad.toml: record.cortex.expression.expression: unknown name 'w' in "
                     "'exp(y1) - y2 + w' (variables: y0, y1, y2, y3, y4, y5; constants: pi, e)"}
    assert not (tmp_path / "out.h5").exists()
