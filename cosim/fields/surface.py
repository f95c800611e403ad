"""A neural mass at every vertex of a cortical surface, coupled locally and through the
connectome — The Virtual Brain's surface simulation, written for cosim's models.

Per step ``n → n + 1`` (``x`` the vertex states, ``r(v)`` the region of vertex ``v``):

1. long range, once per step (TVB's rule): the region averages ``x̄_j`` of the coupling
   variables are kept in a delay ring as afferents ``a_j = g(x̄_j)`` (:mod:`cosim.coupling`);
   ``c_R = post(Σ_j w_Rj a_j(t_n − d_Rj), x̄_R)`` and vertex ``v`` receives ``c_{r(v)}``;
2. local, at every stage: ``ℓ = κ L q(x)`` with ``L`` the sparse local connectivity
   (``κ``: TVB's ``Cortex.coupling_strength``) and ``q`` the model's local variable
   (:data:`LOCAL`), added to the coupling input the way TVB's model adds its
   ``local_coupling`` term;
3. Heun (TVB's ``HeunDeterministic``: predictor, corrector, state bounds after each stage)
   or Euler;
4. the new region averages (vertex order, then divided by the vertex count, as TVB's
   ``surface_state_to_rois``) go into the ring as step ``n + 1``.

The kernels are compiled per model, coupling, row width of the local connectivity, state
size, parameter set and state bounds: every vertex has the same parameters, so their
values are compiled in (:mod:`cosim.fields.specialise`; one compile per parameter set,
cached on disk by numba), and so are the bounds (an infinite bound's clamp vanishes) — the
same arithmetic in the same order as reading them, so the same bits.

Split across ranks by contiguous vertex blocks: every part keeps the whole state, updates
its block, and the blocks are joined after each stage (``exchange``), so the local sums
and region averages are the same numbers in any layout.

Data: ``tvb:`` names load the files shipped in the ``tvb-data`` package —
``tvb:regionMapping_16k_76`` (vertex → connectivity_76 region) and
``tvb:local_connectivity_16384`` (a 16 384² sparse matrix, ``LocalCoupling`` in a .mat);
a user's files: a text file of one region index per vertex, and a ``.mat`` (a sparse
matrix) or ``.npz`` (:func:`scipy.sparse.save_npz`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
from numba import njit, prange

from .. import numba_threads  # noqa: F401  (numba's threading layer: workqueue unless chosen)
from ..errors import CosimError
from ..integrators import _FLAGS, _inlined, _rebound, _source_hash
from .specialise import fixed_parameters, parameter_key

#: How TVB's model adds its local coupling term: model → (variable ``q`` reads: plus,
#: minus or None; input of ``c`` it joins; factor).  generic_2d_oscillator adds
#: ``lc`` next to ``γ c`` (so ``c += lc / γ``), jansen_rit adds ``L (y1 − y2)`` to the
#: long-range input, linear ``L x``.  Other models: the first coupling variable, into input
#: 0 (cosim's convention; TVB's differs per model).
LOCAL = {"generic_2d_oscillator": ("V", None, 0, "1/gamma"),
         "jansen_rit": ("y1", "y2", 0, "1"),
         "linear": ("x", None, 0, "1")}

TVB_FILES = {"regionMapping_16k_76": ("regionMapping", "regionMapping_16k_76.txt"),
             "regionMapping_16k_192": ("regionMapping", "regionMapping_16k_192.txt"),
             "local_connectivity_16384": ("local_connectivity", "local_connectivity_16384.mat"),
             "projection_eeg_65_surface_16k": ("projectionMatrix", "projection_eeg_65_surface_16k.npy"),
             "projection_meg_276_surface_16k": ("projectionMatrix", "projection_meg_276_surface_16k.npy")}


def tvb_file(name: str) -> Path:
    """Path of a file shipped in ``tvb-data`` (see :data:`TVB_FILES`)."""
    if name not in TVB_FILES:
        raise CosimError(f"unknown tvb-data file {name!r}; available: "
                         + ", ".join(f"tvb:{n}" for n in TVB_FILES))
    return tvb_data_path(*TVB_FILES[name])


def tvb_data_path(folder: str, base: str) -> Path:
    """``<tvb_data package>/<folder>/<base>``; one line if tvb-data is not installed."""
    spec = importlib.util.find_spec("tvb_data")
    if spec is None or not spec.submodule_search_locations:
        raise CosimError("the tvb-data package is not installed (pip install tvb-data)")
    return Path(list(spec.submodule_search_locations)[0]) / folder / base


def _path(spec: str, base_dir) -> Path:
    if spec.startswith("tvb:"):
        return tvb_file(spec[4:])
    p = Path(spec).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    if not p.is_file():
        raise CosimError(f"no such file: {p}")
    return p


def load_region_mapping(spec: str, base_dir=None) -> np.ndarray:
    """Region index of every vertex (int64)."""
    p = _path(spec, base_dir)
    try:
        v = np.loadtxt(p)
    except ValueError as exc:
        raise CosimError(f"{p.name} is not a text file of region indices ({exc})") from None
    v = np.atleast_1d(v)
    if v.ndim != 1 or not v.size or not np.all(v == np.rint(v)) or v.min() < 0:
        raise CosimError(f"{p.name} must hold one region index (an integer >= 0) per vertex")
    return v.astype(np.int64)


def load_local_connectivity(spec: str, base_dir=None):
    """The local connectivity as a CSR matrix (float64)."""
    import scipy.io
    import scipy.sparse as sp
    p = _path(spec, base_dir)
    if p.suffix == ".npz":
        try:
            m = sp.load_npz(p)
        except (ValueError, OSError) as exc:
            raise CosimError(f"{p.name} is not a scipy.sparse .npz file ({exc})") from None
    elif p.suffix == ".mat":
        try:
            data = scipy.io.loadmat(p)
        except (ValueError, OSError, NotImplementedError) as exc:
            raise CosimError(f"{p.name} is not a MATLAB file ({exc})") from None
        found = [v for k, v in data.items() if not k.startswith("__") and sp.issparse(v)]
        m = data.get("LocalCoupling", found[0] if found else None)
        if m is None or not sp.issparse(m):
            raise CosimError(f"{p.name} holds no sparse matrix (TVB's LocalCoupling)")
    else:
        raise CosimError(f"{p.name}: expected a .mat or .npz sparse matrix")
    m = sp.csr_matrix(m, dtype=np.float64)
    m.sort_indices()
    if m.shape[0] != m.shape[1]:
        raise CosimError(f"{p.name}: the local connectivity must be square, got {m.shape}")
    if not np.isfinite(m.data).all():
        raise CosimError(f"{p.name}: the local connectivity contains NaN/Inf")
    return m


def load_projection(spec: str, base_dir=None, mmap: bool = False) -> np.ndarray:
    """A sensor projection matrix ``(sensor, vertex)`` from a ``.npy`` file (EEG / MEG
    lead fields on the surface, e.g. tvb-data's ``projectionMatrix/*.npy``)."""
    p = _path(spec, base_dir)
    if p.suffix != ".npy":
        raise CosimError(f"{p.name}: expected a .npy projection matrix (sensor × vertex)")
    try:
        m = np.load(p, mmap_mode="r" if mmap else None)
    except (ValueError, OSError) as exc:
        raise CosimError(f"{p.name} is not a .npy array ({exc})") from None
    if m.ndim != 2 or m.dtype.kind not in "fiu":
        raise CosimError(f"{p.name}: a projection must be a 2-D numeric array, got {m.shape}")
    return m


# -- kernels (templates specialised per model and coupling, as cosim.integrators does) ----

def _t_local_q(x, lp, lm, q):
    """``q[v] = x[v, lp] − x[v, lm]`` (``lm < 0``: no subtrahend), every vertex."""
    for v in range(x.shape[0]):
        q[v] = x[v, lp] - (x[v, lm] if lm >= 0 else 0.0)


def _t_long_rows(q, L):
    """The remainder sums of the rows longer than the fixed width (:func:`ell_split`), for
    the local variable ``q`` of the coming pass: ``ex[v] = Σ_{e ≥ width} L_ve q_e``."""
    fi, fv, xp, xi, xv, lr, ex = L
    for t in range(lr.size):
        v = lr[t]
        acc = 0.0
        for e in range(xp[v], xp[v + 1]):
            acc += xv[e] * q[xi[e]]
        ex[v] = acc


def _t_vertex_deriv(x, q, cr, region_of, L, lin, p, c, dx, v):
    """``dx[v]`` with input ``c[v] = c_{r(v)}`` plus the local term ``Σ_e L_ve q_e``
    (``L``: :func:`ell_split` of ``κ`` times the local connectivity: the row's first
    ``ELL_WIDTH`` entries in column order — a compile-time constant of the specialised
    kernel, so that loop is unrolled; padding adds 0 — plus ``ex[v]``, the sum of the rest
    in column order, which :func:`_t_long_rows` left for this pass; 0 for the other rows.
    No loop of variable length in the vertex loop: its branch cost a quarter of the pass)."""
    fi, fv, xp, xi, xv, lr, ex = L
    acc = 0.0
    for e in range(ELL_WIDTH):
        acc += fv[v, e] * q[fi[v, e]]
    acc += ex[v]
    r = region_of[v]
    for a in range(N_IN):                # the coupling's inputs, compiled in (no loop of
        c[v, a] = cr[r, a]               # variable length in the vertex loop)
    c[v, lin] = cr[r, lin] + acc         # not `+=`: no reload of the value just stored
    model_dfun(x, c, p, v, dx)


def _t_derivs(x, q, cr, region_of, L, lin, v0, v1, p, c, dx):
    """``dx`` of vertices ``v0 … v1 − 1`` (:func:`_t_vertex_deriv`; ``q`` complete)."""
    long_rows(q, L)
    for v in range(v0, v1):
        vertex_deriv(x, q, cr, region_of, L, lin, p, c, dx, v)


def _t_region_input(hist, n, ptr, src, dly, w, xr, cvar, cp, rowsum, s, cr):
    """``cr[R] = post(Σ_j w_Rj hist[n − d_Rj, :, j], x̄_R)`` (edges in source order)."""
    H = hist.shape[0]
    h0 = n % H
    for r in range(s.shape[0]):
        for a in range(s.shape[1]):
            acc = 0.0
            for e in range(ptr[r], ptr[r + 1]):
                i = h0 - dly[e]                 # (n − d) mod H without a division (d < H)
                acc += w[e] * hist[i + H * (i < 0), a, src[e]]
            s[r, a] = acc
        coupling_post(s, xr, cvar, rowsum, cp, r, cr)


def _t_region_average(x, region_of, counts, cvar, cp, xr, aff, hist, slot):
    """Region averages of the coupling variables (vertex order) and their afferents,
    stored as ring slot ``slot``."""
    xr[:, :] = 0.0
    for v in range(x.shape[0]):
        r = region_of[v]
        for k in range(cvar.shape[0]):
            xr[r, cvar[k]] += x[v, cvar[k]]
    region_finish(xr, counts, cvar, cp, aff, hist, slot)


def _t_region_finish(xr, counts, cvar, cp, aff, hist, slot):
    """Region sums → averages → afferents in ring slot ``slot`` (regions with vertices)."""
    for r in range(xr.shape[0]):
        if counts[r] == 0:          # a region of another engine: its afferents come from the bus
            continue
        for k in range(cvar.shape[0]):
            xr[r, cvar[k]] /= counts[r]
        coupling_afferent(xr, cvar, cp, r, aff)
        for a in range(aff.shape[1]):
            hist[slot, a, r] = aff[r, a]


def _t_member_sums(x, mptr, mv, cvar, xr):
    """``xr[r, cvar[k]]`` = the sum of ``x[:, cvar[k]]`` over region ``r``'s vertices, in
    ascending vertex order (``mptr``/``mv``: CSR of the vertices per region) — the numbers of
    the vertex-order pass of :func:`_t_region_average`, with the running sum in a register
    rather than in ``xr`` (a chain through memory from one vertex to the next)."""
    for r in range(xr.shape[0]):
        for kk in range(cvar.shape[0]):
            acc = 0.0
            for e in range(mptr[r], mptr[r + 1]):
                acc += x[mv[e], cvar[kk]]
            xr[r, cvar[kk]] = acc


def _t_member_means(x, mptr, mv, counts, rows, out):
    """:func:`_t_region_mean` by region (:func:`_t_member_sums`): the same bits."""
    for r in range(out.shape[1]):
        for kk in range(rows.size):
            acc = 0.0
            for e in range(mptr[r], mptr[r + 1]):
                acc += x[mv[e], rows[kk]]
            out[kk, r] = acc / counts[r] if counts[r] > 0 else acc


def _t_window(n_steps, step, heun, dt, every, x, xs, k1, k2, qq, hist, net, L, local, region,
              members, cvar, cp, rowsum, p, lo, hi, work, rec_rows, rec):
    """``n_steps`` whole steps of one unsplit engine, each stage one pass over the vertices
    (derivative, update, the next stage's local variable together; the last stage also adds
    the vertex to its region's sum): the same arithmetic, in the same order, as the separate
    kernels a split part calls (:func:`_t_derivs`, :func:`euler_update`,
    :func:`heun_update`, :func:`_t_local_q`, :func:`_t_region_average`: region sums in
    vertex order), so both give the same bits.  The state bounds are the compiled-in
    ``LO``/``HI`` (the model's; ``lo``/``hi`` are not read): an infinite bound's clamp
    ``max(y, −inf)`` is ``select(−inf > y, −inf, y)``, always ``y``, and LLVM drops it; so
    are the local variable's and the coupling input's columns ``LOCAL_IDX`` (``lm = −1``:
    ``q = x[v, lp]``, no branch) and the coupling variables ``CVAR``."""
    ptr, src, dly, w = net
    lp, lm, lin = LOCAL_IDX              # compiled in: ``local`` is not read
    region_of, counts = region
    mptr, mv = members
    xr, aff, s, cr, c = work
    V = x.shape[0]
    R = xr.shape[0]
    H = hist.shape[0]
    q1, q2 = qq[0], qq[1]
    nc = CVAR.size                       # compiled in: ``cvar`` only for the region calls
    local_q(x, lp, lm, q1)
    k = 0
    for m in range(n_steps):
        n = step + m
        region_input(hist, n, ptr, src, dly, w, xr, cvar, cp, rowsum, s, cr)
        for r in range(R):
            for kk in range(nc):
                xr[r, CVAR[kk]] = 0.0
        if heun:
            long_rows(q1, L)
            for v in range(V):
                vertex_deriv(x, q1, cr, region_of, L, lin, p, c, k1, v)
                for j in range(NS):
                    xs[v, j] = min(max(x[v, j] + dt * k1[v, j], LO[j]), HI[j])
                q2[v] = xs[v, lp] - (xs[v, lm] if lm >= 0 else 0.0)
            long_rows(q2, L)
            for v in range(V):
                vertex_deriv(xs, q2, cr, region_of, L, lin, p, c, k2, v)
                for j in range(NS):
                    x[v, j] = min(max(x[v, j] + dt * 0.5 * (k1[v, j] + k2[v, j]), LO[j]), HI[j])
                q1[v] = x[v, lp] - (x[v, lm] if lm >= 0 else 0.0)
                r = region_of[v]
                for kk in range(nc):
                    xr[r, CVAR[kk]] += x[v, CVAR[kk]]
        else:
            long_rows(q1, L)
            for v in range(V):
                vertex_deriv(x, q1, cr, region_of, L, lin, p, c, k1, v)
                for j in range(NS):
                    x[v, j] = min(max(x[v, j] + dt * k1[v, j], LO[j]), HI[j])
                r = region_of[v]
                for kk in range(nc):
                    xr[r, CVAR[kk]] += x[v, CVAR[kk]]
            local_q(x, lp, lm, q1)       # Euler's pass reads q1 of x_n: renewed after it
        region_finish(xr, counts, cvar, cp, aff, hist, (n + 1) % H)
        if (n + 1) % every == 0:
            member_means(x, mptr, mv, counts, rec_rows, rec[k])
            k += 1


def _t_emit(v, r, acc, cr, lin, cf):
    """Vertex ``v``'s coupling input into the flat ``cf``: its region's row ``cr[r]``, the
    local sum ``acc`` added to input ``lin`` (:func:`_t_vertex_deriv`'s arithmetic).  The
    index in unsigned arithmetic (``v`` is unsigned): numba then adds no negative-index
    wraparound, and each input is stored once (a fifth of the product's time otherwise).
    ``v``, ``r``: uint64."""
    base = v * np.uint64(N_IN)
    for a in range(N_IN):
        cf[base + np.uint64(a)] = cr[r, a] + acc if a == lin else cr[r, a]


def row_index_bits(n: int) -> int:
    """Bits of one packed column index in :func:`grouped_rows` (16: four per 64-bit word on
    the 16k cortex; 32 above 65 536 vertices)."""
    return 16 if n <= 1 << 16 else 32


def grouped_rows(m, width: int, region_of, bits: int | None = None):
    """The local matrix for :func:`_t_window_flat`: its rows grouped by their number of
    entries ``ℓ`` — ``exact[ℓ]`` for ``ℓ = 0 … width`` and ``long`` for rows longer than
    ``width`` — each group ``(meta, cols, weights)``: ``meta`` = row | region << 32 (one
    load for both), ``weights`` of shape ``(group size, ℓ)`` and ``cols`` the column
    indices packed into 64-bit words (:func:`row_index_bits` each, the first in the low
    bits); ``long`` has ``width`` columns and a CSR remainder ``(xp, xi, xv)`` per long
    row.  Entries in column order.  The product's loop then reads no padding (the
    fixed-width rows of :func:`ell_split` carry a third of padding on the 16k cortex: rows
    of 3 … 11 entries, width 8), has a compile-time trip count per group and loads a
    quarter of the indices (:func:`grouped_inputs_source`): 3 loads per entry were its
    bound.  ``region_of``: each row's region; ``bits``: the kernel's (default
    :func:`row_index_bits` of the row count)."""
    n = m.shape[0]
    K = int(width)
    bits = row_index_bits(n) if bits is None else int(bits)
    if n > 1 << bits:
        raise ValueError(f"{n} columns do not fit {bits}-bit indices")
    per = 64 // bits
    deg = np.diff(m.indptr)
    region_of = np.asarray(region_of)

    def part(rows, ell):
        at = m.indptr[rows][:, None] + np.arange(ell)[None, :]
        cols = np.zeros((rows.size, -(-ell // per) * per), dtype=np.uint64)
        cols[:, :ell] = m.indices[at].reshape(rows.size, ell)
        words = np.zeros((rows.size, max(1, cols.shape[1] // per)), dtype=np.uint64)
        for j in range(per):
            words[:, :cols.shape[1] // per] |= cols[:, j::per] << np.uint64(bits * j)
        meta = rows.astype(np.uint64) | (region_of[rows].astype(np.uint64) << np.uint64(32))
        return (meta, words,
                np.ascontiguousarray(m.data[at], dtype=np.float64).reshape(rows.size, ell))
    exact = tuple(part(np.flatnonzero(deg == ell), ell) for ell in range(K + 1))
    lr = np.flatnonzero(deg > K)
    xp = np.concatenate([[0], np.cumsum(deg[lr] - K)]).astype(np.int64)
    at = np.concatenate([np.arange(m.indptr[v] + K, m.indptr[v + 1]) for v in lr]
                        ).astype(np.int64) if lr.size else np.zeros(0, np.int64)
    return exact, part(lr, K) + (xp, m.indices[at].astype(np.uint32),
                                 np.ascontiguousarray(m.data[at], dtype=np.float64))


def grouped_inputs_source(width: int, bits: int) -> str:
    """The source of ``grouped_inputs(q, G, cr, lin, cf)``: every vertex's coupling input
    (:func:`_t_emit`) from the local product over :func:`grouped_rows` ``G`` — one loop per
    row length, each entry written out (a trip count read at run time costs a quarter
    more on the 16k cortex), the column indices unpacked from their words by shifts.  Per
    row the sum is :func:`_t_vertex_deriv`'s: the first ``width`` entries in column order,
    then the sum of the rest (0.0 for a short row) added; the padding of :func:`ell_split`
    (weight 0 on the row's own entry) adds a signed zero, which leaves every finite sum as
    it is — the same bits while the state is finite."""
    K, per = int(width), 64 // int(bits)

    def entries(ell):
        out = []
        for j in range(ell):
            if j % per == 0:
                out.append(f"        wd = cols[t, {j // per}]")
            sh = int(bits) * (j % per)
            if sh == 0:
                ix = "wd & MASK"
            elif j % per == per - 1:            # the word's last: nothing above it
                ix = f"wd >> np.uint64({sh})"
            else:
                ix = f"(wd >> np.uint64({sh})) & MASK"
            out.append(f"        acc += ww[t, {j}] * q[{ix}]")
        return out
    out = ["def grouped_inputs(q, G, cr, lin, cf):", "    exact, long = G",
           f"    MASK = np.uint64({(1 << int(bits)) - 1})", "    LOW = np.uint64(0xFFFFFFFF)"]
    for ell in range(K + 1):
        out += [f"    meta, cols, ww = exact[{ell}]",
                "    for t in range(meta.size):",
                "        acc = 0.0"] + entries(ell) + [
                "        acc += 0.0",
                "        emit(meta[t] & LOW, meta[t] >> np.uint64(32), acc, cr, lin, cf)"]
    out += ["    meta, cols, ww, xp, xi, xv = long",
            "    for t in range(meta.size):",
            "        acc = 0.0"] + entries(K) + [
            "        rest = 0.0",
            "        for e in range(xp[t], xp[t + 1]):",
            "            rest += xv[e] * q[xi[e]]",
            "        acc += rest",
            "        emit(meta[t] & LOW, meta[t] >> np.uint64(32), acc, cr, lin, cf)"]
    return "\n".join(out) + "\n"


def _grouped_inputs(width: int, bits: int, glb: dict):
    """:func:`grouped_inputs_source` compiled with the kernels' globals ``glb`` (a copy)."""
    ns = dict(glb)
    exec(compile(grouped_inputs_source(width, bits),
                 f"<cosim grouped rows, width {width}, {bits}-bit indices>", "exec"), ns)
    return ns["grouped_inputs"]


def _t_window_flat(n_steps, step, heun, dt, every, x, xs, k1, k2, qq, hist, net, L, local,
                   region, members, cvar, cp, rowsum, p, lo, hi, work, rec_rows, rec):
    """:func:`_t_window` for a model whose dfun is arithmetic only, rewritten for flat arrays
    (``model_flat``: :func:`cosim.fields.specialise.fixed_parameters` with ``flat``) and
    ``L`` the local matrix as :func:`grouped_rows`.  Each stage is three passes over the
    vertices: the inputs (the local product and the region's input: gathers,
    :func:`grouped_inputs_source`), the model, then the update with the next local
    variable — the last two without a gather and with compile-time strides, so LLVM
    vectorises them across vertices (in :func:`_t_window` one gather in the pass keeps the
    whole pass scalar).  Region sums by region (``members``, as :func:`_t_window_par`).  Per
    vertex the arithmetic and its order are :func:`_t_window`'s and the split parts': the
    same bits."""
    ptr, src, dly, w = net
    lp, lm, lin = LOCAL_IDX              # compiled in: ``local`` is not read
    region_of, counts = region
    mptr, mv = members
    xr, aff, s, cr, c = work
    V = x.shape[0]
    H = hist.shape[0]
    q1, q2 = qq[0], qq[1]
    xf, xsf, cf = x.reshape(x.size), xs.reshape(xs.size), c.reshape(c.size)
    k1f, k2f = k1.reshape(k1.size), k2.reshape(k2.size)
    local_q(x, lp, lm, q1)
    k = 0
    for m in range(n_steps):
        n = step + m
        region_input(hist, n, ptr, src, dly, w, xr, cvar, cp, rowsum, s, cr)
        grouped_inputs(q1, L, cr, lin, cf)
        for v in range(V):
            model_flat(xf, cf, p, v, k1f)
        if heun:
            for v in range(V):
                for j in range(NS):
                    xsf[v * NS + j] = min(max(xf[v * NS + j] + dt * k1f[v * NS + j], LO[j]), HI[j])
                q2[v] = xsf[v * NS + lp] - (xsf[v * NS + lm] if lm >= 0 else 0.0)
            grouped_inputs(q2, L, cr, lin, cf)
            for v in range(V):
                model_flat(xsf, cf, p, v, k2f)
            for v in range(V):
                for j in range(NS):
                    xf[v * NS + j] = min(max(xf[v * NS + j] + dt * 0.5 * (k1f[v * NS + j]
                                                                         + k2f[v * NS + j]),
                                             LO[j]), HI[j])
                q1[v] = xf[v * NS + lp] - (xf[v * NS + lm] if lm >= 0 else 0.0)
        else:
            for v in range(V):
                for j in range(NS):
                    xf[v * NS + j] = min(max(xf[v * NS + j] + dt * k1f[v * NS + j], LO[j]), HI[j])
                q1[v] = xf[v * NS + lp] - (xf[v * NS + lm] if lm >= 0 else 0.0)
        member_sums(x, mptr, mv, cvar, xr)
        region_finish(xr, counts, cvar, cp, aff, hist, (n + 1) % H)
        if (n + 1) % every == 0:
            member_means(x, mptr, mv, counts, rec_rows, rec[k])
            k += 1


def _t_window_par(n_steps, step, heun, dt, every, x, xs, k1, k2, qq, hist, net, L, local,
                  region, members, cvar, cp, rowsum, p, lo, hi, work, rec_rows, rec):
    """:func:`_t_window` on numba's threads (``parallel=True``): each stage's per-vertex
    work (derivative, update, next local variable) is a ``prange`` over the vertices —
    independent per vertex, so any split over threads gives the same bits — and the region
    sums a ``prange`` over the regions, each summing its vertices in ascending order
    (``members``: CSR of the vertices per region), the order of the serial pass."""
    ptr, src, dly, w = net
    lp, lm, lin = LOCAL_IDX              # compiled in: ``local`` is not read
    region_of, counts = region
    mptr, mv = members
    xr, aff, s, cr, c = work
    V = x.shape[0]
    R = xr.shape[0]
    H = hist.shape[0]
    q1, q2 = qq[0], qq[1]
    nc = CVAR.size                       # compiled in: ``cvar`` only for the region calls
    for v in prange(V):
        q1[v] = x[v, lp] - (x[v, lm] if lm >= 0 else 0.0)
    k = 0
    for m in range(n_steps):
        n = step + m
        h0 = n % H                       # region_input's arithmetic, a prange over regions
        for r in prange(R):
            for a in range(s.shape[1]):
                acc = 0.0
                for e in range(ptr[r], ptr[r + 1]):
                    i = h0 - dly[e]
                    acc += w[e] * hist[i + H * (i < 0), a, src[e]]
                s[r, a] = acc
            coupling_post(s, xr, cvar, rowsum, cp, r, cr)
        if heun:
            long_rows(q1, L)
            for v in prange(V):
                vertex_deriv(x, q1, cr, region_of, L, lin, p, c, k1, v)
                for j in range(NS):
                    xs[v, j] = min(max(x[v, j] + dt * k1[v, j], LO[j]), HI[j])
                q2[v] = xs[v, lp] - (xs[v, lm] if lm >= 0 else 0.0)
            long_rows(q2, L)
            for v in prange(V):
                vertex_deriv(xs, q2, cr, region_of, L, lin, p, c, k2, v)
                for j in range(NS):
                    x[v, j] = min(max(x[v, j] + dt * 0.5 * (k1[v, j] + k2[v, j]), LO[j]), HI[j])
                q1[v] = x[v, lp] - (x[v, lm] if lm >= 0 else 0.0)
        else:
            long_rows(q1, L)
            for v in prange(V):
                vertex_deriv(x, q1, cr, region_of, L, lin, p, c, k1, v)
                for j in range(NS):
                    x[v, j] = min(max(x[v, j] + dt * k1[v, j], LO[j]), HI[j])
            for v in prange(V):
                q1[v] = x[v, lp] - (x[v, lm] if lm >= 0 else 0.0)
        for r in prange(R):
            for kk in range(nc):
                acc = 0.0
                for e in range(mptr[r], mptr[r + 1]):
                    acc += x[mv[e], CVAR[kk]]
                xr[r, CVAR[kk]] = acc
        region_finish(xr, counts, cvar, cp, aff, hist, (n + 1) % H)
        if (n + 1) % every == 0:
            out = rec[k]
            for r in prange(R):
                for kk in range(rec_rows.size):
                    acc = 0.0
                    for e in range(mptr[r], mptr[r + 1]):
                        acc += x[mv[e], rec_rows[kk]]
                    out[kk, r] = acc / counts[r] if counts[r] > 0 else acc
            k += 1


def _t_region_mean(x, region_of, counts, rows, out):
    """``out[k, r]`` = mean over region ``r``'s vertices of ``x[:, rows[k]]`` (vertex order)."""
    out[:, :] = 0.0
    for v in range(x.shape[0]):
        r = region_of[v]
        for k in range(rows.size):
            out[k, r] += x[v, rows[k]]
    for k in range(rows.size):
        for r in range(out.shape[1]):
            if counts[r] > 0:
                out[k, r] /= counts[r]


def ell_split(m, width: int | None = None):
    """A CSR matrix as ``(fi, fv, xp, xi, xv, lr, ex)``: the first ``width`` entries of every
    row in fixed-width arrays ``(row, width)`` (short rows padded with weight 0 on the row's
    own index) and the rest of long rows in a CSR remainder ``(xp, xi, xv)``, in column
    order; ``lr`` the long rows, ``ex`` a row-length scratch for their remainder sums
    (:func:`_t_long_rows`).  A row's product is its fixed-width sum plus its remainder's
    sum.  The fixed trip count keeps the loop's branches predictable (rows of 3 … 11
    entries in CSR cost a mispredicted loop exit each: ~10× slower on the 16k cortex).
    ``width``: the 95th percentile of the row lengths (at least 1).  Column indices:
    :func:`index_dtype`."""
    n = m.shape[0]
    deg = np.diff(m.indptr)
    K = int(width) if width is not None else max(1, int(np.percentile(deg, 95)) if n else 1)
    idx = index_dtype(n)
    fi = np.repeat(np.arange(n, dtype=idx)[:, None], K, axis=1)
    fv = np.zeros((n, K))
    rows = np.repeat(np.arange(n), deg)
    pos = np.arange(m.nnz) - np.repeat(m.indptr[:-1], deg)      # entry's place in its row
    head = pos < K
    fi[rows[head], pos[head]] = m.indices[head]
    fv[rows[head], pos[head]] = m.data[head]
    xp = np.concatenate([[0], np.cumsum(np.maximum(deg - K, 0))]).astype(np.int64)
    long = np.nonzero(deg > K)[0].astype(np.int64)
    return (fi, fv, xp, m.indices[~head].astype(idx), m.data[~head].astype(np.float64), long,
            np.zeros(n))


def index_dtype(n: int):
    """The column indices' type for ``n`` columns: unsigned (numba then drops the
    negative-index wraparound of every gather ``q[fi[v, e]]``) and as narrow as fits —
    uint16 on the 16k cortex, half the bytes the product streams per row."""
    return np.uint16 if n <= 1 << 16 else np.uint32


@njit(cache=True, **_FLAGS)
def euler_update(x, k, h, v0, v1, lo, hi, out):
    """``out[v] = bound(x[v] + h k[v])`` for ``v0 ≤ v < v1``."""
    for v in range(v0, v1):
        for j in range(x.shape[1]):
            y = x[v, j] + h * k[v, j]
            out[v, j] = min(max(y, lo[j]), hi[j])


@njit(cache=True, **_FLAGS)
def heun_update(x, k1, k2, h, v0, v1, lo, hi):
    """``x[v] = bound(x[v] + (h/2)(k1 + k2))`` for ``v0 ≤ v < v1``."""
    for v in range(v0, v1):
        for j in range(x.shape[1]):
            y = x[v, j] + h * 0.5 * (k1[v, j] + k2[v, j])
            x[v, j] = min(max(y, lo[j]), hi[j])


_SURFACE_KERNELS: dict = {}
_FIXED: dict = {}         # (dfun, parameter key) → the dfun with them compiled in, or None
_FLAT: dict = {}          # (dfun, parameter key, NS, NC) → … and flat indexing, or None


def _model(dfun, params):
    """The dfun the kernels inline and the tag of its parameters: with ``params`` (the one
    parameter row of every vertex) the dfun with those values compiled in
    (:func:`cosim.fields.specialise.fixed_parameters`; one compile per parameter set, the
    values' hash in the kernel's name so that numba's on-disk cache keeps one entry per
    set), else — or if the dfun cannot be rewritten — the dfun reading the row."""
    if params is not None:
        key = parameter_key(params)
        if (dfun, key) not in _FIXED:
            _FIXED[dfun, key] = fixed_parameters(dfun, params)
        if _FIXED[dfun, key] is not None:
            return _FIXED[dfun, key], key, "__p" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return dfun, None, ""


def _flat_model(dfun, params, n_state: int, n_in: int):
    """The dfun with ``params`` compiled in and flat indexing (:func:`fixed_parameters` with
    ``flat``) for :func:`_t_window_flat`, or None (a dfun that is not arithmetic only)."""
    key = (dfun, parameter_key(params), n_state, n_in)
    if key not in _FLAT:
        _FLAT[key] = fixed_parameters(dfun, params, flat=(n_state, n_in))
    return _FLAT[key]


def _bounds(bounds, n_state):
    """``(LO, HI)`` compiled into the window kernels and their part of the key and tag."""
    if bounds is None:
        lo, hi = np.full(n_state, -np.inf), np.full(n_state, np.inf)
    else:
        lo, hi = (np.array(b, dtype=np.float64).reshape(n_state) for b in bounds)
    key = parameter_key(np.concatenate([lo, hi]))
    return lo, hi, key, "__b" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _columns(local, cvar):
    """``LOCAL_IDX`` (``lp, lm, lin``) and ``CVAR`` compiled into the window kernels, and
    their tag."""
    li = tuple(int(v) for v in local)
    cv = np.array(cvar, dtype=np.int64).reshape(-1)
    return li, cv, "__l" + "_".join(str(v) for v in li + tuple(cv.tolist())).replace("-", "m")


def surface_kernels(model_name: str, dfun, coupling, width: int, n_state: int, params=None,
                    bounds=None, *, local, cvar, index_bits: int = 16):
    """``(local_q, derivs, region_input, region_average, region_mean, window, grouped)`` for
    one model (``n_state`` state variables, compiled in as ``NS``: the update loops unrolled),
    coupling and fixed row width of the local connectivity (:func:`ell_split`:
    ``fi.shape[1]``, compiled in as ``ELL_WIDTH``); ``params``: the parameter row of every
    vertex, compiled in (:func:`_model`; the kernels still take the row ``p``, unread);
    ``bounds``: the model's state bounds ``(lo, hi)``, compiled into the window (None:
    unbounded); ``local`` (``lp, lm, lin``: the engine's local variable and the input it
    joins) and ``cvar`` (the coupling variables), compiled into the window.  ``grouped``:
    whether ``window`` is :func:`_t_window_flat`, which takes the local matrix as
    :func:`grouped_rows` (else as :func:`ell_split`), its column indices packed at
    ``index_bits`` (:func:`row_index_bits` of the vertex count)."""
    width, n_state = int(width), int(n_state)
    model, pkey, ptag = _model(dfun, params)
    lo, hi, bkey, btag = _bounds(bounds, n_state)
    li, cv, ltag = _columns(local, cvar)
    bits = int(index_bits)
    key = (model_name, dfun, coupling.afferent, coupling.post, width, n_state, pkey, bkey, ltag,
           bits)
    if key in _SURFACE_KERNELS:
        return _SURFACE_KERNELS[key]
    n_in = coupling.n_inputs(cv.size)
    # the window's model passes vectorised where the dfun allows (_t_window_flat)
    flat = (_flat_model(dfun, params, n_state, n_in) if pkey is not None else None)
    window = _t_window_flat if flat is not None else _t_window
    digest = _source_hash(dfun, coupling.afferent, coupling.post, _t_vertex_deriv, _t_derivs,
                          _t_long_rows, _t_region_input, _t_region_finish, _t_region_average, _t_window,
                          _t_window_flat, _t_emit, grouped_inputs_source, _t_member_sums,
                          _t_member_means, euler_update, fixed_parameters)
    tag = (f"{model_name}__{coupling.name}__w{width}s{n_state}i{bits}__{digest}{ptag}{btag}"
           f"{ltag}")
    glb = dict(globals())
    glb.update(model_dfun=_inlined(model), coupling_afferent=_inlined(coupling.afferent),
               coupling_post=_inlined(coupling.post), ELL_WIDTH=width, NS=n_state, LO=lo, HI=hi,
               LOCAL_IDX=li, CVAR=cv, N_IN=n_in)
    if flat is not None:
        glb.update(model_flat=_inlined(flat))
    for t in (_t_vertex_deriv, _t_long_rows, _t_local_q, _t_derivs, _t_region_input,
              _t_region_finish, _t_region_average, _t_region_mean, _t_member_sums,
              _t_member_means, _t_emit):
        glb[t.__name__[3:]] = _inlined(_rebound(t, glb))
    if flat is not None:
        glb["grouped_inputs"] = _inlined(_grouped_inputs(width, bits, glb))
    glb.update(euler_update_=_inlined(euler_update), heun_update_=_inlined(heun_update))
    out = tuple(njit(cache=True, **_FLAGS)(_rebound(t, glb, f"{t.__name__[3:]}__{tag}"))
                for t in (_t_local_q, _t_derivs, _t_region_input, _t_region_average,
                          _t_region_mean, window)) + (flat is not None,)
    _SURFACE_KERNELS[key] = out
    return out


def surface_window_parallel(model_name: str, dfun, coupling, width: int, n_state: int,
                            params=None, bounds=None, *, local, cvar):
    """:func:`_t_window_par` for one model, coupling, row width, state size and parameter
    set (as :func:`surface_kernels`; ``parallel=True``; compiled on first use, cached on disk
    by numba)."""
    width, n_state = int(width), int(n_state)
    model, pkey, ptag = _model(dfun, params)
    lo, hi, bkey, btag = _bounds(bounds, n_state)
    li, cv, ltag = _columns(local, cvar)
    key = ("parallel", model_name, dfun, coupling.afferent, coupling.post, width, n_state, pkey,
           bkey, ltag)
    if key in _SURFACE_KERNELS:
        return _SURFACE_KERNELS[key]
    digest = _source_hash(dfun, coupling.afferent, coupling.post, _t_vertex_deriv,
                          _t_long_rows, _t_region_input, _t_region_finish, _t_window_par,
                          fixed_parameters)
    tag = f"{model_name}__{coupling.name}__w{width}s{n_state}__{digest}{ptag}{btag}{ltag}"
    glb = dict(globals())
    glb.update(model_dfun=_inlined(model), coupling_afferent=_inlined(coupling.afferent),
               coupling_post=_inlined(coupling.post), ELL_WIDTH=width, NS=n_state, LO=lo, HI=hi,
               LOCAL_IDX=li, CVAR=cv, N_IN=coupling.n_inputs(cv.size))
    for t in (_t_vertex_deriv, _t_long_rows, _t_region_input, _t_region_finish):
        glb[t.__name__[3:]] = _inlined(_rebound(t, glb))
    out = njit(cache=True, parallel=True, **_FLAGS)(
        _rebound(_t_window_par, glb, f"window_par__{tag}"))
    _SURFACE_KERNELS[key] = out
    return out
