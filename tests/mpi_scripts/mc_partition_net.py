"""A small recurrent E/I multicompartment region, shared by the partition tests.

Run as a script under ``mpiexec -n K`` it simulates partition ``rank`` of ``K`` on every
rank, exchanging spikes with ``Allgatherv``, and rank 0 writes all spikes and voltage
traces to the ``.npz`` named on the command line.
"""

from __future__ import annotations

import sys

import numpy as np

from cosim.engines.multicompartment import (CellGroup, Clamp, InputGroup, MulticompartmentEngine,
                                            Projection)
from cosim.multicompartment import ball_and_stick, y_shaped

T_END_MS = 40.0
N_EXC, N_INH = 32, 8
# every soma (so a one-ulp difference anywhere shows) and two dendrites
PROBES = [(g, "soma", 0.5) for g in range(N_EXC + N_INH)] + [(13, "dend", 0.5), (39, "branch_a", 0.5)]


def region(sync_ms: float = 1.0, ee_delay=(0.6, 0.7), seed: int = 11, n_inh: int = N_INH
           ) -> MulticompartmentEngine:
    """The unsplit region (nothing is built until ``build()`` or ``partition()``)."""
    cells = [CellGroup("exc", N_EXC, ball_and_stick(dend_nseg=3)),
             CellGroup("inh", n_inh, y_shaped(nseg=2))]
    projections = [
        Projection("ee", "exc", "exc", 8, ["AMPA", "NMDA"], [0.0041, 0.00107], delay_ms=ee_delay,
                   stp=(0.37, 150.0, 50.0)),
        # a second projection onto the same synapses, with other weights: sums of unequal terms
        Projection("ee2", "exc", "exc", 4, ["AMPA"], [0.00237], delay_ms=(0.6, 0.7), stp=(0.23, 20.0, 300.0)),
        Projection("ei", "exc", "inh", 10, ["AMPA"], [0.006], section="soma", delay_ms=(0.7, 1.5)),
        Projection("ie", "inh", "exc", min(3, n_inh), ["GABA_A"], [0.01], section="soma", delay_ms=(1.0, 1.0)),
    ]
    inputs = [InputGroup("bg", "exc", "AMPA", 0.012, per_cell=3),
              InputGroup("bg2", "exc", "AMPA", 0.0071, per_cell=2),
              InputGroup("bg_inh", "inh", "AMPA", 0.004, section="soma", per_cell=1)]
    # volleys: synchronous spikes make several events reach one synapse in one step
    clamps = [Clamp("exc", None, "soma", 0.5, 2.0, 1.0, 1.0), Clamp("exc", None, "soma", 0.5, 16.0, 1.0, 1.0),
              Clamp("exc", [1, 30], "soma", 0.5, 5.0, 5.0, 0.4)]
    probes = [p for p in PROBES if p[0] < N_EXC + n_inh]
    return MulticompartmentEngine("ctx", cells=cells, projections=projections, inputs=inputs,
                                  clamps=clamps, probes=probes, seed=seed, sync_interval_ms=sync_ms,
                                  record_period_ms=0.25)


def events(n_lines: int, t_end_ms: float = T_END_MS, rate_per_line_khz: float = 0.8, seed: int = 5):
    """Poisson-like external events ``(line int64[], time_ms float64[])``, sorted by time.

    Times are multiples of 1/8 ms, so that several events at one synapse often share a step.
    """
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate_per_line_khz * t_end_ms * n_lines)
    t = np.floor(rng.uniform(0.0, t_end_ms, n) * 8.0) / 8.0
    order = np.argsort(t, kind="stable")
    return rng.integers(0, n_lines, n)[order].astype(np.int64), t[order]


def window_events(ev, t0_ms: float, t1_ms: float, dt_ms: float):
    """The events delivered at steps in ``[t0, t1)`` (NEURON's nearest-step rule)."""
    k = np.ceil(ev[1] / dt_ms - 0.5 - 1e-9)
    sel = (k >= round(t0_ms / dt_ms)) & (k < round(t1_ms / dt_ms))
    return {"events": (ev[0][sel], ev[1][sel])}


def run(engine, ev, width_ms: float, t_end_ms: float = T_END_MS):
    """Advance ``engine`` in windows; return its spikes sorted by (time, gid) and v."""
    g, t, v = [], [], []
    for w in range(int(round(t_end_ms / width_ms))):
        t0, t1 = w * width_ms, (w + 1) * width_ms
        out = engine.advance(t0, t1, window_events(ev, t0, t1, engine.dt_ms))
        g.append(out.records["spikes"][0])
        t.append(out.records["spikes"][1])
        v.append(out.records["v"])
    g, t = np.concatenate(g), np.concatenate(t)
    order = np.lexsort((g, t))
    return g[order], t[order], np.concatenate(v)


def _mpi_main(path: str) -> None:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD

    def exchange(gids, times):
        counts = np.empty(comm.size, dtype=np.int64)
        comm.Allgather(np.array([gids.size], dtype=np.int64), counts)
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
        all_g = np.empty(int(counts.sum()), dtype=np.int64)
        all_t = np.empty(int(counts.sum()), dtype=np.float64)
        comm.Allgatherv(np.ascontiguousarray(gids, dtype=np.int64), [all_g, counts, displs, MPI.INT64_T])
        comm.Allgatherv(np.ascontiguousarray(times, dtype=np.float64), [all_t, counts, displs, MPI.DOUBLE])
        return all_g, all_t

    whole = region(sync_ms=2.0)
    eng = whole.partition(comm.rank, comm.size, exchange)
    eng.build()
    g, t, v = run(eng, events(whole.n_input_lines), 2.0)
    pieces = comm.gather((g, t, v, eng.probe_ids), root=0)
    if comm.rank == 0:
        g = np.concatenate([p[0] for p in pieces])
        t = np.concatenate([p[1] for p in pieces])
        order = np.lexsort((g, t))
        v_all = np.zeros((v.shape[0], 1, len(whole.probes)))
        for p in pieces:
            v_all[:, :, p[3]] = p[2]
        np.savez(path, gids=g[order], times=t[order], v=v_all, ranks=comm.size)


if __name__ == "__main__":
    _mpi_main(sys.argv[1])
