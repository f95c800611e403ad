"""The co-simulation runtime, with real `mpiexec` subprocesses:

* layout independence — one process, `-n 3` and `-n 4` (the spiking region over two
  ranks) give bitwise-identical datasets;
* exactness — a region swapped for a neural-mass engine of its own, coupled through the bus,
  reproduces the single-engine run bit for bit;
* delivery — a volley of spikes in the detailed region reaches each connected neural mass
  exactly d_ij after the bin it fell in.
"""

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
from scenarios import (ball_and_stick, connectome, dumps, hybrid, multicompartment, neural_mass, record,
                       scenario, simulation, spikes_to_rate)

MPIEXEC = Path(sys.executable).parent / "mpiexec"

HYBRID = dumps(hybrid())


def _mpirun(n: int, scenario: Path, cwd: Path, output: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("COSIM_DEBUG", None)
    return subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "cosim", "run",
                           str(scenario), "--output", output, "--quiet"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith(("timing", "provenance")):
                out[name] = obj[()]
        f.visititems(visit)
        assert f.attrs["status"] == "completed", f.attrs["message"]
    return out


needs_mpi = pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec next to the interpreter "
                               "(pip install -e .[mpi])")


@needs_mpi
@pytest.mark.mpi
def test_layout_independence_one_process_n3_n4(write_scenario, tmp_path):
    sc = write_scenario(HYBRID, "hybrid.toml")
    r = run_cli("run", str(sc), "--output", "one.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref = _datasets(tmp_path / "one.h5")
    spikes = np.concatenate([ref["spikes/v1.exc/timestamps"], ref["spikes/v1.inh/timestamps"]])
    assert spikes.size > 20, "the detailed region should spike"
    assert ref["engines/v1/v"].shape == (120, 1, 5)
    for n in (3, 4):
        if n == 3:   # `cosim run --np 3` launches mpiexec itself
            r = run_cli("run", str(sc), "--output", "n3.h5", "--quiet", "--np", "3", cwd=tmp_path)
        else:
            r = _mpirun(n, sc, tmp_path, f"n{n}.h5")
        assert r.returncode == 0, r.stderr
        got = _datasets(tmp_path / f"n{n}.h5")
        assert got.keys() == ref.keys()
        for name in ref:
            np.testing.assert_array_equal(got[name], ref[name], err_msg=f"{name} differs with -n {n}")
    with h5py.File(tmp_path / "n4.h5") as f:
        assert f["timing/window_seconds"].shape == (60, 4, 3)


def _jansen_rit(regions, integrator: str) -> dict:
    return neural_mass(regions=regions, integrator=integrator,
                       coupling={"type": "sigmoidal_jansen_rit", "G": 2.0}, initial={"random": True})


def _pure(integrator: str) -> dict:
    return scenario(simulation(duration=50.0, sync=2.0, seed=3, output="out.h5"),
                    engines={"cortex": _jansen_rit("all", integrator)}, record=record(0.1))


def _split(integrator: str) -> dict:
    """The same brain with rV1 and lV1 as a second neural-mass engine."""
    sc = _pure(integrator)
    sc["engines"] = {"cortex": _jansen_rit("rest", integrator),
                     "v1": _jansen_rit(["rV1", "lV1"], integrator)}
    return sc


@pytest.mark.parametrize("integrator", ["heun", "rk4"])
def test_region_swapped_for_a_neural_mass_engine_reproduces_the_pure_run(write_scenario, tmp_path, integrator):
    pure = write_scenario(_pure(integrator), "pure.toml")
    split = write_scenario(_split(integrator), "split.toml")
    for sc, out in ((pure, "pure.h5"), (split, "split.h5")):
        r = run_cli("run", str(sc), "--output", out, "--quiet", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    labels = load_connectome("tvb:connectivity_76").region_labels
    with h5py.File(tmp_path / "pure.h5") as a, h5py.File(tmp_path / "split.h5") as b:
        ref = a["engines/cortex/timeseries"][:]
        rest = b["engines/cortex/timeseries"]
        v1 = b["engines/v1/timeseries"]
        got = np.empty_like(ref)
        for ds in (rest, v1):
            cols = [labels.index(s) for s in ds.attrs["regions"]]
            got[:, :, cols] = ds[:]
    assert np.isfinite(ref).all() and np.ptp(ref[:, 1]) > 1.0
    np.testing.assert_array_equal(got, ref)


@needs_mpi
@pytest.mark.mpi
def test_split_neural_masses_under_mpiexec_match_one_process(write_scenario, tmp_path):
    split = write_scenario(_split("heun"), "split.toml")
    r = run_cli("run", str(split), "--output", "one.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _mpirun(3, split, tmp_path, "three.h5")
    assert r.returncode == 0, r.stderr
    a, b = _datasets(tmp_path / "one.h5"), _datasets(tmp_path / "three.h5")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


DELIVERY = scenario(
    simulation(duration=40.0, seed=5, output="out.h5"),
    engines={"brain": neural_mass("linear", regions="rest", parameters={"gamma": 0.0},
                                  coupling={"type": "linear", "G": 1.0}),
             "v1": multicompartment(region="rV1", cells={"exc": ball_and_stick(10, 2)},
                                    clamps={"volley": {"target": "exc", "section": "soma", "x": 0.5,
                                                       "delay": 5.0, "duration": 1.0,
                                                       "amplitude": 1.0}})},
    connectome=connectome(driven_self_connections="drop"),
    adapters={"out": spikes_to_rate("v1", kernel="none", map={"type": "linear", "gain": 1.0})},
    record=record(0.1))


def test_spike_volley_reaches_each_target_exactly_d_ij_later(write_scenario, tmp_path):
    sc = write_scenario(DELIVERY, "delivery.toml")
    r = run_cli("run", str(sc), "--output", "d.h5", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    c = load_connectome("tvb:connectivity_76")
    src = c.index_of("rV1")
    steps = c.delay_steps(3.0, 0.1)
    with h5py.File(tmp_path / "d.h5") as f:
        spikes = f["spikes/v1.exc/timestamps"][:]
        x = f["engines/brain/timeseries"][:, 0, :]          # (time, region), t = 0.1, 0.2, …
        regions = list(f["engines/brain/timeseries"].attrs["regions"])
    assert spikes.size == 10                                  # the volley: every cell once
    first_bin_end = (np.floor(spikes.min() / 0.1 + 1e-9) + 1) * 0.1  # bus bins of 0.1 ms
    targets = [i for i in range(76) if c.weights[i, src] > 0 and i != src]
    assert len(targets) >= 5
    earliest = first_bin_end + min(steps[i, src] for i in targets) * 0.1
    for i in range(76):
        label = c.region_labels[i]
        if label not in regions:
            continue
        moved = np.flatnonzero(x[:, regions.index(label)] != 0.0)
        if i in targets:   # the first nonzero sample sits exactly d_ij after the volley's bin
            assert moved.size, label
            assert abs((moved[0] + 1) * 0.1 - (first_bin_end + steps[i, src] * 0.1)) < 1e-9, label
        elif moved.size:   # others only through longer, indirect paths
            assert (moved[0] + 1) * 0.1 > earliest, label
