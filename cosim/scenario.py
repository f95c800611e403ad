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

    [connectome]
    source = "tvb:connectivity_76"   # or a TVB zip/folder, an .npz, or
                                     # {weights = "w.csv", tract_lengths = "l.csv", labels = "n.txt"}
    speed = 3.0                      # mm/ms: delay = tract length / speed (rounded to whole steps)
    allow_disconnected = false       # true: accept regions of a user file without any
                                     # connection (refused by default: usually a data error)

    [engines.cortex]             # one table per engine; `type` selects the engine class,
    type = "neural_mass"         # the rest is validated by that class (see its docs)
    ...

    [adapters.<name>]            # scale-boundary converters: rate_to_poisson, spikes_to_rate
                                 # (see adapters.config)

    [record]
    period = 1.0                 # ms, sample period of region time series
    flush_every = 100            # windows between writes to disk
    [record.cortex]
    variables = ["y0", "y1"]     # which state variables of engine `cortex` to store

:func:`load_scenario` validates everything once, at the edge, and raises
:class:`~cosim.errors.CosimError` (``file: key: problem``) on the first problem.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.config import adapters_from_config

from .connectome import Connectome, load_connectome
from .coupling_layout import coupling_layout
from .engines import ENGINE_TYPES, engine_class
from .engines.base import BuildContext
from .errors import CosimError
from .monitor_config import monitors_from_config
from .schema import Reader

#: Relative tolerance when checking that one time step divides another.
_MULTIPLE_RTOL = 1e-9


@dataclass(frozen=True)
class SimulationSpec:
    """``[simulation]``: run length, exchange step, seed, output file."""

    duration_ms: float
    sync_interval_ms: float
    seed: int
    output: Path | None
    checkpoint_every_ms: float = 0.0
    exchange_timeout_s: float = 600.0

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
    engines: dict[str, Any]            # name → engine object (not yet built)
    engine_types: dict[str, str]       # name → scenario `type`
    record: RecordSpecGlobal
    adapters: dict[str, dict] = field(default_factory=dict)
    monitors: dict[str, Any] = field(default_factory=dict)   # name → EngineMonitors
    speed_mm_per_ms: float = 3.0       # [connectome] speed: conduction speed of every fibre

    @property
    def name(self) -> str:
        return self.path.name


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

    sim = _read_simulation(top.table("simulation"), output)
    conn_r = top.table("connectome")
    source = conn_r.any("source")
    allow_disconnected = conn_r.boolean("allow_disconnected", False)
    connectome = load_connectome(source, base_dir=p.parent, file=file, key="connectome.source",
                                 allow_disconnected=allow_disconnected)
    speed = conn_r.number("speed", 3.0, gt=0, unit="mm/ms")
    conn_r.done()

    record_r = top.table("record", {})
    period = record_r.number("period", 1.0, gt=0, unit="ms")
    flush_every = record_r.integer("flush_every", 100, ge=1)

    engines_r = top.table("engines")
    if not engines_r.keys():
        raise engines_r.error(None, "no engines declared; add e.g. [engines.cortex] with type = \"neural_mass\"")
    engines: dict[str, Any] = {}
    types: dict[str, str] = {}
    monitors: dict[str, Any] = {}
    owner: dict[int, str] = {}
    # engines taking the regions "rest" are built last, whatever their place in the file
    names = engines_r.keys()
    rest = [n for n in names if isinstance(engines_r.raw[n], dict)
            and engines_r.raw[n].get("regions") == "rest"]
    for name in [n for n in names if n not in rest] + rest:
        er = engines_r.table(name)
        type_name = er.string("type", choices=sorted(ENGINE_TYPES))
        rec_vars, rr = None, None
        if record_r.has(name):
            rr = record_r.table(name)
            rec_vars = rr.string_list("variables", None)
        ctx = BuildContext(file=file, connectome=connectome, seed=sim.seed,
                           duration_ms=sim.duration_ms, sync_interval_ms=sim.sync_interval_ms,
                           record_period_ms=period, record_variables=rec_vars,
                           claimed_regions=frozenset(owner), speed_mm_per_ms=speed)
        engine = engine_class(type_name).from_config(name, er, ctx)
        er.done()
        _check_dt(engine, name, sim, period, file)
        monitors[name] = monitors_from_config(rr, name, engine.record_specs(),
                                              region_labels=connectome.region_labels,
                                              engine_object=engine)
        if rr is not None:
            rr.done()
        region_key = f"engines.{name}." + ("region" if er.has("region") else "regions")
        for r in getattr(engine, "region_indices", ()):
            if r in owner:
                raise CosimError(f"region {connectome.region_labels[r]!r} is already simulated by "
                                 f"engine {owner[r]!r}", file=file, key=region_key)
            owner[r] = name
        engines[name] = engine
        types[name] = type_name
    engines = {n: engines[n] for n in names}          # declaration order (the plan's order)
    types = {n: types[n] for n in names}
    engines_r.done()
    record_r.done(allowed_extra=engines.keys())

    adapters: dict[str, Any] = {}
    if top.has("adapters"):
        adapters = adapters_from_config(top.table("adapters"), engines, types)
    top.done()
    scenario = Scenario(p, text, sim, connectome, engines, types,
                        RecordSpecGlobal(period, flush_every), adapters, monitors, speed)
    try:
        coupling_layout(scenario)   # bus resolution and causality of cross-engine delays
    except CosimError as exc:
        raise exc.at(file=file) from None
    return scenario


def _read_simulation(r: Reader, output_override) -> SimulationSpec:
    duration = r.number("duration", gt=0, unit="ms")
    sync = r.number("sync_interval", gt=0, unit="ms")
    seed = r.integer("seed", 0, ge=0, le=2**63 - 1)
    out = r.string("output", None)
    checkpoint = r.number("checkpoint_every", 0.0, ge=0, unit="ms")
    timeout = r.number("exchange_timeout", 600.0, gt=0, unit="s")
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
    return SimulationSpec(duration, sync, seed, output, checkpoint, timeout)


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
