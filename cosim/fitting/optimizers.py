"""Candidate generators of a fit, in the unit box ``[0, 1]^d`` of the free parameters.

Both are deterministic functions of the fit description and the losses told so far, which
is what makes a fit reproducible, resumable (replay the log) and parallel without a master
(every MPI rank runs the same optimiser and gets the same candidates).

* :class:`Grid` — the Cartesian grid of every parameter's ``points`` (inclusive of both
  bounds; ``points`` defaults to ``⌊budget^(1/d)⌋``, at least 2), last parameter fastest,
  handed out in waves of ``population``.
* :class:`CMAES` — CMA-ES (Hansen's ``cma`` package, the reference implementation) with
  population ``population``, box constraints [0, 1] by ``cma``'s boundary handling, seeded
  by ``[fit] seed``.  With ``design = n > 0`` the first ``n`` evaluations are a Latin
  hypercube of the box (scipy's ``qmc.LatinHypercube``, seeded by ``[fit] seed``), handed
  out in waves of ``population``; CMA-ES then starts at the design's best point with step
  ``min(sigma0, max(SIGMA_MIN, s))``, ``s`` the RMS over coordinates of the standard
  deviation of the design's best quarter (at least 2 points).  With ``design = 0`` it starts
  at the parameters' ``initial`` values with step ``sigma0``.  ``cma`` needs two dimensions
  or more: a one-parameter fit searches a second, inert coordinate that no scenario key
  reads.
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


#: Smallest CMA-ES step after a design (fraction of the box).
SIGMA_MIN = 0.02


def latin_hypercube(n: int, d: int, seed: int) -> np.ndarray:
    """``(n, d)`` Latin hypercube in ``[0, 1]^d``, a deterministic function of ``seed``."""
    from scipy.stats import qmc

    return qmc.LatinHypercube(d, rng=np.random.default_rng([seed, 0x5EED])).random(n)


def start_from_design(points: np.ndarray, losses: np.ndarray, sigma0: float):
    """(x0, sigma) of CMA-ES after a design: its best point, the spread of its best
    quarter (non-finite losses rank last)."""
    losses = np.where(np.isfinite(losses), losses, np.inf)
    order = np.argsort(losses, kind="stable")
    best = points[order[:max(2, len(points) // 4)]]
    s = float(np.sqrt(np.mean(best.std(axis=0) ** 2)))
    return points[order[0]].copy(), min(sigma0, max(SIGMA_MIN, s))


class CMAES:
    def __init__(self, spec: FitSpec):
        d = len(spec.params)
        self.d = d
        self.pad = d == 1
        self.spec = spec
        self.population = spec.population
        self.design = latin_hypercube(spec.design, d, spec.seed) if spec.design else None
        self._design_losses: list[float] = []
        self._next = 0                               # design points handed out
        self.es = None
        self._asked: list[np.ndarray] = []
        if self.design is None:
            self._start(np.array([p.to_unit(p.initial) for p in spec.params]), spec.sigma0)

    def _start(self, x0: np.ndarray, sigma: float) -> None:
        import cma

        x0 = list(x0) + ([0.5] if self.pad else [])
        opts = {"bounds": [0.0, 1.0], "popsize": self.spec.population,
                "seed": self.spec.seed + 1, "verbose": -9, "verb_log": 0, "verb_disp": 0,
                "tolfun": 0, "tolx": 1e-12, "tolfunhist": 0, "tolstagnation": 10**9,
                "maxfevals": 10**9}
        self.es = cma.CMAEvolutionStrategy(x0, sigma, opts)
        self.start = (np.asarray(x0[:self.d]), sigma)

    def ask(self, n: int) -> list[np.ndarray]:
        if self.es is None:                          # the design, in waves of n
            out = list(self.design[self._next:self._next + n])
            self._next += len(out)
            return out
        self._asked = [np.asarray(x, dtype=float) for x in self.es.ask()]
        return [x[:self.d] for x in self._asked[:n]]

    def tell(self, points, losses) -> None:
        if self.es is None:
            self._design_losses += [float(v) for v in losses]
            if len(self._design_losses) >= len(self.design):
                self._start(*start_from_design(self.design, np.array(self._design_losses),
                                               self.spec.sigma0))
            return
        if len(losses) == len(self._asked):          # a truncated last wave is not told
            self.es.tell(self._asked, [float(v) for v in losses])

    @property
    def done(self) -> bool:
        return False


def make_optimizer(spec: FitSpec):
    return Grid(spec) if spec.method == "grid" else CMAES(spec)
