"""Reading a fit description (``FIT.toml``) into a validated :class:`FitSpec`.

The keys are declared in :mod:`cosim.fitting.declarations` (``cosim describe fit``).
Everything is checked before anything runs: the base scenario with ``[set]`` applied is
validated at the initial point and with each free parameter at both of its bounds; the
target's size must match the connectome.  Problems raise :class:`~cosim.errors.CosimError`
naming the fit file (or the data file) and the key.
"""

from __future__ import annotations

import copy
import hashlib
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CosimError
from ..schema import Reader
from ..scenario import read_toml
from . import declarations as D
from .data import load_array, resolve_path


@dataclass(frozen=True)
class FreeParam:
    """One free parameter: its name in results, scenario key, box and start."""

    name: str
    key: str
    low: float
    high: float
    initial: float
    points: int | None = None

    @property
    def width(self) -> float:
        return self.high - self.low

    def to_unit(self, x: float) -> float:
        return (x - self.low) / self.width

    def from_unit(self, u: float) -> float:
        return self.low + float(np.clip(u, 0.0, 1.0)) * self.width


@dataclass
class Target:
    """The empirical observables: ``fc (region, region)``, optional ``timeseries (time,
    region)`` sampled every ``period_ms``, and how the simulation is compared with them."""

    fc: np.ndarray
    timeseries: np.ndarray | None
    period_ms: float | None
    dataset: str
    discard_ms: float
    fcd_window_ms: float
    fcd_step_ms: float
    fcd: np.ndarray | None = None           # the empirical FCD, when a time series is given


@dataclass
class FitSpec:
    path: Path
    scenario: Path
    base: dict                              # base scenario, [set] applied, paths absolute
    out: Path
    budget: int
    seed: int
    keep_outputs: bool
    params: list[FreeParam]
    target: Target
    loss_fc: float
    loss_fcd: float
    loss_mse: float
    method: str
    population: int
    sigma0: float
    identify: dict
    design: int = 0                         # CMA-ES initial design points
    connectome: dict | None = None          # {weights, tract_lengths} arrays to write
    digest: str = ""                        # of what determines every evaluation
    n_regions: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def values(self, unit_point) -> dict[str, float]:
        """``{name: value}`` of a point in the unit box."""
        return {p.name: _round(p.from_unit(u)) for p, u in zip(self.params, unit_point)}

    def unit(self, values: dict[str, float]) -> np.ndarray:
        return np.array([p.to_unit(values[p.name]) for p in self.params])

    def scenario_data(self, values: dict[str, float], output: Path) -> dict:
        """The base scenario with the free parameters set to ``values``."""
        data = copy.deepcopy(self.base)
        for p in self.params:
            set_scenario_key(data, p.key, values[p.name], file=str(self.path),
                             where=f"parameters.{p.name}.key")
        data.setdefault("simulation", {})["output"] = str(output)
        return data


def _round(x: float) -> float:
    """17 significant digits survive TOML and JSON unchanged; rounding to 15 keeps the
    values readable without changing what is simulated in any meaningful way."""
    return float(f"{x:.15g}")


def set_scenario_key(data: dict, key: str, value: Any, *, file: str, where: str) -> None:
    """``data[a][b][c] = value`` for ``key = "a.b.c"``.  A number met on the way becomes
    ``{default = number}`` so that ``parameters.P_e.<label>`` sets one region's value of a
    parameter given for all regions (the scenario's per-region table form)."""
    node = data
    segs = key.split(".")
    for i, seg in enumerate(segs[:-1]):
        nxt = node.get(seg)
        if nxt is None:
            nxt = node[seg] = {}
        elif isinstance(nxt, (int, float)) and not isinstance(nxt, bool) and i >= 1:
            nxt = node[seg] = {"default": nxt}
        elif not isinstance(nxt, dict):
            raise CosimError(f"{'.'.join(segs[:i + 1])} is not a table in the scenario "
                             f"(cannot set {key})", file=file, key=where)
        node = nxt
    if isinstance(node.get(segs[-1]), dict):
        if "default" in node[segs[-1]]:
            node[segs[-1]]["default"] = value
            return
        raise CosimError(f"{key} is a table in the scenario; name a value inside it",
                         file=file, key=where)
    node[segs[-1]] = value


def load_fit(path: str | Path, *, out: str | Path | None = None,
             budget: int | None = None) -> FitSpec:
    """Read and validate ``path`` (see module docstring); ``out``/``budget`` override."""
    from ..sweep import absolutize_paths

    path = Path(path)
    text, raw = read_toml(path)
    file = str(path)
    base_dir = path.resolve().parent
    r = Reader(raw, file)
    fit = r.table("fit")
    f = fit.params(D.FIT.params)
    fit.done()
    scenario = resolve_path(f["scenario"], base_dir, file=file, key="fit.scenario")
    if not scenario.is_file():
        raise CosimError(f"no such scenario file ({scenario})", file=file, key="fit.scenario")
    sc_text, base = read_toml(scenario)
    base = absolutize_paths(base, scenario.resolve().parent)
    sets = r.table("set", {})
    for k in sets.keys():
        v = _resolve_values(sets.any(k), base_dir, file, f"set.{k}")
        if not all(s and s.replace("_", "").replace("-", "").isalnum() for s in k.split(".")):
            raise CosimError("is not a dotted scenario key", file=file, key=f"set.{k}")
        set_scenario_key(base, k, v, file=file, where=f"set.{k}")
    conn = None
    if r.has("connectome"):
        conn = _connectome(r.table("connectome"), base_dir, file)
    params = _params(r, file)
    target = _target(r, base_dir, file)
    lr = r.table("loss", {})
    loss = lr.params(D.LOSS.params)
    lr.done()
    if loss["fc"] == 0 and loss["fcd"] == 0 and loss["fc_mse"] == 0:
        raise CosimError("every loss weight is 0", file=file, key="loss")
    opt_r = r.table("optimizer", {})
    opt = opt_r.params(D.OPTIMIZER.params)
    opt_r.done()
    idr = r.table("identify", {})
    ident = idr.params(D.IDENTIFY.params)
    idr.done()
    r.done()
    if opt["method"] == "cmaes":
        _require_cma(file)
    if budget is not None and budget < 1:
        raise CosimError(f"must be >= 1, got {budget}", key="--budget")
    arrays = [target.fc, target.timeseries, *((conn or {}).values())]
    digest = hashlib.sha256("\0".join(
        [_strip_budget(text), sc_text]
        + [hashlib.sha256(a.tobytes()).hexdigest() for a in arrays if a is not None]
    ).encode()).hexdigest()[:16]
    spec = FitSpec(path=path, scenario=scenario, base=base,
                   out=Path(out or f["out"] or f"{path.stem}-fit"),
                   budget=budget or f["budget"], seed=f["seed"], keep_outputs=f["keep_outputs"],
                   params=params, target=target, loss_fc=loss["fc"], loss_fcd=loss["fcd"],
                   loss_mse=loss["fc_mse"],
                   method=opt["method"], population=opt["population"], sigma0=opt["sigma0"],
                   design=(opt["population"] if opt["design"] is None else opt["design"]),
                   identify=ident, connectome=conn, digest=digest)
    _check_fcd(spec, file)
    _validate(spec)
    return spec


def _strip_budget(text: str) -> str:
    """The fit text without its budget line: a larger budget continues the same fit."""
    return "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("budget"))


def _require_cma(file: str) -> None:
    try:
        import cma  # noqa: F401
    except ImportError:
        raise CosimError("method \"cmaes\" needs the cma package (pip install "
                         "'brain-cosim[fit]')", file=file, key="optimizer.method") from None


def _resolve_values(v: Any, base_dir: Path, file: str, key: str) -> Any:
    if isinstance(v, str) and v.startswith("pkg:"):
        return str(resolve_path(v, base_dir, file=file, key=key))
    if isinstance(v, dict):
        return {k: _resolve_values(x, base_dir, file, f"{key}.{k}") for k, x in v.items()}
    return v


def _connectome(cr: Reader, base_dir: Path, file: str) -> dict:
    c = cr.params(D.CONNECTOME.params)
    cr.done()
    arrays = {}
    for name in ("weights", "tract_lengths"):
        p = resolve_path(c[name], base_dir, file=file, key=f"connectome.{name}")
        arrays[name] = load_array(p, file=file, key=f"connectome.{name}")
    w = arrays["weights"]
    if c["normalize"] == "max":
        if w.max() <= 0:
            raise CosimError("weights have no positive entry to normalise by", file=file,
                             key="connectome.normalize")
        arrays["weights"] = w / w.max()
    return arrays


def _params(r: Reader, file: str) -> list[FreeParam]:
    pr = r.table("parameters")
    names = pr.keys()
    if not names:
        raise CosimError("no free parameters: give at least one [parameters.<name>]",
                         file=file, key="parameters")
    out = []
    for name in names:
        t = pr.table(name)
        v = t.params(D.PARAMETER.params)
        t.done()
        where = f"parameters.{name}"
        b = v["bounds"]
        if len(b) != 2 or not all(math.isfinite(x) for x in b) or not b[0] < b[1]:
            raise CosimError(f"must be [low, high] with finite low < high, got {b}", file=file,
                             key=f"{where}.bounds")
        init = v["initial"] if v["initial"] is not None else 0.5 * (b[0] + b[1])
        if not b[0] <= init <= b[1]:
            raise CosimError(f"{init:g} is outside bounds [{b[0]:g}, {b[1]:g}]", file=file,
                             key=f"{where}.initial")
        out.append(FreeParam(name, v["key"], float(b[0]), float(b[1]), float(init), v["points"]))
    keys = [p.key for p in out]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup:
        raise CosimError(f"key {dup!r} is freed twice", file=file, key="parameters")
    return out


def _target(r: Reader, base_dir: Path, file: str) -> Target:
    from ..analysis.fc import fcd_matrix, functional_connectivity

    tr = r.table("target")
    t = tr.params(D.TARGET.params)
    tr.done()
    if t["fc"] is None and t["timeseries"] is None:
        raise CosimError("give fc (a matrix) or timeseries", file=file, key="target")
    ts = None
    if t["timeseries"] is not None:
        p = resolve_path(t["timeseries"], base_dir, file=file, key="target.timeseries")
        if p.suffix.lower() in (".h5", ".hdf5"):
            ts, period = _cosim_output(p, t, file)
            t["period"] = t["period"] or period
        else:
            ts = load_array(p, file=file, key="target.timeseries", variable=t["variable"])
            if t["layout"] == "region_time":
                ts = ts.T
        if ts.shape[0] < 3:
            raise CosimError(f"{ts.shape[0]} samples: too short for an FC (layout "
                             f"{t['layout']!r}?)", file=file, key="target.timeseries")
        flat = np.flatnonzero(ts.std(axis=0) == 0)
        if flat.size:
            raise CosimError(f"region {flat[0]} is constant: no correlation is defined",
                             file=file, key="target.timeseries")
    if t["fc"] is not None:
        p = resolve_path(t["fc"], base_dir, file=file, key="target.fc")
        fc = load_array(p, file=file, key="target.fc", variable=t["variable"])
        if fc.shape[0] != fc.shape[1]:
            raise CosimError(f"FC must be square, got {fc.shape[0]}x{fc.shape[1]}", file=file,
                             key="target.fc")
        if ts is not None and fc.shape[0] != ts.shape[1]:
            raise CosimError(f"FC has {fc.shape[0]} regions, timeseries {ts.shape[1]}",
                             file=file, key="target.fc")
    else:
        fc = functional_connectivity(ts)
    target = Target(fc, ts, t["period"], t["dataset"], t["discard"], t["fcd_window"],
                    t["fcd_step"])
    if ts is not None and t["period"] is not None:
        w, s = fcd_samples(target, t["period"])
        if w <= ts.shape[0]:
            target.fcd = fcd_matrix(ts, w, s)[0]
    return target


def _cosim_output(p: Path, t: dict, file: str) -> tuple[np.ndarray, float]:
    """``(series (time, region), period)`` of dataset ``target.dataset`` of a cosim output
    (every engine recording it, connectome order; ``target.discard`` left out)."""
    from ..analysis.io import Output
    from ..analysis.report import join_regions

    if not p.is_file():
        raise CosimError(f"{p.name}: no such file ({p})", file=file, key="target.timeseries")
    try:
        with Output(p) as out:
            j = join_regions(out, t["dataset"], t["discard"])
    except CosimError as exc:
        raise CosimError(f"{p.name}: {exc.reason}", file=file, key="target.timeseries") from None
    if j is None:
        raise CosimError(f"{p.name}: no engine records dataset {t['dataset']!r}", file=file,
                         key="target.timeseries")
    return j.data, j.period_ms


def fcd_samples(target: Target, period_ms: float) -> tuple[int, int]:
    """FCD window and step in samples of ``period_ms`` (window ≥ 2, step ≥ 1)."""
    return (max(2, int(round(target.fcd_window_ms / period_ms))),
            max(1, int(round(target.fcd_step_ms / period_ms))))


def _check_fcd(spec: FitSpec, file: str) -> None:
    t = spec.target
    if spec.loss_fcd > 0 and t.timeseries is not None and t.period_ms and t.fcd is None:
        raise CosimError(f"fcd_window of {t.fcd_window_ms:g} ms is longer than the time "
                         f"series ({t.timeseries.shape[0]} samples of {t.period_ms:g} ms)",
                         file=file, key="target.fcd_window")
    if spec.loss_fcd > 0 and t.fcd is None:
        raise CosimError("an FCD loss needs [target] timeseries and period", file=file,
                         key="loss.fcd")
    if spec.identify["observables"] == "fcd" and t.fcd is None:
        raise CosimError("FCD observables need [target] timeseries and period, and a time "
                         "series at least one fcd_window long", file=file,
                         key="identify.observables")


def write_connectome(spec: FitSpec, folder: Path, *, write: bool = True) -> None:
    """Write ``[connectome]``'s matrices as ``folder/connectome.npz`` (``write``: this
    process writes it; the other MPI ranks only point at it) and point the base scenario
    at it."""
    if spec.connectome is None:
        return
    p = folder / "connectome.npz"
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(p, weights=spec.connectome["weights"],
                 tract_lengths=spec.connectome["tract_lengths"])
    spec.base.setdefault("connectome", {})["source"] = str(p.resolve())


def _validate(spec: FitSpec) -> None:
    """Load the scenario at the initial point and with each parameter at its bounds."""
    from ..scenario import load_scenario
    from ..toml_writer import dumps

    file = str(spec.path)
    init = {p.name: p.initial for p in spec.params}
    points = [("initial", init)]
    for p in spec.params:
        points += [(f"{p.name} = {x:g}", {**init, p.name: x}) for x in (p.low, p.high)]
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        saved = copy.deepcopy(spec.base)
        write_connectome(spec, tmpdir)
        try:
            for label, values in points:
                data = spec.scenario_data(values, tmpdir / "check.h5")
                f = tmpdir / "check.toml"
                f.write_text(dumps(data), encoding="utf-8")
                try:
                    sc = load_scenario(f)
                except CosimError as exc:
                    where = f"{exc.key}: " if exc.key else ""
                    name = _param_of(spec, exc.key)
                    raise CosimError(f"{where}{exc.reason} (scenario "
                                     f"{spec.scenario.name} at {label})", file=file,
                                     key=f"parameters.{name}" if name else "fit.scenario"
                                     ) from None
        finally:
            spec.base = saved
    n = sc.connectome.n_regions
    spec.n_regions = n
    if spec.target.fc.shape[0] != n:
        raise CosimError(f"target has {spec.target.fc.shape[0]} regions, the scenario's "
                         f"connectome {n}", file=file,
                         key="target.fc" if spec.target.timeseries is None else "target.timeseries")


def _param_of(spec: FitSpec, key: str | None) -> str | None:
    if not key:
        return None
    for p in spec.params:
        if key == p.key or key.startswith(p.key + ".") or p.key.startswith(key + "."):
            return p.name
        # per-region keys are reported by the scenario without the label
        if p.key.rsplit(".", 1)[0] == key:
            return p.name
    return None
