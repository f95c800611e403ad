"""Declarations of the scenario's framework tables: ``[simulation]``, ``[connectome]``,
``[record]`` (engine, monitor and adapter tables are declared by their own modules).

:mod:`cosim.scenario` reads these keys through :meth:`cosim.schema.Reader.param`; the
conduction speed :data:`SPEED` is the one declaration every engine and the bus default to.
"""

from __future__ import annotations

from .params import REQUIRED, Param, section

#: Longest run a scenario may ask for (ms): beyond it a typo (1e308) would "run forever".
MAX_DURATION_MS = 1e9

DURATION = Param("duration", REQUIRED, "ms", "simulated time; a whole multiple of "
                 "sync_interval", gt=0, le=MAX_DURATION_MS)
SYNC_INTERVAL = Param("sync_interval", REQUIRED, "ms", "exchange step between engines; a "
                      "whole multiple of every engine's dt, at most the shortest delay "
                      "between engines", gt=0)
SEED = Param("seed", 0, "", "master seed; every random stream derives from it",
             type="integer", ge=0, le=2**63 - 1)
OUTPUT = Param("output", None, "", "HDF5 file written by `cosim run` (relative to the "
               "current directory)", type="string", derived="results/<scenario>.h5")
CHECKPOINT_EVERY = Param("checkpoint_every", 0.0, "ms", "save a checkpoint this often, for "
                         "`cosim run --resume` (0: never); a whole multiple of sync_interval",
                         ge=0)
EXCHANGE_TIMEOUT = Param("exchange_timeout", 600.0, "s", "a rank waiting this long for a "
                         "partner ends the job", gt=0)

STARTUP_TIMEOUT = Param("startup_timeout", 600.0, "s", "until its first window, a rank may "
                        "take this long (building its engine: compiling kernels, starting a "
                        "peer simulator) before its partners give up on it", gt=0)

SIMULATION = section("simulation", "run length, exchange step, seed and output file",
                     (DURATION, SYNC_INTERVAL, SEED, OUTPUT, CHECKPOINT_EVERY, EXCHANGE_TIMEOUT,
                      STARTUP_TIMEOUT))

SOURCE = Param("source", REQUIRED, "", "\"tvb:connectivity_76\", a TVB zip/folder, an .npz, "
               "or a table {weights = \"w.csv\", tract_lengths = \"l.csv\", labels = \"n.txt\"} "
               "(paths relative to the scenario file)", type="any")
SPEED = Param("speed", 3.0, "mm/ms", "conduction speed of every fibre (TVB's default); "
              "delay = tract length / speed, rounded to whole steps", gt=0)
ALLOW_DISCONNECTED = Param("allow_disconnected", False, "", "accept regions of a user file "
                           "without any connection (refused by default: usually a data "
                           "error)", type="boolean")

DRIVEN_SELF = Param("driven_self_connections", "keep", "", "a region whose engine takes its "
                    "drive from the bus (a spiking region) reads its own self-connection only "
                    "if it is delayed by at least the sync interval, else the scenario is "
                    "refused; \"drop\" leaves such regions' self-connections out (the "
                    "engine's own network stands for the region's recurrence)",
                    type="string", choices=("keep", "drop"))

CONNECTOME = section("connectome", "structural connectivity: weights, tract lengths, labels",
                     (SOURCE, SPEED, ALLOW_DISCONNECTED, DRIVEN_SELF))

RECORD_PERIOD = Param("period", 1.0, "ms", "sample period of region time series; a whole "
                      "multiple of every engine's dt", gt=0)
FLUSH_EVERY = Param("flush_every", 100, "", "windows between writes to disk",
                    type="integer", ge=1)

RECORD = section("record", "what is stored: sample period, flush cadence; one "
                 "[record.<engine>] table per engine (see the monitors)",
                 (RECORD_PERIOD, FLUSH_EVERY))
