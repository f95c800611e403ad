"""The registry of engine types: scenario ``type = "…"`` → the class implementing it.

Built-in types are listed in :data:`BUILTIN`; other packages add types without editing
cosim through the entry-point group ``cosim.engines``, e.g. in their ``pyproject.toml``::

    [project.entry-points."cosim.engines"]
    rate_unit = "mypackage.engine:RateUnitEngine"

Every class must subclass :class:`cosim.engines.base.Engine` (the contract).  Classes are
imported lazily, so loading a scenario compiles no kernel and imports no peer simulator
that the scenario does not use.  This module is the only place that maps a type name to
code; everything else asks the engine what it can do (see :mod:`cosim.engines.base`).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib import metadata

from .base import Engine

ENTRY_POINT_GROUP = "cosim.engines"

#: Built-in engine types: name → ``"module:Class"``.
BUILTIN: dict[str, str] = {
    "neural_mass": "cosim.engines.neural_mass:NeuralMassEngine",
    "multicompartment": "cosim.engines.multicompartment:MulticompartmentEngine",
    "nest": "cosim.engines.nest:NestEngine",
    "neuron": "cosim.engines.neuron_engine:NeuronEngine",
    "neural_field": "cosim.engines.neural_field:NeuralFieldEngine",
    "neural_surface": "cosim.engines.neural_surface:NeuralSurfaceEngine",
    "population_density": "cosim.engines.population_density:PopulationDensityEngine",
}


@lru_cache(maxsize=1)
def engine_types() -> dict[str, str]:
    """Every registered type: built-ins, then entry points (a built-in name wins)."""
    out = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep.value)
    out.update(BUILTIN)
    return dict(sorted(out.items()))


def engine_class(type_name: str) -> type[Engine]:
    """The engine class registered as ``type_name`` (``KeyError`` if unknown;
    ``TypeError`` if the registered object does not implement the contract)."""
    target = engine_types()[type_name]
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Engine)):
        raise TypeError(f"engine type {type_name!r} ({target}) is not a subclass of "
                        "cosim.engines.base.Engine")
    if getattr(obj, "type_name", None) != type_name:
        obj.type_name = type_name
    return obj
