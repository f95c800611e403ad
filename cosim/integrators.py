"""Time integrators and the whole-window numba kernels built from them.

Schemes (step ``h = dt``, ``f(x, c)`` the model dfun, ``c(t)`` the delayed coupling input,
``σ`` the additive noise amplitude per state variable, ``ξ ~ N(0, 1)`` one draw per step,
state variable and node)::

    euler             x⁺ = x + h f(x, c(t))                                  (order 1)
    heun              x̃ = x + h f(x, c(t));      x⁺ = x + h/2 [f(x, c(t)) + f(x̃, c(t+h))]
    rk4               classic Runge–Kutta 4 with stage inputs c(t), c(t+h/2), c(t+h/2), c(t+h)
    dopri5            Dormand–Prince 5(4), adaptive substeps inside each dt (order 5, error
                      per step controlled by rtol/atol); delay-free systems only
                      (:func:`_t_integrate_adaptive`)
    euler_maruyama    x⁺ = x + h f(x, c(t)) + σ √h ξ
    stochastic_heun   x̃ = x + h f(x, c(t)) + σ √h ξ;   x⁺ = x + h/2 [f(x,c(t)) + f(x̃,c(t+h))] + σ √h ξ
                      (the same ξ in both lines: Heun for additive noise, TVB's HeunStochastic)

Noise (``[engines.NAME.noise] type``): ``"additive"`` as above; ``"multiplicative"`` has
the diffusion ``g(x) = σ x`` (linear in the state, TVB's ``Multiplicative`` with its default
``b = Linear(a=1, b=0)``): Euler–Maruyama adds ``σ x √h ξ`` (Itô), stochastic Heun adds
``σ x √h ξ`` to the predictor and ``σ ½ (x + x̃) √h ξ`` to the step (Stratonovich).  With
``ntau = τ > 0`` the additive noise is coloured: the force ``η`` is an Ornstein–Uhlenbeck
process, ``⟨η(t) η(s)⟩ = σ²/(2τ) e^{−|t−s|/τ}`` (white noise of amplitude σ as τ → 0),
advanced exactly, ``η⁺ = e^{−h/τ} η + σ √((1 − e^{−2h/τ}) / (2τ)) ξ``; the step adds
``h η⁺`` where white noise adds ``σ √h ξ`` (see :func:`coloured_increments`).

Where the delayed input is evaluated (``coupling_evaluation``):

``"stage"`` (default)
    each stage uses the delayed state at its own stage time — exact history samples at
    ``t`` and ``t+h``, cubic interpolation at ``t+h/2`` (:mod:`cosim.history`) — so Heun is
    second and RK4 fourth order also for delay equations.
``"step"``
    ``c(t)`` is computed once at the start of the step and held for all stages, as The
    Virtual Brain does; the delayed term is then only first-order accurate, but the results
    match TVB's.

Every scheme is an explicit tableau (:class:`Scheme`) run by the same kernel, so one
compiled kernel per (model, options, coupling) serves all four integrators and both
coupling evaluations.

Kernels: one numba function integrates a whole window (many steps) for all nodes.  The
templates below (plain Python functions) refer to three names that are bound per kernel:
``model_dfun``, ``coupling_afferent`` and ``coupling_post``.  :func:`get_kernels` binds them
by creating the functions again with a globals dict that holds the chosen model and
coupling, and gives each combination its own qualified name that includes a hash of the
source files involved — so numba's on-disk cache (``cache=True``) keeps one entry per
(model, options, coupling) and invalidates it when any of those sources change.  (Closures
over numba functions cannot be cached across processes: numba hashes the closure cells,
which contain per-process ids.)  A second process loads the kernel instead of compiling it.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import types
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit

from .history import (AT_END, AT_HALF, AT_START, BLOCK, far_block, far_value, instant_sum,
                      instant_sum_stored, near_sum, push)

EVALUATIONS = ("stage", "step")


@dataclass(frozen=True)
class Scheme:
    """An explicit scheme with at most one nonzero coefficient per tableau row.

    Stage ``s`` evaluates ``k_s = f(x_s, c(t + when_s))`` at ``x_0 = x``,
    ``x_s = x + dt a_s k_{s−1}`` (+ ``σ √dt ξ`` if ``noise_stages``); the step is
    ``x⁺ = x + dt Σ_s b_s k_s`` (+ ``σ √dt ξ`` if ``noise_final``), the same ``ξ`` throughout.
    """

    a: tuple[float, ...]
    b: tuple[float, ...]
    when: tuple[int, ...]
    noise_stages: bool = False
    noise_final: bool = False
    order: int = 1

    def arrays(self):
        """The tableau as kernel arguments ``(a, b, when, noise_stages, noise_final)``."""
        return (np.array(self.a, dtype=np.float64), np.array(self.b, dtype=np.float64),
                np.array(self.when, dtype=np.int64), self.noise_stages, self.noise_final)


SCHEMES = {
    "euler": Scheme((0.0,), (1.0,), (AT_START,), order=1),
    "heun": Scheme((0.0, 1.0), (0.5, 0.5), (AT_START, AT_END), order=2),
    "rk4": Scheme((0.0, 0.5, 0.5, 1.0), (1 / 6, 1 / 3, 1 / 3, 1 / 6),
                  (AT_START, AT_HALF, AT_HALF, AT_END), order=4),
    "euler_maruyama": Scheme((0.0,), (1.0,), (AT_START,), noise_final=True),
    "stochastic_heun": Scheme((0.0, 1.0), (0.5, 0.5), (AT_START, AT_END),
                              noise_stages=True, noise_final=True),
}
#: The adaptive embedded Runge–Kutta (Dormand–Prince 5(4)), for delay-free systems.
ADAPTIVE = ("dopri5",)
INTEGRATORS = tuple(SCHEMES) + ADAPTIVE
STOCHASTIC = tuple(k for k, v in SCHEMES.items() if v.noise_final)
MAX_STAGES = max(len(v.a) for v in SCHEMES.values())


# Dormand–Prince 5(4) tableau (Hairer, Nørsett & Wanner, Solving ODEs I, table 5.2)
DOPRI_A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0],
    [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]])
DOPRI_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
DOPRI_E = DOPRI_B - np.array([5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200,
                              187 / 2100, 1 / 40])
DOPRI_STAGES = 7


def read_ahead(integrator: str, evaluation: str) -> int:
    """How many steps past the current step ``n`` the delayed input of a step reaches: for
    a delay of ``d`` steps the stages read the history up to step ``n + r − d``, with
    ``r = 0`` at ``t_n``, 1 at ``t_{n+1}`` and 2 at ``t_n + dt/2`` (the cubic stencil,
    :mod:`cosim.history`); with ``"step"`` evaluation only ``t_n`` is read."""
    if integrator in ADAPTIVE:
        return 0
    when = SCHEMES[integrator].when
    if evaluation == "step":
        when = when[:1]
    return max({AT_START: 0, AT_END: 1, AT_HALF: 2}[w] for w in when)


# ----------------------------------------------------------------------------------------
# Templates.  Free names bound per kernel: model_dfun, coupling_afferent, coupling_post.
# Argument groups (tuples keep the signatures short):
#   scheme = Scheme.arrays()
#   ring   = (hist, dring)                          history.py buffers
#   net    = (far ptr, src, lag, w, near ptr, src, lag, w, instant ptr, src, w, rowsum)
#   model  = (p, cvar, cp, lo, hi, bounded)         parameters and bounds
#   drive  = (ext, xi, amp, nvar, mult, g0, g1, su, sc)   external input, noise (mult:
#            multiplicative; g0, g1 (n, q) work arrays of the diffusion), stimuli
#            su (S, 3, n, n_state) added to the derivatives and sc (S, 3, n, n_inputs) to
#            the coupling input at step s and stimulus time AT_* (first axis 0: none)
#   out    = (rec_vars, rec, rec_first, rec_every, exp_aff, crec)   crec (rec, input, n):
#            coupling record (0 rows: none)
#   ks (MAX_STAGES, n, n_state) stage derivatives;  xs (n, n_state) stage state
#   cw     = (c, sn, si, st, aff)                   coupling work arrays
# `n` is the global step number; stage times `when` are history.AT_*.
# ----------------------------------------------------------------------------------------

def _t_afferent(x, cvar, cp, aff):
    for i in range(x.shape[0]):
        coupling_afferent(x, cvar, cp, i, aff)  # noqa: F821 (bound per kernel)


def _t_far_ready(n, dnext, ring, net):
    """Compute far-edge sums block by block until they are known up to step n + 2."""
    while dnext <= n + 2:
        far_block(ring[0], dnext, net[0], net[1], net[2], net[3], ring[1])
        dnext += BLOCK
    return dnext


def _t_input_sums(x, n, when, net, ring, model, cw):
    """cw.st = weighted delayed sum at stage time `when` of step n, for stage state x."""
    sn, si, st, aff = cw[1], cw[2], cw[3], cw[4]
    has_near = net[4][-1] > 0
    has_instant = net[8][-1] > 0
    if has_near:
        near_sum(ring[0], n, when, net[4], net[5], net[6], net[7], sn)
    if has_instant and when == AT_START:      # x is the state of step n: stored already
        instant_sum_stored(ring[0], n, net[8], net[9], net[10], si)
    elif has_instant:
        _t_afferent(x, model[1], model[2], aff)
        instant_sum(aff, net[8], net[9], net[10], si)
    for i in range(st.shape[0]):
        for k in range(st.shape[1]):
            v = far_value(ring[1], n, when, i, k)
            if has_near:
                v += sn[i, k]
            if has_instant:
                v += si[i, k]
            st[i, k] = v


def _t_rates(x, n, when, held, net, ring, model, drive, s, sw, cw, ks, stage):
    """ks[stage] = f(x, c) + su, c = post(sum, x) + ext + sc; with `held`, c is the last
    one.  su, sc = drive[7], drive[8]: stimuli of step s at stimulus time sw (AT_*) added
    to the derivatives and to the coupling input (empty: none)."""
    p = model[0]
    c = cw[0]
    ext, su, sc = drive[0], drive[7], drive[8]
    es = s if ext.shape[0] > 1 else 0
    if not held:
        _t_input_sums(x, n, when, net, ring, model, cw)
        st, rowsum, cvar, cp = cw[3], net[11], model[1], model[2]
        for i in range(x.shape[0]):
            coupling_post(st, x, cvar, rowsum, cp, i, c)  # noqa: F821
            for k in range(c.shape[1]):
                c[i, k] += ext[es, i, k]
            if sc.shape[0] > 0:
                for k in range(c.shape[1]):
                    c[i, k] += sc[s, sw, i, k]
    dx = ks[stage]
    for i in range(x.shape[0]):
        model_dfun(x, c, p, i, dx)  # noqa: F821
        if su.shape[0] > 0:
            for k in range(dx.shape[1]):
                dx[i, k] += su[s, sw, i, k]


def _t_bound(x, model):
    if model[5]:
        lo, hi = model[3], model[4]
        for i in range(x.shape[0]):
            for k in range(x.shape[1]):
                if x[i, k] < lo[k]:
                    x[i, k] = lo[k]
                elif x[i, k] > hi[k]:
                    x[i, k] = hi[k]


def _t_add_noise(x, s, drive, g):
    """x += amp ξ, times the diffusion g(x)/σ = g[i, q] for multiplicative noise."""
    xi, amp, nvar, mult = drive[1], drive[2], drive[3], drive[4]
    for i in range(x.shape[0]):
        for q in range(nvar.shape[0]):
            if mult:
                x[i, nvar[q]] += amp[i, q] * xi[i, s, q] * g[i, q]
            else:
                x[i, nvar[q]] += amp[i, q] * xi[i, s, q]


def _t_finish_step(s, n, x, ring, net, model, out, nrec, cw):
    """After step s of the window (new global step n): store afferents, record, export.
    With a coupling record (``crec`` with rows), a recorded step also records the network
    coupling input c(t_n) = post(delayed sum at t_n, x_n), without external input — what
    the next step's first stage computes (TVB's ``AfferentCoupling``)."""
    aff = cw[4]
    _t_afferent(x, model[1], model[2], aff)
    push(ring[0], n, aff)
    rec_vars, rec, rec_first, rec_every, exp_aff, crec = out
    if s + 1 >= rec_first and (s + 1 - rec_first) % rec_every == 0 and nrec < rec.shape[0]:
        for v in range(rec_vars.shape[0]):
            for i in range(x.shape[0]):
                rec[nrec, v, i] = x[i, rec_vars[v]]
        if crec.shape[0] > 0:
            _t_input_sums(x, n, AT_START, net, ring, model, cw)
            st, rowsum, cvar, cp, c = cw[3], net[11], model[1], model[2], cw[0]
            for i in range(x.shape[0]):
                coupling_post(st, x, cvar, rowsum, cp, i, c)  # noqa: F821
                for k in range(c.shape[1]):
                    crec[nrec, k, i] = c[i, k]
        nrec += 1
    if exp_aff.shape[0] > 0:
        for i in range(aff.shape[0]):
            for k in range(aff.shape[1]):
                exp_aff[s, i, k] = aff[i, k]
    return nrec


def _t_integrate(n_steps, dt, held, scheme, x, ring, clock, net, model, drive, out, ks, xs, cw):
    """Integrate n_steps steps of the whole network in place (see module docstring)."""
    a, b, when, noise_stages, noise_final = scheme
    n_stages = a.shape[0]
    n, dnext = clock[0], clock[1]
    nrec = 0
    mult, g0, g1 = drive[4], drive[5], drive[6]
    nvar = drive[3]
    for s in range(n_steps):
        dnext = _t_far_ready(n, dnext, ring, net)
        if mult:                                  # diffusion at the start of the step
            for i in range(x.shape[0]):
                for q in range(nvar.shape[0]):
                    g0[i, q] = x[i, nvar[q]]
        for stage in range(n_stages):
            if stage == 0:
                for i in range(x.shape[0]):
                    for k in range(x.shape[1]):
                        xs[i, k] = x[i, k]
            else:
                h = dt * a[stage]
                prev = ks[stage - 1]
                for i in range(x.shape[0]):
                    for k in range(x.shape[1]):
                        xs[i, k] = x[i, k] + h * prev[i, k]
                if noise_stages:
                    _t_add_noise(xs, s, drive, g0)
                _t_bound(xs, model)
            _t_rates(xs, n, when[stage], held and stage > 0, net, ring, model, drive, s,
                     when[stage], cw, ks, stage)
        for i in range(x.shape[0]):
            for k in range(x.shape[1]):
                acc = 0.0
                for stage in range(n_stages):
                    acc += b[stage] * ks[stage, i, k]
                x[i, k] += dt * acc
        if noise_final:
            if mult and noise_stages:             # Stratonovich: mean of x and x̃
                for i in range(x.shape[0]):
                    for q in range(nvar.shape[0]):
                        g1[i, q] = 0.5 * (g0[i, q] + xs[i, nvar[q]])
                _t_add_noise(x, s, drive, g1)
            else:
                _t_add_noise(x, s, drive, g0)
        _t_bound(x, model)
        n += 1
        nrec = _t_finish_step(s, n, x, ring, net, model, out, nrec, cw)
    clock[0], clock[1] = n, dnext


def _t_integrate_adaptive(n_steps, dt, tol, x, ring, clock, net, model, drive, out, ks, xs,
                          cw, hs):
    """Dormand–Prince 5(4) with step-size control inside each step of dt (the output grid):
    substeps h adapt so that the embedded error estimate, in the norm
    sqrt(mean((e / (atol + rtol max(|x|, |x⁺|)))²)), is ≤ 1; h is carried from step to
    step in hs[0] (substeps counted in hs[1], rejections in hs[2]).  Coupling is evaluated
    from every stage state (delay-free systems only, instant edges)."""
    A, B, Ee = tol[0], tol[1], tol[2]
    rtol, atol = tol[3][0], tol[3][1]
    n, dnext = clock[0], clock[1]
    nrec = 0
    nn, nsv = x.shape[0], x.shape[1]
    for s in range(n_steps):
        t = 0.0
        while t < dt * (1.0 - 1e-12):
            h = hs[0]
            last = False
            if h >= dt - t:
                h = dt - t
                last = True
            for stage in range(7):
                for i in range(nn):
                    for k in range(nsv):
                        acc = 0.0
                        for j in range(stage):
                            acc += A[stage, j] * ks[j, i, k]
                        xs[i, k] = x[i, k] + h * acc
                if stage > 0:
                    _t_bound(xs, model)
                _t_rates(xs, n, AT_END, False, net, ring, model, drive, s, AT_START, cw,
                         ks, stage)
            # xs now holds the 5th-order solution (row 7 of A is B); error estimate
            err = 0.0
            for i in range(nn):
                for k in range(nsv):
                    e = 0.0
                    for j in range(7):
                        e += Ee[j] * ks[j, i, k]
                    sc = atol + rtol * max(abs(x[i, k]), abs(xs[i, k]))
                    q = h * e / sc
                    err += q * q
            err = math.sqrt(err / (nn * nsv))
            if err <= 1.0:
                for i in range(nn):
                    for k in range(nsv):
                        x[i, k] = xs[i, k]
                t = dt if last else t + h
                hs[1] += 1.0
            else:
                hs[2] += 1.0
            fac = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** -0.2))
            if err > 1.0:
                fac = min(fac, 1.0)
            if not (last and err <= 1.0 and fac >= 1.0):
                hs[0] = h * fac              # keep the unclipped h across the grid point
        _t_bound(x, model)
        n += 1
        nrec = _t_finish_step(s, n, x, ring, net, model, out, nrec, cw)
    clock[0], clock[1] = n, dnext


def _t_fill_history(states, cvar, cp, hist, aff):
    """Store the afferent values of ``states`` (T, n_nodes, n_state), the states of steps
    −(T−1) … 0, in the ring ``hist``."""
    T = states.shape[0]
    for t in range(T):
        _t_afferent(states[t], cvar, cp, aff)
        push(hist, t - (T - 1), aff)


_HELPERS = (_t_afferent, _t_far_ready, _t_input_sums, _t_rates, _t_bound, _t_add_noise,
            _t_finish_step)


# ----------------------------------------------------------------------------------------
# Specialisation
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kernels:
    """The compiled kernels for one (model, options, coupling); every integrator uses them.

    ``step(n_steps, dt, held, scheme, x, ring, clock, net, model, drive, out, ks, xs, cw)``
    integrates ``n_steps`` steps in place (``clock``: global step number and first step
    whose far sum is not yet in the ring, see :func:`cosim.history.far_start`; ``held``
    selects ``coupling_evaluation = "step"``); ``fill(states, cvar, cp, hist, aff)`` stores
    a state history as afferent values.
    """

    step: Callable
    fill: Callable
    tag: str
    adaptive: Callable | None = None


_KERNELS: dict[tuple, Kernels] = {}

# Kernels never allocate, so they run without numba's reference counting (which would
# otherwise incref/decref arrays taken out of the argument tuples for every node) and with
# IEEE division (no zero-division branch in every dfun).
_FLAGS = dict(_nrt=False, error_model="numpy")


def _source_hash(*funcs) -> str:
    """Hash of the functions' code and of their source files (if they have one): the
    on-disk kernel is reused only while none of the sources it was built from changed."""
    h = hashlib.sha256()
    files = set()
    funcs = list(funcs)
    seen = set()
    while funcs:
        f = funcs.pop()
        py = getattr(f, "py_func", f)
        if py in seen:
            continue
        seen.add(py)
        # numba functions it calls (e.g. the shared sigmoid) are part of the kernel too
        funcs.extend(g for n in py.__code__.co_names
                     if hasattr(g := py.__globals__.get(n), "py_func"))
        code = py.__code__
        h.update(f"{py.__module__}.{py.__qualname__}".encode())
        h.update(code.co_code)
        h.update(repr(code.co_consts).encode())
        try:
            path = inspect.getsourcefile(py)
        except TypeError:
            path = None
        if path:
            files.add(path)
    for path in sorted(files):
        try:
            with open(path, "rb") as fh:
                h.update(fh.read())
        except OSError:
            pass
    return h.hexdigest()[:10]


def _rebound(template, glb: dict, name: str | None = None):
    """``template`` as a new function whose global names resolve in ``glb``."""
    fn = types.FunctionType(template.__code__, glb, name or template.__name__,
                            template.__defaults__, getattr(template, "__closure__", None))
    fn.__qualname__ = name or template.__qualname__
    fn.__module__ = __name__
    fn.__doc__ = template.__doc__
    return fn


def _inlined(fn):
    """``fn`` (a Python or numba function) inlined at numba-IR level into its callers."""
    return njit(inline="always", **_FLAGS)(getattr(fn, "py_func", fn))


def get_kernels(model_name: str, option_values: tuple[str, ...], dfun: Callable,
                coupling) -> Kernels:
    """Compile (or load from numba's on-disk cache) the kernels for one combination.

    ``dfun`` is the model's numba dfun for ``option_values``; ``coupling`` a
    :class:`cosim.coupling.Coupling`.  Memoised per process.
    """
    key = (model_name, dfun, coupling.afferent, coupling.post)
    if key in _KERNELS:
        return _KERNELS[key]
    digest = _source_hash(dfun, coupling.afferent, coupling.post, far_block, _t_integrate)
    opts = "_".join(option_values)
    tag = f"{model_name}{'_' + opts if opts else ''}__{coupling.name}__{digest}"
    glb = dict(globals())
    glb.update(model_dfun=_inlined(dfun), coupling_afferent=_inlined(coupling.afferent),
               coupling_post=_inlined(coupling.post), far_value=_inlined(far_value))
    for helper in _HELPERS:
        glb[helper.__name__] = _inlined(_rebound(helper, glb))
    # the window kernels release the GIL (nogil): the output's writes behind the run
    # (cosim.recording) overlap them
    kernels = Kernels(
        step=njit(cache=True, nogil=True, **_FLAGS)(_rebound(_t_integrate, glb, f"kernel__{tag}")),
        fill=njit(cache=True, **_FLAGS)(_rebound(_t_fill_history, glb, f"fill__{tag}")),
        tag=tag,
        adaptive=njit(cache=True, nogil=True, **_FLAGS)(_rebound(_t_integrate_adaptive, glb,
                                                                f"adaptive__{tag}")))
    _KERNELS[key] = kernels
    return kernels


def coloured_increments(xi: np.ndarray, eta: np.ndarray, sigma: np.ndarray, dt_ms: float,
                        tau_ms: float) -> np.ndarray:
    """Increments ``h η_s`` of coloured (Ornstein–Uhlenbeck) noise for one window, from the
    standard normal draws ``xi`` (n, steps, q); ``eta`` (n, q), the force at the start,
    is advanced in place (module docstring: exact OU update, order-free)."""
    E = math.exp(-dt_ms / tau_ms)
    b = np.asarray(sigma, dtype=np.float64) * math.sqrt((1.0 - E * E) / (2.0 * tau_ms))
    out = np.empty_like(xi)
    for s in range(xi.shape[1]):
        eta *= E
        eta += b * xi[:, s, :]
        out[:, s, :] = dt_ms * eta
    return out


def noise_scale(sigma: np.ndarray, dt_ms: float) -> np.ndarray:
    """Per-step noise amplitude ``σ √dt`` (σ in state unit per √ms)."""
    return np.asarray(sigma, dtype=np.float64) * math.sqrt(dt_ms)
