"""The community-model example of the ``neuron`` engine (``scenarios/neuron_l5/``): a
layer-5 pyramidal cell written as NEURON model code (NEURON's Import3d on the Allen
515570710 reconstruction, cosim's shipped NMODL channels compiled by nrnivmodl), run as
rV1 inside the whole brain.

* the model as NEURON builds it has the membrane area cosim's own SWC reader finds for the
  same file, and Ih at every apical segment is the declared distance rule evaluated at
  NEURON's own path distance;
* the scenario runs in one process: the cells fire, driven by the brain, and the soma
  voltage is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import run_cli

pytest.importorskip("neuron")

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "scenarios" / "neuron_l5"


def test_neuron_builds_the_declared_cell():
    code = (
        "import json, sys\n"
        "from types import SimpleNamespace\n"
        "import importlib.util, numpy as np\n"
        "from neuron import h, load_mechanisms\n"
        "from cosim.engines.neuron_mod import compile_mods\n"
        "from cosim.multicompartment.mechanism import shipped_mod_dir\n"
        "from cosim.multicompartment.distribution import evaluate\n"
        "from cosim.multicompartment.cells import IH_APICAL\n"
        "from cosim.engines.neuron_model import EVENTS_MOD\n"
        # the engine's library (the same compile as the region run below)
        "load_mechanisms(str(compile_mods(shipped_mod_dir(), h.nrnversion(5),\n"
        "                                 extra={'cosim_events.mod': EVENTS_MOD})), False)\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(FOLDER / 'l5_cell.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"ctx = SimpleNamespace(h=h, gids=np.array([0]), model_dir={str(FOLDER)!r})\n"
        "cell = m.build(ctx)[0]\n"
        "secs = [s for k in m.KINDS for s in getattr(cell, k, [])]\n"
        "area = sum(seg.area() for s in secs for seg in s)\n"
        "h.distance(0, cell.soma[0](0.5))\n"
        "ih = [(seg.ih.gbar, float(evaluate(IH_APICAL, h.distance(seg)))) for s in cell.apic for seg in s]\n"
        "print(json.dumps({'area': area, 'ih': ih, 'nseg': sum(s.nseg for s in secs)}))\n")
    env = dict(os.environ, NEURON_MODULE_OPTIONS="-nogui")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    from cosim.multicompartment.swc import load_swc
    ours = load_swc(REPO / "scenarios" / "cortical_l5" / "allen_515570710.swc").total_area_um2()
    # two readers of one SWC file (NEURON's Import3d, cosim's swc): the same membrane
    assert got["area"] == pytest.approx(ours, rel=0.02), (got["area"], ours)
    ih = np.array(got["ih"])
    assert len(ih) > 100 and ih[:, 1].max() > 3 * ih[:, 1].min()     # the gradient is there
    np.testing.assert_allclose(ih[:, 0], ih[:, 1], rtol=1e-12)


def test_l5_region_runs_inside_the_brain(tmp_path):
    r = run_cli("run", str(FOLDER / "l5_region.toml"), "--output", "l5.h5", "--quiet",
                cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "l5.h5") as f:
        assert f.attrs["status"] == "completed"
        t = f["spikes/v1.l5/timestamps"][:]
        ids = f["spikes/v1.l5/node_ids"][:]
        v = f["engines/v1/v"][:, 0, 0]
        y1 = f["engines/cortex/timeseries"][:]
    assert t.size >= 8 and set(ids.tolist()) <= {0, 1, 2, 3} and len(set(ids.tolist())) >= 3
    # a completed run's population is sorted by_id: by node, then time
    assert np.array_equal(np.lexsort((t, ids)), np.arange(ids.size)) and t.max() < 200.0
    assert v.shape == (200,) and -90.0 < v.min() and v.max() < 60.0
    assert v[0] == pytest.approx(-75.0, abs=1.0)              # v_init, then driven up
    assert np.isfinite(y1).all()
