"""Stimuli on the NEST engine: a current-pulse train into passive ``iaf_psc_delta`` cells
against the exact solution of their membrane equation, and Poisson rates on an input group:
the event count of a rate pulse within Poisson bounds, nothing outside it, and the same
trains the multicompartment engine gets for the same lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

nest = pytest.importorskip("nest")

from cosim.errors import CosimError  # noqa: E402
from cosim.scenario import load_scenario  # noqa: E402
from scenarios import ball_and_stick, multicompartment, record, scenario, simulation  # noqa: E402

H, TAU, C, EL = 0.1, 10.0, 250.0, -70.0        # ms, ms, pF, mV
TRAIN = {"type": "pulse_train", "amplitude": 300.0, "period": 10.0, "width": 3.0,
         "onset": 2.0}                          # pA


def _nest(write_scenario, stimuli, duration=40.0):
    eng = {"type": "nest", "resolution": H,
           "populations": {"E": {"model": "iaf_psc_delta", "n": 3,
                                 "params": {"V_th": 1e6, "E_L": EL, "V_m": EL, "V_reset": EL,
                                            "tau_m": TAU, "C_m": C, "t_ref": 0.0},
                                 "record": ["V_m"], "cells": [0, 1, 2]}},
           "inputs": {"stim": {"target": "E", "weight": 0.0, "delay": 0.1, "per_cell": 5}}}
    sc = scenario(simulation(duration=duration, seed=4), {"v1": eng},
                  record=record(1.0, 10), stimuli=stimuli)
    return load_scenario(write_scenario(sc, "nest.toml")).engines["v1"]


def test_current_train_into_passive_cells_matches_the_exact_membrane_solution(write_scenario):
    e = _nest(write_scenario, {"c": {"engine": "v1", "target": "current", "population": "E",
                                     "cells": [0, 2], "temporal": TRAIN}})
    e.build()
    v = np.array([e.advance(float(k), float(k + 1), {}).records["state.E"][0, 0]
                  for k in range(40)])                          # (window end, cell)
    # exact integration with the current of step n, I_n = u((n + 1/2) h) (none in step 0)
    n = np.arange(400)
    t_mid = (n + 0.5) * H
    on = (t_mid >= 2.0) & ((t_mid - 2.0) % 10.0 < 3.0) & (n >= 1)
    current = np.where(on, 300.0, 0.0)
    decay = math.exp(-H / TAU)
    x, exact = EL, []
    for i in n:
        x = EL + (x - EL) * decay + current[i] * TAU / C * (1 - decay)
        if (i + 1) % 10 == 0:
            exact.append(x)
    exact = np.array(exact)
    assert np.abs(exact - EL).max() > 2.0                       # the pulses depolarise
    np.testing.assert_allclose(v[:, 0], exact, rtol=0, atol=1e-9)
    np.testing.assert_allclose(v[:, 2], exact, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(v[:, 1], EL)                  # not stimulated
    e.close()


def test_poisson_stimulus_on_nest_lines_is_the_multicompartment_engines_trains(write_scenario):
    pulse = {"type": "pulse", "amplitude": 500.0, "width": 20.0, "onset": 10.0}
    stim = {"d": {"engine": "v1", "target": "poisson", "input": "stim", "temporal": pulse}}
    e = _nest(write_scenario, stim)
    got = []
    e.build()
    schedule = e._schedule
    e._schedule = lambda t0, t1, lines, times: (got.append((lines, times)),
                                                schedule(t0, t1, lines, times))
    for k in range(40):
        e.advance(float(k), float(k + 1), {})
    e.close()
    lines = np.concatenate([g[0] for g in got])
    times = np.concatenate([g[1] for g in got])
    assert ((times >= 10.0) & (times < 30.0)).all()
    expected = 500.0 * 0.020 * 15                                # Hz × s × 15 lines
    assert abs(times.size - expected) < 4 * math.sqrt(expected)
    # the same lines of a multicompartment engine with the same names get the same trains
    mc = multicompartment(dt=H, cells={"E": ball_and_stick(3, 2)},
                          inputs={"stim": {"target": "E", "receptor": "AMPA", "section": "soma",
                                           "x": 0.5, "weight": 0.0, "per_cell": 5}})
    sc = scenario(simulation(duration=40.0, seed=4), {"v1": mc}, record=record(1.0, 10),
                  stimuli=stim)
    m = load_scenario(write_scenario(sc, "mc.toml")).engines["v1"]
    m.build()
    seen = []
    net_schedule = m.net.schedule
    m.net.schedule = lambda li, t: (seen.append((li, t)), net_schedule(li, t))
    for k in range(40):
        m.advance(float(k), float(k + 1), {})
    ml = np.concatenate([s[0] for s in seen])
    mt = np.concatenate([s[1] for s in seen])
    a, b = np.lexsort((lines, times)), np.lexsort((ml, mt))
    np.testing.assert_array_equal(lines[a], ml[b])
    np.testing.assert_array_equal(times[a], mt[b])


def test_nest_stimulus_errors(write_scenario):
    for keys, message in (
            ({"target": "current", "population": "E", "section": "soma"},
             "nest.toml: stimuli.s.section: not a key of a stimulus with target \"current\" on point neurons"),
            ({"target": "current", "population": "E", "cells": [3]},
             "nest.toml: stimuli.s.cells: cell 3 outside population 'E' (n = 3)"),
            ({"target": "poisson", "input": "bg"},
             "nest.toml: stimuli.s.input: unknown input group 'bg'; have stim")):
        with pytest.raises(CosimError) as err:
            _nest(write_scenario, {"s": {"engine": "v1", **keys, "temporal": TRAIN}})
        assert str(err.value).startswith(message), str(err.value)
