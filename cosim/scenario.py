"""Scenario files: one TOML file describes a whole co-simulation.

Units everywhere in a scenario: time in **ms**, length in **mm**, conduction speed in
**mm/ms** (= m/s), rates in **Hz**.  Paths to input data (connectome files) are relative to
the scenario file's folder; the output path is relative to the current directory.

Layout::

    [simulation]
    duration = 10000.0           # ms, > 0, a whole multiple of sync_interval
    sync_interval = 1.0          # ms, the exchange step Δ between engines; a whole multiple
                                 # of every engine's dt
    seed = 42                    # master seed (integer ≥ 0); every random stream derives from it
    output = "results/run.h5"    # HDF5 file written by `cosim run`
    checkpoint_every = 500.0     # ms (optional): save a checkpoint this often, for --resume
    exchange_timeout = 600.0     # s: a rank waiting this long for a partner ends the job
    startup_timeout = 600.0      # s: the same until the first window (engines being built)

    [connectome]
    source = "tvb:connectivity_76"   # or a TVB zip/folder, an .npz, or
                                     # {weights = "w.csv", tract_lengths = "l.csv", labels = "n.txt"}
    speed = 3.0                      # mm/ms: delay = tract length / speed (rounded to whole steps)
                                     # (every key's default, unit and bounds: docs/scenario.md)
    allow_disconnected = false       # true: accept regions of a user file without any
                                     # connection (refused by default: usually a data error)
    driven_self_connections = "keep" # "drop": leave out a spiking region's self-connection
                                     # (kept, it must be delayed by >= sync_interval)

    [engines.cortex]             # one table per engine; `type` selects the engine class,
    type = "neural_mass"         # the rest is validated by that class (see its docs)
    ...

    [adapters.<name>]            # scale-boundary converters: rate_to_poisson, spikes_to_rate
                                 # (see adapters.config)

    [stimuli.<name>]             # a temporal x spatial pattern on one engine (cosim.stimuli)

    [record]
    period = 1.0                 # ms, sample period of region time series
    flush_every = 100            # windows between writes to disk
    [record.cortex]
    variables = ["y0", "y1"]     # which state variables of engine `cortex` to store

:func:`load_scenario` validates everything once, at the edge, and raises
:class:`~cosim.errors.CosimError` (``file: key: problem``) on the first problem.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.config import adapters_from_config

from .connectome import Connectome, load_connectome
from .coupling_layout import coupling_layout
from .engines import engine_class, engine_types
from .engines.base import BuildContext, Take
from .errors import CosimError
from . import scenario_params as sp
from .monitor_config import monitors_from_config
from .monitor_params import RECORD_VARIABLES
from .schema import Reader
from .stimuli import bind_stimuli, read_stimuli

#: Relative tolerance when checking that one time step divides another.
_MULTIPLE_RTOL = 1e-9


@dataclass(frozen=True)
class SimulationSpec:
    """``[simulation]``: run length, exchange step, seed, output file."""

    duration_ms: float
    sync_interval_ms: float
    seed: int
    output: Path | None
    checkpoint_every_ms: float = sp.CHECKPOINT_EVERY.default
    exchange_timeout_s: float = sp.EXCHANGE_TIMEOUT.default
    startup_timeout_s: float = sp.STARTUP_TIMEOUT.default

    @property
    def n_windows(self) -> int:
        return int(round(self.duration_ms / self.sync_interval_ms))

    @property
    def checkpoint_every_windows(self) -> int:
        """Windows between checkpoints (0: no checkpoints)."""
        if not self.checkpoint_every_ms:
            return 0
        return int(round(self.checkpoint_every_ms / self.sync_interval_ms))


@dataclass(frozen=True)
class RecordSpecGlobal:
    """``[record]``: sampling period and flush cadence shared by all engines."""

    period_ms: float
    flush_every: int


@dataclass
class Scenario:
    """A validated scenario: everything needed to plan and run a simulation."""

    path: Path
    text: str
    simulation: SimulationSpec
    connectome: Connectome
    engines: dict[str, Any]            # name → engine description (built where it runs)
    record: RecordSpecGlobal
    adapters: dict[str, dict] = field(default_factory=dict)
    monitors: dict[str, Any] = field(default_factory=dict)   # name → EngineMonitors
    speed_mm_per_ms: float = sp.SPEED.default   # [connectome] speed
    stimuli: dict[str, Any] = field(default_factory=dict)    # name → StimulusRecord

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def engine_types(self) -> dict[str, str]:
        """Engine name → its type (the scenario's ``type``)."""
        return {n: e.type_name for n, e in self.engines.items()}


def whole_multiple(big: float, small: float) -> bool:
    """True if ``big / small`` is a whole number (within a relative 1e-9)."""
    q = big / small
    return abs(q - round(q)) <= _MULTIPLE_RTOL * max(1.0, abs(q)) and round(q) >= 1


def read_toml(path: str | Path) -> tuple[str, dict]:
    """Read and parse a TOML file; errors become :class:`CosimError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CosimError("no such file", file=str(p)) from None
    except IsADirectoryError:
        raise CosimError("is a directory, expected a scenario .toml file", file=str(p)) from None
    except UnicodeDecodeError:
        raise CosimError("not a UTF-8 text file", file=str(p)) from None
    except OSError as exc:
        raise CosimError(f"cannot read ({exc.strerror})", file=str(p)) from None
    too_deep = CosimError(f"invalid TOML: nested more than {MAX_TOML_DEPTH} levels deep "
                          "(arrays or inline tables)", file=str(p))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CosimError(f"invalid TOML: {exc}", file=str(p)) from None
    except RecursionError:          # the parser recurses once per level of nesting
        raise too_deep from None
    if _depth(data) > MAX_TOML_DEPTH:     # the reader and validation recurse too
        raise too_deep
    return text, data


MAX_TOML_DEPTH = 64       # levels of tables/arrays; real scenarios use fewer than 10


def _depth(value) -> int:
    """Nesting depth of parsed TOML (a scalar is 0), computed without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is None:
            continue
        deepest = max(deepest, d + 1)
        if deepest > MAX_TOML_DEPTH:
            break
        stack.extend((c, d + 1) for c in children)
    return deepest


def load_scenario(path: str | Path, *, output: str | Path | None = None) -> Scenario:
    """Load and validate the scenario at ``path``.

    ``output`` overrides ``[simulation] output``.  Engines are constructed (parameters
    checked) but not built; no kernel is compiled and nothing is written.
    """
    p = Path(path)
    text, data = read_toml(p)
    file = str(p)
    top = Reader(data, file)
    if "fit" in data and "simulation" not in data:
        raise top.error("fit", "a fit description, not a scenario: run it with `cosim fit "
                               f"{p.name}` (its base scenario is fit.scenario)")

    sim = _read_simulation(top.table("simulation"), output)
    conn_r = top.table("connectome")
    source = conn_r.param(sp.SOURCE)
    allow_disconnected = conn_r.param(sp.ALLOW_DISCONNECTED)
    connectome = load_connectome(source, base_dir=p.parent, file=file, key="connectome.source",
                                 allow_disconnected=allow_disconnected)
    speed = conn_r.param(sp.SPEED)
    driven_self = conn_r.param(sp.DRIVEN_SELF)
    conn_r.done()

    record_r = top.table("record", {})
    period = record_r.param(sp.RECORD_PERIOD)
    flush_every = record_r.param(sp.FLUSH_EVERY)

    engines_r = top.table("engines")
    if not engines_r.keys():
        raise engines_r.error(None, "no engines declared; add e.g. [engines.cortex] with type = \"neural_mass\"")
    engines: dict[str, Any] = {}
    monitors: dict[str, Any] = {}
    owner: dict[int, str] = {}
    # engines taking the regions "rest" are built last, whatever their place in the file
    names = engines_r.keys()
    rest = [n for n in names if isinstance(engines_r.raw[n], dict)
            and engines_r.raw[n].get("regions") == "rest"]
    for name in [n for n in names if n not in rest] + rest:
        er = engines_r.table(name)
        for k in ("stimulus", "stimuli"):
            if er.has(k):
                raise er.error(k, f"a stimulus is a table of its own: [stimuli.<name>] with "
                                  f"engine = \"{name}\" (cosim describe stimulus)")
        type_name = er.string("type", choices=list(engine_types()))
        rec_vars, rr = None, None
        if record_r.has(name):
            rr = record_r.table(name)
            rec_vars = rr.param(RECORD_VARIABLES)
        ctx = BuildContext(file=file, connectome=connectome, seed=sim.seed,
                           duration_ms=sim.duration_ms, sync_interval_ms=sim.sync_interval_ms,
                           record_period_ms=period, record_variables=rec_vars,
                           claimed_regions=frozenset(owner), speed_mm_per_ms=speed)
        engine = _engine_type(type_name, er).from_config(name, er, ctx)
        er.done()
        if sim.checkpoint_every_ms and not engine.can_checkpoint:
            raise CosimError(f"engine {name!r} ({type_name}) cannot save its state; remove "
                             f"simulation.checkpoint_every", file=file,
                             key="simulation.checkpoint_every")
        _check_dt(engine, name, sim, period, file)
        monitors[name] = monitors_from_config(rr, name, engine.record_specs(),
                                              region_labels=connectome.region_labels,
                                              engine_object=engine)
        if rr is not None:
            rr.done()
        region_key = f"engines.{name}." + ("region" if er.has("region") else "regions")
        for r in engine.region_indices.tolist():
            if r in owner:
                raise CosimError(f"region {connectome.region_labels[r]!r} is already simulated by "
                                 f"engine {owner[r]!r}", file=file, key=region_key)
            owner[r] = name
        engines[name] = engine
    engines = {n: engines[n] for n in names}          # declaration order (the plan's order)
    engines_r.done()
    record_r.done(allowed_extra=engines.keys())

    adapters: dict[str, Any] = {}
    if top.has("adapters"):
        adapters = adapters_from_config(top.table("adapters"), engines)
    stimuli = bind_stimuli(read_stimuli(top.table("stimuli", {}), p.parent), engines)
    top.done()
    if driven_self == "drop":
        connectome = _drop_driven_self(connectome, engines)
    scenario = Scenario(p, text, sim, connectome, engines,
                        RecordSpecGlobal(period, flush_every), adapters, monitors, speed,
                        stimuli)
    try:
        coupling_layout(scenario)   # bus resolution and causality of cross-engine delays
    except CosimError as exc:
        raise exc.at(file=file) from None
    return scenario


def _drop_driven_self(connectome: Connectome, engines: dict[str, Any]) -> Connectome:
    """``driven_self_connections = "drop"``: the connectome without the self-connections of
    the regions whose engine takes drive from the bus (their own network stands for them;
    see :func:`cosim.bus.check_driven_self_delays`).  The engines were built from the full
    connectome; none of them reads a driven region's self-connection but the bus."""
    regions = [int(r) for e in engines.values() if e.takes is Take.DRIVE
               for r in e.region_indices]
    if not regions:
        return connectome
    w = np.array(connectome.weights, dtype=np.float64)
    w[regions, regions] = 0.0
    return dataclasses.replace(connectome, weights=w)


def _engine_type(type_name: str, reader: Reader):
    """The registered class of ``type_name``; a broken plug-in is a one-line error."""
    try:
        return engine_class(type_name)
    except (ImportError, AttributeError, TypeError) as exc:
        raise reader.error("type", f"engine type {type_name!r} cannot be loaded "
                                   f"({type(exc).__name__}: {exc})") from None


def _read_simulation(r: Reader, output_override) -> SimulationSpec:
    duration = r.param(sp.DURATION)
    sync = r.param(sp.SYNC_INTERVAL)
    seed = r.param(sp.SEED)
    out = r.param(sp.OUTPUT)
    checkpoint = r.param(sp.CHECKPOINT_EVERY)
    timeout = r.param(sp.EXCHANGE_TIMEOUT)
    startup = r.param(sp.STARTUP_TIMEOUT)
    r.done()
    if checkpoint and not whole_multiple(checkpoint, sync):
        raise r.error("checkpoint_every", f"{checkpoint:g} ms is not a whole multiple of "
                                          f"simulation.sync_interval = {sync:g} ms")
    if not whole_multiple(duration, sync):
        raise r.error("duration", f"{duration:g} ms is not a whole multiple of "
                                  f"simulation.sync_interval = {sync:g} ms")
    if output_override is not None:
        output = Path(output_override)
    elif out is not None:
        if not out.strip():
            raise r.error("output", "must not be empty")
        output = Path(out)
    else:
        output = None
    return SimulationSpec(duration, sync, seed, output, checkpoint, timeout, startup)


def _check_dt(engine, name: str, sim: SimulationSpec, period_ms: float, file: str) -> None:
    dt = float(engine.dt_ms)
    if not math.isfinite(dt) or dt <= 0:
        raise CosimError(f"must be > 0, got {dt:g}", file=file, key=f"engines.{name}.dt")
    if not whole_multiple(sim.sync_interval_ms, dt):
        raise CosimError(f"{sim.sync_interval_ms:g} ms is not a whole multiple of "
                         f"engines.{name}.dt = {dt:g} ms", file=file, key="simulation.sync_interval")
    if not whole_multiple(period_ms, dt):
        raise CosimError(f"{period_ms:g} ms is not a whole multiple of engines.{name}.dt = "
                         f"{dt:g} ms", file=file, key="record.period")
