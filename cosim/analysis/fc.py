"""Functional connectivity: static FC, sliding-window FC, FCD, agreement with data.

All time series are ``(time, region)`` arrays.  Definitions (as in the whole-brain
FC-fitting literature, e.g. Deco et al. 2013; Hansen et al. 2015 for FCD):

- **FC** — Pearson correlation between the regions' signals over the whole series;
- **sliding-window FC** — the FC of windows of ``window`` samples, shifted by ``step``;
- **FCD** — the matrix of Pearson correlations between the upper triangles (diagonal
  excluded) of every pair of windowed FCs: ``FCD[a, b] = corr(triu(FC_a), triu(FC_b))``;
  symmetric with unit diagonal;
- **agreement** of a simulated with an empirical FC — Pearson correlation of their upper
  triangles; FCD distributions are compared by the Kolmogorov–Smirnov distance.

A region with zero variance has no defined correlation: its rows and columns are NaN.
"""

from __future__ import annotations

import numpy as np


def _standardise(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.mean(axis=axis, keepdims=True)
    norm = np.sqrt((x * x).sum(axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), np.nan)


def functional_connectivity(ts: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix ``(region, region)`` of ``ts (time, region)``."""
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim != 2 or ts.shape[0] < 2:
        raise ValueError(f"need a (time, region) series with >= 2 samples, got shape {ts.shape}")
    z = _standardise(ts, axis=0)
    fc = z.T @ z
    np.clip(fc, -1.0, 1.0, out=fc)
    ok = ~np.isnan(np.diag(fc))
    fc[np.diag_indices_from(fc)] = np.where(ok, 1.0, np.nan)
    return fc


def upper_triangle(m: np.ndarray, k: int = 1) -> np.ndarray:
    """Entries above the ``k``-th diagonal of square ``m`` (``k=1``: diagonal excluded)."""
    m = np.asarray(m)
    return m[np.triu_indices(m.shape[0], k)]


def matrix_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the upper triangles (diagonal excluded) of two square
    matrices of the same size, ignoring entries that are NaN in either."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need two square matrices of the same size, got {a.shape} and {b.shape}")
    u, v = upper_triangle(a), upper_triangle(b)
    ok = np.isfinite(u) & np.isfinite(v)
    if ok.sum() < 2:
        return float("nan")
    u, v = u[ok] - u[ok].mean(), v[ok] - v[ok].mean()
    den = np.sqrt((u * u).sum() * (v * v).sum())
    return float((u * v).sum() / den) if den > 0 else float("nan")


def fc_agreement(fc_sim: np.ndarray, fc_emp: np.ndarray) -> float:
    """Agreement of a simulated with an empirical FC: :func:`matrix_correlation`."""
    return matrix_correlation(fc_sim, fc_emp)


def window_starts(n_time: int, window: int, step: int) -> np.ndarray:
    """Start indices of the windows of ``window`` samples every ``step`` samples."""
    if window < 2 or step < 1:
        raise ValueError(f"window must be >= 2 and step >= 1 samples, got {window}, {step}")
    if window > n_time:
        raise ValueError(f"window of {window} samples is longer than the series ({n_time})")
    return np.arange(0, n_time - window + 1, step)


def sliding_window_fc(ts: np.ndarray, window: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """FC of each window: ``(fcs (window, region, region), starts (window,))``; window
    ``w`` covers samples ``starts[w] … starts[w] + window − 1``."""
    ts = np.asarray(ts, dtype=np.float64)
    starts = window_starts(ts.shape[0], window, step)
    fcs = np.stack([functional_connectivity(ts[s:s + window]) for s in starts])
    return fcs, starts


def fcd_matrix(ts: np.ndarray, window: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """FCD ``(window, window)``: correlation between the upper triangles of the windowed
    FCs (see module doc), and the window start indices."""
    fcs, starts = sliding_window_fc(ts, window, step)
    iu = np.triu_indices(fcs.shape[1], 1)
    vecs = fcs[:, iu[0], iu[1]]                       # (window, pair)
    vecs = vecs[:, np.isfinite(vecs).all(axis=0)]
    z = _standardise(vecs, axis=1)
    fcd = z @ z.T
    np.clip(fcd, -1.0, 1.0, out=fcd)
    ok = ~np.isnan(np.diag(fcd))
    fcd[np.diag_indices_from(fcd)] = np.where(ok, 1.0, np.nan)
    return fcd, starts


def fcd_values(fcd: np.ndarray, min_lag: int = 1) -> np.ndarray:
    """FCD entries with window lag ≥ ``min_lag`` (upper triangle): the distribution that is
    compared between simulation and data.  Use ``min_lag ≥ window/step`` to exclude
    overlapping windows."""
    return upper_triangle(fcd, k=min_lag)


def fcd_ks_distance(fcd_a: np.ndarray, fcd_b: np.ndarray, min_lag: int = 1) -> float:
    """Kolmogorov–Smirnov distance between two FCD value distributions."""
    a, b = fcd_values(fcd_a, min_lag), fcd_values(fcd_b, min_lag)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    from scipy import stats

    return float(stats.ks_2samp(a, b).statistic)
