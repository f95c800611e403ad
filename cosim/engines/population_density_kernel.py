"""The numerical kernel of the population-density engine: Fokker–Planck equations of LIF
populations, one conservative finite-volume step after another.

Equation (population ``k``, V in mV, t in ms)::

    ∂p/∂t = −∂F/∂V + r(t − τ_ref) δ(V − V_r),   F = a(V) p − D ∂p/∂V,
    a(V) = (μ − V)/τ,   D = σ²/(2τ),   p(V_th) = 0 (absorbing),   F(V_min) = 0 (reflecting),
    r(t) = F(V_th, t)

— the diffusion approximation of ``τ dV = (μ − V) dt + σ √τ dW``.  ``μ, σ²`` come from the
inputs (see :mod:`cosim.engines.population_density`).

Space: ``N`` cells of width ``h`` between ``V_min`` and ``V_th`` (the top face is the
threshold).  The flux through a face between cell centres ``L`` and ``R`` is the
Scharfetter–Gummel flux (exact for constant ``a, D`` between the centres)::

    F = (D/h) [B(−x) p_L − B(x) p_R],   x = a h / D,   B(x) = x / (e^x − 1)

with ``a`` at the face; at the threshold the same flux between the last centre and the
boundary value 0 at distance ``h/2``.  ``D = 0`` gives the upwind flux.  The reset ``V_r`` is
a face; the reinjected flux goes half into each of its two cells.

Time: backward Euler, ``(I − Δt A(μ, σ)) p^{n+1} = p^n + Δt S^{n+1}``, ``S`` the reinjection
of the rate ``r^{n+1−d}`` (``d = τ_ref/Δt ≥ 1`` steps ago, from the rate history), and
``r^{n+1} = F_th(p^{n+1})``.  The matrix is tridiagonal with positive diagonal, non-positive
off-diagonals and column sums 1 (interior) — an M-matrix: the Thomas solve (no pivoting)
keeps ``p ≥ 0`` in floating point (every operation adds non-negative numbers) and the
total probability ``h Σ p + Δt Σ_{last d steps} r`` is conserved up to round-off.
First order in time, second order in ``h`` (measured in ``tests/test_population_density.py``).
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit

#: Per-population grid and neuron constants (arrays over populations).
Grid = namedtuple("Grid", "offset n_cells h v_min tau mu0 reset_cell ref_steps tau_syn v_reset")
#: Inputs: external Poisson groups (driven by the bus drive and/or constant) and recurrent
#: projections; rates in 1/ms, weights mV.
Inputs = namedtuple("Inputs", "ext_target ext_j ext_k ext_gain ext_rate "
                              "rec_source rec_target rec_j rec_k rec_delay")
#: Mutable state: density (all populations, concatenated), rate history ring
#: (slot, population) in 1/ms, filtered moments (μ, σ²) per population, step counter.
State = namedtuple("State", "p hist mu s2 clock")


@njit(cache=True)
def _b(x):
    """Bernoulli function ``x / (e^x − 1)`` (1 at 0)."""
    if x == 0.0:
        return 1.0
    if x > 700.0:
        return 0.0
    return x / math.expm1(x)


@njit(cache=True)
def _coeffs(a, D, dist):
    """``(c+, c−)``: flux = c+ p_L − c− p_R across distance ``dist``."""
    if D <= 0.0:
        return max(a, 0.0), max(-a, 0.0)
    x = a * dist / D
    bx = _b(x)
    return D / dist * (bx + x), D / dist * bx          # B(−x) = B(x) + x


@njit(cache=True)
def moments_in(k, s_drive, grid, inp, hist, n, R, out):
    """Input ``(μ, σ²)`` of population ``k`` at step ``n + 1`` into ``out[0:2]``."""
    tau = grid.tau[k]
    mu = grid.mu0[k]
    s2 = 0.0
    for g in range(inp.ext_target.size):
        if inp.ext_target[g] == k:
            nu = inp.ext_gain[g] * s_drive + inp.ext_rate[g]
            if nu < 0.0:
                nu = 0.0
            jk = inp.ext_j[g] * inp.ext_k[g] * nu
            mu += tau * jk
            s2 += tau * inp.ext_j[g] * jk
    for e in range(inp.rec_source.size):
        if inp.rec_target[e] == k:
            nu = hist[(n + 1 - inp.rec_delay[e]) % R, inp.rec_source[e]]
            jk = inp.rec_j[e] * inp.rec_k[e] * nu
            mu += tau * jk
            s2 += tau * inp.rec_j[e] * jk
    out[0] = mu
    out[1] = s2


@njit(cache=True)
def step_population(k, dt, mu, s2, grid, p, cw, r_in):
    """One backward-Euler step of population ``k`` with moments ``(mu, s2)`` and
    reinjected rate ``r_in`` (1/ms); returns the outflux ``r^{n+1}`` (1/ms).  ``cw``: work
    array of ``n_cells`` (the Thomas sweep's modified upper diagonal)."""
    o = grid.offset[k]
    N = grid.n_cells[k]
    h = grid.h[k]
    tau = grid.tau[k]
    vmin = grid.v_min[k]
    D = 0.5 * s2 / tau
    lam = dt / h
    ir = grid.reset_cell[k]
    # reinjection: half into each cell next to the reset face
    src = 0.5 * dt * r_in / h
    p[o + ir - 1] += src
    p[o + ir] += src
    cp_low = 0.0
    cm_low = 0.0
    c_prev = 0.0
    d_prev = 0.0
    cp_up = 0.0
    for i in range(N):
        if i < N - 1:
            vf = vmin + (i + 1) * h
            cp_up, cm_up = _coeffs((mu - vf) / tau, D, h)
        else:
            vf = vmin + N * h
            cp_up, cm_up = _coeffs((mu - vf) / tau, D, 0.5 * h)
            cm_up = 0.0
        lower = -lam * cp_low
        diag = 1.0 + lam * (cm_low + cp_up)
        upper = -lam * cm_up
        denom = diag - lower * c_prev
        c_prev = upper / denom
        d_prev = (p[o + i] - lower * d_prev) / denom
        cw[i] = c_prev
        p[o + i] = d_prev
        cp_low = cp_up
        cm_low = cm_up
    for i in range(N - 2, -1, -1):
        p[o + i] -= cw[i] * p[o + i + 1]
    return cp_up * p[o + N - 1]


@njit(cache=True)
def advance_window(n_bus, substeps, dt, drive, grid, inp, st, cw, mom, rate_out, vmean_out,
                   mu_out, sigma_out):
    """``n_bus`` bus steps of ``substeps`` backward-Euler steps of ``dt`` each, the bus
    drive ``drive[m]`` held over bus step ``m``.  Outputs per bus step and population:
    mean rate over the step (1/ms), mean V of all neurons (refractory ones at V_r, as NEST
    clamps them) at the step end, and the step-end moments ``μ`` and ``σ`` (mV)."""
    n_pop = grid.offset.size
    R = st.hist.shape[0]
    for m in range(n_bus):
        for k in range(n_pop):
            rate_out[m, k] = 0.0
        for q in range(substeps):
            n = st.clock[0]
            for k in range(n_pop):
                moments_in(k, drive[m], grid, inp, st.hist, n, R, mom)
                ts = grid.tau_syn[k]
                if ts > 0.0:
                    e = math.exp(-dt / ts)
                    st.mu[k] = mom[0] + (st.mu[k] - mom[0]) * e
                    st.s2[k] = mom[1] + (st.s2[k] - mom[1]) * e
                else:
                    st.mu[k] = mom[0]
                    st.s2[k] = mom[1]
                r_in = st.hist[(n + 1 - grid.ref_steps[k]) % R, k]
                mom[2 + k] = step_population(k, dt, st.mu[k], st.s2[k], grid, st.p,
                                             cw[k], r_in)
            for k in range(n_pop):
                st.hist[(n + 1) % R, k] = mom[2 + k]
                rate_out[m, k] += mom[2 + k]
            st.clock[0] = n + 1
        for k in range(n_pop):
            rate_out[m, k] /= substeps
            vmean_out[m, k] = mean_v(k, grid, st.p, st.hist, st.clock[0], dt)
            mu_out[m, k] = st.mu[k]
            sigma_out[m, k] = math.sqrt(max(st.s2[k], 0.0))


@njit(cache=True)
def refractory_mass(k, grid, hist, n, dt):
    """Probability of population ``k`` in the refractory period after step ``n``:
    ``Δt Σ r^m`` over the last ``d`` steps (fired, not yet reinjected)."""
    R = hist.shape[0]
    acc = 0.0
    for j in range(grid.ref_steps[k]):
        acc += hist[(n - j) % R, k]
    return dt * acc


@njit(cache=True)
def mean_v(k, grid, p, hist, n, dt):
    o = grid.offset[k]
    h = grid.h[k]
    acc = 0.0
    for i in range(grid.n_cells[k]):
        acc += p[o + i] * (grid.v_min[k] + (i + 0.5) * h)
    return h * acc + refractory_mass(k, grid, hist, n, dt) * grid.v_reset[k]


@njit(cache=True)
def masses(grid, p, hist, n, dt, out):
    """Total probability of every population (density plus refractory) after step ``n``,
    and the smallest density value: ``out[k, 0]`` mass, ``out[k, 1]`` min p."""
    for k in range(grid.offset.size):
        o = grid.offset[k]
        acc = 0.0
        lo = np.inf
        for i in range(grid.n_cells[k]):
            acc += p[o + i]
            if p[o + i] < lo:
                lo = p[o + i]
        out[k, 0] = grid.h[k] * acc + refractory_mass(k, grid, hist, n, dt)
        out[k, 1] = lo
