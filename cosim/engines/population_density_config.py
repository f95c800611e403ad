"""Scenario side of the population-density engine: declarations, descriptions, reader.

The keys are documented in :mod:`cosim.engines.population_density`; :func:`engine_kwargs`
reads ``[engines.<name>]`` into the engine's constructor arguments, naming the key of any
bad value.  The neuron parameters are NEST's ``iaf_psc_delta`` names and units, so a NEST
counterpart of the same populations reads the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from adapters.maps import MAP, RateMap, map_from_config

from ..errors import CosimError
from ..params import REQUIRED, Param, section
from .spiking import read_region

#: Largest grid of one population (cells) and total (memory and time stay small).
MAX_CELLS = 1_000_000

DT = Param("dt", 0.1, "ms", "engine step: the bus and record resolution (coupled to neural "
           "masses: their dt)", gt=0)
SUBSTEPS = Param("substeps", 1, "", "backward-Euler steps of the density per engine step",
                 type="integer", ge=1, le=100_000)
DV = Param("dv", 0.05, "mV", "grid spacing of the membrane potential (the nearest spacing "
           "that divides V_th - V_reset is used)", gt=0)
WARMUP = Param("warmup", 0.0, "ms", "relax the densities for this long before t = 0 (bus drive "
               "0, constant and recurrent inputs on)", ge=0, le=1e7)
MASS_TOLERANCE = Param("mass_tolerance", 1e-9, "", "largest drift of a population's total "
                       "probability from 1 (checked every window)", gt=0, lt=1)
REGION = Param("region", None, "", "the connectome region this engine stands for (needed to "
               "be coupled through the bus)", type="string", derived="none")

N = Param("n", 1, "", "neurons the population stands for (weights the pooled output rate)",
          type="integer", ge=1)
TAU_M = Param("tau_m", 20.0, "ms", "membrane time constant", gt=0)
V_TH = Param("V_th", 20.0, "mV", "threshold (absorbing)")
V_RESET = Param("V_reset", 10.0, "mV", "reset potential (reinjection)")
E_L = Param("E_L", 0.0, "mV", "resting potential")
T_REF = Param("t_ref", 2.0, "ms", "refractory period (a whole multiple of dt / substeps, >= it)",
              gt=0)
I_E = Param("I_e", 0.0, "pA", "constant input current (mu0 = E_L + tau_m I_e / C_m)")
C_M = Param("C_m", 1.0, "pF", "capacitance", gt=0)
TAU_SYN = Param("tau_syn", 0.0, "ms", "first-order low-pass of the input moments mu and "
                "sigma^2 (synaptic filtering); 0: none (delta synapses)", ge=0)
V_MIN = Param("v_min", None, "mV", "lower end of the grid (reflecting)", derived="E_L - (V_th - "
              "E_L) - 10")
V_INIT = Param("v_init", None, "mV", "[lo, hi]: initial density uniform on [lo, hi]",
               type="numbers", derived="[V_reset, V_th]")
POPULATIONS = section("engines.<name>.populations.<pop>", "a population of LIF neurons "
                      "(NEST's iaf_psc_delta names and units), a density over V",
                      (N, TAU_M, V_TH, V_RESET, E_L, T_REF, I_E, C_M, TAU_SYN, V_MIN, V_INIT))

SOURCE = Param("source", REQUIRED, "", "presynaptic population", type="string")
TARGET = Param("target", REQUIRED, "", "postsynaptic population", type="string")
WEIGHT = Param("weight", REQUIRED, "mV", "jump of V per spike (current-based delta synapse; "
               "negative: inhibitory)")
INDEGREE = Param("indegree", REQUIRED, "", "synapses per target neuron", ge=0, lt=1e6)
DELAY = Param("delay", 1.0, "ms", "synaptic delay (a whole multiple of dt / substeps, >= it)",
              gt=0)
PROJECTIONS = section("engines.<name>.projections.<projection>", "recurrent input: the rate of "
                      "`source`, delayed, as Poisson input on `indegree` synapses",
                      (SOURCE, TARGET, WEIGHT, INDEGREE, DELAY))

INPUT_TARGET = TARGET.with_(doc="population receiving the input")
RATE = Param("rate", 0.0, "Hz", "rate per synapse (added to gain s_R, clipped at 0)")
GAIN = Param("gain", 0.0, "Hz per input unit", "rate per synapse per unit of the region's "
             "delayed weighted input s_R (the bus drive; rate_to_poisson's rule "
             "max(0, gain s_R + rate)); 0: a constant input")
INPUT_WEIGHT = WEIGHT.with_(gt=0, doc="jump of V per spike (current-based delta synapse); "
                            "external input is excitatory (constant inhibition: I_e < 0)")
INPUTS = section("engines.<name>.inputs.<group>", "external Poisson input of rate "
                 "max(0, gain s_R + rate) per synapse on `indegree` synapses per neuron",
                 (INPUT_TARGET, INPUT_WEIGHT, INDEGREE, RATE, GAIN))

OUT_POPULATIONS = Param("populations", None, "", "the pooled rate (weighted by n) of these "
                        "populations is the region's afferent", type="strings",
                        derived="the first population")
OUTPUT = section("engines.<name>.output", "what the region sends on the bus: the pooled rate "
                 "(Hz) through a map (as a spikes_to_rate adapter's)", (OUT_POPULATIONS,),
                 (section("engines.<name>.output.map", "the pooled rate (Hz) -> the afferent "
                          "units of the neural masses (as a spikes_to_rate adapter's map)",
                          MAP.params),))

SECTION = section("engines.<name>", "type = \"population_density\": LIF populations as "
                  "Fokker-Planck densities over V (cosim.engines.population_density)",
                  (REGION, DT, SUBSTEPS, DV, WARMUP, MASS_TOLERANCE),
                  (POPULATIONS, PROJECTIONS, INPUTS, OUTPUT))


@dataclass(frozen=True)
class Population:
    """One LIF population (NEST ``iaf_psc_delta`` names; mV, ms, pA, pF)."""

    name: str
    n: int = N.default
    tau_m: float = TAU_M.default
    V_th: float = V_TH.default
    V_reset: float = V_RESET.default
    E_L: float = E_L.default
    t_ref: float = T_REF.default
    I_e: float = I_E.default
    C_m: float = C_M.default
    tau_syn: float = TAU_SYN.default
    v_min: float | None = None
    v_init: tuple[float, float] | None = None

    @property
    def grid_min(self) -> float:
        return self.v_min if self.v_min is not None else 2 * self.E_L - self.V_th - 10.0


@dataclass(frozen=True)
class Projection:
    name: str
    source: str
    target: str
    weight: float
    indegree: float
    delay_ms: float = DELAY.default


@dataclass(frozen=True)
class Input:
    name: str
    target: str
    weight: float
    indegree: float
    rate_hz: float = RATE.default
    gain: float = GAIN.default


@dataclass(frozen=True)
class Output:
    populations: tuple[str, ...] = ()
    map: RateMap = field(default_factory=RateMap)


def engine_kwargs(name: str, reader, ctx) -> dict:
    """Read ``[engines.<name>]`` into the engine's keyword arguments."""
    r = reader
    kw = dict(dt_ms=r.param(DT), substeps=r.param(SUBSTEPS), dv_mv=r.param(DV),
              warmup_ms=r.param(WARMUP), mass_tolerance=r.param(MASS_TOLERANCE))
    kw["region_indices"] = read_region(r, ctx, REGION)
    pr = r.table("populations")
    if not pr.keys():
        raise pr.error(None, "declare at least one population, e.g. [engines.x.populations.E]")
    pops = [_population(pr.table(k), k) for k in pr.keys()]
    known = [p.name for p in pops]
    cr = r.table("projections", {})
    projs = [_projection(cr.table(k), k, known) for k in cr.keys()]
    ir = r.table("inputs", {})
    inputs = [_input(ir.table(k), k, known) for k in ir.keys()]
    orr = r.table("output", {})
    out_pops = orr.param(OUT_POPULATIONS)
    for p in out_pops or ():
        if p not in known:
            raise orr.error("populations", f"unknown population {p!r}; have {', '.join(known)}")
    if out_pops is not None and not out_pops:
        raise orr.error("populations", "must name at least one population")
    rmap = map_from_config(orr.table("map", {}))
    orr.done()
    r.done(allowed_extra=("type",))
    return dict(populations=pops, projections=projs, inputs=inputs,
                output=Output(tuple(out_pops or known[:1]), rmap),
                record_period_ms=ctx.record_period_ms, record_variables=ctx.record_variables,
                **kw)


def _population(t, name: str) -> Population:
    vals = {p.name: t.param(p) for p in POPULATIONS.params}
    if not vals["V_reset"] < vals["V_th"]:
        raise t.error("V_reset", f"must be < V_th = {vals['V_th']:g} mV, got {vals['V_reset']:g}")
    vmin = vals["v_min"]
    if vmin is not None and not vmin < vals["V_reset"]:
        raise t.error("v_min", f"must be < V_reset = {vals['V_reset']:g} mV, got {vmin:g}")
    init = vals["v_init"]
    if init is not None:
        lo_grid = vmin if vmin is not None else 2 * vals["E_L"] - vals["V_th"] - 10.0
        if len(init) != 2 or not lo_grid <= init[0] < init[1] <= vals["V_th"]:
            raise t.error("v_init", f"must be [lo, hi] with {lo_grid:g} <= lo < hi <= V_th = "
                          f"{vals['V_th']:g} mV, got {init}")
        init = (float(init[0]), float(init[1]))
    t.done()
    return Population(name, vals["n"], vals["tau_m"], vals["V_th"], vals["V_reset"], vals["E_L"],
                      vals["t_ref"], vals["I_e"], vals["C_m"], vals["tau_syn"], vmin, init)


def _pop_name(t, decl, known) -> str:
    p = t.param(decl)
    if p not in known:
        raise t.error(decl.name, f"unknown population {p!r}; have {', '.join(known)}")
    return p


def _projection(t, name: str, known) -> Projection:
    p = Projection(name, _pop_name(t, SOURCE, known), _pop_name(t, TARGET, known),
                   t.param(WEIGHT), t.param(INDEGREE), t.param(DELAY))
    t.done()
    return p


def _input(t, name: str, known) -> Input:
    g = Input(name, _pop_name(t, INPUT_TARGET, known), t.param(INPUT_WEIGHT), t.param(INDEGREE),
              t.param(RATE), t.param(GAIN))
    t.done()
    return g


def whole_steps(value_ms: float, step_ms: float, key: str, what: str,
                step_name: str = "the density step (dt / substeps)") -> int:
    """``value / step`` as a whole number ≥ 1, else a :class:`CosimError` at ``key``."""
    q = value_ms / step_ms
    k = round(q)
    if k < 1 or abs(q - k) > 1e-9 * max(1.0, q):
        raise CosimError(f"{what} {value_ms:g} ms is not a whole multiple (>= 1) of "
                         f"{step_name}, {step_ms:g} ms", key=key)
    return int(k)


def grid_cells(p: Population, dv_mv: float, key: str) -> tuple[int, float, int]:
    """``(n_cells, h, reset_cell)``: the spacing ``h`` nearest ``dv`` that divides
    ``V_th − V_reset``, the grid ``[V_th − n h, V_th]`` reaching down to ``v_min``, and the
    index of the cell just above the reset face."""
    m = max(1, int(round((p.V_th - p.V_reset) / dv_mv)))
    h = (p.V_th - p.V_reset) / m
    below = int(math.ceil((p.V_reset - p.grid_min) / h - 1e-9))
    n = m + max(below, 1)
    if n > MAX_CELLS:
        raise CosimError(f"population {p.name!r}: {n} grid cells (dv = {dv_mv:g} mV); at most "
                         f"{MAX_CELLS}", key=key)
    return n, h, n - m
