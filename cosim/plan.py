"""The plan: which process (MPI rank) runs what.

Description (the scenario) is separate from distribution (this plan) and from execution
(:mod:`cosim.runtime`), as in Arbor's recipe / decomposition / simulation split.

Rules
-----
* **One process** (no MPI launcher, or ``mpiexec -n 1``): the bus and every engine run in
  that process, through the in-process transport.
* **K ≥ 1 + number of engines processes**: rank 0 runs the **bus** (and writes the output
  file); every engine gets at least one rank of its own, in scenario order.  Extra ranks go
  to the engines that can be split, one at a time, to the engine with the most work per
  rank: a multicompartment engine's work is its number of compartments, a neural-mass
  engine's its number of regions × state variables ÷ 50 (a JR region step costs about as
  much as 50 compartment steps here).  A neural-mass engine is split into contiguous blocks
  of regions, a multicompartment engine into blocks of cells of every population.
* **1 < K < 1 + engines**: an error — the scenario needs more processes.

Every rank computes the same plan from the same scenario, so no plan is ever sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CosimError

BUS_RANK = 0
#: relative cost of one neural-mass region-state-variable step vs one compartment step
_NM_COST_PER_STATE = 1.0 / 50.0


@dataclass(frozen=True)
class EngineGroup:
    """The ranks of one engine: partition ``p`` of the engine runs on ``ranks[p]``."""

    name: str
    type: str
    ranks: tuple[int, ...]

    @property
    def n_parts(self) -> int:
        return len(self.ranks)


@dataclass(frozen=True)
class Plan:
    """Assignment of the bus and the engine partitions to ranks."""

    world_size: int
    groups: tuple[EngineGroup, ...]

    @property
    def in_process(self) -> bool:
        return self.world_size == 1

    def group(self, name: str) -> EngineGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def role(self, rank: int) -> tuple[str, str | None, int]:
        """``("bus", None, 0)`` or ``("engine", name, part)`` for a rank (multi-process)."""
        if rank == BUS_RANK:
            return "bus", None, 0
        for g in self.groups:
            if rank in g.ranks:
                return "engine", g.name, g.ranks.index(rank)
        raise ValueError(f"rank {rank} has no role in a plan for {self.world_size} ranks")

    def describe(self) -> list[str]:
        """One line per rank: what it runs (for logs, sbatch comments and ``validate``)."""
        if self.in_process:
            return ["rank 0: bus + " + ", ".join(g.name for g in self.groups) + " (one process)"]
        lines = [f"rank {BUS_RANK}: bus and output file"]
        for g in self.groups:
            for p, r in enumerate(g.ranks):
                part = f" part {p + 1}/{g.n_parts}" if g.n_parts > 1 else ""
                lines.append(f"rank {r}: engine {g.name} ({g.type}){part}")
        return lines


def engine_work(engine, type_name: str) -> float:
    """Work per time step of an engine, in compartment-step units (for rank sharing)."""
    if type_name == "multicompartment":
        return float(getattr(engine, "n_compartments", 1000))
    n_regions = len(getattr(engine, "region_indices", ())) or 1
    n_state = getattr(getattr(engine, "model", None), "n_state", 2)
    return n_regions * n_state * _NM_COST_PER_STATE


def min_processes(scenario) -> int:
    """Processes needed for a multi-process run (bus rank + one per engine)."""
    return 1 + len(scenario.engines)


def make_plan(scenario, world_size: int) -> Plan:
    """The plan for ``world_size`` processes (see module docstring)."""
    names = list(scenario.engines)
    if world_size < 1:
        raise CosimError(f"need at least 1 process, got {world_size}")
    if world_size == 1:
        return Plan(1, tuple(EngineGroup(n, scenario.engine_types[n], (0,)) for n in names))
    need = min_processes(scenario)
    if world_size < need:
        raise CosimError(f"needs 1 process or at least {need} (one for the bus and one per "
                         f"engine: {', '.join(names)}), got {world_size}", file=str(scenario.path))
    counts = {n: 1 for n in names}
    work = {n: engine_work(scenario.engines[n], scenario.engine_types[n]) for n in names}
    splittable = [n for n in names if _max_parts(scenario.engines[n], scenario.engine_types[n]) > 1]
    for _ in range(world_size - need):
        open_ = [n for n in splittable
                 if counts[n] < _max_parts(scenario.engines[n], scenario.engine_types[n])]
        if not open_:
            usable = need + sum(counts.values()) - len(names)
            raise CosimError(f"can use at most {usable} processes (the engines cannot be split "
                             f"further), got {world_size}", file=str(scenario.path))
        best = max(open_, key=lambda n: (work[n] / counts[n], -names.index(n)))
        counts[best] += 1
    groups, rank = [], BUS_RANK + 1
    for n in names:
        groups.append(EngineGroup(n, scenario.engine_types[n], tuple(range(rank, rank + counts[n]))))
        rank += counts[n]
    return Plan(world_size, tuple(groups))


def _max_parts(engine, type_name: str) -> int:
    """How many partitions an engine can be split into (1 = not splittable)."""
    if type_name == "multicompartment":
        return max(1, int(getattr(engine, "n_cells", 1)))
    return max(1, len(getattr(engine, "region_indices", ())))
