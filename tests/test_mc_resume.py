"""Checkpoint and resume through ``cosim run --resume`` with NMODL mechanisms: a run of
cells carrying the shipped cortical set (``mechanisms_dir = "cosim:cortical"``: Na, Kdr, M,
Ih with a distance rule, Ca_HVA, Ca_LVA, SK and the calcium pool, so mechanism states, ion
concentrations and the Nernst calcium potential are all in the checkpoint), interrupted and
resumed from the command line, equals the straight run bit for bit."""

from __future__ import annotations

import h5py
import numpy as np

from _util import crash_at, run_cli
from cosim.runtime import run_scenario
from cosim.scenario import load_scenario
from scenarios import ball_and_stick, multicompartment, scenario, simulation

SOMA = {"pas": {"g": 3e-5, "e": -75.0}, "na_pos": {"gnabar": 0.05}, "kdr_pos": {"gkbar": 0.01},
        "im_pos": {"gkbar": 5e-5}, "ca_hva": {"gbar": 5e-5}, "ca_lva": {"gbar": 2e-4},
        "sk": {"gbar": 2e-4}, "cadecay": {"decay": 100.0}, "ih": {"gbar": 8e-5}}
DEND = {"pas": {"g": 3e-5, "e": -75.0},
        "ih": {"gbar": "0.0002 * (-0.8696 + 2.087 * exp(d / 323))"}}


def _scenario():
    eng = multicompartment(celsius=34.0, mechanisms_dir="cosim:cortical",
                           ions={"na": {"e": 50.0}, "k": {"e": -85.0}},
                           cells={"pyr": ball_and_stick(2, 5, {"soma": SOMA, "dend": DEND})},
                           clamps={"step": {"target": "pyr", "delay": 2.0, "duration": 30.0,
                                            "amplitude": 0.4}},
                           probes={"cells": [0, 1], "sections": ["soma", "dend"]})
    return scenario(simulation(duration=30.0, sync=1.0, output="mc.h5", checkpoint_every=10.0),
                    {"pyr": eng}, connectome=None)


def _datasets(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     and not n.startswith(("timing", "provenance")) else None)
        return out, f.attrs["status"]


def test_cortical_mechanisms_crash_then_cli_resume_is_bitwise(write_scenario, tmp_path):
    path = write_scenario(_scenario(), "mc.toml")
    run_scenario(load_scenario(path), output=tmp_path / "straight.h5", progress_stream=None)

    crash_at(path, tmp_path / "mc.h5", at_window=17)
    r = run_cli("run", str(path), "--output", str(tmp_path / "mc.h5"), "--resume", "--quiet",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a, sa = _datasets(tmp_path / "straight.h5")
    b, sb = _datasets(tmp_path / "mc.h5")
    assert sa == sb == "completed"
    assert a.keys() == b.keys()
    spikes = [n for n in a if "spike" in n]
    assert spikes and any(a[n].size > 0 for n in spikes), sorted(a)   # the cells fire
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
