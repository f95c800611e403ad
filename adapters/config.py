"""``[adapters.<name>]`` sections of a scenario: the scale boundary of a spiking region.

Two types, both attached to a spiking engine that stands for one connectome region
(``[engines.<e>] region = "rV1"``): ``rate_to_poisson`` to an engine that takes its
region's drive and has input groups, ``spikes_to_rate`` to one that exports spikes
(see :mod:`cosim.engines.base`)::

    [adapters.v1_in]
    type = "rate_to_poisson"
    engine = "v1"            # the spiking engine it feeds
    input = "background"     # its [engines.v1.inputs.<group>]; every line gets a train
    gain = 20000.0           # Hz per unit of the region's delayed weighted input
                             #   s_R(t) = Σ_j w_Rj a_j(t − d_Rj) (a_j: afferent, see cosim.bus)
    offset = 5.0             # Hz, added before clipping at 0
    correlation = 0.0        # shared fraction of spikes between lines (0: independent)

    [adapters.v1_out]
    type = "spikes_to_rate"
    engine = "v1"
    populations = ["exc"]    # pooled rate of these cell populations (default: all)
    kernel = "exponential"   # none | exponential | alpha (causal smoothing)
    tau = 5.0                # ms
    [adapters.v1_out.map]    # Hz → the afferent units the neural masses use
    type = "linear"          # linear | sigmoid | inverse_sigmoid (see adapters.maps)
    gain = 0.001             # e.g. Jansen–Rit's sigmoidal coupling sends rates in 1/ms

The rate → Poisson rate per bus bin is ``max(0, gain · s_R + offset)``; the spikes → rate
output, sampled at the end of every bus bin, becomes region R's afferent on the bus.
"""

from __future__ import annotations

from dataclasses import dataclass

from cosim.engines.base import Export, Take
from cosim.params import REQUIRED, Param, section
from cosim.schema import Reader

from .maps import MAP, RateMap, map_from_config
from .spikes_to_rate import KERNELS

TYPES = ("rate_to_poisson", "spikes_to_rate")

TYPE = Param("type", REQUIRED, "", "adapter type", type="string", choices=TYPES)
ENGINE = Param("engine", REQUIRED, "", "the multicompartment engine it attaches to (one that "
               "stands for a connectome region)", type="string")
INPUT = Param("input", REQUIRED, "", "its [engines.<e>.inputs.<group>]; every line gets a "
              "Poisson train", type="string")
GAIN = Param("gain", 1.0, "Hz per input unit", "rate = max(0, gain s_R + offset), s_R the "
             "region's delayed weighted input")
OFFSET = Param("offset", 0.0, "Hz", "added before clipping at 0")
CORRELATION = Param("correlation", 0.0, "", "shared fraction of spikes between lines "
                    "(0: independent)", ge=0.0, le=1.0)
POPULATIONS = Param("populations", None, "", "pooled rate of these cell populations",
                    type="strings", derived="all")
KERNEL = Param("kernel", "exponential", "", "causal smoothing of the binned rate",
               type="string", choices=tuple(KERNELS))
TAU = Param("tau", 5.0, "ms", "time constant of the kernel", gt=0)

RATE_TO_POISSON = section("adapters.<name>", "type = \"rate_to_poisson\": the region's delayed "
                          "connectome input -> independent Poisson trains on an input group",
                          (TYPE, ENGINE, INPUT, GAIN, OFFSET, CORRELATION))
SPIKES_TO_RATE = section("adapters.<name>", "type = \"spikes_to_rate\": the region's spikes -> "
                         "a pooled rate, sampled every bus bin, the region's afferent on the bus",
                         (TYPE, ENGINE, POPULATIONS, KERNEL, TAU), (MAP,))
#: Declarations by adapter type.
ADAPTERS = {"rate_to_poisson": RATE_TO_POISSON, "spikes_to_rate": SPIKES_TO_RATE}


@dataclass(frozen=True)
class RateToPoissonSpec:
    name: str
    engine: str
    input: str
    gain: float
    offset: float
    correlation: float


@dataclass(frozen=True)
class SpikesToRateSpec:
    name: str
    engine: str
    populations: tuple[str, ...] | None
    kernel: str
    tau_ms: float
    map: RateMap


def adapters_from_config(r: Reader, engines: dict) -> dict:
    """Validate ``[adapters]``; returns name → spec.  ``engines``: name → engine object."""
    out: dict = {}
    outputs_of: dict[str, str] = {}
    driven: dict[tuple[str, str], str] = {}     # (engine, input group) → adapter
    for name in r.keys():
        ar = r.table(name)
        kind = ar.param(TYPE)
        engine = ar.param(ENGINE.with_(choices=tuple(sorted(engines))))
        eng = engines[engine]
        able = eng.takes is Take.DRIVE if kind == "rate_to_poisson" else eng.exports is Export.SPIKE_COUNTS
        if not able:
            what = ("take its region's drive" if kind == "rate_to_poisson"
                    else "export spikes")
            raise ar.error("engine", f"engine {engine!r} is a {eng.type_name} engine, which does "
                                     f"not {what}; a {kind} adapter attaches to a spiking engine")
        if not len(eng.region_indices):
            raise ar.error("engine", f"engine {engine!r} stands for no connectome region; set "
                                     f"engines.{engine}.region")
        if kind == "rate_to_poisson":
            group = ar.param(INPUT)
            if group not in eng.input_groups():
                raise ar.error("input", f"engine {engine!r} has no input group {group!r} "
                                        f"(has: {', '.join(eng.input_groups()) or 'none'})")
            if (engine, group) in driven:
                raise ar.error("input", f"input group {group!r} of engine {engine!r} is already "
                                        f"driven by adapter {driven[(engine, group)]!r}")
            driven[(engine, group)] = name
            spec = RateToPoissonSpec(name, engine, group, ar.param(GAIN), ar.param(OFFSET),
                                     ar.param(CORRELATION))
        else:
            pops = ar.param(POPULATIONS)
            for p in pops or ():
                if p not in eng.populations():
                    raise ar.error("populations", f"engine {engine!r} has no cell population "
                                                  f"{p!r} (has: {', '.join(eng.populations())})")
            if pops is not None and not pops:
                raise ar.error("populations", "must name at least one population")
            if engine in outputs_of:
                raise ar.error("engine", f"engine {engine!r} already has an output adapter "
                                         f"({outputs_of[engine]!r})")
            outputs_of[engine] = name
            kernel = ar.param(KERNEL)
            tau = ar.param(TAU)
            mr = ar.table("map", {})
            spec = SpikesToRateSpec(name, engine, None if pops is None else tuple(pops),
                                    kernel, tau, map_from_config(mr))
        ar.done()
        out[name] = spec
    return out
