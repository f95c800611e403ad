"""Power spectra of region time series and their peak frequencies.

Welch's method (scipy.signal.welch): Hann-windowed segments of ``segment_ms`` with 50 %
overlap, mean removed per segment, one-sided power spectral density in
``unit²/Hz``.  The frequency resolution is ``1000 / segment_ms`` Hz; the peak frequency
is the largest local maximum inside the requested band, refined by fitting a parabola
through its bin and the two neighbours (in log power), which locates a sinusoid's
frequency to a small fraction of a bin; it is always inside the band.
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
    """Frequency (Hz) of the largest spectral *peak* in ``[fmin, fmax]`` for each region
    (``psd (freq, region)``); NaN where the band holds no peak.

    A peak is a local maximum of the PSD (larger than the bin below, not smaller than the
    bin above; the 0 Hz and Nyquist bins are never peaks), its frequency refined by a
    parabola through the bin and its two neighbours (in log power, within ±df/2).  A peak
    whose refined frequency lies outside the band is a peak of the neighbouring band
    leaking into the edge bin and is skipped: a strong 0.2 Hz component with
    ``fmin = 0.5`` gives the band's own largest peak (or NaN), never 0.21 or 0.48 Hz.
    """
    freq = np.asarray(freq, dtype=np.float64)
    psd = np.asarray(psd, dtype=np.float64)
    if psd.ndim == 1:
        psd = psd[:, None]
    hi = np.inf if fmax is None else fmax
    out = np.full(psd.shape[1], np.nan)
    if freq.size < 3:
        return out
    inner = np.arange(1, freq.size - 1)
    inner = inner[(freq[inner] >= fmin) & (freq[inner] <= hi)]
    if inner.size == 0:
        return out
    df = freq[1] - freq[0]
    for r in range(psd.shape[1]):
        p = psd[:, r]
        if not np.isfinite(p).all():
            continue
        peaks = inner[(p[inner] > p[inner - 1]) & (p[inner] >= p[inner + 1]) & (p[inner] > 0)]
        for j in peaks[np.argsort(-p[peaks], kind="stable")]:       # largest first
            f = _refine(freq, p, j, df)
            if fmin <= f <= hi:
                out[r] = f
                break
    return out


def _refine(freq: np.ndarray, p: np.ndarray, j: int, df: float) -> float:
    """Vertex of the parabola through bins ``j − 1, j, j + 1`` in log power (within ±df/2)."""
    f = freq[j]
    if min(p[j - 1], p[j + 1]) > 0:
        a, b, c = np.log(p[j - 1:j + 2])
        den = a - 2 * b + c
        if den < 0:
            f += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) * df
    return float(f)


def band_power(freq: np.ndarray, psd: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Power in ``[lo_hz, hi_hz]`` (trapezoidal integral of the PSD) per region."""
    band = (freq >= lo_hz) & (freq <= hi_hz)
    return np.trapezoid(psd[band], freq[band], axis=0)
