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
    q = np.asarray(times_ms, dtype=np.float64)
    return _spike_bins(q.ravel(), float(t0_ms), float(bin_ms)).reshape(q.shape)


@njit(cache=True)
def bin_of(t, t0_ms, bin_ms):
    """The bin index of one spike time (the rule of :func:`spike_bins`; compiled)."""
    q = (t - t0_ms) / bin_ms
    k = np.rint(q)
    if abs(q - k) <= EDGE_RTOL * max(1.0, abs(k)):
        q = k
    return np.int64(math.ceil(q)) - 1


@njit(cache=True)
def _spike_bins(times, t0_ms, bin_ms):
    out = np.empty(times.size, dtype=np.int64)
    for i in range(times.size):
        out[i] = bin_of(times[i], t0_ms, bin_ms)
    return out


@njit(cache=True)
def _count_spikes(gids, times, t0_ms, bin_ms, pop_of_gid, counts):
    """Add the spikes to ``counts`` (n_bins, n_pops); returns how many were counted."""
    n_bins = counts.shape[0]
    kept = 0
    for i in range(gids.size):
        g = gids[i]
        if g < 0 or g >= pop_of_gid.size:
            continue
        p = pop_of_gid[g]
        if p < 0:
            continue
        if p >= counts.shape[1]:
            raise ValueError("a population index is past the counts' columns")
        b = bin_of(times[i], t0_ms, bin_ms)
        if 0 <= b < n_bins:
            counts[b, p] += 1
            kept += 1
    return kept


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
    gids = np.ascontiguousarray(gids, dtype=np.int64).ravel()
    times = np.ascontiguousarray(times_ms, dtype=np.float64).ravel()
    if gids.size != times.size:
        raise ValueError(f"{gids.size} spike ids but {times.size} spike times")
    counts = np.zeros((int(n_bins), int(n_pops)), dtype=np.int64)
    kept = _count_spikes(gids, times, float(t0_ms), float(bin_ms),
                         np.ascontiguousarray(pop_of_gid, dtype=np.int64), counts)
    return counts, int(gids.size - kept)


@njit(cache=True)
def bin_group(pending, ids, times, first_id, stop_id, t0_ms, bin_ms, emitted, counts):
    """One group's spikes into bins, for a monitor that emits bins as windows end.

    ``pending``: the group's times kept from before; ``ids``/``times``: this window's
    spikes, of which those with ``first_id ≤ id < stop_id`` (``stop_id < 0``: no upper
    bound) are the group's.  Bin ``emitted + j`` (by :func:`bin_of`) adds to ``counts[j]``
    for ``0 ≤ j < counts.size``; earlier spikes are dropped; later ones are returned, in
    the order pending first, then this window's (what is kept for the next call)."""
    m = counts.size
    later = np.empty(pending.size + times.size)
    n = 0
    for i in range(pending.size + times.size):
        if i < pending.size:
            t = pending[i]
        else:
            j = i - pending.size
            if ids[j] < first_id or (stop_id >= 0 and ids[j] >= stop_id):
                continue
            t = times[j]
        b = bin_of(t, t0_ms, bin_ms) - emitted
        if b >= m:
            later[n] = t
            n += 1
        elif b >= 0:
            counts[b] += 1
    return later[:n].copy()


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
