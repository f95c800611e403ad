"""Which connections a neural-mass engine simulates, and how its delay ring is laid out.

Rows of the delay ring (:mod:`cosim.history`): the engine's regions, in engine order, then —
when the engine is coupled through the bus — its *external sources*: every region outside
the engine with a nonzero weight into one of its regions, in increasing global index (the
list the bus computes too).  Whatever the rows, the edges of each target are kept in
increasing *global* source index, and ``Σ_j w_ij`` is summed over the whole global row, so
an engine that simulates part of the brain adds exactly the numbers, in exactly the order,
of one engine that simulates all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..history import BLOCK, edge_lists


@dataclass(frozen=True)
class Network:
    """The sparse network of one engine.

    ``net``: the kernel's edge lists ``far + near + instant + (rowsum,)`` (see
    :mod:`cosim.integrators`); ``external_sources``: global indices (int64, ascending),
    listed whether or not they are simulated; ``n_ring_rows``: rows of the delay ring;
    ``min_external_delay_steps``: shortest delay from an external source (``None``: none);
    ``min_external_far_lag``: the same over external edges longer than ``BLOCK`` steps
    (those read through the blocked far sums; ``None`` if none, or not simulated).
    """

    net: tuple
    external_sources: np.ndarray
    n_ring_rows: int
    n_edges: int
    min_external_delay_steps: int | None
    min_external_far_lag: int | None


def network(weights: np.ndarray, steps: np.ndarray, regions, bus: bool) -> Network:
    """The network of an engine simulating ``regions`` (global indices, engine order).

    ``weights[i, j]``, ``steps[i, j]`` (whole connectome): weight and delay in steps from
    ``j`` to ``i``.  With ``bus``, the connections from external sources are simulated
    (ring rows after the engine's own); without, they are left out.
    """
    idx = np.asarray(regions, dtype=np.int64)
    w_rows = np.asarray(weights, dtype=np.float64)[idx]      # (region, global source)
    d_rows = np.asarray(steps, dtype=np.int64)[idx]
    nz = w_rows != 0
    inside = np.zeros(w_rows.shape[1], dtype=bool)
    inside[idx] = True
    outside = nz & ~inside
    external = np.flatnonzero(outside.any(axis=0)).astype(np.int64)

    members = np.concatenate([idx, external if bus else external[:0]])  # global index per row
    order = np.argsort(members, kind="stable")       # ring row of each column
    cols = members[order]                            # columns: increasing global index
    far, near, instant = edge_lists(w_rows[:, cols], d_rows[:, cols], src_rows=order)
    member = np.zeros_like(inside)
    member[cols] = True
    # over the whole global row, so every engine sums the same array in the same way
    rowsum = np.where(nz & member, w_rows, 0.0).sum(axis=1)

    ext_d = d_rows[outside]
    far_d = ext_d[ext_d > BLOCK] if bus else ext_d[:0]
    return Network(
        net=far + near + instant + (rowsum,),
        external_sources=external,
        n_ring_rows=int(members.size),
        n_edges=int(far[1].size + near[1].size + instant[1].size),
        min_external_delay_steps=int(ext_d.min()) if ext_d.size else None,
        min_external_far_lag=int(far_d.min()) if far_d.size else None,
    )


def undelayed_external(weights: np.ndarray, steps: np.ndarray, regions) -> tuple[int, int] | None:
    """``(target, source)`` global indices of a connection from outside ``regions`` with a
    delay of 0 steps (it cannot cross between engines), or ``None``."""
    idx = np.asarray(regions, dtype=np.int64)
    inside = np.zeros(np.shape(weights)[1], dtype=bool)
    inside[idx] = True
    bad = (np.asarray(weights)[idx] != 0) & ~inside & (np.asarray(steps)[idx] < 1)
    if not bad.any():
        return None
    i, j = np.argwhere(bad)[0]
    return int(idx[i]), int(j)
