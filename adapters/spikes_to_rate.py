"""Spikes → population rate.

For each window ``[t0, t1)`` split into bins of ``bin_ms``, the rate of population ``p`` in
bin ``n`` is ``count_p,n / (N_p · bin_ms / 1000)`` Hz.  A spike exactly at a bin edge belongs
to the bin that starts there.  Sample ``n`` is stamped at the bin's end, ``t0 + (n+1)·bin``.

Optional causal smoothing, integrated exactly for input that is constant within a bin
(the binned rate), with ``a = exp(−bin/τ)``:

``exponential``  kernel ``h(t) = e^{−t/τ}/τ`` (unit area)::

    y_{n+1} = a·y_n + (1 − a)·x_n

``alpha``  kernel ``h(t) = t·e^{−t/τ}/τ²`` (unit area), two cascaded first-order stages::

    z_{n+1} = a·z_n + (1 − a)·x_n
    y_{n+1} = x_n + a·(y_n − x_n) + a·(bin/τ)·(z_n − x_n)

Both have unit DC gain (a constant rate passes unchanged) and never look ahead: ``y_{n+1}``
uses spikes before ``t0 + (n+1)·bin`` only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

KERNELS = ("none", "exponential", "alpha")


@njit(cache=True)
def _bin_counts(gids, times, t0, bin_ms, n_bins, pop_of_gid, n_pops, out):
    """Accumulate spike counts into ``out`` (n_bins, n_pops); returns the number dropped."""
    out[:, :] = 0.0
    dropped = 0
    for k in range(gids.size):
        g = gids[k]
        b = int(math.floor((times[k] - t0) / bin_ms))
        if b < 0 or b >= n_bins or g < 0 or g >= pop_of_gid.size or pop_of_gid[g] < 0:
            dropped += 1
            continue
        out[b, pop_of_gid[g]] += 1.0
    return dropped


@njit(cache=True)
def _filter(x, kind, a, h_over_tau, y, z):
    """Filter rates ``x`` (n_bins, n_pops) in place with states y, z (n_pops,)."""
    for n in range(x.shape[0]):
        for p in range(x.shape[1]):
            xn = x[n, p]
            if kind == 1:
                y[p] = a * y[p] + (1.0 - a) * xn
            elif kind == 2:
                y_new = xn + a * (y[p] - xn) + a * h_over_tau * (z[p] - xn)
                z[p] = a * z[p] + (1.0 - a) * xn
                y[p] = y_new
            else:
                y[p] = xn
            x[n, p] = y[p]


class SpikesToRate:
    """Population rates (Hz) per bin from spikes, with optional causal smoothing.

    Parameters
    ----------
    populations : dict name → array of gids
        Cells of each population (gid = global cell id).
    bin_ms : float
        Bin width (ms); a window length must be a whole multiple of it.
    kernel : "none" | "exponential" | "alpha"
    tau_ms : float
        Kernel time constant (ms), for the smoothing kernels.
    """

    def __init__(self, populations: dict[str, np.ndarray], bin_ms: float, kernel: str = "none",
                 tau_ms: float = 5.0):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if not bin_ms > 0:
            raise ValueError("bin_ms must be > 0")
        if kernel != "none" and not tau_ms > 0:
            raise ValueError("tau_ms must be > 0")
        self.names = tuple(populations)
        self.bin_ms = float(bin_ms)
        self.kernel = kernel
        self.tau_ms = float(tau_ms)
        gids = [np.asarray(g, dtype=np.int64) for g in populations.values()]
        n_max = max((int(g.max()) + 1 for g in gids if g.size), default=0)
        self._pop_of_gid = np.full(n_max, -1, dtype=np.int64)
        for p, g in enumerate(gids):
            if (self._pop_of_gid[g] >= 0).any():
                raise ValueError("a gid belongs to two populations")
            self._pop_of_gid[g] = p
        self.sizes = np.array([g.size for g in gids], dtype=np.float64)
        if (self.sizes == 0).any():
            raise ValueError("empty population")
        self._y = np.zeros(len(gids))
        self._z = np.zeros(len(gids))
        self._kind = KERNELS.index(kernel)
        self._a = math.exp(-self.bin_ms / self.tau_ms) if kernel != "none" else 0.0
        self.dropped = 0

    def n_bins(self, t0_ms: float, t1_ms: float) -> int:
        n = (t1_ms - t0_ms) / self.bin_ms
        if abs(n - round(n)) > 1e-9 * max(1.0, n):
            raise ValueError(f"window {t1_ms - t0_ms} ms is not a whole number of {self.bin_ms} ms bins")
        return int(round(n))

    def convert(self, t0_ms: float, t1_ms: float, gids: np.ndarray, times_ms: np.ndarray) -> np.ndarray:
        """Rates ``(n_bins, n_populations)`` in Hz for the spikes of window ``[t0, t1)``."""
        n_bins = self.n_bins(t0_ms, t1_ms)
        counts = np.empty((n_bins, len(self.names)))
        self.dropped += _bin_counts(np.asarray(gids, dtype=np.int64),
                                    np.asarray(times_ms, dtype=np.float64), float(t0_ms),
                                    self.bin_ms, n_bins, self._pop_of_gid, len(self.names), counts)
        return self.from_counts(counts)

    def from_counts(self, counts: np.ndarray) -> np.ndarray:
        """Rates (Hz) from spike counts ``(n_bins, n_populations)`` already binned (e.g.
        summed over the ranks of a region: integer sums are exact), filtered in time order."""
        out = np.array(counts, dtype=np.float64, copy=True).reshape(-1, len(self.names))
        out /= self.sizes[None, :] * (self.bin_ms / 1000.0)
        _filter(out, self._kind, self._a, self.bin_ms / self.tau_ms, self._y, self._z)
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"y": self._y.copy(), "z": self._z.copy()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self._y[:] = state["y"]
        self._z[:] = state["z"]
