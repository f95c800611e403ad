"""The engine contract: the one extension point of cosim.

The framework owns the loop; an engine only advances its own state over one sync window.
It never sees MPI, files or the scenario text (STYLE.md practice 2).  The runtime, the plan
and the bus never ask what an engine *is* — they read what it *declares* here:

=====================  ==================================================================
declaration            used by
=====================  ==================================================================
``exports``            the bus: what the engine sends each window (:class:`Export`)
``takes``              the bus: what it receives each window (:class:`Take`)
``region_indices``     the bus and the layout: the connectome regions it stands for
``n_afferent``         the bus: afferent channels per region (``Export.AFFERENT``)
``bus_read_ahead_steps``  causality check: steps its integrator reads past a delay
``populations()``      spike counts and rate adapters (``Export.SPIKE_COUNTS``)
``input_groups()``     rate → Poisson adapters (``Take.DRIVE``)
``max_parts()``,       the plan: how far it can be split, and how much work it is
``work()``
``part_regions()``     the bus: the regions partition ``p`` of ``n`` exports / reads
``partition()``        the rank that runs partition ``p`` builds it
``merge_records()``    the record pipeline: the parts' records → the one-process layout
``can_checkpoint``     the scenario: ``checkpoint_every`` is refused when False
``add_stimulus()``     the scenario: binds a ``[stimuli.<name>]`` (default: refused)
``record_specs()``     the recorder
=====================  ==================================================================

Life cycle.  Every rank *describes* every engine (``from_config``: validation and the
declarations above; cheap, nothing is allocated or compiled, no peer simulator is
started); only the rank that runs a partition *builds* it::

    engine = EngineClass.from_config(name, reader, context)   # every rank: a description
    part = engine.partition(p, n, exchange)                   # the rank running part p
    part.coupled()          # before build, when the part exchanges data with the bus
    part.build()            # allocate state, JIT-compile kernels
    part.initial(L)         # Export.AFFERENT: the initial afferent history
    for each window k = [t0, t1):
        out = part.advance(t0, t1, inputs)                    # WindowOutput
    part.state() / part.restore(state)                        # checkpoints

Inputs of ``advance`` by ``takes``: ``Take.SOURCES`` → ``{"sources": (L, n_aff, n_src)}``,
the new samples of the outside regions projecting into the part (see :mod:`cosim.bus`);
``Take.DRIVE`` → ``{"drive": (S, n_aff)}``, the region's delayed weighted input per bus
step, plus ``{"events": (line, time_ms)}`` when rate → Poisson adapters drive its input
groups (the part-side half of the adapter makes them, see :mod:`cosim.parts`).
Exports of ``advance`` by ``exports``: ``Export.AFFERENT`` → ``exports["afferent"]``
``(S, n_aff, n_part_regions)``; ``Export.SPIKE_COUNTS`` → ``exports["spikes"]`` ``(gid,
time_ms)`` with times in ``(t0, t1]`` (binned per bus step by the runtime with
:func:`adapters.spikes_to_rate.bin_index`'s rule).

Times are in ms.  Record arrays are ``(time, variable, region)``.  Engine types are found
through :mod:`cosim.engines` (built-in types and the ``cosim.engines`` entry-point group).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from ..rng import Streams
from ..scenario_params import SPEED


class Export(enum.Enum):
    """What an engine sends to the bus each window."""

    NOTHING = "nothing"
    #: the afferent samples of its regions at every bus step (what its fibres carry)
    AFFERENT = "afferent"
    #: spikes of its cell populations; the bus-side spikes → rate adapter makes the afferent
    SPIKE_COUNTS = "spike_counts"


class Take(enum.Enum):
    """What an engine receives from the bus each window."""

    NOTHING = "nothing"
    #: the delayed afferent samples of outside regions, for its own delay ring
    SOURCES = "sources"
    #: its region's delayed, weighted input ``s_R(t) = Σ_j w_Rj a_j(t − d_Rj)``
    DRIVE = "drive"


@dataclass(frozen=True)
class RecordSpec:
    """Describes one dataset an engine writes every window.

    ``dataset``: name under ``/engines/<engine>/`` in the output file;
    ``variables``/``units``: names and units of axis 1; ``regions``: names of axis 2;
    ``period_ms``: sample spacing; sample ``k`` (k = 1, 2, …) is the state at
    ``t = start_ms + k * period_ms``.
    """

    dataset: str
    variables: tuple[str, ...]
    units: tuple[str, ...]
    regions: tuple[str, ...]
    period_ms: float
    start_ms: float = 0.0
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class WindowOutput:
    """What :meth:`Engine.advance` returns for one window.

    ``records``: dataset name → array ``(n_samples, n_variables, n_regions)`` of the samples
    that fall in ``(t0, t1]`` (spike datasets: ``(gids, times_ms)``); ``exports``: named
    arrays for the bus (see the module docstring).
    """

    records: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)


#: ``exchange(gids int64[], times_ms float64[]) -> (all_gids, all_times)``: the spikes of
#: every partition of a split spiking region (an MPI Allgatherv over the engine's ranks).
Exchange = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class Engine(ABC):
    """Base class of every engine type (see the module docstring for the contract).

    Subclasses set ``type_name`` (the scenario's ``type``), ``exports``, ``takes`` and, in
    their constructor, ``name``, ``dt_ms`` and ``region_indices``; they implement
    :meth:`from_config`, :meth:`record_specs`, :meth:`build`, :meth:`advance` and, unless
    ``can_checkpoint`` is False, :meth:`state` / :meth:`restore`.  The defaults below
    describe an engine that cannot be split.
    """

    type_name: ClassVar[str]
    #: the declarations of ``[engines.<name>]`` (a :class:`cosim.params.Section`), which
    #: ``from_config`` reads and ``cosim describe engine`` / ``docs/scenario.md`` print
    parameters: ClassVar[Any] = None
    exports: ClassVar[Export] = Export.NOTHING
    takes: ClassVar[Take] = Take.NOTHING
    can_checkpoint: ClassVar[bool] = True

    name: str
    dt_ms: float
    #: connectome regions the engine stands for (int64, engine order); empty: none
    region_indices: np.ndarray = np.zeros(0, dtype=np.int64)
    #: afferent channels per region it exports (``Export.AFFERENT``)
    n_afferent: int = 1
    #: bus steps its integrator reads beyond a delayed sample (RK4's half step: 1)
    bus_read_ahead_steps: int = 0

    # -- description ------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_config(cls, name: str, reader, ctx: "BuildContext") -> "Engine":
        """Validate ``[engines.<name>]`` (a :class:`cosim.schema.Reader`) and describe the
        engine; raise :class:`~cosim.errors.CosimError` naming the key on bad input."""

    @abstractmethod
    def record_specs(self) -> list[RecordSpec]:
        """The datasets of the one-process layout (the same on every partition)."""

    def populations(self) -> dict[str, range]:
        """Cell populations → global gids (``Export.SPIKE_COUNTS``), in count-column order."""
        raise NotImplementedError(f"engine type {self.type_name!r} declares no populations")

    def input_groups(self) -> tuple[str, ...]:
        """Input groups a rate → Poisson adapter may drive (``Take.DRIVE``)."""
        return ()

    def local_input_lines(self, group: str) -> np.ndarray:
        """Global ids of the input lines of ``group`` that this partition simulates."""
        raise NotImplementedError(f"engine type {self.type_name!r} has no input lines")

    def max_parts(self) -> int:
        """How many partitions the engine can be split into (1: not splittable)."""
        return 1

    def work(self) -> float:
        """Relative cost of simulating 1 ms (compartment-steps per ms; for rank sharing)."""
        return 1.0

    def part_regions(self, part: int, n_parts: int) -> np.ndarray:
        """Regions whose afferents partition ``part`` of ``n_parts`` exports (and whose
        inputs it reads); default: all of them (every partition stands for the region)."""
        return np.asarray(self.region_indices, dtype=np.int64)

    def partition(self, part: int, n_parts: int, exchange: Exchange | None = None) -> "Engine":
        """The engine restricted to partition ``part`` of ``n_parts`` (not built)."""
        if n_parts == 1:
            return self
        raise NotImplementedError(f"engine type {self.type_name!r} cannot be split")

    def merge_records(self, by_part: Sequence[dict]) -> dict:
        """One window's records of every partition (in part order) → the one-process
        layout.  Called on the description (never on a built partition), and only for an
        engine split in two or more: one partition's records are the one-process layout
        as they are (the record pipeline takes them so)."""
        if len(by_part) == 1:
            return by_part[0]
        raise NotImplementedError(f"engine type {self.type_name!r} cannot be split")

    def add_stimulus(self, spec):
        """Bind a ``[stimuli.<name>]`` (:class:`cosim.stimuli.StimulusSpec`) to the
        description, before any partition is made; return the
        :class:`cosim.stimuli.StimulusRecord` of what it applies.  Raise
        :class:`~cosim.errors.CosimError` naming the key on a target the engine lacks."""
        raise spec.error("engine", f"engine {self.name!r} (type {self.type_name}) takes no "
                                   "stimuli")

    # -- execution (on the rank that runs the partition) ----------------------------------
    def coupled(self) -> None:
        """Called before :meth:`build` when the part exchanges data with the bus."""

    @abstractmethod
    def build(self) -> None:
        """Allocate state and compile kernels (or start the wrapped simulator)."""

    def initial(self, n_samples: int) -> dict[str, np.ndarray]:
        """``Export.AFFERENT``: ``{"afferent": (L, n_aff, n_part_regions)}``, the afferent
        values of steps ``−(L−1) … 0``, chronological, ``L ≥ n_samples``."""
        return {}

    @abstractmethod
    def advance(self, t0_ms: float, t1_ms: float, inputs: dict) -> WindowOutput:
        """Advance over ``[t0, t1)`` ms; see the module docstring for inputs and exports."""

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue bit for bit (flat name → array)."""
        raise NotImplementedError(f"engine type {self.type_name!r} cannot checkpoint")

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from a :meth:`state` snapshot of an identically configured engine."""
        raise NotImplementedError(f"engine type {self.type_name!r} cannot checkpoint")


@dataclass
class BuildContext:
    """What an engine's ``from_config`` may use besides its own scenario section.

    ``file``: scenario path (for error messages); ``connectome``: the loaded
    :class:`cosim.connectome.Connectome`; ``seed``: the scenario's master seed;
    ``sync_interval_ms``: Δ; ``record_period_ms``: default sample period of region time
    series (``[record] period``); ``record_variables``: the list from
    ``[record.<engine>] variables`` or ``None`` (engine default); ``claimed_regions``:
    region indices already owned by engines declared earlier (for ``regions = "rest"``);
    ``speed_mm_per_ms``: conduction speed of the connectome (``[connectome] speed``), which
    sets the delays of every engine and of the bus; ``rng``: the run's random streams
    (:class:`cosim.rng.Streams`, the master seed plus cosim's one key scheme) — every
    engine and adapter derives its streams from it; default ``Streams(seed)``.
    """

    file: str
    connectome: Any
    seed: int
    duration_ms: float
    sync_interval_ms: float
    record_period_ms: float
    record_variables: list[str] | None = None
    claimed_regions: frozenset[int] = frozenset()
    speed_mm_per_ms: float = SPEED.default
    rng: Streams | None = None

    def __post_init__(self):
        if self.rng is None:
            self.rng = Streams(self.seed)
        elif self.rng.seed != self.seed:
            raise ValueError(f"BuildContext: rng has seed {self.rng.seed}, seed is {self.seed}")
