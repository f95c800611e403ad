"""Neural-mass models, by scenario name.

``MODELS`` maps the scenario's ``model = "…"`` to a :class:`~cosim.models.base.Model`
declaration; :func:`get_model` looks one up with a helpful error.
"""

from __future__ import annotations

from .base import Model, Observable, Option, Parameter, StateVariable
from . import (epileptor, generic_2d_oscillator, jansen_rit, kuramoto, larter_breakspear, linear,
               lif_mean_field, montbrio_pazo_roxin, reduced_wong_wang_exc_inh, stuart_landau, wilson_cowan,
               wong_wang, zerlaut, zerlaut_second_order)

MODELS: dict[str, Model] = {m.name: m for m in (
    wilson_cowan.MODEL,
    jansen_rit.MODEL,
    stuart_landau.MODEL,
    wong_wang.MODEL,
    linear.MODEL,
    generic_2d_oscillator.MODEL,
    kuramoto.MODEL,
    epileptor.MODEL,
    montbrio_pazo_roxin.MODEL,
    reduced_wong_wang_exc_inh.MODEL,
    larter_breakspear.MODEL,
    zerlaut.MODEL,
    zerlaut_second_order.MODEL,
    lif_mean_field.MODEL,
)}


def get_model(name: str) -> Model:
    """The model called ``name``; ``KeyError`` if there is none."""
    return MODELS[name]


__all__ = ["MODELS", "Model", "Observable", "Option", "Parameter", "StateVariable", "get_model"]
