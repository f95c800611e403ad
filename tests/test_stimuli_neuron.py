"""Stimuli on the NEURON engine: one current-train declaration (an ``IClamp`` whose ``amp``
is played from the pattern) equals a plain NEURON script with one ``IClamp`` per pulse, and
a Poisson-rate stimulus puts the pattern's rate on the input lines (each NEURON run in a
process of its own: NEURON holds one model per process)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("neuron")

from _util import REPO  # noqa: E402
from cosim.engines.neuron_config import NeuronInput, Population  # noqa: E402
from cosim.engines.neuron_engine import NeuronEngine  # noqa: E402
from cosim.errors import CosimError  # noqa: E402
from cosim.stimuli import StimulusSpec  # noqa: E402
from cosim.stimulus_patterns import Pattern  # noqa: E402

DATA = REPO / "tests" / "data" / "neuron"

_PLAIN = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from neuron import h
import ring
h.load_file("stdrun.hoc")
h.dt, h.celsius, h.secondorder = 0.025, 6.3, 0
cells = {g: ring.Cell(h, g) for g in range(4)}
clamps = []
for g in (0, 2):
    for i in range(3):                  # one IClamp per pulse
        c = h.IClamp(cells[g].soma(0.5))
        c.delay, c.dur, c.amp = 5.0 + 10.0 * i, 3.0, 0.3
        clamps.append(c)
vs = [h.Vector().record(cells[g].soma(0.5)._ref_v) for g in range(4)]
h.finitialize(-65.0)
h.continuerun(40.0)
np.save(sys.argv[2], np.array([np.array(v)[1:] for v in vs]).T)
"""

_ENGINE = r"""
import sys
import numpy as np
from cosim.engines.neuron_engine import NeuronEngine
from cosim.engines.neuron_config import Population, NeuronInput
from cosim.stimuli import StimulusSpec
from cosim.stimulus_patterns import Pattern
eng = NeuronEngine("ring", model_path=sys.argv[1] + "/ring.py",
                   populations=[Population("a", 4)],
                   inputs=[NeuronInput("bg", "a", "syn", 0.0, 5)],
                   probes=[(g, "soma", 0.5) for g in range(4)], dt_ms=0.025,
                   sync_interval_ms=1.0, record_period_ms=0.025, duration_ms=40.0)
train = Pattern("pulse_train", {"amplitude": 0.3, "period": 10.0, "width": 3.0,
                                "onset": 5.0, "count": 3, "stop": None})
eng.add_stimulus(StimulusSpec("c", "ring", "current", train,
                              {"population": "a", "cells": [0, 2]}))
rate = Pattern("pulse", {"amplitude": 400.0, "width": 20.0, "onset": 10.0})
eng.add_stimulus(StimulusSpec("d", "ring", "poisson", rate, {"input": "bg"}))
eng.build()
seen = []
queue = eng._queue
eng._queue = lambda live, h, ev, t0, t1: (seen.append(np.asarray(ev[1])), queue(live, h, ev, t0, t1))
vs = [eng.advance(float(k), float(k + 1), {}).records["v"][:, 0, :] for k in range(40)]
np.save(sys.argv[2], np.concatenate(vs))
np.save(sys.argv[3], np.concatenate(seen))
"""


def _python(code, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_current_train_and_poisson_rates_on_a_neuron_model(tmp_path):
    _python(_PLAIN, DATA, tmp_path / "plain.npy")
    _python(_ENGINE, DATA, tmp_path / "engine.npy", tmp_path / "events.npy")
    plain, eng = np.load(tmp_path / "plain.npy"), np.load(tmp_path / "engine.npy")
    assert plain.shape == eng.shape == (1600, 4)
    assert plain[:, 0].max() > 0.0                     # the pulses make the cells fire
    np.testing.assert_allclose(eng, plain, rtol=0, atol=1e-9)
    times = np.load(tmp_path / "events.npy")            # weight 0: they do not touch v
    assert ((times >= 10.0) & (times < 30.0)).all()
    expected = 400.0 * 0.020 * 20                       # Hz × s × 20 lines
    assert abs(times.size - expected) < 4 * math.sqrt(expected)


def test_neuron_stimulus_errors():
    eng = NeuronEngine("ring", model_path=str(DATA / "ring.py"),
                       populations=[Population("a", 4)], inputs=[NeuronInput("bg", "a", "syn",
                                                                             0.0, 1)])
    pulse = Pattern("pulse", {"amplitude": 1.0, "width": 1.0, "onset": 0.0})
    with pytest.raises(CosimError, match="stimuli.c.target: a current stimulus on a NEURON "
                                         "engine needs the run's duration"):
        eng.add_stimulus(StimulusSpec("c", "ring", "current", pulse, {"population": "a"}))
    with pytest.raises(CosimError, match=r"stimuli.c.section: 'soma\(0.5\)' is not an "
                                         r"attribute path"):
        eng.add_stimulus(StimulusSpec("c", "ring", "current", pulse,
                                      {"population": "a", "section": "soma(0.5)"}))
    with pytest.raises(CosimError, match="stimuli.d.input: unknown input group 'bgg'"):
        eng.add_stimulus(StimulusSpec("d", "ring", "poisson", pulse, {"input": "bgg"}))
