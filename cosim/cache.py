"""cosim's on-disk cache folder: ``$COSIM_CACHE_DIR`` (default ``~/.cache/cosim``), one
sub-folder per kind of cached artefact: ``geodesic/`` (local connectivities built from
geodesic distances, :mod:`cosim.fields.geodesic`), ``mechanisms/`` (NMODL mechanisms
compiled to numba source, :mod:`cosim.multicompartment.codegen`) and ``nrnivmodl/``
(``.mod`` folders built for NEURON, :mod:`cosim.engines.neuron_mod`)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(kind: str) -> Path:
    """``<cache folder>/<kind>`` (not created)."""
    base = (os.environ.get("COSIM_CACHE_DIR")
            or os.path.join(os.path.expanduser("~"), ".cache", "cosim"))
    return Path(base) / kind
