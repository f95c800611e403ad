"""Balloon–Windkessel model: impulse response shape, steady state, TVB agreement, chunking."""

import numpy as np
import pytest

from cosim.analysis.hemodynamics import (BalloonIntegrator, BalloonParams, balloon_windkessel,
                                         bold_signal, impulse_response)


def test_impulse_response_peak_and_undershoot():
    t, y = impulse_response(duration_s=40.0, dt_ms=10.0)
    i = int(np.argmax(y))
    assert 4.0 <= t[i] <= 6.0                       # canonical HRF peak 4-6 s
    assert y[i] > 0
    after = t > t[i]
    j = int(np.argmin(np.where(after, y, np.inf)))
    assert y[j] < -0.05 * y[i]                      # post-stimulus undershoot …
    assert 8.0 <= t[j] <= 20.0                      # … several seconds after the peak
    assert abs(y[-1]) < 0.05 * y[i]                 # back towards rest


def test_friston2000_preset_peaks_earlier():
    t, y = impulse_response(duration_s=30.0, dt_ms=10.0, params=BalloonParams.preset("friston2000"))
    assert 2.5 <= t[np.argmax(y)] <= 3.5
    assert y.min() < 0


def test_steady_state_matches_analytic_fixed_point():
    # Constant input z: ds = 0 -> f = 1 + z/γ; dv = 0 -> v = f^α;
    # dq = 0 -> q = v (1 - (1-E0)^(1/f)) / E0.
    p = BalloonParams()
    z = np.array([0.0, 0.1, 0.5])
    integ = BalloonIntegrator(3, 50.0, p)
    v, q = integ.step(np.tile(z, (4000, 1)))        # 200 s
    f = 1 + z / p.gamma_per_s
    v_ref = f ** p.alpha
    q_ref = v_ref * (1 - (1 - p.e0) ** (1 / f)) / p.e0
    np.testing.assert_allclose(v[-1], v_ref, rtol=1e-8)
    np.testing.assert_allclose(q[-1], q_ref, rtol=1e-8)
    assert bold_signal(v[-1], q[-1], p)[0] == pytest.approx(0.0, abs=1e-12)


def test_chunked_equals_one_shot():
    rng = np.random.default_rng(1)
    z = 0.3 + 0.2 * rng.standard_normal((3000, 4))
    whole = BalloonIntegrator(4, 1.0)
    v1, q1 = whole.step(z)
    parts = BalloonIntegrator(4, 1.0)
    cuts = [0, 1, 7, 500, 1999, 3000]
    out = [parts.step(z[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(np.concatenate([o[0] for o in out]), v1)
    np.testing.assert_array_equal(np.concatenate([o[1] for o in out]), q1)


def test_sample_period_convergence():
    # RK4 with linear input: the same smooth input sampled at 1 ms and 0.1 ms agrees.
    def z(t_ms):
        return np.stack([0.5 + 0.4 * np.sin(2 * np.pi * t_ms / 4000.0),
                         0.3 + 0.3 * np.sin(2 * np.pi * t_ms / 7000.0 + 1)], axis=1)
    t = np.arange(1, 10001) * 1.0
    tf = np.arange(1, 100001) * 0.1
    y = balloon_windkessel(z(t), 1.0)
    yf = balloon_windkessel(z(tf), 0.1)[9::10]
    np.testing.assert_allclose(y, yf, atol=2e-6 * np.abs(y).max())


def test_agrees_with_tvb_balloon_model():
    """TVB's BalloonModel (Heun, input held over each step) on the same equations and
    parameters; we integrate TVB's piecewise-constant input finely with RK4."""
    tvb = pytest.importorskip("tvb.analyzers.fmri_balloon")
    from tvb.datatypes.time_series import TimeSeries

    n = 5001
    t = np.arange(n) * 1.0
    z = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * t / 4000.0),
                  0.3 + 0.3 * np.sin(2 * np.pi * t / 7000.0 + 1)], axis=1)
    ts = TimeSeries(data=z[:, None, :, None], sample_period=1.0, sample_period_unit="ms", time=t)
    ts.configure()
    for p in (BalloonParams(), BalloonParams.preset("friston2000", coefficients="stephan2007")):
        model = tvb.BalloonModel(time_series=ts, tau_s=1 / p.kappa_per_s, tau_f=1 / p.gamma_per_s,
                                 tau_o=p.tau_s, alpha=p.alpha, E0=p.e0, V0=100 * p.v0,
                                 RBM=True, TE=p.te_s, nu_0=p.nu0_hz, r_0=p.r0_hz,
                                 epsilon=np.array([p.epsilon]))
        y_tvb = model.evaluate().data[:, 0, :, 0]   # state k: after inputs z[1..k]
        up = 20                                      # TVB holds z[k] over ((k-1) ms, k ms]
        y = balloon_windkessel(np.repeat(z[1:], up, axis=0), 1.0 / up, p)[up - 1::up]
        np.testing.assert_allclose(y, y_tvb[1:], atol=1e-5 * np.abs(y).max())
