"""Engines: each simulates some regions of the brain over sync windows.

``ENGINE_TYPES`` maps the scenario's ``type = "…"`` to the class implementing it; classes
are imported lazily so that loading a scenario does not compile every engine's kernels.
"""

from __future__ import annotations

import importlib

ENGINE_TYPES: dict[str, str] = {
    "neural_mass": "cosim.engines.neural_mass:NeuralMassEngine",
    "multicompartment": "cosim.engines.multicompartment:MulticompartmentEngine",
}


def engine_class(type_name: str):
    """The engine class registered as ``type_name`` (``KeyError`` if unknown)."""
    module, _, cls = ENGINE_TYPES[type_name].partition(":")
    return getattr(importlib.import_module(module), cls)
