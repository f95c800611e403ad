"""Scenario side of the multicompartment engine: description dataclasses and TOML readers.

The keys are documented in :mod:`cosim.engines.multicompartment`; :func:`engine_kwargs`
turns ``[engines.<name>]`` into the engine's constructor arguments, validating every key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import CosimError
from ..multicompartment import apply_d_lambda, ball_and_stick, y_shaped
from ..multicompartment.channels import MECHANISMS
from ..multicompartment.mechanism import BUILTIN_CATALOGUE, Catalogue, shipped_mod_dir
from ..multicompartment.network import INTEGRATORS
from ..multicompartment.nmodl import NmodlError
from ..multicompartment.synapses import RECEPTOR_DEFAULTS
from ..params import REQUIRED, Param, section
from .spiking import read_region

TEMPLATES = {"ball_and_stick": ball_and_stick, "y_shaped": y_shaped}
#: Size limits: beyond them a run cannot fit in memory (or NEURON's nseg limit, 32767).
MAX_CELLS = 10_000_000
MAX_NSEG = 32767
MAX_INPUT_LINES = 100_000_000

# -- declarations of [engines.<name>] (type = "multicompartment") ----------------------------

DT = Param("dt", 0.025, "ms", "integration step", gt=0)
INTEGRATOR = Param("integrator", "backward_euler", "", "cable integrator: backward Euler "
                   "(NEURON's default, first order in dt) or Crank–Nicolson (NEURON's "
                   "secondorder = 2: θ = 1/2 for v, ion currents at the half step; second "
                   "order)", type="string", choices=tuple(INTEGRATORS))
# above absolute zero, at most boiling water (the HH q10 factor overflows far above)
CELSIUS = Param("celsius", 6.3, "°C", "temperature (HH rates scale by q10 = 3)",
                gt=-273.15, le=100.0)
V_INIT = Param("v_init", -65.0, "mV", "initial membrane potential of every compartment")
SPIKE_THRESHOLD = Param("spike_threshold", 0.0, "mV", "a spike is an upward crossing at the "
                        "detection site")
REGION = Param("region", None, "", "the connectome region this engine stands for (needed by "
               "adapters)", type="string", derived="none")
#: The value of ``mechanisms_dir`` that names the cortical set shipped with cosim.
SHIPPED = "cosim:cortical"
MECH_DIR = Param("mechanisms_dir", None, "", "NMODL .mod files to read: a folder (every *.mod), "
                 "a file, or a list of them, relative to the scenario; \"" + SHIPPED + "\" is "
                 "the cortical set shipped with cosim (na_pos, kdr_pos, im_pos, ih, ca_hva, "
                 "ca_lva, sk, cadecay)", type="any", derived="only hh and pas")
ION_E = Param("e", None, "mV", "reversal potential (where no mechanism writes a concentration)",
              derived="NEURON's default")
ION_CI = Param("ci", None, "mM", "inside concentration at the start", gt=0,
               derived="NEURON's default")
ION_CO = Param("co", None, "mM", "outside concentration", gt=0, derived="NEURON's default")
IONS = section("engines.<name>.ions.<ion>", "values of an ion used by the .mod mechanisms "
               "(NEURON's defaults: na e 50, ci 10, co 140; k e -77, ci 54.4, co 2.5; ca "
               "e 132.458, ci 5e-5, co 2)", (ION_E, ION_CI, ION_CO))

CELLS_N = Param("n", REQUIRED, "", "number of cells", type="integer", ge=1, le=MAX_CELLS)
MORPHOLOGY = Param("morphology", "ball_and_stick", "", "a template (" + ", ".join(TEMPLATES)
                   + ") or an .swc file (relative to the scenario)", type="string")
RA = Param("Ra", None, "Ω·cm", "axial resistivity", gt=0, derived="the morphology's")
CM = Param("cm", None, "µF/cm²", "membrane capacitance", gt=0, derived="the morphology's")
NSEG = Param("nseg", None, "", "segments per non-soma section", type="integer", ge=1,
             le=MAX_NSEG, derived="the morphology's")
D_LAMBDA = Param("d_lambda", None, "", "segments from the d_lambda rule (fraction of the "
                 "100 Hz length constant); not with nseg", gt=0, derived="unused")
DETECT = Param("detect", "soma", "", "section where spikes are detected", type="string")
CELLS = section("engines.<name>.cells.<group>", "a population of identical cells",
                (CELLS_N, MORPHOLOGY, RA, CM, NSEG, D_LAMBDA, DETECT),
                (section("engines.<name>.cells.<group>.mechanisms.<where>",
                         "<where> = soma | dend | all | a section name: {mechanism = {param = "
                         "value}} ({} inserts it with its defaults); mechanisms: "
                         + ", ".join(MECHANISMS) + " and those of mechanisms_dir", open=True,
                         tables=tuple(section(f"engines.<name>.cells.<group>.mechanisms."
                                              f"<where>.{m}", f"mechanism {m!r}", params)
                                      for m, params in MECHANISMS.items())),))

#: Receptor keys and the engine's keyword for each.
_BUILT_IN = "the built-in's"
RECEPTOR_PARAMS = {
    Param("tau_rise", None, "ms", "rise time constant", gt=0, derived=_BUILT_IN): "tau_rise_ms",
    Param("tau_decay", None, "ms", "decay time constant", gt=0, derived=_BUILT_IN): "tau_decay_ms",
    Param("e_rev", None, "mV", "reversal potential", derived=_BUILT_IN): "e_rev_mV",
    Param("mg", None, "mM", "Mg2+ concentration (NMDA block)", ge=0, derived=_BUILT_IN): "mg_mM",
}
RECEPTORS = section("engines.<name>.receptors.<receptor>", "change a built-in receptor or add "
                    "one (tau_rise, tau_decay and e_rev required), or set the parameters of a "
                    "POINT_PROCESS of mechanisms_dir (usable as a receptor by its name); built-in: " + "; ".join(
                        f"{k} (" + ", ".join(f"{p.name} {v[kw]:g} {p.unit}"
                                             for p, kw in RECEPTOR_PARAMS.items() if kw in v)
                        + ")" for k, v in RECEPTOR_DEFAULTS.items()), tuple(RECEPTOR_PARAMS))

SOURCE = Param("source", REQUIRED, "", "presynaptic cell group", type="string")
TARGET = Param("target", REQUIRED, "", "postsynaptic cell group", type="string")
INDEGREE = Param("indegree", REQUIRED, "", "connections onto each target cell", type="integer",
                 ge=0)
RECEPTOR_LIST = Param("receptors", REQUIRED, "", "receptors of each connection",
                      type="strings")
WEIGHTS = Param("weights", REQUIRED, "µS", "peak conductance per receptor (>= 0)",
                type="numbers")
SECTION_DEND = Param("section", "dend", "", "section of the synapse", type="string")
X = Param("x", 0.5, "", "position along the section (0..1)", ge=0, le=1)
DELAY = Param("delay", 1.0, "ms", "synaptic delay, or [min, max] drawn uniformly", gt=0)
SITES = Param("sites", 1, "", "synapse sites per target cell and receptor: above 1, `section` "
              "selects sections (a name, a kind such as apic, or all) and the sites are spread "
              "uniformly by length over them (x unused); connection k of a cell goes to site "
              "k mod sites", type="integer", ge=1, le=100_000)
SITE_DISTANCES = Param("site_distances", None, "µm", "synapse sites at these path distances "
                       "from the soma (h.distance from soma(0.5)) on the sections `section` "
                       "selects (a synapse at the centre of the segment holding each point), "
                       "instead of sites / x: connection k of a cell goes to distance k mod n "
                       "(n distances) and, where several branches cross that distance, "
                       "round-robin over the crossings (cosim.multicompartment.sites)",
                       type="numbers", ge=0, derived="one site at section(x), or sites")
AUTAPSES = Param("autapses", False, "", "allow a cell to connect to itself", type="boolean")
STP_U = Param("U", REQUIRED, "", "Tsodyks–Markram utilisation", gt=0, le=1)
STP_REC = Param("tau_rec", 0.0, "ms", "recovery time constant", ge=0)
STP_FAC = Param("tau_fac", 0.0, "ms", "facilitation time constant", ge=0)
PROJECTIONS = section("engines.<name>.projections.<projection>", "fixed in-degree random "
                      "connections between cell groups",
                      (SOURCE, TARGET, INDEGREE, RECEPTOR_LIST, WEIGHTS, SECTION_DEND, X,
                       SITES, SITE_DISTANCES, DELAY, AUTAPSES),
                      (section("engines.<name>.projections.<projection>.stp",
                               "short-term plasticity (Tsodyks–Markram)",
                               (STP_U, STP_REC, STP_FAC)),))

INPUT_TARGET = TARGET.with_(doc="cell group receiving the input lines")
INPUT_RECEPTOR = Param("receptor", "AMPA", "", "receptor of the input synapses", type="string")
INPUT_WEIGHT = Param("weight", REQUIRED, "µS", "peak conductance", ge=0)
PER_CELL = Param("per_cell", 1, "", "input lines per cell", type="integer", ge=1)
INPUTS = section("engines.<name>.inputs.<group>", "external input lines (driven by a "
                 "rate_to_poisson adapter)",
                 (INPUT_TARGET, INPUT_RECEPTOR, INPUT_WEIGHT, SECTION_DEND, X, PER_CELL))

CLAMP_CELLS = Param("cells", None, "", "cell indices within the group", type="any",
                    derived="every cell")
SECTION_SOMA = SECTION_DEND.with_(default="soma", doc="section of the electrode")
CLAMP_DELAY = Param("delay", 0.0, "ms", "onset", ge=0)
CLAMP_DURATION = Param("duration", REQUIRED, "ms", "length of the pulse", gt=0)
AMPLITUDE = Param("amplitude", REQUIRED, "nA", "injected current")
CLAMPS = section("engines.<name>.clamps.<clamp>", "current-clamp pulses",
                 (TARGET.with_(doc="cell group"), CLAMP_CELLS, SECTION_SOMA, X, CLAMP_DELAY,
                  CLAMP_DURATION, AMPLITUDE))

PROBE_CELLS = Param("cells", REQUIRED, "", "cell ids (integers >= 0) whose voltage is recorded",
                    type="any")
PROBE_SECTIONS = Param("sections", ("soma",), "", "sections probed on each cell",
                       type="strings")
PROBES = section("engines.<name>.probes", "membrane-potential probes",
                 (PROBE_CELLS, PROBE_SECTIONS, X))

SECTION = section("engines.<name>", "type = \"multicompartment\": Hodgkin–Huxley cells with "
                  "cable dendrites (cosim.engines.multicompartment)",
                  (DT, INTEGRATOR, CELSIUS, V_INIT, SPIKE_THRESHOLD, REGION, MECH_DIR),
                  (CELLS, IONS, RECEPTORS, PROJECTIONS, INPUTS, CLAMPS, PROBES))


@dataclass
class CellGroup:
    """A population of identical cells: ``n`` copies of one morphology."""

    name: str
    n: int
    morphology: Any
    detect: str = DETECT.default


@dataclass
class Projection:
    """Fixed in-degree random connections from ``source`` cells onto ``target`` cells."""

    name: str
    source: str
    target: str
    indegree: int
    receptors: list[str]
    weights_uS: list[float]
    section: str = SECTION_DEND.default
    x: float = X.default
    delay_ms: tuple[float, float] = (DELAY.default, DELAY.default)
    autapses: bool = AUTAPSES.default
    stp: tuple[float, float, float] | None = None
    sites: int = SITES.default
    site_distances_um: tuple[float, ...] | None = None


@dataclass
class InputGroup:
    """External input lines onto every cell of ``target``."""

    name: str
    target: str
    receptor: str
    weight_uS: float
    section: str = SECTION_DEND.default
    x: float = X.default
    per_cell: int = PER_CELL.default


@dataclass
class Clamp:
    target: str
    cells: list[int] | None
    section: str
    x: float
    delay_ms: float
    duration_ms: float
    amplitude_nA: float


def engine_kwargs(name: str, reader, ctx) -> dict[str, Any]:
    """Read the scenario section ``[engines.<name>]`` into the engine's keyword arguments."""
    r = reader
    kw: dict[str, Any] = dict(
        dt_ms=r.param(DT),
        integrator=r.param(INTEGRATOR),
        celsius=r.param(CELSIUS),
        v_init_mV=r.param(V_INIT),
        spike_threshold_mV=r.param(SPIKE_THRESHOLD),
    )
    kw["region_indices"] = read_region(r, ctx, REGION)
    base = os.path.dirname(ctx.file) if ctx.file else "."
    catalogue = _read_catalogue(r, base)
    kw["catalogue"] = catalogue
    kw["ions"] = _read_ions(r, catalogue)
    cells_r = r.table("cells")
    if not cells_r.keys():
        raise cells_r.error(None, "declare at least one cell population, e.g. [engines.x.cells.exc]")
    cells = [_read_cells(cells_r.table(k), k, base, catalogue) for k in cells_r.keys()]
    receptors = {}
    rec_r = r.table("receptors", {})
    points = {m.name: m for m in catalogue.mechanisms.values() if m.point}
    point_processes = {}
    for k in rec_r.keys():
        t = rec_r.table(k)
        if k in points:        # a POINT_PROCESS of mechanisms_dir: its own parameters
            point_processes[k] = {p.name: t.param(p) for p in points[k].params if t.has(p.name)}
            t.done()
            continue
        receptors[k] = {v: t.param(decl) for decl, v in RECEPTOR_PARAMS.items()}
        receptors[k] = {a: b for a, b in receptors[k].items() if b is not None}
        if k not in RECEPTOR_DEFAULTS and not {"tau_rise_ms", "tau_decay_ms", "e_rev_mV"} <= set(receptors[k]):
            raise t.error(None, "a new receptor needs tau_rise, tau_decay and e_rev")
        t.done()
    known = set(RECEPTOR_DEFAULTS) | set(receptors) | set(points)
    kw["point_processes"] = point_processes
    proj_r = r.table("projections", {})
    projections = [_read_projection(proj_r.table(k), k, known) for k in proj_r.keys()]
    in_r = r.table("inputs", {})
    inputs = [_read_input(in_r.table(k), k, known) for k in in_r.keys()]
    _check_input_lines(in_r, inputs, cells)
    cl_r = r.table("clamps", {})
    clamps = [_read_clamp(cl_r.table(k)) for k in cl_r.keys()]
    probes = []
    if r.has("probes"):
        pr = r.table("probes")
        gids = _indices(pr, PROBE_CELLS.name)
        secs = list(pr.param(PROBE_SECTIONS))
        x = pr.param(X)
        pr.done()
        probes = [(g, s, x) for g in gids for s in secs]
    return dict(cells=cells, projections=projections, inputs=inputs, clamps=clamps,
                probes=probes, receptors=receptors, seed=ctx.rng,
                sync_interval_ms=ctx.sync_interval_ms, record_period_ms=ctx.record_period_ms,
                record_variables=ctx.record_variables, **kw)


def _read_catalogue(r, base_dir: str) -> Catalogue:
    """The mechanisms of ``mechanisms_dir`` (each file parsed and checked now, so that a
    construct cosim cannot run is one line before the run starts)."""
    if not r.has(MECH_DIR.name):
        r.param(MECH_DIR)
        return BUILTIN_CATALOGUE
    raw = r.any(MECH_DIR.name)
    items = raw if isinstance(raw, list) else [raw]
    if not items or any(not isinstance(x, str) or not x for x in items):
        raise r.error(MECH_DIR.name, f"must be a path or a list of paths (strings), got {raw!r}")
    paths = []
    for x in items:
        p = shipped_mod_dir() if x == SHIPPED else os.path.join(base_dir, x)
        if not os.path.exists(p):
            raise r.error(MECH_DIR.name, f"{x!r} not found (looked at {p})")
        if os.path.isdir(p) and not any(f.endswith(".mod") for f in os.listdir(p)):
            raise r.error(MECH_DIR.name, f"folder {x!r} holds no .mod file")
        paths.append(p)
    try:
        return Catalogue.from_paths(paths)
    except NmodlError as exc:
        raise r.error(MECH_DIR.name, f"{exc.key}: {exc.reason}") from None
    except CosimError as exc:
        raise r.error(MECH_DIR.name, exc.reason) from None


def _read_ions(r, catalogue: Catalogue) -> dict:
    used = sorted({ion for m in catalogue.mechanisms.values() for ion in m.ions})
    out = {}
    ion_r = r.table("ions", {})
    for ion in ion_r.keys():
        t = ion_r.table(ion)
        if ion not in used:
            raise ion_r.error(ion, f"no mechanism of mechanisms_dir uses ion {ion!r} "
                                   f"(used: {', '.join(used) or 'none'})")
        vals = {k: t.param(p) for k, p in (("e", ION_E), ("ci", ION_CI), ("co", ION_CO))}
        t.done()
        out[ion] = {k: v for k, v in vals.items() if v is not None}
    return out


def _read_cells(t, name: str, base_dir: str, catalogue: Catalogue = None) -> CellGroup:
    from ..multicompartment.swc import load_swc
    n = t.param(CELLS_N)
    morph_name = t.param(MORPHOLOGY)
    if morph_name in TEMPLATES:
        morph = TEMPLATES[morph_name]()
    elif morph_name.lower().endswith(".swc"):
        path = os.path.join(base_dir, morph_name)
        if not os.path.isfile(path):
            raise t.error("morphology", f"SWC file {morph_name!r} not found (looked at {path})")
        morph = load_swc(path)
    else:
        raise t.error("morphology", f"must be one of {', '.join(TEMPLATES)} or a .swc file, got {morph_name!r}")
    Ra = t.param(RA)
    cm = t.param(CM)
    morph.set(Ra_ohm_cm=Ra, cm_uF_per_cm2=cm)
    nseg = t.param(NSEG)
    d_lambda = t.param(D_LAMBDA)
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
                if mech not in catalogue:
                    raise wr.error(mech, f"unknown mechanism; known: {', '.join(catalogue.names)}")
                pr = wr.table(mech)
                mechs[mech] = {p.name: (_distribution(pr, p) if isinstance(pr.any(p.name), str)
                                        else pr.param(p))
                               for p in catalogue.params(mech) if pr.has(p.name)}
                pr.done()
            wr.done()
            try:
                for i in morph.select(where):
                    morph.sections[i].mechanisms.clear()
                morph.set(where, mechanisms=mechs, catalogue=catalogue)
            except CosimError as exc:
                raise mr.error(where, exc.reason)
    if d_lambda is not None:
        apply_d_lambda(morph, d_lambda)
        worst = max(morph.sections, key=lambda s: s.nseg)
        if worst.nseg > MAX_NSEG:
            raise t.error("d_lambda", f"{d_lambda:g} gives section {worst.name} {worst.nseg} "
                                      f"segments (at most {MAX_NSEG})")
    detect = t.param(DETECT)
    t.done()
    try:
        morph.index(detect)
    except CosimError as exc:
        raise t.error("detect", exc.reason)
    return CellGroup(name, n, morph, detect)


def _distribution(t, p) -> str:
    """A parameter given as an expression of the path distance ``d`` (µm) from the soma."""
    from ..multicompartment.distribution import parse
    text = t.any(p.name)
    try:
        parse(text)
    except CosimError as exc:
        raise t.error(p.name, exc.reason) from None
    return text


def _check_input_lines(in_r, inputs: list[InputGroup], cells: list[CellGroup]) -> None:
    """Refuse more input lines than fit in memory (each line has its own Poisson train)."""
    size = {c.name: c.n for c in cells}
    total = 0
    for g in inputs:
        total += size.get(g.target, 0) * g.per_cell
        if total > MAX_INPUT_LINES:
            raise in_r.error(f"{g.name}.per_cell", f"{total} input lines (cells × per_cell over "
                                                   f"all input groups); at most {MAX_INPUT_LINES}")


def _indices(t, name: str) -> list[int]:
    """An array of cell indices: integers >= 0 (a float would silently pick another cell)."""
    raw = t.any(name)
    if not isinstance(raw, list) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                                        for v in raw):
        raise t.error(name, f"must be an array of integers >= 0, got {raw!r}")
    return list(raw)


def _delay(t) -> tuple[float, float]:
    raw = t.any(DELAY.name, DELAY.default)
    if isinstance(raw, list):
        vals = t.number_list(DELAY.name)
        if len(vals) != 2 or not 0 < vals[0] <= vals[1]:
            raise t.error("delay", f"must be a number or [min, max] with 0 < min <= max, got {raw!r}")
        return vals[0], vals[1]
    d = t.param(DELAY)
    return d, d


def _read_projection(t, name: str, known: set[str]) -> Projection:
    receptors = t.param(RECEPTOR_LIST)
    for rc in receptors:
        if rc not in known:
            raise t.error("receptors", f"unknown receptor {rc!r}; known: {', '.join(sorted(known))}")
    weights = t.param(WEIGHTS)
    if len(weights) != len(receptors) or any(w < 0 for w in weights):
        raise t.error("weights", "needs one non-negative weight (µS) per receptor")
    stp = None
    if t.has("stp"):
        s = t.table("stp")
        stp = (s.param(STP_U), s.param(STP_REC), s.param(STP_FAC))
        s.done()
    sites = t.param(SITES)
    if sites > 1 and t.has(X.name):
        raise t.error(X.name, "with sites > 1 the sites are spread over the sections; x is unused")
    distances = _site_distances(t)
    p = Projection(name, t.param(SOURCE), t.param(TARGET), t.param(INDEGREE),
                   receptors, weights, t.param(SECTION_DEND), t.param(X),
                   _delay(t), t.param(AUTAPSES), stp, sites, distances)
    t.done()
    return p


def _site_distances(t) -> tuple[float, ...] | None:
    """``site_distances``: a non-empty array of path distances >= 0, without sites or x."""
    name = SITE_DISTANCES.name
    if not t.has(name):
        return None
    vals = t.param(SITE_DISTANCES)
    if not vals:
        raise t.error(name, "must list at least one path distance (µm)")
    for i, v in enumerate(vals):
        why = SITE_DISTANCES.violation(v)
        if why is not None:
            raise t.error(f"{name}[{i}]", why)
    for other in (SITES.name, X.name):
        if t.has(other):
            raise t.error(name, f"give either {name} or {other}, not both")
    return tuple(vals)


def _read_input(t, name: str, known: set[str]) -> InputGroup:
    rc = t.param(INPUT_RECEPTOR)
    if rc not in known:
        raise t.error("receptor", f"unknown receptor {rc!r}; known: {', '.join(sorted(known))}")
    g = InputGroup(name, t.param(INPUT_TARGET), rc, t.param(INPUT_WEIGHT),
                   t.param(SECTION_DEND), t.param(X), t.param(PER_CELL))
    t.done()
    return g


def _read_clamp(t) -> Clamp:
    cells = _indices(t, CLAMP_CELLS.name) if t.has(CLAMP_CELLS.name) else None
    c = Clamp(t.param(TARGET), cells, t.param(SECTION_SOMA), t.param(X),
              t.param(CLAMP_DELAY), t.param(CLAMP_DURATION), t.param(AMPLITUDE))
    t.done()
    return c
