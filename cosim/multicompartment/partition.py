"""Splitting a spiking region over partitions, and joining their outputs again.

A partition (:meth:`cosim.engines.multicompartment.MulticompartmentEngine.partition`)
simulates a contiguous block of every cell population (:func:`block`), keeps global gids,
input-line ids and probe indices, and exchanges spikes with the other partitions once per
sub-interval of at most the region's shortest recurrent delay.  Nothing here knows about
MPI: an MPI runtime gives each rank's partition an ``exchange`` function (an Allgatherv);
an in-process runtime drives all partitions in lock step with :func:`advance_in_lockstep`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

#: ``exchange(gids int64[], times_ms float64[]) -> (all_gids, all_times)``: the spikes
#: of every partition of the region (any order; the engine sorts them canonically).
Exchange = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def block(n: int, part: int, n_parts: int) -> range:
    """Offsets ``[lo, hi)`` of partition ``part``'s share of ``n`` items: contiguous
    blocks in order, the first ``n mod n_parts`` partitions one item longer
    (``numpy.array_split``'s rule)."""
    q, r = divmod(int(n), int(n_parts))
    lo = part * q + min(part, r)
    return range(lo, lo + q + (1 if part < r else 0))


def identity_exchange(gids: np.ndarray, times_ms: np.ndarray):
    """The exchange of a region that is not split: every spike is already here."""
    return gids, times_ms


def gather_spikes(pieces: Sequence[tuple[np.ndarray, np.ndarray]]):
    """Concatenate the ``(gids, times)`` of several partitions (what Allgatherv returns)."""
    gids = np.concatenate([np.asarray(g, dtype=np.int64) for g, _ in pieces]) if pieces else np.zeros(0, np.int64)
    times = np.concatenate([np.asarray(t, dtype=np.float64) for _, t in pieces]) if pieces else np.zeros(0)
    return gids, times


def advance_in_lockstep(parts: Sequence, t0_ms: float, t1_ms: float, inputs: dict) -> list:
    """Advance all partitions of one region over ``[t0, t1)`` in this process.

    ``inputs`` may be the region's global inputs (each partition keeps the events of its
    own lines).  Returns each partition's :class:`~cosim.engines.base.WindowOutput`.
    """
    for p in parts:
        p.begin_window(t0_ms, t1_ms, inputs)
    while not parts[0].window_done:
        spikes = gather_spikes([p.run_interval() for p in parts])
        for p in parts:
            p.deliver(*spikes)
    return [p.end_window() for p in parts]


def merge_outputs(parts: Sequence, outputs: Sequence):
    """Join the window outputs of all partitions into the single-process layout.

    Spikes (``records``/``exports`` ``"spikes"``): concatenated and sorted by (time, gid),
    the order of an unsplit run.  ``records["v"]``: partition ``p``'s columns go to the
    global probe indices ``parts[p].probe_ids``.
    """
    from ..engines.base import WindowOutput
    out = WindowOutput()
    for where in ("exports", "records"):
        per = [getattr(o, where)["spikes"] for o in outputs if "spikes" in getattr(o, where)]
        if per:
            g, t = gather_spikes(per)
            order = np.lexsort((g, t))
            getattr(out, where)["spikes"] = (g[order], t[order])
    if any("v" in o.records for o in outputs):
        n_probes = sum(p.probe_ids.size for p in parts)
        rows = next(o.records["v"].shape[0] for o in outputs if "v" in o.records)
        v = np.zeros((rows, 1, n_probes))
        for p, o in zip(parts, outputs):
            if "v" in o.records:
                v[:, :, p.probe_ids] = o.records["v"]
        out.records["v"] = v
    return out
