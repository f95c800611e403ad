"""The plan: which process (MPI rank) runs what.

Description (the scenario) is separate from distribution (this plan) and from execution
(:mod:`cosim.runtime`), as in Arbor's recipe / decomposition / simulation split.

Rules
-----
* **One process** (no MPI launcher, or ``mpiexec -n 1``): the bus and every engine run in
  that process, through the in-process transport.
* **K ≥ 1 + number of engines processes**: rank 0 runs the **bus** (and writes the output
  file); every engine gets at least one rank of its own, in scenario order.  Extra ranks go
  to the engines that can be split (``engine.max_parts() > 1``), one at a time, to the
  engine with the most work per rank (``engine.work()``, compartment-steps per simulated
  ms; see :mod:`cosim.engines.base`).  How an engine splits is its own business (a
  neural-mass engine into contiguous blocks of regions, a multicompartment engine into
  blocks of cells of every population).
* **1 < K < 1 + engines**: an error — the scenario needs more processes.

Every rank computes the same plan from the same scenario, so no plan is ever sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CosimError

BUS_RANK = 0


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


def min_processes(scenario) -> int:
    """Processes needed for a multi-process run (bus rank + one per engine)."""
    return 1 + len(scenario.engines)


def make_plan(scenario, world_size: int) -> Plan:
    """The plan for ``world_size`` processes (see module docstring)."""
    names = list(scenario.engines)
    if world_size < 1:
        raise CosimError(f"need at least 1 process, got {world_size}")
    if world_size == 1:
        return Plan(1, tuple(EngineGroup(n, scenario.engines[n].type_name, (0,)) for n in names))
    need = min_processes(scenario)
    if world_size < need:
        raise CosimError(f"needs 1 process or at least {need} (one for the bus and one per "
                         f"engine: {', '.join(names)}), got {world_size}", file=str(scenario.path))
    counts = {n: 1 for n in names}
    engines = scenario.engines
    work = {n: float(engines[n].work()) for n in names}
    most = {n: int(engines[n].max_parts()) for n in names}
    for _ in range(world_size - need):
        open_ = [n for n in names if counts[n] < most[n]]
        if not open_:
            usable = need + sum(counts.values()) - len(names)
            raise CosimError(f"can use at most {usable} processes (the engines cannot be split "
                             f"further), got {world_size}", file=str(scenario.path))
        best = max(open_, key=lambda n: (work[n] / counts[n], -names.index(n)))
        counts[best] += 1
    groups, rank = [], BUS_RANK + 1
    for n in names:
        groups.append(EngineGroup(n, engines[n].type_name, tuple(range(rank, rank + counts[n]))))
        rank += counts[n]
    return Plan(world_size, tuple(groups))
