"""How a neural-mass model is declared: state variables, parameters, coupling variables, dfun.

A model is written once, as a numba function of arrays and scalars that computes the time
derivative of *one* node::

    @njit
    def dfun(x, c, p, i, dx):
        # x  (n_nodes, n_state)    state, in the units of the state variables
        # c  (n_nodes, n_inputs)   long-range coupling input (after the coupling function)
        # p  (n_nodes, n_params)   parameters, in the order of Model.parameters
        # i  node index
        # dx (n_nodes, n_state)    out: dx[i, k] = d x[i, k] / dt, per ms
        ...

The integrator kernels (:mod:`cosim.integrators`) loop over nodes and call it; numba inlines
it, so the same source serves every integrator and coupling without a numpy or code-string
twin.  Working on whole arrays plus a row index (instead of row views) keeps the time loop
free of allocation.

Everything a scenario may set is declared here once — name, default, unit, meaning — so the
engine can validate ``[engines.x.parameters]`` and record units without knowing the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..params import Param

INF = math.inf


@dataclass(frozen=True)
class StateVariable:
    """One state variable of a model.

    ``initial``: default value of the initial state and history; ``range``: interval that
    random initial conditions are drawn from (TVB's ``state_variable_range``); ``bounds``:
    hard limits enforced after every integration stage (TVB's
    ``state_variable_boundaries``), ``(-inf, inf)`` when unbounded.
    """

    name: str
    unit: str
    doc: str
    initial: float = 0.0
    range: tuple[float, float] = (-1.0, 1.0)
    bounds: tuple[float, float] = (-INF, INF)


#: A numeric model (or coupling) parameter, settable per region from a scenario: a
#: :class:`cosim.params.Param` (name, default, unit, doc, optional bounds).
Parameter = Param


@dataclass(frozen=True)
class Observable:
    """A signal a model declares besides its state: its firing rate, its EEG source.

    ``variables``: the state variables it reads; ``fn(*variables, **parameters)`` computes
    it from arrays of those (``None``: the single variable itself, in its own unit);
    ``parameters``: the parameters of ``fn``, settable in the monitor's table;
    ``from_model(model_params) -> {name: value}`` gives their values from the engine's
    model parameters (``{name: (region,) array}``) or, when not given, the declared
    defaults apply; ``formula``: a readable form with ``{name}`` placeholders, stored in the
    output's attributes; ``transfer``: the name a scenario selects it by
    (``[record.<engine>.rate] transfer = "…"``).
    """

    name: str
    unit: str
    doc: str
    variables: tuple[str, ...]
    fn: Callable | None = None
    parameters: tuple[Param, ...] = ()
    from_model: Callable[[Mapping[str, Any]], dict] | None = None
    formula: str = ""
    transfer: str = "variable"

    def values(self, model_params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Parameter values: from the model's parameters when given, else the defaults."""
        if model_params and self.from_model is not None:
            return dict(self.from_model(model_params))
        return {p.name: p.default for p in self.parameters}


def Option(name: str, choices: tuple[str, ...], default: str, doc: str) -> Param:
    """A structural choice that selects a different dfun (e.g. the transfer function): a
    string :class:`~cosim.params.Param` with ``choices``."""
    return Param(name, default, "", doc, choices=tuple(choices), type="string")


@dataclass(frozen=True)
class Model:
    """Declaration of a neural-mass model.

    ``coupling_variables``: names of the state variables the long-range coupling reads
    from the *source* regions (TVB's ``cvar``).  ``default_coupling``: coupling type used
    when a scenario does not name one.  ``dfuns``: the numba dfun per combination of
    option values (keys are tuples in the order of ``options``; a model without options
    has the single key ``()``).  ``observables``: derived signals by name — ``"rate"``
    (the firing rate monitors and BOLD use by default), ``"eeg"`` (the EEG source).
    """

    name: str
    doc: str
    state_variables: tuple[StateVariable, ...]
    parameters: tuple[Parameter, ...]
    coupling_variables: tuple[str, ...]
    default_coupling: str
    dfuns: Mapping[tuple[str, ...], Callable]
    options: tuple[Param, ...] = ()         # see Option
    observables: Mapping[str, Observable] = field(default_factory=dict)
    reference: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- names and indices ------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.state_variables)

    @property
    def state_units(self) -> tuple[str, ...]:
        return tuple(v.unit for v in self.state_variables)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def n_state(self) -> int:
        return len(self.state_variables)

    @property
    def n_params(self) -> int:
        return len(self.parameters)

    def state_index(self, name: str) -> int:
        return self.state_names.index(name)

    def coupling_indices(self) -> np.ndarray:
        """Indices of the coupling variables in the state vector (int64)."""
        return np.array([self.state_index(n) for n in self.coupling_variables], dtype=np.int64)

    def default_parameters(self) -> np.ndarray:
        return np.array([p.default for p in self.parameters], dtype=np.float64)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([v.bounds[0] for v in self.state_variables], dtype=np.float64)
        hi = np.array([v.bounds[1] for v in self.state_variables], dtype=np.float64)
        return lo, hi

    # -- options ----------------------------------------------------------------------
    def resolve_options(self, given: Mapping[str, str] | None) -> tuple[str, ...]:
        """Option values in declaration order; ``KeyError``/``ValueError`` on bad input."""
        given = dict(given or {})
        values = []
        for opt in self.options:
            value = given.pop(opt.name, opt.default)
            if value not in opt.choices:
                raise ValueError(f"option {opt.name!r} must be one of {opt.choices}, got {value!r}")
            values.append(value)
        if given:
            raise KeyError(next(iter(given)))
        return tuple(values)

    def dfun(self, option_values: tuple[str, ...] = ()) -> Callable:
        return self.dfuns[tuple(option_values)]
