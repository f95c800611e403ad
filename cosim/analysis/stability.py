"""Fixed points, linear stability and Hopf bifurcations of a neural-mass model.

The model is any numpy callable ``f(x, params) -> dx/dt`` with ``x`` of shape ``(n,)``
(a single node, no coupling) and ``params`` a dict (never modified here).  Time is in the
model's own unit: eigenvalues are in 1/that unit, and a Hopf frequency in cycles per
that unit (×1000 for Hz when time is in ms).

- :func:`jacobian` — ``J = ∂f/∂x`` by central differences or the complex step;
- :func:`fixed_points` — roots of ``f`` (scipy.optimize.root, MINPACK hybrid method)
  from many starts, deduplicated, each with its Jacobian eigenvalues (stable when every
  real part is negative);
- :func:`find_hopf` — along a swept parameter, continues each fixed point and reports
  where a complex-conjugate pair of eigenvalues crosses the imaginary axis (for a 2-D
  system: trace J = 0 with det J > 0, frequency √det J / 2π), refined by Brent's method;
- :func:`node_rhs` — a model of :mod:`cosim.models` as such an ``f`` (one uncoupled node,
  its long-range input as a parameter), and :func:`input_jacobian` for the coupling
  Jacobian used by :mod:`cosim.analysis.modes`.

Equilibria are found by local root finding from many starts: a start far from every
equilibrium may fail (sigmoids saturate), so give ``bounds`` around where equilibria lie
(e.g. Jansen–Rit: derivative variables 0) or ``starts``; :func:`find_hopf` also continues
each equilibrium from one parameter value to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import optimize

Rhs = Callable[[np.ndarray, dict], np.ndarray]


def jacobian(f: Rhs, x: np.ndarray, params: dict | None = None, *, method: str = "central",
             step: float | None = None) -> np.ndarray:
    """Jacobian ``(n, n)`` of ``f`` at ``x``: ``J[i, j] = ∂f_i/∂x_j``.

    ``method="central"``: ``(f(x + h e_j) − f(x − h e_j)) / 2h`` with
    ``h = step or 1e-6·max(1, |x_j|)`` (error O(h²)); ``method="complex"``:
    ``Im f(x + i h e_j) / h`` with ``h = 1e-20`` (exact to rounding; ``f`` must accept
    complex input and be analytic: no ``abs``, ``max``, comparisons).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    J = np.empty((n, n))
    if method == "complex":
        h = 1e-20 if step is None else step
        for j in range(n):
            xc = x.astype(np.complex128)
            xc[j] += 1j * h
            J[:, j] = np.imag(np.asarray(f(xc, params))) / h
        return J
    if method != "central":
        raise ValueError(f"method must be 'central' or 'complex', got {method!r}")
    for j in range(n):
        h = step if step is not None else 1e-6 * max(1.0, abs(x[j]))
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        J[:, j] = (np.asarray(f(xp, params)) - np.asarray(f(xm, params))) / (2 * h)
    return J


@dataclass
class FixedPoint:
    """An equilibrium ``x`` with its Jacobian and eigenvalues (largest real part first)."""

    x: np.ndarray
    jacobian: np.ndarray
    eigenvalues: np.ndarray

    @property
    def stable(self) -> bool:
        return bool(np.all(self.eigenvalues.real < 0))

    @property
    def max_real(self) -> float:
        """Largest real part: the growth rate of the least stable perturbation."""
        return float(self.eigenvalues.real.max())

    @property
    def n_unstable(self) -> int:
        """Number of eigenvalues with positive real part (unstable directions)."""
        return int(np.sum(self.eigenvalues.real > 0))

    @property
    def kind(self) -> str:
        """``stable/unstable node/focus``, ``saddle``, ``saddle-focus`` or
        ``non-hyperbolic``; node/focus and saddle/saddle-focus tell whether the leading
        eigenvalue (largest real part) is real or a complex pair."""
        ev = self.eigenvalues
        tol = 1e-9 * max(1.0, np.abs(ev).max())
        if np.any(np.abs(ev.real) <= tol):
            return "non-hyperbolic"
        spiral = abs(ev[0].imag) > tol                # ev is sorted, leading first
        if np.any(ev.real > 0) and np.any(ev.real < 0):
            return "saddle-focus" if spiral else "saddle"
        return ("stable " if ev.real.max() < 0 else "unstable ") + ("focus" if spiral else "node")


def analyse_point(f: Rhs, x: np.ndarray, params: dict | None = None, *,
                  method: str = "central") -> FixedPoint:
    """Jacobian and eigenvalues of ``f`` at ``x`` (which should be an equilibrium)."""
    J = jacobian(f, x, params, method=method)
    ev = np.linalg.eigvals(J)
    ev = ev[np.lexsort((-ev.imag, -ev.real))]
    return FixedPoint(np.asarray(x, dtype=np.float64).copy(), J, ev)


def fixed_points(f: Rhs, params: dict | None = None, *,
                 starts: np.ndarray | Sequence[Sequence[float]] | None = None,
                 bounds: Sequence[tuple[float, float]] | None = None, n_starts: int = 32,
                 seed: int = 0, tol: float = 1e-9, method: str = "central") -> list[FixedPoint]:
    """All equilibria of ``f`` found from ``starts`` (and ``n_starts`` uniform random
    points in ``bounds``, a ``(lo, hi)`` pair per variable), sorted by their first
    coordinate.  A root is kept if ``max|f(x)| ≤ tol·max(1, max|x|)`` and it lies within
    ``bounds``; roots closer than 1e-6 (relative) are merged."""
    pts = [] if starts is None else [np.asarray(s, dtype=np.float64) for s in starts]
    if bounds is not None:
        lo, hi = np.array(bounds, dtype=np.float64).T
        rng = np.random.default_rng(seed)
        pts += list(lo + (hi - lo) * rng.random((n_starts, lo.size)))
    if not pts:
        raise ValueError("give starts or bounds")
    found: list[np.ndarray] = []
    for x0 in pts:
        x = _solve(f, params, x0, method)
        if not np.all(np.isfinite(x)):
            continue
        if np.abs(f(x, params)).max() > tol * max(1.0, np.abs(x).max()):
            continue
        if bounds is not None and (np.any(x < lo - 1e-9) or np.any(x > hi + 1e-9)):
            continue
        if any(np.abs(x - y).max() <= 1e-6 * max(1.0, np.abs(y).max()) for y in found):
            continue
        found.append(x)
    found.sort(key=lambda x: tuple(x))
    return [analyse_point(f, x, params, method=method) for x in found]


def _solve(f: Rhs, params, x0, method: str = "central") -> np.ndarray:
    """A root of ``f`` near ``x0``: MINPACK's hybrid method, then Levenberg–Marquardt
    (more robust far from the root) followed by a hybrid polish if that stalled."""
    def fun(x):
        return f(x, params)

    def jac(x):
        return jacobian(f, x, params, method=method)

    with np.errstate(over="ignore", invalid="ignore"):      # far-off trial steps
        sol = optimize.root(fun, x0, method="hybr", jac=jac)
        if not sol.success:
            sol = optimize.root(fun, x0, method="lm", jac=jac)
            sol = optimize.root(fun, sol.x, method="hybr", jac=jac)
    return sol.x


@dataclass
class HopfPoint:
    """A Hopf bifurcation: parameter value, equilibrium, and the crossing pair's
    angular frequency ``omega`` (rad per time unit of ``f``); ``direction`` is +1 when
    the pair becomes unstable as the parameter increases, −1 otherwise."""

    parameter: float
    x: np.ndarray
    omega: float
    direction: int
    eigenvalues: np.ndarray

    @property
    def frequency(self) -> float:
        """Oscillation frequency at onset, cycles per time unit of ``f``."""
        return self.omega / (2 * np.pi)


def _pair_real(fp: FixedPoint, imag_tol: float = 1e-9) -> float | None:
    """Real part of the complex pair with the largest real part (None if all real)."""
    ev = fp.eigenvalues
    cplx = ev[np.abs(ev.imag) > imag_tol * max(1.0, np.abs(ev).max())]
    return float(cplx.real.max()) if cplx.size else None


def find_hopf(f: Rhs, params: dict, name: str, values: Sequence[float], *,
              starts=None, bounds=None, n_starts: int = 16, seed: int = 0,
              xtol: float = 1e-10) -> list[HopfPoint]:
    """Hopf bifurcations of ``f`` as ``params[name]`` runs through ``values`` (sorted).

    At each value the equilibria are found (from ``starts``/``bounds`` and the previous
    value's equilibria); each equilibrium is matched to its nearest one at the next
    value, and a sign change of the real part of its leading complex pair is refined by
    Brent's method on the parameter (continuing the equilibrium by Newton's method).
    """
    values = np.asarray(values, dtype=np.float64)

    def at(v):
        return {**params, name: float(v)}

    branches = []
    for v in values:
        extra = [fp.x for fp in branches[-1]] if branches else []
        st = ([] if starts is None else list(starts)) + extra
        branches.append(fixed_points(f, at(v), starts=st or None, bounds=bounds,
                                     n_starts=n_starts, seed=seed))
    out: list[HopfPoint] = []
    for i in range(len(values) - 1):
        for a in branches[i]:
            if not branches[i + 1]:
                break
            d = [np.abs(b.x - a.x).max() for b in branches[i + 1]]
            b = branches[i + 1][int(np.argmin(d))]
            back = [np.abs(c.x - b.x).max() for c in branches[i]]
            if branches[i][int(np.argmin(back))] is not a:
                continue                                  # not the same branch
            ga, gb = _pair_real(a), _pair_real(b)
            if ga is None or gb is None or np.sign(ga) == np.sign(gb):
                continue
            hp = _refine(f, params, name, values[i], values[i + 1], a.x, b.x, xtol)
            if hp is not None:
                out.append(hp)
    return out


def _refine(f, params, name, p0, p1, x0, x1, xtol) -> HopfPoint | None:
    guess = {"x": x0}

    def solve(p):
        frac = (p - p0) / (p1 - p0)
        start = guess["x"] if np.isfinite(guess["x"]).all() else x0 + frac * (x1 - x0)
        q = {**params, name: float(p)}
        x = _solve(f, q, start)
        guess["x"] = x
        return analyse_point(f, x, q)

    def g(p):
        r = _pair_real(solve(p))
        return np.nan if r is None else r

    g0, g1 = g(p0), g(p1)
    if not (np.isfinite(g0) and np.isfinite(g1)) or np.sign(g0) == np.sign(g1):
        return None
    p = optimize.brentq(g, p0, p1, xtol=xtol, rtol=4 * np.finfo(float).eps)
    fp = solve(p)
    ev = fp.eigenvalues
    pair = ev[np.abs(ev.imag) > 0]
    omega = float(np.abs(pair[np.argmax(pair.real)].imag)) if pair.size else float("nan")
    return HopfPoint(float(p), fp.x, omega, 1 if g1 > g0 else -1, ev)


def node_rhs(model, options: dict | None = None, n_inputs: int | None = None) -> Rhs:
    """A cosim neural-mass model (:mod:`cosim.models`, name or declaration) as one
    uncoupled node ``f(x, params) -> dx/dt`` (per ms) for the functions above.

    ``params`` maps model parameter names to values (the others take the model
    defaults) and may hold ``"coupling_input"``: the long-range input ``c`` (scalar or
    one value per coupling input; default 0), so that bifurcations can also be followed
    along the input a node receives.  Eigenvalues are then in 1/ms and Hopf frequencies
    in cycles per ms (kHz).
    """
    from ..models import get_model

    m = get_model(model) if isinstance(model, str) else model
    dfun = m.dfun(m.resolve_options(options))
    names = m.parameter_names
    defaults = m.default_parameters()
    n_c = len(m.coupling_variables) if n_inputs is None else int(n_inputs)

    def f(x, params=None):
        params = params or {}
        unknown = set(params) - set(names) - {"coupling_input"}
        if unknown:
            raise KeyError(f"unknown parameter(s) of {m.name}: {', '.join(sorted(unknown))}")
        p = defaults.copy()
        for k, v in params.items():
            if k != "coupling_input":
                p[names.index(k)] = v
        c = np.zeros((1, n_c))
        c[0, :] = params.get("coupling_input", 0.0)
        dx = np.zeros((1, m.n_state))
        dfun(np.asarray(x, dtype=np.float64).reshape(1, -1), c, p.reshape(1, -1), 0, dx)
        return dx[0]

    return f


def input_jacobian(f: Rhs, x: np.ndarray, params: dict | None = None, *,
                   n_inputs: int = 1, step: float = 1e-6) -> np.ndarray:
    """``∂f/∂c`` ``(n_state, n_inputs)``: response of a :func:`node_rhs` node to its
    long-range input ``params["coupling_input"]`` (central differences around the given
    input, default 0).  For linear coupling ``c_k = G Σ_j W_ij x_j[v_k]`` the coupling
    Jacobian of :mod:`cosim.analysis.modes` is ``B[:, v_k] = ∂f/∂c_k``."""
    params = dict(params or {})
    c0 = np.broadcast_to(np.asarray(params.get("coupling_input", 0.0), dtype=np.float64),
                         (n_inputs,)).copy()
    out = np.empty((np.asarray(x).size, n_inputs))
    for k in range(n_inputs):
        cp, cm = c0.copy(), c0.copy()
        cp[k] += step
        cm[k] -= step
        out[:, k] = (np.asarray(f(x, {**params, "coupling_input": cp}))
                     - np.asarray(f(x, {**params, "coupling_input": cm}))) / (2 * step)
    return out
