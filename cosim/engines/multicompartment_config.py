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
from ..multicompartment.channels import MECHANISM_DEFAULTS
from ..multicompartment.synapses import RECEPTOR_DEFAULTS

TEMPLATES = {"ball_and_stick": ball_and_stick, "y_shaped": y_shaped}
_RECEPTOR_KEYS = {"tau_rise": "tau_rise_ms", "tau_decay": "tau_decay_ms", "e_rev": "e_rev_mV",
                  "mg": "mg_mM"}
#: Size limits: beyond them a run cannot fit in memory (or NEURON's nseg limit, 32767).
MAX_CELLS = 10_000_000
MAX_NSEG = 32767
MAX_INPUT_LINES = 100_000_000
#: Range of each receptor key (time constants divide, a concentration is not negative).
_RECEPTOR_RANGE = {"tau_rise": {"gt": 0}, "tau_decay": {"gt": 0}, "mg": {"ge": 0}}


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


def engine_kwargs(name: str, reader, ctx) -> dict[str, Any]:
    """Read the scenario section ``[engines.<name>]`` into the engine's keyword arguments."""
    r = reader
    kw: dict[str, Any] = dict(
        dt_ms=r.number("dt", 0.025, gt=0, unit="ms"),
        # above absolute zero, at most boiling water (the HH q10 factor overflows far above)
        celsius=r.number("celsius", 6.3, gt=-273.15, le=100.0, unit="°C"),
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
        receptors[k] = {v: t.number(key, None, **_RECEPTOR_RANGE.get(key, {}))
                        for key, v in _RECEPTOR_KEYS.items()}
        receptors[k] = {a: b for a, b in receptors[k].items() if b is not None}
        if k not in RECEPTOR_DEFAULTS and not {"tau_rise_ms", "tau_decay_ms", "e_rev_mV"} <= set(receptors[k]):
            raise t.error(None, "a new receptor needs tau_rise, tau_decay and e_rev")
        t.done()
    known = set(RECEPTOR_DEFAULTS) | set(receptors)
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
        gids = _indices(pr, "cells")
        secs = pr.string_list("sections", ["soma"])
        x = pr.number("x", 0.5, ge=0, le=1)
        pr.done()
        probes = [(g, s, x) for g in gids for s in secs]
    return dict(cells=cells, projections=projections, inputs=inputs, clamps=clamps,
                probes=probes, receptors=receptors, seed=ctx.rng,
                sync_interval_ms=ctx.sync_interval_ms, record_period_ms=ctx.record_period_ms,
                record_variables=ctx.record_variables, **kw)


def _read_cells(t, name: str, base_dir: str) -> CellGroup:
    from ..multicompartment.swc import load_swc
    n = t.integer("n", ge=1, le=MAX_CELLS)
    morph_name = t.string("morphology", "ball_and_stick")
    if morph_name in TEMPLATES:
        morph = TEMPLATES[morph_name]()
    elif morph_name.lower().endswith(".swc"):
        path = os.path.join(base_dir, morph_name)
        if not os.path.isfile(path):
            raise t.error("morphology", f"SWC file {morph_name!r} not found (looked at {path})")
        morph = load_swc(path)
    else:
        raise t.error("morphology", f"must be one of {', '.join(TEMPLATES)} or a .swc file, got {morph_name!r}")
    Ra = t.number("Ra", None, gt=0, unit="Ω·cm")
    cm = t.number("cm", None, gt=0, unit="µF/cm²")
    morph.set(Ra_ohm_cm=Ra, cm_uF_per_cm2=cm)
    nseg = t.integer("nseg", None, ge=1, le=MAX_NSEG)
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
                # conductance densities (g…) are >= 0; reversal potentials (e…) any sign
                mechs[mech] = {k: pr.number(k, ge=0 if k.startswith("g") else None)
                               for k in pr.keys() if k in MECHANISM_DEFAULTS[mech]}
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
        worst = max(morph.sections, key=lambda s: s.nseg)
        if worst.nseg > MAX_NSEG:
            raise t.error("d_lambda", f"{d_lambda:g} gives section {worst.name} {worst.nseg} "
                                      f"segments (at most {MAX_NSEG})")
    detect = t.string("detect", "soma")
    t.done()
    try:
        morph.index(detect)
    except CosimError as exc:
        raise t.error("detect", exc.reason)
    return CellGroup(name, n, morph, detect)


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
    cells = _indices(t, "cells") if t.has("cells") else None
    c = Clamp(t.string("target"), cells, t.string("section", "soma"), t.number("x", 0.5, ge=0, le=1),
              t.number("delay", 0.0, ge=0, unit="ms"), t.number("duration", gt=0, unit="ms"),
              t.number("amplitude", unit="nA"))
    t.done()
    return c
