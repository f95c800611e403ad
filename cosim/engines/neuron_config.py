"""Scenario side of the NEURON engine: the declarations of ``[engines.<name>]`` with
``type = "neuron"`` and their reader.

The keys are documented in :mod:`cosim.engines.neuron_engine`; :func:`engine_kwargs`
turns the section into the engine's constructor arguments, validating every key and every
file it names (model file, ``.mod`` folder) — cheaply: NEURON is neither imported nor
started here, nothing is compiled (that happens at build, on the engine's rank).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..params import REQUIRED, Param, section
from .spiking import read_region

# -- declarations of [engines.<name>] (type = "neuron") -----------------------------------

DT = Param("dt", 0.025, "ms", "NEURON's fixed time step (h.dt)", gt=0)
CELSIUS = Param("celsius", 6.3, "°C", "temperature (h.celsius)", gt=-273.15, le=100.0)
V_INIT = Param("v_init", -65.0, "mV", "initial membrane potential (h.finitialize)")
SECONDORDER = Param("secondorder", 0, "", "NEURON's fixed-step method (h.secondorder): 0 "
                    "backward Euler (first order), 1 or 2 Crank–Nicolson (second order)",
                    type="integer", ge=0, le=2)
SPIKE_THRESHOLD = Param("spike_threshold", 0.0, "mV", "a spike is an upward crossing at a "
                        "population's spike_source (NetCon threshold)")
REGION = Param("region", None, "", "the connectome region this engine stands for (needed by "
               "adapters)", type="string", derived="none")
MODEL = Param("model", REQUIRED, "", "the model's code: a Python file (.py) or a hoc file "
              "(.hoc), relative to the scenario", type="string")
BUILD = Param("build", "build", "", "in a .py model: the function build(ctx, **args) → {gid: "
              "cell} that makes the cells ctx.gids; in a .hoc model: the cell template, "
              "instantiated once per cell", type="string")
CONNECT = Param("connect", None, "", "in a .py model: a function connect(ctx, cells, **args) "
                "called after every cell's spike source is registered (make the region's "
                "own connections there with ctx.pc.gid_connect)", type="string",
                derived="none")
MOD_DIR = Param("mod_dir", None, "", "folder of .mod files (relative to the scenario), compiled "
                "with nrnivmodl at build and cached by content hash; \"cosim:cortical\": the "
                "cortical mechanisms shipped with cosim (the multicompartment engine's set)",
                type="string", derived="none")
ARGS = Param("args", None, "", "keyword arguments passed to build and connect (a table)",
             type="table", derived="none")

POP_N = Param("n", REQUIRED, "", "number of cells (consecutive gids, populations in scenario "
              "order)", type="integer", ge=1, le=10_000_000)
SPIKE_SOURCE = Param("spike_source", "soma", "", "section of each cell whose voltage is "
                     "watched for spikes (an attribute path of the cell: soma, dend[0], …)",
                     type="string")
X = Param("x", 0.5, "", "position along the section (0..1)", ge=0, le=1)
POPULATIONS = section("engines.<name>.populations.<population>", "a cell population "
                      "(its spikes are exported; spikes_to_rate adapters pick populations)",
                      (POP_N, SPIKE_SOURCE, X))

INPUT_TARGET = Param("target", REQUIRED, "", "population receiving the input lines",
                     type="string")
SYNAPSE = Param("synapse", REQUIRED, "", "attribute path of the cell's point process that the "
                "lines drive (one object shared by all lines of the cell, or a list of "
                "per_cell objects)", type="string")
WEIGHT = Param("weight", REQUIRED, "µS", "NetCon weight of every line (weight[0])", ge=0)
PER_CELL = Param("per_cell", 1, "", "input lines per cell", type="integer", ge=1)
INPUTS = section("engines.<name>.inputs.<group>", "external input lines driven by a "
                 "rate_to_poisson adapter, delivered as NetCon events",
                 (INPUT_TARGET, SYNAPSE, WEIGHT, PER_CELL))

PROBE_CELLS = Param("cells", REQUIRED, "", "gids whose voltage is recorded", type="any")
PROBE_SECTIONS = Param("sections", ("soma",), "", "sections probed on each cell (attribute "
                       "paths)", type="strings")
PROBES = section("engines.<name>.probes", "membrane-potential probes (records \"v\")",
                 (PROBE_CELLS, PROBE_SECTIONS, X))

SECTION = section("engines.<name>", "type = \"neuron\": a region whose cells are a user's "
                  "NEURON model, integrated by NEURON (cosim.engines.neuron_engine)",
                  (DT, CELSIUS, V_INIT, SECONDORDER, SPIKE_THRESHOLD, REGION, MODEL, BUILD,
                   CONNECT, MOD_DIR, ARGS),
                  (POPULATIONS, INPUTS, PROBES))

#: An attribute path on a cell: ``name`` or ``name[int]``, joined by dots.
_PATH = re.compile(r"^[A-Za-z_]\w*(\[\d+\])?(\.[A-Za-z_]\w*(\[\d+\])?)*$")


@dataclass(frozen=True)
class Population:
    """``n`` cells of the model whose spikes are watched at ``spike_source(x)``."""

    name: str
    n: int
    spike_source: str = SPIKE_SOURCE.default
    x: float = X.default


@dataclass(frozen=True)
class NeuronInput:
    """``per_cell`` input lines onto every cell of ``target``, through ``synapse``."""

    name: str
    target: str
    synapse: str
    weight_uS: float
    per_cell: int = PER_CELL.default


def engine_kwargs(name: str, reader, ctx) -> dict[str, Any]:
    """Read ``[engines.<name>]`` (type ``neuron``) into the engine's keyword arguments."""
    r = reader
    base = os.path.dirname(ctx.file) if ctx.file else "."
    kw: dict[str, Any] = dict(dt_ms=r.param(DT), celsius=r.param(CELSIUS),
                              v_init_mV=r.param(V_INIT), secondorder=r.param(SECONDORDER),
                              spike_threshold_mV=r.param(SPIKE_THRESHOLD))
    kw["region_indices"] = read_region(r, ctx, REGION)
    model = r.param(MODEL)
    path = os.path.join(base, model)
    if not model.endswith((".py", ".hoc")):
        raise r.error("model", f"must be a .py or .hoc file, got {model!r}")
    if not os.path.isfile(path):
        raise r.error("model", f"file {model!r} not found (looked at {path})")
    kw["model_path"] = os.path.abspath(path)
    kw["build_name"] = _identifier(r, BUILD)
    kw["connect_name"] = _identifier(r, CONNECT)
    if kw["connect_name"] is not None and model.endswith(".hoc"):
        raise r.error("connect", "a hoc model gives cell templates only; connect needs a "
                                 ".py model")
    mod_dir = r.param(MOD_DIR)
    if mod_dir is not None:
        if mod_dir == "cosim:cortical":
            from ..multicompartment.mechanism import shipped_mod_dir
            mpath = str(shipped_mod_dir())
        else:
            mpath = os.path.join(base, mod_dir)
        if not os.path.isdir(mpath):
            raise r.error("mod_dir", f"folder {mod_dir!r} not found (looked at {mpath})")
        if not any(f.endswith(".mod") for f in os.listdir(mpath)):
            raise r.error("mod_dir", f"folder {mod_dir!r} holds no .mod file")
        kw["mod_dir"] = os.path.abspath(mpath)
    args = r.param(ARGS)
    kw["args"] = dict(args.raw) if args is not None else {}
    pops_r = r.table("populations")
    if not pops_r.keys():
        raise pops_r.error(None, "declare at least one population, e.g. "
                                 "[engines.x.populations.exc]")
    pops = []
    for k in pops_r.keys():
        t = pops_r.table(k)
        pops.append(Population(k, t.param(POP_N), _path(t, SPIKE_SOURCE), t.param(X)))
        t.done()
    names = [p.name for p in pops]
    in_r = r.table("inputs", {})
    inputs = []
    for k in in_r.keys():
        t = in_r.table(k)
        target = t.param(INPUT_TARGET)
        if target not in names:
            raise t.error("target", f"unknown population {target!r}; have {', '.join(names)}")
        inputs.append(NeuronInput(k, target, _path(t, SYNAPSE), t.param(WEIGHT), t.param(PER_CELL)))
        t.done()
    probes = []
    if r.has("probes"):
        pr = r.table("probes")
        raw = pr.param(PROBE_CELLS)
        n_cells = sum(p.n for p in pops)
        if not isinstance(raw, list) or any(isinstance(v, bool) or not isinstance(v, int)
                                            or not 0 <= v < n_cells for v in raw):
            raise pr.error("cells", f"must be an array of gids in [0, {n_cells}), got {raw!r}")
        secs = list(pr.param(PROBE_SECTIONS))
        for s in secs:
            if not _PATH.match(s):
                raise pr.error("sections", f"{s!r} is not an attribute path (soma, dend[0], …)")
        x = pr.param(X)
        pr.done()
        probes = [(g, s, x) for g in raw for s in secs]
    return dict(populations=pops, inputs=inputs, probes=probes, seed=ctx.rng,
                sync_interval_ms=ctx.sync_interval_ms, record_period_ms=ctx.record_period_ms,
                record_variables=ctx.record_variables, duration_ms=ctx.duration_ms, **kw)


def _identifier(r, decl: Param) -> str | None:
    value = r.param(decl)
    if value is not None and not value.isidentifier():
        raise r.error(decl.name, f"must be a Python/hoc name, got {value!r}")
    return value


def _path(t, decl: Param) -> str:
    value = t.param(decl)
    if not _PATH.match(value):
        raise t.error(decl.name, f"{value!r} is not an attribute path of a cell (soma, dend[0], "
                                 "syn.ampa, …)")
    return value


def resolve(obj: Any, path: str) -> Any:
    """``obj.<path>`` for an attribute path such as ``dend[0]`` or ``syn.ampa``
    (``AttributeError`` / ``IndexError`` when the cell has no such member)."""
    for part in path.split("."):
        name, _, idx = part.partition("[")
        obj = getattr(obj, name)
        if idx:
            obj = obj[int(idx[:-1])]
    return obj
