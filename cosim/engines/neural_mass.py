"""The neural-mass engine: a network of neural masses on a delayed connectome.

One engine simulates a set of regions of the connectome with one model, one integrator and
one coupling function.  Each window ``[t0, t1)`` is integrated by a single call of a numba
kernel (:mod:`cosim.integrators`) that loops over steps, nodes and the sparse edge list,
reading delayed afferents from a ring buffer (:mod:`cosim.history`).

Scenario section (all times in ms, lengths in mm, speeds in mm/ms)::

    [engines.cortex]
    type = "neural_mass"
    model = "jansen_rit"        # see `cosim models` (cosim.models): jansen_rit, epileptor, …
    regions = "all"             # "all" | "rest" (regions no earlier engine claimed) |
                                # ["rA1", "rA2", ...] (connectome labels)
    dt = 0.1                    # ms, integration step, > 0 (default 0.1)
    integrator = "heun"         # euler | heun | rk4 | euler_maruyama | stochastic_heun |
                                # dopri5 (adaptive, delay-free only; rtol, atol) (default heun)
    coupling_evaluation = "stage"   # "stage": each stage reads the delayed state at its
                                # own time (Heun 2nd, RK4 4th order); "step": delayed input
                                # computed once per step and held (The Virtual Brain's rule)
    speed = 3.0                 # mm/ms (= m/s) conduction speed; delay = tract length / speed,
                                # rounded to whole steps.  Default: [connectome] speed
                                # (docs/scenario.md).  Only an engine that simulates every region
                                # may set another; otherwise it must equal the connectome's,
                                # which the bus uses for the delays between engines

    [engines.cortex.options]    # structural model choices, e.g. wilson_cowan: transfer = "erf"
    [engines.cortex.parameters] # any model parameter, in the model's units (see cosim.models):
    A = 3.5                     #   one value for all regions,
    mu = [0.22, 0.23, ...]      #   an array with one value per engine region, or
    B = {default = 22.0, rA1 = 25.0}   # a table of region label -> value
    [engines.cortex.coupling]
    type = "sigmoidal_jansen_rit"   # linear | scaling | difference | kuramoto | sigmoidal |
                                # hyperbolic_tangent | sigmoidal_jansen_rit
                                # (default: the model's usual coupling)
    G = 0.5                     # global coupling strength, plus that type's parameters
                                # (see cosim.coupling); scalar/array/table as parameters
    [engines.cortex.noise]      # only with a stochastic integrator (cosim.integrators)
    type = "additive"           # or "multiplicative": diffusion sigma x
    ntau = 0.0                  # ms; > 0: coloured (Ornstein-Uhlenbeck) additive noise
    y4 = 0.001                  # σ per state variable, in (state unit)/√ms: the increment
                                # per step is σ √dt ξ, ξ ~ N(0, 1); scalar/array/table as above
    [engines.cortex.initial]    # initial state, held constant as history for t ≤ 0
    y0 = 0.0                    # per state variable: scalar/array/table as above
    history = "run1.h5"         # or a .npy (time, state, region): explicit history (t <= 0)
    random = false              # true: variables not given are uniform in the model's range,
                                # per region from the stream (seed, region index)
    seed = 0                    # optional seed of those draws (default: simulation seed)

Stimuli (``[stimuli.<name>]`` with ``engine`` this one, :mod:`cosim.stimuli`): terms
``w_r u(t)`` added to the derivatives of named state variables or to the coupling input,
at the stage times of the integrator (:mod:`.neural_mass_stimuli`).

Recording: the variables of ``[record.<engine>] variables`` (default: all state variables)
every ``[record] period`` ms (a whole multiple of ``dt``), dataset ``"timeseries"`` of
shape ``(time, variable, region)``; sample ``k`` is the state at ``t = k·period``.

Inputs/exports of a window ``[t0, t1)`` = steps ``n0 … n0 + n_steps − 1``:
``inputs["coupling"]`` (optional) of shape ``(n_steps, n_inputs, n_regions)`` or
``(n_inputs, n_regions)`` is added to the coupling input ``c`` of every step; with
``export_afferent=True`` (implied by ``bus=True``) the window output carries
``exports["afferent"]`` ``(n_steps, n_afferent, n_regions)``, the afferent values ``a_j``
(see :mod:`cosim.coupling`) of steps ``n0 + 1 … n0 + n_steps``.

**Split across engines** (``bus=True``, see :mod:`cosim.bus`).  Connections from regions
outside the engine are then simulated: ``external_sources`` (global indices, ascending:
every outside region with a nonzero weight into an engine region) get rows of the delay
ring next to the engine's own, read by the same edge lists, which keep every target's
edges in increasing global source index — so the coupling sums, the ``difference``
coupling's ``Σ_j w_ij`` included, are the same numbers as in one engine that simulates
all regions, and a split run gives the same bits.  Before each window the bus sends
``inputs["sources"]`` ``(L, n_afferent, n_external)``, the afferents ``a_j(t)`` of the
external sources, chronological:

* first window: their initial history, steps ``−(L−1) … 0`` (earlier steps repeat the
  first sample, as :func:`cosim.history.initial_states` does);
* later windows: the samples the engine has not had yet, steps ``n_prev + 1 … n0``
  (``n_prev``: the ``n0`` of the previous window; ``L = S`` for windows of ``S`` steps).

Each window may be at most ``min_external_delay_steps − bus_read_ahead_steps`` steps long
(``bus_read_ahead_steps``: 1 for RK4 with ``"stage"`` evaluation, whose half-step stencil
reads one step further, else 0), so that every external sample a window reads has arrived.
:meth:`~NeuralMassEngine.initial_afferent` gives the engine's own initial afferent history
for the bus.

Noise streams are keyed by ``(seed, "neural_mass.noise", region index)`` and random
initial values by ``(seed, "neural_mass.initial", region index)`` (:mod:`cosim.rng`) —
not by the engine's name (a region belongs to one engine) — so results do not depend on
region order, nor on which engine simulates a region when the brain is split.

Values are validated once, in the constructor (:mod:`cosim.engines.neural_mass_config`);
:meth:`NeuralMassEngine.from_config` only parses the table and names the scenario key in
errors.  Nothing is compiled before :meth:`~NeuralMassEngine.build`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import CosimError
from ..history import (dring_shape, far_restart, far_start, push_rows, read_history_file,
                       ring_length, ring_shape)
from ..integrators import (ADAPTIVE, DOPRI_A, DOPRI_B, DOPRI_E, DOPRI_STAGES, MAX_STAGES,
                           SCHEMES, coloured_increments, get_kernels, noise_scale, read_ahead)
from ..models import Model
from ..numerics import check_finite
from ..rng import Streams
from . import neural_mass_config as cfg
from ..multicompartment.partition import block
from .base import BuildContext, Engine, Export, RecordSpec, Take, WindowOutput
from .neural_mass_network import network, undelayed_external
from . import neural_mass_stimuli as stim
from .neural_mass_stimuli import BoundStimulus

DATASET = "timeseries"
#: Dataset of the recorded coupling input (see :meth:`NeuralMassEngine.record_coupling`).
COUPLING_DATASET = "coupling"


class NeuralMassEngine(Engine):
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
        Coupling parameters by name (``G`` and the type's own), same forms as
        ``parameters`` (a source's afferent reads its own values, a target's input its own).
    parameters : dict, optional
        Model parameters by name: scalar, one value per region, or
        ``{"default": v, label: v}``.
    noise : dict, optional
        Additive noise σ per state variable ((state unit)/√ms), same forms as parameters;
        only with a stochastic integrator.
    seed : int or :class:`cosim.rng.Streams`
        Master seed (or the run's streams, ``BuildContext.rng``); noise (and random
        initial) streams derive from it.
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
    initial_history_file : str, optional
        The same from a file (:func:`cosim.history.read_history_file`: ``.npy`` or an
        earlier run's ``.h5`` output); ``initial_history`` wins when both are given.
    model_options : dict, optional
        Structural model options (e.g. ``{"transfer": "erf"}`` for Wilson–Cowan).
    export_afferent : bool
        Return the afferent values of every step in ``WindowOutput.exports["afferent"]``.
    bus : bool
        Simulate the connections from ``external_sources`` with samples received each
        window (see the module docstring; implies ``export_afferent``).  May also be set
        as the attribute ``bus`` before :meth:`build`.

    Attributes for the bus: ``region_indices``, ``external_sources`` (int64, ascending;
    computed whether or not ``bus`` is set), ``n_afferent``, ``max_delay_steps`` (largest
    delay of any connection of the connectome, in steps of ``dt_ms``),
    ``bus_read_ahead_steps``, ``min_external_delay_steps``.

    Engine contract (:mod:`cosim.engines.base`): exports the afferents of its regions,
    takes the delayed samples of outside sources; splits into contiguous blocks of its
    regions (:func:`~cosim.multicompartment.partition.block`) when every connection between
    two of its regions is delayed by at least the sync interval plus the read-ahead —
    the split-engine mechanism above then gives the one-engine bits.
    """

    type_name = "neural_mass"
    parameters = cfg.SECTION
    exports = Export.AFFERENT
    takes = Take.SOURCES

    def __init__(self, name: str, model: str | Model, connectome, regions=None,
                 dt_ms: float = cfg.DT.default, integrator: str = cfg.INTEGRATOR.default,
                 coupling: str | None = None,
                 coupling_parameters: Mapping[str, float] | None = None,
                 parameters: Mapping[str, Any] | None = None,
                 noise: Mapping[str, Any] | None = None, seed: int | Streams = 0,
                 record_period_ms: float | None = None,
                 record_variables: Sequence[str] | None = None,
                 speed_mm_per_ms: float = cfg.CONNECTOME_SPEED.default,
                 coupling_evaluation: str = cfg.COUPLING_EVALUATION.default,
                 initial: Mapping[str, Any] | None = None, random_initial: bool = False,
                 initial_seed: int | None = None, initial_history: np.ndarray | None = None,
                 model_options: Mapping[str, str] | None = None, export_afferent: bool = False,
                 bus: bool = False, sync_interval_ms: float | None = None,
                 initial_history_file: str | None = None, rtol: float = cfg.RTOL.default,
                 atol: float = cfg.ATOL.default, stimuli: Sequence[BoundStimulus] = (),
                 record_coupling: bool = False):
        # the description, for partitions built on the rank that runs them
        self._args = dict(name=name, model=model, connectome=connectome, regions=regions,
                          dt_ms=dt_ms, integrator=integrator, coupling=coupling,
                          coupling_parameters=coupling_parameters, parameters=parameters,
                          noise=noise, seed=seed, record_period_ms=record_period_ms,
                          record_variables=record_variables, speed_mm_per_ms=speed_mm_per_ms,
                          coupling_evaluation=coupling_evaluation, initial=initial,
                          random_initial=random_initial, initial_seed=initial_seed,
                          initial_history=initial_history, model_options=model_options,
                          export_afferent=export_afferent, sync_interval_ms=sync_interval_ms,
                          initial_history_file=initial_history_file, rtol=rtol, atol=atol,
                          stimuli=tuple(stimuli), record_coupling=record_coupling)
        self.sync_interval_ms = sync_interval_ms
        self._connectome = connectome
        self._stimuli = list(stimuli)
        self.name = str(name)
        self.model = cfg.resolve_model(model)
        self.options = cfg.resolve_options(self.model, model_options)
        self.dt_ms = float(dt_ms)
        self.speed_mm_per_ms = float(speed_mm_per_ms)
        cfg.check_choices(integrator, coupling_evaluation, self.dt_ms, self.speed_mm_per_ms)
        self.integrator = integrator
        self.coupling_evaluation = coupling_evaluation
        # a window of S steps reads external samples up to S − 1 + read_ahead − d steps
        # past its first step, where only samples up to the first step have arrived
        self.bus_read_ahead_steps = max(0, read_ahead(integrator, coupling_evaluation) - 1)
        self.rng = Streams.of(seed)
        self.seed = self.rng.seed
        self.export_afferent = bool(export_afferent)

        self.region_indices = np.asarray(cfg.resolve_regions(connectome, regions), dtype=np.int64)
        self._labels = tuple(connectome.region_labels)
        self.region_labels = tuple(self._labels[i] for i in self.region_indices)
        self.n_regions = len(self.region_indices)

        self.coupling = cfg.resolve_coupling(self.model, coupling)
        self.coupling_params = cfg.coupling_parameters(self.coupling, self.region_labels,
                                                       coupling_parameters or {})
        self.params = cfg.model_parameters(self.model, self.region_labels, parameters or {})
        self._weights = np.asarray(connectome.weights, dtype=np.float64)
        prepare = self.model.extra.get("prepare")
        if prepare is not None:     # parameters a model derives (e.g. feedback inhibition)
            self.params = np.ascontiguousarray(prepare(
                self.model, self.options, self.params, self._weights[self.region_indices],
                self.coupling, self.coupling_params))
        nz = self._weights != 0
        _check_history(connectome, nz, self.speed_mm_per_ms, self.dt_ms, self.model.n_state,
                       self.n_regions)
        self._steps = connectome.delay_steps(self.speed_mm_per_ms, self.dt_ms)  # TVB's rule
        # every engine keeps the history the bus keeps: back to the connectome's largest delay
        self.max_delay_steps = int(self._steps[nz].max()) if nz.any() else 0
        self.adaptive = integrator in ADAPTIVE
        self.rtol, self.atol = float(rtol), float(atol)
        if self.adaptive and self.max_delay_steps > 0:
            longest = float(connectome.tract_lengths_mm[nz].max()) / self.speed_mm_per_ms
            raise CosimError(f"{integrator} is adaptive and needs a delay-free system; this "
                             f"connectome has delays up to {longest:g} ms at "
                             f"{self.speed_mm_per_ms:g} mm/ms (use heun or rk4)", key="integrator")
        if self.adaptive and not (self.rtol > 0 and self.atol > 0):
            raise CosimError("rtol and atol must be > 0", key="rtol")
        self.history_length = ring_length(self.max_delay_steps)
        ncv = len(self.model.coupling_variables)
        self.n_afferent = self.coupling.n_afferent(ncv)
        self.n_inputs = self.coupling.n_inputs(ncv)
        self.coupling_record = bool(record_coupling)
        self._built = False
        self.bus = bus
        self.noise_vars, self.noise_sigma = cfg.noise_sigmas(self.model, self.region_labels,
                                                             integrator, noise or {})
        self.noise_type, self.noise_ntau_ms = cfg.noise_kind(noise or {})
        self._streams = (self.rng.nodes("neural_mass.noise", self.region_indices)
                         if self.noise_vars.size else None)
        (self.record_period_ms, self.record_every, self.record_variables,
         self._rec_vars) = cfg.record_selection(self.model, self.dt_ms, record_period_ms, record_variables)
        if initial_history_file is not None and initial_history is None:
            initial_history = read_history_file(initial_history_file, self.model.state_names,
                                                self.region_labels, self.dt_ms, self.name)
            self._args["initial_history"] = initial_history    # partitions slice it
        self._initial = cfg.initial_history(
            self.model, self.region_labels, "neural_mass.initial", self.region_indices,
            self.history_length, initial or {}, random_initial,
            self.rng if initial_seed is None else Streams(initial_seed), initial_history)

    @property
    def bus(self) -> bool:
        """Whether connections from ``external_sources`` are simulated (module docstring)."""
        return self._bus

    @bus.setter
    def bus(self, value: bool) -> None:
        if self._built:
            raise RuntimeError(f"engine {self.name!r}: set bus before build()")
        value = bool(value)
        if value:
            bad = undelayed_external(self._weights, self._steps, self.region_indices)
            if bad is not None:
                i, j = bad
                raise ValueError(f"engine {self.name!r}: the connection {self._labels[j]} → "
                                 f"{self._labels[i]} has no delay at dt = {self.dt_ms:g} ms; it "
                                 f"cannot cross from another engine")
        nw = network(self._weights, self._steps, self.region_indices, value)
        self._bus = value
        self._net = nw.net
        self.external_sources = nw.external_sources
        self.n_ring_rows, self.n_edges = nw.n_ring_rows, nw.n_edges
        self.min_external_delay_steps = nw.min_external_delay_steps
        self._min_ext_far_lag = nw.min_external_far_lag

    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext) -> "NeuralMassEngine":
        """Build from the ``[engines.<name>]`` table (see the module docstring for keys)."""
        model, regions, kwargs, subs = cfg.read_section(reader, ctx)
        try:
            engine = cls(name, model, ctx.connectome, regions=regions, seed=ctx.rng,
                         record_period_ms=ctx.record_period_ms,
                         record_variables=ctx.record_variables,
                         sync_interval_ms=ctx.sync_interval_ms, **kwargs)
        except CosimError as exc:
            raise cfg.locate(exc, name, reader) from None
        for sub in subs:
            sub.done()
        reader.done(allowed_extra=("type",))
        return engine

    # ------------------------------------------------------------------------------------
    # engine contract
    # ------------------------------------------------------------------------------------
    #: relative cost of one region-state-variable step, in compartment steps (measured here:
    #: a Jansen–Rit region step costs about as much as 50 compartment steps)
    COST_PER_STATE_STEP = 8.0

    def work(self) -> float:
        return self.n_regions * self.model.n_state * self.COST_PER_STATE_STEP / self.dt_ms

    def max_parts(self) -> int:
        """All regions, when every connection between two different regions of the engine
        is delayed by at least one sync window plus the read-ahead; else 1."""
        if self.sync_interval_ms is None or self.n_regions < 2 or self.adaptive:
            return 1        # (adaptive: the step size depends on every region's error)
        idx = self.region_indices
        w = self._weights[np.ix_(idx, idx)].copy()
        np.fill_diagonal(w, 0.0)
        if not w.any():
            return self.n_regions
        need = round(self.sync_interval_ms / self.dt_ms) + self.bus_read_ahead_steps
        shortest = int(self._steps[np.ix_(idx, idx)][w != 0].min())
        return self.n_regions if shortest >= need else 1

    def part_regions(self, part: int, n_parts: int) -> np.ndarray:
        b = block(self.n_regions, part, n_parts)
        return self.region_indices[b.start:b.stop]

    def partition(self, part: int, n_parts: int, exchange=None) -> "NeuralMassEngine":
        """The engine on block ``part`` of ``n_parts`` of its regions (same parameters,
        streams keyed by region, so the parts together give the one-engine bits)."""
        if n_parts == 1:
            return self
        if not 0 <= part < n_parts <= self.max_parts():
            raise ValueError(f"engine {self.name!r} cannot be split into {n_parts} parts")
        b = block(self.n_regions, part, n_parts)
        keep = list(range(b.start, b.stop))
        labels = self.region_labels
        args = dict(self._args)
        args["regions"] = [int(self.region_indices[i]) for i in keep]
        for key in ("parameters", "noise", "initial", "coupling_parameters"):
            if args[key]:
                args[key] = {v: _restrict(x, labels, keep) for v, x in args[key].items()}
        if args["initial_history"] is not None:
            args["initial_history"] = np.asarray(args["initial_history"])[:, :, keep]
        args["stimuli"] = tuple(s.restricted(keep) for s in self._stimuli)
        return type(self)(**args)

    def merge_records(self, by_part):
        """Parts hold contiguous blocks of regions in order: join along the region axis."""
        if len(by_part) == 1:
            return by_part[0]
        return {ds: np.concatenate([p[ds] for p in by_part], axis=2) for ds in by_part[0]}

    def coupled(self) -> None:
        self.bus = True

    def add_stimulus(self, spec):
        """Bind a ``[stimuli.<name>]`` (:mod:`.neural_mass_stimuli`): a term on state
        variables or on the coupling input, per region."""
        if self._built:
            raise RuntimeError(f"engine {self.name!r}: add stimuli before build()")
        bound, record = stim.bind(self, spec, self._connectome)
        self._stimuli.append(bound)
        self._args["stimuli"] = tuple(self._stimuli)
        return record

    def initial(self, n_samples: int) -> dict[str, np.ndarray]:
        return {"afferent": np.ascontiguousarray(self.initial_afferent())}

    def record_coupling(self) -> RecordSpec:
        """Record the network coupling input of every region too (TVB's
        ``AfferentCoupling``); returns the spec of that dataset.  Call before :meth:`build`.

        Dataset ``"coupling"`` ``(time, input, region)``, sampled with the state: sample
        ``k`` is ``c(t_k) = post(Σ_j w_ij a_j(t_k − d_ij), x_i(t_k))`` — the long-range
        input the model receives at ``t_k`` (what the next step's first stage computes;
        under ``coupling_evaluation = "step"`` the value held over that step), without the
        external ``inputs["coupling"]``.  Costs one coupling evaluation per recorded step.
        """
        if self._built:
            raise RuntimeError(f"engine {self.name!r}: record_coupling() before build()")
        self.coupling_record = True
        self._args["record_coupling"] = True
        return self.record_specs()[-1]

    def coupling_input_names(self) -> tuple[str, ...]:
        """Names of the coupling inputs: ``c_<coupling variable>``, or ``c`` when the
        coupling makes one input."""
        if self.n_inputs == len(self.model.coupling_variables):
            return tuple(f"c_{v}" for v in self.model.coupling_variables)
        return ("c",) if self.n_inputs == 1 else tuple(f"c{k}" for k in range(self.n_inputs))

    def record_specs(self) -> list[RecordSpec]:
        specs = self._state_specs()
        if self.coupling_record:
            names = self.coupling_input_names()
            specs.append(RecordSpec(COUPLING_DATASET, names, ("",) * len(names),
                                    self.region_labels, self.record_period_ms, 0.0,
                                    {"kind": "coupling", "model": self.model.name,
                                     "coupling": self.coupling.name,
                                     "coupling_evaluation": self.coupling_evaluation}))
        return specs

    def _state_specs(self) -> list[RecordSpec]:
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
        self._scheme = None if self.adaptive else SCHEMES[self.integrator].arrays()
        self._tol = (DOPRI_A, DOPRI_B, DOPRI_E, np.array([self.rtol, self.atol]))
        self._hs = np.array([self.dt_ms, 0.0, 0.0])     # substep h, accepted, rejected
        n, nsv = self.n_regions, self.model.n_state
        lo, hi = self.model.bounds()
        bounded = bool(np.isfinite(lo).any() or np.isfinite(hi).any())
        self._model_args = (self.params, self.model.coupling_indices(), self.coupling_params,
                            lo, hi, bounded)
        states = np.ascontiguousarray(self._initial.transpose(0, 2, 1))    # (L, n, nsv)
        self._cw = (np.zeros((n, self.n_inputs)),) + tuple(np.zeros((n, self.n_afferent))
                                                           for _ in range(4))
        # (ring row, afferent, ring position); see cosim.history.  External rows (bus) are
        # filled by the first window's "sources".
        self._hist = np.zeros(ring_shape(self.n_ring_rows, self.n_afferent, self.max_delay_steps))
        self._ext_until = None      # last step of the external samples received (bus)
        self._kernels.fill(states, self._model_args[1], self.coupling_params, self._hist,
                           self._cw[4])
        self._ring = (self._hist, np.zeros(dring_shape(n, self.n_afferent)))
        self._x = states[-1].copy()
        # global step number; first step whose far sum is not in the ring yet
        self._clock = np.array([0, far_start(0)], dtype=np.int64)
        self._ks = np.zeros((DOPRI_STAGES if self.adaptive else MAX_STAGES, n, nsv))
        self._xs = np.zeros((n, nsv))                 # stage state
        self._no_input = np.zeros((1, n, self.n_inputs))
        self._no_noise = np.zeros((n, 0, 0))
        self._no_export = np.zeros((0, n, self.n_afferent))
        self._no_crec = np.zeros((0, self.n_inputs, n))
        self._amp = np.ascontiguousarray(noise_scale(self.noise_sigma, self.dt_ms))
        q = self.noise_vars.size
        self._mult = self.noise_type == "multiplicative"
        self._g = (np.zeros((n, q)), np.zeros((n, q)))      # diffusion work arrays
        # coloured noise: the OU force per region and noisy variable; the kernel adds the
        # increments h η as they are (amplitude 1)
        self._eta = np.zeros((n, q))
        if self.noise_ntau_ms > 0:
            self._amp = np.ones_like(self._amp)
        self._stim = stim.Arrays(self._stimuli, n, nsv, self.n_inputs, self.dt_ms,
                                 self.coupling_evaluation == "step" or self.adaptive)
        self._built = True

    def initial_afferent(self) -> np.ndarray:
        """The afferent values of the engine's regions for steps ``−(L−1) … 0`` from its
        initial history, ``(L, n_afferent, n_regions)``, chronological, with
        ``L = max_delay_steps + 1 + bus_read_ahead_steps`` (RK4's half-step stencil reads one
        sample beyond the largest delay)."""
        if not self._built:
            self.build()
        n = self.n_regions
        states = np.ascontiguousarray(self._initial.transpose(0, 2, 1))    # (T, n, nsv)
        hist = np.zeros(ring_shape(n, self.n_afferent, self.max_delay_steps))
        self._kernels.fill(states, self._model_args[1], self.coupling_params, hist,
                           np.zeros((n, self.n_afferent)))
        L = self.max_delay_steps + 1 + self.bus_read_ahead_steps
        slots = np.arange(-(L - 1), 1) & (self.history_length - 1)
        return np.ascontiguousarray(hist[:, :, slots].transpose(2, 1, 0))

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
        n_steps = cfg.whole_multiple(t1_ms - t0_ms, self.dt_ms)
        if n_steps is None or n_steps < 0:
            raise ValueError(f"window [{t0_ms:g}, {t1_ms:g}) ms is not a whole number of steps "
                             f"of dt = {self.dt_ms:g} ms")
        n = self.n_regions
        ext = self._no_input
        if inputs:
            unknown = set(inputs) - {"coupling", "sources"}
            if unknown:
                raise ValueError(f"engine {self.name!r} takes inputs 'coupling' and 'sources' "
                                 f"only, got {sorted(unknown)}")
            if "coupling" in inputs:
                ext = self._external_input(inputs["coupling"], n_steps)
            if "sources" in inputs and not self._bus:
                raise ValueError(f"engine {self.name!r} got input 'sources' but is not coupled "
                                 f"through the bus (bus=False)")
        if self._bus:
            self._take_sources(inputs.get("sources") if inputs else None, step0, n_steps)
        if self._streams is not None:
            xi = np.empty((n, n_steps, self.noise_vars.size))
            self._streams.standard_normal(xi)
            if self.noise_ntau_ms > 0:
                xi = coloured_increments(xi, self._eta, self.noise_sigma, self.dt_ms,
                                         self.noise_ntau_ms)
        else:
            xi = self._no_noise
        every = self.record_every
        n_rec = (step0 + n_steps) // every - step0 // every
        first = every - step0 % every
        rec = np.empty((n_rec, self._rec_vars.size, n))
        exporting = self.export_afferent or self._bus
        exp_aff = np.empty((n_steps, n, self.n_afferent)) if exporting else self._no_export
        drive = ((ext, xi, self._amp, self.noise_vars, self._mult) + self._g
                 + self._stim(step0, n_steps))
        crec = (np.empty((n_rec, self.n_inputs, n)) if self.coupling_record
                else self._no_crec)
        out = (self._rec_vars, rec, first, every, exp_aff, crec)
        if self.adaptive:
            self._kernels.adaptive(n_steps, self.dt_ms, self._tol, self._x, self._ring,
                                   self._clock, self._net, self._model_args, drive, out,
                                   self._ks, self._xs, self._cw, self._hs)
        else:
            self._kernels.step(n_steps, self.dt_ms, self.coupling_evaluation == "step",
                               self._scheme, self._x, self._ring, self._clock, self._net,
                               self._model_args, drive, out, self._ks, self._xs, self._cw)
        # a blow-up stops the run here, before this window's samples reach the output
        check_finite(self.name, self._x, (("region", self.region_labels),
                                          ("variable", self.model.state_names)),
                     self.time_ms, dt_ms=self.dt_ms)
        exports = {"afferent": exp_aff.transpose(0, 2, 1).copy()} if exporting else {}
        records = {DATASET: rec}
        if self.coupling_record:
            records[COUPLING_DATASET] = crec
        return WindowOutput(records=records, exports=exports)

    def _external_input(self, coupling, n_steps) -> np.ndarray:
        u = np.asarray(coupling, dtype=np.float64)
        shape = (self.n_inputs, self.n_regions)
        if u.shape == shape:
            return np.ascontiguousarray(u.T[np.newaxis])
        if u.shape == (n_steps,) + shape:
            return np.ascontiguousarray(u.transpose(0, 2, 1))
        raise ValueError(f"input 'coupling' must have shape {shape} or {(n_steps,) + shape}, got {u.shape}")

    def _take_sources(self, src, step0: int, n_steps: int) -> None:
        """Store the external sources' new samples in their ring rows (module docstring)."""
        n_ext = self.external_sources.size
        if n_ext == 0:
            if src is not None and np.size(src):
                raise ValueError(f"engine {self.name!r} has no external sources, got 'sources'")
            return
        if src is None:
            raise ValueError(f"engine {self.name!r} is coupled through the bus and needs input "
                             f"'sources' (afferents of regions {self.external_sources.tolist()})")
        v = np.ascontiguousarray(src, dtype=np.float64)
        if v.ndim != 3 or v.shape[1:] != (self.n_afferent, n_ext) or v.shape[0] < 1:
            raise ValueError(f"input 'sources' must have shape (L, {self.n_afferent}, {n_ext}), "
                             f"got {v.shape}")
        longest = self.min_external_delay_steps - self.bus_read_ahead_steps
        if n_steps > longest:
            raise ValueError(
                f"engine {self.name!r}: a window of {n_steps} steps is longer than the shortest "
                f"delay from another engine allows ({self.min_external_delay_steps} steps"
                + (f", minus {self.bus_read_ahead_steps} read ahead by {self.integrator}"
                   if self.bus_read_ahead_steps else "") + f"): at most {longest} steps")
        if self._ext_until is None:
            # initial history, steps −(L−1) … 0, extended backwards over the whole ring
            L, R = v.shape[0], self.history_length
            v = v[-R:] if L >= R else np.concatenate([np.repeat(v[:1], R - L, axis=0), v])
            push_rows(self._hist, self.n_regions, step0 - (R - 1), v)
        else:
            if v.shape[0] != step0 - self._ext_until:
                raise ValueError(f"engine {self.name!r}: input 'sources' must hold the samples of "
                                 f"steps {self._ext_until + 1} … {step0} ({step0 - self._ext_until}),"
                                 f" got {v.shape[0]}")
            push_rows(self._hist, self.n_regions, self._ext_until + 1, v)
            if self._min_ext_far_lag is not None:
                self._clock[1] = far_restart(int(self._clock[1]), step0, self._ext_until,
                                             self._min_ext_far_lag)
        self._ext_until = step0

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue bit-identically: state ``(region, variable)``,
        afferent history (ring, see :mod:`cosim.history`), global step, noise rng states."""
        if not self._built:
            self.build()
        out = {"state": self._x.copy(), "history": self._hist.copy(),
               "step": np.array(self._clock[0])}
        if self._bus and self._ext_until is not None:
            out["external_until"] = np.array(self._ext_until)
        if self._streams is not None:
            out["rng"] = self._streams.pack_state()
        if self.noise_ntau_ms > 0:
            out["noise_eta"] = self._eta.copy()
        if self.adaptive:
            out["substep"] = self._hs.copy()
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
        self._ext_until = int(np.asarray(state["external_until"])) if "external_until" in state else None
        if self._streams is not None:
            self._streams.unpack_state(state["rng"])
        if self.noise_ntau_ms > 0:
            self._eta[...] = np.asarray(state["noise_eta"])
        if self.adaptive:
            self._hs[...] = np.asarray(state["substep"])


def _restrict(value, labels, keep):
    """A per-region value (scalar, one per engine region, or a label table) restricted to
    the engine regions ``keep`` (indices into ``labels``)."""
    if isinstance(value, Mapping):
        mine = {labels[i] for i in keep}
        return {k: v for k, v in value.items() if k == "default" or k in mine}
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == len(labels):
        return [value[i] for i in keep]
    return value


#: Largest delay history one engine may hold (bytes); beyond it dt or speed is a mistake.
MAX_HISTORY_BYTES = 1 << 30


def _check_history(connectome, nonzero, speed_mm_per_ms: float, dt_ms: float, n_state: int,
                   n_regions: int) -> None:
    """Refuse delays whose history would not fit in memory (before computing it)."""
    if not nonzero.any():
        return
    longest_ms = float(connectome.tract_lengths_mm[nonzero].max()) / speed_mm_per_ms
    steps = longest_ms / dt_ms
    size = (steps + 64) * n_state * max(n_regions, 1) * 8.0
    if not size <= MAX_HISTORY_BYTES:
        raise CosimError(f"the longest delay, {longest_ms:g} ms (at {speed_mm_per_ms:g} mm/ms), "
                         f"is {steps:.3g} steps of dt = {dt_ms:g} ms: its history would need "
                         f"{size / 2 ** 30:.3g} GiB; use a larger dt or a higher speed",
                         key="dt")
