"""Delay history: a ring buffer of afferent values and the delayed weighted sums over it.

Afferent values ``a_j(t_m)`` (see :mod:`cosim.coupling`) of step ``m`` are stored at ring
position ``p = m & (L − 1)`` of ``hist`` ``(n_nodes, n_afferent, L + MIRROR)`` (``L`` a power
of two, see :func:`ring_shape`); positions ``p < MIRROR`` are also written at ``p + L``, so
that every run of up to ``MIRROR`` consecutive samples is contiguous and is read without a
wrap test.  (The mirror also makes the row stride not a power of two, which keeps the rows
of different nodes from competing for the same cache sets.)

Delays are whole steps ``d = rint(τ / dt)`` (TVB's rule).  The nonzero weights are split into
three sparse row lists (CSR, sorted by source within a row):

``far``      ``d > BLOCK``: their sum ``D_i(m) = Σ_e w_e a_{j_e}(t_{m − d_e})`` is computed for
             ``BLOCK`` future steps at once (:func:`far_block`), reading one contiguous run per
             edge — the cache line fetched serves ``BLOCK`` steps — into the ring ``dring``
             ``(D_RING, n_nodes, n_afferent)``.  All far sums are known up to ``t_{n+2}``
             when step ``n`` starts.
``near``     ``1 ≤ d ≤ BLOCK``: read per stage (:func:`near_sum`).
``instant``  ``d = 0``: read from the afferent values of the stage state itself.

Stage times (``when``): ``AT_START`` ``t_n``, ``AT_HALF`` ``t_n + dt/2``, ``AT_END`` ``t_{n+1}``.
At ``t_n`` and ``t_{n+1}`` delayed values are exact samples.  At ``t_n + dt/2`` the delayed
input is cubic Lagrange interpolation of the four samples around it — weights
(−1, 9, 9, −1)/16 at steps ``n − d − 1 … n − d + 2``; for ``d = 1`` the stencil
``n − 3 … n`` with weights (1, −5, 15, 5)/16 — an O(dt⁴) error, enough for RK4.  Because
interpolation is linear it is applied to the far sum ``D_i`` directly.

Block boundaries are multiples of ``BLOCK`` in the *global* step count and each sum is
accumulated in edge order, so results do not depend on how a run is cut into windows, nor
on whether the far sums are kept between windows or recomputed (after a restore).

**External rows** (an engine coupled through the bus, :mod:`cosim.bus`): ``hist`` may have
more rows than the engine integrates — the afferents of source regions simulated elsewhere,
stored by :func:`push_rows` as they arrive, a whole window at a time, and read by the same
edge lists as internal rows (the edges of a row are in increasing *global* source index, so
a split run sums in the same order as one engine simulating everything).  A far block
holds sums for up to ``BLOCK + 1`` steps past the current one, so a block computed in one
window may contain sums that read external samples which only arrive with the next window;
those blocks are computed again when the samples arrive (:func:`far_restart`).  A far sum
is the same number whenever it is computed from the same samples, so this changes no bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# No allocation happens in these functions: compile them without reference counting (which
# would cost an atomic increment per array view) and with IEEE division.
_FLAGS = dict(_nrt=False, error_model="numpy")

AT_START = 0
AT_HALF = 1
AT_END = 2

BLOCK = 8                 # steps of far sums computed per pass (far_block is unrolled for 8)
D_RING = 4 * BLOCK        # ring length of the far sums (power of two)
MIRROR = 2 * BLOCK        # ring positions repeated after the end (≥ BLOCK − 1 and ≥ 3)


def ring_shape(n_nodes: int, n_afferent: int, max_delay_steps: int) -> tuple[int, int, int]:
    """Shape of ``hist`` for these sizes (see module docstring)."""
    return (n_nodes, n_afferent, ring_length(max_delay_steps) + MIRROR)


def dring_shape(n_nodes: int, n_afferent: int) -> tuple[int, int, int]:
    """Shape of the ring of far sums."""
    return (D_RING, n_nodes, n_afferent)


def far_start(n: int) -> int:
    """First far-sum block to compute when the ring of far sums is empty at step ``n``
    (it must cover ``n − 1``, the first step the half-step stencil reads)."""
    return ((n - 1) // BLOCK) * BLOCK


def far_restart(dnext: int, n: int, known_until: int, min_far_lag: int) -> int:
    """First far-sum block to compute at step ``n`` after external rows received samples
    past step ``known_until``, the last step they held while the blocks before ``dnext``
    were computed.  ``D(m)`` reads external steps up to ``m − min_far_lag`` (the smallest
    lag of an external far edge), so the sums with ``m > known_until + min_far_lag`` may
    have read samples that were not there yet: they are computed again."""
    stale = ((known_until + min_far_lag + 1) // BLOCK) * BLOCK
    return min(dnext, max(stale, far_start(n)))


def ring_length(max_delay_steps: int) -> int:
    """Ring length ``L`` (power of two) for delays up to ``max_delay_steps``: far blocks
    read back to ``n − d − BLOCK`` and the cubic stencil to ``n − d − 1``."""
    need = int(max_delay_steps) + BLOCK + 4
    return 1 << (need - 1).bit_length()


def edge_lists(weights: np.ndarray, delay_steps: np.ndarray, src_rows: np.ndarray | None = None):
    """Split the nonzero weights into far, near and instant CSR lists.

    ``weights[i, j]`` (targets, sources): from source column ``j`` to target ``i``, the
    columns in summation order; ``delay_steps`` likewise, int; ``src_rows[j]``: the ``hist``
    row of source column ``j`` (default ``j``).  Returns ``(far, near, instant)`` with
    ``far = (ptr, src, lag, w)`` (``src``: ``hist`` rows), ``near`` likewise and
    ``instant = (ptr, src, w)``; within a row the edges keep the column order.
    """
    w = np.asarray(weights, dtype=np.float64)
    d = np.asarray(delay_steps, dtype=np.int64)
    n = w.shape[0]
    rows_of = (np.arange(w.shape[1], dtype=np.int64) if src_rows is None
               else np.asarray(src_rows, dtype=np.int64))
    nz = w != 0.0

    def csr(mask):
        rows, cols = np.nonzero(mask)          # row-major: by target, then source column
        counts = np.bincount(rows, minlength=n)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return ptr, rows_of[cols], d[rows, cols].astype(np.int64), w[rows, cols].copy()

    far = csr(nz & (d > BLOCK))
    near = csr(nz & (d >= 1) & (d <= BLOCK))
    ptr, src, _, wi = csr(nz & (d == 0))
    return far, near, (ptr, src, wi)


@njit(cache=True, **_FLAGS)
def push(hist, m, aff):
    """Store the afferent values ``aff`` (n, n_afferent) of step ``m``."""
    L = hist.shape[2] - MIRROR
    p = m & (L - 1)
    for j in range(aff.shape[0]):
        for k in range(aff.shape[1]):
            hist[j, k, p] = aff[j, k]
    if p < MIRROR:
        for j in range(aff.shape[0]):
            for k in range(aff.shape[1]):
                hist[j, k, p + L] = aff[j, k]


@njit(cache=True, **_FLAGS)
def push_rows(hist, row0, m0, values):
    """Store ``values[t]`` ``(n_afferent, n_rows)``, the samples of step ``m0 + t``, in rows
    ``row0 … row0 + n_rows − 1`` (external sources)."""
    L = hist.shape[2] - MIRROR
    for t in range(values.shape[0]):
        p = (m0 + t) & (L - 1)
        for j in range(values.shape[2]):
            for k in range(values.shape[1]):
                v = values[t, k, j]
                hist[row0 + j, k, p] = v
                if p < MIRROR:
                    hist[row0 + j, k, p + L] = v


@njit(cache=True, **_FLAGS)
def far_block(hist, mb, ptr, src, lag, w, dring):
    """``D_i(m)`` for ``m = mb … mb + BLOCK − 1`` into ``dring[m & (D_RING − 1), i, k]``."""
    L = hist.shape[2] - MIRROR
    mask = L - 1
    q = mb & (D_RING - 1)          # BLOCK divides D_RING and mb: q … q + 7 do not wrap
    for i in range(dring.shape[1]):
        for k in range(dring.shape[2]):
            # eight scalar accumulators (BLOCK = 8) stay in registers; an array here would
            # be reloaded and stored for every edge
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
            for e in range(ptr[i], ptr[i + 1]):
                p = (mb - lag[e]) & mask
                we = w[e]
                # a view with constant indices: no negative-index fix-up per load, so the
                # eight loads and products vectorise
                h = hist[src[e], k, p:p + 8]
                a0 += we * h[0]
                a1 += we * h[1]
                a2 += we * h[2]
                a3 += we * h[3]
                a4 += we * h[4]
                a5 += we * h[5]
                a6 += we * h[6]
                a7 += we * h[7]
            dring[q, i, k] = a0
            dring[q + 1, i, k] = a1
            dring[q + 2, i, k] = a2
            dring[q + 3, i, k] = a3
            dring[q + 4, i, k] = a4
            dring[q + 5, i, k] = a5
            dring[q + 6, i, k] = a6
            dring[q + 7, i, k] = a7


@njit(cache=True, **_FLAGS)
def far_value(dring, n, when, i, k):
    """The far sum of node ``i``, component ``k`` at stage time ``when`` of step ``n``."""
    r = D_RING - 1
    if when == AT_START:
        return dring[n & r, i, k]
    if when == AT_END:
        return dring[(n + 1) & r, i, k]
    return (0.5625 * (dring[n & r, i, k] + dring[(n + 1) & r, i, k])
            - 0.0625 * (dring[(n - 1) & r, i, k] + dring[(n + 2) & r, i, k]))


@njit(cache=True, **_FLAGS)
def near_sum(hist, n, when, ptr, src, lag, w, out):
    """``out[i, k] = Σ_e w_e a_{src_e, k}`` at stage time ``when`` over the near edges."""
    L = hist.shape[2] - MIRROR
    mask = L - 1
    for i in range(out.shape[0]):
        for k in range(out.shape[1]):
            acc = 0.0
            for e in range(ptr[i], ptr[i + 1]):
                j = src[e]
                d = lag[e]
                if when == AT_START:
                    acc += w[e] * hist[j, k, (n - d) & mask]
                elif when == AT_END:
                    acc += w[e] * hist[j, k, (n + 1 - d) & mask]
                elif d >= 2:
                    p = (n - d - 1) & mask
                    acc += w[e] * (0.5625 * (hist[j, k, p + 1] + hist[j, k, p + 2])
                                   - 0.0625 * (hist[j, k, p] + hist[j, k, p + 3]))
                else:
                    p = (n - 3) & mask
                    acc += w[e] * (0.0625 * hist[j, k, p] - 0.3125 * hist[j, k, p + 1]
                                   + 0.9375 * hist[j, k, p + 2] + 0.3125 * hist[j, k, p + 3])
            out[i, k] = acc


@njit(cache=True, **_FLAGS)
def instant_sum(aff, ptr, src, w, out):
    """``out[i, k] = Σ_e w_e aff[src_e, k]`` over the zero-delay edges of row ``i``."""
    for i in range(out.shape[0]):
        for k in range(out.shape[1]):
            acc = 0.0
            for e in range(ptr[i], ptr[i + 1]):
                acc += w[e] * aff[src[e], k]
            out[i, k] = acc


@njit(cache=True, **_FLAGS)
def instant_sum_stored(hist, n, ptr, src, w, out):
    """As :func:`instant_sum`, reading the stored afferent values of step ``n``."""
    p = n & (hist.shape[2] - MIRROR - 1)
    for i in range(out.shape[0]):
        for k in range(out.shape[1]):
            acc = 0.0
            for e in range(ptr[i], ptr[i + 1]):
                acc += w[e] * hist[src[e], k, p]
            out[i, k] = acc


def initial_states(values: np.ndarray, length: int) -> np.ndarray:
    """History of states ``(length, n_state, n_nodes)`` for steps ``−(length−1) … 0``.

    ``values`` is either one state ``(n_state, n_nodes)`` (held constant for t ≤ 0) or a
    chronological history ``(T, n_state, n_nodes)`` whose last sample is ``t = 0`` and
    sample ``T − 1 − k`` is ``t = −k dt`` (TVB's ``initial_conditions`` layout).  A
    history shorter than ``length`` is extended backwards by repeating its first sample;
    a longer one is cut to its last ``length`` samples.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 2:
        v = v[np.newaxis]
    if v.shape[0] >= length:
        return v[-length:].copy()
    pad = np.repeat(v[:1], length - v.shape[0], axis=0)
    return np.concatenate([pad, v], axis=0)


def read_history_file(path, state_names, region_labels, dt_ms: float, engine: str,
                      key: str = "initial.history") -> np.ndarray:
    """An explicit initial history ``(T, n_state, n_regions)`` from a file.

    ``.npy``: an array ``(T, n_state, n_regions)`` (chronological, last sample at t = 0,
    TVB's ``initial_conditions`` without the mode axis) or ``(n_state, n_regions)`` (held
    constant), in the engine's state and region order.  ``.h5``: the output of an earlier
    cosim run: its ``/engines/<engine>/timeseries`` (every state variable recorded, every
    region of this engine, by label; sample period = ``dt_ms``); its last sample is the
    new t = 0.  Problems raise :class:`~cosim.errors.CosimError` naming ``key``.
    """
    from pathlib import Path

    from .errors import CosimError

    p = Path(path)

    def bad(reason):
        return CosimError(f"{p}: {reason}", key=key)

    if not p.is_file():
        raise bad("no such file")
    n_state, n = len(state_names), len(region_labels)
    if p.suffix == ".npy":
        try:
            h = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise bad(f"not a numpy array file ({exc})") from None
        if h.ndim == 2:
            h = h[np.newaxis]
        if h.ndim != 3 or h.shape[1:] != (n_state, n):
            raise bad(f"must have shape (T, {n_state}, {n}) (time, state, region), got {h.shape}")
    elif p.suffix in (".h5", ".hdf5"):
        import h5py
        try:
            with h5py.File(p, "r") as f:
                name = f"engines/{engine}/timeseries"
                if name not in f:
                    raise bad(f"has no dataset /{name}")
                d = f[name]
                names = [str(v) for v in d.attrs.get("variables", [])]
                labels = [str(v) for v in d.attrs.get("regions", [])]
                period = float(d.attrs.get("period_ms", np.nan))
                data = d[...]
        except OSError as exc:
            raise bad(f"cannot be read as HDF5 ({exc})") from None
        missing = [v for v in state_names if v not in names]
        if missing:
            raise bad(f"/{name} lacks state variable(s) {', '.join(missing)}: record every "
                      f"state variable of the earlier run")
        absent = [r for r in region_labels if r not in labels]
        if absent:
            raise bad(f"/{name} lacks region(s) {', '.join(absent[:3])}")
        if not abs(period - dt_ms) <= 1e-9 * dt_ms:
            raise bad(f"/{name} was recorded every {period:g} ms; a history needs every step "
                      f"(period = dt = {dt_ms:g} ms)")
        if data.shape[0] == 0:
            raise bad(f"/{name} is empty")
        h = data[:, [names.index(v) for v in state_names]][:, :, [labels.index(r) for r in region_labels]]
    else:
        raise bad("must be a .npy array or an .h5 cosim output")
    h = np.asarray(h, dtype=np.float64)
    if not np.isfinite(h).all():
        raise bad("contains NaN/Inf")
    return h
