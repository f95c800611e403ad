"""Welch spectra and peak frequencies; the Jansen–Rit alpha rhythm."""

import numpy as np
import pytest

from cosim.analysis.spectra import band_power, peak_frequencies, power_spectra


def test_sinusoid_peak_and_parseval():
    period_ms = 1.0
    t = np.arange(20000) * period_ms / 1000.0
    rng = np.random.default_rng(0)
    f0 = np.array([7.3, 10.0, 23.65])
    x = np.sin(2 * np.pi * f0[None, :] * t[:, None]) + 0.1 * rng.standard_normal((t.size, 3))
    freq, psd = power_spectra(x, period_ms, segment_ms=2000.0)
    assert freq[1] - freq[0] == pytest.approx(0.5)
    peaks = peak_frequencies(freq, psd)
    np.testing.assert_allclose(peaks, f0, atol=0.05)          # a tenth of a bin
    # power of a unit sinusoid is 1/2; noise variance 0.01
    np.testing.assert_allclose(band_power(freq, psd, 0, 500), 0.51, rtol=0.03)


def test_peak_band_limits():
    t = np.arange(8000) / 1000.0
    x = np.sin(2 * np.pi * 3.0 * t) + 0.5 * np.sin(2 * np.pi * 40.0 * t)
    freq, psd = power_spectra(x, 1.0)
    assert peak_frequencies(freq, psd)[0] == pytest.approx(3.0, abs=0.05)
    assert peak_frequencies(freq, psd, fmin=20.0)[0] == pytest.approx(40.0, abs=0.05)


def jansen_rit(duration_s=12.0, dt_s=1e-3, n_nodes=4, seed=0):
    """Jansen & Rit (1995) column with their standard parameters and input p ~ U(120, 320)
    /s drawn every step; classical RK4 (input held over a step).  Returns y1 − y2 (mV)."""
    A, B, a, b = 3.25, 22.0, 100.0, 50.0
    C = 135.0
    C1, C2, C3, C4 = C, 0.8 * C, 0.25 * C, 0.25 * C
    e0, v0, r = 2.5, 6.0, 0.56

    def S(v):
        return 2 * e0 / (1 + np.exp(r * (v0 - v)))

    def rhs(y, p):
        y0, y1, y2, y3, y4, y5 = y
        return np.array([y3, y4, y5,
                         A * a * S(y1 - y2) - 2 * a * y3 - a * a * y0,
                         A * a * (p + C2 * S(C1 * y0)) - 2 * a * y4 - a * a * y1,
                         B * b * C4 * S(C3 * y0) - 2 * b * y5 - b * b * y2])

    rng = np.random.default_rng(seed)
    n = int(round(duration_s / dt_s))
    y = np.zeros((6, n_nodes))
    out = np.empty((n, n_nodes))
    for k in range(n):
        p = rng.uniform(120.0, 320.0, n_nodes)
        k1 = rhs(y, p)
        k2 = rhs(y + 0.5 * dt_s * k1, p)
        k3 = rhs(y + 0.5 * dt_s * k2, p)
        k4 = rhs(y + dt_s * k3, p)
        y = y + dt_s / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out[k] = y[1] - y[2]
    return out


def test_jansen_rit_alpha_peak_near_10_hz():
    eeg = jansen_rit(duration_s=8.0)[2000:]          # drop the first 2 s
    freq, psd = power_spectra(eeg, 1.0, segment_ms=2000.0)
    peaks = peak_frequencies(freq, psd, fmin=2.0)
    assert np.all((peaks > 9.5) & (peaks < 12.0)), peaks   # JR 1995: ≈ 10.8 Hz
    alpha = band_power(freq, psd, 8.0, 12.0)
    assert np.all(alpha > 0.8 * band_power(freq, psd, 2.0, 40.0))


def test_peak_is_inside_the_band_never_the_flank_of_a_peak_below_it():
    """Issue 12: ``--fmin 0.5`` printed a peak at 0.21 Hz.  A strong 0.2 Hz wave plus a weak
    7 Hz one, 2 s segments (0.5 Hz bins): the 0.5 Hz bin is the flank of the 0.2 Hz peak;
    the peak in [0.5, ∞) is the 7 Hz one (analytic)."""
    t = np.arange(60000) / 1000.0
    x = 10 * np.sin(2 * np.pi * 0.2 * t) + 0.05 * np.sin(2 * np.pi * 7.0 * t)
    freq, psd = power_spectra(x, 1.0, segment_ms=2000.0)
    assert psd[1, 0] > psd[0, 0] and psd[1, 0] > psd[2, 0]    # leakage: a local max at 0.5 Hz
    assert peak_frequencies(freq, psd, fmin=0.5)[0] == pytest.approx(7.0, abs=0.05)
    # no peak at all in the band: NaN, not the band edge
    y = np.cumsum(np.random.default_rng(1).standard_normal(60000))   # 1/f² (random walk)
    f2, p2 = power_spectra(y, 1.0, segment_ms=2000.0)
    got = peak_frequencies(f2, p2, fmin=0.5, fmax=2.0)[0]
    assert np.isnan(got) or 0.5 <= got <= 2.0
    # random spectra: every reported peak lies inside [fmin, fmax]
    rng = np.random.default_rng(2)
    for _ in range(200):
        p = rng.random((41, 3)) ** 4
        f = np.linspace(0, 20, 41)
        lo, hi = sorted(rng.uniform(0, 20, 2))
        pk = peak_frequencies(f, p, fmin=lo, fmax=hi)
        assert np.all(np.isnan(pk) | ((pk >= lo) & (pk <= hi)))
