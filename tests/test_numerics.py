"""Numerical blow-up: a NaN or Inf in an engine stops the run with one line naming engine,
region or cell, variable and time (exit 2); the output file is closed as "failed" and holds
every window before the blow-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import run_cli
from cosim.connectome import load_connectome
from cosim.engines.multicompartment import CellGroup, MulticompartmentEngine
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.errors import CosimError, NumericalError
from cosim.multicompartment import ball_and_stick
from cosim.numerics import check_finite, first_non_finite
from scenarios import connectome, neural_mass, record, scenario_text, simulation

REGIONS = ("rA1", "rA2", "rV1")
STATE = ("y0", "y1", "y2", "y3")


def test_finite_state_passes_and_the_first_bad_entry_is_named():
    x = np.ones((3, 4))
    check_finite("cortex", x, [("region", REGIONS), ("variable", STATE)], 5.0)
    x[2, 1] = np.inf
    x[1, 3] = np.nan                 # C order: (1, 3) comes before (2, 1)
    assert first_non_finite(x) == (1, 3)
    with pytest.raises(NumericalError) as err:
        check_finite("cortex", x, [("region", REGIONS), ("variable", STATE)], 123.4, dt_ms=0.1)
    e = err.value
    assert isinstance(e, CosimError)
    assert str(e) == ("engine cortex: region rA2: variable y3 is nan at t = 123.4 ms "
                      "(dt 0.1 ms; check the parameters or try a smaller dt)")
    assert (e.engine, e.location, e.t_ms) == ("cortex", {"region": "rA2", "variable": "y3"}, 123.4)
    x[1, 3] = 0.0
    with pytest.raises(NumericalError, match=r"region rV1: variable y1 is inf at t = 7 ms$"):
        check_finite("cortex", x, [("region", REGIONS), ("variable", STATE)], 7.0, hint="")


def test_labels_from_functions_and_a_named_variable():
    v = np.zeros((2, 5))
    v[1, 4] = -np.inf
    with pytest.raises(NumericalError) as err:
        check_finite("v1", v, [("cell", lambda i: str(100 + i)), ("compartment", lambda k: f"dend({k})")],
                     2.5, variable="v", dt_ms=0.025)
    assert str(err.value).startswith("engine v1: cell 101: compartment dend(4): variable v is -inf "
                                     "at t = 2.5 ms (dt 0.025 ms;")
    with pytest.raises(ValueError):
        check_finite("v1", v, [("cell", range(2))], 0.0)


def test_multicompartment_engine_names_cell_compartment_and_variable():
    morph = ball_and_stick()
    morph.set("soma", mechanisms={"hh": {}})
    eng = MulticompartmentEngine("v1", cells=[CellGroup("exc", 3, morph), CellGroup("inh", 2, morph)],
                                 sync_interval_ms=0.5)
    eng.build()
    eng.advance(0.0, 0.5, {})
    net = eng.net
    node = eng.templates["inh"].node("dend", 0.5)
    net.state_arr[2, net.flat_index(4, node)] = np.nan     # gate h of cell 4 (population inh)
    with pytest.raises(NumericalError) as err:
        eng.advance(0.5, 1.0, {})
    msg = str(err.value)
    assert msg.startswith("engine v1: cell 4: compartment dend(0.5") and ": variable " in msg
    assert "at t = 1 ms (dt 0.025 ms;" in msg
    assert err.value.location["cell"] == "4"


SCENARIO = scenario_text(
    simulation(duration=300.0, sync=10.0, seed=1, output="blow.h5"),
    connectome=connectome({"weights": "w.csv", "tract_lengths": "l.csv", "labels": "names.txt"}),
    engines={"lin": neural_mass(
        "linear",
        parameters={"gamma": {"default": -1.0, "C": 5.0}},  # 1/ms: region C grows as exp(5 t) and overflows
        initial={"x": 0.1})},
    record=record(1.0, 4))


def _write_blow_up(folder: Path) -> None:
    w = np.array([[0, 0.5, 0.2], [0.3, 0, 0.1], [0.4, 0.6, 0]])
    L = np.array([[0, 12.0, 30], [12, 0, 21], [30, 21, 0]])
    np.savetxt(folder / "w.csv", w, delimiter=",")
    np.savetxt(folder / "l.csv", L, delimiter=",")
    (folder / "names.txt").write_text("A\nB\nC\n")
    (folder / "blow.toml").write_text(SCENARIO)


def test_neural_mass_blow_up_stops_the_run_and_keeps_earlier_windows(tmp_path):
    _write_blow_up(tmp_path)
    r = run_cli("run", "blow.toml", "--quiet", cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    # x_C = 0.1 exp(5 t) passes 1.8e308 between 140 and 150 ms: window 14 fails
    assert r.stderr == ("engine lin: region C: variable x is inf at t = 150 ms "
                        "(dt 0.1 ms; check the parameters or try a smaller dt)\n")
    with h5py.File(tmp_path / "blow.h5") as f:
        assert f.attrs["status"] == "failed"
        assert f.attrs["message"].startswith("NumericalError: engine lin: region C")
        assert f.attrs["windows_completed"] == 14 and f.attrs["t_completed_ms"] == 140.0
        ts = f["engines/lin/timeseries"][:]
    assert ts.shape == (140, 1, 3) and np.isfinite(ts).all()
    # exactly what the engine computes over those 14 windows
    conn = load_connectome({"weights": "w.csv", "tract_lengths": "l.csv", "labels": "names.txt"},
                           base_dir=tmp_path)
    ref = NeuralMassEngine("lin", "linear", conn, dt_ms=0.1, seed=1, record_period_ms=1.0,
                           parameters={"gamma": {"default": -1.0, "C": 5.0}}, initial={"x": 0.1})
    np.testing.assert_array_equal(ts, ref.advance(0.0, 140.0).records["timeseries"])


MPIEXEC = Path(sys.executable).parent / "mpiexec"


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec next to the Python interpreter")
@pytest.mark.mpi
def test_blow_up_on_an_engine_rank(tmp_path):
    """Under mpiexec -n 2 (bus | engine): exit 2, the message once, the file as in one process."""
    _write_blow_up(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "COSIM_DEBUG"}
    r = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-m", "cosim", "run", "blow.toml",
                        "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    mine = [ln for ln in r.stderr.splitlines() if "variable x is inf" in ln]
    assert mine == ["cosim: engine lin (rank 1) failed: engine lin: region C: variable x is inf "
                    "at t = 150 ms (dt 0.1 ms; check the parameters or try a smaller dt)"], r.stderr
    with h5py.File(tmp_path / "blow.h5") as f:
        assert f.attrs["status"] == "failed" and f.attrs["windows_completed"] == 14
        assert f["engines/lin/timeseries"].shape == (140, 1, 3)
        assert np.isfinite(f["engines/lin/timeseries"][:]).all()
