"""Spikes → population rate.

For each window ``(t0, t1]`` split into bins of ``bin_ms``, the rate of population ``p`` in
bin ``n`` is ``count_p,n / (N_p · bin_ms / 1000)`` Hz.  Bin ``n`` holds the spikes with
``t0 + n·bin < t ≤ t0 + (n+1)·bin`` (:func:`spike_bins`: a spike at a bin edge belongs to the
bin that *ends* there), and sample ``n`` is stamped at the bin's end, ``t0 + (n+1)·bin``.
:func:`spike_bins` / :func:`count_spikes` are cosim's one binning rule: the spiking part's
bus counts, this converter and :class:`cosim.monitors.SpikeRateMonitor` all use it.

Optional causal smoothing, integrated exactly for input that is constant within a bin
(the binned rate), with ``a = exp(−bin/τ)``:

``exponential``  kernel ``h(t) = e^{−t/τ}/τ`` (unit area)::

    y_{n+1} = a·y_n + (1 − a)·x_n

``alpha``  kernel ``h(t) = t·e^{−t/τ}/τ²`` (unit area), two cascaded first-order stages::

    z_{n+1} = a·z_n + (1 − a)·x_n
    y_{n+1} = x_n + a·(y_n − x_n) + a·(bin/τ)·(z_n − x_n)

Both have unit DC gain (a constant rate passes unchanged) and never look ahead: ``y_{n+1}``
uses spikes up to ``t0 + (n+1)·bin`` only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

KERNELS = ("none", "exponential", "alpha")


#: Relative tolerance of a bin edge in :func:`spike_bins`.
EDGE_RTOL = 1e-9


def spike_bins(times_ms, t0_ms: float, bin_ms: float) -> np.ndarray:
    """Bin index of each spike: ``b`` such that ``t0 + b·bin < t ≤ t0 + (b+1)·bin``.

    Why right-closed bins: an engine with step ``dt`` detects a spike during step ``n``
    (from ``n·dt`` to ``(n+1)·dt``) and stamps it at the step's end, ``(n+1)·dt``.  So a
    window ``(t0, t1]`` produces exactly the spikes stamped in ``(t0, t1]``, and a bin of
    whole steps holds the spikes of its own steps: a spike at ``t0 + bin`` is in bin 0, one
    at ``t0`` was produced by the previous window (index −1).  For grid stamps this is the
    integer rule ``b = (n − n0) // (bin/dt)`` with ``n0 = t0/dt``.

    Robust for grid-stamped times: ``q = (t − t0)/bin`` is snapped to its nearest integer
    ``k`` when within ``EDGE_RTOL · max(1, |k|)`` of it, before ``b = ceil(q) − 1`` — so
    rounding in ``t`` or ``t0`` (e.g. ``0.1 + 0.2``) never moves a spike on an edge into
    the next bin.  A grid time off an edge is at least ``dt/bin`` bins away from it, far
    beyond the tolerance, so the snap never moves a real spike.

    Parameters
    ----------
    times_ms : array of float
        Spike times (ms), any order.
    t0_ms, bin_ms : float
        Start of bin 0 (exclusive) and the bin width (ms, > 0).

    Returns
    -------
    int64 array of ``times_ms``'s shape; indices outside ``[0, n_bins)`` are spikes
    outside the window, for the caller to drop or keep for later.
    """
    q = (np.asarray(times_ms, dtype=np.float64) - float(t0_ms)) / float(bin_ms)
    k = np.rint(q)
    q = np.where(np.abs(q - k) <= EDGE_RTOL * np.maximum(1.0, np.abs(k)), k, q)
    return np.ceil(q).astype(np.int64) - 1


def count_spikes(gids, times_ms, t0_ms: float, bin_ms: float, n_bins: int,
                 pop_of_gid: np.ndarray, n_pops: int) -> tuple[np.ndarray, int]:
    """Spike counts per bin and population, by the rule of :func:`spike_bins`.

    Parameters
    ----------
    gids, times_ms : arrays of int / float, same length
        The spikes: cell id and time (ms).
    t0_ms, bin_ms, n_bins
        Bins ``(t0 + b·bin, t0 + (b+1)·bin]``, ``b = 0 … n_bins − 1``.
    pop_of_gid : int array
        Population index (``0 … n_pops − 1``) of each gid; −1 (or a gid past its end, or
        negative) for cells that are not counted.
    n_pops : int
        Number of populations (columns).

    Returns
    -------
    ``(counts, dropped)``: ``counts`` int64 ``(n_bins, n_pops)``; ``dropped`` the number of
    spikes outside ``(t0, t0 + n_bins·bin]`` or of uncounted cells.
    """
    gids = np.asarray(gids, dtype=np.int64).ravel()
    b = spike_bins(np.ravel(times_ms), t0_ms, bin_ms)
    pop_of_gid = np.asarray(pop_of_gid, dtype=np.int64)
    known = (gids >= 0) & (gids < pop_of_gid.size)
    p = np.full(gids.size, -1, dtype=np.int64)
    p[known] = pop_of_gid[gids[known]]
    keep = (b >= 0) & (b < n_bins) & (p >= 0)
    counts = np.zeros((int(n_bins), int(n_pops)), dtype=np.int64)
    np.add.at(counts, (b[keep], p[keep]), 1)
    return counts, int(gids.size - keep.sum())


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
        """Rates ``(n_bins, n_populations)`` in Hz for the spikes of window ``(t0, t1]``
        (bins by :func:`spike_bins`; other spikes are counted in :attr:`dropped`)."""
        n_bins = self.n_bins(t0_ms, t1_ms)
        counts, dropped = count_spikes(gids, times_ms, t0_ms, self.bin_ms, n_bins,
                                       self._pop_of_gid, len(self.names))
        self.dropped += dropped
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
