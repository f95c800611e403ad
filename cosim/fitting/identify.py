"""Which parameters can the data pin down?  ``cosim identify FIT.toml``.

**Observables** ``y(θ)`` (``[identify] observables``): ``"fc"`` — the Fisher-z transformed
upper triangle of the simulated FC, ``z_k = artanh r_k`` (k over region pairs); ``"fcd"`` —
the Fisher-z transformed quantiles of the FCD values (the upper triangle of the FCD matrix,
windows ``[target] fcd_window`` every ``fcd_step``) at probabilities ``(k + ½)/Q``,
``Q = fcd_quantiles`` (numpy's linear interpolation between order statistics), against the
same quantiles of the target's FCD.  They are *noise-free* in the sense that every
evaluation runs with the same seeds (the scenario's ``[simulation] seed``): ``y`` is a
deterministic, smooth function of ``θ`` — the frozen-noise realisation is part of the model.

**Structural (local) identifiability** at a point ``θ₀`` (``--point``, else the fit's best,
else the parameters' initial values): the sensitivity matrix ``S = ∂y/∂u`` in the unit box
``u = (θ − low)/(high − low)``, by central differences with step ``h = [identify] step``
(``y(u ± h e_j)``; one-sided at a bound; error O(h²)).  Its singular values ``s₁ ≥ … ≥ s_d``;
a right singular vector whose ``s_k < tolerance · s₁`` is a combination of parameters the
observables cannot separate (shown in parameter units and as relative changes
``Δθ_j / θ_j``: two gains entering only as a product give ``(1, −1)/√2`` there).

**Practical identifiability**: profile likelihoods under the noise model *the empirical
Fisher-z FC entries are the model's plus independent Gaussian errors of one unknown
variance σ²* (σ profiled out), so ``−2 log L(θ) = N log RSS(θ) + const`` with
``RSS = Σ_k (z_k(θ) − z_k^emp)²`` over the ``N`` region pairs.  First the maximum-likelihood
point (Nelder–Mead from ``θ₀``, ``fit_budget`` evaluations); then for each parameter,
``profile_points`` values across its bounds, the others re-optimised at each (Nelder–Mead,
``inner_budget`` evaluations, warm-started from the neighbouring point), and each crossing
of the threshold refined by bisection (3 steps).  The ``level`` interval is the set where
``RSS_prof ≤ RSS_min (1 + F_{1, N−d}(level) / (N − d))`` — the F-based profile interval of
nonlinear least squares with σ² estimated (Bates & Watts 1988, §6; exact for a linear
model).  A profile that never leaves the interval inside the bounds is **flat**: the
parameter is not identifiable from these data; one that leaves it on one side only is
bounded on that side only.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TextIO

import numpy as np

from ..errors import CosimError
from .objective import read_simulated, run_variant, write_variant
from .spec import FitSpec


class _Model:
    """Memoised evaluations of ``y(u)`` in the fit folder's ``identify/``."""

    def __init__(self, spec: FitSpec, stream: TextIO | None):
        from ..analysis.fc import upper_triangle

        self.spec = spec
        self.folder = spec.out / "identify"
        self.cache: dict[tuple, np.ndarray | None] = {}
        self.stream = stream
        self.fcd = spec.identify["observables"] == "fcd"
        self.z_emp = (fcd_observables(spec.target.fcd, spec.identify["fcd_quantiles"])
                      if self.fcd else _fisher(upper_triangle(spec.target.fc)))
        if self.z_emp is None:
            raise CosimError("the target's FCD has a single window: no FCD values to take "
                             "quantiles of (shorten fcd_window or fcd_step)",
                             file=str(spec.path), key="target.fcd_window")
        self.n = 0

    def observables(self, sim) -> np.ndarray | None:
        from ..analysis.fc import fcd_matrix, functional_connectivity, upper_triangle
        from .spec import fcd_samples

        if not self.fcd:
            return _fisher(upper_triangle(functional_connectivity(sim.series)))
        w, s = fcd_samples(self.spec.target, sim.period_ms)
        if w > sim.series.shape[0]:
            raise CosimError(f"the simulated {self.spec.target.dataset!r} series "
                             f"({sim.series.shape[0]} samples of {sim.period_ms:g} ms) is "
                             f"shorter than one FCD window", file=str(self.spec.path),
                             key="target.fcd_window")
        return fcd_observables(fcd_matrix(sim.series, w, s)[0],
                               self.spec.identify["fcd_quantiles"])

    def y(self, u) -> np.ndarray | None:
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        values = self.spec.values(u)
        key = tuple(values[n] for n in self.spec.names)
        if key in self.cache:
            return self.cache[key]
        toml, out = write_variant(self.spec, self.folder, self.n, values)
        self.n += 1
        y = None
        if run_variant(toml, out) == "ok":
            sim = read_simulated(self.spec, out)
            if np.isfinite(sim.series).all():
                y = self.observables(sim)
                if y is None or not np.isfinite(y).all():
                    y = None
        out.unlink(missing_ok=True)
        self.cache[key] = y
        if self.stream is not None and self.n % 10 == 0:
            print(f"identify: {self.n} evaluations", file=self.stream, flush=True)
        return y

    def rss(self, u) -> float:
        y = self.y(u)
        return math.inf if y is None else float(((y - self.z_emp) ** 2).sum())


def _fisher(r: np.ndarray) -> np.ndarray:
    return np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12))


def fcd_observables(fcd: np.ndarray, n_quantiles: int) -> np.ndarray | None:
    """Fisher-z of the quantiles at ``(k + ½)/n`` of the FCD matrix's finite upper-triangle
    values; ``None`` when there are none (a single window)."""
    iu = np.triu_indices(fcd.shape[0], 1)
    v = fcd[iu]
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    return _fisher(np.quantile(v, (np.arange(n_quantiles) + 0.5) / n_quantiles))


def sensitivity(model: _Model, u0: np.ndarray, h: float) -> np.ndarray:
    """``S (pair, parameter) = ∂y/∂u`` by central differences (one-sided at a bound)."""
    y0 = model.y(u0)
    if y0 is None:
        raise CosimError("the observables are not defined at the point (the run diverged or "
                         "a region's signal is constant)", file=str(model.spec.path),
                         key="identify")
    cols = []
    for j in range(u0.size):
        e = np.zeros_like(u0)
        e[j] = h
        lo, hi = u0 - e, u0 + e
        if hi[j] > 1.0:
            a, b, span = model.y(lo), y0, h
        elif lo[j] < 0.0:
            a, b, span = y0, model.y(hi), h
        else:
            a, b, span = model.y(lo), model.y(hi), 2 * h
        if a is None or b is None:
            raise CosimError("a run near the point diverged; reduce identify.step",
                             file=str(model.spec.path), key="identify.step")
        cols.append((b - a) / span)
    return np.stack(cols, axis=1)


def _minimize(f, x0: np.ndarray, maxfev: int) -> tuple[np.ndarray, float]:
    from scipy.optimize import minimize

    if x0.size == 0:
        return x0, f(x0)
    res = minimize(f, x0, method="Nelder-Mead", bounds=[(0.0, 1.0)] * x0.size,
                   options={"maxfev": maxfev, "xatol": 1e-4, "fatol": 0.0,
                            "initial_simplex": _simplex(x0)})
    return np.clip(res.x, 0, 1), float(res.fun)


def _simplex(x0: np.ndarray) -> np.ndarray:
    """A simplex of edge 0.1 (in the unit box) pointing inwards from ``x0``."""
    pts = [x0.copy()]
    for j in range(x0.size):
        p = x0.copy()
        p[j] += 0.1 if x0[j] <= 0.9 else -0.1
        pts.append(p)
    return np.array(pts)


def _profile(model: _Model, j: int, uhat: np.ndarray, npts: int, inner: int, threshold_of):
    """Profile of parameter ``j``: ``[(u_j, rss, u_opt)]`` sorted by u_j."""
    d = uhat.size
    others = [k for k in range(d) if k != j]

    def at(uj: float, start: np.ndarray):
        def f(v):
            u = np.empty(d)
            u[j] = uj
            u[others] = v
            return model.rss(u)
        v, val = _minimize(f, start[others], inner)
        u = np.empty(d)
        u[j] = uj
        u[others] = v
        return val, u

    grid = np.linspace(0.0, 1.0, npts)
    k0 = int(np.argmin(np.abs(grid - uhat[j])))
    pts: dict[float, tuple[float, np.ndarray]] = {}
    for order in (range(k0, npts), range(k0, -1, -1)):
        start = uhat.copy()
        for k in order:
            uj = float(grid[k])
            if uj not in pts:
                pts[uj] = at(uj, start)
            start = pts[uj][1]
    # refine each crossing of the threshold by bisection
    thr = threshold_of()
    for _ in range(3):
        xs = sorted(pts)
        for a, b in zip(xs, xs[1:]):
            ra, rb = pts[a][0], pts[b][0]
            if (ra <= thr) != (rb <= thr):
                m = 0.5 * (a + b)
                pts[m] = at(m, pts[a if ra <= rb else b][1])
        thr = threshold_of()
    return [(x, pts[x][0], pts[x][1]) for x in sorted(pts)]


def _interval(prof, thr: float):
    """Ends of the region ``rss ≤ thr`` around the minimum, linearly interpolated;
    ``None`` for a side that reaches the bound."""
    xs = np.array([p[0] for p in prof])
    rs = np.array([p[1] for p in prof])
    k = int(np.argmin(rs))
    lo = hi = None
    for i in range(k, 0, -1):
        if rs[i - 1] > thr:
            lo = _cross(xs[i - 1], rs[i - 1], xs[i], rs[i], thr)
            break
    for i in range(k, len(xs) - 1):
        if rs[i + 1] > thr:
            hi = _cross(xs[i], rs[i], xs[i + 1], rs[i + 1], thr)
            break
    return lo, hi


def _cross(x0, r0, x1, r1, thr) -> float:
    if not (math.isfinite(r0) and math.isfinite(r1)) or r0 == r1:
        return float(x0 if r0 <= thr else x1)
    return float(x0 + (thr - r0) * (x1 - x0) / (r1 - r0))


def identify(spec: FitSpec, point: dict | None = None, stream: TextIO | None = sys.stderr,
             write: bool = True) -> dict:
    """Sensitivity and profiles (see module docstring); the result as a JSON-able dict,
    also written to ``<out>/identify.json``."""
    from scipy import stats

    opts = spec.identify
    model = _Model(spec, stream)
    if point is None:
        point = _best_point(spec)
    u0 = spec.unit(point)
    d = len(spec.params)
    widths = np.array([p.width for p in spec.params])
    # -- structural
    S = sensitivity(model, u0, opts["step"])
    _, s, vt = np.linalg.svd(S, full_matrices=False)
    rel = s / s[0] if s[0] > 0 else np.zeros_like(s)
    theta0 = np.array([point[n] for n in spec.names])
    combos = []
    for k in range(d):
        if rel[k] < opts["tolerance"]:
            v = vt[k] * widths
            v = v / np.linalg.norm(v)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(theta0 != 0, v / theta0, np.nan)
            r = r / np.linalg.norm(r) if np.isfinite(r).all() else r
            sign = np.sign(v[np.argmax(np.abs(v))])
            combos.append({"singular_value": float(s[k]), "relative": float(rel[k]),
                           "direction": dict(zip(spec.names, (sign * v).tolist())),
                           "relative_direction": dict(zip(spec.names, (sign * r).tolist()))})
    # -- practical
    n_obs = model.z_emp.size
    if n_obs <= d:
        what = ("FCD quantiles" if model.fcd else "FC entries")
        raise CosimError(f"{n_obs} {what} for {d} parameters: a profile likelihood needs "
                         f"more observables than parameters", file=str(spec.path),
                         key="identify.fcd_quantiles" if model.fcd else "parameters")
    fq = float(stats.f.ppf(opts["level"], 1, n_obs - d))
    uhat, rss_hat = _minimize(model.rss, u0.copy(), opts["fit_budget"])
    if not math.isfinite(rss_hat):
        raise CosimError("no finite likelihood near the point", file=str(spec.path),
                         key="identify")

    def threshold():
        rmin = min([rss_hat] + [_rss_of(model, key) for key in model.cache])
        return rmin * (1.0 + fq / (n_obs - d))

    profiles = {}
    for j, p in enumerate(spec.params):
        prof = _profile(model, j, uhat, opts["profile_points"], opts["inner_budget"], threshold)
        profiles[p.name] = prof
    thr = threshold()
    rmin = thr / (1.0 + fq / (n_obs - d))
    out_params = {}
    for j, p in enumerate(spec.params):
        prof = profiles[p.name]
        lo, hi = _interval(prof, thr)
        flat = lo is None and hi is None
        out_params[p.name] = {
            "estimate": p.from_unit(float(prof[int(np.argmin([q[1] for q in prof]))][0])),
            "ci": [p.from_unit(lo) if lo is not None else p.low,
                   p.from_unit(hi) if hi is not None else p.high],
            "ci_closed": [lo is not None, hi is not None],
            "flat": flat,
            "identifiable": lo is not None and hi is not None,
            "profile": [{"value": p.from_unit(x), "rss": r,
                         "others": spec.values(u)} for x, r, u in prof],
        }
    result = {
        "point": point, "step": opts["step"], "n_observables": int(n_obs),
        "singular_values": s.tolist(), "relative_singular_values": rel.tolist(),
        "sensitivity": (S / widths).tolist(),
        "unidentifiable_combinations": combos,
        "observables": opts["observables"],
        "noise_model": ("Fisher-z FCD quantiles" if model.fcd else "Fisher-z FC entries")
        + " = model + iid Gaussian, unknown variance",
        "level": opts["level"], "rss_min": rmin, "threshold": thr,
        "mle": spec.values(uhat), "parameters": out_params, "evaluations": model.n,
    }
    if write:
        spec.out.mkdir(parents=True, exist_ok=True)
        (spec.out / "identify.json").write_text(json.dumps(result, indent=1) + "\n",
                                                encoding="utf-8")
    return result


def _rss_of(model: _Model, key: tuple) -> float:
    y = model.cache[key]
    return math.inf if y is None else float(((y - model.z_emp) ** 2).sum())


def _best_point(spec: FitSpec) -> dict:
    best = spec.out / "best.json"
    if best.exists():
        try:
            vals = json.loads(best.read_text(encoding="utf-8"))["params"]
            if set(vals) == set(spec.names):
                return {n: float(vals[n]) for n in spec.names}
        except (ValueError, KeyError, TypeError):
            pass
    return {p.name: p.initial for p in spec.params}


def format_result(res: dict) -> str:
    lines = [f"sensitivity at {', '.join(f'{k}={v:.6g}' for k, v in res['point'].items())} "
             f"({res['n_observables']} Fisher-z "
             f"{'FCD quantiles' if res.get('observables') == 'fcd' else 'FC entries'}, "
             f"step {res['step']:g} of each "
             f"bound's width)"]
    lines.append("singular values: " + ", ".join(f"{s:.4g}" for s in res["singular_values"])
                 + "  (relative: " + ", ".join(f"{r:.3g}" for r in
                                               res["relative_singular_values"]) + ")")
    for c in res["unidentifiable_combinations"]:
        dirs = ", ".join(f"{k} {v:+.3f}" for k, v in c["relative_direction"].items())
        lines.append(f"NOT IDENTIFIABLE: the observables do not change along relative "
                     f"direction ({dirs}) (singular value {c['relative']:.2e} of the largest)")
    lines.append(f"profiles ({res['level']:.0%} intervals; noise model: {res['noise_model']}):")
    for name, p in res["parameters"].items():
        state = ("FLAT: not identifiable" if p["flat"] else "identifiable" if p["identifiable"]
                 else "bounded on one side only")
        lines.append(f"  {name} = {p['estimate']:.6g}  CI [{p['ci'][0]:.6g}, {p['ci'][1]:.6g}]"
                     f"  {state}")
    lines.append(f"{res['evaluations']} evaluations")
    return "\n".join(lines)
