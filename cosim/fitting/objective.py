"""Observables of a run and the loss against the target; one evaluation end to end.

Loss (weights from ``[loss]``)::

    loss = w_fc (1 − r(triu FC_sim, triu FC_emp)) + w_fcd KS(FCD_sim values, FCD_emp values)
           + w_mse mean_k (triu FC_sim − triu FC_emp)²_k

``r``: Pearson correlation of the upper triangles (diagonal excluded,
:func:`cosim.analysis.fc.matrix_correlation`); ``KS``: the two-sample Kolmogorov–Smirnov
distance of the FCD upper-triangle values (:func:`cosim.analysis.fc.fcd_ks_distance`,
lag ≥ 1 as neurolib does).  A run that blows up (NaN) or gives no defined correlation
scores the worst possible loss ``2 w_fc + w_fcd + 4 w_mse`` with status ``"invalid"``, so that the
optimiser moves away from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CosimError, NumericalError
from .spec import FitSpec, fcd_samples


@dataclass
class Simulated:
    """A run's signal compared with the target: ``series (time, region)``, its period, and
    the empirical FC restricted to the simulated regions (connectome order)."""

    series: np.ndarray
    period_ms: float
    fc_emp: np.ndarray


def worst_loss(spec: FitSpec) -> float:
    return 2.0 * spec.loss_fc + spec.loss_fcd + 4.0 * spec.loss_mse


def read_simulated(spec: FitSpec, output: Path) -> Simulated:
    """The target dataset of ``output`` (every engine recording it, connectome order)."""
    from ..analysis.io import Output
    from ..analysis.report import join_regions

    t = spec.target
    with Output(output) as out:
        j = join_regions(out, t.dataset, t.discard_ms)
    if j is None:
        raise CosimError(f"the scenario records no dataset {t.dataset!r} (record it, e.g. "
                         f"[record.<engine>.bold], or change target.dataset)",
                         file=str(spec.path), key="target.dataset")
    fc_emp = t.fc
    if j.data.shape[1] != fc_emp.shape[0]:
        if j.connectome_index is None:
            raise CosimError(f"{j.data.shape[1]} simulated regions, target {fc_emp.shape[0]}",
                             file=str(spec.path), key="target")
        fc_emp = fc_emp[np.ix_(j.connectome_index, j.connectome_index)]
    if j.data.shape[0] < 3:
        raise CosimError(f"{j.data.shape[0]} samples of {t.dataset!r} after the discarded "
                         f"{t.discard_ms:g} ms: too few for an FC", file=str(spec.path),
                         key="target.discard")
    return Simulated(j.data, j.period_ms, fc_emp)


def fc_loss(fc_sim: np.ndarray, fc_emp: np.ndarray) -> tuple[float, float]:
    """``(1 − r, r)`` of the FC upper triangles."""
    from ..analysis.fc import matrix_correlation

    r = matrix_correlation(fc_sim, fc_emp)
    return 1.0 - r, r


def fc_mse(fc_sim: np.ndarray, fc_emp: np.ndarray) -> float:
    """Mean squared difference of the FC upper triangles (entries finite in both)."""
    from ..analysis.fc import upper_triangle

    u, v = upper_triangle(fc_sim), upper_triangle(fc_emp)
    ok = np.isfinite(u) & np.isfinite(v)
    return float(np.mean((u[ok] - v[ok]) ** 2)) if ok.any() else float("nan")


def score(spec: FitSpec, sim: Simulated) -> dict:
    """``{loss, fc_r, fcd_ks, status}`` of a simulated signal."""
    from ..analysis.fc import fcd_ks_distance, fcd_matrix, functional_connectivity

    worst = worst_loss(spec)
    if not np.isfinite(sim.series).all():
        return {"loss": worst, "fc_r": None, "fcd_ks": None, "status": "invalid"}
    fc = functional_connectivity(sim.series)
    _, r = fc_loss(fc, sim.fc_emp)
    ks = None
    loss = 0.0
    if spec.loss_fc > 0:
        if not np.isfinite(r):
            return {"loss": worst, "fc_r": None, "fcd_ks": None, "status": "invalid"}
        loss += spec.loss_fc * (1.0 - r)
    mse = fc_mse(fc, sim.fc_emp)
    if spec.loss_mse > 0:
        if not np.isfinite(mse):
            return {"loss": worst, "fc_r": None, "fcd_ks": None, "status": "invalid"}
        loss += spec.loss_mse * mse
    if spec.target.fcd is not None:
        w, s = fcd_samples(spec.target, sim.period_ms)
        if w <= sim.series.shape[0]:
            fcd = fcd_matrix(sim.series, w, s)[0]
            ks = fcd_ks_distance(fcd, spec.target.fcd)
    if spec.loss_fcd > 0:
        if ks is None:
            raise CosimError(f"the simulated {spec.target.dataset!r} series "
                             f"({sim.series.shape[0]} samples of {sim.period_ms:g} ms) is "
                             f"shorter than one FCD window", file=str(spec.path),
                             key="target.fcd_window")
        loss += spec.loss_fcd * ks
    return {"loss": float(loss), "fc_r": None if not np.isfinite(r) else float(r),
            "fcd_ks": ks, "fc_mse": float(mse) if np.isfinite(mse) else None, "status": "ok"}


def eval_paths(folder: Path, index: int) -> tuple[Path, Path]:
    """The scenario file and output of evaluation ``index`` of the fit in ``folder``."""
    d = folder / "evaluations"
    return d / f"{index:05d}.toml", d / f"{index:05d}.h5"


def write_variant(spec: FitSpec, folder: Path, index: int, values: dict) -> tuple[Path, Path]:
    """Write evaluation ``index``'s scenario (the base with ``values``)."""
    from ..toml_writer import dumps, value

    toml, out = eval_paths(folder, index)
    toml.parent.mkdir(parents=True, exist_ok=True)
    header = (f"Evaluation {index} of the fit {spec.path.resolve()}\n"
              + "\n".join(f"{p.key} = {value(values[p.name])}" for p in spec.params)
              + "\nWritten by `cosim fit`.")
    toml.write_text(dumps(spec.scenario_data(values, out), header=header), encoding="utf-8")
    return toml, out


def run_variant(toml: Path, out: Path) -> str:
    """Run one evaluation's scenario in this process; ``"ok"`` or ``"diverged"`` (NaN)."""
    from ..runtime import run_scenario
    from ..scenario import load_scenario

    sc = load_scenario(toml)
    out.unlink(missing_ok=True)          # a run interrupted earlier left a partial file
    try:
        run_scenario(sc, output=out, overwrite=True, progress_stream=None)
    except NumericalError:
        return "diverged"
    return "ok"


def score_output(spec: FitSpec, out: Path, status: str = "ok") -> dict:
    if status != "ok" or not out.exists():
        return {"loss": worst_loss(spec), "fc_r": None, "fcd_ks": None,
                "status": "invalid" if status == "ok" else status}
    return score(spec, read_simulated(spec, out))


def evaluate(spec: FitSpec, folder: Path, index: int, values: dict) -> dict:
    """Evaluation ``index`` at ``values``: write, run, score; the log record."""
    tic = time.perf_counter()
    toml, out = write_variant(spec, folder, index, values)
    status = run_variant(toml, out)
    rec = score_output(spec, out, status)
    return {"index": index, "params": values, **rec, "output": str(out),
            "wall_s": round(time.perf_counter() - tic, 3)}
