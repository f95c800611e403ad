"""Rate → Poisson spike trains on N synapses.

The rate ``r(t)`` (Hz) is piecewise constant over bins of ``bin_ms``.  Every synapse gets an
inhomogeneous Poisson process with that intensity, generated **exactly** (no per-step
Bernoulli approximation) by time rescaling: with ``Λ(t) = ∫ r dt`` the event times are where
``Λ`` crosses the partial sums of i.i.d. Exp(1) variates.  Each synapse carries one number
between windows, the intensity still needed before its next event, so a run cut into
windows equals a run in one go.

Independent trains (``correlation = 0``): synapse (input line) ``s`` draws its k-th Exp(1)
from the counter-based stream ``philox4x64(counter=(k, s, 0, 0), key)`` with ``key`` =
:func:`cosim.rng.stream_key` ``(seed, "rate_to_poisson", engine, adapter)``; the result is a
function of the synapse id only, not of which rank generates it.

Correlated trains (``0 < c ≤ 1``), the multiple-interaction process: a mother train of rate
``r/c`` is generated from its own stream (domain ``"rate_to_poisson.mother"``, counter
``(k, 0, 0, 0)``); synapse ``s`` copies mother event ``m`` when ``U(m, s) < c`` (domain
``"rate_to_poisson.copy"``, counter ``(m, s, 0, 0)``).  The domains are listed in
:mod:`cosim.rng`.  Each synapse is then Poisson with rate ``r``, and the spike-count
correlation of any two synapses is ``c``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cosim.philox import exponential, uniform4
from cosim.rng import Streams


@njit(cache=True)
def _cumulative(rate_hz, bin_ms, scale, out):
    """``out[n] = Λ`` at the n-th bin edge (dimensionless), ``out[0] = 0``."""
    out[0] = 0.0
    for n in range(rate_hz.size):
        r = rate_hz[n] * scale
        if r < 0.0:
            r = 0.0
        out[n + 1] = out[n] + r * bin_ms / 1000.0


@njit(cache=True)
def _time_at(cum, target, t0, bin_ms):
    """Time where the piecewise-linear Λ reaches ``target`` (binary search over edges)."""
    lo, hi = 0, cum.size - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cum[mid] < target:
            lo = mid
        else:
            hi = mid
    width = cum[hi] - cum[lo]
    frac = (target - cum[lo]) / width if width > 0.0 else 0.0
    return t0 + (lo + frac) * bin_ms


@njit(cache=True)
def _independent(cum, t0, bin_ms, syn_ids, residual, counter, k0, k1, out_syn, out_t, i0, n0):
    """Events of synapses ``i0, i0 + 1, …`` in the window, written from ``out[n0]`` on;
    returns ``(events written in all, the synapse to go on from)`` — ``syn_ids.size`` when
    every synapse is done, else the first whose events did not fit (its stream left as it
    was: the caller grows the buffers and goes on from it, so nothing is drawn twice)."""
    total = cum[cum.size - 1]
    n = n0
    for i in range(i0, syn_ids.size):
        need, drawn, start = residual[i], counter[i], n
        used = 0.0
        while need <= total - used:
            if n == out_syn.size:                 # no room: this synapse again, later
                counter[i] = drawn                # (residual[i] is written only at its end)
                return start, i
            used += need
            out_syn[n] = syn_ids[i]
            out_t[n] = _time_at(cum, used, t0, bin_ms)
            n += 1
            need = exponential(counter[i], syn_ids[i], k0, k1)
            counter[i] += 1
        residual[i] = need - (total - used)
    return n, syn_ids.size


@njit(cache=True)
def _mother_events(cum, t0, bin_ms, state, k0, k1, out_t):
    """Mother-train events (state = [residual, counter]); returns their count."""
    total = cum[cum.size - 1]
    need = state[0]
    used = 0.0
    n = 0
    while need <= total - used:
        used += need
        if n < out_t.size:
            out_t[n] = _time_at(cum, used, t0, bin_ms)
        n += 1
        need = exponential(np.uint64(state[1]), np.uint64(0), k0, k1)
        state[1] += 1.0
    state[0] = need - (total - used)
    return n


@njit(cache=True)
def _copy_events(mother_t, mother_index0, c, syn_ids, k0, k1, out_syn, out_t):
    n = 0
    for m in range(mother_t.size):
        for i in range(syn_ids.size):
            u, _, _, _ = uniform4(mother_index0 + m, syn_ids[i], k0, k1)
            if u < c:
                out_syn[n] = syn_ids[i]
                out_t[n] = mother_t[m]
                n += 1
    return n


@njit(cache=True)
def _by_time(out_syn, out_t, n):
    """The first ``n`` events sorted by time, ties in the order they were made (a stable
    sort): ``(synapse ids as int64, times)``."""
    order = np.argsort(out_t[:n], kind="mergesort")
    syn = np.empty(n, dtype=np.int64)
    t = np.empty(n)
    for j in range(n):
        syn[j] = np.int64(out_syn[order[j]])
        t[j] = out_t[order[j]]
    return syn, t


@njit(cache=True)
def _first_residuals(syn_ids, k0, k1, out):
    """The first Exp(1) variate (counter 0) of every synapse's stream."""
    for i in range(syn_ids.size):
        out[i] = exponential(np.uint64(0), syn_ids[i], k0, k1)


class RateToPoisson:
    """Poisson spike trains for the synapses (input lines) ``syn_ids`` of one adapter.

    Parameters
    ----------
    syn_ids : array of int
        Global ids of the synapses this instance drives (any subset: results per synapse do
        not depend on which other synapses are in the same instance).
    seed : int or :class:`cosim.rng.Streams`
        The run's master seed, or its streams object (``BuildContext.rng``).
    engine, adapter : str
        Names of the spiking engine and of the ``rate_to_poisson`` adapter; with the seed
        they key the random streams (domains ``rate_to_poisson[.mother|.copy]``).
    correlation : float in [0, 1]
        Fraction of shared spikes (0 = independent trains).
    key : array of 2 uint64, optional
        Philox key of independent trains from another domain (a stimulus's Poisson input,
        ``stimulus.poisson``) instead of ``rate_to_poisson``.
    """

    def __init__(self, syn_ids, seed: int | Streams, engine: str, adapter: str,
                 correlation: float = 0.0, key: np.ndarray | None = None):
        self.syn_ids = np.ascontiguousarray(syn_ids, dtype=np.uint64)
        if not 0.0 <= correlation <= 1.0:
            raise ValueError("correlation must be within [0, 1]")
        if key is not None and correlation:
            raise ValueError("a stream key of its own is for independent trains only")
        self.correlation = float(correlation)
        rng = Streams.of(seed)
        self._key = rng.key("rate_to_poisson", engine, adapter) if key is None else key
        self._key_mother = rng.key("rate_to_poisson.mother", engine, adapter)
        self._key_copy = rng.key("rate_to_poisson.copy", engine, adapter)
        n = self.syn_ids.size
        #: ids ascending: the events are made in (synapse, time) order by both methods
        #: (correlated: by mother event, then synapse), so a stable sort by time puts ties
        #: by synapse id
        self._ascending = bool(np.all(self.syn_ids[1:] > self.syn_ids[:-1]))
        self._counter = np.ones(n, dtype=np.uint64)
        self._residual = np.empty(n)
        _first_residuals(self.syn_ids, self._key[0], self._key[1], self._residual)
        self._mother = np.array([exponential(np.uint64(0), np.uint64(0), self._key_mother[0],
                                             self._key_mother[1]), 1.0])

    def generate(self, t0_ms: float, rate_hz: np.ndarray, bin_ms: float) -> tuple[np.ndarray, np.ndarray]:
        """Events for the window starting at ``t0_ms`` with per-bin rates ``rate_hz`` (Hz;
        a negative rate counts as 0).

        Returns ``(syn_ids, times_ms)`` sorted by time (ties by synapse id).
        """
        rate = np.ascontiguousarray(rate_hz, dtype=np.float64)
        cum = np.empty(rate.size + 1)
        c = self.correlation
        if c == 0.0:
            _cumulative(rate, bin_ms, 1.0, cum)
            mean = float(cum[-1]) * self.syn_ids.size
            cap = int(mean + 10.0 * math.sqrt(mean + 1.0) + 16)
            out_syn = np.empty(cap, dtype=np.uint64)
            out_t = np.empty(cap)
            n, i = 0, 0
            while True:
                n, i = _independent(cum, float(t0_ms), float(bin_ms), self.syn_ids,
                                    self._residual, self._counter, self._key[0], self._key[1],
                                    out_syn, out_t, i, n)
                if i == self.syn_ids.size:
                    break
                # rare: the buffers too small — twice the room, on from synapse i
                out_syn = np.concatenate((out_syn, np.empty(out_syn.size, dtype=np.uint64)))
                out_t = np.concatenate((out_t, np.empty(out_t.size)))
        else:
            _cumulative(rate, bin_ms, 1.0 / c, cum)
            cap_m = int(cum[-1] + 10 * np.sqrt(cum[-1] + 1) + 16)
            while True:
                snapshot = self._mother.copy()
                mother_t = np.empty(cap_m)
                first = int(self._mother[1]) - 1
                m = _mother_events(cum, float(t0_ms), float(bin_ms), self._mother,
                                   self._key_mother[0], self._key_mother[1], mother_t)
                if m <= cap_m:
                    break
                self._mother = snapshot
                cap_m = m
            out_syn = np.empty(m * self.syn_ids.size, dtype=np.uint64)
            out_t = np.empty(m * self.syn_ids.size)
            n = _copy_events(mother_t[:m], np.uint64(first), c, self.syn_ids,
                             self._key_copy[0], self._key_copy[1], out_syn, out_t)
        if self._ascending:          # made in id order: a stable sort by time is the order
            return _by_time(out_syn, out_t, n)
        syn, t = out_syn[:n].astype(np.int64), out_t[:n]
        order = np.lexsort((syn, t))
        return syn[order], t[order]

    def state(self) -> dict[str, np.ndarray]:
        return {"residual": self._residual.copy(), "counter": self._counter.copy(),
                "mother": self._mother.copy()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self._residual[:] = state["residual"]
        self._counter[:] = state["counter"]
        self._mother[:] = state["mother"]
