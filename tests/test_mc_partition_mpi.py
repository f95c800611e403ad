"""A spiking region split over real MPI ranks gives the bits of the one-process run.

Launches ``mpiexec -n K python tests/mpi_scripts/mc_partition_net.py out.npz``: each rank
builds its partition and exchanges spikes with ``Allgatherv`` (mpi4py, numpy buffers);
rank 0 gathers spikes and voltage traces.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.mpi

SCRIPT = Path(__file__).parent / "mpi_scripts" / "mc_partition_net.py"
_spec = importlib.util.spec_from_file_location("mc_partition_net", SCRIPT)
NET = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(NET)


def _mpiexec() -> str:
    pytest.importorskip("mpi4py")
    exe = Path(sys.executable).parent / "mpiexec"
    found = str(exe) if exe.exists() else shutil.which("mpiexec")
    if not found:
        pytest.skip("no mpiexec")
    return found


@pytest.mark.parametrize("ranks", [2, 3])
def test_mpi_partitions_reproduce_the_single_process_run(tmp_path, ranks):
    mpiexec = _mpiexec()
    out = tmp_path / "spikes.npz"
    try:
        proc = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, str(SCRIPT), str(out)],
                              capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).parent.parent, env=dict(os.environ))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n {ranks} did not finish in 60 s: {exc.stderr}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out)
    assert int(got["ranks"]) == ranks

    ref = NET.region(sync_ms=1.0)
    ref.build()
    g, t, v = NET.run(ref, NET.events(ref.n_input_lines), 1.0)
    assert g.size > 60
    np.testing.assert_array_equal(got["gids"], g)
    np.testing.assert_array_equal(got["times"], t)
    np.testing.assert_array_equal(got["v"], v)
