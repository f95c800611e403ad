"""Declarations of the ``[record.<engine>]`` tables: the monitors' keys, defaults, units.

:mod:`cosim.monitor_config` reads them (``reader.param(BOLD_TR)``), the monitor classes of
:mod:`cosim.monitors` take their constructor defaults from them, and ``cosim describe
monitor NAME`` / ``docs/scenario.md`` print them.
"""

from __future__ import annotations

from .analysis.hrf import KERNELS
from .models import MODELS
from .params import REQUIRED, Param, section

#: Rate transfers a scenario may name: "variable" plus every model's own rate observable
#: that is a function (``Observable.transfer``, e.g. "jansen_rit").
TRANSFERS = {obs.transfer: obs for m in MODELS.values()
             if (obs := m.observables.get("rate")) is not None and obs.fn is not None}
TRANSFER_NAMES = tuple(sorted(TRANSFERS)) + ("variable",)

RECORD_VARIABLES = Param("variables", None, "", "state variables the engine samples every "
                         "[record] period", type="strings", derived="all of them")
RAW = Param("raw", True, "", "store the engine's samples too (false: only the monitors')",
            type="boolean")
SOURCE = Param("source", None, "", "dataset the monitors read", type="string",
               derived="the engine's first time series")

PERIOD = Param("period", REQUIRED, "ms", "output period; a whole multiple of [record] period",
               gt=0)
VARIABLES = Param("variables", None, "", "subset of the recorded variables", type="strings",
                  derived="all recorded")
AVERAGE = section("record.<engine>.average", "temporal average of the recorded variables",
                  (PERIOD, VARIABLES))
SUBSAMPLE = section("record.<engine>.subsample", "every k-th sample of the recorded variables",
                    (PERIOD, VARIABLES))

BOLD_TR = Param("tr", 2000.0, "ms", "repetition time: one BOLD sample per tr; a whole "
                "multiple of [record] period (of the rate bin for a spiking engine)", gt=0)
BOLD_INPUT = Param("input", "rate", "", "\"rate\": the region firing rate ([record.<engine>."
                   "rate]'s transfer, else the model's rate observable); or a recorded variable",
                   type="string")
BOLD_SCALE = Param("scale", 1.0, "1/s per input unit", "z = scale (input - offset)")
BOLD_OFFSET = Param("offset", 0.0, "input unit", "subtracted from the input")
BOLD_PRESET = Param("preset", "stephan2007", "", "Balloon-Windkessel constants",
                    type="string", choices=("stephan2007", "friston2000"))
BOLD_STEP = Param("step", 10.0, "ms", "Balloon: integration step (input averaged over it; 0: "
                  "every sample); with a kernel (hrf): the block the input is averaged over, default "
                  "4 ms (TVB's)",
                  ge=0, derived="")
BOLD_HRF = Param("hrf", "balloon", "", "\"balloon\": the Balloon-Windkessel ODE; or a "
                 "haemodynamic kernel convolved with the input (TVB's Bold monitor, "
                 "cosim.analysis.hrf)", type="string", choices=("balloon", *KERNELS))
#: Step of the kernel BOLD when the scenario does not set one (TVB's 4 ms).
BOLD_KERNEL_STEP = 4.0
BOLD_LENGTH = Param("length", 20000.0, "ms", "kernel BOLD: duration of the kernel (TVB's "
                    "hrf_length)", gt=0)


def _kernel_params():
    """Each kernel parameter once (read only when set; the doc gives each kernel's default)."""
    out: dict[str, Param] = {}
    for name, k in KERNELS.items():
        for p in k.parameters:
            prev = out.get(p.name)
            note = f"hrf = \"{name}\": {p.default:g}"
            out[p.name] = (p.with_(default=None, doc=f"{p.doc} ({note})") if prev is None
                           else prev.with_(doc=prev.doc[:-1] + f"; {note})"))
    return tuple(out.values())


BOLD_KERNEL_PARAMS = _kernel_params()
BOLD = section("record.<engine>.bold", "BOLD signal per region: Balloon-Windkessel (% change, "
               "cosim.analysis.hemodynamics) or a TVB haemodynamic kernel (hrf = ...)",
               (BOLD_TR, BOLD_INPUT, BOLD_SCALE, BOLD_OFFSET, BOLD_PRESET, BOLD_STEP, BOLD_HRF,
                BOLD_LENGTH, *BOLD_KERNEL_PARAMS))

EEG_VARIABLE = Param("variable", None, "", "recorded variable of the EEG source",
                     type="string", derived="the model's EEG observable (jansen_rit: y1)")
EEG_SUBTRACT = Param("subtract", None, "", "variable subtracted from it (\"\": none)",
                     type="string", derived="the model's EEG observable (jansen_rit: y2)")
EEG_PERIOD = Param("period", None, "ms", "block average over this period", gt=0,
                   derived="every sample")
EEG_LEADFIELD = Param("leadfield", None, "", "(sensor, region) matrix file: .npy, .npz, .csv, "
                      ".txt; columns = the engine's regions or all connectome regions",
                      type="string", derived="no projection")
EEG_SENSORS = Param("sensors", None, "", "sensor names (an array, or a .txt file, one per "
                    "line)", type="any", derived="sensor0, sensor1, ...")
EEG_UNIT = Param("unit", None, "", "unit of the projected signal", type="string",
                 derived="the signal's unit (a.u. with a lead field)")
EEG = section("record.<engine>.eeg", "EEG-like signal: the model's EEG observable, optionally "
              "projected through a lead field",
              (EEG_VARIABLE, EEG_SUBTRACT, EEG_PERIOD, EEG_LEADFIELD, EEG_SENSORS, EEG_UNIT))

RATE_TRANSFER = Param("transfer", None, "", "firing-rate transfer of a neural mass",
                      type="string", choices=TRANSFER_NAMES, derived="the model's rate observable")
RATE_VARIABLE = Param("variable", None, "", "the variable taken as the rate (transfer = "
                      "\"variable\")", type="string", derived="the model's rate observable")
RATE_SCALE = Param("scale", 1.0, "", "factor on the variable (transfer = \"variable\")")
RATE_UNIT = Param("unit", None, "", "unit of the scaled variable", type="string",
                  derived="the variable's unit")
RATE_PERIOD = Param("period", None, "ms", "block average over this period", gt=0,
                    derived="every sample")
#: Parameters of the named transfers, read only when the scenario sets them.
TRANSFER_PARAMS = tuple(p.with_(default=None, doc=f"{p.doc} (transfer = \"{name}\")")
                        for name, obs in sorted(TRANSFERS.items()) for p in obs.parameters)
RATE_BIN = Param("bin", REQUIRED, "ms", "spiking engine: bin of the population rates (one "
                 "variable per cell group)", gt=0)
RATE_NEURONS = Param("neurons", None, "", "spiking engine: population sizes (an integer or "
                     "{population = N}) when the engine does not declare them", type="any",
                     derived="the engine's cell groups")
RATE = section("record.<engine>.rate", "firing rate: of a neural mass through its transfer "
               "function, of a spiking engine from its spikes",
               (RATE_TRANSFER, *TRANSFER_PARAMS, RATE_VARIABLE, RATE_SCALE, RATE_UNIT,
                RATE_PERIOD, RATE_BIN, RATE_NEURONS))

# -- MEG and SEEG (cosim.sensors) -------------------------------------------------------
SOURCE_VARIABLE = EEG_VARIABLE.with_(doc="recorded variable of the source signal")
SOURCE_SUBTRACT = EEG_SUBTRACT
PROJ_PERIOD = EEG_PERIOD
PROJ_REGION_MAPPING = Param("region_mapping", None, "", "vertex -> region file (one integer "
                            "per vertex, regions of the connectome); \"tvb:<file>\" for "
                            "tvb-data", type="string",
                            derived="tvb:regionMapping_16k_76.txt (or _192) when the "
                                    "connectome is tvb-data's connectivity_76 (192)")
PROJ_UNIT = Param("unit", None, "", "unit of the projected signal", type="string",
                  derived="a.u.")
MEG_SENSORS = Param("sensors", "tvb:meg_brainstorm_276.txt", "", "TVB sensors file (label x "
                    "y z ox oy oz per line, mm)", type="string")
MEG_PROJECTION = Param("projection", "tvb:projection_meg_276_surface_16k.npy", "",
                       "(sensor, vertex) lead field of the surface (.npy, .npz, .mat, text)",
                       type="string")
MEG = section("record.<engine>.meg", "MEG: the source signal projected through a region lead "
              "field, the sum of the vertex columns of each region (cosim.sensors)",
              (SOURCE_VARIABLE, SOURCE_SUBTRACT, PROJ_PERIOD, MEG_SENSORS, MEG_PROJECTION,
               PROJ_REGION_MAPPING, PROJ_UNIT))
SEEG_SENSORS = Param("sensors", "tvb:seeg_588.txt", "", "TVB sensors file (label x y z per "
                     "line, mm)", type="string")
SEEG_PROJECTION = Param("projection", None, "", "(sensor, vertex) lead field file",
                        type="string", derived="point dipoles of the surface in a homogeneous "
                                               "conductor (TVB's iEEG.analytic)")
SEEG_SURFACE = Param("surface", "tvb:cortex_16384.zip", "", "cortical surface (TVB zip with "
                     "vertices.txt, vertex_normals.txt; mm) of the analytic lead field",
                     type="string")
SEEG_SIGMA = Param("sigma", 1.0, "S/m", "conductivity of the analytic lead field", gt=0)
SEEG = section("record.<engine>.seeg", "SEEG (stereo-EEG contacts): the source signal "
               "projected through a region lead field (cosim.sensors)",
               (SOURCE_VARIABLE, SOURCE_SUBTRACT, PROJ_PERIOD, SEEG_SENSORS, SEEG_PROJECTION,
                SEEG_SURFACE, SEEG_SIGMA, PROJ_REGION_MAPPING, PROJ_UNIT))

# -- averages over regions, expressions, afferent coupling (cosim.monitors_tvb) ----------
SAMPLE_PERIOD = Param("period", None, "ms", "sample every period (TVB: point values); a whole "
                      "multiple of [record] period", gt=0, derived="every sample")
GLOBAL_AVERAGE = section("record.<engine>.global_average", "mean over all the engine's "
                         "regions (TVB's GlobalAverage)", (VARIABLES, SAMPLE_PERIOD))
SPATIAL_GROUPS = Param("groups", None, "", "region groups: {name = [\"label\", ...], ...}",
                       type="table", derived="from mapping")
SPATIAL_MAPPING = Param("mapping", None, "", "group index (0, 1, ... contiguous) of each "
                        "region of the engine (or of the connectome), an array or a text "
                        "file (TVB's spatial_mask)", type="any", derived="from groups")
SPATIAL_NAMES = Param("names", None, "", "names of the mapping's groups", type="strings",
                      derived="group0, group1, ...")
SPATIAL_AVERAGE = section("record.<engine>.spatial_average", "mean over groups of regions "
                          "(TVB's SpatialAverage); give groups or mapping",
                          (SPATIAL_GROUPS, SPATIAL_MAPPING, SPATIAL_NAMES, VARIABLES,
                           SAMPLE_PERIOD))
EXPRESSION = Param("expression", REQUIRED, "", "an expression of the recorded variables "
                   "(\"y1 - y2\"), or a table {name = \"expression\", ...}: names, numbers, "
                   "+ - * / ** %, comparisons, x if c else y, and numpy functions (exp, log, "
                   "sqrt, tanh, sin, abs, minimum, ...)", type="any")
EXPRESSION_NAME = Param("name", None, "", "name of the output variable (a single expression)",
                        type="string", derived="the expression text")
EXPRESSION_UNIT = Param("unit", None, "", "unit of the output", type="string", derived="a.u.")
EXPRESSION_SECTION = section("record.<engine>.expression", "expressions of the recorded "
                             "variables, evaluated safely (cosim.expression)",
                             (EXPRESSION, EXPRESSION_NAME, EXPRESSION_UNIT,
                              EEG_PERIOD.with_(doc="block average over this period")))
AFFERENT_VARIABLES = Param("variables", None, "", "subset of the coupling inputs (c_<coupling "
                           "variable>)", type="strings", derived="all")
AFFERENT_PERIOD = Param("period", None, "ms", "block average over this period (TVB's "
                        "AfferentCouplingTemporalAverage)", gt=0, derived="every sample")
AFFERENT_COUPLING = section("record.<engine>.afferent_coupling", "the long-range coupling "
                            "input each region receives, sampled with the state (TVB's "
                            "AfferentCoupling; neural-mass engines)",
                            (AFFERENT_VARIABLES, AFFERENT_PERIOD))

#: Monitors by table name (``[record.<engine>.<name>]``).
MONITORS = {"average": AVERAGE, "subsample": SUBSAMPLE, "bold": BOLD, "eeg": EEG, "rate": RATE,
            "meg": MEG, "seeg": SEEG, "global_average": GLOBAL_AVERAGE,
            "spatial_average": SPATIAL_AVERAGE, "expression": EXPRESSION_SECTION,
            "afferent_coupling": AFFERENT_COUPLING}

RECORD_ENGINE = section("record.<engine>", "what is recorded of one engine, and its monitors",
                        (RECORD_VARIABLES, RAW, SOURCE), tuple(MONITORS.values()))

#: TVB's monitors and cosim's ``[record.<engine>.<table>]`` (docs/tvb.md is generated from it).
TVB_MONITORS = (
    ("Raw", "(the engine's record, [record] period = dt)",
     "time axis starts at dt, TVB's at horizon * dt"),
    ("SubSample", "subsample", "same samples"),
    ("TemporalAverage", "average", "cosim stamps a mean at the end of its period, TVB at "
     "the middle"),
    ("GlobalAverage", "global_average", "`period` samples like TVB"),
    ("SpatialAverage(spatial_mask)", "spatial_average (`mapping` = spatial_mask, or `groups` "
     "by region names)", "`period` samples like TVB"),
    ("AfferentCoupling", "afferent_coupling", "without external input; tested with "
     "coupling_evaluation = \"step\""),
    ("AfferentCouplingTemporalAverage", "afferent_coupling with `period`", ""),
    ("EEG.from_file()", "eeg with `leadfield` = (sensor, region) file", "no `reference` "
     "subtraction, no obsnoise"),
    ("MEG.from_file()", "meg (defaults: tvb-data's files)", "region gain = sum of vertex "
     "columns (TVB's rule); channels without a lead field dropped; no obsnoise"),
    ("iEEG.from_file()", "seeg (defaults: seeg_588.txt, analytic gain of cortex_16384)",
     "tvb-data has no SEEG projection: TVB's iEEG.analytic on the surface; no obsnoise"),
    ("Bold(hrf_kernel=FirstOrderVolterra())", "bold with hrf = \"first_order_volterra\"",
     "also gamma, double_exponential, mixture_of_gammas; default hrf is the "
     "Balloon-Windkessel ODE"),
    ("(none: a derived signal such as y1 - y2)", "expression (`\"y1 - y2\"`)",
     "safe evaluation: names, numbers, arithmetic, comparisons, numpy functions"),
)


def tvb_markdown() -> list[str]:
    """The monitors section of docs/tvb.md."""
    out = ["\n## Monitors\n", "| TVB monitor | cosim `[record.<engine>.…]` | notes |",
           "|---|---|---|"]
    out += [f"| `{t}` | {c} | {n or '-'} |" for t, c, n in TVB_MONITORS]
    out.append("\nTVB's projection monitors add observation noise (`obsnoise`, on by "
               "default); cosim's do not (add noise in analysis if wanted).")
    return out
