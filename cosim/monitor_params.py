"""Declarations of the ``[record.<engine>]`` tables: the monitors' keys, defaults, units.

:mod:`cosim.monitor_config` reads them (``reader.param(BOLD_TR)``), the monitor classes of
:mod:`cosim.monitors` take their constructor defaults from them, and ``cosim describe
monitor NAME`` / ``docs/scenario.md`` print them.
"""

from __future__ import annotations

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
BOLD_STEP = Param("step", 10.0, "ms", "integration step (input averaged over it; 0: every "
                  "sample)", ge=0)
BOLD = section("record.<engine>.bold", "Balloon-Windkessel BOLD signal (% change) per region "
               "(cosim.analysis.hemodynamics)",
               (BOLD_TR, BOLD_INPUT, BOLD_SCALE, BOLD_OFFSET, BOLD_PRESET, BOLD_STEP))

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

#: Monitors by table name (``[record.<engine>.<name>]``).
MONITORS = {"average": AVERAGE, "subsample": SUBSAMPLE, "bold": BOLD, "eeg": EEG, "rate": RATE}

RECORD_ENGINE = section("record.<engine>", "what is recorded of one engine, and its monitors",
                        (RECORD_VARIABLES, RAW, SOURCE), tuple(MONITORS.values()))
