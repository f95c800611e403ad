"""Which engines talk through the bus, at what resolution, and is it causal?

Computed from a validated scenario (the same on every rank) by :func:`coupling_layout`,
from what each engine declares (:mod:`cosim.engines.base`), never from its type:

* The bus is used when two or more engines stand for connectome regions and exchange
  something (``exports`` or ``takes`` not ``NOTHING``).
* **Bus resolution** ``bus_dt``: the ``dt`` of the engines that export afferent samples or
  take source samples (e.g. neural masses), which must agree — their kernels read external
  sources from the same grid as internal ones; every other coupled engine's ``dt`` must
  divide it.  Without such engines, ``bus_dt`` is the sync interval.
* **Delays** on the bus: ``rint(tract_length / speed / bus_dt)`` steps with the conduction
  speed of ``[connectome] speed`` (the engines coupled through the bus use the same).
* **Causality**: every connection between regions of different engines must be delayed by
  at least the sync interval (plus the read-ahead of the receiver's integrator); otherwise
  a window would need data from a window still being computed.  Checked at load time
  (:func:`check_layout`), naming the shortest offending connection.  So must the
  self-connection of a region whose engine takes drive (a spiking region), unless
  ``[connectome] driven_self_connections = "drop"`` leaves it out (done when the scenario
  is loaded, :func:`cosim.scenario.load_scenario`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adapters.config import RateToPoissonSpec, SpikesToRateSpec

from .bus import check_cross_delays, check_driven_self_delays, max_delay_steps
from .engines.base import Export, Take
from .errors import CosimError
from .scenario_params import SPEED


@dataclass
class CouplingLayout:
    """``uses_bus``: two or more engines exchange data through the bus in every layout;
    ``coupled``: the engines that would (one engine alone is coupled only when split, see
    :meth:`active`)."""

    uses_bus: bool
    coupled: tuple[str, ...] = ()
    bus_dt_ms: float = 0.0
    window_steps: int = 0
    speed_mm_per_ms: float = SPEED.default
    n_afferent: int = 1
    steps: np.ndarray | None = None
    inputs_of: dict[str, list[RateToPoissonSpec]] = field(default_factory=dict)
    outputs_of: dict[str, SpikesToRateSpec] = field(default_factory=dict)
    populations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    read_ahead: int = 0

    def initial_length(self, connectome) -> int:
        """Initial afferent samples (steps ``−(L−1) … 0``) the bus needs of an exporter."""
        return max_delay_steps(connectome.weights, self.steps) + 1 + self.read_ahead

    def active(self, plan) -> bool:
        """Whether the bus runs in ``plan``: two engines stand for regions, or one engine
        that stands for regions is split into several parts."""
        return bool(self.coupled) and (self.uses_bus or any(plan.group(n).n_parts > 1
                                                             for n in self.coupled))

    def spike_populations(self, scenario, name: str) -> dict[str, range]:
        """The populations whose spikes engine ``name`` counts for the bus, in column order."""
        pops = scenario.engines[name].populations()
        return {p: pops[p] for p in self.populations[name]}


def _err(scenario, key: str, reason: str) -> CosimError:
    return CosimError(reason, file=str(scenario.path), key=key)


def coupling_layout(scenario) -> CouplingLayout:
    """The bus layout of ``scenario`` (see module docstring); raises :class:`CosimError`."""
    cached = getattr(scenario, "_coupling_layout", None)
    if cached is not None:
        return cached
    regional = [n for n, e in scenario.engines.items()
                if len(e.region_indices)
                and (e.exports is not Export.NOTHING or e.takes is not Take.NOTHING)]
    adapters = scenario.adapters
    if len(regional) < 2 and adapters:
        name = next(iter(adapters))
        raise _err(scenario, f"adapters.{name}", "adapters couple a spiking region to neural "
                   "masses, but the scenario has no neural-mass engine for other regions")
    if not regional:
        return CouplingLayout(False)
    engines = scenario.engines
    # engines on the bus grid: they export its samples or read them into their own history
    gridded = [n for n in regional
               if engines[n].exports is Export.AFFERENT or engines[n].takes is Take.SOURCES]
    others = [n for n in regional if n not in gridded]
    sim = scenario.simulation
    speed = scenario.speed_mm_per_ms
    if gridded:
        dts = {engines[n].dt_ms for n in gridded}
        if len(dts) > 1:
            raise _err(scenario, f"engines.{gridded[1]}.dt", "neural-mass engines coupled through the "
                       f"bus must share one dt (the bus resolution); got {sorted(dts)} ms")
        bus_dt = dts.pop()
        exporters = [n for n in gridded if engines[n].exports is Export.AFFERENT]
        naff = {int(engines[n].n_afferent) for n in exporters} or {1}
        if len(naff) > 1:
            raise _err(scenario, f"engines.{exporters[1]}.coupling", "neural-mass engines coupled "
                       "through the bus must send the same number of afferent signals per region")
        n_aff = naff.pop()
    else:
        bus_dt, n_aff = sim.sync_interval_ms, 1
    one_channel = [n for n in regional if engines[n].takes is Take.DRIVE
                   or engines[n].exports is Export.SPIKE_COUNTS]
    if one_channel and n_aff != 1:
        raise _err(scenario, f"engines.{one_channel[0]}", "a spiking region can only be coupled to "
                   "neural masses whose coupling sends one afferent signal per region")
    for n in others:
        q = bus_dt / engines[n].dt_ms
        if abs(q - round(q)) > 1e-9 * max(1.0, q):
            raise _err(scenario, f"engines.{n}.dt", f"must divide the bus resolution "
                       f"{bus_dt:g} ms (the neural-mass dt)")
    S = int(round(sim.sync_interval_ms / bus_dt))
    steps = scenario.connectome.delay_steps(speed, bus_dt)
    inputs_of: dict = {n: [] for n in regional if engines[n].takes is Take.DRIVE}
    outputs_of: dict = {}
    for spec in adapters.values():
        if isinstance(spec, RateToPoissonSpec):
            inputs_of[spec.engine].append(spec)
        else:
            outputs_of[spec.engine] = spec
    populations = {}
    for n in regional:
        if engines[n].exports is Export.SPIKE_COUNTS:
            spec = outputs_of.get(n)
            populations[n] = (tuple(spec.populations) if spec and spec.populations
                              else tuple(engines[n].populations()))
    read_ahead = max(int(engines[n].bus_read_ahead_steps) for n in regional)
    layout = CouplingLayout(len(regional) >= 2, tuple(regional), bus_dt, S, speed, n_aff, steps, inputs_of,
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
        extra[i] = int(eng.bus_read_ahead_steps)
    check_cross_delays(scenario.connectome, owner, names, layout.steps, layout.window_steps,
                       layout.bus_dt_ms, layout.speed_mm_per_ms, str(scenario.path), extra)
    # (one engine alone takes no drive: its self-connection is nobody's input)
    driven = {int(r): n for n in names if layout.uses_bus
              and scenario.engines[n].takes is Take.DRIVE
              for r in scenario.engines[n].region_indices}
    check_driven_self_delays(np.asarray(scenario.connectome.weights), layout.steps, driven,
                             layout.window_steps, layout.bus_dt_ms,
                             scenario.connectome.region_labels,
                             {r: int(scenario.engines[n].bus_read_ahead_steps)
                              for r, n in driven.items()}, str(scenario.path))
