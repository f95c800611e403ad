"""Validation for the neural-mass engine: user values → checked arrays, once, at the edge.

Each function checks one group of settings of :class:`~cosim.engines.neural_mass.
NeuralMassEngine` and raises :class:`~cosim.errors.CosimError` whose ``key`` is relative
to the engine's table (``parameters.mu``, ``regions[1]``); :func:`read_section` parses the
scenario table into constructor arguments and :func:`locate` turns a relative key into the
dotted key of the scenario file.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..coupling import COUPLINGS, Coupling
from ..errors import CosimError
from ..history import initial_states
from ..integrators import EVALUATIONS, INTEGRATORS, STOCHASTIC
from ..models import MODELS, Model
from ..params import REQUIRED, Param, section
from ..rng import NodeStreams, Streams
from ..scenario_params import SPEED as CONNECTOME_SPEED
from ..region_names import suggestion as region_suggestion

# -- declarations of [engines.<name>] (type = "neural_mass") ---------------------------------

MODEL = Param("model", REQUIRED, "", "neural-mass model (see `cosim models`)", type="string",
              choices=tuple(sorted(MODELS)))
REGIONS = Param("regions", "all", "", "\"all\", \"rest\" (regions no earlier engine claimed) or "
                "an array of connectome region labels, in engine order", type="any")
DT = Param("dt", 0.1, "ms", "integration step (dopri5: the output grid; substeps adapt)", gt=0)
INTEGRATOR = Param("integrator", "heun", "", "time-stepping scheme (euler_maruyama and "
                   "stochastic_heun take [noise]; dopri5: adaptive, delay-free systems only)",
                   type="string", choices=INTEGRATORS)
COUPLING_EVALUATION = Param("coupling_evaluation", "stage", "", "\"stage\": each stage reads "
                            "the delayed state at its own time; \"step\": once per step and "
                            "held (The Virtual Brain's rule)", type="string", choices=EVALUATIONS)
RTOL = Param("rtol", 1e-6, "", "relative tolerance of the adaptive integrator (dopri5)", gt=0)
ATOL = Param("atol", 1e-9, "state unit", "absolute tolerance of the adaptive integrator "
             "(dopri5)", gt=0)
SPEED = CONNECTOME_SPEED.with_(default=None, derived="connectome.speed",
                               doc="conduction speed of this engine's delays; only an engine "
                                   "that simulates every region may differ from connectome.speed")
COUPLING_TYPE = Param("type", None, "", "long-range coupling function", type="string",
                      choices=tuple(sorted(COUPLINGS)), derived="the model's default coupling")
INITIAL_RANDOM = Param("random", False, "", "variables not given are uniform in the model's "
                       "range, per region from the stream (seed, engine, region)", type="boolean")
INITIAL_SEED = Param("seed", None, "", "seed of the random initial draws", type="integer", ge=0,
                     derived="simulation.seed")
INITIAL_HISTORY = Param("history", None, "", "file of an explicit history for t <= 0 "
                        "(relative to the scenario): a .npy array (time, state, region), "
                        "chronological, last sample at t = 0 (TVB's initial_conditions), or an "
                        ".h5 output of an earlier run (its /engines/<name>/timeseries, every "
                        "state variable, recorded every dt); overrides the values",
                        type="string")

NOISE_TYPE = Param("type", "additive", "", "\"additive\": increment sigma sqrt(dt) xi; "
                   "\"multiplicative\": diffusion g(x) = sigma x (Ito with euler_maruyama, "
                   "Stratonovich with stochastic_heun)", type="string",
                   choices=("additive", "multiplicative"))
NOISE_NTAU = Param("ntau", 0.0, "ms", "correlation time of coloured (Ornstein-Uhlenbeck) "
                   "additive noise; 0: white", ge=0)


SECTION = section(
    "engines.<name>", "type = \"neural_mass\": a network of neural masses on the delayed "
    "connectome (cosim.engines.neural_mass)",
    (MODEL, REGIONS, DT, INTEGRATOR, COUPLING_EVALUATION, SPEED, RTOL, ATOL),
    (section("engines.<name>.options", "structural choices of the model (see `cosim describe "
             "model NAME`), e.g. wilson_cowan: transfer = \"erf\"", open=True),
     section("engines.<name>.parameters", "any model parameter, in the model's units: one value, "
             "an array with one value per engine region, or a table {default = v, <label> = v}",
             open=True),
     section("engines.<name>.coupling", "the coupling type and its parameters (see `cosim "
             "describe coupling NAME`), per region like model parameters (a source's "
             "afferent reads its own values, a target's input its own)", (COUPLING_TYPE,),
             open=True),
     section("engines.<name>.noise", "noise (stochastic integrators only): sigma per "
             "state variable in (state unit)/sqrt(ms), per region like parameters; additive: "
             "increment sigma sqrt(dt) xi per step (TVB's nsig = sigma^2 / 2)",
             (NOISE_TYPE, NOISE_NTAU), open=True),
     section("engines.<name>.initial", "initial state, held constant as history for t <= 0: a "
             "value per state variable (per region like parameters)",
             (INITIAL_RANDOM, INITIAL_SEED, INITIAL_HISTORY), open=True)))


def suggest(word: str, choices: Sequence[str]) -> str:
    """``; did you mean 'x'?`` for a close match, else ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def fail(key: str | None, reason: str) -> CosimError:
    return CosimError(reason, key=key)


def whole_multiple(a: float, b: float) -> int | None:
    """``a / b`` if it is (within 1e-9 relative) a whole number, else ``None``."""
    q = a / b
    k = round(q)
    return int(k) if abs(q - k) <= 1e-9 * max(1.0, abs(q)) else None


def _number(v: Any, key: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise fail(key, f"must be a number, got {type(v).__name__} {v!r}")
    if not math.isfinite(float(v)):
        raise fail(key, f"must be finite, got {v!r}")
    return float(v)


def per_region(value: Any, labels: Sequence[str], default: float, key: str) -> np.ndarray:
    """One float per region from a scalar, a sequence (one per region, engine order) or a
    mapping ``{"default": v, label: v, ...}``."""
    n = len(labels)
    if isinstance(value, Mapping):
        out = np.full(n, _number(value.get("default", default), f"{key}.default"))
        index = {lab: i for i, lab in enumerate(labels)}
        for lab, v in value.items():
            if lab == "default":
                continue
            if lab not in index:
                raise fail(f"{key}.{lab}", "not a region of this engine"
                           + region_suggestion(lab, labels))
            out[index[lab]] = _number(v, f"{key}.{lab}")
        return out
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n:
            raise fail(key, f"has {len(value)} values, expected one per region ({n})")
        return np.array([_number(v, f"{key}[{i}]") for i, v in enumerate(value)], dtype=np.float64)
    return np.full(n, _number(value, key))


# -- model, options, coupling ----------------------------------------------------------------

def resolve_model(model: str | Model) -> Model:
    if isinstance(model, Model):
        return model
    if model not in MODELS:
        raise fail("model", f"unknown model {model!r}; known: {', '.join(MODELS)}"
                   + suggest(str(model), list(MODELS)))
    return MODELS[model]


def resolve_options(model: Model, given: Mapping[str, str] | None) -> tuple[str, ...]:
    given = dict(given or {})
    names = [o.name for o in model.options]
    for k in given:
        if k not in names:
            raise fail(f"options.{k}", f"unknown option of {model.name}"
                       + (suggest(k, names) if names else " (it has none)"))
    for opt in model.options:
        if opt.name in given and given[opt.name] not in opt.choices:
            raise fail(f"options.{opt.name}", f"must be one of {', '.join(map(repr, opt.choices))}, "
                                              f"got {given[opt.name]!r}")
    return model.resolve_options(given)


def check_choices(integrator: str, evaluation: str, dt_ms: float, speed: float) -> None:
    if not (math.isfinite(dt_ms) and dt_ms > 0):
        raise fail("dt", f"must be > 0 ms, got {dt_ms!r}")
    if not (math.isfinite(speed) and speed > 0):
        raise fail("speed", f"must be > 0 mm/ms, got {speed!r}")
    if integrator not in INTEGRATORS:
        raise fail("integrator", f"must be one of {', '.join(INTEGRATORS)}, got {integrator!r}"
                   + suggest(str(integrator), INTEGRATORS))
    if evaluation not in EVALUATIONS:
        raise fail("coupling_evaluation", f"must be 'stage' or 'step', got {evaluation!r}")


def resolve_coupling(model: Model, name: str | None) -> Coupling:
    name = model.default_coupling if name is None else name
    if name not in COUPLINGS:
        raise fail("coupling.type", f"unknown coupling {name!r}; known: {', '.join(COUPLINGS)}"
                   + suggest(str(name), list(COUPLINGS)))
    c = COUPLINGS[name]
    ncv = len(model.coupling_variables)
    if c.n_cvar is not None and c.n_cvar != ncv:
        raise fail("coupling.type", f"{name} needs a model with {c.n_cvar} coupling variables; "
                                    f"{model.name} has {ncv} ({', '.join(model.coupling_variables)})")
    return c


def coupling_parameters(coupling: Coupling, labels: Sequence[str],
                        given: Mapping[str, Any]) -> np.ndarray:
    """Coupling parameters ``(region, parameter)`` in declaration order; each given as one
    value, one per region or a label table (like model parameters)."""
    names = coupling.parameter_names
    values = np.tile(coupling.default_parameters(), (len(labels), 1))
    for k, v in given.items():
        if k not in names:
            raise fail(f"coupling.{k}", f"unknown parameter of coupling {coupling.name}"
                       + tvb_hint(k, names, coupling.tvb[1] if coupling.tvb else {}))
        j = names.index(k)
        values[:, j] = per_region(v, labels, coupling.parameters[j].default, f"coupling.{k}")
        _check_bounds(coupling.parameters[j], values[:, j], labels, f"coupling.{k}")
    return np.ascontiguousarray(values)


def tvb_hint(word: str, names: Sequence[str], tvb_names: Mapping[str, str],
             notes: Mapping[str, str] | None = None) -> str:
    """``; did you mean 'x' (TVB: y)?`` when ``word`` is TVB's spelling of cosim's ``x``
    (:func:`cosim.tvb.hint`), else the closest cosim name (:func:`suggest`)."""
    from ..tvb import hint
    return hint(word, tvb_names, notes) or suggest(word, names)


def model_parameters(model: Model, labels: Sequence[str], given: Mapping[str, Any]) -> np.ndarray:
    """Parameters ``(region, parameter)`` in declaration order."""
    names = model.parameter_names
    p = np.tile(model.default_parameters(), (len(labels), 1))
    for k, v in given.items():
        if k not in names:
            raise fail(f"parameters.{k}", f"unknown parameter of {model.name}"
                       + tvb_hint(k, names, *_model_tvb(model)))
        j = names.index(k)
        p[:, j] = per_region(v, labels, model.parameters[j].default, f"parameters.{k}")
        _check_bounds(model.parameters[j], p[:, j], labels, f"parameters.{k}")
    return np.ascontiguousarray(p)


def _model_tvb(model: Model):
    info = model.extra.get("tvb", {})
    return info.get("rename", {}), info.get("notes", {})


def _check_bounds(decl, values: np.ndarray, labels: Sequence[str], key: str) -> None:
    """The declared bounds of a per-region parameter (the first offending region named)."""
    for lab, v in zip(labels, values):
        bad = decl.violation(float(v))
        if bad:
            raise fail(key, bad + (f" (region {lab!r})" if len(set(values)) > 1 else ""))


# -- regions, noise, recording, initial conditions ------------------------------------------

def resolve_regions(connectome, regions) -> tuple[int, ...]:
    """Connectome indices of ``regions`` (None/"all", or labels / indices, in order)."""
    labels = tuple(connectome.region_labels)
    n = len(labels)
    if regions is None or (isinstance(regions, str) and regions == "all"):
        return tuple(range(n))
    if isinstance(regions, str):
        raise fail("regions", f"must be \"all\", \"rest\" or an array of region labels, got {regions!r}")
    out: list[int] = []
    for k, r in enumerate(regions):
        if isinstance(r, (int, np.integer)) and not isinstance(r, bool):
            if not 0 <= r < n:
                raise fail(f"regions[{k}]", f"region index {r} out of range 0..{n - 1}")
            idx = int(r)
        elif isinstance(r, str):
            if r not in labels:
                raise fail(f"regions[{k}]", f"unknown region {r!r} in the connectome"
                           + region_suggestion(r, labels))
            idx = labels.index(r)
        else:
            raise fail(f"regions[{k}]", f"must be a region label, got {r!r}")
        if idx in out:
            raise fail(f"regions[{k}]", f"region {labels[idx]!r} listed twice")
        out.append(idx)
    if not out:
        raise fail("regions", "selects no region")
    return tuple(out)


def noise_kind(noise: Mapping[str, Any]) -> tuple[str, float]:
    """``(type, ntau_ms)`` of a noise table (see :data:`NOISE_TYPE`, :data:`NOISE_NTAU`)."""
    kind = noise.get("type", NOISE_TYPE.default)
    if kind not in NOISE_TYPE.choices:
        raise fail("noise.type", f"must be one of {', '.join(map(repr, NOISE_TYPE.choices))}, "
                                 f"got {kind!r}" + suggest(str(kind), NOISE_TYPE.choices))
    ntau = _number(noise.get("ntau", NOISE_NTAU.default), "noise.ntau")
    if ntau < 0:
        raise fail("noise.ntau", f"must be >= 0 ms, got {ntau:g}")
    if ntau > 0 and kind == "multiplicative":
        raise fail("noise.ntau", "coloured noise (ntau > 0) is additive only; remove ntau or "
                                 "use type = \"additive\"")
    return kind, ntau


def noise_sigmas(model: Model, labels: Sequence[str], integrator: str,
                 noise: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy state indices (q,), σ (region, q))``; only variables with some σ > 0."""
    names = model.state_names
    if noise and integrator not in STOCHASTIC:
        raise fail("noise", f"noise needs a stochastic integrator (euler_maruyama or "
                            f"stochastic_heun), not {integrator}")
    sig = {}
    for k, v in noise.items():
        if k in (NOISE_TYPE.name, NOISE_NTAU.name):
            continue
        if k not in names:
            raise fail(f"noise.{k}", f"not a state variable of {model.name}" + (
                "; TVB's nsig = D is sigma = sqrt(2 D) per state variable here (VAR = sigma)"
                if k == "nsig" else suggest(k, names)))
        s = per_region(v, labels, 0.0, f"noise.{k}")
        if (s < 0).any():
            raise fail(f"noise.{k}", "must be >= 0")
        sig[k] = s
    idx = np.array([i for i, k in enumerate(names) if k in sig and sig[k].any()], dtype=np.int64)
    sigma = np.array([sig[names[i]] for i in idx]).T.reshape(len(labels), -1)
    return idx, np.ascontiguousarray(sigma, dtype=np.float64)


def record_selection(model: Model, dt_ms: float, period: float | None,
                     variables: Sequence[str] | None) -> tuple[float, int, tuple[str, ...], np.ndarray]:
    """``(period_ms, steps per sample, variable names, state indices)``."""
    period = dt_ms if period is None else float(period)
    every = whole_multiple(period, dt_ms) if period > 0 else None
    if not every:
        raise fail("record.period", f"{period:g} ms is not a whole multiple of dt = {dt_ms:g} ms")
    names = model.state_names
    variables = list(names if variables is None else variables)
    for v in variables:
        if v not in names:
            raise fail("record.variables", f"{v!r} is not a state variable of {model.name} "
                                           f"({', '.join(names)})" + suggest(v, names))
    if not variables:
        raise fail("record.variables", "is empty")
    return period, every, tuple(variables), np.array([names.index(v) for v in variables], dtype=np.int64)


def initial_history(model: Model, labels: Sequence[str], domain: str, region_ids,
                    length: int, initial: Mapping[str, Any], random_initial: bool,
                    rng: Streams | int,
                    history: np.ndarray | None) -> np.ndarray:
    """States for steps −(length−1) … 0, ``(length, state, region)`` (see
    :func:`cosim.history.initial_states`)."""
    nsv, n = model.n_state, len(labels)
    if history is not None:
        h = np.asarray(history, dtype=np.float64)
        if h.ndim != 3 or h.shape[1:] != (nsv, n):
            raise fail("initial_history", f"must have shape (T, {nsv}, {n}), got {h.shape}")
        if not np.isfinite(h).all():
            raise fail("initial_history", "contains NaN/Inf")
        return initial_states(h, length)
    names = model.state_names
    for k in initial:
        if k not in names:
            raise fail(f"initial.{k}", f"not a state variable of {model.name}" + suggest(k, names))
    x0 = np.empty((nsv, n))
    if random_initial:
        lo = np.array([v.range[0] for v in model.state_variables])
        hi = np.array([v.range[1] for v in model.state_variables])
        x0[:] = NodeStreams(rng, domain, region_ids).uniform(lo, hi).T
    else:
        x0[:] = np.array([[v.initial] for v in model.state_variables])
    for k, v in initial.items():
        j = names.index(k)
        x0[j] = per_region(v, labels, model.state_variables[j].initial, f"initial.{k}")
    return initial_states(x0, length)


# -- the scenario table ----------------------------------------------------------------------

def _raw_values(tr, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Raw per-region values of a table (checked later by :func:`per_region`)."""
    return {k: tr.any(k) for k in tr.keys() if k not in skip}


def read_section(reader, ctx) -> tuple[str, Any, dict[str, Any], list]:
    """Parse ``[engines.<name>]`` into ``(model, regions, constructor kwargs, sub-readers)``.

    Type errors are raised here with full keys; values are checked by the constructor.
    The sub-readers are returned so the caller can reject unknown keys afterwards.
    """
    r = reader
    _refuse_tvb_names(r)
    model = r.param(MODEL)
    regions_raw = r.param(REGIONS)
    if regions_raw == "rest":
        regions = [i for i in range(len(ctx.connectome.region_labels)) if i not in ctx.claimed_regions]
        if not regions:
            raise r.error("regions", "\"rest\" selects no region: earlier engines claim them all")
    elif isinstance(regions_raw, str) and regions_raw == "all":
        regions = None
    elif isinstance(regions_raw, list) and all(isinstance(v, str) for v in regions_raw):
        regions = regions_raw
    else:
        raise r.error("regions", f"must be \"all\", \"rest\" or an array of region labels, "
                                 f"got {regions_raw!r}")
    kw: dict[str, Any] = dict(
        dt_ms=r.param(DT),
        integrator=r.param(INTEGRATOR),
        coupling_evaluation=r.param(COUPLING_EVALUATION),
        rtol=r.param(RTOL),
        atol=r.param(ATOL),
        speed_mm_per_ms=_speed(r, ctx, regions),
    )
    opt_r = r.table("options", {})
    kw["model_options"] = {k: opt_r.string(k) for k in opt_r.keys()}
    kw["parameters"] = _raw_values(r.table("parameters", {}))
    coup_r = r.table("coupling", {})
    kw["coupling"] = coup_r.param(COUPLING_TYPE)
    kw["coupling_parameters"] = _raw_values(coup_r, skip=("type",))
    if r.has("noise"):
        if kw["integrator"] not in STOCHASTIC:
            raise r.error("noise", f"noise needs a stochastic integrator (euler_maruyama or "
                                   f"stochastic_heun), not {kw['integrator']!r}")
        noise_r = r.table("noise")
        kw["noise"] = _raw_values(noise_r)
    init_r = r.table("initial", {})
    kw["random_initial"] = init_r.param(INITIAL_RANDOM)
    kw["initial_seed"] = init_r.param(INITIAL_SEED)
    hist_file = init_r.param(INITIAL_HISTORY)
    kw["initial"] = _raw_values(init_r, skip=(INITIAL_RANDOM.name, INITIAL_SEED.name,
                                              INITIAL_HISTORY.name))
    if hist_file is not None:
        kw["initial_history_file"] = _relative_to(hist_file, reader.file)
    return model, regions, kw, [opt_r, coup_r, init_r]


def _relative_to(path: str, scenario_file: str | None) -> str:
    from pathlib import Path
    p = Path(path).expanduser()
    if not p.is_absolute() and scenario_file:
        p = Path(scenario_file).parent / p
    return str(p)


def _refuse_tvb_names(r) -> None:
    """A TVB class name where cosim expects its own name: one line naming cosim's."""
    from ..tvb import COUPLING_CLASSES, INTEGRATORS as TVB_INTEGRATORS, MODEL_CLASSES
    coupling = r.raw.get("coupling")
    for key, v, table in (
            ("model", r.raw.get("model"), MODEL_CLASSES),
            ("integrator", r.raw.get("integrator"), TVB_INTEGRATORS),
            ("coupling.type", coupling.get("type") if isinstance(coupling, dict) else None,
             COUPLING_CLASSES)):
        if isinstance(v, str) and v in table:
            what = key.split(".")[0]
            raise r.error(key, f"unknown {what} {v!r}; did you mean {table[v]!r} (TVB: {v})?")


def _speed(r, ctx, regions) -> float:
    """The conduction speed: the connectome's (``ctx.speed_mm_per_ms``).  An engine that
    simulates every region (no connection to another engine) may set its own."""
    speed = float(ctx.speed_mm_per_ms)
    own = r.param(SPEED)
    if own is None:
        return speed
    n = len(ctx.connectome.region_labels)
    whole = regions is None or len(set(regions)) == n
    if own != speed and not whole:
        raise r.error("speed", f"must equal connectome.speed ({speed:g} mm/ms) when engines are "
                               f"coupled through the bus; got {own:g} mm/ms (set the speed in "
                               f"[connectome])")
    return own


def locate(exc: CosimError, engine: str, reader) -> CosimError:
    """A constructor error with its key made absolute for the scenario file."""
    key = exc.key or ""
    if key == "record.variables":
        full = f"record.{engine}.variables"
    elif key.startswith("record."):
        full = "record.period"
    else:
        full = reader.key(key) if key else (reader.prefix or None)
    return CosimError(exc.reason, file=exc.file or reader.file, key=full)
