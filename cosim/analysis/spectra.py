"""Power spectra of region time series and their peak frequencies.

Welch's method (scipy.signal.welch): Hann-windowed segments of ``segment_ms`` with 50 %
overlap, mean removed per segment, one-sided power spectral density in
``unit²/Hz``.  The frequency resolution is ``1000 / segment_ms`` Hz; the peak frequency
is refined by fitting a parabola through the largest bin and its two neighbours (in
log power), which locates a sinusoid's frequency to a small fraction of a bin.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def power_spectra(ts: np.ndarray, period_ms: float, *, segment_ms: float = 2000.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD of ``ts (time, region)`` sampled every ``period_ms``.

    Returns ``(freq_hz (freq,), psd (freq, region))``.  Segments are shortened to the
    series length when it is shorter than ``segment_ms``.
    """
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim == 1:
        ts = ts[:, None]
    if ts.shape[0] < 4:
        raise ValueError(f"need at least 4 samples for a spectrum, got {ts.shape[0]}")
    fs = 1000.0 / period_ms
    nperseg = int(min(ts.shape[0], max(4, round(segment_ms / period_ms))))
    freq, psd = signal.welch(ts, fs=fs, window="hann", nperseg=nperseg, noverlap=nperseg // 2,
                             detrend="constant", scaling="density", axis=0)
    return freq, psd


def peak_frequencies(freq: np.ndarray, psd: np.ndarray, *, fmin: float = 0.5,
                     fmax: float | None = None) -> np.ndarray:
    """Frequency (Hz) of the largest PSD value in ``[fmin, fmax]`` for each region
    (``psd (freq, region)``), refined by parabolic interpolation; NaN where the band has
    no power."""
    freq = np.asarray(freq, dtype=np.float64)
    psd = np.asarray(psd, dtype=np.float64)
    if psd.ndim == 1:
        psd = psd[:, None]
    band = (freq >= fmin) & (freq <= (np.inf if fmax is None else fmax))
    idx = np.flatnonzero(band)
    out = np.full(psd.shape[1], np.nan)
    if idx.size == 0:
        return out
    df = freq[1] - freq[0]
    for r in range(psd.shape[1]):
        p = psd[idx, r]
        if not np.isfinite(p).all() or p.max() <= 0:
            continue
        j = idx[int(np.argmax(p))]
        f = freq[j]
        if 0 < j < len(freq) - 1 and min(psd[j - 1, r], psd[j + 1, r]) > 0:
            a, b, c = np.log(psd[j - 1:j + 2, r])
            den = a - 2 * b + c
            if den < 0:
                f += 0.5 * df * (a - c) / den
        out[r] = f
    return out


def band_power(freq: np.ndarray, psd: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Power in ``[lo_hz, hi_hz]`` (trapezoidal integral of the PSD) per region."""
    band = (freq >= lo_hz) & (freq <= hi_hz)
    return np.trapezoid(psd[band], freq[band], axis=0)
