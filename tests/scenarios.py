"""Scenario builders for tests (importable as ``from scenarios import …``).

Each builder returns a fresh ``dict`` shaped as :mod:`tomllib` reads a scenario file; compose
them, change a key in Python, then write the result with :func:`scenario_text` / :func:`write`
(:mod:`cosim.toml_writer`) or the ``write_scenario`` fixture (``tests/conftest.py``).

Keyword arguments that are ``None`` are left out of the table, so a test states only the keys
its scenario has: ``neural_mass(dt=None)`` has no ``dt`` key at all (the engine's default
applies), which is not the same file as ``dt = 0.1``.  Extra keyword arguments become keys
of the table as they are (``neural_mass(coupling={"G": 2.0})``).  Key order is kept
(engines, cell groups and projections are built in the order written).

    text = scenario_text(simulation(duration=20.0, seed=1, output="out.h5"),
                         engines={"cortex": neural_mass(regions="all", integrator="heun")})
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from cosim.toml_writer import dumps

TVB76 = "tvb:connectivity_76"
#: Hodgkin–Huxley soma, passive dendrite (g in S/cm², e in mV): the cells of most tests.
HH_SOMA_PAS_DEND = {"soma": {"hh": {}}, "dend": {"pas": {"g": 0.0001, "e": -65.0}}}


def _table(**keys: Any) -> dict:
    """The keys that are not None, in the order given (values deep-copied)."""
    return {k: copy.deepcopy(v) for k, v in keys.items() if v is not None}


# -- sections -------------------------------------------------------------------------------------

def simulation(duration: float = 20.0, sync: float | None = 1.0, seed: int | None = None,
               output: str | Path | None = None, **keys: Any) -> dict:
    """``[simulation]``: ``duration`` and ``sync`` (``sync_interval``) in ms; ``keys`` e.g.
    ``checkpoint_every``."""
    return _table(duration=duration, sync_interval=sync, seed=seed,
                  output=None if output is None else str(output), **keys)


def connectome(source: str | Mapping = TVB76, **keys: Any) -> dict:
    """``[connectome]``: a ``tvb:`` name, a file, or ``{weights = …, tract_lengths = …}``."""
    return _table(source=source, **keys)


def record(period: float | None = None, flush_every: int | None = None, **engines: Any) -> dict:
    """``[record]``: sampling ``period`` in ms, ``flush_every`` windows, then one table per
    engine (``cortex={"variables": ["y1"], "eeg": {"period": 4.0}}``)."""
    return _table(period=period, flush_every=flush_every, **engines)


def scenario(simulation: Mapping | None = None, engines: Mapping | None = None, *,
             connectome: Mapping | None = None, adapters: Mapping | None = None,
             record: Mapping | None = None, **tables: Any) -> dict:
    """A whole scenario; ``simulation`` defaults to :func:`simulation()`, ``connectome`` to
    connectivity_76, ``engines`` to one Jansen–Rit engine ``cortex`` over every region."""
    return _table(simulation=_simulation() if simulation is None else simulation,
                  connectome=_connectome() if connectome is None else connectome,
                  engines={"cortex": neural_mass()} if engines is None else engines,
                  adapters=adapters, record=record, **tables)


_simulation, _connectome = simulation, connectome


def scenario_text(*args: Any, **kwargs: Any) -> str:
    """TOML text of :func:`scenario` (same arguments)."""
    return dumps(scenario(*args, **kwargs))


def write(path: str | Path, data: Mapping) -> Path:
    """Write a scenario dict as TOML to ``path`` and return the path."""
    path = Path(path)
    path.write_text(dumps(data))
    return path


# -- engines --------------------------------------------------------------------------------------

def neural_mass(model: str = "jansen_rit", regions: str | list[str] | None = None,
                dt: float | None = 0.1, integrator: str | None = None, **keys: Any) -> dict:
    """``type = "neural_mass"``; ``keys``: ``parameters``, ``coupling``, ``noise``,
    ``initial``, …  ``regions=None`` leaves the key out (every region)."""
    return _table(type="neural_mass", model=model, regions=regions, dt=dt,
                  integrator=integrator, **keys)


def multicompartment(region: str | None = None, dt: float | None = 0.025, **keys: Any) -> dict:
    """``type = "multicompartment"``; ``keys``: ``cells``, ``projections``, ``inputs``,
    ``clamps``, ``probes``, …"""
    return _table(type="multicompartment", region=region, dt=dt, **keys)


def ball_and_stick(n: int, nseg: int, mechanisms: Mapping | None = HH_SOMA_PAS_DEND,
                   **keys: Any) -> dict:
    """A cell group of ``n`` ball-and-stick cells, ``nseg`` dendrite segments;
    ``mechanisms=None`` leaves the key out."""
    return _table(n=n, morphology="ball_and_stick", nseg=nseg, mechanisms=mechanisms, **keys)


# -- adapters -------------------------------------------------------------------------------------

def rate_to_poisson(engine: str, input: str, gain: float, offset: float, **keys: Any) -> dict:
    """Bus rate → Poisson events on ``engine``'s input ``input`` (Hz = offset + gain · rate)."""
    return _table(type="rate_to_poisson", engine=engine, input=input, gain=gain, offset=offset,
                  **keys)


def spikes_to_rate(engine: str, **keys: Any) -> dict:
    """``engine``'s spikes → a rate on the bus; ``keys``: ``populations``, ``kernel``, ``tau``,
    ``map``."""
    return _table(type="spikes_to_rate", engine=engine, **keys)


# -- whole scenarios ------------------------------------------------------------------------------

def hybrid(duration: float = 60.0, sync: float = 1.0, seed: int = 11, output: str = "out.h5",
           **simulation_keys: Any) -> dict:
    """``scenarios/default.toml`` in small: Jansen–Rit on every region but rV1; rV1 a network of
    24 excitatory and 8 inhibitory ball-and-stick cells driven by two rate→Poisson adapters,
    its excitatory rate back to the bus; spikes and v of five probes recorded; rV1's 0-ms
    self-connection left out, as in default.toml (``driven_self_connections = "drop"``)."""
    v1 = multicompartment(
        region="rV1",
        cells={"exc": ball_and_stick(24, 4), "inh": ball_and_stick(8, 2)},
        projections={
            "ee": {"source": "exc", "target": "exc", "indegree": 5,
                   "receptors": ["AMPA", "NMDA"], "weights": [0.0008, 0.0002],
                   "section": "dend", "x": 0.5, "delay": [1.0, 3.0],
                   "stp": {"U": 0.5, "tau_rec": 800.0, "tau_fac": 0.0}},
            "ie": {"source": "inh", "target": "exc", "indegree": 4, "receptors": ["GABA_A"],
                   "weights": [0.002], "section": "soma", "x": 0.5, "delay": [1.0, 2.0]},
            "ei": {"source": "exc", "target": "inh", "indegree": 5, "receptors": ["AMPA"],
                   "weights": [0.002], "section": "soma", "x": 0.5, "delay": 1.0},
        },
        inputs={
            "bg": {"target": "exc", "receptor": "AMPA", "section": "dend", "x": 0.8,
                   "weight": 0.0015, "per_cell": 10},
            "bg_inh": {"target": "inh", "receptor": "AMPA", "section": "soma", "x": 0.5,
                       "weight": 0.001, "per_cell": 10},
        },
        probes={"cells": [0, 13, 23, 24, 31], "sections": ["soma"], "x": 0.5},
    )
    return scenario(
        simulation(duration, sync, seed, output, **simulation_keys),
        engines={"cortex": neural_mass(regions="rest", parameters={"v0": 6.0}), "v1": v1},
        connectome=connectome(driven_self_connections="drop"),   # rV1's 0-ms self-connection
        adapters={
            "in_exc": rate_to_poisson("v1", "bg", gain=2000.0, offset=20.0),
            "in_inh": rate_to_poisson("v1", "bg_inh", gain=1000.0, offset=20.0),
            "out": spikes_to_rate("v1", populations=["exc"], kernel="exponential", tau=5.0,
                                  map={"type": "linear", "gain": 0.001}),
        },
        record=record(0.5, 7, cortex={"variables": ["y1", "y2"]},
                      v1={"variables": ["spikes", "v"]}),
    )
