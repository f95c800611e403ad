"""The time-stepping kernel: cable equation on trees (Hines), HH gates, synapses, spikes.

Scheme — NEURON's default fixed step (``secondorder = 0``), so results compare closely:

1. deliver the synaptic events due at this step (``A += w·f, B += w·f``);
2. linearise the membrane current at ``v_n`` with the gates of the previous update and
   solve the backward-Euler cable equations for ``Δv`` with the Hines algorithm::

       (C/dt + g_ion + Σ g_ax) Δv_i − Σ_j g_ax,ij Δv_j
           = −i_ion(v_n) + Σ_j g_ax,ij (v_j − v_i) + i_stim(t_n + dt/2)

   (C nF, g µS, i nA; ``g_ion = ∂i/∂v``);
3. ``v_{n+1} = v_n + Δv``; HH gates by exponential Euler at ``v_{n+1}`` (staggered),
   node by node during the back substitution;
   synaptic ``A, B`` decay by ``exp(−dt/τ)``;
   *Crank–Nicolson* (``vfac = 2``, NEURON's ``secondorder = 2``): the same system with
   ``2C/dt`` in place of ``C/dt`` gives ``Δv = v(t_n + dt/2) − v_n`` (backward Euler over
   half a step) and ``v_{n+1} = v_n + 2Δv`` — the trapezoidal rule for the cable
   (θ = 1/2), second order in dt with the staggered gates; ion currents are moved to
   ``t_n + dt/2`` (``i += (∂i/∂v)·Δv``) for the mechanisms that read them.  ``vfac = 1``
   is backward Euler, bit for bit (a product by 1.0 is exact);
4. threshold detection: a spike at ``t_{n+1}`` when ``v`` rises above threshold; the
   spike's outgoing connections put ``w_eff`` (after short-term plasticity) into the event
   ring at step ``n+1+delay`` — at once (``inline``), or later through
   :func:`deliver_spikes` once the spikes of all partitions are known;
5. record sampled voltages.

The event ring has two layers, ``ring[0]`` for external events and ``ring[1]`` for
spikes; a step's input to a site is ``ring[0] + ring[1]``.  Each layer is filled in a
canonical order — external events by (time, line), spikes by (spike time, source gid,
connection index) — so the floating-point sums, hence the results, do not depend on how
a run is cut into windows or how the cells are split over partitions.

Layout: cells that share a morphology form a *batch*; a batch's node arrays are
``(node, cell)`` with the cell axis contiguous, so every loop over cells vectorises
(including the Hines sweeps, which run over nodes in the outer loop).  All batches live
in flat 1-D arrays at offsets given by ``batches[b] = (node_off, n_nodes, n_cells,
state_off)``: entry ``state_off + i·n_cells + c`` is node ``i`` of cell ``c``.

The kernel is a pure function of arrays and scalars, grouped in tuples, and does not
allocate.  It returns the number of steps done: fewer than asked when the spike buffer
is about to overflow — the caller enlarges it and calls again from there.
"""

from __future__ import annotations

from numba import njit

from .channels import hh_gate_step, hh_rates
from .compartments import CAP, EK, EL, ENA, EPAS, GAX, GK, GL, GNA, GPAS, GSUM
from .stp import tm_transmit
from .synapses import DEC1, DEC2, EREV, FACTOR, MGC, syn_current

# Rows of the state array.
V, M, H, N = 0, 1, 2, 3
N_STATE = 4


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def init_state(v_init, q10, tmpl, batches, state):
    """Set ``v = v_init`` (mV) everywhere and the HH gates to their steady state."""
    parent, node_par, has_hh = tmpl
    for b in range(batches.shape[0]):
        noff, nn, nc, soff = batches[b, 0], batches[b, 1], batches[b, 2], batches[b, 3]
        for i in range(nn):
            base = soff + i * nc
            minf, hinf, ninf, km, kh, kn = hh_rates(v_init, q10)
            for c in range(nc):
                state[V, base + c] = v_init
                state[M, base + c] = minf
                state[H, base + c] = hinf
                state[N, base + c] = ninf


# A function of its own (not inline="always"): the caller's fastmath must not contract
# ``ring += w·u·x`` into an FMA, so inline and deferred delivery give the same bits.
@njit(error_model="numpy", cache=True)
def _transmit(gid, step, t_ms, ring, conn):
    """Put the events of a spike of ``gid`` at ``t_ms`` (= ``step``·dt) into ``ring[1]``."""
    c_ptr, c_site, c_delay, c_w, stp_par, stp_state = conn
    if gid < 0 or gid >= c_ptr.size - 1:
        return
    n_slots = ring.shape[1]
    for q in range(c_ptr[gid], c_ptr[gid + 1]):
        w = c_w[q] * tm_transmit(stp_state, stp_par, q, t_ms)
        ring[1, (step + c_delay[q]) % n_slots, c_site[q]] += w


@njit(cache=True, error_model="numpy")
def deliver_spikes(gids, steps, times_ms, ring, conn):
    """Deliver spikes (``gids``, grid ``steps``, ``times_ms``), given in canonical order
    (time, then gid), to the local connections — what ``inline`` delivery does at once."""
    for i in range(gids.size):
        _transmit(gids[i], steps[i], times_ms[i], ring, conn)


@njit(cache=True, error_model="numpy")
def add_events(ring, slots, sites, weights):
    """Add external events to ``ring[0]`` one by one, in the order given (canonical)."""
    for i in range(slots.size):
        ring[0, slots[i], sites[i]] += weights[i]


# nogil: the GIL is released while a window runs, so the output's writes behind the run
# (cosim.recording) overlap it
@njit(cache=True, fastmath={"contract"}, error_model="numpy", nogil=True)
def run_window(n_steps, step0, dt, vfac, q10, tmpl, batches, state, work, syn, ring, conn,
               detect, spikes, stims, rec):
    """Advance ``n_steps`` steps starting at global step ``step0`` (t = step0·dt ms).

    ``vfac``: 1.0 for backward Euler, 2.0 for Crank–Nicolson (module doc).  Argument
    groups (tuples of arrays):

    * ``tmpl = (parent int64[n], node_par float64[11, n], has_hh uint8[n])`` — all batches'
      node templates, concatenated;
    * ``batches int64[n_batches, 4]``; ``state float64[4, n_state]`` (v mV, m, h, n);
      ``work float64[2, n_state]`` (diagonal, right-hand side);
    * ``syn = (site_k int64[s], site_par float64[s, 5], site_ab float64[s, 2])`` — flat
      state index, parameters (:data:`.synapses.SYN_PARAMS`), A and B (µS);
    * ``ring float64[2, n_slots, s]`` — summed event weights (µS) due at step ``k`` in
      row ``k % n_slots`` (layer 0 external events, layer 1 spikes);
    * ``conn = (ptr int64[n_gids+1], site int64[q], delay_steps int64[q], w float64[q],
      stp_par float64[q, 3], stp_state float64[q, 3])`` — outgoing connections of each
      (global) gid onto local sites (CSR);
    * ``detect = (det_k int64[n_cells], gid int64[n_cells], threshold_mV, above uint8[],
      inline)`` — ``inline = False`` leaves the delivery of the spikes to the caller;
    * ``spikes = (gid int64[cap], t_ms float64[cap], count int64[1])``;
    * ``stims = (stim_k int64[j], stim_par float64[j, 3], drive_k int64[m], drive_w
      float64[m], drive_pattern int64[m], drive_u float64[n_steps, n_patterns])`` —
      current clamps (delay ms, duration ms, amplitude nA), on during
      ``del ≤ t + dt/2 < del + dur``, and time-varying currents (stimuli):
      ``drive_w[j] · drive_u[s, drive_pattern[j]]`` nA at ``drive_k[j]`` in step ``s``;
    * ``rec = (rec_k int64[r], every, out float64[rows, r], first_row)`` — ``v`` at global
      step ``k`` (multiple of ``every``) goes to row ``k // every − first_row``.
    """
    parent, node_par, has_hh = tmpl
    v = state[V]
    gm = state[M]
    gh = state[H]
    gn = state[N]
    d = work[0]
    rhs = work[1]
    site_k, site_par, site_ab = syn
    det_k, det_gid, threshold, above, inline = detect
    sp_gid, sp_t, sp_count = spikes
    st_k, st_par, dr_k, dr_w, dr_pat, dr_u = stims
    rec_k, rec_every, rec_out, rec_first = rec
    n_slots = ring.shape[1]
    n_sites = site_k.size
    n_batches = batches.shape[0]
    inv_dt = vfac / dt          # vfac 1: backward Euler; 2: Crank–Nicolson (see module doc)
    for s in range(n_steps):
        step = step0 + s
        if sp_count[0] + det_k.size > sp_gid.size:
            return s
        # 1. events due now
        slot = step % n_slots
        for j in range(n_sites):
            w = ring[0, slot, j] + ring[1, slot, j]
            if w != 0.0:
                f = w * site_par[j, FACTOR]
                site_ab[j, 0] += f
                site_ab[j, 1] += f
                # @mechanisms: events
                ring[0, slot, j] = 0.0
                ring[1, slot, j] = 0.0
        # 2. membrane currents and axial terms.  Loops over cells use per-node slices
        # (non-negative indices) so that LLVM vectorises them.
        for b in range(n_batches):
            noff, nn, nc, soff = batches[b, 0], batches[b, 1], batches[b, 2], batches[b, 3]
            for i in range(nn):
                ni = noff + i
                lo = soff + i * nc
                vv = v[lo:lo + nc]
                dd = d[lo:lo + nc]
                rr = rhs[lo:lo + nc]
                d0 = node_par[CAP, ni] * inv_dt + node_par[GSUM, ni]
                gpas = node_par[GPAS, ni]
                epas = node_par[EPAS, ni]
                if has_hh[ni]:
                    gnab = node_par[GNA, ni]
                    gkb = node_par[GK, ni]
                    gl = node_par[GL, ni]
                    el = node_par[EL, ni]
                    ena = node_par[ENA, ni]
                    ek = node_par[EK, ni]
                    mm = gm[lo:lo + nc]
                    hh = gh[lo:lo + nc]
                    nn_ = gn[lo:lo + nc]
                    for c in range(nc):
                        vi = vv[c]
                        mi = mm[c]
                        ng2 = nn_[c] * nn_[c]
                        gna = gnab * mi * mi * mi * hh[c]
                        gk = gkb * ng2 * ng2
                        rr[c] = -(gna * (vi - ena) + gk * (vi - ek) + gl * (vi - el)
                                  + gpas * (vi - epas))
                        dd[c] = d0 + gna + gk + gl + gpas
                else:
                    for c in range(nc):
                        rr[c] = -gpas * (vv[c] - epas)
                        dd[c] = d0 + gpas
                if i > 0:
                    plo = soff + parent[ni] * nc
                    vp = v[plo:plo + nc]
                    rp = rhs[plo:plo + nc]
                    gax = node_par[GAX, ni]
                    for c in range(nc):
                        flow = gax * (vp[c] - vv[c])
                        rr[c] += flow
                        rp[c] -= flow
        # @mechanisms: currents
        # 3. synaptic and stimulus currents
        for j in range(n_sites):
            k = site_k[j]
            i_syn, g_syn = syn_current(site_ab[j, 1] - site_ab[j, 0], v[k],
                                       site_par[j, EREV], site_par[j, MGC])
            rhs[k] -= i_syn
            d[k] += g_syn
        t_mid = (step + 0.5) * dt
        for j in range(st_k.size):
            if st_par[j, 0] <= t_mid < st_par[j, 0] + st_par[j, 1]:
                rhs[st_k[j]] += st_par[j, 2]
        for j in range(dr_k.size):
            rhs[dr_k[j]] += dr_w[j] * dr_u[s, dr_pat[j]]
        # 4. Hines: eliminate leaves towards the root, then substitute back
        for b in range(n_batches):
            noff, nn, nc, soff = batches[b, 0], batches[b, 1], batches[b, 2], batches[b, 3]
            for i in range(nn - 1, 0, -1):
                ni = noff + i
                lo = soff + i * nc
                plo = soff + parent[ni] * nc
                dd = d[lo:lo + nc]
                rr = rhs[lo:lo + nc]
                dp = d[plo:plo + nc]
                rp = rhs[plo:plo + nc]
                gax = node_par[GAX, ni]
                for c in range(nc):
                    f = gax / dd[c]
                    dp[c] -= f * gax
                    rp[c] += f * rr[c]
            # 5. back substitution gives Δv; update v and (at the new v) the HH gates of
            # each node as soon as its Δv is known — one pass over memory instead of two.
            for i in range(nn):
                ni = noff + i
                lo = soff + i * nc
                dd = d[lo:lo + nc]
                rr = rhs[lo:lo + nc]
                vv = v[lo:lo + nc]
                if i == 0:
                    for c in range(nc):
                        rr[c] /= dd[c]
                else:
                    plo = soff + parent[ni] * nc
                    rp = rhs[plo:plo + nc]
                    gax = node_par[GAX, ni]
                    for c in range(nc):
                        rr[c] = (rr[c] + gax * rp[c]) / dd[c]
                if has_hh[ni]:
                    mm = gm[lo:lo + nc]
                    hh = gh[lo:lo + nc]
                    nn_ = gn[lo:lo + nc]
                    for c in range(nc):
                        vn = vv[c] + vfac * rr[c]
                        vv[c] = vn
                        minf, hinf, ninf, km, kh, kn = hh_rates(vn, q10)
                        mm[c] = hh_gate_step(mm[c], minf, km, dt)
                        hh[c] = hh_gate_step(hh[c], hinf, kh, dt)
                        nn_[c] = hh_gate_step(nn_[c], ninf, kn, dt)
                else:
                    for c in range(nc):
                        vv[c] += vfac * rr[c]
        # @mechanisms: second order
        # @mechanisms: states
        for j in range(n_sites):
            site_ab[j, 0] *= site_par[j, DEC1]
            site_ab[j, 1] *= site_par[j, DEC2]
        # 6. spikes and their outgoing events
        t_new = (step + 1) * dt
        for c in range(det_k.size):
            if v[det_k[c]] > threshold:
                if above[c] == 0:
                    above[c] = 1
                    n = sp_count[0]
                    sp_gid[n] = det_gid[c]
                    sp_t[n] = t_new
                    sp_count[0] = n + 1
                    if inline:
                        _transmit(det_gid[c], step + 1, t_new, ring, conn)
            else:
                above[c] = 0
        # 7. samples
        if rec_every > 0 and (step + 1) % rec_every == 0:
            row = (step + 1) // rec_every - rec_first
            for r in range(rec_k.size):
                rec_out[row, r] = v[rec_k[r]]
    return n_steps
