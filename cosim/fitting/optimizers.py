"""Candidate generators of a fit, in the unit box ``[0, 1]^d`` of the free parameters.

Both are deterministic functions of the fit description and the losses told so far, which
is what makes a fit reproducible, resumable (replay the log) and parallel without a master
(every MPI rank runs the same optimiser and gets the same candidates).

* :class:`Grid` — the Cartesian grid of every parameter's ``points`` (inclusive of both
  bounds; ``points`` defaults to ``⌊budget^(1/d)⌋``, at least 2), last parameter fastest,
  handed out in waves of ``population``.
* :class:`CMAES` — CMA-ES (Hansen's ``cma`` package, the reference implementation) with
  population ``population``, initial step ``sigma0`` (fraction of the box), start at the
  parameters' ``initial`` values, box constraints [0, 1] by ``cma``'s boundary handling,
  seeded by ``[fit] seed``.  ``cma`` needs two dimensions or more: a one-parameter fit
  searches a second, inert coordinate that no scenario key reads.
"""

from __future__ import annotations

import itertools

import numpy as np

from .spec import FitSpec


class Grid:
    def __init__(self, spec: FitSpec):
        d = len(spec.params)
        auto = max(2, int(np.floor(spec.budget ** (1.0 / d) + 1e-9)))
        axes = [np.linspace(0.0, 1.0, p.points or auto) if (p.points or auto) > 1
                else np.array([p.to_unit(p.initial)]) for p in spec.params]
        self.points = [np.array(c) for c in itertools.product(*axes)]
        self.population = spec.population
        self.next = 0

    def ask(self, n: int) -> list[np.ndarray]:
        out = self.points[self.next:self.next + n]
        self.next += len(out)
        return out

    def tell(self, points, losses) -> None:
        pass

    @property
    def done(self) -> bool:
        return self.next >= len(self.points)


class CMAES:
    def __init__(self, spec: FitSpec):
        import cma

        d = len(spec.params)
        self.pad = d == 1
        x0 = [p.to_unit(p.initial) for p in spec.params] + ([0.5] if self.pad else [])
        opts = {"bounds": [0.0, 1.0], "popsize": spec.population, "seed": spec.seed + 1,
                "verbose": -9, "verb_log": 0, "verb_disp": 0, "tolfun": 0, "tolx": 1e-12,
                "tolfunhist": 0, "tolstagnation": 10**9, "maxfevals": 10**9}
        self.es = cma.CMAEvolutionStrategy(x0, spec.sigma0, opts)
        self.population = spec.population
        self._asked: list[np.ndarray] = []

    def ask(self, n: int) -> list[np.ndarray]:
        self._asked = [np.asarray(x, dtype=float) for x in self.es.ask()]
        d = len(self._asked[0]) - (1 if self.pad else 0)
        return [x[:d] for x in self._asked[:n]]

    def tell(self, points, losses) -> None:
        if len(losses) == len(self._asked):          # a truncated last wave is not told
            self.es.tell(self._asked, [float(v) for v in losses])

    @property
    def done(self) -> bool:
        return False


def make_optimizer(spec: FitSpec):
    return Grid(spec) if spec.method == "grid" else CMAES(spec)
