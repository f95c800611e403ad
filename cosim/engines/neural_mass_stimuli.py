"""Stimuli of the neural-mass engine: terms added to the derivatives or the coupling input.

A stimulus on state variable ``v`` adds ``w_r u(t)`` to ``dv/dt`` of region ``r``; on
``"coupling"`` it adds ``w_r u(t)`` to every coupling input ``c`` of the region (as an
external input would).  Time rule: with ``coupling_evaluation = "stage"`` each integrator
stage reads ``u`` at its own time (``t_n``, ``t_n + dt/2``, ``t_n + dt``: Heun stays second
and RK4 fourth order for a smooth ``u``); with ``"step"`` ``u(t_n)`` is held over the
step — The Virtual Brain's rule for ``StimuliRegion`` (its simulator sets the stimulus of
step ``n`` from ``t_n`` and its Heun adds ``dt · stimulus`` to predictor and corrector,
the same as adding it to both derivatives; TVB's RK4 adds it only at the end, which
differs).  ``dopri5`` holds ``u(t_n)`` over each ``dt``.  TVB applies a stimulus to the
model's ``stvar`` (by default its coupling variables: Jansen–Rit ``y1`` and ``y2``), so
``target = ["y1", "y2"]`` reproduces it.

The kernels get two arrays per window (:mod:`cosim.integrators`): ``su (S, 3, n, n_state)``
and ``sc (S, 3, n, n_inputs)``, ``S`` steps by the three stage times ``AT_*``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..history import AT_END, AT_HALF, AT_START
from ..stimuli import StimulusRecord, StimulusSpec, region_weights, step_times

COUPLING = "coupling"

#: empty stimulus arrays (no stimulus): a first axis of length 0
NONE = np.zeros((0, 3, 1, 1))


@dataclass(frozen=True)
class BoundStimulus:
    """A stimulus bound to a neural-mass engine: ``kind`` "state" (``index``: state
    variables) or "coupling" (``index``: every coupling input); ``weights`` one per engine
    region, engine order."""

    name: str
    pattern: object
    kind: str
    index: np.ndarray
    weights: np.ndarray

    def restricted(self, keep) -> "BoundStimulus":
        return replace(self, weights=self.weights[np.asarray(keep, dtype=np.int64)])


def bind(engine, spec: StimulusSpec, connectome) -> tuple[BoundStimulus, StimulusRecord]:
    """Check ``spec`` against the engine (state variables, regions) and bind it."""
    spec.refuse(("weights",), "on a neural-mass engine (use weights)")
    from .neural_mass_config import suggest

    names = engine.model.state_names
    targets = [spec.target] if isinstance(spec.target, str) else list(spec.target)
    if COUPLING in targets:
        if len(targets) > 1:
            raise spec.error("target", "\"coupling\" cannot be combined with state variables")
        kind, index, unit = COUPLING, np.arange(engine.n_inputs, dtype=np.int64), "coupling input"
    else:
        for t in targets:
            if t not in names:
                raise spec.error("target", f"unknown state variable {t!r} of model "
                                           f"{engine.model.name} (has {', '.join(names)}; or "
                                           f"\"coupling\")" + suggest(t, list(names)))
        if len(set(targets)) != len(targets):
            raise spec.error("target", f"names a state variable twice: {targets}")
        kind = "state"
        index = np.array([names.index(t) for t in targets], dtype=np.int64)
        units = {engine.model.state_units[i] for i in index}
        unit = (units.pop() or "1") + "/ms" if len(units) == 1 else "state unit/ms"
    weights = region_weights(spec, connectome, engine.region_indices, engine.name)
    bound = BoundStimulus(spec.name, spec.pattern, kind, index, weights)
    rule = ("u(t_n) held over each step" if engine.coupling_evaluation == "step"
            or engine.adaptive else "each stage at its own time (t_n, t_n + dt/2, t_n + dt); "
            "values at t_n")
    record = StimulusRecord(spec.name, engine.name, ",".join(targets), spec.pattern,
                            engine.dt_ms, 0.0, tuple(engine.region_labels), weights, unit,
                            rule)
    return bound, record


def arrays(stimuli, step0: int, n_steps: int, dt_ms: float, held: bool, n_state: int,
           n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(su, sc)`` for the steps ``step0 … step0 + n_steps − 1`` (module docstring)."""
    if not stimuli:
        return NONE, NONE
    k = step0 + np.arange(n_steps)
    t = np.empty((n_steps, 3))
    t[:, AT_START] = step_times(k, dt_ms)
    if held:
        t[:, AT_HALF] = t[:, AT_START]
        t[:, AT_END] = t[:, AT_START]
    else:
        t[:, AT_HALF] = step_times(k + 0.5, dt_ms)
        t[:, AT_END] = step_times(k + 1, dt_ms)
    n = stimuli[0].weights.size
    state = [s for s in stimuli if s.kind == "state"]
    coup = [s for s in stimuli if s.kind == COUPLING]
    su = np.zeros((n_steps, 3, n, n_state)) if state else NONE
    sc = np.zeros((n_steps, 3, n, n_inputs)) if coup else NONE
    for s in stimuli:
        u = s.pattern(t)                                   # (S, 3)
        term = u[:, :, None] * s.weights[None, None, :]    # (S, 3, n)
        out = su if s.kind == "state" else sc
        for j in s.index:
            out[:, :, :, j] += term
    return su, sc
