"""The neural-mass engine: a network of neural masses on a delayed connectome.

One engine simulates a set of regions of the connectome with one model, one integrator and
one coupling function.  Each window ``[t0, t1)`` is integrated by a single call of a numba
kernel (:mod:`cosim.integrators`) that loops over steps, nodes and the sparse edge list,
reading delayed afferents from a ring buffer (:mod:`cosim.history`).

Scenario section (all times in ms, lengths in mm, speeds in mm/ms)::

    [engines.cortex]
    type = "neural_mass"
    model = "jansen_rit"        # wilson_cowan | jansen_rit | stuart_landau | wong_wang | linear
    regions = "all"             # "all" | "rest" (regions no earlier engine claimed) |
                                # ["rA1", "rA2", ...] (connectome labels)
    dt = 0.1                    # ms, integration step, > 0 (default 0.1)
    integrator = "heun"         # heun | rk4 | euler_maruyama | stochastic_heun (default heun)
    coupling_evaluation = "stage"   # "stage": each stage reads the delayed state at its
                                # own time (Heun 2nd, RK4 4th order); "step": delayed input
                                # computed once per step and held (The Virtual Brain's rule)
    speed = 3.0                 # mm/ms (= m/s) conduction speed; delay = tract length / speed,
                                # rounded to whole steps (default 3.0, TVB's default)

    [engines.cortex.options]    # structural model choices, e.g. wilson_cowan: transfer = "erf"
    [engines.cortex.parameters] # any model parameter, in the model's units (see cosim.models):
    A = 3.5                     #   one value for all regions,
    mu = [0.22, 0.23, ...]      #   an array with one value per engine region, or
    B = {default = 22.0, rA1 = 25.0}   # a table of region label -> value
    [engines.cortex.coupling]
    type = "sigmoidal_jansen_rit"   # linear | difference | sigmoidal_jansen_rit
                                # (default: the model's usual coupling)
    G = 0.5                     # global coupling strength, plus that type's parameters
                                # (see cosim.coupling), one value each
    [engines.cortex.noise]      # only with a stochastic integrator; additive noise
    y4 = 0.001                  # σ per state variable, in (state unit)/√ms: the increment
                                # per step is σ √dt ξ, ξ ~ N(0, 1); scalar/array/table as above
    [engines.cortex.initial]    # initial state, held constant as history for t ≤ 0
    y0 = 0.0                    # per state variable: scalar/array/table as above
    random = false              # true: variables not given are uniform in the model's range,
                                # per region from the stream (seed, engine, region)
    seed = 0                    # optional seed of those draws (default: simulation seed)

Recording: the variables of ``[record.<engine>] variables`` (default: all state variables)
every ``[record] period`` ms (a whole multiple of ``dt``), dataset ``"timeseries"`` of
shape ``(time, variable, region)``; sample ``k`` is the state at ``t = k·period``.

Inputs/exports per window (for the bus): ``inputs["coupling"]`` (optional) of shape
``(n_steps, n_inputs, n_regions)`` or ``(n_inputs, n_regions)`` is added to the coupling
input ``c`` of every step; with ``export_afferent=True`` the window output carries
``exports["afferent"]`` ``(n_steps, n_afferent, n_regions)``, the afferent values ``a_j``
(see :mod:`cosim.coupling`) after each step.

Noise streams are keyed by ``(seed, "neural_mass", engine name, "noise", region index)``
(:mod:`cosim.rng`), so results do not depend on region order or on how regions are split.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..coupling import COUPLINGS, Coupling
from ..errors import CosimError
from ..history import dring_shape, edge_lists, far_start, initial_states, ring_length, ring_shape
from ..integrators import (EVALUATIONS, INTEGRATORS, MAX_STAGES, SCHEMES, STOCHASTIC,
                           get_kernels, noise_scale)
from ..models import MODELS, Model
from ..rng import NodeStreams
from .base import BuildContext, RecordSpec, WindowOutput

DATASET = "timeseries"


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fail(key: str | None, reason: str) -> CosimError:
    return CosimError(reason, key=key)


def _whole_multiple(a: float, b: float) -> int | None:
    """``a / b`` if it is (within 1e-9 relative) a whole number, else ``None``."""
    q = a / b
    k = round(q)
    return int(k) if abs(q - k) <= 1e-9 * max(1.0, abs(q)) else None


def per_region(value: Any, labels: Sequence[str], default: float, key: str) -> np.ndarray:
    """One float per region from a scalar, a sequence (one per region) or a mapping
    ``{"default": v, label: v, ...}``; raises :class:`CosimError` naming ``key``."""
    n = len(labels)

    def number(v, k):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise _fail(k, f"must be a number, got {type(v).__name__} {v!r}")
        if not math.isfinite(float(v)):
            raise _fail(k, f"must be finite, got {v!r}")
        return float(v)

    if isinstance(value, Mapping):
        out = np.full(n, number(value.get("default", default), f"{key}.default"))
        index = {lab: i for i, lab in enumerate(labels)}
        for lab, v in value.items():
            if lab == "default":
                continue
            if lab not in index:
                raise _fail(f"{key}.{lab}", "not a region of this engine" + _suggest(lab, labels))
            out[index[lab]] = number(v, f"{key}.{lab}")
        return out
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n:
            raise _fail(key, f"has {len(value)} values, expected one per region ({n})")
        return np.array([number(v, f"{key}[{i}]") for i, v in enumerate(value)], dtype=np.float64)
    return np.full(n, number(value, key))


class NeuralMassEngine:
    """Network of neural masses with delayed long-range coupling.

    Parameters
    ----------
    name : str
        Engine name (used in output paths and random-stream keys).
    model : str or Model
        A name from :data:`cosim.models.MODELS` or a model declaration.
    connectome : cosim.connectome.Connectome
        The whole connectome (``weights[target, source]``, ``tract_lengths_mm``).
    regions : None, "all", or sequence of labels / indices
        Regions this engine simulates, in this order (default all).  Connections from
        regions outside the engine are not simulated here (they arrive as inputs).
    dt_ms : float
        Integration step (ms).
    integrator : str
        ``heun``, ``rk4``, ``euler_maruyama`` or ``stochastic_heun``.
    coupling : str, optional
        Coupling type (default: the model's ``default_coupling``).
    coupling_parameters : dict, optional
        Coupling parameters by name (``G`` and the type's own), scalars.
    parameters : dict, optional
        Model parameters by name: scalar, one value per region, or
        ``{"default": v, label: v}``.
    noise : dict, optional
        Additive noise σ per state variable ((state unit)/√ms), same forms as parameters;
        only with a stochastic integrator.
    seed : int
        Master seed; noise (and random initial) streams derive from it.
    record_period_ms : float, optional
        Sample period of the recorded time series (default ``dt_ms``).
    record_variables : sequence of str, optional
        State variables to record (default all).
    speed_mm_per_ms : float
        Conduction speed; delays are ``rint(tract_length / speed / dt)`` steps.
    coupling_evaluation : "stage" or "step"
        See :mod:`cosim.integrators`.
    initial : dict, optional
        Initial value per state variable (scalar / per region / mapping); held constant as
        history for t ≤ 0.  Variables not given take the model default, or a uniform random
        value in the model's range if ``random_initial``.
    random_initial : bool
        See ``initial``.
    initial_seed : int, optional
        Seed of the random initial values (default ``seed``).
    initial_history : ndarray, optional
        Explicit history ``(T, n_state, n_regions)``, chronological, last sample at t = 0
        (TVB's ``initial_conditions`` layout); overrides ``initial``.
    model_options : dict, optional
        Structural model options (e.g. ``{"transfer": "erf"}`` for Wilson–Cowan).
    export_afferent : bool
        Return the afferent values of every step in ``WindowOutput.exports["afferent"]``.
    """

    def __init__(self, name: str, model: str | Model, connectome, regions=None, dt_ms: float = 0.1,
                 integrator: str = "heun", coupling: str | None = None,
                 coupling_parameters: Mapping[str, float] | None = None,
                 parameters: Mapping[str, Any] | None = None,
                 noise: Mapping[str, Any] | None = None, seed: int = 0,
                 record_period_ms: float | None = None,
                 record_variables: Sequence[str] | None = None,
                 speed_mm_per_ms: float = 3.0, coupling_evaluation: str = "stage",
                 initial: Mapping[str, Any] | None = None, random_initial: bool = False,
                 initial_seed: int | None = None, initial_history: np.ndarray | None = None,
                 model_options: Mapping[str, str] | None = None, export_afferent: bool = False):
        self.name = str(name)
        self.model = self._resolve_model(model)
        self.options = self._resolve_options(model_options)
        self.dt_ms = float(dt_ms)
        if not (math.isfinite(self.dt_ms) and self.dt_ms > 0):
            raise _fail("dt", f"must be > 0 ms, got {dt_ms!r}")
        if integrator not in INTEGRATORS:
            raise _fail("integrator", f"must be one of {', '.join(INTEGRATORS)}, got {integrator!r}"
                        + _suggest(str(integrator), INTEGRATORS))
        self.integrator = integrator
        if coupling_evaluation not in EVALUATIONS:
            raise _fail("coupling_evaluation", f"must be 'stage' or 'step', got {coupling_evaluation!r}")
        self.coupling_evaluation = coupling_evaluation
        self.seed = int(seed)
        self.export_afferent = bool(export_afferent)

        self.region_indices = self._resolve_regions(connectome, regions)
        self.region_labels = tuple(connectome.region_labels[i] for i in self.region_indices)
        self.n_regions = len(self.region_indices)

        self.coupling = self._resolve_coupling(coupling)
        self.coupling_params = self._coupling_parameters(coupling_parameters or {})
        self.params = self._model_parameters(parameters or {})
        self._setup_network(connectome, speed_mm_per_ms)
        self._setup_noise(noise or {})
        self._setup_recording(record_period_ms, record_variables)
        self._initial = self._initial_history(initial or {}, random_initial,
                                              self.seed if initial_seed is None else initial_seed,
                                              initial_history)
        self._built = False

    # ------------------------------------------------------------------------------------
    # construction helpers (validation happens here, once)
    # ------------------------------------------------------------------------------------
    @staticmethod
    def _resolve_model(model) -> Model:
        if isinstance(model, Model):
            return model
        if model not in MODELS:
            raise _fail("model", f"unknown model {model!r}; known: {', '.join(MODELS)}"
                        + _suggest(str(model), list(MODELS)))
        return MODELS[model]

    def _resolve_options(self, given) -> tuple[str, ...]:
        given = dict(given or {})
        names = [o.name for o in self.model.options]
        for k in given:
            if k not in names:
                raise _fail(f"options.{k}", f"unknown option of {self.model.name}"
                            + (_suggest(k, names) if names else " (it has none)"))
        for opt in self.model.options:
            if opt.name in given and given[opt.name] not in opt.choices:
                raise _fail(f"options.{opt.name}", f"must be one of {', '.join(map(repr, opt.choices))}, "
                                                   f"got {given[opt.name]!r}")
        return self.model.resolve_options(given)

    @staticmethod
    def _resolve_regions(connectome, regions) -> tuple[int, ...]:
        labels = tuple(connectome.region_labels)
        n = len(labels)
        if regions is None or (isinstance(regions, str) and regions == "all"):
            return tuple(range(n))
        if isinstance(regions, str):
            raise _fail("regions", f"must be \"all\", \"rest\" or an array of region labels, got {regions!r}")
        out: list[int] = []
        for k, r in enumerate(regions):
            if isinstance(r, (int, np.integer)) and not isinstance(r, bool):
                if not 0 <= r < n:
                    raise _fail(f"regions[{k}]", f"region index {r} out of range 0..{n - 1}")
                idx = int(r)
            elif isinstance(r, str):
                if r not in labels:
                    raise _fail(f"regions[{k}]", f"unknown region {r!r} in the connectome"
                                + _suggest(r, labels))
                idx = labels.index(r)
            else:
                raise _fail(f"regions[{k}]", f"must be a region label, got {r!r}")
            if idx in out:
                raise _fail(f"regions[{k}]", f"region {labels[idx]!r} listed twice")
            out.append(idx)
        if not out:
            raise _fail("regions", "selects no region")
        return tuple(out)

    def _resolve_coupling(self, coupling) -> Coupling:
        name = self.model.default_coupling if coupling is None else coupling
        if name not in COUPLINGS:
            raise _fail("coupling.type", f"unknown coupling {name!r}; known: {', '.join(COUPLINGS)}"
                        + _suggest(str(name), list(COUPLINGS)))
        c = COUPLINGS[name]
        ncv = len(self.model.coupling_variables)
        if c.n_cvar is not None and c.n_cvar != ncv:
            raise _fail("coupling.type", f"{name} needs a model with {c.n_cvar} coupling variables; "
                                         f"{self.model.name} has {ncv} ({', '.join(self.model.coupling_variables)})")
        return c

    def _coupling_parameters(self, given) -> np.ndarray:
        values = self.coupling.default_parameters()
        names = self.coupling.parameter_names
        for k, v in given.items():
            if k not in names:
                raise _fail(f"coupling.{k}", f"unknown parameter of coupling {self.coupling.name}"
                            + _suggest(k, names))
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(v)):
                raise _fail(f"coupling.{k}", f"must be a finite number, got {v!r}")
            values[names.index(k)] = float(v)
        return values

    def _model_parameters(self, given) -> np.ndarray:
        names = self.model.parameter_names
        p = np.tile(self.model.default_parameters(), (self.n_regions, 1))
        for k, v in given.items():
            if k not in names:
                raise _fail(f"parameters.{k}", f"unknown parameter of {self.model.name}"
                            + _suggest(k, names))
            j = names.index(k)
            p[:, j] = per_region(v, self.region_labels, self.model.parameters[j].default,
                                 f"parameters.{k}")
        return np.ascontiguousarray(p)

    def _setup_network(self, connectome, speed) -> None:
        speed = float(speed)
        if not (math.isfinite(speed) and speed > 0):
            raise _fail("speed", f"must be > 0 mm/ms, got {speed!r}")
        self.speed_mm_per_ms = speed
        idx = np.asarray(self.region_indices, dtype=np.int64)
        w = np.asarray(connectome.weights, dtype=np.float64)[np.ix_(idx, idx)]
        lengths = np.asarray(connectome.tract_lengths_mm, dtype=np.float64)[np.ix_(idx, idx)]
        steps = np.rint(lengths / speed / self.dt_ms).astype(np.int64)   # TVB's rule
        self.max_delay_steps = int(steps[w != 0].max()) if (w != 0).any() else 0
        self.history_length = ring_length(self.max_delay_steps)
        far, near, instant, rowsum = edge_lists(w, steps)
        self._net = far + near + instant + (rowsum,)
        self.n_edges = int(far[1].size + near[1].size + instant[1].size)
        ncv = len(self.model.coupling_variables)
        self.n_afferent = self.coupling.n_afferent(ncv)
        self.n_inputs = self.coupling.n_inputs(ncv)

    def _setup_noise(self, noise) -> None:
        names = self.model.state_names
        stochastic = self.integrator in STOCHASTIC
        if noise and not stochastic:
            raise _fail("noise", f"noise needs a stochastic integrator (euler_maruyama or "
                                 f"stochastic_heun), not {self.integrator}")
        sig = {}
        for k, v in noise.items():
            if k not in names:
                raise _fail(f"noise.{k}", f"not a state variable of {self.model.name}" + _suggest(k, names))
            s = per_region(v, self.region_labels, 0.0, f"noise.{k}")
            if (s < 0).any():
                raise _fail(f"noise.{k}", "must be >= 0")
            sig[k] = s
        self.noise_vars = np.array([names.index(k) for k in names if k in sig and sig[k].any()],
                                   dtype=np.int64)
        sigma = np.array([sig[names[v]] for v in self.noise_vars]).T.reshape(self.n_regions, -1)
        self.noise_sigma = np.ascontiguousarray(sigma, dtype=np.float64)
        self._streams = (NodeStreams(self.seed, ("neural_mass", self.name, "noise"), self.region_indices)
                         if self.noise_vars.size else None)

    def _setup_recording(self, period, variables) -> None:
        period = self.dt_ms if period is None else float(period)
        every = _whole_multiple(period, self.dt_ms) if period > 0 else None
        if not every:
            raise _fail("record.period", f"{period:g} ms is not a whole multiple of dt = {self.dt_ms:g} ms")
        self.record_period_ms = period
        self.record_every = every
        names = self.model.state_names
        variables = list(names if variables is None else variables)
        for v in variables:
            if v not in names:
                raise _fail("record.variables", f"{v!r} is not a state variable of {self.model.name} "
                                                f"({', '.join(names)})" + _suggest(v, names))
        if not variables:
            raise _fail("record.variables", "is empty")
        self.record_variables = tuple(variables)
        self._rec_vars = np.array([names.index(v) for v in variables], dtype=np.int64)

    def _initial_history(self, initial, random_initial, seed, history) -> np.ndarray:
        nsv, n = self.model.n_state, self.n_regions
        if history is not None:
            h = np.asarray(history, dtype=np.float64)
            if h.ndim != 3 or h.shape[1:] != (nsv, n):
                raise _fail("initial_history", f"must have shape (T, {nsv}, {n}), got {h.shape}")
            if not np.isfinite(h).all():
                raise _fail("initial_history", "contains NaN/Inf")
            return initial_states(h, self.history_length)
        names = self.model.state_names
        for k in initial:
            if k not in names:
                raise _fail(f"initial.{k}", f"not a state variable of {self.model.name}" + _suggest(k, names))
        x0 = np.empty((nsv, n))
        if random_initial:
            lo = np.array([v.range[0] for v in self.model.state_variables])
            hi = np.array([v.range[1] for v in self.model.state_variables])
            x0[:] = NodeStreams(seed, ("neural_mass", self.name, "initial"),
                                self.region_indices).uniform(lo, hi).T
        else:
            x0[:] = np.array([[v.initial] for v in self.model.state_variables])
        for k, v in initial.items():
            j = names.index(k)
            x0[j] = per_region(v, self.region_labels, self.model.state_variables[j].initial, f"initial.{k}")
        return initial_states(x0, self.history_length)

    # ------------------------------------------------------------------------------------
    # scenario
    # ------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext) -> "NeuralMassEngine":
        """Build from the ``[engines.<name>]`` table (see the module docstring for keys)."""
        r = reader
        model = r.string("model", choices=sorted(MODELS))
        n_all = len(ctx.connectome.region_labels)
        regions_raw = r.any("regions", "all")
        if regions_raw == "rest":
            regions = [i for i in range(n_all) if i not in ctx.claimed_regions]
            if not regions:
                raise r.error("regions", "\"rest\" selects no region: earlier engines claim them all")
        elif isinstance(regions_raw, str) and regions_raw == "all":
            regions = None
        elif isinstance(regions_raw, list) and all(isinstance(v, str) for v in regions_raw):
            regions = regions_raw
        else:
            raise r.error("regions", f"must be \"all\", \"rest\" or an array of region labels, "
                                     f"got {regions_raw!r}")
        kwargs: dict[str, Any] = dict(
            dt_ms=r.number("dt", 0.1, gt=0, unit="ms"),
            integrator=r.string("integrator", "heun", choices=INTEGRATORS),
            coupling_evaluation=r.string("coupling_evaluation", "stage", choices=EVALUATIONS),
            speed_mm_per_ms=r.number("speed", 3.0, gt=0, unit="mm/ms"),
        )
        opt_r = r.table("options", {})
        kwargs["model_options"] = {k: opt_r.string(k) for k in opt_r.keys()}
        kwargs["parameters"] = cls._read_values(r.table("parameters", {}))
        coup_r = r.table("coupling", {})
        kwargs["coupling"] = coup_r.string("type", None, choices=sorted(COUPLINGS))
        kwargs["coupling_parameters"] = {k: coup_r.number(k) for k in coup_r.keys() if k != "type"}
        kwargs["noise"] = cls._read_values(r.table("noise", {})) if r.has("noise") else None
        if r.has("noise") and kwargs["integrator"] not in STOCHASTIC:
            raise r.error("noise", f"noise needs a stochastic integrator (euler_maruyama or "
                                   f"stochastic_heun), not {kwargs['integrator']!r}")
        init_r = r.table("initial", {})
        kwargs["random_initial"] = init_r.boolean("random", False)
        kwargs["initial_seed"] = init_r.integer("seed", None, ge=0)
        kwargs["initial"] = {k: v for k, v in cls._read_values(init_r, skip=("random", "seed")).items()}
        try:
            engine = cls(name, model, ctx.connectome, regions=regions, seed=ctx.seed,
                         record_period_ms=ctx.record_period_ms,
                         record_variables=ctx.record_variables, **kwargs)
        except CosimError as exc:
            key = exc.key or ""
            if key.startswith("record."):
                full = f"record.{name}.variables" if key == "record.variables" else "record.period"
            else:
                full = r.key(key) if key else (r.prefix or None)
            raise CosimError(exc.reason, file=exc.file or r.file, key=full) from None
        for sub in (opt_r, coup_r, init_r):
            sub.done()
        r.done(allowed_extra=("type",))
        return engine

    @staticmethod
    def _read_values(tr, skip: Sequence[str] = ()) -> dict[str, Any]:
        """Raw per-region values of a table (validated by the constructor)."""
        out = {}
        for k in tr.keys():
            if k in skip:
                continue
            v = tr.any(k)
            if isinstance(v, dict):
                v = {kk: vv for kk, vv in v.items()}
            out[k] = v
        return out

    # ------------------------------------------------------------------------------------
    # engine contract
    # ------------------------------------------------------------------------------------
    def record_specs(self) -> list[RecordSpec]:
        units = dict(zip(self.model.state_names, self.model.state_units))
        return [RecordSpec(
            dataset=DATASET,
            variables=self.record_variables,
            units=tuple(units[v] for v in self.record_variables),
            regions=self.region_labels,
            period_ms=self.record_period_ms,
            start_ms=0.0,
            attrs={"model": self.model.name, "integrator": self.integrator,
                   "coupling": self.coupling.name, "dt_ms": self.dt_ms,
                   "coupling_evaluation": self.coupling_evaluation,
                   "speed_mm_per_ms": self.speed_mm_per_ms},
        )]

    def build(self) -> None:
        """Compile (or load) the kernels and set up state and history."""
        dfun = self.model.dfun(self.options)
        self._kernels = get_kernels(self.model.name, self.options, dfun, self.coupling)
        self._scheme = SCHEMES[self.integrator].arrays()
        n, nsv = self.n_regions, self.model.n_state
        lo, hi = self.model.bounds()
        bounded = bool(np.isfinite(lo).any() or np.isfinite(hi).any())
        self._model_args = (self.params, self.model.coupling_indices(), self.coupling_params,
                            lo, hi, bounded)
        states = np.ascontiguousarray(self._initial.transpose(0, 2, 1))    # (L, n, nsv)
        self._cw = (np.zeros((n, self.n_inputs)),) + tuple(np.zeros((n, self.n_afferent))
                                                           for _ in range(4))
        # (node, afferent, ring position); see cosim.history
        self._hist = np.zeros(ring_shape(n, self.n_afferent, self.max_delay_steps))
        self._kernels.fill(states, self._model_args[1], self.coupling_params, self._hist,
                           self._cw[4])
        self._ring = (self._hist, np.zeros(dring_shape(n, self.n_afferent)))
        self._x = states[-1].copy()
        # global step number; first step whose far sum is not in the ring yet
        self._clock = np.array([0, far_start(0)], dtype=np.int64)
        self._ks = np.zeros((MAX_STAGES, n, nsv))     # stage derivatives
        self._xs = np.zeros((n, nsv))                 # stage state
        self._no_input = np.zeros((1, n, self.n_inputs))
        self._no_noise = np.zeros((n, 0, 0))
        self._no_export = np.zeros((0, n, self.n_afferent))
        self._amp = np.ascontiguousarray(noise_scale(self.noise_sigma, self.dt_ms))
        self._built = True

    @property
    def time_ms(self) -> float:
        """Current simulated time (ms)."""
        return float(self._clock[0]) * self.dt_ms if self._built else 0.0

    def advance(self, t0_ms: float, t1_ms: float, inputs: Mapping[str, np.ndarray] | None = None) -> WindowOutput:
        """Integrate ``[t0, t1)``; return the samples in ``(t0, t1]`` (see module docstring)."""
        if not self._built:
            self.build()
        step0 = int(self._clock[0])
        if abs(t0_ms - step0 * self.dt_ms) > 1e-6 * self.dt_ms:
            raise ValueError(f"engine {self.name!r} is at t = {step0 * self.dt_ms:g} ms, "
                             f"asked to advance from {t0_ms:g} ms")
        n_steps = _whole_multiple(t1_ms - t0_ms, self.dt_ms)
        if n_steps is None or n_steps < 0:
            raise ValueError(f"window [{t0_ms:g}, {t1_ms:g}) ms is not a whole number of steps "
                             f"of dt = {self.dt_ms:g} ms")
        n = self.n_regions
        ext = self._external_input(inputs, n_steps) if inputs else self._no_input
        if self._streams is not None:
            xi = np.empty((n, n_steps, self.noise_vars.size))
            self._streams.standard_normal(xi)
        else:
            xi = self._no_noise
        every = self.record_every
        n_rec = (step0 + n_steps) // every - step0 // every
        first = every - step0 % every
        rec = np.empty((n_rec, self._rec_vars.size, n))
        exp_aff = (np.empty((n_steps, n, self.n_afferent)) if self.export_afferent
                   else self._no_export)
        self._kernels.step(n_steps, self.dt_ms, self.coupling_evaluation == "step", self._scheme,
                           self._x, self._ring, self._clock, self._net, self._model_args,
                           (ext, xi, self._amp, self.noise_vars),
                           (self._rec_vars, rec, first, every, exp_aff), self._ks, self._xs,
                           self._cw)
        exports = {"afferent": exp_aff.transpose(0, 2, 1).copy()} if self.export_afferent else {}
        return WindowOutput(records={DATASET: rec}, exports=exports)

    def _external_input(self, inputs, n_steps) -> np.ndarray:
        unknown = set(inputs) - {"coupling"}
        if unknown:
            raise ValueError(f"engine {self.name!r} takes input 'coupling' only, got {sorted(unknown)}")
        if "coupling" not in inputs:
            return self._no_input
        u = np.asarray(inputs["coupling"], dtype=np.float64)
        shape = (self.n_inputs, self.n_regions)
        if u.shape == shape:
            return np.ascontiguousarray(u.T[np.newaxis])
        if u.shape == (n_steps,) + shape:
            return np.ascontiguousarray(u.transpose(0, 2, 1))
        raise ValueError(f"input 'coupling' must have shape {shape} or {(n_steps,) + shape}, got {u.shape}")

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue bit-identically: state ``(region, variable)``,
        afferent history (ring, see :mod:`cosim.history`), global step, noise rng states."""
        if not self._built:
            self.build()
        out = {"state": self._x.copy(), "history": self._hist.copy(),
               "step": np.array(self._clock[0])}
        if self._streams is not None:
            out["rng"] = self._streams.pack_state()
        return out

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        """Continue from a :meth:`state` snapshot of an engine with the same configuration."""
        if not self._built:
            self.build()
        for key, target in (("state", self._x), ("history", self._hist)):
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"checkpoint {key!r} has shape {value.shape}, expected {target.shape}")
            target[...] = value
        step = int(np.asarray(state["step"]))
        self._clock[:] = (step, far_start(step))   # far sums are recomputed from the history
        if self._streams is not None:
            self._streams.unpack_state(state["rng"])
