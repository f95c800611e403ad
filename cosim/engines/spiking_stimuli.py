"""Stimuli of spiking engines: current-clamp trains on cells, Poisson rates on input groups.

``target = "current"``: every selected cell (``population``, ``cells`` = indices within
it, default all) gets ``u(t)`` nA at ``section(x)`` (default ``soma(0.5)``), evaluated at
the middle of each step, ``t_n + dt/2``, as NEURON's ``IClamp`` is — one declaration for
a whole pulse train.  ``target = "poisson"``: every line of the input group ``input``
gets an inhomogeneous Poisson train whose rate over step ``[t_n, t_n + dt)`` is
``max(0, u(t_n + dt/2))`` Hz, generated exactly (:class:`adapters.rate_to_poisson.
RateToPoisson`) from the stream ``(seed, "stimulus.poisson", engine, stimulus)`` with the
line id in the counter — the same trains whichever rank holds a line.  The events add to
those of a ``rate_to_poisson`` adapter on the same group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stimuli import StimulusRecord, StimulusSpec

CURRENT, POISSON = "current", "poisson"


@dataclass(frozen=True)
class CurrentStimulus:
    name: str
    pattern: object
    population: str
    cells: tuple[int, ...] | None
    section: str
    x: float


@dataclass(frozen=True)
class PoissonStimulus:
    name: str
    pattern: object
    input: str


def bind(engine, spec: StimulusSpec, populations: dict, input_groups: tuple[str, ...],
         check_site=None, current_unit: str = "nA", current_rule: str | None = None):
    """Check ``spec`` against a spiking engine: ``populations`` name → gids (range),
    ``input_groups`` its input group names; ``check_site(population, section, x, key)``
    raises for a section the cells lack (``None``: point neurons, no ``section``/``x``);
    ``current_unit``/``current_rule``: how the engine injects a current.  Returns
    ``(bound, record)``."""
    target = spec.target
    if target == CURRENT:
        spec.refuse(("population", "cells") + (("section", "x") if check_site else ()),
                    '"current"' + ("" if check_site else " on point neurons"))
        pop = spec.given.get("population")
        if pop is None:
            raise spec.error("population", "missing required key (the cell population of "
                                           "the current clamp)")
        if pop not in populations:
            raise spec.error("population", f"unknown cell population {pop!r}; have "
                                           f"{', '.join(populations)}")
        n = len(populations[pop])
        cells = spec.given.get("cells")
        if cells is not None:
            if not isinstance(cells, list) or not cells or not all(
                    isinstance(c, int) and not isinstance(c, bool) for c in cells):
                raise spec.error("cells", f"must be a non-empty array of integers, got {cells!r}")
            for c in cells:
                if not 0 <= c < n:
                    raise spec.error("cells", f"cell {c} outside population {pop!r} (n = {n})")
            if len(set(cells)) != len(cells):
                raise spec.error("cells", "names a cell twice")
            cells = tuple(sorted(cells))
        section = spec.given.get("section") or "soma"
        x = spec.given.get("x")
        x = 0.5 if x is None else float(x)
        if check_site is not None:
            check_site(pop, section, x, f"{spec.key}.section")
        bound = CurrentStimulus(spec.name, spec.pattern, pop, cells, section, x)
        gids = populations[pop]
        chosen = [gids[c] for c in (cells if cells is not None else range(n))]
        rule = current_rule or f"u(t_n + dt/2) nA into {section}({x:g}) over step n (as IClamp)"
        labels = tuple(f"{pop}[{g - gids.start}]" for g in chosen)
        record = StimulusRecord(spec.name, engine.name, CURRENT, spec.pattern, engine.dt_ms,
                                0.5 * engine.dt_ms, labels, np.ones(len(chosen)), current_unit,
                                rule)
        return bound, record
    if target == POISSON:
        spec.refuse(("input",), '"poisson"')
        group = spec.given.get("input")
        if group is None:
            raise spec.error("input", "missing required key (the input group whose lines get "
                                      "the Poisson trains)")
        if group not in input_groups:
            have = ", ".join(input_groups) or "none"
            raise spec.error("input", f"unknown input group {group!r}; have {have}")
        record = StimulusRecord(spec.name, engine.name, POISSON, spec.pattern, engine.dt_ms,
                                0.5 * engine.dt_ms, (group,), np.ones(1), "Hz",
                                "rate max(0, u(t_n + dt/2)) Hz on every line of the group over "
                                "step n (inhomogeneous Poisson)")
        return PoissonStimulus(spec.name, spec.pattern, group), record
    raise spec.error("target", f"unknown target {target!r} for a {engine.type_name} engine; "
                               "use \"current\" (a current clamp on cells) or \"poisson\" "
                               "(Poisson trains on an input group)")


def poisson_generator(engine_name: str, stim: PoissonStimulus, lines: np.ndarray, rng):
    """The :class:`RateToPoisson` of one Poisson stimulus for ``lines`` (global ids)."""
    from adapters.rate_to_poisson import RateToPoisson

    return RateToPoisson(lines, rng, engine_name, stim.name,
                         key=rng.key("stimulus.poisson", engine_name, stim.name))


def poisson_rates(stim: PoissonStimulus, step0: int, n_steps: int, dt_ms: float) -> np.ndarray:
    """Rates (Hz) per step bin of ``step0 …`` (module docstring; clipped by the generator)."""
    from ..stimuli import step_times

    return stim.pattern(step_times(step0 + np.arange(n_steps) + 0.5, dt_ms))
