"""The multicompartment spiking-region engine (scenario ``type = "multicompartment"``).

A population of HH cells with cable dendrites (:mod:`cosim.multicompartment`), recurrent
E/I connections with delays and Tsodyks–Markram plasticity, and external input lines fed
with spike events.  Scenario keys (units in brackets; defaults after ``=``)::

    [engines.spiking]
    type = "multicompartment"
    dt = 0.025                  # [ms]
    celsius = 6.3               # [°C]; HH rates scale by 3^((celsius − 6.3)/10)
    v_init = -65.0              # [mV]
    spike_threshold = 0.0       # [mV], detected at each cell's `detect` section (x = 0.5)
    region = "rV1"              # optional: the connectome region this engine stands for

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

    [engines.spiking.projections.ee]    # recurrent, fixed in-degree
    source = "exc"  target = "exc"  indegree = 20
    receptors = ["AMPA", "NMDA"]  weights = [0.0005, 0.0002]    # [µS]
    section = "dend"  x = 0.5
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

Connectivity uses one counter-based stream per (seed, engine, projection, target gid)
(:func:`cosim.rng.stream`), so it does not depend on how cells are split over ranks.

Inputs of :meth:`advance`: ``inputs["events"] = (line int64[], time_ms float64[])``,
``line`` indexing the external input lines: group after group (scenario order), then
cell after cell, then ``per_cell`` lines; see :attr:`input_lines`.  Times must lie in the
window ``[t0, t1)``.

Outputs of a window: ``exports["spikes"]`` and ``records["spikes"]`` =
``(node_ids int64[], timestamps_ms float64[])`` for population ``<engine name>`` (written
by the recorder as SONATA ``/spikes/<engine>/…``; node id = gid), spike time = first
grid time with ``v > spike_threshold``; ``records["v"]`` ``(time, 1, probe)`` in mV at the
``[record] period``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CosimError
from ..multicompartment import Network, apply_d_lambda, ball_and_stick, discretise, y_shaped
from ..multicompartment.channels import MECHANISM_DEFAULTS
from ..multicompartment.synapses import RECEPTOR_DEFAULTS
from ..rng import stream
from .base import BuildContext, RecordSpec, WindowOutput

TEMPLATES = {"ball_and_stick": ball_and_stick, "y_shaped": y_shaped}
_RECEPTOR_KEYS = {"tau_rise": "tau_rise_ms", "tau_decay": "tau_decay_ms", "e_rev": "e_rev_mV",
                  "mg": "mg_mM"}


@dataclass
class CellGroup:
    """A population of identical cells: ``n`` copies of one morphology."""

    name: str
    n: int
    morphology: Any
    detect: str = "soma"


@dataclass
class Projection:
    """Fixed in-degree random connections from ``source`` cells onto ``target`` cells."""

    name: str
    source: str
    target: str
    indegree: int
    receptors: list[str]
    weights_uS: list[float]
    section: str = "dend"
    x: float = 0.5
    delay_ms: tuple[float, float] = (1.0, 1.0)
    autapses: bool = False
    stp: tuple[float, float, float] | None = None


@dataclass
class InputGroup:
    """External input lines onto every cell of ``target``."""

    name: str
    target: str
    receptor: str
    weight_uS: float
    section: str = "dend"
    x: float = 0.5
    per_cell: int = 1


@dataclass
class Clamp:
    target: str
    cells: list[int] | None
    section: str
    x: float
    delay_ms: float
    duration_ms: float
    amplitude_nA: float


class MulticompartmentEngine:
    """Spiking region of multicompartment cells; see the module docstring.

    Plain Python use (no TOML)::

        eng = MulticompartmentEngine("ctx", cells=[CellGroup("exc", 10, ball_and_stick())],
                                     projections=[...], inputs=[...], seed=1)
        eng.build()
        out = eng.advance(0.0, 5.0, {"events": (lines, times)})
    """

    def __init__(self, name: str, *, cells: list[CellGroup], projections: list[Projection] = (),
                 inputs: list[InputGroup] = (), clamps: list[Clamp] = (),
                 probes: list[tuple[int, str, float]] = (), receptors: dict | None = None,
                 dt_ms: float = 0.025, celsius: float = 6.3, v_init_mV: float = -65.0,
                 spike_threshold_mV: float = 0.0, seed: int = 0, sync_interval_ms: float = 1.0,
                 record_period_ms: float = 1.0, record_variables: list[str] | None = None,
                 region_indices: tuple[int, ...] = ()):
        self.name = name
        self.dt_ms = float(dt_ms)
        self.seed = int(seed)
        self.cells = list(cells)
        self.projections = list(projections)
        self.inputs = list(inputs)
        self.clamps = list(clamps)
        self.probes = list(probes)
        self.sync_interval_ms = float(sync_interval_ms)
        self.record_period_ms = float(record_period_ms)
        self.region_indices = tuple(region_indices)
        every = self.record_period_ms / self.dt_ms
        if abs(every - round(every)) > 1e-9 * max(1.0, every):
            raise CosimError(f"record period {record_period_ms} ms is not a multiple of dt {dt_ms} ms")
        self.record_variables = record_variables or (["spikes", "v"] if self.probes else ["spikes"])
        for v in self.record_variables:
            if v not in ("spikes", "v"):
                raise CosimError(f"engine {name!r} records 'spikes' and 'v', not {v!r}")
        if "v" in self.record_variables and not self.probes:
            raise CosimError(f"engine {name!r}: recording 'v' needs [engines.{name}.probes]")
        self.net = Network(self.dt_ms, celsius=celsius, v_init_mV=v_init_mV,
                           spike_threshold_mV=spike_threshold_mV,
                           max_window_ms=max(self.sync_interval_ms, self.dt_ms),
                           record_every_steps=int(round(every)))
        for rname, params in (receptors or {}).items():
            self.net.set_receptor(rname, **params)
        self._describe()

    # -- description --------------------------------------------------------------------
    def _describe(self) -> None:
        net = self.net
        self.groups: dict[str, range] = {}
        for g in self.cells:
            if g.name in self.groups:
                raise CosimError(f"cell population {g.name!r} declared twice")
            tmpl = discretise(g.morphology)
            self.groups[g.name] = net.add_cells(tmpl, g.n, detect_at=(g.detect, 0.5))
        self.n_cells = net.n_cells
        for p in self.projections:
            self._connect(p)
        self.input_lines: dict[str, range] = {}
        for grp in self.inputs:
            first = len(net._ext)
            for gid in self._group(grp.target, f"input {grp.name!r}"):
                site = net.add_site(gid, (grp.section, grp.x), grp.receptor)
                for _ in range(grp.per_cell):
                    net.add_external(site, grp.weight_uS)
            self.input_lines[grp.name] = range(first, len(net._ext))
        self.n_input_lines = len(net._ext)
        for c in self.clamps:
            gids = self._group(c.target, "clamp")
            for j in (c.cells if c.cells is not None else range(len(gids))):
                if not 0 <= j < len(gids):
                    raise CosimError(f"clamp cell {j} outside population {c.target!r} (n = {len(gids)})")
                net.add_current_clamp(gids[j], (c.section, c.x), c.delay_ms, c.duration_ms, c.amplitude_nA)
        for gid, sec, x in self.probes:
            if not 0 <= gid < self.n_cells:
                raise CosimError(f"probe cell {gid} outside [0, {self.n_cells})")
            net.add_probe(gid, (sec, x))

    def _group(self, name: str, what: str) -> range:
        if name not in self.groups:
            raise CosimError(f"{what}: unknown cell population {name!r}; have {', '.join(self.groups)}")
        return self.groups[name]

    def _connect(self, p: Projection) -> None:
        src = self._group(p.source, f"projection {p.name!r}")
        tgt = self._group(p.target, f"projection {p.name!r}")
        same = p.source == p.target
        n_cand = len(src) - (1 if same and not p.autapses else 0)
        if p.indegree > n_cand:
            raise CosimError(f"projection {p.name!r}: indegree {p.indegree} exceeds the "
                             f"{n_cand} possible sources")
        lo, hi = p.delay_ms
        for gid in tgt:
            rng = stream(self.seed, "multicompartment", self.name, p.name, gid)
            pick = rng.choice(n_cand, size=p.indegree, replace=False)
            if same and not p.autapses:
                pick = pick + (pick >= gid - src.start)
            delays = rng.uniform(lo, hi, size=p.indegree) if hi > lo else np.full(p.indegree, lo)
            for receptor, w in zip(p.receptors, p.weights_uS):
                site = self.net.add_site(gid, (p.section, p.x), receptor)
                for j, d in zip(pick, delays):
                    self.net.connect(src.start + int(j), site, w, float(d), p.stp)

    # -- engine contract ----------------------------------------------------------------
    def record_specs(self) -> list[RecordSpec]:
        specs = []
        if "spikes" in self.record_variables:
            specs.append(RecordSpec("spikes", ("spikes",), ("ms",), (self.name,), self.dt_ms,
                                    attrs={"kind": "spikes", "population": self.name}))
        if "v" in self.record_variables:
            specs.append(RecordSpec("v", ("v",), ("mV",), tuple(self.net.probe_names),
                                    self.record_period_ms))
        return specs

    def build(self) -> None:
        """Allocate the kernel arrays and JIT-compile (a zero-step call)."""
        self.net.build()
        self.net.advance(0)

    def advance(self, t0_ms: float, t1_ms: float, inputs: dict) -> WindowOutput:
        net = self.net
        if abs(t0_ms - net.t_ms) > 1e-6 * self.dt_ms + 1e-9:
            raise RuntimeError(f"engine {self.name!r} is at t = {net.t_ms} ms, asked to start at {t0_ms}")
        n = int(round((t1_ms - t0_ms) / self.dt_ms))
        events = inputs.get("events") if inputs else None
        (gids, times), v = net.advance(n, events)
        out = WindowOutput()
        out.exports["spikes"] = (gids, times)
        if "spikes" in self.record_variables:
            out.records["spikes"] = (gids, times)
        if "v" in self.record_variables:
            out.records["v"] = v[:, None, :]
        return out

    def state(self) -> dict[str, np.ndarray]:
        return self.net.state()

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.net.restore(state)

    # -- scenario -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext) -> "MulticompartmentEngine":
        r = reader
        kw: dict[str, Any] = dict(
            dt_ms=r.number("dt", 0.025, gt=0, unit="ms"),
            celsius=r.number("celsius", 6.3, unit="°C"),
            v_init_mV=r.number("v_init", -65.0, unit="mV"),
            spike_threshold_mV=r.number("spike_threshold", 0.0, unit="mV"),
        )
        region = r.string("region", None)
        if region is not None:
            labels = list(ctx.connectome.region_labels)
            if region not in labels:
                raise r.error("region", f"no region {region!r} in the connectome")
            kw["region_indices"] = (labels.index(region),)
        base = os.path.dirname(ctx.file) if ctx.file else "."
        cells_r = r.table("cells")
        if not cells_r.keys():
            raise cells_r.error(None, "declare at least one cell population, e.g. [engines.x.cells.exc]")
        cells = [_read_cells(cells_r.table(k), k, base) for k in cells_r.keys()]
        receptors = {}
        rec_r = r.table("receptors", {})
        for k in rec_r.keys():
            t = rec_r.table(k)
            receptors[k] = {v: t.number(key, None) for key, v in _RECEPTOR_KEYS.items()}
            receptors[k] = {a: b for a, b in receptors[k].items() if b is not None}
            if k not in RECEPTOR_DEFAULTS and not {"tau_rise_ms", "tau_decay_ms", "e_rev_mV"} <= set(receptors[k]):
                raise t.error(None, "a new receptor needs tau_rise, tau_decay and e_rev")
            t.done()
        known = set(RECEPTOR_DEFAULTS) | set(receptors)
        proj_r = r.table("projections", {})
        projections = [_read_projection(proj_r.table(k), k, known) for k in proj_r.keys()]
        in_r = r.table("inputs", {})
        inputs = [_read_input(in_r.table(k), k, known) for k in in_r.keys()]
        cl_r = r.table("clamps", {})
        clamps = [_read_clamp(cl_r.table(k)) for k in cl_r.keys()]
        probes = []
        if r.has("probes"):
            pr = r.table("probes")
            gids = [int(g) for g in pr.number_list("cells")]
            secs = pr.string_list("sections", ["soma"])
            x = pr.number("x", 0.5, ge=0, le=1)
            pr.done()
            probes = [(g, s, x) for g in gids for s in secs]
        try:
            return cls(name, cells=cells, projections=projections, inputs=inputs, clamps=clamps,
                       probes=probes, receptors=receptors, seed=ctx.seed,
                       sync_interval_ms=ctx.sync_interval_ms, record_period_ms=ctx.record_period_ms,
                       record_variables=ctx.record_variables, **kw)
        except CosimError as exc:
            raise exc.at(file=ctx.file, key=f"engines.{name}")


def _read_cells(t, name: str, base_dir: str) -> CellGroup:
    from ..multicompartment.swc import load_swc
    n = t.integer("n", ge=1)
    morph_name = t.string("morphology", "ball_and_stick")
    if morph_name in TEMPLATES:
        morph = TEMPLATES[morph_name]()
    elif morph_name.lower().endswith(".swc"):
        morph = load_swc(os.path.join(base_dir, morph_name))
    else:
        raise t.error("morphology", f"must be one of {', '.join(TEMPLATES)} or a .swc file, got {morph_name!r}")
    Ra = t.number("Ra", None, gt=0, unit="Ω·cm")
    cm = t.number("cm", None, gt=0, unit="µF/cm²")
    morph.set(Ra_ohm_cm=Ra, cm_uF_per_cm2=cm)
    nseg = t.integer("nseg", None, ge=1)
    d_lambda = t.number("d_lambda", None, gt=0)
    if nseg is not None and d_lambda is not None:
        raise t.error("d_lambda", "give either nseg or d_lambda, not both")
    if nseg is not None:
        for sec in morph.sections:
            if sec.kind != "soma":
                sec.nseg = nseg
    if t.has("mechanisms"):
        mr = t.table("mechanisms")
        for where in mr.keys():
            wr = mr.table(where)
            mechs = {}
            for mech in wr.keys():
                if mech not in MECHANISM_DEFAULTS:
                    raise wr.error(mech, f"unknown mechanism; known: {', '.join(MECHANISM_DEFAULTS)}")
                pr = wr.table(mech)
                mechs[mech] = {k: pr.number(k) for k in pr.keys() if k in MECHANISM_DEFAULTS[mech]}
                pr.done()
            wr.done()
            try:
                for i in morph.select(where):
                    morph.sections[i].mechanisms.clear()
                morph.set(where, mechanisms=mechs)
            except CosimError as exc:
                raise mr.error(where, exc.reason)
    if d_lambda is not None:
        apply_d_lambda(morph, d_lambda)
    detect = t.string("detect", "soma")
    t.done()
    try:
        morph.index(detect)
    except CosimError as exc:
        raise t.error("detect", exc.reason)
    return CellGroup(name, n, morph, detect)


def _delay(t) -> tuple[float, float]:
    raw = t.any("delay", 1.0)
    if isinstance(raw, list):
        vals = t.number_list("delay")
        if len(vals) != 2 or not 0 < vals[0] <= vals[1]:
            raise t.error("delay", f"must be a number or [min, max] with 0 < min <= max, got {raw!r}")
        return vals[0], vals[1]
    d = t.number("delay", 1.0, gt=0, unit="ms")
    return d, d


def _read_projection(t, name: str, known: set[str]) -> Projection:
    receptors = t.string_list("receptors")
    for rc in receptors:
        if rc not in known:
            raise t.error("receptors", f"unknown receptor {rc!r}; known: {', '.join(sorted(known))}")
    weights = t.number_list("weights")
    if len(weights) != len(receptors) or any(w < 0 for w in weights):
        raise t.error("weights", "needs one non-negative weight (µS) per receptor")
    stp = None
    if t.has("stp"):
        s = t.table("stp")
        stp = (s.number("U", gt=0, le=1), s.number("tau_rec", 0.0, ge=0, unit="ms"),
               s.number("tau_fac", 0.0, ge=0, unit="ms"))
        s.done()
    p = Projection(name, t.string("source"), t.string("target"), t.integer("indegree", ge=0),
                   receptors, weights, t.string("section", "dend"), t.number("x", 0.5, ge=0, le=1),
                   _delay(t), t.boolean("autapses", False), stp)
    t.done()
    return p


def _read_input(t, name: str, known: set[str]) -> InputGroup:
    rc = t.string("receptor", "AMPA")
    if rc not in known:
        raise t.error("receptor", f"unknown receptor {rc!r}; known: {', '.join(sorted(known))}")
    g = InputGroup(name, t.string("target"), rc, t.number("weight", ge=0, unit="µS"),
                   t.string("section", "dend"), t.number("x", 0.5, ge=0, le=1),
                   t.integer("per_cell", 1, ge=1))
    t.done()
    return g


def _read_clamp(t) -> Clamp:
    cells = t.any("cells", None)
    if cells is not None:
        cells = [int(c) for c in t.number_list("cells")]
    c = Clamp(t.string("target"), cells, t.string("section", "soma"), t.number("x", 0.5, ge=0, le=1),
              t.number("delay", 0.0, ge=0, unit="ms"), t.number("duration", gt=0, unit="ms"),
              t.number("amplitude", unit="nA"))
    t.done()
    return c
