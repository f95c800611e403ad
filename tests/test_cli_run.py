"""`cosim run` end to end: the file holds exactly what the engine computes, monitors
included, and `cosim analyze` reads it back."""

from __future__ import annotations

import json

import h5py
import numpy as np

from _util import run_cli
from scenarios import neural_mass, record, scenario_text, simulation
from cosim.connectome import load_connectome
from cosim.engines.neural_mass import NeuralMassEngine

SCENARIO = scenario_text(
    simulation(duration=400.0, sync=2.0, seed=7, output="run.h5"),
    engines={"cortex": neural_mass(integrator="heun", parameters={"v0": 6.0})},
    record=record(1.0, 50, cortex={"variables": ["y1", "y2"], "eeg": {"period": 4.0}}))


def test_run_writes_what_the_engine_computes(write_scenario, tmp_path):
    path = write_scenario(SCENARIO, "jr.toml")
    r = run_cli("run", str(path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote run.h5" in r.stdout and "s wall per simulated s" in r.stdout
    assert "[cosim] t = 400.0 / 400.0 ms (100.0 %)" in r.stderr

    ref = NeuralMassEngine("cortex", "jansen_rit", load_connectome("tvb:connectivity_76"),
                           dt_ms=0.1, parameters={"v0": 6.0}, seed=7, record_period_ms=1.0,
                           record_variables=["y1", "y2"])
    ref.build()
    expected = ref.advance(0.0, 400.0).records["timeseries"]
    with h5py.File(tmp_path / "run.h5") as f:
        assert f.attrs["status"] == "completed"
        ts = f["engines/cortex/timeseries"]
        assert list(ts.attrs["variables"]) == ["y1", "y2"]
        assert ts.attrs["regions"][0] == "rA1"
        np.testing.assert_array_equal(ts[:], expected)  # bitwise: windows of 2 ms vs one call
        eeg_name = [k for k in f["engines/cortex"] if "eeg" in k and not k.endswith("_time_ms")][0]
        eeg = f["engines/cortex"][eeg_name][:]
        # EEG = block mean over 4 ms of y1 - y2
        pyr = (expected[:, 0, :] - expected[:, 1, :]).reshape(100, 4, 76).mean(axis=1)
        np.testing.assert_allclose(eeg[:, 0, :], pyr, rtol=1e-12, atol=1e-12)

    r = run_cli("run", str(path), cwd=tmp_path)
    assert r.returncode == 2 and "run.h5: output file exists; pass --overwrite" in r.stderr

    r = run_cli("analyze", str(tmp_path / "run.h5"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report  # a JSON document with per-engine analysis
