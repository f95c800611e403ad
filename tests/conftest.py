"""Shared fixtures (scenario writing) and the ``mpi`` / ``slurm`` markers' guard.

A test that launches MPI (``mpiexec``, ``mpirun``, ``cosim … --np N``) must be marked
``@pytest.mark.mpi``; one that talks to SLURM (``sbatch``, ``srun``, …) ``@pytest.mark.slurm``
(which implies ``mpi``).  ``pytest -m "not mpi"`` is then the fast in-process loop.  The
marker cannot be forgotten silently: while an unmarked test runs, a subprocess that would
launch MPI or SLURM fails the test (``_util.launch_kind``, ``tests/README.md``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

# numba's threading layer for this process and the runs it starts: workqueue.  The suite
# runs threaded surface kernels and NEST/NEURON in one process, and cosim.numba_threads'
# choice of numba's OpenMP layer next to their own OpenMP runtime would crash; that
# choice is tested in fresh interpreters (tests/test_numba_threads.py).
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

from _util import launch_kind  # noqa: E402
from cosim.toml_writer import dumps  # noqa: E402


@contextlib.contextmanager
def _forbid_launches(nodeid: str, allowed: set[str]):
    """Fail the test when it starts a process of a kind it is not marked for."""
    original = subprocess.Popen.__init__

    def checked(self, args, *a, **kw):
        kind = launch_kind(args)
        if kind is not None and kind not in allowed:
            # pytest.fail raises an OutcomeException (a BaseException): `except Exception`
            # in the code under test cannot swallow it.
            pytest.fail(f"{nodeid} launches {kind.upper()} ({args!r}) but is not marked "
                        f"@pytest.mark.{kind}; see tests/README.md", pytrace=False)
        original(self, args, *a, **kw)

    subprocess.Popen.__init__ = checked
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # before `-m` selects: a SLURM test is an MPI test too (slow, outside the fast loop)
    for item in items:
        if item.get_closest_marker("slurm") and not item.get_closest_marker("mpi"):
            item.add_marker(pytest.mark.mpi)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    allowed = {k for k in ("mpi", "slurm") if item.get_closest_marker(k)}
    with _forbid_launches(item.nodeid, allowed):
        yield


@pytest.fixture
def write_scenario(tmp_path):
    """Write a scenario to ``tmp_path/<name>`` and return its path: TOML text (dedented) or
    a dict (as built by ``tests/scenarios.py``, written with :mod:`cosim.toml_writer`)."""

    def _write(scenario: str | Mapping, name: str = "scenario.toml") -> Path:
        p = tmp_path / name
        p.write_text(dumps(scenario) if isinstance(scenario, Mapping) else textwrap.dedent(scenario))
        return p

    return _write
