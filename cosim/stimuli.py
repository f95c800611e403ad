"""Stimuli: ``[stimuli.<name>]``, a temporal pattern × a spatial pattern on one engine.

::

    [stimuli.pulses]
    engine = "cortex"              # the engine it acts on
    target = "y1"                  # neural_mass: a state variable (its derivative gets
                                   #   + w_r u(t)), an array of them, or "coupling" (added
                                   #   to every coupling input of the regions)
    weights = { rV1 = 1.0, rV2 = 0.5 }   # per region (unlisted: 0), or an array (one per
                                   #   connectome region, or per engine region), or a number
    [stimuli.pulses.temporal]      # see cosim.stimulus_patterns
    type = "pulse_train"
    amplitude = 0.5  period = 100.0  width = 5.0  onset = 200.0

    [stimuli.drive]                # a spiking engine (multicompartment, nest, neuron)
    engine = "v1"
    target = "poisson"             # every line of [engines.v1.inputs.<input>] gets an
    input = "stim"                 #   inhomogeneous Poisson train of rate u(t) Hz
    [stimuli.drive.temporal]
    type = "sinusoid"  amplitude = 20.0  offset = 20.0  frequency = 8.0

    [stimuli.clamp]
    engine = "v1"  target = "current"    # a current-clamp train of u(t) nA on cells
    population = "exc"  cells = [0, 1]  section = "soma"  x = 0.5   # (NEST: pA, no section)
    [stimuli.clamp.temporal]
    type = "pulse_train"  amplitude = 0.3  period = 50.0  width = 2.0

Stimuli are deterministic functions of time: each engine evaluates ``u`` at its own step
times (``t = k dt``, the stimulus time rule of the engine; :class:`StimulusRecord`), so a
run is the same in one process, split over ranks, and resumed from a checkpoint.  Several
stimuli on one target add up.

Output (written by the bus node from the same function, :mod:`cosim.recording`)::

    /stimuli/<name>/values    float64 (time,): u at the engine's stimulus times
    /stimuli/<name>/time_ms   float64 (time,): those times (ms)
    /stimuli/<name>/weights   float64 (target,): the spatial pattern; the stimulus
                              applied to target j at time k is weights[j] * values[k]
    attrs: engine, target, targets (labels of the weights axis), unit, dt_ms,
           time_rule, pattern (type) and pattern_<parameter> for each of its parameters
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CosimError
from .params import REQUIRED, Param, section
from .schema import Reader
from .stimulus_patterns import SECTIONS as PATTERN_SECTIONS, Pattern, read_pattern

ENGINE = Param("engine", REQUIRED, "", "the engine it acts on", type="string")
TARGET = Param("target", REQUIRED, "", "neural_mass: a state variable of the model (its "
               "derivative gets + w u(t)), an array of them, or \"coupling\" (added to the "
               "coupling input); spiking engines (multicompartment, nest, neuron): \"current\" "
               "(a current-clamp train on cells; nA, NEST pA) or \"poisson\" (Poisson trains "
               "of rate u(t) on an input group); neural_field: \"u\" (profile(x) u(t) added to "
               "the field's input I)",
               type="any")
WEIGHTS = Param("weights", None, "", "neural_mass: factor per region — a number (every "
                "region of the engine), an array (one per connectome region, or one per "
                "engine region), or a table {label = w} (unlisted regions 0)", type="any",
                derived="1 on every region of the engine")
POPULATION = Param("population", None, "", "current: the cell population", type="string")
CELLS = Param("cells", None, "", "current: cell indices within the population",
              type="any", derived="every cell")
SECTION = Param("section", None, "", "current: the section the clamp sits on "
                "(multicompartment, neuron)", type="string", derived="\"soma\"")
X = Param("x", None, "", "current: position along the section (multicompartment, neuron)",
          ge=0, le=1, derived="0.5")
INPUT = Param("input", None, "", "poisson: the input group [engines.<e>.inputs.<group>]",
              type="string")
PROFILE = Param("profile", None, "", "neural_field: the spatial pattern, an expression of the "
                "position x (and y on a 2-D sheet) in mm, e.g. \"exp(-(x - 5)**2 / 2)\"",
                type="string", derived="1 at every point")

STIMULUS = section("stimuli.<name>", "a stimulus: a temporal pattern ([stimuli.<name>."
                   "temporal]) times a spatial pattern, applied to one engine",
                   (ENGINE, TARGET, WEIGHTS, POPULATION, CELLS, SECTION, X, INPUT, PROFILE),
                   tuple(PATTERN_SECTIONS.values()))

#: Engine-type specific keys: which target kinds read them.
SPATIAL_KEYS = ("weights", "population", "cells", "section", "x", "input", "profile")


@dataclass(frozen=True)
class StimulusSpec:
    """One ``[stimuli.<name>]`` table, read but not bound to an engine.

    ``given``: the engine-specific keys (:data:`SPATIAL_KEYS`) the table sets.
    """

    name: str
    engine: str
    target: Any
    pattern: Pattern
    given: dict = field(default_factory=dict)
    file: str | None = None

    @property
    def key(self) -> str:
        return f"stimuli.{self.name}"

    def error(self, name: str | None, reason: str) -> CosimError:
        return CosimError(reason, file=self.file,
                          key=self.key + ("" if name is None else f".{name}"))

    def refuse(self, allowed: tuple[str, ...], what: str) -> None:
        """Raise for a set key not in ``allowed`` (``what``: who takes it)."""
        for k in self.given:
            if k not in allowed:
                raise self.error(k, f"not a key of a stimulus with target {what}")


@dataclass(frozen=True)
class StimulusRecord:
    """What a bound stimulus applies, for the output file (module docstring).

    ``dt_ms``, ``offset_ms``: the engine's stimulus times ``t_k = k dt + offset`` (the
    bus writes ``u(t_k)`` for the steps of every window); ``targets``/``weights``: the
    spatial pattern; ``unit``: unit of ``u``; ``time_rule``: how the engine applies it.
    """

    name: str
    engine: str
    target: str
    pattern: Pattern
    dt_ms: float
    offset_ms: float
    targets: tuple[str, ...]
    weights: np.ndarray
    unit: str
    time_rule: str

    def times(self, t0_ms: float, t1_ms: float) -> np.ndarray:
        """Stimulus times of the steps in ``[t0, t1)``."""
        k0, k1 = int(round(t0_ms / self.dt_ms)), int(round(t1_ms / self.dt_ms))
        return step_times(np.arange(k0, k1), self.dt_ms, self.offset_ms)

    def values(self, t0_ms: float, t1_ms: float) -> np.ndarray:
        return self.pattern(self.times(t0_ms, t1_ms))

    def attrs(self) -> dict:
        out = dict(engine=self.engine, target=self.target, targets=list(self.targets),
                   unit=self.unit, dt_ms=self.dt_ms, time_rule=self.time_rule,
                   applied="weights[j] * values[k] on target j at time_ms[k]",
                   pattern=self.pattern.kind)
        for k, v in self.pattern.params.items():
            if v is not None:
                out[f"pattern_{k}"] = v
        return out


def step_times(k: np.ndarray, dt_ms: float, offset_ms: float = 0.0) -> np.ndarray:
    """``k dt + offset`` (ms): the one formula engines and the recorder use."""
    t = np.asarray(k, dtype=np.float64) * dt_ms
    return t + offset_ms if offset_ms else t


def read_stimuli(reader: Reader, base_dir: Path) -> list[StimulusSpec]:
    """Every ``[stimuli.<name>]`` table, in file order (nothing bound yet)."""
    out = []
    for name in reader.keys():
        r = reader.table(name)
        engine = r.param(ENGINE)
        target = r.param(TARGET)
        if not (isinstance(target, str) or (isinstance(target, list) and target
                                             and all(isinstance(t, str) for t in target))):
            raise r.error("target", f"must be a string or an array of strings, got {target!r}")
        given = {}
        for decl in (WEIGHTS, POPULATION, CELLS, SECTION, X, INPUT, PROFILE):
            if r.has(decl.name):
                given[decl.name] = r.param(decl)
        pattern = read_pattern(r.table("temporal"), base_dir)
        r.done()
        out.append(StimulusSpec(name, engine, target, pattern, given, reader.file))
    return out


def bind_stimuli(specs: list[StimulusSpec], engines: dict) -> dict[str, StimulusRecord]:
    """Attach every stimulus to its engine (:meth:`cosim.engines.base.Engine.add_stimulus`);
    name → what it applies."""
    from .engines.neural_mass_config import suggest

    records = {}
    for spec in specs:
        if spec.engine not in engines:
            raise spec.error("engine", f"no engine {spec.engine!r}; have "
                             f"{', '.join(engines)}" + suggest(spec.engine, list(engines)))
        engine = engines[spec.engine]
        try:
            records[spec.name] = engine.add_stimulus(spec)
        except CosimError as exc:
            raise exc.at(file=spec.file, key=spec.key) from None
    return records


# -- spatial patterns --------------------------------------------------------------------

def region_weights(spec: StimulusSpec, connectome, region_indices: np.ndarray,
                   engine: str) -> np.ndarray:
    """The ``weights`` of a region-level stimulus, one per engine region (engine order)."""
    from .region_names import suggestion

    labels = list(connectome.region_labels)
    mine = [int(i) for i in region_indices]
    n, n_all = len(mine), len(labels)
    value = spec.given.get("weights")
    if value is None:
        return np.ones(n)
    if isinstance(value, dict):
        out = np.zeros(n)
        default = value.get("default", 0.0)
        out[:] = _finite(spec, "weights.default", default)
        where = {lab: j for j, lab in enumerate(labels)}
        pos = {g: j for j, g in enumerate(mine)}
        for lab, w in value.items():
            if lab == "default":
                continue
            if lab not in where:
                raise spec.error(f"weights.{lab}", "unknown region" + suggestion(lab, labels))
            if where[lab] not in pos:
                raise spec.error(f"weights.{lab}", f"region {lab!r} is not simulated by "
                                                   f"engine {engine!r}")
            out[pos[where[lab]]] = _finite(spec, f"weights.{lab}", w)
        return out
    if isinstance(value, list):
        if len(value) == n_all:
            vals = [_finite(spec, f"weights[{i}]", v) for i, v in enumerate(value)]
            return np.array(vals)[mine]
        if len(value) == n:
            return np.array([_finite(spec, f"weights[{i}]", v) for i, v in enumerate(value)])
        also = f", or one per region of engine {engine!r} ({n})" if n != n_all else ""
        raise spec.error("weights", f"has {len(value)} values; expected one per connectome "
                                    f"region ({n_all}){also}")
    return np.full(n, _finite(spec, "weights", value))


def _finite(spec: StimulusSpec, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise spec.error(key, f"must be a number, got {type(v).__name__} {v!r}")
    if not math.isfinite(float(v)):
        raise spec.error(key, f"must be finite, got {v!r}")
    return float(v)
