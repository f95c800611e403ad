"""A rank that dies mid-run ends the whole MPI job quickly, with a message naming its engine
and rank, and the output file keeps every window flushed before the failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

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
    ranks = Path(str(out) + ".ranks.json")
    deadline = time.monotonic() + 120
    try:
        # wait until the run is under way: some windows are on disk
        while time.monotonic() < deadline:
            if ranks.exists() and out.exists():
                try:
                    with h5py.File(out, "r", locking=False) as f:
                        if f.attrs.get("windows_completed", 0) >= 40:
                            break
                except OSError:
                    pass
            time.sleep(0.2)
        table = json.loads(ranks.read_text())
        assert table["2"]["role"] == "engine v1"
        t_kill = time.monotonic()
        os.kill(table["2"]["pid"], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)
        ended = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert ended < 10.0
    assert f"cosim: rank 2 (engine v1, pid {table['2']['pid']}" in stderr
    assert "ended first" in stderr and "Traceback" not in stderr
    with h5py.File(out, "r") as f:                       # the file opens and holds whole windows
        done = int(f.attrs["windows_completed"])
        assert done >= 40
        ts = f["engines/cortex/timeseries"]
        assert ts.shape[0] == done * 5                    # 5 samples per 5 ms window
        assert f["engines/cortex/timeseries_time_ms"][-1] == done * 5.0
