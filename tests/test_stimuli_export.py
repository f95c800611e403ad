"""Stimuli in ``cosim export --nwb``: read back with pynwb (``stimulus/<name>`` equals the
output's ``/stimuli/<name>``, start time and rate from its time axis, the spatial pattern
as a table) and checked by NWB's inspector."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from _util import run_cli
from scenarios import neural_mass, record, scenario, simulation, write

pynwb = pytest.importorskip("pynwb")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stimexport")
    sc = scenario(simulation(duration=30.0, seed=1),
                  {"cortex": neural_mass("jansen_rit", regions=["rV1", "rV2", "lV1"])},
                  record=record(1.0, 10),
                  stimuli={"train": {"engine": "cortex", "target": ["y1", "y2"],
                                     "weights": {"rV1": 1.0, "lV1": 0.25},
                                     "temporal": {"type": "pulse_train", "amplitude": 4.0,
                                                  "period": 10.0, "width": 2.0,
                                                  "onset": 3.05}},
                           "wave": {"engine": "cortex", "target": "coupling",
                                    "temporal": {"type": "sinusoid", "amplitude": 0.01,
                                                 "frequency": 40.0}}})
    path = write(tmp / "s.toml", sc)
    r = run_cli("run", str(path), "--output", "s.h5", "--quiet", "--no-monitor", cwd=tmp)
    assert r.returncode == 0, r.stderr
    r = run_cli("export", "s.h5", "--nwb", "s.nwb", cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp / "s.h5", tmp / "s.nwb"


def test_stimuli_read_back_from_nwb(files):
    h5, nwb_path = files
    with h5py.File(h5) as f, pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        nwb = io.read()
        assert set(nwb.stimulus) == {"train", "wave"}
        for name in ("train", "wave"):
            g = f[f"stimuli/{name}"]
            ts = nwb.stimulus[name]
            np.testing.assert_array_equal(ts.data[:], g["values"][()])
            assert ts.rate == pytest.approx(1000.0 / g.attrs["dt_ms"])
            assert ts.starting_time == pytest.approx(g["time_ms"][0] / 1000.0)
            assert ts.unit == g.attrs["unit"]
            table = nwb.processing["misc"][f"stimulus_{name}_targets"]
            assert list(table["target"][:]) == ["rV1", "rV2", "lV1"]
            np.testing.assert_array_equal(table["weight"][:], g["weights"][()])
        assert nwb.stimulus["train"].unit == "mV/ms"
        np.testing.assert_array_equal(nwb.processing["misc"]["stimulus_train_targets"]
                                      ["weight"][:], [1.0, 0.0, 0.25])
        on = nwb.stimulus["train"].data[:] > 0
        assert on.sum() == 3 * 20                 # pulses at 3.05, 13.05, 23.05 ms: 20 steps


def test_nwb_with_stimuli_passes_the_nwb_inspector(files):
    inspector = pytest.importorskip("nwbinspector")
    ignore = ["check_subject_age", "check_subject_species_exists"]
    msgs = [m for m in inspector.inspect_nwbfile(nwbfile_path=str(files[1]), ignore=ignore)
            if m.importance.value >= inspector.Importance.BEST_PRACTICE_VIOLATION.value]
    assert not msgs, [(m.check_function_name, m.message) for m in msgs]
