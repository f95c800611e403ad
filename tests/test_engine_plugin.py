"""A third-party engine type (``tests/plugin/cosim_relay.py``, registered through the
``cosim.engines`` entry-point group — no edit of cosim) runs coupled to a neural-mass
engine through the bus, in one process and under ``mpiexec -n 3``.

Independent check: the whole coupled system (two linear neural masses integrated by Heun
and the relay's leaky integrator, with the delays of the connectome) is integrated here in
plain numpy; every recorded sample of both engines agrees, and the MPI run gives the same
bits as the one-process run.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from cosim.cli import main
from cosim.engines import engine_class, engine_types

PLUGIN = Path(__file__).parent / "plugin"
LABELS = ["A", "B", "R"]
# weights[target, source] and tract lengths (mm); at 3 mm/ms and dt 0.1 ms: 20/25/30/15 steps
W = np.array([[0.0, 0.3, 1.2],
              [0.4, 0.0, 0.0],
              [0.8, 0.5, 0.0]])
L = np.array([[0.0, 4.5, 6.0],
              [4.5, 0.0, 0.0],
              [7.5, 9.0, 0.0]])
GAMMA, TAU, R0, X0 = -0.5, 4.0, 0.2, {"A": 0.5, "B": -0.3}
DT, DURATION = 0.1, 40.0

SCENARIO = f"""
[simulation]
duration = {DURATION}
sync_interval = 1.0
seed = 3

[connectome]
source = {{ weights = "w.csv", tract_lengths = "l.csv", labels = "labels.txt" }}

[engines.masses]
type = "neural_mass"
model = "linear"
regions = ["A", "B"]
dt = {DT}
integrator = "heun"
[engines.masses.parameters]
gamma = {GAMMA}
[engines.masses.initial]
x = {{ A = {X0['A']}, B = {X0['B']} }}

[engines.relay]
type = "relay"
region = "R"
dt = {DT}
tau = {TAU}
r0 = {R0}

[record]
period = {DT}
"""


@pytest.fixture
def plugin_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN))
    engine_types.cache_clear()
    yield
    engine_types.cache_clear()


def _write(tmp_path: Path) -> Path:
    np.savetxt(tmp_path / "w.csv", W, delimiter=",")
    np.savetxt(tmp_path / "l.csv", L, delimiter=",")
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    p = tmp_path / "relay.toml"
    p.write_text(SCENARIO)
    return p


def reference():
    """The coupled system in numpy: Heun for the masses (delayed samples on the grid at
    t_n and t_{n+1}), the relay's exact update, afferents x (masses) and r (relay)."""
    d = np.rint(L / 3.0 / DT).astype(int)
    n = int(round(DURATION / DT))
    a = np.zeros((n + 1, 3))                     # a[m] = afferent of step m ≥ 0
    a[0] = [X0["A"], X0["B"], R0]
    drive = np.zeros(n)

    def aff(j, m):
        return a[m, j] if m >= 0 else a[0, j]    # held initial history for t ≤ 0

    def c(i, m):
        return sum(W[i, j] * aff(j, m - d[i, j]) for j in range(3) if W[i, j] != 0)

    e = math.exp(-DT / TAU)
    for m in range(n):
        for i in (0, 1):
            x = a[m, i]
            f0 = GAMMA * x + c(i, m)
            xt = x + DT * f0
            f1 = GAMMA * xt + c(i, m + 1)
            a[m + 1, i] = x + DT / 2 * (f0 + f1)
        drive[m] = c(2, m)
        a[m + 1, 2] = e * a[m, 2] + (1 - e) * drive[m]
    return a[1:], drive


def _read(path):
    with h5py.File(path) as f:
        return (f["engines/masses/timeseries"][:, 0, :], f["engines/relay/drive"][:, 0, 0],
                f["engines/relay/r"][:, 0, 0])


def test_registered_through_the_entry_point(plugin_on_path):
    assert "relay" in engine_types()
    cls = engine_class("relay")
    assert cls.__module__ == "cosim_relay" and cls.type_name == "relay"
    import cosim
    assert not Path(sys.modules[cls.__module__].__file__).is_relative_to(Path(cosim.__file__).parent)


def test_plugin_engine_coupled_in_one_process(plugin_on_path, tmp_path):
    scen = _write(tmp_path)
    out = tmp_path / "one.h5"
    assert main(["run", str(scen), "-o", str(out), "-q", "--no-monitor"]) == 0
    x, drive, r = _read(out)
    a, drive_ref = reference()
    np.testing.assert_allclose(x, a[:, :2], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(drive, drive_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r, a[:, 2], rtol=1e-12, atol=1e-14)
    assert np.ptp(drive) > 0.1        # the relay was really driven, and fed back


@pytest.mark.mpi
def test_plugin_engine_under_mpiexec_equals_one_process(plugin_on_path, tmp_path):
    from cosim.launch import find_mpiexec

    scen = _write(tmp_path)
    one, three = tmp_path / "one.h5", tmp_path / "three.h5"
    assert main(["run", str(scen), "-o", str(one), "-q", "--no-monitor"]) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PLUGIN)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([find_mpiexec(), "-n", "3", sys.executable, "-m", "cosim", "run",
                          str(scen), "-o", str(three), "-q", "--no-monitor"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for u, v in zip(_read(one), _read(three)):
        np.testing.assert_array_equal(u, v)
