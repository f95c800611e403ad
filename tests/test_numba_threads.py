"""numba's threading layer (:mod:`cosim.numba_threads`): a process without NEST or NEURON
steps a surface's ``threads = 2`` on numba's OpenMP layer (the fast one) and gets the
one-thread bits; a process with either simulator (an engine of its type, or its module
imported) gets ``workqueue`` (two OpenMP runtimes in one process crash); the user's
``NUMBA_THREADING_LAYER`` wins.

The test process itself pins ``workqueue`` (``tests/conftest.py``: NEST tests follow
threaded surface tests in the same process), so each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numba
import pytest

from _util import REPO

SCENARIO = REPO / "scenarios" / "cortical_surface.toml"


def _python(code: str, env_layer: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    if env_layer is not None:
        env["NUMBA_THREADING_LAYER"] = env_layer
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_layer_follows_the_engines_of_the_process():
    got = _python("""
        import json, sys
        from cosim import numba_threads as nt
        out = {"alone": nt.choose({"neural_field"}),
               "with_nest": nt.choose({"neural_field", "nest"}),
               "with_neuron": nt.choose({"neuron", "neural_mass"})}
        import nest                                # a simulator imported: its OpenMP is here
        out["nest_imported"] = nt.choose({"neural_field"})
        print(json.dumps(out))
    """)
    assert got == {"alone": "omp", "with_nest": "workqueue", "with_neuron": "workqueue",
                   "nest_imported": "workqueue"}
    user = _python("""
        import json
        from cosim import numba_threads as nt
        print(json.dumps({"layer": nt.choose({"neural_field"})}))
    """, env_layer="workqueue")
    assert user == {"layer": "workqueue"}


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")
def test_a_threaded_surface_run_uses_openmp_and_gives_the_one_thread_bits(tmp_path):
    text = SCENARIO.read_text().replace("duration = 100.0", "duration = 3.0")
    text = text.replace('output = "results/cortical_surface.h5"\n', "")
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    one.write_text(text)
    two.write_text(text.replace("[engines.cortex]\n", "[engines.cortex]\nthreads = 2\n", 1))
    got = _python(f"""
        import json
        import h5py, numba, numpy as np
        from cosim.runtime import run_scenario
        from cosim.scenario import load_scenario
        out = {{}}
        for name in ("one", "two"):
            run_scenario(load_scenario({str(tmp_path)!r} + f"/{{name}}.toml"),
                         output={str(tmp_path)!r} + f"/{{name}}.h5", progress_stream=None)
        with h5py.File({str(tmp_path)!r} + "/one.h5") as a, \\
             h5py.File({str(tmp_path)!r} + "/two.h5") as b:
            x, y = a["engines/cortex/regions"][...], b["engines/cortex/regions"][...]
        print(json.dumps({{"layer": numba.threading_layer(), "equal": bool(np.array_equal(x, y)),
                          "shape": list(x.shape), "ptp": float(np.ptp(x))}}))
    """)
    assert got["layer"] == "omp"
    assert got["equal"] and got["shape"][0] >= 3 and got["ptp"] > 0, got
