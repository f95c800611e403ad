"""A ``[stimuli]`` table on a neural field: a pulse with a Gaussian profile in space drives a
sheet without lateral interaction (kernel amplitude 0), where ``τ du/dt = −u + I0 + p(x) u(t)``
has a closed-form solution; the applied stimulus is in the output; bad keys are one line."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from _util import run_cli

TAU, T0, WIDTH, AMP, I0 = 10.0, 5.0, 20.0, 0.8, 0.1


def sheet(stimulus: str, size="[10.0]", dt=0.05) -> str:
    return f"""
[simulation]
duration = 50.0
sync_interval = 1.0
seed = 1
output = "out.h5"

[connectome]
source = "tvb:connectivity_76"

[engines.sheet]
type = "neural_field"
size = {size}
spacing = 0.5
dt = {dt}
tau = {TAU}
I0 = {I0}
[engines.sheet.kernel]
type = "gaussian"
amplitude = 0.0
[engines.sheet.initial]
u = {I0}
[engines.sheet.snapshots]
period = 1.0

{stimulus}

[record]
period = 1.0
"""


PULSE = f"""
[stimuli.spot]
engine = "sheet"
target = "u"
profile = "exp(-(x - 5)**2 / 2)"
[stimuli.spot.temporal]
type = "pulse"
amplitude = {AMP}
width = {WIDTH}
onset = {T0}
"""


def closed_form(t, p):
    """u(x, t) − I0 for a pulse of height AMP·p(x) on [T0, T0 + WIDTH)."""
    on = np.clip(t - T0, 0.0, WIDTH)
    rise = AMP * p[None, :] * (1.0 - np.exp(-on / TAU))[:, None]
    after = np.where(t > T0 + WIDTH, np.exp(-(t - T0 - WIDTH) / TAU), 1.0)[:, None]
    return rise * after


def test_pulse_with_a_spatial_profile_matches_the_closed_form(write_scenario, tmp_path):
    path = write_scenario(sheet(PULSE), "s.toml")
    r = run_cli("run", str(path), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    x = np.arange(20) * 0.5
    p = np.exp(-(x - 5.0) ** 2 / 2)
    with h5py.File(tmp_path / "out.h5") as f:
        u = f["engines/sheet/field"][:, 0, :]
        t = f["engines/sheet/field_time_ms"][:]
        g = f["stimuli/spot"]
        np.testing.assert_allclose(g["weights"][:], p, rtol=1e-15)
        tk, vk = g["time_ms"][:], g["values"][:]
        assert g.attrs["target"] == "u" and g.attrs["engine"] == "sheet"
    np.testing.assert_array_equal(vk, np.where((tk >= T0) & (tk < T0 + WIDTH), AMP, 0.0))
    exact = closed_form(t, p)
    assert np.abs(exact).max() > 0.5                     # the pulse did something
    # Heun, order 2, dt/τ = 0.005: a few 1e-6 of the peak
    err = np.abs(u - I0 - exact).max() / np.abs(exact).max()
    assert err < 1e-5, err
    path = write_scenario(sheet(PULSE, dt=0.1), "coarse.toml")
    assert run_cli("run", str(path), "--output", "coarse.h5", "--quiet", cwd=tmp_path).returncode == 0
    with h5py.File(tmp_path / "coarse.h5") as f:
        err2 = np.abs(f["engines/sheet/field"][:, 0, :] - I0 - exact).max() / np.abs(exact).max()
    assert 3.0 < err2 / err < 5.0, (err, err2)           # second order in dt


def test_two_dimensional_profile_uses_x_and_y(write_scenario, tmp_path):
    stim = PULSE.replace('"exp(-(x - 5)**2 / 2)"', '"(x > 4) * (y < 2)"')
    path = write_scenario(sheet(stim, size="[5.0, 5.0]"), "s.toml")
    r = run_cli("run", str(path), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "out.h5") as f:
        w = f["stimuli/spot/weights"][:].reshape(10, 10)
        u = f["engines/sheet/field"][-1, 0, :].reshape(10, 10)
        t_end = f["engines/sheet/field_time_ms"][-1]
    xs = np.arange(10) * 0.5
    np.testing.assert_array_equal(w, ((xs[:, None] > 4) & (xs[None, :] < 2)).astype(float))
    assert np.all(u[w == 0] == I0)
    expect = closed_form(np.array([t_end]), np.ones(1))[0, 0]
    np.testing.assert_allclose(u[w == 1] - I0, expect, rtol=1e-4)


@pytest.mark.parametrize("edit,message", [
    (('target = "u"', 'target = "v"'), 'stimuli.spot.target: a neural_field takes target "u"'),
    (("exp(-(x - 5)**2 / 2)", "exp(-(z - 5)**2 / 2)"), "stimuli.spot.profile: unknown name 'z'"),
    (("exp(-(x - 5)**2 / 2)", "log(x - 20)"), "stimuli.spot.profile: 'log(x - 20)' is nan"),
    (('target = "u"', 'target = "u"\nweights = 2.0'), "stimuli.spot.weights: not a key of a "
                                                     "stimulus with target"),
])
def test_bad_field_stimulus_is_one_line(write_scenario, tmp_path, edit, message):
    path = write_scenario(sheet(PULSE.replace(*edit)), "bad.toml")
    r = run_cli("validate", str(path), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "bad.toml" in lines[0], r.stderr
