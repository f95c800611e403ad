"""A region whose cells are a user's NEURON model (scenario ``type = "neuron"``).

NEURON integrates the cells; cosim couples them to the bus, drives their input lines with
its rate → Poisson adapters, records and launches.  Scenario keys (units in brackets)::

    [engines.v1]
    type = "neuron"
    region = "rV1"              # the connectome region it stands for
    model = "rv1.py"            # a .py or .hoc file, relative to the scenario
    build = "build"             # .py: build(ctx, **args) -> {gid: cell}; .hoc: a template
    connect = "connect"         # optional, .py: connect(ctx, cells, **args)
    mod_dir = "mod"             # optional: .mod files, compiled by nrnivmodl (cached)
    args = { n_exc = 240 }      # optional keyword arguments of build and connect
    dt = 0.025                  # [ms] NEURON's fixed step
    celsius = 6.3  v_init = -65.0  secondorder = 0  spike_threshold = 0.0   # [°C mV – mV]

    [engines.v1.populations.exc]        # consecutive gids, populations in this order
    n = 240
    spike_source = "soma"  x = 0.5      # where spikes are detected (an attribute path)

    [engines.v1.inputs.bg_exc]          # external lines, driven by a rate_to_poisson adapter
    target = "exc"  synapse = "syn_bg"  weight = 0.0008  per_cell = 20     # [µS]

    [engines.v1.probes]                 # optional voltage traces (records "v")
    cells = [0, 240]  sections = ["soma"]  x = 0.5

**The model's code.**  A ``.py`` model is imported from its file; its ``build(ctx,
**args)`` makes the cells whose gids are ``ctx.gids`` (this partition's, ascending) and
returns ``{gid: cell}``, every cell an object whose attributes (Python or hoc) reach its
sections and point processes by the paths the scenario names (``soma``, ``dend[0]``,
``syn_bg``).  The engine then registers each cell with NEURON's ``ParallelContext``
(``set_gid2node`` and ``cell`` with a ``NetCon`` watching ``spike_source(x)`` at
``spike_threshold``) and calls ``connect(ctx, cells, **args)``, where the model makes its
own connections onto its cells with ``ctx.pc.gid_connect(source_gid, synapse)`` (NEURON's
idiom; it returns a ``NetCon`` whose ``weight`` vector and ``delay`` the model sets, and
cosim delivers the source's spikes to it, see *several ranks*).  ``ctx``
(:class:`NeuronContext`) carries ``h``, ``pc``, the gids, populations, ``dt_ms``, the
partition and the run's random streams (``ctx.rng``, a :class:`cosim.rng.Streams`;
``ctx.generator(*ids)`` is the domain ``neuron.model``).  A
``.hoc`` model is loaded with ``h.load_file``; ``build`` names a template, instantiated
once per cell with no arguments.  An exception inside the model's code ends the run with
one line naming the engine, its partition and the error.

**Inputs.**  ``inputs["events"] = (line int64[], time_ms float64[])`` (the part-side half
of the rate → Poisson adapters, :mod:`cosim.parts`; the same counter-based trains the
multicompartment engine gets), lines numbered as in the multicompartment engine: group
after group, cell after cell, then ``per_cell`` lines.  Each line is a ``NetCon(None,
synapse)`` with ``weight[0] = weight``; an event at ``te`` becomes ``netcon.event(te)``,
queued in (time, line) order — in C when the model has a ``mod_dir`` (cosim's
``cosim_queue_events``, :data:`.neuron_model.EVENTS_MOD`, compiled into the model's
library: the call behind ``NetCon.event``, ≈ 0.1 µs per event), else in one hoc loop.
NEURON's fixed step delivers it at the step starting at ``t_k`` with
``t_k − dt/2 < te ≤ t_k + dt/2`` — the multicompartment engine's rule.

**Stepping.**  ``ParallelContext.psolve`` with NEURON's fixed step ``dt``
(method: ``secondorder`` 0 = backward Euler, first order; 1/2 = Crank–Nicolson, second
order; channel gates as their ``.mod`` files say, e.g. ``cnexp``).  The variable step is
refused: a model that activates CVode is a one-line error.  A window is run in
sub-intervals of at most the model's shortest ``gid_connect`` delay ``d_min`` (≥ dt,
checked); after each, the spikes of the interval are exchanged and delivered.  One
partition runs the whole window — sub-intervals, spike reading, delivery — in one hoc call
(:func:`.neuron_model.window_proc`; several partitions return to Python after each
sub-interval for the exchange): the same arithmetic in the same order, so the same bits.

**Outputs.**  Spikes from ``ParallelContext.spike_record``; NEURON stamps a threshold
crossing in the step to ``t_k`` as ``t_k + 1e-10`` ms, and the engine reports the grid time
``t_k`` (as the multicompartment engine does).  NEURON tests thresholds at the start of the
following step, so for the last step of each window the engine compares every spike
source's v before and after the step itself (NEURON's rule) and drops NEURON's late copy:
a window's spikes lie in ``(t0, t1]``.  ``records["v"]`` ``(time, 1, probe)`` in mV,
sampled at the ``[record] period`` (a whole multiple of ``dt``).

**Several ranks** (the engine never sees MPI).  ``partition(p, K, exchange)`` builds a
contiguous block of every population (the multicompartment engine's rule), those cells'
input lines and probes; gids, line ids and probe indices stay global.  The spike exchange
is cosim's, not NEURON's: ``ctx.pc.gid_connect(src, synapse)`` returns a ``NetCon`` from a
*relay* of ``src`` on this partition (a ``NetStim`` that emits one spike per event it
receives); after each sub-interval ``exchange(gids, times)`` (an Allgatherv over the
region's ranks, given by the runtime) gathers every partition's spikes, and each partition
triggers the relay of each source at ``t_spike + d_min``, in the order (time, gid); the
relay's ``NetCon``s, their delays lowered by ``d_min`` after ``connect``, reach the
synapses at ``t_spike + delay``.  One process delivers its spikes the same way, so 1, 3
or 5 processes give the same bits.  (NEURON's own spike exchange would need NEURON's MPI
on a communicator of the engine's ranks only; NEURON 9 runs its ``ParallelContext`` on
MPI_COMM_WORLD, which cosim shares with the bus and the other engines.)

**Not supported (stated, not hidden).**  Checkpoints: a resume would have to restore,
bit for bit, NEURON's event queue (cosim's queued input events and spike deliveries) and
the ``NET_RECEIVE`` state of every ``NetCon`` (plasticity); that ``SaveState`` does so is
not established here, so ``can_checkpoint = False`` and ``checkpoint_every`` is a scenario
error.  One process holds one NEURON model: two ``neuron`` engines built in the
same process are an error.  Connections made with NEURON's ``NetCon(source, target)`` from
one cell's section to another bypass the exchange and only work inside one partition.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CosimError
from ..multicompartment.partition import Exchange, block, gather_spikes, identity_exchange
from ..rng import Streams
from . import neuron_config as cfg
from .base import BuildContext, Engine, Export, RecordSpec, Take, WindowOutput
from .spiking import check_record_variables, merge_spiking_records, spike_spec
from . import spiking_stimuli as sstim
from .neuron_config import NeuronInput, Population, resolve
from .neuron_mod import compile_mods
from .neuron_model import (EVENTS_MOD, Connector, ModelError, NeuronContext, model_line,
                           queue_events, window_proc)


@dataclass
class _Live:
    """The NEURON objects of a built engine (kept alive: NEURON frees what Python drops)."""

    h: Any
    pc: Any
    cells: dict[int, Any]
    #: (source gid, NetCon) of every connection the model made with ctx.pc.gid_connect
    conns: list = field(default_factory=list)
    relays: dict = field(default_factory=dict)          # source gid -> its relay NetStim
    trigger_list: Any = None                            # hoc List of NetCon(None, relay)
    trigger_of: Any = None                              # gid -> index in trigger_list, or -1
    d_min_ms: float = 0.0                               # shortest connection delay
    v_prev: Any = None                                  # Vectors for det_v.gather
    v_now: Any = None
    min_delay_steps: int | None = None
    detectors: list = field(default_factory=list)
    lines: list = field(default_factory=list)          # NetCon per local input line
    line_list: Any = None                              # the same NetCons in a hoc List
    probes: list = field(default_factory=list)         # Vector per local probe
    stim_refs: list = field(default_factory=list)      # IClamps and played Vectors (stimuli)
    spike_t: Any = None
    spike_gid: Any = None
    det_v: Any = None                   # PtrVector: v at every cell's spike source
    det_gid: Any = None                 # gid per entry of det_v (int64)
    at_end: Any = None                  # (gids) found crossing in the last window's last step
    step: int = 0
    window: Any = None                  # hoc objects of the one-call window (one partition)


class NeuronEngine(Engine):
    """A spiking region simulated by NEURON from the user's model code (module docstring).

    Engine contract: exports its spikes (counted per population by the runtime), takes its
    region's delayed weighted drive, whose rate → Poisson adapters make events on its
    input lines; splits into blocks of cells; cannot checkpoint.
    """

    type_name = "neuron"
    parameters = cfg.SECTION
    exports = Export.SPIKE_COUNTS
    takes = Take.DRIVE
    can_checkpoint = False

    #: The engine built in this process (NEURON holds one model per process).
    _built_here: str | None = None
    #: One partition runs a window in one hoc call (:func:`.neuron_model.window_proc`);
    #: False: the Python path of several partitions (the same arithmetic, for the tests).
    window_in_hoc: bool = True

    def __init__(self, name: str, *, model_path: str, populations: list[Population],
                 build_name: str = cfg.BUILD.default, connect_name: str | None = None,
                 mod_dir: str | None = None, args: dict | None = None,
                 inputs: list[NeuronInput] = (), probes: list[tuple[int, str, float]] = (),
                 dt_ms: float = cfg.DT.default, celsius: float = cfg.CELSIUS.default,
                 v_init_mV: float = cfg.V_INIT.default, secondorder: int = 0,
                 spike_threshold_mV: float = cfg.SPIKE_THRESHOLD.default,
                 seed: int | Streams = 0, sync_interval_ms: float = 1.0,
                 record_period_ms: float = 1.0, record_variables: list[str] | None = None,
                 region_indices: tuple[int, ...] = (), file: str | None = None,
                 duration_ms: float | None = None, stimuli: tuple = (),
                 part: int = 0, n_parts: int = 1, exchange: Exchange | None = None):
        self._args = {k: v for k, v in locals().items()
                      if k not in ("self", "part", "n_parts", "exchange", "__class__")}
        if not 0 <= part < n_parts:
            raise CosimError(f"engine {name!r}: partition {part} outside [0, {n_parts})")
        self.part, self.n_parts = int(part), int(n_parts)
        self.exchange = exchange if exchange is not None or n_parts > 1 else identity_exchange
        self.name = name
        self.file = file
        self.model_path = os.path.abspath(model_path)
        self.build_name, self.connect_name = build_name, connect_name
        self.mod_dir = mod_dir
        self.args = dict(args or {})
        self.dt_ms = float(dt_ms)
        self.celsius, self.v_init_mV = float(celsius), float(v_init_mV)
        self.secondorder = int(secondorder)
        self.threshold_mV = float(spike_threshold_mV)
        self.rng = Streams.of(seed)
        self.sync_interval_ms = float(sync_interval_ms)
        self.record_period_ms = float(record_period_ms)
        self.region_indices = np.asarray(region_indices, dtype=np.int64).reshape(-1)
        self.pops = list(populations)
        self.inputs = list(inputs)
        self.probes = list(probes)
        self.duration_ms = duration_ms
        self.stimuli = list(stimuli)
        self._poisson = {}          # stimulus name → RateToPoisson of this partition's lines
        every = self.record_period_ms / self.dt_ms
        if abs(every - round(every)) > 1e-9 * max(1.0, every):
            raise CosimError(f"{record_period_ms:g} ms is not a whole multiple of "
                             f"engines.{name}.dt = {dt_ms:g} ms", key="record.period")
        self.record_every = int(round(every))
        steps = self.sync_interval_ms / self.dt_ms
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            raise CosimError(f"sync interval {sync_interval_ms:g} ms is not a whole multiple of "
                             f"dt = {dt_ms:g} ms", key=self._key("dt"))
        self.record_variables = check_record_variables(name, record_variables, bool(self.probes))
        self._layout()
        self._live: _Live | None = None
        #: wall seconds inside NEURON's psolve, and in advance() altogether (for bench/)
        self.timing = {"neuron_s": 0.0, "advance_s": 0.0}

    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext) -> "NeuronEngine":
        kw = cfg.engine_kwargs(name, reader, ctx)
        try:
            return cls(name, file=ctx.file, **kw)
        except CosimError as exc:
            raise exc.at(file=ctx.file, key=f"engines.{name}")

    def _key(self, *parts: str) -> str:
        return ".".join(("engines", self.name) + parts)

    def partition(self, part: int, n_parts: int, exchange: Exchange | None = None
                  ) -> "NeuronEngine":
        """The region restricted to partition ``part`` of ``n_parts``: a contiguous block of
        every population (the multicompartment engine's rule, :func:`.partition.block`),
        with those cells' input lines and probes.  ``exchange(gids, times_ms)`` gathers the
        spikes of all partitions (an Allgatherv over the region's ranks), once per
        sub-interval of at most the shortest ``gid_connect`` delay."""
        if (part, n_parts) == (self.part, self.n_parts) and exchange is None:
            return self
        return type(self)(**self._args, part=part, n_parts=n_parts, exchange=exchange)

    def _layout(self) -> None:
        """Global numbering: gids per population, input lines per group, probe names;
        this partition's gids."""
        self.groups: dict[str, range] = {}
        self._local: dict[str, range] = {}
        for p in self.pops:
            if p.name in self.groups:
                raise CosimError(f"population {p.name!r} declared twice",
                                 key=self._key("populations", p.name))
            first = sum(len(r) for r in self.groups.values())
            self.groups[p.name] = range(first, first + p.n)
            b = block(p.n, self.part, self.n_parts)
            self._local[p.name] = range(first + b.start, first + b.stop)
        self.n_cells = sum(len(r) for r in self.groups.values())
        self.local_gids = np.concatenate([np.arange(r.start, r.stop, dtype=np.int64)
                                          for r in self._local.values()])
        self.input_lines: dict[str, range] = {}
        for g in self.inputs:
            first = sum(len(r) for r in self.input_lines.values())
            self.input_lines[g.name] = range(first, first + len(self.groups[g.target]) * g.per_cell)
        self.n_input_lines = sum(len(r) for r in self.input_lines.values())
        self.probe_names = [f"{gid}:{sec}({x:.4g})" for gid, sec, x in self.probes]
        #: Global indices (into :attr:`probes`) of this partition's probes, in order.
        self.probe_ids = self.probe_ids_of(self.part, self.n_parts)
        line_local = np.full(self.n_input_lines, -1, dtype=np.int64)
        k = 0
        for g in self.inputs:
            mine = self.local_input_lines(g.name)
            line_local[mine] = np.arange(k, k + mine.size)
            k += mine.size
        self._line_local = line_local

    def probe_ids_of(self, part: int, n_parts: int) -> np.ndarray:
        """Global probe indices held by partition ``part`` of ``n_parts``."""
        owned = []
        for i, (gid, _, _) in enumerate(self.probes):
            pop = next(n for n, r in self.groups.items() if gid in r)
            first = self.groups[pop].start
            b = block(len(self.groups[pop]), part, n_parts)
            if first + b.start <= gid < first + b.stop:
                owned.append(i)
        return np.array(owned, dtype=np.int64)

    # -- engine contract ----------------------------------------------------------------
    def populations(self) -> dict[str, range]:
        return dict(self.groups)

    def input_groups(self) -> tuple[str, ...]:
        return tuple(self.input_lines)

    def local_input_lines(self, group: str) -> np.ndarray:
        """Global ids of the lines of ``group`` that end on this partition's cells."""
        if group not in self.input_lines:
            raise CosimError(f"unknown input group {group!r}; have {', '.join(self.input_lines)}")
        grp = next(g for g in self.inputs if g.name == group)
        pop, loc = self.groups[grp.target], self._local[grp.target]
        first = self.input_lines[group].start
        return np.arange(first + (loc.start - pop.start) * grp.per_cell,
                         first + (loc.stop - pop.start) * grp.per_cell, dtype=np.int64)

    def max_parts(self) -> int:
        return max(1, self.n_cells)

    def merge_records(self, by_part):
        """Spikes of all partitions sorted by (time, gid) — the unsplit order — and each
        partition's probe columns at their global indices."""
        return merge_spiking_records(by_part, len(self.probes), self.probe_ids_of)

    def work(self) -> float:
        """Cell-steps per ms (the compartments are unknown before the model is built)."""
        return self.n_cells / self.dt_ms

    def record_specs(self) -> list[RecordSpec]:
        specs = []
        if "spikes" in self.record_variables:
            # one SONATA population per cell population (cosim.sonata), engine-wide gids
            specs.append(spike_spec(self.name, self.dt_ms, self.populations()))
        if "v" in self.record_variables:
            specs.append(RecordSpec("v", ("v",), ("mV",), tuple(self.probe_names),
                                    self.record_period_ms))
        return specs

    # -- build --------------------------------------------------------------------------
    def build(self) -> None:
        """Compile and load the ``.mod`` files, run the model's code, register the cells,
        make the input lines and probes, and ``finitialize``."""
        if NeuronEngine._built_here not in (None, self.name):
            raise CosimError(f"engine {self.name!r}: this process already runs the NEURON engine "
                             f"{NeuronEngine._built_here!r}; NEURON holds one model per process "
                             f"(run them under mpiexec, one per rank)", key=self._key("type"))
        NeuronEngine._built_here = self.name
        # a batch run has no GUI: without -nogui NEURON warns about DISPLAY on stderr
        os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
        try:
            import neuron
            from neuron import h
        except ImportError as exc:
            raise CosimError(f"engine type neuron needs NEURON ({exc}): pip install "
                             f"cosim[neuron]", key=self._key("type")) from None
        h.load_file("stdrun.hoc")
        if self.mod_dir is not None:
            lib_dir = compile_mods(self.mod_dir, neuron.__version__, key=self._key("mod_dir"),
                                   extra={"cosim_events.mod": EVENTS_MOD})
            neuron.load_mechanisms(str(lib_dir), warn_if_already_loaded=False)
        pc = h.ParallelContext()
        h.dt = self.dt_ms
        h.steps_per_ms = 1.0 / self.dt_ms
        h.celsius = self.celsius
        h.secondorder = self.secondorder
        gids = self.local_gids
        live = self._live = _Live(h, pc, {})
        ctx = NeuronContext(self.name, gids, dict(self.groups), h,
                            Connector(h, pc, live.conns, live.relays),
                            self.dt_ms, self.rng, os.path.dirname(self.model_path),
                            self.part, self.n_parts)
        build, connect = self._model_functions(h)
        cells = self._call(build, ctx, self.build_name)
        if not isinstance(cells, dict) or sorted(cells) != gids.tolist():
            got = sorted(cells)[:5] if isinstance(cells, dict) else type(cells).__name__
            raise CosimError(f"{self.build_name} must return {{gid: cell}} for the gids "
                             f"ctx.gids, got {got}…", file=self.model_path,
                             key=self._key("build"))
        live.cells = cells
        for pop in self.pops:
            for gid in self._local[pop.name]:
                sec = self._member(cells[gid], pop.spike_source, gid,
                                   self._key("populations", pop.name, "spike_source"))
                nc = h.NetCon(sec(pop.x)._ref_v, None, sec=sec)
                nc.threshold = self.threshold_mV
                pc.set_gid2node(int(gid), pc.id())
                pc.cell(int(gid), nc)
                live.detectors.append((int(gid), sec(pop.x)))
        if connect is not None:
            self._call(connect, ctx, self.connect_name, cells)
        self._index_connections(live)
        live.spike_t, live.spike_gid = h.Vector(), h.Vector()
        pc.spike_record(-1, live.spike_t, live.spike_gid)
        live.det_v = h.PtrVector(len(live.detectors))
        for i, (_, seg) in enumerate(live.detectors):
            live.det_v.pset(i, seg._ref_v)
        live.det_gid = np.array([g for g, _ in live.detectors], dtype=np.int64)
        live.v_prev, live.v_now = h.Vector(len(live.detectors)), h.Vector(len(live.detectors))
        live.at_end = np.zeros(0, dtype=np.int64)
        if self.n_parts == 1:
            self._make_window(live)
        self._make_lines(live)
        self._make_stimuli(live)
        for i in self.probe_ids:
            gid, sec_path, x = self.probes[i]
            sec = self._member(cells[gid], sec_path, gid, self._key("probes", "sections"))
            live.probes.append(h.Vector().record(sec(x)._ref_v))
        if h.cvode.active():
            raise CosimError("the model switched on NEURON's variable step (CVode); this engine "
                             "steps NEURON's fixed step dt: remove cvode.active(1) from the model",
                             file=self.model_path, key=self._key("dt"))
        if abs(h.dt - self.dt_ms) > 1e-12:
            raise CosimError(f"the model set h.dt = {h.dt:g} ms; the scenario's dt is "
                             f"{self.dt_ms:g} ms (set it there)", file=self.model_path,
                             key=self._key("dt"))
        pc.set_maxstep(self.sync_interval_ms)
        h.finitialize(self.v_init_mV)
        for vec in live.probes:
            vec.resize(0)           # drop the t = 0 sample: records hold (t0, t1]

    def _model_functions(self, h):
        if self.model_path.endswith(".hoc"):
            self._call_hoc_load(h)
            if not hasattr(h, self.build_name):
                raise CosimError(f"{os.path.basename(self.model_path)} defines no template "
                                 f"{self.build_name!r}", file=self.model_path,
                                 key=self._key("build"))
            template = getattr(h, self.build_name)
            return (lambda ctx, **_: {int(g): template() for g in ctx.gids}), None
        module = self._import()
        out = []
        for attr, name in (("build", self.build_name), ("connect", self.connect_name)):
            if name is None:
                out.append(None)
            elif not callable(getattr(module, name, None)):
                raise CosimError(f"{os.path.basename(self.model_path)} defines no function "
                                 f"{name!r}", file=self.model_path, key=self._key(attr))
            else:
                out.append(getattr(module, name))
        return tuple(out)

    def _import(self):
        mod_name = f"cosim_neuron_model_{self.name}"
        spec = importlib.util.spec_from_file_location(mod_name, self.model_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        self._guard(lambda: spec.loader.exec_module(module), "importing the model")
        return module

    def _call_hoc_load(self, h) -> None:
        ok = self._guard(lambda: h.load_file(self.model_path), "loading the model")
        if not ok:
            raise CosimError(f"engine {self.name!r}: NEURON could not load the hoc file",
                             file=self.model_path, key=self._key("model"))

    def _call(self, fn, ctx, name, *extra):
        return self._guard(lambda: fn(ctx, *extra, **self.args), name)

    def _guard(self, fn, what):
        """Run model code; its exceptions become one line naming engine, partition, error."""
        try:
            return fn()
        except CosimError:
            raise
        except Exception as exc:
            where = model_line(exc, self.model_path)
            raise ModelError(f"engine {self.name!r} (neuron, partition {self.part} of "
                             f"{self.n_parts}): {what} raised {type(exc).__name__}: "
                             f"{exc}{where}", file=self.model_path,
                             key=self._key("build" if what != "importing the model" else "model")
                             ) from exc

    def _member(self, cell, path: str, gid: int, key: str):
        try:
            return resolve(cell, path)
        except (AttributeError, IndexError, TypeError, LookupError) as exc:
            raise CosimError(f"cell {gid} has no {path!r} ({type(exc).__name__}: {exc})",
                             file=self.model_path, key=key) from None

    def _make_lines(self, live: _Live) -> None:
        h = live.h
        live.line_list = h.List()
        for g in self.inputs:
            key = self._key("inputs", g.name, "synapse")
            for gid in self._local[g.target]:
                target = self._member(live.cells[gid], g.synapse, gid, key)
                if isinstance(target, (list, tuple)):
                    if len(target) != g.per_cell:
                        raise CosimError(f"cell {gid}: {g.synapse!r} holds {len(target)} point "
                                         f"processes, per_cell is {g.per_cell}",
                                         file=self.model_path, key=key)
                    targets = list(target)
                else:
                    targets = [target] * g.per_cell
                for syn in targets:
                    try:
                        nc = h.NetCon(None, syn)
                    except Exception as exc:
                        raise CosimError(f"cell {gid}: {g.synapse!r} is not a point process "
                                         f"with a NET_RECEIVE block ({exc})",
                                         file=self.model_path, key=key) from None
                    nc.weight[0] = g.weight_uS
                    live.lines.append(nc)
                    live.line_list.append(nc)

    def _make_stimuli(self, live: _Live) -> None:
        """Current stimuli: an ``IClamp`` (``del = 0``, ``dur`` the whole run) per selected
        local cell at ``section(x)``, its ``amp`` played from one ``Vector`` with
        ``Dt = dt`` holding ``u((n + 1/2) dt)`` for step ``n`` (the IClamp's own midpoint
        rule); Poisson stimuli: a :class:`RateToPoisson` on the group's local lines."""
        h = live.h
        for st in self.stimuli:
            if isinstance(st, sstim.PoissonStimulus):
                self._poisson[st.name] = sstim.poisson_generator(
                    self.name, st, self.local_input_lines(st.input), self.rng)
                continue
            from ..stimuli import step_times

            n = int(round(self.duration_ms / self.dt_ms)) + 1
            vec = h.Vector(st.pattern(step_times(np.arange(n) + 0.5, self.dt_ms)))
            live.stim_refs.append(vec)
            gids = self.groups[st.population]
            key = f"stimuli.{st.name}.section"
            for j in (st.cells if st.cells is not None else range(len(gids))):
                gid = gids[j]
                if gid not in self._local[st.population]:
                    continue
                sec = self._member(live.cells[gid], st.section, gid, key)
                try:
                    clamp = h.IClamp(sec(st.x))
                except Exception as exc:
                    raise CosimError(f"cell {gid}: {st.section!r} is not a section ({exc})",
                                     file=self.model_path, key=key) from None
                clamp.delay, clamp.dur = 0.0, 1e9
                vec.play(clamp._ref_amp, self.dt_ms)
                live.stim_refs.append(clamp)

    def add_stimulus(self, spec):
        """Bind a current-clamp train or Poisson rates on an input group
        (:mod:`.spiking_stimuli`); the section is an attribute path of the model's cells,
        resolved when the cells exist."""
        from .neuron_config import _PATH

        def site(pop, section, x, key):
            if not _PATH.match(section):
                raise CosimError(f"{section!r} is not an attribute path (soma, dend[0], …)",
                                 key=key)

        bound, record = sstim.bind(self, spec, self.groups, self.input_groups(), site)
        if isinstance(bound, sstim.CurrentStimulus) and self.duration_ms is None:
            raise spec.error("target", "a current stimulus on a NEURON engine needs the run's "
                                       "duration")
        self.stimuli.append(bound)
        self._args["stimuli"] = tuple(self.stimuli)
        return record

    def _index_connections(self, live: _Live) -> None:
        """Check the connections, find the shortest delay ``d_min``, and make each source's
        trigger: a spike at ``ts`` triggers the source's relay at ``ts + d_min``, whose
        ``NetCon``s (delay set by the model, ``d``, now ``d − d_min``) reach their targets at
        ``ts + d`` — one event per spike and partition, NEURON fans it out."""
        delays = []
        for src, nc in live.conns:
            if not 0 <= src < self.n_cells:
                raise CosimError(f"the model connects from gid {src}, outside the region's "
                                 f"gids [0, {self.n_cells})", file=self.model_path,
                                 key=self._key("connect"))
            d = float(nc.delay)
            if d < self.dt_ms * (1.0 - 1e-9):
                raise CosimError(f"a connection from gid {src} has delay {d:g} ms, shorter than "
                                 f"dt = {self.dt_ms:g} ms", file=self.model_path,
                                 key=self._key("connect"))
            delays.append(d)
        d_min = self._region_min_delay(min(delays, default=np.inf))
        if not np.isfinite(d_min):
            return
        live.min_delay_steps = max(1, int(np.floor(d_min / self.dt_ms + 1e-9)))
        live.d_min_ms = d_min
        for (src, nc), d in zip(live.conns, delays):
            nc.delay = d - d_min
        live.trigger_list = live.h.List()
        live.trigger_of = np.full(self.n_cells, -1, dtype=np.int64)
        for src, relay in live.relays.items():
            trig = live.h.NetCon(None, relay)
            trig.weight[0] = 1.0
            live.trigger_of[src] = int(live.trigger_list.count())
            live.trigger_list.append(trig)

    def _region_min_delay(self, mine: float) -> float:
        """The shortest connection delay of the whole region (``inf``: none).  Each
        partition makes only the connections onto its own cells, so a split region gathers
        every partition's minimum (one exchange, during the build): the sub-interval length
        and the trigger offset ``d_min`` — and so every event time, ``ts + d_min + (d −
        d_min)`` — are then those of one partition, and every partition calls the exchange
        equally often."""
        if self.exchange is None or self.n_parts == 1:
            return mine
        _, got = self.exchange(np.zeros(1, dtype=np.int64), np.array([mine]))
        return float(np.min(got))

    def _make_window(self, live: _Live) -> None:
        """The hoc objects of :func:`.neuron_model.window_proc`, made once."""
        h = live.h
        deliver = live.trigger_list is not None
        trig_of = live.trigger_of if deliver else np.zeros(0)
        live.window = dict(
            proc=window_proc(h),
            trig=live.trigger_list if deliver else h.List(),
            trig_of=h.Vector(trig_of.astype(np.float64)),
            out_t=h.Vector(), out_g=h.Vector(), late=h.Vector(), at_end=h.Vector(),
            det_gid=h.Vector(live.det_gid.astype(np.float64)),
            par=h.Vector([0.0, 0.0, float(live.min_delay_steps or 0), self.dt_ms,
                          live.d_min_ms, self.threshold_mV, 0.0, float(self.n_cells),
                          float(deliver)]))

    # -- run ----------------------------------------------------------------------------
    def advance(self, t0_ms: float, t1_ms: float, inputs: dict) -> WindowOutput:
        """Queue the window's input events, then ``psolve`` in sub-intervals of at most the
        shortest connection delay, each followed by the exchange and delivery of the spikes;
        collect spikes and probes."""
        tic = time.perf_counter()
        live = self._live
        h = live.h
        if self.exchange is None:
            raise CosimError(f"engine {self.name!r}: partition {self.part} of {self.n_parts} "
                             f"needs an exchange function to advance")
        if abs(t0_ms - live.step * self.dt_ms) > 1e-6 * self.dt_ms + 1e-9:
            raise RuntimeError(f"engine {self.name!r} is at t = {live.step * self.dt_ms} ms, "
                               f"asked to start at {t0_ms}")
        n = int(round((t1_ms - t0_ms) / self.dt_ms))
        events = inputs.get("events") if inputs else None
        if self._poisson:
            events = self._with_stimulus_events(events, live.step, n, t0_ms)
        if events is not None:
            self._queue(live, h, events, t0_ms, t1_ms)
        end = live.step + n
        gs, ts = [], []
        if live.window is not None and self.window_in_hoc:
            g, t = self._window_hoc(live, end)
            gs, ts = [g], [t]
        while live.step < end:
            k = end - live.step
            if live.min_delay_steps is not None:
                k = min(k, live.min_delay_steps)
            g, t = self._run_interval(live, k, last=live.step + k == end)
            gs.append(g)
            ts.append(t)
            if live.trigger_list is not None:
                self._deliver(live, *self.exchange(g, t))
        gids, times = gather_spikes(list(zip(gs, ts)))
        order = np.lexsort((gids, times))
        gids, times = gids[order], times[order]
        out = WindowOutput()
        out.exports["spikes"] = (gids, times)
        if "spikes" in self.record_variables:
            out.records["spikes"] = (gids, times)
        if "v" in self.record_variables:
            out.records["v"] = self._samples(live, n)
        self.timing["advance_s"] += time.perf_counter() - tic
        return out

    def _with_stimulus_events(self, events, step0: int, n: int, t0_ms: float):
        """The window's input events and those of the Poisson stimuli, one array pair."""
        lines, times = [], []
        if events is not None:
            lines.append(np.asarray(events[0], dtype=np.int64).ravel())
            times.append(np.asarray(events[1], dtype=np.float64).ravel())
        for st in self.stimuli:
            if isinstance(st, sstim.PoissonStimulus):
                got = self._poisson[st.name].generate(
                    t0_ms, sstim.poisson_rates(st, step0, n, self.dt_ms), self.dt_ms)
                lines.append(got[0])
                times.append(got[1])
        return np.concatenate(lines), np.concatenate(times)

    def _window_hoc(self, live: _Live, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The window's sub-intervals in one hoc call (one partition: the exchange is the
        identity); this partition's spikes ``(gids, times_ms)``, checked as in
        :meth:`_run_interval`."""
        w = live.window
        par = w["par"]
        par.x[0], par.x[1], par.x[6] = float(live.step), float(end), 0.0
        for k in ("out_t", "out_g", "late", "at_end"):
            w[k].resize(0)
        w["proc"](live.pc, live.spike_t, live.spike_gid, w["trig"], w["trig_of"], w["out_t"],
                  w["out_g"], w["late"], w["at_end"], live.det_v, live.v_prev, live.v_now,
                  w["det_gid"], par)
        t_b = end * self.dt_ms
        live.step = end
        self.timing["neuron_s"] += par.x[6]
        if live.h.cvode.active():
            raise CosimError("the model switched on NEURON's variable step (CVode) during the "
                             "run; this engine steps NEURON's fixed step",
                             file=self.model_path, key=self._key("dt"))
        if abs(live.h.t - t_b) > 0.5 * self.dt_ms:
            raise RuntimeError(f"engine {self.name!r}: NEURON stopped at t = {live.h.t} ms, "
                               f"not {t_b}")
        late = w["late"].as_numpy().astype(np.int64)
        if sorted(late.tolist()) != sorted(live.at_end.tolist()):
            raise RuntimeError(f"engine {self.name!r}: NEURON's spikes at the window start "
                               f"{sorted(late.tolist())} differ from those found at the "
                               f"last window's end {sorted(live.at_end.tolist())}")
        live.at_end = w["at_end"].as_numpy().astype(np.int64)
        return w["out_g"].as_numpy().astype(np.int64), w["out_t"].as_numpy().copy()

    def _run_interval(self, live: _Live, k: int, last: bool) -> tuple[np.ndarray, np.ndarray]:
        """``psolve`` ``k`` steps; this partition's spikes ``(gids, times_ms)`` found in them.

        NEURON tests a spike source's threshold at the start of the next step, so it reports
        a crossing in an interval's last step in the next interval.  Inside a window that is
        harmless: the spike is exchanged one interval later, still before it is due
        (``t_spike + d_min`` ≥ the end of the next interval).  At the window's end the
        window must hold it: stop one step early, read every source's v, finish the step
        and compare (NEURON's rule: a spike at ``t_k`` when ``v(t_k) > threshold >=
        v(t_(k-1))``); NEURON's late report of it in the next window is dropped.
        """
        h, pc = live.h, live.pc
        t_a = live.step * self.dt_ms
        live.step += k
        t_b = live.step * self.dt_ms
        tic = time.perf_counter()
        if last:
            pc.psolve(t_b - self.dt_ms)
            live.det_v.gather(live.v_prev)
        pc.psolve(t_b)
        if last:
            live.det_v.gather(live.v_now)
        self.timing["neuron_s"] += time.perf_counter() - tic
        if h.cvode.active():
            raise CosimError("the model switched on NEURON's variable step (CVode) during the "
                             "run; this engine steps NEURON's fixed step",
                             file=self.model_path, key=self._key("dt"))
        if abs(h.t - t_b) > 0.5 * self.dt_ms:
            raise RuntimeError(f"engine {self.name!r}: NEURON stopped at t = {h.t} ms, not {t_b}")
        t = np.rint(live.spike_t.as_numpy() / self.dt_ms) * self.dt_ms
        g = live.spike_gid.as_numpy().astype(np.int64)
        live.spike_t.resize(0)
        live.spike_gid.resize(0)
        if live.at_end is not None:        # first interval of a window
            late = t <= t_a + 1e-6 * self.dt_ms   # the last window's end, reported already
            if sorted(g[late].tolist()) != sorted(live.at_end.tolist()):
                raise RuntimeError(f"engine {self.name!r}: NEURON's spikes at {t_a} ms "
                                   f"{sorted(g[late].tolist())} differ from those found at "
                                   f"the window's end {sorted(live.at_end.tolist())}")
            g, t = g[~late], t[~late]
            live.at_end = None
        if last:
            vp, vn = live.v_prev.as_numpy(), live.v_now.as_numpy()
            live.at_end = live.det_gid[(vn > self.threshold_mV) & (vp <= self.threshold_mV)]
            g = np.concatenate([g, live.at_end])
            t = np.concatenate([t, np.full(live.at_end.size, t_b)])
        return g, t

    def _deliver(self, live: _Live, gids, times_ms) -> None:
        """Spikes of every partition → events on this partition's connections, at spike
        time + delay, in the canonical order (time, gid, connection order) — the same in
        every layout."""
        gids = np.asarray(gids, dtype=np.int64)
        times_ms = np.asarray(times_ms, dtype=np.float64)
        order = np.lexsort((gids, times_ms))
        j = live.trigger_of[gids[order]]
        mine = j >= 0
        # a spike learnt one interval late may be due now: h.t's round-off, never the past
        when = np.maximum(times_ms[order][mine] + live.d_min_ms, live.h.t)
        queue_events(live.h, live.trigger_list, j[mine], when)

    def _queue(self, live: _Live, h, events, t0_ms: float, t1_ms: float) -> None:
        lines = np.asarray(events[0], dtype=np.int64).ravel()
        times = np.asarray(events[1], dtype=np.float64).ravel()
        if lines.size != times.size:
            raise ValueError("events: line and time arrays differ in length")
        if not lines.size:
            return
        if lines.min() < 0 or lines.max() >= self.n_input_lines:
            raise ValueError(f"events: input line out of range [0, {self.n_input_lines})")
        if times.min() < t0_ms - 1e-9 or times.max() >= t1_ms + 1e-9:
            raise ValueError(f"events: times must lie in [{t0_ms}, {t1_ms}) ms")
        order = np.lexsort((lines, times))
        local = self._line_local[lines[order]]
        mine = local >= 0                   # lines of other partitions are theirs
        # h.t carries the round-off of its sums (t0 ± 1e-13): never ask for the past
        when = np.maximum(times[order][mine], h.t)
        queue_events(h, live.line_list, local[mine], when)

    def _samples(self, live: _Live, n: int) -> np.ndarray:
        """``(rows, 1, probe)``: the probes' voltages at the steps of this window that are
        multiples of the record period."""
        first = live.step - n             # global step at the window start
        steps = np.arange(first + 1, live.step + 1)
        pick = np.nonzero(steps % self.record_every == 0)[0]
        out = np.empty((pick.size, 1, len(live.probes)))
        for j, vec in enumerate(live.probes):
            arr = vec.as_numpy()
            if arr.size != n:
                raise RuntimeError(f"engine {self.name!r}: NEURON made {arr.size} steps in a "
                                   f"window of {n} steps")
            out[:, 0, j] = arr[pick]
            vec.resize(0)
        return out
