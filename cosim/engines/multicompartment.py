"""The multicompartment spiking-region engine (scenario ``type = "multicompartment"``).

A population of HH cells with cable dendrites (:mod:`cosim.multicompartment`), recurrent
E/I connections with delays and Tsodyks–Markram plasticity, and external input lines fed
with spike events.  Scenario keys (units in brackets; defaults after ``=``)::

    [engines.spiking]
    type = "multicompartment"
    dt = 0.025                  # [ms]
    integrator = "backward_euler"   # or "crank_nicolson" (NEURON's secondorder = 2)
    celsius = 6.3               # [°C]; HH rates scale by 3^((celsius − 6.3)/10)
    v_init = -65.0              # [mV]
    spike_threshold = 0.0       # [mV], detected at each cell's `detect` section (x = 0.5)
    region = "rV1"              # optional: the connectome region this engine stands for

    mechanisms_dir = "mod/"     # optional: NMODL .mod files (a folder, a file or a list),
                                # or "cosim:cortical", the set shipped with cosim
                                # (cosim.multicompartment.nmodl, .mechanism, .codegen)

    [engines.spiking.ions.k]            # optional ion values for the .mod mechanisms
    e = -85.0                           # [mV]; also ci, co [mM]

    [engines.spiking.receptors.NMDA]    # optional overrides of AMPA / GABA_A / NMDA
    tau_rise = 2.0  tau_decay = 80.0  e_rev = 0.0  mg = 1.0     # [ms ms mV mM]

    [engines.spiking.cells.exc]         # one table per cell population, in gid order
    n = 80
    morphology = "ball_and_stick"       # or "y_shaped" or an SWC file (relative to scenario)
    nseg = 11                           # optional: nseg of every non-soma section
    d_lambda = 0.1                      # optional, instead of nseg (at 100 Hz)
    Ra = 100.0  cm = 1.0                # [Ω·cm] [µF/cm²]
    detect = "soma"
    [engines.spiking.cells.exc.mechanisms]      # by section kind / name / "all"; each
                                                # entry replaces the mechanisms it selects
    soma = { hh = {} }                          # NEURON hh defaults
    dend = { pas = { g = 0.0001, e = -65.0 } }  # [S/cm², mV]
    apic = { ih = { gbar = "0.0002 * (-0.8696 + 2.087 * exp(d / 323))" } }
                                                # a density as a function of the path
                                                # distance d (µm) from the soma

    [engines.spiking.projections.ee]    # recurrent, fixed in-degree
    source = "exc"  target = "exc"  indegree = 20
    receptors = ["AMPA", "NMDA"]  weights = [0.0005, 0.0002]    # [µS]
    section = "dend"  x = 0.5
    sites = 1                           # > 1: sites spread uniformly by length over the
                                        # sections `section` selects (x unused)
    # site_distances = [50.0, 150.0, 300.0]   # [µm] instead of sites / x: sites at these
                                        # path distances from the soma on the sections
                                        # `section` selects; connection k at distance
                                        # k mod 3, round-robin over the branches crossing it
    delay = 1.5                         # [ms], or [min, max] drawn uniformly per connection
    autapses = false
    stp = { U = 0.5, tau_rec = 800.0, tau_fac = 0.0 }           # optional [–, ms, ms]

    [engines.spiking.inputs.background] # external input lines (rate→Poisson adapter)
    target = "exc"  receptor = "AMPA"  section = "dend"  x = 0.5
    weight = 0.001  per_cell = 1        # [µS]

    [engines.spiking.clamps.step]       # optional IClamp-like pulses
    target = "exc"  cells = [0]  section = "soma"  x = 0.5
    delay = 5.0  duration = 100.0  amplitude = 0.3      # [ms ms nA]

    [engines.spiking.probes]            # optional voltage traces (records "v")
    cells = [0, 80]  sections = ["soma"]  x = 0.5       # cells by gid

A POINT_PROCESS of ``mechanisms_dir`` (a user's synapse ``.mod``) is a receptor by its
name, its parameters under ``[engines.<name>.receptors.<POINT_PROCESS>]``.

Connectivity uses one counter-based stream per ``(seed, "multicompartment.connect", engine,
projection, target gid)`` (:mod:`cosim.rng`), so it does not depend on how cells are split
over ranks.

Inputs of :meth:`advance`: ``inputs["events"] = (line int64[], time_ms float64[])``,
``line`` indexing the external input lines: group after group (scenario order), then
cell after cell, then ``per_cell`` lines; see :attr:`input_lines`.  Times must lie in the
window ``[t0, t1)``.

Outputs of a window: ``exports["spikes"]`` and ``records["spikes"]`` =
``(node_ids int64[], timestamps_ms float64[])`` for population ``<engine name>`` (written
by the recorder as SONATA ``/spikes/<engine>/…``; node id = gid), spike time = first
grid time with ``v > spike_threshold``; ``records["v"]`` ``(time, 1, probe)`` in mV at the
``[record] period``.

**A region over several ranks** (the engine never sees MPI).  ``engine.partition(p, K,
exchange)`` simulates partition ``p`` of ``K``: a contiguous block of every population
(:func:`cosim.multicompartment.partition.block`), with the incoming connections, input
lines, clamps and probes of those cells only; gids, line ids and probe indices stay
global.  :meth:`~MulticompartmentEngine.advance` steps the window in sub-intervals of at
most the shortest recurrent delay ``d_min`` (≥ dt, checked per projection); after each it
calls ``exchange(gids, times_ms) -> (all_gids, all_times)`` — an Allgatherv over the
region's ranks — and delivers all spikes, its own included, through the same path.
Partitions only differ in which cells they hold, so every partition calls ``exchange``
equally often.  In one process, :func:`~cosim.multicompartment.partition.advance_in_lockstep`
drives the partitions through ``begin_window / run_interval / deliver / end_window``.

*Layout independence, bitwise.*  Floating-point sums happen at a synapse site (one per
cell, compartment and receptor, so always inside one partition) and are made canonical:
spikes are delivered in (spike time, source gid, connection order) — connection order is
the target-side order of creation, the same in every layout — and external events are
added in (time, line) order into a separate layer of the event ring, so neither the
partitioning nor the cut into windows or sub-intervals changes a bit.  Cell arithmetic
is per cell.  Merge rule for outputs: spikes of all partitions, sorted by (time, gid),
are the single-process spikes; a partition's ``records["v"]`` holds the columns
:attr:`~MulticompartmentEngine.probe_ids` of the layout of :meth:`record_specs` (the same
on every partition); :func:`~cosim.multicompartment.partition.merge_outputs` does both.
Input events of lines owned by other partitions are ignored (so a runtime may hand every
partition the same events); :meth:`local_input_lines` tells a rate→Poisson adapter which
lines to generate.  Spike counts summed over partitions are exact (integers).
"""

from __future__ import annotations

import numpy as np

from ..errors import CosimError, NumericalError
from ..multicompartment import Network, discretise
from ..multicompartment.cable import N_STATE
from ..numerics import check_finite
from ..multicompartment.network import probe_name
from ..multicompartment.partition import Exchange, block, gather_spikes, identity_exchange
from ..rng import Streams
from .base import BuildContext, Engine, Export, RecordSpec, Take, WindowOutput
from .spiking import check_record_variables, merge_spiking_records, spike_spec
from .multicompartment_config import (TEMPLATES, CellGroup, Clamp, InputGroup, Projection,  # noqa: F401
                                      engine_kwargs)
from . import multicompartment_config as cfg
from . import spiking_stimuli as sstim


class MulticompartmentEngine(Engine):
    """Spiking region of multicompartment cells; see the module docstring.

    Plain Python use (no TOML)::

        eng = MulticompartmentEngine("ctx", cells=[CellGroup("exc", 10, ball_and_stick())],
                                     projections=[...], inputs=[...], seed=1)
        eng.build()
        out = eng.advance(0.0, 5.0, {"events": (lines, times)})

    ``part``/``n_parts``/``exchange``: simulate only partition ``part`` of ``n_parts``
    (see :meth:`partition`).

    Engine contract (:mod:`cosim.engines.base`): exports its spikes (counted per
    population by the runtime), takes the delayed weighted drive of its region, whose
    rate → Poisson adapters make events on its input lines; splits into blocks of cells.
    """

    type_name = "multicompartment"
    parameters = cfg.SECTION
    exports = Export.SPIKE_COUNTS
    takes = Take.DRIVE

    def __init__(self, name: str, *, cells: list[CellGroup], projections: list[Projection] = (),
                 inputs: list[InputGroup] = (), clamps: list[Clamp] = (),
                 probes: list[tuple[int, str, float]] = (), receptors: dict | None = None,
                 dt_ms: float = cfg.DT.default, celsius: float = cfg.CELSIUS.default,
                 v_init_mV: float = cfg.V_INIT.default,
                 spike_threshold_mV: float = cfg.SPIKE_THRESHOLD.default, seed: int | Streams = 0,
                 sync_interval_ms: float = 1.0,
                 record_period_ms: float = 1.0, record_variables: list[str] | None = None,
                 region_indices: tuple[int, ...] = (), stimuli: tuple = (), catalogue=None,
                 ions: dict | None = None, point_processes: dict | None = None,
                 integrator: str = cfg.INTEGRATOR.default, part: int = 0, n_parts: int = 1,
                 exchange: Exchange | None = None):
        self._args = {k: v for k, v in locals().items()
                      if k not in ("self", "part", "n_parts", "exchange", "__class__")}
        if not 0 <= part < n_parts:
            raise CosimError(f"engine {name!r}: partition {part} outside [0, {n_parts})")
        self.name = name
        self.part, self.n_parts = int(part), int(n_parts)
        self.exchange = exchange if exchange is not None or n_parts > 1 else identity_exchange
        self.dt_ms = float(dt_ms)
        self.rng = Streams.of(seed)
        self.seed = self.rng.seed
        self.cells = list(cells)
        self.projections = list(projections)
        self.inputs = list(inputs)
        self.clamps = list(clamps)
        self.probes = list(probes)
        self.stimuli = list(stimuli)
        self._poisson = {}          # stimulus name → RateToPoisson of this partition's lines
        self.sync_interval_ms = float(sync_interval_ms)
        self.record_period_ms = float(record_period_ms)
        self.region_indices = np.asarray(region_indices, dtype=np.int64).reshape(-1)
        every = self.record_period_ms / self.dt_ms
        if abs(every - round(every)) > 1e-9 * max(1.0, every):
            raise CosimError(f"{record_period_ms:g} ms is not a whole multiple of "
                             f"engines.{name}.dt = {dt_ms:g} ms", key="record.period")
        self.record_variables = check_record_variables(name, record_variables, bool(self.probes))
        self.catalogue = catalogue
        self._net = Network(self.dt_ms, celsius=celsius, v_init_mV=v_init_mV,
                            spike_threshold_mV=spike_threshold_mV,
                            max_window_ms=max(self.sync_interval_ms, self.dt_ms),
                            record_every_steps=int(round(every)), ions=ions,
                            integrator=integrator)
        for rname, params in (receptors or {}).items():
            self._net.set_receptor(rname, **params)
        # every POINT_PROCESS of the catalogue is a receptor by its name
        for mech in (catalogue.mechanisms.values() if catalogue is not None else ()):
            if mech.point:
                self._net.add_point_process(mech, **(point_processes or {}).get(mech.name, {}))
        self._layout()
        self._described = False
        self._window = None

    def partition(self, part: int, n_parts: int, exchange: Exchange | None = None
                  ) -> "MulticompartmentEngine":
        """The same region, restricted to partition ``part`` of ``n_parts``.

        Every population is cut into ``n_parts`` contiguous blocks of gids in order, the
        first ``n mod n_parts`` blocks one cell longer (:func:`.partition.block`); the
        partition owns its blocks, their incoming connections, input lines, clamps and
        probes, and builds nothing else.  Gids, input-line ids and probe indices stay
        global.  ``exchange(gids, times_ms) -> (all_gids, all_times)`` gathers the spikes
        of all partitions (an MPI Allgatherv over the region's ranks); it is called once
        per sub-interval of :meth:`advance`, in the same sequence on every partition.
        """
        return type(self)(**self._args, part=part, n_parts=n_parts, exchange=exchange)

    # -- description --------------------------------------------------------------------
    def _layout(self) -> None:
        """Global numbering (gids, input lines, probes) and checks; no cell is built here."""
        self.groups: dict[str, range] = {}      # population -> global gids
        self.templates = {}
        self._local: dict[str, range] = {}      # population -> gids of this partition
        for g in self.cells:
            if g.name in self.groups:
                raise CosimError(f"cell population {g.name!r} declared twice",
                                 key=self._key("cells", g.name))
            first = sum(len(r) for r in self.groups.values())
            self.templates[g.name] = discretise(g.morphology, self.catalogue)
            self.groups[g.name] = range(first, first + g.n)
            b = block(g.n, self.part, self.n_parts)
            self._local[g.name] = range(first + b.start, first + b.stop)
        self.n_cells = sum(len(r) for r in self.groups.values())
        known = set(self._net._receptors) | set(self._net._pp_types)
        self.min_delay_steps = None
        for p in self.projections:
            self._check_projection(p, known)
        self.input_lines: dict[str, range] = {}
        for grp in self.inputs:
            key = self._key("inputs", grp.name)
            pop = self._group(grp.target, f"input {grp.name!r}", f"{key}.target")
            if grp.receptor not in known:
                raise CosimError(f"input {grp.name!r}: unknown receptor {grp.receptor!r}",
                                 key=f"{key}.receptor")
            self._node(grp.target, grp.section, grp.x, f"input {grp.name!r}", f"{key}.section")
            first = sum(len(r) for r in self.input_lines.values())
            self.input_lines[grp.name] = range(first, first + len(pop) * grp.per_cell)
        self.n_input_lines = sum(len(r) for r in self.input_lines.values())
        line_local = np.full(self.n_input_lines, -1, dtype=np.int64)
        k = 0
        for grp in self.inputs:
            mine = self.local_input_lines(grp.name)
            line_local[mine] = np.arange(k, k + mine.size)
            k += mine.size
        self._line_local = line_local
        for c in self.clamps:
            gids = self._group(c.target, "clamp", self._key("clamps"))
            for j in (c.cells if c.cells is not None else range(len(gids))):
                if not 0 <= j < len(gids):
                    raise CosimError(f"clamp cell {j} outside population {c.target!r} "
                                     f"(n = {len(gids)})", key=self._key("clamps"))
            self._node(c.target, c.section, c.x, "clamp", self._key("clamps"))
        self.probe_names, local = [], []
        for i, (gid, sec, x) in enumerate(self.probes):
            if not 0 <= gid < self.n_cells:
                raise CosimError(f"probe cell {gid} outside [0, {self.n_cells})",
                                 key=self._key("probes", "cells"))
            pop = self.population_of(gid)
            node = self._node(pop, sec, x, f"probe of cell {gid}", self._key("probes", "sections"))
            self.probe_names.append(probe_name(self.templates[pop], gid, node))
            if gid in self._local[pop]:
                local.append(i)
        #: Global indices (into :attr:`probes`) of this partition's probes, in order.
        self.probe_ids = np.array(local, dtype=np.int64)

    def _check_projection(self, p: Projection, known: set[str]) -> None:
        key = self._key("projections", p.name)
        src = self._group(p.source, f"projection {p.name!r}", f"{key}.source")
        self._group(p.target, f"projection {p.name!r}", f"{key}.target")
        n_cand = len(src) - (1 if p.source == p.target and not p.autapses else 0)
        if p.indegree > n_cand:
            raise CosimError(f"projection {p.name!r}: indegree {p.indegree} exceeds the "
                             f"{n_cand} possible sources", key=f"{key}.indegree")
        for rc in p.receptors:
            if rc not in known:
                raise CosimError(f"projection {p.name!r}: unknown receptor {rc!r}",
                                 key=f"{key}.receptors")
        if p.site_distances_um is not None:
            try:
                self._distance_nodes(p)
            except CosimError as exc:
                raise CosimError(f"projection {p.name!r}: {exc.reason}",
                                 key=f"{key}.site_distances") from None
        elif p.sites > 1:
            try:
                self._site_nodes(p)
            except CosimError as exc:
                raise CosimError(f"projection {p.name!r}: {exc.reason}", key=f"{key}.section") from None
        else:
            self._node(p.target, p.section, p.x, f"projection {p.name!r}", f"{key}.section")
        if p.indegree == 0 or not p.receptors:
            return
        lo = p.delay_ms[0]
        if lo < self.dt_ms * (1.0 - 1e-9):
            raise CosimError(f"delay {lo} ms is shorter than dt = {self.dt_ms} ms; a spike needs at "
                             f"least one step to arrive (and partitions exchange spikes once per "
                             f"shortest delay)", key=f"{key}.delay")
        steps = int(round(lo / self.dt_ms))
        self.min_delay_steps = steps if self.min_delay_steps is None else min(self.min_delay_steps, steps)

    def _describe(self) -> None:
        """Build this partition's cells, incoming connections, inputs, clamps and probes."""
        net = self._net
        for g in self.cells:
            loc = self._local[g.name]
            net.add_cells(self.templates[g.name], len(loc), detect_at=(g.detect, 0.5), first_gid=loc.start)
        for p in self.projections:
            self._connect(p)
        for grp in self.inputs:
            for gid in self._local[grp.target]:
                site = net.add_site(gid, (grp.section, grp.x), grp.receptor)
                for _ in range(grp.per_cell):
                    net.add_external(site, grp.weight_uS)
        for c in self.clamps:
            gids = self.groups[c.target]
            for j in (c.cells if c.cells is not None else range(len(gids))):
                if gids[j] in self._local[c.target]:
                    net.add_current_clamp(gids[j], (c.section, c.x), c.delay_ms, c.duration_ms,
                                          c.amplitude_nA)
        for i in self.probe_ids:
            gid, sec, x = self.probes[i]
            net.add_probe(gid, (sec, x), name=self.probe_names[i])
        for st in self.stimuli:
            if isinstance(st, sstim.CurrentStimulus):
                gids = self.groups[st.population]
                for j in (st.cells if st.cells is not None else range(len(gids))):
                    if gids[j] in self._local[st.population]:
                        net.add_current_drive(gids[j], (st.section, st.x), st.pattern)
            else:
                self._poisson[st.name] = sstim.poisson_generator(
                    self.name, st, self.local_input_lines(st.input), self.rng)
        self._described = True

    @property
    def net(self) -> Network:
        """This partition's :class:`~cosim.multicompartment.Network` (described on first use)."""
        if not self._described:
            self._describe()
        return self._net

    def _key(self, *parts: str) -> str:
        """The scenario key ``engines.<name>.<parts>`` (for messages)."""
        return ".".join(("engines", self.name) + parts)

    def _node(self, population: str, section: str, x: float, what: str,
              key: str | None = None) -> int:
        try:
            return self.templates[population].node(section, x)
        except CosimError as exc:
            raise CosimError(f"{what}: {exc.reason}", key=key) from None

    def _group(self, name: str, what: str, key: str | None = None) -> range:
        if name not in self.groups:
            raise CosimError(f"{what}: unknown cell population {name!r}; have "
                             f"{', '.join(self.groups)}", key=key)
        return self.groups[name]

    def _site_nodes(self, p: Projection) -> list[int]:
        """Nodes of ``p.sites`` sites spread uniformly by length over the sections
        ``p.section`` selects: site k at arc length (k + ½)/sites of their total length,
        sections in morphology order."""
        tmpl = self.templates[p.target]
        morph = tmpl.morphology
        secs = morph.select(p.section)
        lengths = np.array([morph.sections[i].length_um for i in secs])
        ends = np.cumsum(lengths)
        nodes = []
        for k in range(p.sites):
            s = (k + 0.5) / p.sites * ends[-1]
            j = min(int(np.searchsorted(ends, s, side="right")), len(secs) - 1)
            x = (s - (ends[j] - lengths[j])) / lengths[j]
            nodes.append(tmpl.node(secs[j], min(max(x, 1e-9), 1.0 - 1e-9)))
        return nodes

    def _distance_nodes(self, p: Projection) -> list[int]:
        """Node of each connection of a target cell for sites at ``p.site_distances_um``
        (:func:`cosim.multicompartment.sites.site_nodes_at_distances`)."""
        from ..multicompartment.sites import site_nodes_at_distances
        return site_nodes_at_distances(self.templates[p.target], p.section,
                                       p.site_distances_um, p.indegree)

    def _connect(self, p: Projection) -> None:
        src = self.groups[p.source]
        same = p.source == p.target
        n_cand = len(src) - (1 if same and not p.autapses else 0)
        lo, hi = p.delay_ms
        nodes = None
        for gid in self._local[p.target]:
            rng = self.rng.generator("multicompartment.connect", self.name, p.name, gid)
            pick = rng.choice(n_cand, size=p.indegree, replace=False)
            if same and not p.autapses:
                pick = pick + (pick >= gid - src.start)
            delays = rng.uniform(lo, hi, size=p.indegree) if hi > lo else np.full(p.indegree, lo)
            if p.site_distances_um is not None:       # one node per connection
                nodes = self._distance_nodes(p) if nodes is None else nodes
                for receptor, w in zip(p.receptors, p.weights_uS):
                    for j, d, node in zip(pick, delays, nodes):
                        self._net.connect(src.start + int(j), self._net.add_site(gid, node, receptor),
                                          w, float(d), p.stp)
                continue
            where = self._site_nodes(p) if p.sites > 1 else [(p.section, p.x)]
            for receptor, w in zip(p.receptors, p.weights_uS):
                sites = [self._net.add_site(gid, at, receptor) for at in where]
                for c, (j, d) in enumerate(zip(pick, delays)):
                    self._net.connect(src.start + int(j), sites[c % len(sites)], w, float(d), p.stp)

    # -- partition queries --------------------------------------------------------------
    def population_of(self, gid: int) -> str:
        for name, r in self.groups.items():
            if gid in r:
                return name
        raise CosimError(f"no cell with gid {gid} (have {self.n_cells})")

    def local_gids(self, population: str) -> np.ndarray:
        """Global gids of ``population`` simulated by this partition (int64, ascending)."""
        self._group(population, "local_gids")
        r = self._local[population]
        return np.arange(r.start, r.stop, dtype=np.int64)

    def local_input_lines(self, group: str) -> np.ndarray:
        """Global ids of the input lines of ``group`` that end on this partition's cells."""
        if group not in self.input_lines:
            raise CosimError(f"unknown input group {group!r}; have {', '.join(self.input_lines)}")
        grp = next(g for g in self.inputs if g.name == group)
        pop, loc, first = self.groups[grp.target], self._local[grp.target], self.input_lines[group].start
        return np.arange(first + (loc.start - pop.start) * grp.per_cell,
                         first + (loc.stop - pop.start) * grp.per_cell, dtype=np.int64)

    # -- engine contract ----------------------------------------------------------------
    def populations(self) -> dict[str, range]:
        return dict(self.groups)

    def input_groups(self) -> tuple[str, ...]:
        return tuple(self.input_lines)

    def add_stimulus(self, spec):
        """Bind a current-clamp train or a Poisson-rate stimulus (:mod:`.spiking_stimuli`)."""
        if self._described:
            raise RuntimeError(f"engine {self.name!r}: add stimuli before build()")

        def site(pop, section, x, key):
            self._node(pop, section, x, f"stimulus {spec.name!r}", key)

        bound, record = sstim.bind(self, spec, self.groups, self.input_groups(), site)
        self.stimuli.append(bound)
        self._args["stimuli"] = tuple(self.stimuli)
        return record

    def max_parts(self) -> int:
        return max(1, self.n_cells)

    def work(self) -> float:
        """Compartment steps per ms of the whole region."""
        return self.n_compartments / self.dt_ms

    @property
    def n_compartments(self) -> int:
        return sum(g.n * self.templates[g.name].n_nodes for g in self.cells)

    def probe_ids_of(self, part: int, n_parts: int) -> np.ndarray:
        """Global probe indices held by partition ``part`` of ``n_parts`` (no build)."""
        owned = []
        for i, (gid, _, _) in enumerate(self.probes):
            pop = self.population_of(gid)
            first = self.groups[pop].start
            b = block(len(self.groups[pop]), part, n_parts)
            if first + b.start <= gid < first + b.stop:
                owned.append(i)
        return np.array(owned, dtype=np.int64)

    def merge_records(self, by_part):
        """Spikes of all partitions sorted by (time, gid) — the unsplit order — and each
        partition's probe columns at their global indices."""
        return merge_spiking_records(by_part, len(self.probes), self.probe_ids_of)

    def record_specs(self) -> list[RecordSpec]:
        """The single-process layout (all probes), the same on every partition."""
        specs = []
        if "spikes" in self.record_variables:
            # one SONATA population per cell group (cosim.recording); n_cells: size estimate
            specs.append(spike_spec(self.name, self.dt_ms, self.groups))
        if "v" in self.record_variables:
            specs.append(RecordSpec("v", ("v",), ("mV",), tuple(self.probe_names),
                                    self.record_period_ms))
        return specs

    def build(self) -> None:
        """Allocate the kernel arrays and JIT-compile (a zero-step call)."""
        self.net.build()
        self._net.advance(0)
        self._net.deliver(np.zeros(0, np.int64), np.zeros(0))     # compiles the delivery

    def advance(self, t0_ms: float, t1_ms: float, inputs: dict) -> WindowOutput:
        """Advance over ``[t0, t1)``: sub-intervals of at most the shortest recurrent
        delay, each followed by ``exchange`` of the spikes and their delivery."""
        if self.exchange is None:
            raise CosimError(f"engine {self.name!r}: partition {self.part} of {self.n_parts} "
                             f"needs an exchange function to advance")
        self.begin_window(t0_ms, t1_ms, inputs)
        while not self.window_done:
            gids, times = self.run_interval()
            if self.min_delay_steps is not None:
                self.deliver(*self.exchange(gids, times))
        return self.end_window()

    # The steps of advance(), for runtimes that drive partitions themselves (in lock step).
    def begin_window(self, t0_ms: float, t1_ms: float, inputs: dict | None) -> None:
        """Start a window: check the time, schedule this partition's input events
        (events of other partitions' lines are ignored)."""
        net = self.net
        if abs(t0_ms - net.t_ms) > 1e-6 * self.dt_ms + 1e-9:
            raise RuntimeError(f"engine {self.name!r} is at t = {net.t_ms} ms, asked to start at {t0_ms}")
        n = int(round((t1_ms - t0_ms) / self.dt_ms))
        events = inputs.get("events") if inputs else None
        if events is not None:
            lines = np.asarray(events[0], dtype=np.int64).ravel()
            times = np.asarray(events[1], dtype=np.float64).ravel()
            if lines.size != times.size:
                raise ValueError("events: line and time arrays differ in length")
            if lines.size and (lines.min() < 0 or lines.max() >= self.n_input_lines):
                raise ValueError(f"events: input line out of range [0, {self.n_input_lines})")
            if n > net.max_window_steps:
                raise ValueError("events are accepted only for windows of at most the sync interval")
            local = self._line_local[lines]
            mine = local >= 0
            net.schedule(local[mine], times[mine])
        for st in self.stimuli:
            gen = self._poisson.get(getattr(st, "name", None)) if isinstance(
                st, sstim.PoissonStimulus) else None
            if gen is not None and gen.syn_ids.size:
                rates = sstim.poisson_rates(st, net.step, n, self.dt_ms)
                lines, times = gen.generate(t0_ms, rates, self.dt_ms)
                net.schedule(self._line_local[lines], times)
        self._window = (net.step + n, [], [], [])

    @property
    def window_done(self) -> bool:
        return self._window is None or self._net.step >= self._window[0]

    def run_interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Advance the next sub-interval; return this partition's spikes (gids, times ms),
        which must reach every partition's :meth:`deliver` before the next call."""
        end, sp_g, sp_t, vs = self._window
        n = end - self._net.step
        if self.min_delay_steps is not None:
            n = min(n, self.min_delay_steps)
        (g, t), v = self._net.advance(n, deliver=False)
        sp_g.append(g)
        sp_t.append(t)
        vs.append(v)
        return g, t

    def deliver(self, gids: np.ndarray, times_ms: np.ndarray) -> None:
        """Deliver the spikes of all partitions of the last sub-interval (any order)."""
        self._net.deliver(gids, times_ms)

    def end_window(self) -> WindowOutput:
        """Close the window: this partition's spikes and probe samples."""
        end, sp_g, sp_t, vs = self._window
        if self._net.step != end:
            raise RuntimeError(f"engine {self.name!r}: window closed before its end")
        self._window = None
        self.check_finite()
        gids, times = gather_spikes(list(zip(sp_g, sp_t)))
        out = WindowOutput()
        out.exports["spikes"] = (gids, times)
        if "spikes" in self.record_variables:
            out.records["spikes"] = (gids, times)
        if "v" in self.record_variables:
            out.records["v"] = np.concatenate(vs)[:, None, :]
        return out

    #: Names of the cable state rows (voltage and HH gates), in storage order.
    STATE_NAMES = ("v", "m", "h", "n")

    def check_finite(self) -> None:
        """Raise :class:`~cosim.errors.NumericalError` naming cell (gid), compartment and
        variable if a voltage or gate of this partition is NaN/Inf (see :mod:`cosim.numerics`)."""
        net = self._net
        if net._kernel is not None:
            self._check_mechanisms_finite()
        if np.isfinite(net.state_arr).all():
            return
        assert len(self.STATE_NAMES) == N_STATE
        for (tmpl, n, first), (_, n_nodes, _, off) in zip(net._batches, net._batch_arr):
            block = net.state_arr[:, off:off + n_nodes * n].reshape(N_STATE, n_nodes, n)
            check_finite(self.name, block.transpose(2, 1, 0),      # (cell, compartment, variable)
                         [("cell", lambda j, first=first: str(first + j)),
                          ("compartment", lambda k, t=tmpl: _compartment(t, k)),
                          ("variable", self.STATE_NAMES)],
                         net.t_ms, dt_ms=self.dt_ms)

    def _check_mechanisms_finite(self) -> None:
        net = self._net
        for mech, names, S, k in net.mechanism_states():
            if np.isfinite(S).all():
                continue
            row, j = np.argwhere(~np.isfinite(S))[0]
            flat = int(k[j])
            for (tmpl, n, first), (_, n_nodes, _, off) in zip(net._batches, net._batch_arr):
                if off <= flat < off + n_nodes * n:
                    node, cell = divmod(flat - off, n)
                    raise NumericalError(
                        f"state {names[row]} of mechanism {mech} is {S[row, j]} in cell {first + cell} "
                        f"at {_compartment(tmpl, node)}, t = {net.t_ms:g} ms; the model or its "
                        f"parameters blew up (try a smaller dt)", engine=self.name,
                        location={"cell": str(first + cell), "compartment": _compartment(tmpl, node),
                                  "variable": f"{mech}.{names[row]}"}, t_ms=net.t_ms)

    def state(self) -> dict[str, np.ndarray]:
        out = self.net.state()
        for name, gen in self._poisson.items():
            out.update({f"stimulus:{name}:{k}": v for k, v in gen.state().items()})
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.net.restore(state)
        for name, gen in self._poisson.items():
            prefix = f"stimulus:{name}:"
            gen.restore({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    # -- scenario -----------------------------------------------------------------------

    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext) -> "MulticompartmentEngine":
        kw = engine_kwargs(name, reader, ctx)
        try:
            return cls(name, **kw)
        except CosimError as exc:
            raise exc.at(file=ctx.file, key=f"engines.{name}")


def _compartment(template, node: int) -> str:
    """``section(x)`` of a node, as in probe names."""
    return f"{template.morphology.sections[template.section[node]].name}({template.x[node]:.4g})"
