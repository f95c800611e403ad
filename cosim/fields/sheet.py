"""The periodic neural-field sheet: ``τ ∂u/∂t = −u + (w ⊛ S(u(·, t − d)))(x) + I(x, t)``.

Domain: a 1-D ring of ``n`` points or a 2-D torus of ``n₀ × n₁`` points, spacing ``h`` mm
(size ``n h`` mm per axis), point ``i`` at ``x = i h``.

**Convolution** (O(N log N) per evaluation): the kernel is sampled once at the periodic
(minimum-image) distance of every grid point from the origin, ``w_i = w(|x_i|) h^D``, and
its real FFT ``ŵ_d = rfftn(w_i)`` is kept; ``w ⊛ f = irfftn(ŵ_d · rfftn(f))`` is the
periodic discrete convolution, which is the trapezoidal rule of the integral — spectrally
accurate for smooth kernels wider than ~2 h on domains much wider than the kernel.

**Delay**: ``d = D dt`` (a whole number of steps).  A ring holds the convolutions
``C_j = w ⊛ S(u_j)`` of the last ``D + 1`` steps, so each step reads its delayed input and
makes one new convolution (two for Heun without delay, whose corrector needs
``w ⊛ S(ũ)`` of the predicted state).  For ``t ≤ 0`` the field equals its initial value.

**Integrators** (explicit; the input ``I`` is held over each step, The Virtual Brain's rule
for delayed coupling):

* ``euler``: ``u_{n+1} = u_n + (dt/τ)(−u_n + C_{n−D} + I_n)`` (order 1);
* ``heun``:  ``ũ = u_n + (dt/τ) f_n``, ``f_n = −u_n + C_{n−D} + I_n``;
  ``u_{n+1} = u_n + (dt/2τ)(f_n − ũ + C̃ + I_n)`` with ``C̃ = C_{n+1−D}`` (``D ≥ 1``: the
  delayed input at the step's end is already in the ring, exact) or ``w ⊛ S(ũ)`` (``D = 0``)
  (order 2).

**Blocks** (:meth:`Sheet.run`): with ``D ≥ 1`` a step reads convolutions at least ``D − 1``
steps old, so up to ``D`` steps are one numba call (update, firing rates, means, snapshot
samples; the stimulus ``Σ_j a_j(t) p_j(x)`` from per-window amplitudes, nothing allocated)
followed by the ``scipy.fft`` transforms of the block's rates — the same numbers as step by
step.  ``D = 0`` with Heun needs
the convolution of the predicted state inside the step: one step per block.  Sums (the mean
rate, the mean field) run in index order, so results are bitwise reproducible.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy import fft as sfft

from .firing import Firing, fire

INTEGRATORS = ("heun", "euler")


@njit(cache=True)
def _predict(u, c, ib, stim, a, f, ut):
    """``f = −u + c + I``; ``ut = u + a f`` (``I = ib + stim``)."""
    for i in range(u.size):
        fi = -u[i] + c[i] + ib + stim[i]
        f[i] = fi
        ut[i] = u[i] + a * fi


@njit(cache=True)
def _correct(u, ut, c2, ib, stim, a, f):
    """``u ← u + (a/2)(f − ut + c2 + I)``."""
    h = 0.5 * a
    for i in range(u.size):
        u[i] = u[i] + h * (f[i] + (-ut[i] + c2[i] + ib + stim[i]))


@njit(cache=True)
def _block(u, ring, n0, B, D, a, heun, ib, prof, amps, kind, slope, threshold, f, ut, S,
           rsum, umean, snap_every, pts, snaps, k):
    """Steps ``n0 … n0 + B − 1`` (``B ≤ D``, or ``B = 1`` with Euler at ``D = 0``): the
    updates of :func:`_predict` / :func:`_correct` with ``I = ib[m] + Σ_j amps[m, j]
    prof[j]``, then ``S[m] = S(u)``, ``rsum[m] = Σ S(u)``, ``umean[m]`` = mean of ``u`` and,
    every ``snap_every`` steps, ``snaps[k] = u[pts]``.  Returns the new ``k``."""
    R = ring.shape[0]
    N = u.size
    J = prof.shape[0]
    h = 0.5 * a
    for m in range(B):
        n = n0 + m
        c = ring[(n - D) % R]
        c2 = ring[(n + 1 - D) % R]
        ibm = ib[m]
        for i in range(N):
            st = 0.0
            for j in range(J):
                st += amps[m, j] * prof[j, i]
            fi = -u[i] + c[i] + ibm + st
            ui = u[i] + a * fi
            if heun:
                ui = u[i] + h * (fi + (-ui + c2[i] + ibm + st))
            u[i] = ui
        acc = 0.0
        tot = 0.0
        for i in range(N):
            x = slope * (u[i] - threshold)
            if kind == 0:
                sv = 1.0 / (1.0 + math.exp(-x))
            else:
                sv = 0.5 * (1.0 + math.erf(x))
            S[m, i] = sv
            acc += sv
            tot += u[i]
        rsum[m] = acc
        umean[m] = tot / N
        if snap_every > 0 and (n + 1) % snap_every == 0:
            for p in range(pts.size):
                snaps[k, p] = u[pts[p]]
            k += 1
    return k


@njit(cache=True)
def _stimulus_sum(prof, amps, out):
    """``out = Σ_j amps[j] prof[j]`` (in ``j`` order, from 0.0 — as :func:`_block`)."""
    for i in range(out.size):
        st = 0.0
        for j in range(prof.shape[0]):
            st += amps[j] * prof[j, i]
        out[i] = st


@njit(cache=True)
def _mean(x):
    acc = 0.0
    for i in range(x.size):
        acc += x[i]
    return acc / x.size


def grid_distances(shape: tuple[int, ...], spacing_mm: float) -> np.ndarray:
    """Minimum-image distance (mm) of every grid point from point 0, shape ``shape``."""
    axes = [np.minimum(np.arange(n), n - np.arange(n)) * spacing_mm for n in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.sqrt(sum(m * m for m in mesh))


def grid_wavenumbers(shape: tuple[int, ...], spacing_mm: float) -> np.ndarray:
    """``|k|`` (rad/mm) of every coefficient of ``rfftn`` on the grid, its shape."""
    ks = [2 * math.pi * np.fft.fftfreq(n, d=spacing_mm) for n in shape[:-1]]
    ks.append(2 * math.pi * np.fft.rfftfreq(shape[-1], d=spacing_mm))
    mesh = np.meshgrid(*ks, indexing="ij")
    return np.sqrt(sum(m * m for m in mesh))


class Sheet:
    """The numerical sheet (no scenario, no bus): state, history ring and time stepping.

    ``shape``: points per axis (1 or 2 axes); ``spacing_mm``; ``tau_ms``; ``kernel`` (see
    :mod:`cosim.fields.kernels`); ``firing`` (:class:`~cosim.fields.firing.Firing`);
    ``delay_steps`` ``D``; ``dt_ms``; ``integrator``; ``I0`` constant input.
    """

    def __init__(self, shape, spacing_mm, tau_ms, kernel, firing: Firing, delay_steps: int,
                 dt_ms: float, integrator: str = "heun", I0: float = 0.0):
        self.shape = tuple(int(n) for n in shape)
        self.D = len(self.shape)
        self.N = int(np.prod(self.shape))
        self.h = float(spacing_mm)
        self.tau = float(tau_ms)
        self.kernel = kernel
        self.firing = firing
        self.delay_steps = int(delay_steps)
        self.dt = float(dt_ms)
        self.integrator = integrator
        self.I0 = float(I0)
        self.a = self.dt / self.tau
        self.R = self.delay_steps + 1

    # -- set-up ---------------------------------------------------------------------------
    def build(self, u_initial: np.ndarray) -> None:
        """Kernel transform, state and history from ``u_initial`` (held for t ≤ 0)."""
        w = self.kernel.value(grid_distances(self.shape, self.h), self.D) * self.h ** self.D
        self.w_hat = sfft.rfftn(w)                      # the one kernel transform
        self.u = np.ascontiguousarray(u_initial, dtype=np.float64).reshape(self.N).copy()
        self.ring = np.empty((self.R, self.N))          # C_j at slot j mod R
        self._s = np.empty(self.N)
        self._f = np.empty(self.N)
        self._ut = np.empty(self.N)
        self._c = np.empty(self.N)
        self._no_stim = np.zeros(self.N)
        self.step = 0
        c0 = self.convolve_rate(self.u)
        self.ring[:] = c0
        self.rate_mean = self.last_rate_sum / self.N

    def convolve_rate(self, u: np.ndarray) -> np.ndarray:
        """``w ⊛ S(u)`` (flat, N); sets ``last_rate_sum`` = ``Σ S(u)``."""
        f = self.firing
        self.last_rate_sum = fire(u, f.code, f.slope, f.threshold, self._s)
        spec = sfft.rfftn(self._s.reshape(self.shape))
        spec *= self.w_hat
        return sfft.irfftn(spec, s=self.shape).reshape(self.N)

    def discrete_hat(self) -> np.ndarray:
        """The kernel transform the sheet uses, real, ``rfftn`` layout (≈ ŵ(|k|))."""
        return self.w_hat.real

    # -- time stepping --------------------------------------------------------------------
    def advance(self, n_steps: int, drive: np.ndarray | None = None, stimulus=None,
                on_step=None) -> None:
        """``n_steps`` steps.  ``drive`` (n_steps,): spatially uniform input of each step
        (added to I0); ``stimulus(step) → (N,)``: a spatial input per step (the hook for
        stimuli); ``on_step(m)``: called after step ``m`` of the call (records)."""
        u, ring, R, D, a = self.u, self.ring, self.R, self.delay_steps, self.a
        heun = self.integrator == "heun"
        for m in range(n_steps):
            n = self.step
            ib = self.I0 + (0.0 if drive is None else float(drive[m]))
            stim = self._no_stim if stimulus is None else stimulus(n)
            c = ring[(n - D) % R]
            _predict(u, c, ib, stim, a, self._f, self._ut)
            if heun:
                c2 = ring[(n + 1 - D) % R] if D >= 1 else self.convolve_rate(self._ut)
                _correct(u, self._ut, c2, ib, stim, a, self._f)
            else:
                u[:] = self._ut
            ring[(n + 1) % R] = self.convolve_rate(u)
            self.rate_mean = self.last_rate_sum / self.N
            self.step = n + 1
            if on_step is not None:
                on_step(m)

    def run(self, n_steps: int, drive: np.ndarray | None = None, stimulus=None,
            snap_every: int = 0, snap_points: np.ndarray | None = None):
        """``n_steps`` steps in blocks (module docstring).  ``drive`` (n_steps,): uniform
        input of each step (added to I0); ``stimulus``: ``(profiles (J, N), amplitudes
        (n_steps, J))``, input ``Σ_j amplitudes[m, j] profiles[j]`` over step ``m``;
        ``snap_every`` > 0: ``u[snap_points]`` after every step ``n`` with ``n`` a multiple of
        it.  Returns ``(rate_mean, u_mean, snapshots)``: the mean firing rate and mean
        field after each step ``(n_steps,)``, the snapshots ``(k, points)``."""
        heun = self.integrator == "heun"
        D, R, N = self.delay_steps, self.R, self.N
        snap_every = int(snap_every or 0)
        if heun and D == 0:
            return self._run_steps(n_steps, drive, stimulus, snap_every, snap_points)
        ib = np.full(n_steps, self.I0) if drive is None else self.I0 + np.asarray(drive, float)
        prof, amps = (np.zeros((0, N)), np.zeros((n_steps, 0))) if stimulus is None else stimulus
        pts = np.zeros(0, dtype=np.int64) if snap_points is None else np.asarray(snap_points, np.int64)
        n_snap = (self.step + n_steps) // snap_every - self.step // snap_every if snap_every else 0
        snaps = np.empty((n_snap, pts.size))
        rsum, umean = np.empty(n_steps), np.empty(n_steps)
        Bmax = max(1, D)
        S = self._block_buffer(min(Bmax, n_steps))
        k = done = 0
        while done < n_steps:
            B = min(Bmax, n_steps - done)
            n0 = self.step
            k = _block(self.u, self.ring, n0, B, D, self.a, heun, ib[done:done + B], prof,
                       amps[done:done + B], self.firing.code, self.firing.slope,
                       self.firing.threshold, self._f, self._ut, S, rsum[done:done + B],
                       umean[done:done + B], snap_every, pts, snaps, k)
            for m in range(B):       # one transform pair per field: batching them is no
                spec = sfft.rfftn(S[m].reshape(self.shape))   # faster (cache) on large grids
                spec *= self.w_hat
                self.ring[(n0 + m + 1) % R] = sfft.irfftn(spec, s=self.shape,
                                                          overwrite_x=True).reshape(N)
            self.step = n0 + B
            done += B
        self.last_rate_sum = float(rsum[-1]) if n_steps else self.last_rate_sum
        rate = rsum / N
        if n_steps:
            self.rate_mean = float(rate[-1])
        return rate, umean, snaps

    def _block_buffer(self, B: int) -> np.ndarray:
        if getattr(self, "_S", None) is None or self._S.shape[0] < B:
            self._S = np.empty((B, self.N))
        return self._S

    def _run_steps(self, n_steps, drive, stimulus, snap_every, snap_points):
        """:meth:`run` one step at a time (Heun at ``D = 0``)."""
        rate, umean = np.empty(n_steps), np.empty(n_steps)
        pts = np.zeros(0, dtype=np.int64) if snap_points is None else np.asarray(snap_points, np.int64)
        snaps = []
        stim_buf = np.zeros(self.N)
        stim_fn = None
        if stimulus is not None:
            prof, amps = stimulus
            step0 = self.step

            def stim_fn(n):
                _stimulus_sum(prof, amps[n - step0], stim_buf)
                return stim_buf

        def on_step(m):
            rate[m] = self.rate_mean
            umean[m] = self.u_mean()
            if snap_every and self.step % snap_every == 0:
                snaps.append(self.u[pts].copy())
        self.advance(n_steps, drive, stim_fn, on_step)
        return rate, umean, np.array(snaps).reshape(len(snaps), pts.size)

    def u_mean(self) -> float:
        return _mean(self.u)

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"u": self.u.copy(), "history": self.ring.copy(), "step": np.array(self.step),
                "rate_mean": np.array(self.rate_mean)}

    def restore(self, state) -> None:
        for key, target in (("u", self.u), ("history", self.ring)):
            v = np.asarray(state[key])
            if v.shape != target.shape:
                raise ValueError(f"checkpoint {key!r} has shape {v.shape}, expected {target.shape}")
            target[...] = v
        self.step = int(np.asarray(state["step"]))
        self.rate_mean = float(np.asarray(state["rate_mean"]))
