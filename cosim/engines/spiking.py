"""What spiking engines share: their spike record spec and the merge of split partitions.

Every spiking engine (multicompartment, NEST, NEURON) records its spikes as one dataset
``"spikes"`` of engine-wide ``(gids, times_ms)`` per window, declaring its cell populations so
that the recorder writes one SONATA population per group (:mod:`cosim.sonata`).  A region
split over partitions merges back to the one-process layout: spikes sorted by (time, gid),
probe columns at their global indices.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from ..multicompartment.partition import gather_spikes
from .base import RecordSpec


def spike_spec(engine: str, dt_ms: float, populations: Mapping[str, range]) -> RecordSpec:
    """The ``"spikes"`` record spec of a spiking engine with these populations (gid ranges)."""
    return RecordSpec("spikes", ("spikes",), ("ms",), (engine,), dt_ms,
                      attrs={"kind": "spikes", "population": engine,
                             "populations": {p: (r.start, r.stop) for p, r in populations.items()},
                             "n_cells": sum(len(r) for r in populations.values())})


def merge_spiking_records(by_part: Sequence[dict], n_probes: int,
                          probe_ids_of: Callable[[int, int], np.ndarray]) -> dict:
    """One window's records of every partition (part order) → the one-process layout:
    spike pairs sorted by (time, gid); arrays ``(time, 1, probe)`` with partition ``k``'s
    columns at ``probe_ids_of(k, n)``."""
    n = len(by_part)
    if n == 1:
        return by_part[0]
    merged = {}
    for ds, first in by_part[0].items():
        if isinstance(first, tuple):
            g, t = gather_spikes([p[ds] for p in by_part])
            order = np.lexsort((g, t))
            merged[ds] = (g[order], t[order])
        else:
            out = np.empty(first.shape[:2] + (n_probes,))
            for k, p in enumerate(by_part):
                out[:, :, probe_ids_of(k, n)] = p[ds]
            merged[ds] = out
    return merged
