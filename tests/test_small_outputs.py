"""The "Small" list of issue 12, one test each (``--version``, ``cosim regions`` and region
suggestions are in test_packaging.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from _util import run_cli
from cosim.monitoring import format_message
from scenarios import hybrid, write


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    data = hybrid(duration=40.0)
    data["record"]["v1"]["rate"] = {"bin": 5.0}
    sc = write(tmp / "h.toml", data)
    r = run_cli("run", str(sc), "--output", "out/h.h5", "--no-monitor", cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp, r


def test_validate_says_1_region(run):
    tmp, _ = run
    r = run_cli("validate", "h.toml", cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert "v1 (multicompartment, 1 region, " in r.stdout and "1 regions" not in r.stdout


def test_region_labels_read_as_str_like_the_regions_attributes(run):
    tmp, _ = run
    with h5py.File(tmp / "out/h.h5") as f:
        labels = list(f["connectome"].attrs["region_labels"])
        regions = list(f["engines/cortex/timeseries"].attrs["regions"])
        assert all(type(x) is str for x in labels) and all(type(x) is str for x in regions)
        assert labels == list(f["connectome/region_labels"].asstr()[()])
        assert set(regions) <= set(labels)


def test_rate_samples_carry_their_bin_start(run):
    """Sample k of a spike-rate monitor is the rate over (t_k − bin, t_k]; its bin start
    (t_k − bin, the left edge where Elephant's histogram stamps a bin) is stored beside it.
    Counting the file's spikes in those bins gives the rates (Σ over the group's cells)."""
    tmp, _ = run
    with h5py.File(tmp / "out/h.h5") as f:
        t = f["engines/v1/rate_time_ms"][()]
        b = f["engines/v1/rate_bin_start_ms"][()]
        rate = f["engines/v1/rate"]
        np.testing.assert_allclose(t - b, 5.0)
        np.testing.assert_allclose(b[:3], [0.0, 5.0, 10.0])
        assert [rate.dims[0][i].name.rsplit("/", 1)[1] for i in range(2)] == \
            ["rate_time_ms", "rate_bin_start_ms"]
        variables = list(rate.attrs["variables"])
        for group in ("exc", "inh"):
            ts = f[f"spikes/v1.{group}/timestamps"][()]
            n = f[f"spikes/v1.{group}"].attrs["n_nodes"]
            counts = [np.count_nonzero((ts > lo) & (ts <= hi)) for lo, hi in zip(b, t)]
            np.testing.assert_allclose(rate[:, variables.index(group), 0] * n * 5e-3, counts,
                                       atol=1e-9)
    from cosim.io import timeseries
    v = timeseries(tmp / "out/h.h5", "v1", "rate")
    np.testing.assert_array_equal(np.asarray(v.coords["bin_start_ms"]), b)


def test_one_process_run_prints_per_engine_timing(run):
    _, r = run
    assert "engine cortex: compute" in r.stdout and "engine v1: compute" in r.stdout


def _cli(capsys, *args):
    """``cosim ARGS`` in this process: (exit code, stderr)."""
    from cosim.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_existing_output_message_names_the_directory(run, capsys):
    tmp, _ = run
    code, err = _cli(capsys, "run", str(tmp / "h.toml"), "--output", str(tmp / "out/h.h5"),
                     "--quiet", "--no-monitor")
    assert code == 2 and err.count("\n") == 1
    assert str(tmp / "out" / "h.h5") in err


def test_slurm_refuses_an_existing_output_before_writing_a_script(run, capsys):
    tmp, _ = run
    job = tmp / "job.sbatch"
    code, err = _cli(capsys, "slurm", str(tmp / "h.toml"), "--output", str(tmp / "out/h.h5"),
                     "--script", str(job))
    assert code == 2 and err.count("\n") == 1 and "--overwrite" in err
    assert not job.exists()
    code, err = _cli(capsys, "slurm", str(tmp / "h.toml"), "--output", str(tmp / "out/h.h5"),
                     "--overwrite", "--script", str(job))
    assert code == 0, err
    assert "--overwrite" in job.read_text()


def test_watch_text_shows_the_region_rates_of_its_json():
    msg = {"type": "window", "window": 4, "t_ms": 5.0, "duration_ms": 10.0,
           "rates_hz": {"v1": {"rV1": 12.345}, "cortex": [1.0, 3.0, 2.0],
                        "brain": {"lA1": 1.0, "lA2": 9.5, "rA1": 2.0, "rA2": 3.0}}}
    line = format_message(msg)
    assert "v1 rV1 12.35 Hz" in line
    assert "cortex rate mean 2.00 Hz (max 3.00)" in line
    assert "brain rate mean 3.88 Hz (max 9.50 at lA2)" in line
