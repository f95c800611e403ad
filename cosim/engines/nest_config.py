"""Scenario side of the NEST engine: declarations, description dataclasses, TOML reader.

The keys are documented in :mod:`cosim.engines.nest`; :func:`engine_kwargs` turns
``[engines.<name>]`` into the engine's constructor arguments, validating every key.

**Validation without NEST.**  ``import nest`` takes about 2 s here, and every rank
validates every engine, so model, parameter, recordable, synapse and rule names are checked
against a cached list of NEST's own models, ``nest_models.json`` (next to this module),
written from the installed NEST by ``python -m cosim.engines.nest_config --write-cache``;
``tests/test_nest_engine.py`` checks that the cache equals what the installed NEST reports.
Values are checked for their kind (number, boolean, string, array) only — NEST itself
checks ranges when the engine builds, and a refusal there ends the run naming the engine.
"""

from __future__ import annotations

import difflib
import json
import math
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..params import REQUIRED, Param, section
from .spiking import read_region

CACHE = Path(__file__).with_name("nest_models.json")
#: Size limits (memory): cells of one engine and input lines of one engine.
MAX_CELLS = 10_000_000
MAX_INPUT_LINES = 100_000_000

# -- declarations of [engines.<name>] (type = "nest") -----------------------------------------

RESOLUTION = Param("resolution", 0.1, "ms", "NEST's resolution (the engine's dt); divides the "
                   "sync interval", gt=0)
THREADS = Param("threads", 1, "", "NEST threads (results depend on it, not on the process "
                "layout)", type="integer", ge=1, le=1024)
REGION = Param("region", None, "", "the connectome region this engine stands for (needed by "
               "adapters)", type="string", derived="none")

POP_MODEL = Param("model", REQUIRED, "", "a NEST node model (iaf_psc_alpha, iaf_cond_exp, "
                  "aeif_cond_exp, parrot_neuron, poisson_generator, …)", type="string")
POP_N = Param("n", REQUIRED, "", "number of nodes", type="integer", ge=1, le=MAX_CELLS)
POP_PARAMS = section("engines.<name>.populations.<pop>.params", "any parameter of the model, "
                     "NEST's name and unit (mV, ms, pA, nS, pF, Hz): a value, or a distribution "
                     "table as for weights", open=True)
POP_RECORD = Param("record", None, "", "state variables sampled at every sync step: NEST "
                   "recordables that are also status keys (V_m, g_ex, w, …)", type="strings",
                   derived="none")
POP_CELLS = Param("cells", None, "", "indices (0-based, within the population) of the cells "
                  "whose `record` variables are sampled", type="any", derived="the first cell")
POPULATIONS = section("engines.<name>.populations.<pop>", "a population of one NEST node model "
                      "(neurons first get gids, in declaration order)",
                      (POP_MODEL, POP_N, POP_RECORD, POP_CELLS), (POP_PARAMS,))

SOURCE = Param("source", REQUIRED, "", "presynaptic population", type="string")
TARGET = Param("target", REQUIRED, "", "postsynaptic population", type="string")
RULE = Param("rule", "all_to_all", "", "NEST connection rule", type="string")
SYNAPSE = Param("synapse", "static_synapse", "", "NEST synapse model (e.g. tsodyks2_synapse)",
                type="string")
WEIGHT = Param("weight", 1.0, "pA or nS", "synaptic weight in the target model's unit (current "
               "models pA, conductance models nS; negative: inhibitory for current models), or "
               "a distribution table {distribution = \"normal\", mean, std, min?, max?} | "
               "{distribution = \"uniform\", min, max} | {distribution = \"lognormal\", mean, "
               "std} | {distribution = \"exponential\", beta}", type="any")
DELAY = Param("delay", 1.0, "ms", "synaptic delay (>= resolution), or a distribution table",
              type="any")
#: NEST's connection-rule parameters, declared with their types and bounds
CONN_PARAMS = (
    Param("indegree", None, "", "fixed_indegree: sources per target", type="integer", ge=0),
    Param("outdegree", None, "", "fixed_outdegree: targets per source", type="integer", ge=0),
    Param("N", None, "", "fixed_total_number: connections in all", type="integer", ge=0),
    Param("p", None, "", "pairwise_bernoulli: connection probability", ge=0, le=1),
    Param("pairs_avg_num", None, "", "symmetric_pairwise_bernoulli: mean pairs per neuron", ge=0),
    Param("allow_autapses", None, "", "allow self-connections", type="boolean"),
    Param("allow_multapses", None, "", "allow several connections per pair", type="boolean"),
    Param("make_symmetric", None, "", "one_to_one / all_to_all: also connect target → source",
          type="boolean"),
)
CONN_KEYS = tuple(c.name for c in CONN_PARAMS)
CONN = section("engines.<name>.projections.<projection>.conn", "further connection-rule "
               "parameters, NEST's names", CONN_PARAMS)
SYN = section("engines.<name>.projections.<projection>.syn", "further synapse-model "
              "parameters, NEST's names (tsodyks2_synapse: U, u, x, tau_rec, tau_fac [ms])",
              open=True)
PROJECTIONS = section("engines.<name>.projections.<projection>", "nest.Connect(source, target, "
                      "conn, syn) in declaration order",
                      (SOURCE, TARGET, RULE, SYNAPSE, WEIGHT, DELAY), (CONN, SYN))

INPUT_TARGET = TARGET.with_(doc="population receiving the input lines")
INPUT_WEIGHT = Param("weight", REQUIRED, "pA or nS", "weight of every input spike", type="number")
INPUT_DELAY = Param("delay", 1.0, "ms", "delay from the line to the cell (>= resolution)", gt=0)
INPUT_SYNAPSE = Param("synapse", "static_synapse", "", "NEST synapse model of the input",
                      type="string")
INPUT_RECEPTOR = Param("receptor_type", 0, "", "NEST receptor port of the target model",
                       type="integer", ge=0)
PER_CELL = Param("per_cell", 1, "", "input lines per cell", type="integer", ge=1)
INPUTS = section("engines.<name>.inputs.<group>", "external input lines driven by a "
                 "rate_to_poisson adapter, delivered as spike events (one spike_generator per "
                 "cell)", (INPUT_TARGET, INPUT_WEIGHT, INPUT_DELAY, INPUT_SYNAPSE, INPUT_RECEPTOR,
                           PER_CELL))

SECTION = section("engines.<name>", "type = \"nest\": a network of NEST point neurons standing "
                  "for one region (cosim.engines.nest; install the `nest` extra)",
                  (RESOLUTION, THREADS, REGION), (POPULATIONS, PROJECTIONS, INPUTS))

DISTRIBUTIONS = {"normal": ("mean", "std"), "uniform": ("min", "max"),
                 "lognormal": ("mean", "std"), "exponential": ("beta",)}


@dataclass
class Population:
    """``n`` nodes of NEST model ``model`` with parameters ``params`` (NEST names/units;
    a value or a :class:`Distribution`)."""

    name: str
    model: str
    n: int
    params: dict[str, Any] = field(default_factory=dict)
    record: tuple[str, ...] = ()
    cells: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Distribution:
    """A NEST random parameter: ``nest.random.<kind>(**args)``, redrawn inside
    ``[min, max]`` when ``bounds`` is set (``normal`` only)."""

    kind: str
    args: tuple[tuple[str, float], ...]
    bounds: tuple[float, float] | None = None


@dataclass
class Connection:
    """``nest.Connect(source, target, {rule, **conn}, {synapse, weight, delay, **syn})``."""

    name: str
    source: str
    target: str
    rule: str = "all_to_all"
    conn: dict[str, Any] = field(default_factory=dict)
    synapse: str = "static_synapse"
    weight: float | Distribution = 1.0
    delay_ms: float | Distribution = 1.0
    syn: dict[str, Any] = field(default_factory=dict)


@dataclass
class InputGroup:
    """``per_cell`` input lines onto every cell of ``target``."""

    name: str
    target: str
    weight: float
    delay_ms: float = 1.0
    synapse: str = "static_synapse"
    receptor_type: int = 0
    per_cell: int = 1


@lru_cache(maxsize=1)
def models() -> dict:
    """The cached model list (see the module docstring)."""
    return json.loads(CACHE.read_text())


def _close(word: str, known) -> str:
    near = difflib.get_close_matches(word, sorted(known), n=3, cutoff=0.6)
    return f"; close matches: {', '.join(near)}" if near else ""


def engine_kwargs(name: str, reader, ctx) -> dict[str, Any]:
    """Read ``[engines.<name>]`` into the engine's keyword arguments."""
    r = reader
    kw: dict[str, Any] = dict(resolution_ms=r.param(RESOLUTION), threads=r.param(THREADS))
    kw["region_indices"] = read_region(r, ctx, REGION)
    pr = r.table("populations")
    if not pr.keys():
        raise pr.error(None, "declare at least one population, e.g. [engines.x.populations.E]")
    pops = [_read_population(pr.table(k), k) for k in pr.keys()]
    known = {p.name: p for p in pops}
    cr = r.table("projections", {})
    conns = [_read_connection(cr.table(k), k, known) for k in cr.keys()]
    ir = r.table("inputs", {})
    inputs = [_read_input(ir.table(k), k, known) for k in ir.keys()]
    total = sum(known[g.target].n * g.per_cell for g in inputs)
    if total > MAX_INPUT_LINES:
        raise ir.error(None, f"{total} input lines (cells × per_cell); at most {MAX_INPUT_LINES}")
    return dict(populations=pops, connections=conns, inputs=inputs, seed=ctx.rng,
                sync_interval_ms=ctx.sync_interval_ms, duration_ms=ctx.duration_ms,
                record_variables=ctx.record_variables, **kw)


def _model(t, key: str, kinds=("neuron", "stimulator")) -> str:
    m = t.param(POP_MODEL) if key == "model" else t.string(key)
    table = models()["node_models"]
    if m not in table:
        raise t.error(key, f"unknown NEST model {m!r}" + _close(m, table))
    if table[m]["element_type"] not in kinds:
        raise t.error(key, f"NEST model {m!r} is a {table[m]['element_type']}; a population "
                      "must be a neuron or a stimulation device")
    return m


def _value(t, key: str, kind: str):
    raw = t.any(key)
    if isinstance(raw, dict):
        if kind != "number":
            raise t.error(key, f"{key} is a {kind}; only numbers take a distribution")
        return _distribution(t.table(key))
    ok = {"number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "boolean": lambda v: isinstance(v, bool), "string": lambda v: isinstance(v, str),
          "array": lambda v: isinstance(v, list)}[kind]
    if not ok(raw):
        raise t.error(key, f"must be a {kind}, got {raw!r}")
    if kind == "number" and not math.isfinite(raw):
        raise t.error(key, f"must be a finite number, got {raw!r}")
    return float(raw) if kind == "number" else raw


def _distribution(t) -> Distribution:
    kind = t.string("distribution", choices=list(DISTRIBUTIONS))
    args = tuple((a, t.number(a, gt=0) if a in ("std", "beta") else t.number(a))
                 for a in DISTRIBUTIONS[kind])
    bounds = None
    if kind == "normal" and (t.has("min") or t.has("max")):
        bounds = (t.number("min", -float("inf")), t.number("max", float("inf")))
        if not bounds[0] < bounds[1]:
            raise t.error("max", f"must be > min, got [{bounds[0]}, {bounds[1]}]")
    if kind == "uniform" and not args[0][1] < args[1][1]:
        raise t.error("max", "must be > min")
    t.done()
    return Distribution(kind, args, bounds)


def _read_population(t, name: str) -> Population:
    model = _model(t, "model")
    info = models()["node_models"][model]
    n = t.param(POP_N)
    params = {}
    if t.has("params"):
        pt = t.table("params")
        for k in pt.keys():
            if k not in info["params"]:
                raise pt.error(k, f"NEST model {model!r} has no parameter {k!r}"
                               + _close(k, info["params"]))
            params[k] = _value(pt, k, info["params"][k])
    record = tuple(t.param(POP_RECORD) or ())
    sampled = [v for v in info["recordables"] if v in info["params"]]
    for v in record:
        if v not in sampled:
            raise t.error("record", f"NEST model {model!r} has no state variable {v!r} that "
                          "can be read at a window end; it has: " + (", ".join(sampled) or "none")
                          + _close(v, sampled))
    cells: tuple[int, ...] = (0,)
    if t.has("cells"):
        raw = t.any("cells")
        if (not isinstance(raw, list) or not raw
                or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n for c in raw)):
            raise t.error("cells", f"must be a non-empty array of integers in [0, {n}), got {raw!r}")
        cells = tuple(raw)
    t.done()
    return Population(name, model, n, params, record, cells)


def _population(t, key: str, known: dict) -> Population:
    p = t.param(SOURCE if key == "source" else TARGET)
    if p not in known:
        raise t.error(key, f"unknown population {p!r}; have {', '.join(known)}")
    return known[p]


def _synapse(t, decl: Param) -> str:
    s = t.param(decl)
    table = models()["synapse_models"]
    if s not in table:
        raise t.error(decl.name, f"unknown NEST synapse model {s!r}" + _close(s, table))
    return s


def _read_connection(t, name: str, known: dict) -> Connection:
    src = _population(t, "source", known)
    tgt = _population(t, "target", known)
    if models()["node_models"][tgt.model]["element_type"] != "neuron":
        raise t.error("target", f"population {tgt.name!r} ({tgt.model}) is not a neuron model")
    rule = t.param(RULE)
    if rule not in models()["connection_rules"]:
        raise t.error("rule", f"unknown NEST connection rule {rule!r}"
                      + _close(rule, models()["connection_rules"]))
    conn = {}
    if t.has("conn"):
        ct = t.table("conn")
        for k in ct.keys():
            if k not in CONN_KEYS:
                raise ct.error(k, "unknown connection-rule parameter" + _close(k, CONN_KEYS))
        for decl in CONN_PARAMS:
            if ct.has(decl.name):
                conn[decl.name] = ct.param(decl)
    synapse = _synapse(t, SYNAPSE)
    sparams = models()["synapse_models"][synapse]["params"]
    syn = {}
    if t.has("syn"):
        st = t.table("syn")
        for k in st.keys():
            if k not in sparams or k in ("weight", "delay"):
                raise st.error(k, f"NEST synapse model {synapse!r} has no parameter {k!r}"
                               + ("" if k in ("weight", "delay") else _close(k, sparams))
                               + ("; weight and delay are keys of the projection"
                                  if k in ("weight", "delay") else ""))
            syn[k] = _value(st, k, sparams[k])
    weight = _value(t, "weight", "number") if t.has("weight") else WEIGHT.default
    delay = _value(t, "delay", "number") if t.has("delay") else DELAY.default
    if isinstance(delay, float) and delay <= 0:
        raise t.error("delay", f"must be > 0 ms, got {delay:g}")
    c = Connection(name, src.name, tgt.name, rule, conn, synapse, weight, delay, syn)
    t.done()
    return c


def _read_input(t, name: str, known: dict) -> InputGroup:
    tgt = t.param(INPUT_TARGET)
    if tgt not in known:
        raise t.error("target", f"unknown population {tgt!r}; have {', '.join(known)}")
    if models()["node_models"][known[tgt].model]["element_type"] != "neuron":
        raise t.error("target", f"population {tgt!r} is not a neuron model")
    g = InputGroup(name, tgt, t.param(INPUT_WEIGHT), t.param(INPUT_DELAY),
                   _synapse(t, INPUT_SYNAPSE), t.param(INPUT_RECEPTOR), t.param(PER_CELL))
    t.done()
    return g


# -- the cache --------------------------------------------------------------------------------

#: Status keys that are read-only or kernel bookkeeping (not scenario parameters).
READ_ONLY = frozenset({
    "available", "capacity", "element_type", "elementsize", "global_id", "instantiations",
    "local", "model", "model_id", "node_uses_wfr", "recordables", "thread", "thread_local_id",
    "type_id", "vp", "archiver_length", "t_spike", "post_trace", "synaptic_elements",
    "has_delay", "num_connections", "requires_symmetric", "sizeof", "synapse_model",
    "synapse_modelid", "weight_recorder", "receptor_types", "frozen"})


def _kind(v) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return "string" if isinstance(v, str) else "array"


def model_list(nest) -> dict:
    """NEST's models, parameters and recordables as the cache stores them."""
    out = {"nest_version": nest.__version__, "connection_rules": sorted(nest.connection_rules),
           "node_models": {}, "synapse_models": {}}
    for m in nest.node_models:
        d = nest.GetDefaults(m)
        out["node_models"][m] = {
            "element_type": d["element_type"],
            "params": {k: _kind(v) for k, v in sorted(d.items())
                       if k not in READ_ONLY and not k.startswith("_")},
            "recordables": sorted(str(r) for r in d.get("recordables", []))}
    for m in nest.synapse_models:
        d = nest.GetDefaults(m)
        out["synapse_models"][m] = {"params": {k: _kind(v) for k, v in sorted(d.items())
                                               if k not in READ_ONLY}}
    return out


if __name__ == "__main__":      # python -m cosim.engines.nest_config --write-cache
    if sys.argv[1:] != ["--write-cache"]:
        sys.exit("usage: python -m cosim.engines.nest_config --write-cache")
    from .nest import import_nest
    CACHE.write_text(json.dumps(model_list(import_nest()), indent=0, sort_keys=True) + "\n")
