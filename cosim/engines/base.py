"""The contract between the runtime and an engine.

The framework owns the loop; an engine only knows how to advance its own state over one
sync window.  It never sees MPI, files or the scenario text (STYLE.md practice 2).

Life cycle, on the rank(s) that run the engine::

    engine = EngineClass.from_config(reader, context)   # validate the scenario section
    engine.build()                                      # allocate state, JIT-compile kernels
    for each window k = [t0, t1):
        out = engine.advance(t0, t1, inputs)            # inputs: dict of named arrays
        recorder.write(engine.name, out.records)
    engine.state() / engine.restore(state)              # checkpoints

Times are in ms.  Record arrays are ``(time, variable, region)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..scenario_params import SPEED


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
    that fall in ``(t0, t1]``; ``exports``: named arrays for other engines (used by the bus).
    """

    records: dict[str, np.ndarray] = field(default_factory=dict)
    exports: dict[str, np.ndarray] = field(default_factory=dict)


class Engine(Protocol):
    name: str
    dt_ms: float

    def record_specs(self) -> list[RecordSpec]: ...

    def build(self) -> None: ...

    def advance(self, t0_ms: float, t1_ms: float, inputs: dict[str, np.ndarray]) -> WindowOutput: ...

    def state(self) -> dict[str, np.ndarray]: ...

    def restore(self, state: dict[str, np.ndarray]) -> None: ...


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
    sets the delays of every engine and of the bus.
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
