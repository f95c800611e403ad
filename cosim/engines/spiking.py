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


def read_region(reader, ctx, decl) -> tuple[int, ...]:
    """The ``region`` key (declaration ``decl``) of a spiking engine standing for one
    connectome region: ``(index,)``, or ``()`` when not set; an unknown label is one line
    with the closest labels."""
    region = reader.param(decl)
    if region is None:
        return ()
    labels = list(ctx.connectome.region_labels)
    if region not in labels:
        from ..region_names import suggestion
        raise reader.error("region", f"no region {region!r} in the connectome"
                           + suggestion(region, labels))
    return (labels.index(region),)


def check_record_variables(name: str, variables, has_probes: bool) -> list[str]:
    """``[record.<name>] variables`` of a spiking engine (``spikes``, ``v``), or the default."""
    from ..errors import CosimError

    chosen = list(variables or (["spikes", "v"] if has_probes else ["spikes"]))
    for v in chosen:
        if v not in ("spikes", "v"):
            raise CosimError(f"engine {name!r} records 'spikes' and 'v', not {v!r}",
                             key=f"record.{name}.variables")
    if "v" in chosen and not has_probes:
        raise CosimError(f"engine {name!r}: recording 'v' needs [engines.{name}.probes]",
                         key=f"record.{name}.variables")
    return chosen


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
