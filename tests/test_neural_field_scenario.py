"""The neural-field engine in scenarios: the shipped Turing scenario, coupling to neural
masses through the bus (checked against a plain-numpy integration of the whole system with
the convolution summed directly, no FFT), one process ≡ ``mpiexec -n 3`` (bus, masses, sheet), and every bad
key a one-line error with exit code 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from _util import REPO, run_cli
from cosim.analysis import dispersion as dz
from cosim.cli import main
from cosim.fields.kernels import DifferenceOfGaussians, Gaussian
from cosim.rng import stream

LABELS = ["A", "B", "R"]
W = np.array([[0.0, 0.3, 1.2],
              [0.4, 0.0, 0.0],
              [0.8, 0.5, 0.0]])
L = np.array([[0.0, 4.5, 6.0],
              [4.5, 0.0, 0.0],
              [7.5, 9.0, 0.0]])
GAMMA, X0, DT, DURATION, SEED = -0.5, {"A": 0.5, "B": -0.3}, 0.1, 30.0, 7
N, H, SIGMA, AMP, SLOPE, TAU, DELAY, I0, NOISE = 16, 1.0, 1.5, 0.8, 2.0, 5.0, 0.5, 0.1, 0.2

HYBRID = f"""
[simulation]
duration = {DURATION}
sync_interval = 1.0
seed = {SEED}

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

[engines.sheet]
type = "neural_field"
region = "R"
size = [{N * H}]
spacing = {H}
dt = {DT}
tau = {TAU}
delay = {DELAY}
I0 = {I0}
[engines.sheet.kernel]
type = "gaussian"
amplitude = {AMP}
sigma = {SIGMA}
[engines.sheet.firing]
slope = {SLOPE}
[engines.sheet.initial]
noise = {NOISE}

[record]
period = {DT}
"""


def _write(tmp_path: Path, text: str = HYBRID) -> Path:
    np.savetxt(tmp_path / "w.csv", W, delimiter=",")
    np.savetxt(tmp_path / "l.csv", L, delimiter=",")
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    p = tmp_path / "hybrid.toml"
    p.write_text(text)
    return p


def reference():
    """Heun for the masses (delayed samples at both stage times) and for the sheet (drive
    held over the step, delayed convolution from its own history), the convolution as a
    direct sum over the ring; afferents x (masses) and ⟨S(u)⟩ (sheet)."""
    d = np.rint(L / 3.0 / DT).astype(int)
    D = round(DELAY / DT)
    n = round(DURATION / DT)
    S = lambda u: 1.0 / (1.0 + np.exp(-SLOPE * u))
    i = np.arange(N)
    dist = np.minimum(np.abs(i[:, None] - i[None, :]), N - np.abs(i[:, None] - i[None, :])) * H
    w = Gaussian(AMP, SIGMA).value(dist, 1) * H
    u = NOISE * stream(SEED, "neural_field.initial", "sheet").standard_normal(N)
    conv = {0: w @ S(u)}
    a = np.zeros((n + 1, 3))
    a[0] = [X0["A"], X0["B"], S(u).mean()]
    means = np.zeros((n, 2))
    aff = lambda j, m: a[max(m, 0), j]
    c = lambda t, m: sum(W[t, j] * aff(j, m - d[t, j]) for j in range(3) if W[t, j] != 0)
    C = lambda m: conv[max(m, 0)]
    q = DT / TAU
    for m in range(n):
        for t in (0, 1):
            x = a[m, t]
            f0 = GAMMA * x + c(t, m)
            f1 = GAMMA * (x + DT * f0) + c(t, m + 1)
            a[m + 1, t] = x + DT / 2 * (f0 + f1)
        I = I0 + c(2, m)
        f0 = -u + C(m - D) + I
        ut = u + q * f0
        u = u + q / 2 * (f0 + (-ut + C(m + 1 - D) + I))
        conv[m + 1] = w @ S(u)
        a[m + 1, 2] = S(u).mean()
        means[m] = u.mean(), S(u).mean()
    return a[1:], means


def _read(path):
    with h5py.File(path) as f:
        return f["engines/masses/timeseries"][:, 0, :], f["engines/sheet/mean"][:, :, 0]


def test_sheet_coupled_to_neural_masses_matches_numpy(tmp_path):
    out = tmp_path / "one.h5"
    assert main(["run", str(_write(tmp_path)), "-o", str(out), "-q", "--no-monitor"]) == 0
    x, means = _read(out)
    a, means_ref = reference()
    np.testing.assert_allclose(x, a[:, :2], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(means, means_ref, rtol=1e-12, atol=1e-14)
    assert np.ptp(means[:, 0]) > 0.05           # the sheet was really driven


@pytest.mark.mpi
def test_hybrid_under_mpiexec_equals_one_process(tmp_path):
    from cosim.launch import find_mpiexec
    scen = _write(tmp_path)
    one, three = tmp_path / "one.h5", tmp_path / "three.h5"
    assert main(["run", str(scen), "-o", str(one), "-q", "--no-monitor"]) == 0
    res = subprocess.run([find_mpiexec(), "-n", "3", sys.executable, "-m", "cosim", "run",
                          str(scen), "-o", str(three), "-q", "--no-monitor"],
                         env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for u, v in zip(_read(one), _read(three)):
        np.testing.assert_array_equal(u, v)


def test_turing_scenario_forms_the_predicted_pattern(tmp_path):
    scen = REPO / "scenarios" / "neural_field_turing.toml"
    out = tmp_path / "turing.h5"
    assert main(["run", str(scen), "-o", str(out), "-q", "--no-monitor"]) == 0
    with h5py.File(out) as f:
        ds = f["engines/sheet/field"]
        shape, h = tuple(ds.attrs["grid_shape"]), float(ds.attrs["spacing_mm"])
        u = ds[-1, 0].reshape(shape)
    power = np.abs(np.fft.fft2(u - u.mean())) ** 2
    k = [2 * np.pi * np.fft.fftfreq(n, h) for n in shape]
    kk = np.hypot(*np.meshgrid(*k, indexing="ij"))
    k_star = dz.turing_onset(DifferenceOfGaussians(3.0, 1.0, 2.0, 2.0), 2).k
    assert u.std() > 0.1
    # the power sits on the ring |k| ≈ k* (within one lattice step 2π/48 mm)
    ring = np.abs(kk - k_star) <= 2 * np.pi / 48.0
    assert power[ring].sum() > 0.8 * power.sum()
    # `cosim plot`'s figure of a field: snapshots on the grid and a kymograph
    pytest.importorskip("matplotlib")
    from cosim import plotting
    with h5py.File(out) as f:
        ds = f["engines/sheet/field"]
        png = plotting.plot_field(tmp_path / "field.png", f["engines/sheet/field_time_ms"][()],
                                  ds[:, 0, :], shape, h, dpi=50)
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("old,new,key,reason", [
    ("size = [16]", "size = [16, 2, 3]", "engines.sheet.size", "must be [L]"),
    ("spacing = 1.0", "spacing = 0.7", "engines.sheet.size[0]", "not a whole multiple"),
    ("delay = 0.5", "delay = 0.25", "engines.sheet.delay", "whole multiple of dt"),
    ("sigma = 1.5", "sigma_e = 1.5", "engines.sheet.kernel.sigma_e",
     "is not a parameter of kernel 'gaussian'"),
    ('type = "gaussian"', 'type = "gauss"', "engines.sheet.kernel.type", "did you mean"),
    ("slope = 2.0", "slope = -2.0", "engines.sheet.firing.slope", "must be > 0"),
    ('region = "R"', 'region = "Q"', "engines.sheet.region", "unknown region"),
    ("noise = 0.2", 'noise = 0.2\nu = "rest"', "engines.sheet.initial.u", "fixed_point"),
    ("noise = 0.2", "noise = 0.2\n[engines.sheet.snapshots]\nperiod = 0.15",
     "engines.sheet.snapshots.period", "whole multiple of dt"),
    ("tau = 5.0", "tau = 5.0\nbogus = 1", "engines.sheet.bogus", "unknown key"),
])
def test_bad_keys_are_one_line_errors(tmp_path, capsys, old, new, key, reason):
    text = HYBRID.replace(".0]", "]", 1) if old.startswith("size") else HYBRID
    assert old in text, old
    scen = _write(tmp_path, text.replace(old, new, 1))
    assert main(["validate", str(scen)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith(f"hybrid.toml: {key}: ") and reason in line, line


def test_too_many_snapshot_points_and_several_fixed_points(tmp_path):
    """Through a real ``python -m cosim`` process: exit 2, the one line on stderr."""
    big = HYBRID.replace(f"size = [{N * H}]", "size = [64.0, 64.0]").replace(
        "noise = 0.2", "noise = 0.2\n[engines.sheet.snapshots]\nperiod = 1.0")
    r = run_cli("validate", str(_write(tmp_path, big)))
    assert r.returncode == 2 and "engines.sheet.snapshots.stride: a snapshot would hold 4096" \
        in r.stderr, r.stderr
    # a bistable sheet: strong excitation, u0 = a S(u0) + I0 has three roots
    bist = HYBRID.replace(f"amplitude = {AMP}", "amplitude = 8.0").replace(
        "I0 = 0.1", "I0 = -4.0").replace("slope = 2.0", "slope = 4.0").replace(
        "noise = 0.2", 'noise = 0.2\nu = "fixed_point"')
    r = run_cli("validate", str(_write(tmp_path, bist)))
    assert r.returncode == 2 and "engines.sheet.initial.u: the sheet has 3 homogeneous" \
        in r.stderr, r.stderr
