"""Stimuli under ``mpiexec``: the output (the stimuli under ``/stimuli`` included) is bitwise
the one-process output when a neural-mass engine is split in blocks of regions and when a
spiking region's cells (multicompartment, a NEURON model) are split over ranks; a bad
stimulus is one line, printed once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _util import REPO, assert_same_data, h5_data
from cosim.plan import make_plan
from cosim.scenario import load_scenario
from scenarios import ball_and_stick, multicompartment, record, scenario, simulation, write

pytestmark = pytest.mark.mpi
MPIEXEC = Path(sys.executable).parent / "mpiexec"
if not MPIEXEC.exists():
    pytest.skip("no mpiexec (pip install -e .[mpi])", allow_module_level=True)

STIMULI = """
[stimuli.pulses]
engine = "cortex"
target = "y4"
weights = { rV1 = 1.0, lV1 = 0.5, rA1 = 2.0, lCC = 1.0 }
[stimuli.pulses.temporal]
type = "pulse_train"
amplitude = 0.5
period = 25.0
width = 5.0
onset = 10.0

[stimuli.wave]
engine = "cortex"
target = "coupling"
[stimuli.wave.temporal]
type = "sinusoid"
amplitude = 0.002
frequency = 12.0
"""


def _run(args, n=None, cwd=None, check=True):
    cmd = ([str(MPIEXEC), "-n", str(n)] if n else []) + [sys.executable, "-m", "cosim", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def test_split_neural_mass_with_stimuli_equals_one_process(tmp_path):
    text = (REPO / "scenarios" / "whole_brain_jr.toml").read_text()
    text = text.replace("duration = 10000.0", "duration = 100.0") + STIMULI
    scen = tmp_path / "jr.toml"
    scen.write_text(text)
    sc = load_scenario(scen)
    assert make_plan(sc, 3).group("cortex").n_parts == 2
    _run(["run", str(scen), "-o", str(tmp_path / "one.h5"), "-q", "--no-monitor"])
    _run(["run", str(scen), "-o", str(tmp_path / "n3.h5"), "-q", "--no-monitor"], 3)
    a, b = h5_data(tmp_path / "one.h5"), h5_data(tmp_path / "n3.h5")
    assert {"stimuli/pulses/values", "stimuli/wave/weights"} <= set(a)
    assert_same_data(a, b)


def test_split_spiking_region_with_stimuli_equals_one_process(tmp_path):
    eng = multicompartment(
        cells={"exc": ball_and_stick(6, 3)},
        inputs={"stim": {"target": "exc", "receptor": "AMPA", "section": "dend", "x": 0.5,
                         "weight": 0.002, "per_cell": 4}},
        projections={"ee": {"source": "exc", "target": "exc", "indegree": 2,
                            "receptors": ["AMPA"], "weights": [0.001], "section": "dend",
                            "x": 0.5, "delay": 1.0}})
    stimuli = {"c": {"engine": "v1", "target": "current", "population": "exc", "cells": [0, 5],
                     "temporal": {"type": "pulse_train", "amplitude": 0.5, "period": 9.0,
                                  "width": 2.0}},
               "d": {"engine": "v1", "target": "poisson", "input": "stim",
                     "temporal": {"type": "sinusoid", "amplitude": 300.0, "offset": 300.0,
                                  "frequency": 30.0}}}
    scen = write(tmp_path / "mc.toml", scenario(simulation(duration=30.0, seed=2), {"v1": eng},
                                                record=record(1.0, 5), stimuli=stimuli))
    assert make_plan(load_scenario(scen), 3).group("v1").n_parts == 2
    _run(["run", str(scen), "-o", str(tmp_path / "one.h5"), "-q", "--no-monitor"])
    _run(["run", str(scen), "-o", str(tmp_path / "n3.h5"), "-q", "--no-monitor"], 3)
    a, b = h5_data(tmp_path / "one.h5"), h5_data(tmp_path / "n3.h5")
    assert a["spikes/v1.exc/timestamps"].size > 5
    assert_same_data(a, b)


def test_split_neuron_model_with_stimuli_equals_one_process(tmp_path):
    pytest.importorskip("neuron")
    ring = REPO / "tests" / "data" / "neuron" / "ring.py"
    eng = {"type": "neuron", "dt": 0.025, "model": str(ring),
           "connect": "connect", "args": {"w_ring": 0.01, "delay": 2.0},
           "populations": {"a": {"n": 6}},
           "inputs": {"bg": {"target": "a", "synapse": "syn", "weight": 0.004, "per_cell": 4}},
           "probes": {"cells": [0, 3, 5], "sections": ["soma"], "x": 0.5}}
    stimuli = {"c": {"engine": "v1", "target": "current", "population": "a", "cells": [1, 4],
                     "section": "soma", "x": 0.5,
                     "temporal": {"type": "pulse_train", "amplitude": 0.3, "period": 10.0,
                                  "width": 3.0, "onset": 2.0}},
               "d": {"engine": "v1", "target": "poisson", "input": "bg",
                     "temporal": {"type": "ramp", "amplitude": 200.0, "duration": 20.0}}}
    scen = write(tmp_path / "nrn.toml", scenario(simulation(duration=30.0, seed=3),
                                                 {"v1": eng}, record=record(0.5, 5),
                                                 stimuli=stimuli))
    assert make_plan(load_scenario(scen), 3).group("v1").n_parts == 2
    _run(["run", str(scen), "-o", str(tmp_path / "one.h5"), "-q", "--no-monitor"])
    _run(["run", str(scen), "-o", str(tmp_path / "n3.h5"), "-q", "--no-monitor"], 3)
    a, b = h5_data(tmp_path / "one.h5"), h5_data(tmp_path / "n3.h5")
    assert a["spikes/v1.a/timestamps"].size > 5
    assert_same_data(a, b)


def test_bad_stimulus_under_mpiexec_is_one_line_once(tmp_path):
    text = (REPO / "scenarios" / "whole_brain_jr.toml").read_text()
    scen = tmp_path / "jr.toml"
    scen.write_text(text + STIMULI.replace("rA1 = 2.0", "rA9 = 2.0"))
    res = _run(["run", str(scen), "-o", str(tmp_path / "x.h5"), "-q", "--no-monitor"], 2,
               check=False)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == ["jr.toml: stimuli.pulses.weights.rA9: unknown region; did you mean 'rIA' "
                     "or 'rA2' or 'rA1'?"], res.stderr
    assert not (tmp_path / "x.h5").exists()
