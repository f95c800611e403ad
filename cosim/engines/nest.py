"""A NEST point-neuron network standing for one region (scenario ``type = "nest"``).

Install with the ``nest`` extra (``pip install cosim[nest]``: NEST 3.10 from PyPI, built
without MPI, threads only).  Names and units are NEST's (mV, ms, pA, nS, pF, Hz)::

    [engines.v1]
    type = "nest"
    region = "rV1"              # optional: the connectome region this network stands for
    resolution = 0.1            # [ms] NEST's resolution, the engine's dt
    threads = 1                 # NEST's local_num_threads (a scenario value: results
                                # depend on it, never on the process layout)

    [engines.v1.populations.E]  # any NEST node model: neurons, generators (poisson_generator)
    model = "iaf_psc_delta"  n = 800
    params = { V_th = 20.0, V_reset = 10.0, t_ref = 2.0, tau_m = 20.0, C_m = 1.0,
               V_m = { distribution = "uniform", min = 0.0, max = 20.0 } }
    record = ["V_m"]  cells = [0, 1]          # optional: state variables of chosen cells

    [engines.v1.projections.EE]  # nest.Connect(source, target, conn, syn), file order
    source = "E"  target = "E"  rule = "fixed_indegree"  conn = { indegree = 80 }
    synapse = "static_synapse"  weight = 0.1  delay = 1.5          # [pA|nS|mV] [ms]
    # weight / delay: a number or { distribution = "normal", mean, std, min?, max? } …
    # syn = { U = 0.5, tau_rec = 800.0 } for synapse = "tsodyks2_synapse"

    [engines.v1.inputs.bg]      # input lines for a rate_to_poisson adapter
    target = "E"  weight = 0.1  delay = 0.1  per_cell = 1  synapse = "static_synapse"

Scenario errors name the key; unknown models, parameters, recordables, synapse models and
rules are found in a cached copy of NEST's own model list, with close matches
(:mod:`cosim.engines.nest_config`), so validation never imports NEST.

**Build.**  ``nest.ResetKernel()``; resolution, threads and ``rng_seed`` (from
:mod:`cosim.rng`, domain ``nest.kernel``, ids ``(engine name,)``: key word 0 mod
(2³¹ − 2) + 1); populations in file order, neuron populations first (so their NEST node
ids are contiguous and gid = node id − first node id), then stimulation devices; the
projections in file order; one ``spike_generator`` per cell of each input group; one
``spike_recorder`` per block of ≥ 50 ms of windows, at most 64 (``start``/``stop``; a recorder
cannot be cleared inside ``Prepare/Run``, and reading one converts every event it holds, so
one recorder for the whole run would make each window's read grow with the run).  Then
``nest.Prepare()`` once.

**Stepping.**  A window ``[t0, t1)`` is one ``nest.Run(t1 − t0)`` (never a fresh
``Simulate``); ``nest.Cleanup()`` runs after the window that ends at the scenario's
duration.  NEST runs in slices of its min delay; a window needs not be a multiple of it
(NEST runs a shorter last slice), so the cut into windows changes no spike — tested
against one ``Simulate`` of the same network.

**Rules on times** (``h`` = resolution, Δ = sync interval; tested in
``tests/test_nest_engine.py``):

* ``h`` divides Δ (so windows end on NEST's grid) and the record period;
* every delay is ≥ ``h`` (NEST refuses less; its min delay is the shortest delay built);
  delays inside the network are independent of Δ — the network is never split, and the
  bus checks that connections *between* engines are delayed by ≥ Δ;
* **input events** of a window lie in ``[t0, t1)``.  An event at time ``t`` is emitted by
  its line's generator at the end of the resolution step that contains it,
  ``t_h = (⌊t/h⌋ + 1)·h`` (steps are ``[kh, (k+1)h)``), so ``t_h ∈ (t0, t1]`` is always in
  the future of NEST's clock and emitted within the window's ``Run``; it reaches the
  cell at ``t_h + delay``.  An on-grid event therefore moves one full step; an off-grid one
  less than a step.  Several events of a cell in one step are kept (multiplicity);
* **spikes** of a window are NEST's spike stamps ``t ∈ (t0, t1]`` (a neuron's spike in step
  ``[kh, (k+1)h)`` is stamped ``(k+1)h``), sorted by (time, gid) — so counting per bus bin
  ``(t0 + b·bin, t0 + (b+1)·bin]`` attributes each spike to the bin its step ends in;
* **state variables** (``record``) are sampled at every window end ``t1`` (their period is
  the sync interval): ``nodes.get(variables)`` after the ``Run``.  NEST's multimeter
  delivers its samples one min-delay slice late, which would not fit a window.

**Inputs and outputs.**  ``inputs["events"] = (line, time_ms)``; lines are numbered
group after group (file order), cell after cell, then ``per_cell`` lines, like the
multicompartment engine's, so a ``rate_to_poisson`` adapter gives both engines the same
trains.  ``exports["spikes"] = (gid, time_ms)`` and ``records["spikes"]`` the same, written
as one SONATA population ``<engine>.<pop>`` per neuron population (node ids from 0 in each,
:mod:`cosim.sonata`); ``records["state.<pop>"]`` ``(time, variable, cell)``.

**One kernel per process.**  NEST's kernel is a process-wide singleton, so one process
builds one NEST engine: a second one in the same process is a scenario error (run with
``--np`` so each NEST engine has a rank of its own).  ``max_parts() = 1`` (no MPI in the
wheel).  ``can_checkpoint = False``: NEST cannot save its state, so ``checkpoint_every``
is a scenario error.  A NEST error inside a window raises (the runtime reports engine and
rank and ends the job).
"""

from __future__ import annotations

import os
import weakref
from contextlib import contextmanager

import numpy as np

from ..errors import CosimError
from ..rng import Streams
from .base import BuildContext, Engine, Export, RecordSpec, Take, WindowOutput
from .spiking import spike_spec
from . import spiking_stimuli as sstim
from . import nest_config as cfg
from .nest_config import Connection, Distribution, InputGroup, Population  # noqa: F401

#: The engine holding this process's NEST kernel (a weak reference), see the docstring.
_KERNEL_OWNER: list = [None]
#: Time covered by one spike_recorder (ms; rounded to whole windows; longer when the run
#: would need more than MAX_RECORDERS), see :meth:`build`.
RECORDER_BLOCK_MS = 50.0
MAX_RECORDERS = 64
_EPS = 1e-9


#: Variables by which the MPI-less NEST wheel detects an MPI launcher and then exits.
LAUNCHER_VARIABLES = ("PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_SIZE")


@contextmanager
def _without_launcher_variables():
    """Hide the MPI launcher's variables from NEST's kernel while it initialises.

    The wheel has no MPI and refuses to start under ``mpiexec``; here it runs inside one
    rank and never talks MPI (the rank's MPI was initialised by cosim before), so it is
    told nothing about the launcher."""
    saved = {k: os.environ.pop(k) for k in LAUNCHER_VARIABLES if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def import_nest():
    """``import nest`` without its banner; a missing install is a scenario error."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    try:
        with _without_launcher_variables():
            import nest
    except ImportError as exc:
        raise CosimError(f"the nest engine needs NEST: pip install 'cosim[nest]' ({exc})") from None
    nest.verbosity = nest.VerbosityLevel.ERROR
    return nest


def nest_seed(rng: Streams, engine: str) -> int:
    """NEST's ``rng_seed`` (1 … 2³¹ − 1) of engine ``engine`` (domain ``nest.kernel``)."""
    return int(rng.key("nest.kernel", engine)[0] % np.uint64(2 ** 31 - 2)) + 1


def grid_times(times_ms: np.ndarray, h_ms: float) -> np.ndarray:
    """Emission times of input events: the end of the resolution step holding each event,
    ``(⌊t/h⌋ + 1)·h`` (see the module docstring)."""
    k = np.floor(np.asarray(times_ms, dtype=np.float64) / h_ms + _EPS)
    return (k + 1.0) * h_ms


def _is_neuron(model: str) -> bool:
    return cfg.models()["node_models"][model]["element_type"] == "neuron"


class NestEngine(Engine):
    """A NEST network for one region; see the module docstring.

    Plain Python use (no TOML)::

        eng = NestEngine("v1", populations=[Population("E", "iaf_psc_alpha", 100)],
                         connections=[...], inputs=[InputGroup("bg", "E", 10.0)], seed=1,
                         duration_ms=100.0)
        eng.build()
        out = eng.advance(0.0, 5.0, {"events": (lines, times)})
    """

    type_name = "nest"
    parameters = cfg.SECTION
    exports = Export.SPIKE_COUNTS
    takes = Take.DRIVE
    can_checkpoint = False

    def __init__(self, name: str, *, populations: list[Population],
                 connections: list[Connection] = (), inputs: list[InputGroup] = (),
                 resolution_ms: float = cfg.RESOLUTION.default, threads: int = cfg.THREADS.default,
                 seed: int | Streams = 0, sync_interval_ms: float = 1.0,
                 duration_ms: float | None = None, record_variables: list[str] | None = None,
                 region_indices: tuple[int, ...] = (), stimuli: tuple = ()):
        self.name = name
        self.stimuli = list(stimuli)
        self._poisson = {}
        self.dt_ms = float(resolution_ms)
        self.threads = int(threads)
        self.rng = Streams.of(seed)
        self.sync_interval_ms = float(sync_interval_ms)
        self.duration_ms = None if duration_ms is None else float(duration_ms)
        self.region_indices = np.asarray(region_indices, dtype=np.int64).reshape(-1)
        self.pops = list(populations)
        self.connections = list(connections)
        self.inputs = list(inputs)
        q = self.sync_interval_ms / self.dt_ms
        if abs(q - round(q)) > 1e-9 * max(1.0, q):
            raise CosimError(f"the sync interval {sync_interval_ms:g} ms is not a whole "
                             f"multiple of the resolution {resolution_ms:g} ms",
                             key=self._key("resolution"))
        self._layout(record_variables)
        self._nest = None
        self._done = False

    def _key(self, *parts: str) -> str:
        return ".".join(("engines", self.name) + parts)

    def _layout(self, record_variables) -> None:
        by_name = {}
        for p in self.pops:
            if p.name in by_name:
                raise CosimError(f"population {p.name!r} declared twice",
                                 key=self._key("populations", p.name))
            by_name[p.name] = p
        self.by_name = by_name
        #: neuron populations → engine gids (0-based, contiguous, declaration order)
        self.groups: dict[str, range] = {}
        for p in self.pops:
            if _is_neuron(p.model):
                first = sum(len(r) for r in self.groups.values())
                self.groups[p.name] = range(first, first + p.n)
        self.n_cells = sum(len(r) for r in self.groups.values())
        if not self.groups:
            raise CosimError("no neuron population (spikes and inputs need one)",
                             key=self._key("populations"))
        for c in self.connections:
            for end in (c.source, c.target):
                if end not in by_name:
                    raise CosimError(f"projection {c.name!r}: unknown population {end!r}",
                                     key=self._key("projections", c.name))
            d = c.delay_ms
            lo = d if isinstance(d, float) else dict(d.args).get("min", d.bounds[0] if d.bounds else None)
            if isinstance(d, float) and lo < self.dt_ms * (1 - 1e-9):
                raise CosimError(f"delay {lo:g} ms is shorter than the resolution {self.dt_ms:g} ms",
                                 key=self._key("projections", c.name, "delay"))
        self.input_lines: dict[str, range] = {}
        for g in self.inputs:
            if g.target not in self.groups:
                raise CosimError(f"input {g.name!r}: {g.target!r} is not a neuron population",
                                 key=self._key("inputs", g.name, "target"))
            if g.delay_ms < self.dt_ms * (1 - 1e-9):
                raise CosimError(f"delay {g.delay_ms:g} ms is shorter than the resolution "
                                 f"{self.dt_ms:g} ms", key=self._key("inputs", g.name, "delay"))
            first = sum(len(r) for r in self.input_lines.values())
            self.input_lines[g.name] = range(first, first + self.by_name[g.target].n * g.per_cell)
        self.n_input_lines = sum(len(r) for r in self.input_lines.values())
        # line → generator (one per cell of a group), in line order
        gen = [np.arange(self.by_name[g.target].n).repeat(g.per_cell) + sum(
            self.by_name[x.target].n for x in self.inputs[:i]) for i, g in enumerate(self.inputs)]
        self._gen_of_line = np.concatenate(gen) if gen else np.zeros(0, np.int64)
        self.n_generators = sum(self.by_name[g.target].n for g in self.inputs)
        default = ["spikes"] + [f"state.{p.name}" for p in self.pops if p.record]
        self.record_variables = list(record_variables or default)
        allowed = {"spikes"} | {f"state.{p.name}" for p in self.pops if p.record}
        for v in self.record_variables:
            if v not in allowed:
                raise CosimError(f"engine {self.name!r} records {', '.join(sorted(allowed))}, "
                                 f"not {v!r}", key=f"record.{self.name}.variables")

    # -- engine contract ----------------------------------------------------------------
    def populations(self) -> dict[str, range]:
        return dict(self.groups)

    def input_groups(self) -> tuple[str, ...]:
        return tuple(self.input_lines)

    def add_stimulus(self, spec):
        """Bind a current train (a ``step_current_generator``, pA) or Poisson rates on an
        input group (events on its ``spike_generator`` lines; :mod:`.spiking_stimuli`)."""
        if self._nest is not None:
            raise RuntimeError(f"engine {self.name!r}: add stimuli before build()")
        bound, record = sstim.bind(
            self, spec, self.groups, self.input_groups(), current_unit="pA",
            current_rule="u(t_n + h/2) pA over step n: a step_current_generator changing at "
                         "t_n - h, connected with delay h")
        if isinstance(bound, sstim.CurrentStimulus) and self.duration_ms is None:
            raise spec.error("target", "a current stimulus on a NEST engine needs the run's "
                                       "duration")
        self.stimuli.append(bound)
        return record

    def local_input_lines(self, group: str) -> np.ndarray:
        if group not in self.input_lines:
            raise CosimError(f"unknown input group {group!r}; have {', '.join(self.input_lines)}")
        r = self.input_lines[group]
        return np.arange(r.start, r.stop, dtype=np.int64)

    def max_parts(self) -> int:
        return 1

    def work(self) -> float:
        """Neuron updates per ms (the plan only compares engines)."""
        return self.n_cells / self.dt_ms

    def record_specs(self) -> list[RecordSpec]:
        specs = []
        if "spikes" in self.record_variables:
            # one SONATA population per NEST population (cosim.sonata), engine-wide gids
            specs.append(spike_spec(self.name, self.dt_ms, self.groups))
        for p in self.pops:
            if f"state.{p.name}" in self.record_variables:
                specs.append(RecordSpec(f"state.{p.name}", p.record,
                                        tuple(_unit(v) for v in p.record),
                                        tuple(f"{p.name}[{c}]" for c in p.cells),
                                        self.sync_interval_ms))
        return specs

    # -- execution ----------------------------------------------------------------------
    def build(self) -> None:
        owner = _KERNEL_OWNER[0]() if _KERNEL_OWNER[0] is not None else None
        if owner is not None and owner is not self and not owner._done:
            raise CosimError(f"engine {self.name!r}: NEST engine {owner.name!r} already holds "
                             f"this process's NEST kernel (one per process); run with --np so "
                             f"that each NEST engine gets a rank of its own",
                             key=self._key("type"))
        _KERNEL_OWNER[0] = weakref.ref(self)
        self._done = False
        nest = self._nest = import_nest()
        with _without_launcher_variables():
            nest.ResetKernel()
        nest.SetKernelStatus({"resolution": self.dt_ms, "local_num_threads": self.threads,
                              "rng_seed": nest_seed(self.rng, self.name)})
        self.nodes = {}
        order = ([p for p in self.pops if _is_neuron(p.model)]
                 + [p for p in self.pops if not _is_neuron(p.model)])
        for p in order:
            self.nodes[p.name] = nest.Create(p.model, p.n)
        for p in order:             # distributions draw in file order, after every Create
            if p.params:
                with self._refused("populations", p.name, "params"):
                    self.nodes[p.name].set({k: self._param(v) for k, v in p.params.items()})
        for c in self.connections:
            syn = {"synapse_model": c.synapse, "weight": self._param(c.weight),
                   "delay": self._param(c.delay_ms)}
            syn.update({k: self._param(v) for k, v in c.syn.items()})
            with self._refused("projections", c.name):
                nest.Connect(self.nodes[c.source], self.nodes[c.target],
                             {"rule": c.rule, **c.conn}, syn)
        self._gens = None
        if self.inputs:
            self._gens = nest.Create("spike_generator", self.n_generators)
            k = 0
            for g in self.inputs:
                n = self.by_name[g.target].n
                nest.Connect(self._gens[k:k + n], self.nodes[g.target], "one_to_one",
                             {"synapse_model": g.synapse, "weight": float(g.weight),
                              "delay": float(g.delay_ms), "receptor_type": int(g.receptor_type)})
                k += n
        self._stimulus_devices(nest)
        self._first_id = np.array([self.nodes[p][0].global_id for p in self.groups])
        self._gid_offset = np.array([r.start for r in self.groups.values()])
        neurons = None
        for p in self.groups:
            neurons = self.nodes[p] if neurons is None else neurons + self.nodes[p]
        # one spike_recorder per block of windows (start/stop), so a window reads only the
        # events of its block: reading a recorder converts all it holds, and recorders
        # cannot be cleared between Runs
        span = self.duration_ms if self.duration_ms is not None else float("inf")
        block_ms = max(RECORDER_BLOCK_MS, span / MAX_RECORDERS) if np.isfinite(span) else 0.0
        n_win = max(1, int(round(block_ms / self.sync_interval_ms)))
        self._block_ms = n_win * self.sync_interval_ms
        n_blocks = 1 if not np.isfinite(span) else max(1, int(np.ceil(span / self._block_ms - 1e-9)))
        self._recorders = nest.Create("spike_recorder", n_blocks)
        if n_blocks > 1:
            self._recorders.set([{"start": b * self._block_ms, "stop": (b + 1) * self._block_ms}
                                 for b in range(n_blocks)])
        nest.Connect(neurons, self._recorders)
        self._probes = {p.name: self.nodes[p.name][list(p.cells)] for p in self.pops if p.record}
        nest.Prepare()
        self._t_ms = 0.0

    def _stimulus_devices(self, nest) -> None:
        """One ``step_current_generator`` per current stimulus, its whole schedule set before
        ``Prepare`` (NEST ignores a change at the current time, so it cannot be set window by
        window): the value for step n, u((n + 1/2) h), at time (n − 1) h, which with the
        connection delay h reaches the cells in step n (step 0 gets nothing).  One
        :class:`RateToPoisson` per Poisson stimulus, on the group's lines."""
        h = self.dt_ms
        for st in self.stimuli:
            if isinstance(st, sstim.PoissonStimulus):
                self._poisson[st.name] = sstim.poisson_generator(
                    self.name, st, self.local_input_lines(st.input), self.rng)
                continue
            from ..stimuli import step_times

            n = int(round(self.duration_ms / h))
            k = np.arange(1, n)                             # steps 1 … n − 1
            u = st.pattern(step_times(k + 0.5, h))
            change = np.concatenate([[True], u[1:] != u[:-1]])
            times = np.round((k[change] - 1) * h, 10)
            values = u[change]
            if times.size and times[0] <= 0.0:             # NEST wants times > 0: step 1's
                times, values = times[1:], values[1:]      # value then starts at step 2
            gen = nest.Create("step_current_generator")
            gen.set({"amplitude_times": times.tolist(), "amplitude_values": values.tolist()})
            cells = self.nodes[st.population]
            if st.cells is not None:
                cells = cells[list(st.cells)]
            nest.Connect(gen, cells, "all_to_all", {"delay": h})

    @contextmanager
    def _refused(self, *key: str):
        """A value NEST refuses while building is a scenario error naming its table."""
        try:
            yield
        except Exception as exc:
            if type(exc).__module__ != "NESTErrors" and "NESTError" not in type(exc).__name__:
                raise
            raise CosimError(f"NEST refused it: {type(exc).__name__}: {exc}",
                             key=self._key(*key)) from None

    def _param(self, v):
        if not isinstance(v, Distribution):
            return v
        nest = self._nest
        d = getattr(nest.random, v.kind)(**dict(v.args))
        if v.bounds is not None:
            d = nest.math.redraw(d, min=v.bounds[0], max=v.bounds[1])
        return d

    def advance(self, t0_ms: float, t1_ms: float, inputs: dict) -> WindowOutput:
        """One ``nest.Run(t1 − t0)``; input events become generator spikes first."""
        nest = self._nest
        if abs(t0_ms - self._t_ms) > 1e-6 * self.dt_ms:
            raise RuntimeError(f"engine {self.name!r} is at t = {self._t_ms} ms, asked to start "
                               f"at {t0_ms}")
        events = inputs.get("events") if inputs else None
        if self._poisson:
            lines, times = [], []
            if events is not None:
                lines.append(np.asarray(events[0], dtype=np.int64).ravel())
                times.append(np.asarray(events[1], dtype=np.float64).ravel())
            n = int(round((t1_ms - t0_ms) / self.dt_ms))
            step0 = int(round(t0_ms / self.dt_ms))
            for st in self.stimuli:
                if st.name in self._poisson and isinstance(st, sstim.PoissonStimulus):
                    got = self._poisson[st.name].generate(
                        t0_ms, sstim.poisson_rates(st, step0, n, self.dt_ms), self.dt_ms)
                    lines.append(got[0])
                    times.append(got[1])
            events = (np.concatenate(lines), np.concatenate(times))
        if events is not None and self._gens is not None:
            self._schedule(t0_ms, t1_ms, *events)
        nest.Run(t1_ms - t0_ms)
        self._t_ms = t1_ms
        # the recorder's events are the concatenation of its per-thread instances, so the
        # window's spikes are found by their stamps in (t0, t1], not by position
        block = min(int(np.floor(t0_ms / self._block_ms + 1e-9)), len(self._recorders) - 1)
        ev = self._recorders[block].get("events")
        times = np.asarray(ev["times"], dtype=np.float64)
        mine = times > t0_ms + 0.5 * self.dt_ms
        times = times[mine]
        gids = self._gids(np.asarray(ev["senders"], dtype=np.int64)[mine])
        order = np.lexsort((gids, times))
        gids, times = gids[order], times[order]
        out = WindowOutput()
        out.exports["spikes"] = (gids, times)
        if "spikes" in self.record_variables:
            out.records["spikes"] = (gids, times)      # the recorder splits by population
        for pop, nodes in self._probes.items():
            if f"state.{pop}" in self.record_variables:
                vals = nodes.get(list(self.by_name[pop].record))
                cols = [np.atleast_1d(np.asarray(vals[v], dtype=np.float64))
                        for v in self.by_name[pop].record]
                out.records[f"state.{pop}"] = np.stack(cols)[None, :, :]
        if self.duration_ms is not None and t1_ms >= self.duration_ms - 1e-9 * self.dt_ms:
            self.close()
        return out

    def _gids(self, senders: np.ndarray) -> np.ndarray:
        """NEST node ids → engine gids (neuron populations are contiguous in NEST)."""
        k = np.searchsorted(self._first_id, senders, side="right") - 1
        return senders - self._first_id[k] + self._gid_offset[k]

    def _schedule(self, t0_ms: float, t1_ms: float, lines, times) -> None:
        lines = np.asarray(lines, dtype=np.int64).ravel()
        times = np.asarray(times, dtype=np.float64).ravel()
        if lines.size != times.size:
            raise ValueError("events: line and time arrays differ in length")
        if not lines.size:
            return
        if lines.min() < 0 or lines.max() >= self.n_input_lines:
            raise ValueError(f"events: input line out of range [0, {self.n_input_lines})")
        if times.min() < t0_ms - 1e-9 or times.max() >= t1_ms + 1e-9:
            raise ValueError(f"events: times outside the window [{t0_ms}, {t1_ms})")
        gen = self._gen_of_line[lines]
        th = grid_times(times, self.dt_ms)
        order = np.lexsort((th, gen))
        gen, th = gen[order], th[order]
        cut = np.flatnonzero(np.diff(gen)) + 1
        starts = np.concatenate([[0], cut])
        ids = gen[starts]
        # Python lists: NEST converts them ~10× faster than numpy arrays
        params = [{"spike_times": chunk.tolist()} for chunk in np.split(th, cut)]
        self._gens[ids.tolist()].set(params)

    def close(self) -> None:
        """``nest.Cleanup()`` once (after the last window); the kernel is free again."""
        if self._nest is not None and not self._done:
            self._nest.Cleanup()
            self._done = True

    # -- scenario -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext) -> "NestEngine":
        kw = cfg.engine_kwargs(name, reader, ctx)
        try:
            return cls(name, **kw)
        except CosimError as exc:
            raise exc.at(file=ctx.file, key=exc.key or f"engines.{name}")


def _unit(variable: str) -> str:
    """NEST's unit of a recordable, from its name (V_* mV, I_* pA, g_* nS, w pA)."""
    if variable.startswith("V_"):
        return "mV"
    if variable.startswith("I_") or variable == "w":
        return "pA"
    if variable.startswith("g_"):
        return "nS"
    return "NEST unit"
