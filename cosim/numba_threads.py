"""numba's threading layer for cosim's threaded kernels (a surface's ``threads > 1``).

numba picks its layer once per process, when the first ``parallel=True`` kernel runs.
Measured on this project's 2-core machine (bench/neural_field.py, the 16k cortex, 2
threads; bench/README.md): its OpenMP layer (``omp``) steps 1.8× faster than one thread,
its own ``workqueue`` layer 0.6× (slower than one thread: a prange's start-up costs more
than the vertices' work), ``omp`` with ``OMP_WAIT_POLICY=passive`` 0.8×.  But NEST and
NEURON bring an OpenMP runtime of their own (the wheels' bundled ``libgomp``), and two
OpenMP runtimes in one process crash (``nest.ResetKernel`` after a parallel kernel ran).

So :func:`choose` — called by the runtime before it builds a process's engines — takes
``omp`` when neither simulator is in this process (none of its engines, not imported) and
numba's OpenMP layer loads, else ``workqueue``.  ``NUMBA_THREADING_LAYER`` set by the user
always wins; a process whose layer is already running keeps it.  Without :func:`choose`
(e.g. an engine built by hand) the layer is ``workqueue``: safe next to anything.
"""

from __future__ import annotations

import os
import sys

import numba

#: engine types whose simulators bring their own OpenMP runtime into the process
OPENMP_PEERS = ("nest", "neuron")
#: the Python modules of those simulators
OPENMP_MODULES = ("nest", "neuron")

# (numba read the variable when it was imported; set again in case that was before it)
numba.config.THREADING_LAYER = os.environ.get("NUMBA_THREADING_LAYER", "workqueue")


def _running() -> bool:
    """Whether numba's threads have started in this process (the layer is fixed then)."""
    from numba.np.ufunc import parallel

    return bool(parallel._is_initialized)


def _omp_loads() -> bool:
    try:
        from numba.np.ufunc import omppool  # noqa: F401  (needs the system's libgomp)
    except ImportError:
        return False
    return True


def choose(engine_types) -> str:
    """Set numba's threading layer for a process that runs engines of ``engine_types``
    (see the module docstring); returns the layer numba will use."""
    if "NUMBA_THREADING_LAYER" in os.environ or _running():
        return numba.config.THREADING_LAYER
    peers = (any(t in OPENMP_PEERS for t in engine_types)
             or any(m in sys.modules for m in OPENMP_MODULES))
    numba.config.THREADING_LAYER = "workqueue" if peers or not _omp_loads() else "omp"
    return numba.config.THREADING_LAYER
