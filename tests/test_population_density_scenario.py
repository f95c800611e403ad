"""``scenarios/hybrid_population_density.toml`` (Jansen–Rit brain, rV1 a population-density
E/I pair): the engine coupled through the bus, bitwise the same in one process and under
``mpiexec -n 3`` (the bus, Jansen–Rit and rV1 on ranks of their own), and after a crash and a resume
from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import REPO, assert_same_data, h5_data, run_cli
from cosim.runtime import run_scenario
from cosim.scenario import load_scenario

SHIPPED = REPO / "scenarios" / "hybrid_population_density.toml"


def _short(tmp_path: Path, duration=60.0, checkpoint_every=None) -> Path:
    text = SHIPPED.read_text().replace("duration = 1000.0", f"duration = {duration}")
    text = text.replace('output = "results/hybrid_population_density.h5"', 'output = "out.h5"')
    if checkpoint_every:
        text = text.replace("seed = 1\n", f"seed = 1\ncheckpoint_every = {checkpoint_every}\n")
    p = tmp_path / "hpd.toml"
    p.write_text(text)
    return p


def test_coupled_run_exchanges_rates_with_the_brain(tmp_path):
    out = tmp_path / "one.h5"
    run_scenario(load_scenario(_short(tmp_path)), output=out, progress_stream=None)
    with h5py.File(out) as f:
        ts = f["engines/v1/timeseries"]
        names = [v.decode() if isinstance(v, bytes) else v for v in ts.attrs["variables"]]
        x = ts[()]
        assert x.shape == (60, 4, 1)
        rate_e = x[:, names.index("rate.E"), 0]
    # the warm-up put rV1 in Brunel's asynchronous state (≈ 50 Hz): no transient at t = 0
    assert 40.0 < rate_e.mean() < 70.0 and np.ptp(rate_e) < 5.0


@pytest.mark.mpi
def test_three_ranks_equal_one_process_bitwise(tmp_path):
    sc = _short(tmp_path)
    r1 = run_cli("run", str(sc), "-o", str(tmp_path / "one.h5"), "-q", "--no-monitor", cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr
    r2 = run_cli("run", str(sc), "-o", str(tmp_path / "three.h5"), "-q", "--no-monitor", "--np", "3",
                 cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr
    a, b = h5_data(tmp_path / "one.h5"), h5_data(tmp_path / "three.h5")
    assert "engines/v1/timeseries" in a
    assert_same_data(a, b)


def test_crash_then_resume_equals_straight_run(tmp_path):
    sc = _short(tmp_path, duration=60.0, checkpoint_every=20.0)
    run_scenario(load_scenario(sc), output=tmp_path / "straight.h5", progress_stream=None)

    def crash(k, t, payload):
        if k == 9:
            raise RuntimeError("node failure")

    with pytest.raises(RuntimeError):
        run_scenario(load_scenario(sc), output=tmp_path / "ck.h5", progress_stream=None,
                     on_window=crash)
    assert any(p.name.startswith("part-v1-0") for p in (tmp_path / "ck.h5.checkpoint").iterdir())
    r = run_cli("run", str(sc), "--output", str(tmp_path / "ck.h5"), "--resume", "--quiet",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_data(h5_data(tmp_path / "straight.h5"), h5_data(tmp_path / "ck.h5"))
