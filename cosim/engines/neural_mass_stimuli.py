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
from ..stimuli import StimulusRecord, StimulusSpec, region_weights

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


class Arrays:
    """The ``(su, sc)`` of every window (module docstring), in buffers kept between
    windows of the same length (no allocation per window in a steady run)."""

    def __init__(self, stimuli, n_regions: int, n_state: int, n_inputs: int, dt_ms: float,
                 held: bool):
        self.stimuli = list(stimuli)
        self.shape = (n_regions, n_state, n_inputs)
        self.dt_ms = float(dt_ms)
        #: stage time offsets in steps, AT_START / AT_HALF / AT_END (held: all at t_n)
        self._offsets = np.array([0.0, 0.0, 0.0]) if held else np.zeros(3)
        if not held:
            self._offsets[[AT_START, AT_HALF, AT_END]] = (0.0, 0.5, 1.0)
        self._n = None

    def _buffers(self, n_steps: int) -> None:
        n, nsv, nin = self.shape
        state = any(s.kind == "state" for s in self.stimuli)
        coup = any(s.kind == COUPLING for s in self.stimuli)
        self._su = np.zeros((n_steps, 3, n, nsv)) if state else NONE
        self._sc = np.zeros((n_steps, 3, n, nin)) if coup else NONE
        self._steps = np.arange(n_steps, dtype=np.float64)[:, None] + self._offsets[None, :]
        self._n = n_steps

    def __call__(self, step0: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """``(su, sc)`` for the steps ``step0 … step0 + n_steps − 1``: stimulus ``s`` at
        the stage times ``(k + offset) dt`` — the same numbers as
        :func:`cosim.stimuli.step_times` (integers and halves are exact in float64)."""
        if not self.stimuli:
            return NONE, NONE
        if self._n != n_steps:
            self._buffers(n_steps)
        su, sc = self._su, self._sc
        su[...] = 0.0
        sc[...] = 0.0
        t = (step0 + self._steps) * self.dt_ms                # (S, 3)
        for s in self.stimuli:
            u = s.pattern(t)
            out = su if s.kind == "state" else sc
            for j in s.index:
                out[:, :, :, j] += u[:, :, None] * s.weights[None, None, :]
        return su, sc
