"""Which engines talk through the bus, at what resolution, and is it causal?

Computed from a validated scenario (the same on every rank) by :func:`coupling_layout`:

* The bus is used when two or more engines simulate connectome regions (neural-mass
  engines, and multicompartment engines that stand for a ``region``).
* **Bus resolution** ``bus_dt``: the ``dt`` of the neural-mass engines, which must agree
  (their kernels read external sources from the same grid as internal ones); a spiking
  engine's ``dt`` must divide it.  Without neural-mass engines, ``bus_dt`` is the sync
  interval.
* **Delays** on the bus: ``rint(tract_length / speed / bus_dt)`` steps with the conduction
  speed of ``[connectome] speed`` (the engines coupled through the bus use the same).
* **Causality**: every connection between regions of different engines must be delayed by
  at least the sync interval (plus the read-ahead of the receiver's integrator); otherwise
  a window would need data from a window still being computed.  Checked at load time
  (:func:`check_layout`), naming the shortest offending connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adapters import SpikesToRate
from adapters.config import RateToPoissonSpec, SpikesToRateSpec

from .bus import check_cross_delays
from .errors import CosimError


@dataclass
class CouplingLayout:
    uses_bus: bool
    coupled: tuple[str, ...] = ()
    bus_dt_ms: float = 0.0
    window_steps: int = 0
    speed_mm_per_ms: float = 3.0
    n_afferent: int = 1
    steps: np.ndarray | None = None
    inputs_of: dict[str, list[RateToPoissonSpec]] = field(default_factory=dict)
    outputs_of: dict[str, SpikesToRateSpec] = field(default_factory=dict)
    populations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    read_ahead: int = 0

    def make_rate_adapters(self, scenario) -> dict[str, "RegionRate"]:
        """The spikes → rate adapter of every spiking engine that has one (bus side)."""
        out = {}
        for name, spec in self.outputs_of.items():
            eng = scenario.engines[name]
            n = sum(len(eng.groups[p]) for p in self.populations[name])
            out[name] = RegionRate(spec, n, self.bus_dt_ms)
        return out


class RegionRate:
    """Pooled population rate of a spiking region → its afferent on the bus."""

    def __init__(self, spec: SpikesToRateSpec, n_cells: int, bin_ms: float):
        self.spec = spec
        self.conv = SpikesToRate({"pooled": np.arange(n_cells)}, bin_ms, spec.kernel, spec.tau_ms)
        self.last_rate_hz = 0.0

    def initial_afferent(self) -> float:
        return float(self.spec.map(np.array([0.0]))[0])

    def afferent(self, counts: np.ndarray) -> np.ndarray:
        """``counts`` (S, n_populations) summed over parts → afferent (S,)."""
        pooled = np.asarray(counts).sum(axis=1, keepdims=True)
        rate = self.conv.from_counts(pooled)[:, 0]
        self.last_rate_hz = float(rate.mean()) if rate.size else 0.0
        return self.spec.map(rate)

    def state(self) -> dict:
        return self.conv.state()

    def restore(self, state: dict) -> None:
        self.conv.restore(state)


def _err(scenario, key: str, reason: str) -> CosimError:
    return CosimError(reason, file=str(scenario.path), key=key)


def coupling_layout(scenario) -> CouplingLayout:
    """The bus layout of ``scenario`` (see module docstring); raises :class:`CosimError`."""
    cached = getattr(scenario, "_coupling_layout", None)
    if cached is not None:
        return cached
    types = scenario.engine_types
    regional = [n for n, e in scenario.engines.items() if getattr(e, "region_indices", ())]
    adapters = getattr(scenario, "adapters", {}) or {}
    if len(regional) < 2:
        if adapters:
            name = next(iter(adapters))
            raise _err(scenario, f"adapters.{name}", "adapters couple a spiking region to neural "
                       "masses, but the scenario has no neural-mass engine for other regions")
        return CouplingLayout(False)
    nm = [n for n in regional if types[n] == "neural_mass"]
    spiking = [n for n in regional if types[n] != "neural_mass"]
    sim = scenario.simulation
    if nm:
        dts = {scenario.engines[n].dt_ms for n in nm}
        if len(dts) > 1:
            raise _err(scenario, f"engines.{nm[1]}.dt", "neural-mass engines coupled through the "
                       f"bus must share one dt (the bus resolution); got {sorted(dts)} ms")
        bus_dt = dts.pop()
        speed = getattr(scenario, "speed_mm_per_ms", 3.0)
        naff = {scenario.engines[n].n_afferent for n in nm}
        if len(naff) > 1:
            raise _err(scenario, f"engines.{nm[1]}.coupling", "neural-mass engines coupled through "
                       "the bus must send the same number of afferent signals per region")
        n_aff = naff.pop()
    else:
        bus_dt, speed, n_aff = sim.sync_interval_ms, getattr(scenario, "speed_mm_per_ms", 3.0), 1
    if spiking and n_aff != 1:
        raise _err(scenario, f"engines.{spiking[0]}", "a spiking region can only be coupled to "
                   "neural masses whose coupling sends one afferent signal per region")
    for n in spiking:
        q = bus_dt / scenario.engines[n].dt_ms
        if abs(q - round(q)) > 1e-9 * max(1.0, q):
            raise _err(scenario, f"engines.{n}.dt", f"must divide the bus resolution "
                       f"{bus_dt:g} ms (the neural-mass dt)")
    S = int(round(sim.sync_interval_ms / bus_dt))
    steps = scenario.connectome.delay_steps(speed, bus_dt)
    inputs_of: dict = {n: [] for n in spiking}
    outputs_of: dict = {}
    for spec in adapters.values():
        if isinstance(spec, RateToPoissonSpec):
            inputs_of[spec.engine].append(spec)
        else:
            outputs_of[spec.engine] = spec
    populations = {}
    for n in spiking:
        eng = scenario.engines[n]
        spec = outputs_of.get(n)
        populations[n] = tuple(spec.populations) if spec and spec.populations else tuple(eng.groups)
    read_ahead = max(int(getattr(scenario.engines[n], "bus_read_ahead_steps", 0)) for n in regional)
    layout = CouplingLayout(True, tuple(regional), bus_dt, S, speed, n_aff, steps, inputs_of,
                            outputs_of, populations, read_ahead)
    check_layout(scenario, layout)
    scenario._coupling_layout = layout
    return layout


def check_layout(scenario, layout: CouplingLayout) -> None:
    """Every connection between engines must be delayed by ≥ the sync interval."""
    owner = np.full(scenario.connectome.n_regions, -1, dtype=np.int64)
    names = list(layout.coupled)
    extra = {}
    for i, n in enumerate(names):
        eng = scenario.engines[n]
        owner[np.asarray(eng.region_indices, dtype=np.int64)] = i
        extra[i] = int(getattr(eng, "bus_read_ahead_steps", 0))
    check_cross_delays(scenario.connectome, owner, names, layout.steps, layout.window_steps,
                       layout.bus_dt_ms, layout.speed_mm_per_ms, str(scenario.path), extra)
