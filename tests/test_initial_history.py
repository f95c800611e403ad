"""An explicit initial history from a file (``[engines.NAME.initial] history``): a run
continued from the states an earlier run recorded equals the straight run, to the bit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cosim.connectome import make_connectome
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.errors import CosimError

DT = 0.1


def _engine(tmp=None, **kw):
    # x' = −0.3 x(t − 1 ms) on two regions, plus a cross connection: delays of 10 steps
    conn = make_connectome([[1.0, 0.5], [0.2, 1.0]], [[1.0, 1.5], [1.5, 1.0]], ["a", "b"])
    return NeuralMassEngine("dde", "linear", conn, dt_ms=DT, integrator="heun",
                            coupling="linear", coupling_parameters={"G": -0.3},
                            parameters={"gamma": 0.0}, speed_mm_per_ms=1.0,
                            record_period_ms=DT, **kw)


def _straight_and_first_half():
    hist = np.cos(np.arange(-40, 1)[:, None, None] * 0.05 * np.array([1.0, 2.0]))   # (41, 1, 2)
    straight = _engine(initial_history=hist).advance(0.0, 10.0, {}).records["timeseries"]
    first = _engine(initial_history=hist)
    y1 = first.advance(0.0, 5.0, {}).records["timeseries"]       # states of steps 1 … 50
    return straight, np.concatenate([hist, y1])                  # history up to t = 5 ms


def test_history_from_npy_continues_the_run(tmp_path):
    straight, hist = _straight_and_first_half()
    path = tmp_path / "h.npy"
    np.save(path, hist)
    rest = _engine(initial_history_file=str(path)).advance(0.0, 5.0, {}).records["timeseries"]
    np.testing.assert_array_equal(rest, straight[50:])


def test_history_from_an_earlier_output_continues_the_run(tmp_path):
    """The recorder's layout: /engines/<name>/timeseries (time, variable, region) with the
    variables, regions and period as attributes; regions are matched by label."""
    straight, hist = _straight_and_first_half()
    path = tmp_path / "run1.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("engines/dde/timeseries", data=hist[:, :, ::-1])
        d.attrs.update(variables=["x"], regions=["b", "a"], period_ms=DT)
    rest = _engine(initial_history_file=str(path)).advance(0.0, 5.0, {}).records["timeseries"]
    np.testing.assert_array_equal(rest, straight[50:])


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros((3, 2, 5))), "must have shape (T, 1, 2)"),
    (lambda p: _h5(p, period=0.5), "was recorded every 0.5 ms"),
    (lambda p: _h5(p, variables=["y"]), "lacks state variable(s) x"),
    (lambda p: _h5(p, regions=["a", "c"]), "lacks region(s) b"),
])
def test_bad_history_files_are_one_line(tmp_path, make, message):
    p = tmp_path / "h.h5"
    make(p)
    target = p.with_suffix(".npy") if p.with_suffix(".npy").exists() else p
    with pytest.raises(CosimError) as e:
        _engine(initial_history_file=str(target))
    assert message in str(e.value) and e.value.key == "initial.history"


def _h5(p, variables=("x",), regions=("a", "b"), period=DT):
    with h5py.File(p, "w") as f:
        d = f.create_dataset("engines/dde/timeseries", data=np.zeros((4, len(variables), len(regions))))
        d.attrs.update(variables=list(variables), regions=list(regions), period_ms=period)


def test_scenario_key_is_relative_to_the_scenario_file(write_scenario, tmp_path):
    from cosim.scenario import load_scenario
    from scenarios import neural_mass, scenario, simulation

    np.save(tmp_path / "hist.npy", np.zeros((5, 2, 3)))
    path = write_scenario(scenario(simulation(duration=1.0), engines={
        "cortex": neural_mass("wilson_cowan", initial={"history": "hist.npy"})}), "s.toml")
    with pytest.raises(CosimError) as e:
        load_scenario(path)
    msg = str(e.value)
    assert "engines.cortex.initial.history" in msg and "hist.npy" in msg
    assert "must have shape (T, 2, 76)" in msg and "\n" not in msg
    np.save(tmp_path / "hist.npy", np.full((5, 2, 76), 0.1))
    load_scenario(path)
