"""What ``cosim analyze`` computes from an output file: FC, FCD, spectra, rates.

Protections (each shown in the output):

* **transient** — unless ``--discard`` is given, the first :func:`default_discard_ms` of
  the run (10 % of it, at least 500 ms, at most half) are left out of every measure: the
  start from the models' initial state otherwise dominates FC (issue 12: mean FC 0.60 with
  the transient, −0.005 without);
* **too few samples** — FC from fewer than :data:`MIN_FC_SAMPLES` samples is reported
  with a loud warning (the standard error of one correlation is about 1/√(n − 3));
  FCD windows of fewer than :data:`MIN_FCD_WINDOW_SAMPLES` samples are refused; a
  spectrum from a series shorter than one Welch segment is flagged (its resolution is
  coarser than asked);
* **peaks** are always inside ``[fmin, fmax]`` (:func:`cosim.analysis.spectra.peak_frequencies`).

:func:`analyze_output` returns a JSON-serialisable summary and the arrays behind it.  The
signal for FC/FCD is the BOLD monitor's output (``bold`` datasets of every engine joined
along the region axis, in connectome order) when present, else the first of ``rate``,
``eeg`` (region channels) or the engine's own samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import CosimError
from . import fc as fcmod
from .io import Output, Series, load_matrix
from .spectra import peak_frequencies, power_spectra

#: Datasets tried, in order, as the FC signal.
FC_PREFERENCE = ("bold", "rate", "eeg")
#: FC from fewer samples gets a warning (SE of one correlation ≈ 1/√(n − 3) = 0.19 at 30)
MIN_FC_SAMPLES = 30
#: FCD windows shorter than this (in samples) are refused
MIN_FCD_WINDOW_SAMPLES = 20


def default_discard_ms(duration_ms: float) -> float:
    """The transient left out when ``--discard`` is not given: 10 % of the run, at least
    500 ms, at most half of the run (ms)."""
    return float(min(max(500.0, 0.1 * duration_ms), 0.5 * duration_ms))


@dataclass
class AnalysisOptions:
    """Settings of :func:`analyze_output` (times in ms, frequencies in Hz)."""

    discard_ms: float | None = None  # initial transient left out (None: default_discard_ms)
    fc_dataset: str | None = None    # dataset for FC/FCD (default: FC_PREFERENCE)
    window_ms: float = 60000.0       # FCD sliding window
    step_ms: float = 2000.0          # FCD window shift
    segment_ms: float = 2000.0       # Welch segment (resolution 1000/segment_ms Hz)
    fmin_hz: float = 0.5             # peak search band
    fmax_hz: float | None = None
    max_spectrum_period_ms: float = 50.0   # only series sampled at >= 20 Hz get spectra
    empirical_fc: Path | None = None


@dataclass
class Joined:
    """A signal ``(time, region)`` joined across engines."""

    dataset: str
    variable: str
    unit: str
    data: np.ndarray
    time_ms: np.ndarray
    period_ms: float
    regions: tuple[str, ...]
    connectome_index: np.ndarray | None      # region → connectome row, when all are known
    engines: tuple[str, ...] = ()


def join_regions(out: Output, dataset: str, discard_ms: float = 0.0) -> Joined | None:
    """The first variable of ``dataset`` of every engine that records it, concatenated
    along regions (truncated to the shortest), sorted in connectome order if possible."""
    parts: list[Series] = []
    for e in out.engines():
        if dataset in out.datasets(e):
            s = out.series(e, dataset).after(discard_ms)
            if s.attrs.get("channels") == "sensors":
                continue
            parts.append(s)
    if not parts:
        return None
    period = parts[0].period_ms
    parts = [p for p in parts if abs(p.period_ms - period) <= 1e-9 * period]
    n = min(p.data.shape[0] for p in parts)
    data = np.concatenate([p.variable()[:n] for p in parts], axis=1)
    regions = tuple(r for p in parts for r in p.regions)
    labels = out.region_labels()
    index = None
    if labels and all(r in labels for r in regions):
        index = np.array([labels.index(r) for r in regions])
        order = np.argsort(index, kind="stable")
        data, regions, index = data[:, order], tuple(regions[i] for i in order), index[order]
    return Joined(dataset, parts[0].variables[0], parts[0].units[0], data,
                  parts[0].time_ms[:n], period, regions, index, tuple(p.engine for p in parts))


def _fc_signal(out: Output, opts: AnalysisOptions) -> Joined | None:
    names = [opts.fc_dataset] if opts.fc_dataset else list(FC_PREFERENCE)
    for name in names:
        j = join_regions(out, name, opts.discard_ms)
        if j is not None:
            return j
    if opts.fc_dataset:
        raise CosimError(f"no engine records dataset {opts.fc_dataset!r}", file=str(out.path))
    for e in out.engines():
        ds = out.datasets(e)
        if ds:
            return join_regions(out, ds[0], opts.discard_ms)
    return None


def _empirical(opts: AnalysisOptions, sig: Joined, labels) -> np.ndarray:
    emp = load_matrix(Path(opts.empirical_fc))
    n = len(sig.regions)
    if emp.shape == (n, n):
        return emp
    if sig.connectome_index is not None and emp.shape == (len(labels), len(labels)):
        return emp[np.ix_(sig.connectome_index, sig.connectome_index)]
    raise CosimError(f"empirical FC is {emp.shape[0]}x{emp.shape[1]}; the simulated FC has "
                     f"{n} regions" + (f" (connectome: {len(labels)})" if labels else ""),
                     file=str(opts.empirical_fc))


def _stats(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    if not v.size:
        return {"median": None, "min": None, "max": None}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def analyze_output(path: str | Path, opts: AnalysisOptions = AnalysisOptions()
                   ) -> tuple[dict, dict[str, np.ndarray]]:
    """Analyse one output file.  Returns ``(summary, arrays)``; arrays are keyed by
    HDF5-style paths (``fc/matrix``, ``spectra/<engine>/<dataset>/<variable>/psd``…)."""
    arrays: dict[str, np.ndarray] = {}
    with Output(path) as out:
        duration = float(out.attrs.get("duration_ms", np.nan))
        default = opts.discard_ms is None
        if default:
            opts = replace(opts, discard_ms=default_discard_ms(duration if np.isfinite(duration)
                                                               else 0.0))
        warnings: list[str] = []
        summary: dict = {"file": str(path), "status": str(out.attrs.get("status", "")),
                         "duration_ms": duration,
                         "discard_ms": opts.discard_ms, "discard_default": default,
                         "series": [], "spectra": [], "spikes": [], "warnings": warnings}
        for s in out.all_series():
            summary["series"].append({"engine": s.engine, "dataset": s.dataset,
                                      "shape": list(s.data.shape), "period_ms": s.period_ms,
                                      "variables": list(s.variables), "units": list(s.units)})
            s = s.after(opts.discard_ms)
            if s.dataset == "bold" or s.period_ms > opts.max_spectrum_period_ms or s.data.shape[0] < 8:
                continue
            for v, unit in zip(s.variables, s.units):
                freq, psd = power_spectra(s.variable(v), s.period_ms, segment_ms=opts.segment_ms)
                if s.data.shape[0] * s.period_ms < opts.segment_ms and v == s.variables[0]:
                    warnings.append(
                        f"spectrum of {s.engine}/{s.dataset} from {s.data.shape[0]} samples "
                        f"({s.data.shape[0] * s.period_ms:g} ms < one {opts.segment_ms:g} ms "
                        f"segment): resolution {freq[1] - freq[0]:.3g} Hz, one noisy segment")
                peaks = peak_frequencies(freq, psd, fmin=opts.fmin_hz, fmax=opts.fmax_hz)
                key = f"spectra/{s.engine}/{s.dataset}/{v}"
                arrays[f"{key}/freq_hz"], arrays[f"{key}/psd"] = freq, psd
                arrays[f"{key}/peak_hz"] = peaks
                entry = {"engine": s.engine, "dataset": s.dataset, "variable": v,
                         "psd_unit": f"{unit}^2/Hz", "peak_hz": _stats(peaks)}
                if s.dataset == "rate":
                    entry["mean"] = float(np.nanmean(s.variable(v)))
                    entry["unit"] = unit
                summary["spectra"].append(entry)
        for sp in out.spikes():
            t = sp.timestamps_ms[sp.timestamps_ms > opts.discard_ms]
            summary["spikes"].append({"population": sp.population, "n_spikes": int(t.size),
                                      "n_neurons_spiking": int(np.unique(sp.node_ids).size)})
        summary["fc"] = _fc_summary(out, opts, arrays, warnings)
    return summary, arrays


def _fc_summary(out: Output, opts: AnalysisOptions, arrays: dict,
                warnings: list[str]) -> dict | None:
    sig = _fc_signal(out, opts)
    if sig is None or sig.data.shape[0] < 3 or sig.data.shape[1] < 2:
        if sig is not None and sig.data.shape[1] >= 2:
            warnings.append(f"FC not computed: {sig.data.shape[0]} samples of {sig.dataset} "
                            f"after the {opts.discard_ms:g} ms discarded")
        return None
    n = int(sig.data.shape[0])
    if n < MIN_FC_SAMPLES:
        warnings.append(f"FC on {sig.dataset} from only {n} samples (< {MIN_FC_SAMPLES}): "
                        f"each correlation has a standard error of about "
                        f"{1 / np.sqrt(max(n - 3, 1)):.2f}; run longer or sample faster")
    fc = fcmod.functional_connectivity(sig.data)
    arrays["fc/matrix"] = fc
    res: dict = {"dataset": sig.dataset, "variable": sig.variable, "engines": list(sig.engines),
                 "n_regions": len(sig.regions),
                 "n_samples": int(sig.data.shape[0]), "period_ms": sig.period_ms,
                 "mean_fc": float(np.nanmean(fcmod.upper_triangle(fc)))}
    labels = out.region_labels()
    w = out.weights()
    if w is not None and sig.connectome_index is not None:
        sc = w[np.ix_(sig.connectome_index, sig.connectome_index)]
        res["sc_fc_correlation"] = fcmod.matrix_correlation(0.5 * (sc + sc.T), fc)
    if opts.empirical_fc is not None:
        emp = _empirical(opts, sig, labels)
        arrays["fc/empirical"] = emp
        res["empirical_fc"] = str(opts.empirical_fc)
        res["fc_agreement"] = fcmod.fc_agreement(fc, emp)
    win = int(round(opts.window_ms / sig.period_ms))
    step = max(1, int(round(opts.step_ms / sig.period_ms)))
    if win < MIN_FCD_WINDOW_SAMPLES:
        res["fcd"] = None
        res["fcd_refused"] = (f"FCD windows of {opts.window_ms:g} ms hold {win} samples of "
                              f"{sig.dataset} (< {MIN_FCD_WINDOW_SAMPLES}); use a longer "
                              f"--window")
        warnings.append(res["fcd_refused"])
    elif win <= sig.data.shape[0] and (sig.data.shape[0] - win) // step + 1 >= 3:
        fcd, starts = fcmod.fcd_matrix(sig.data, win, step)
        arrays["fcd/matrix"] = fcd
        arrays["fcd/window_start_ms"] = sig.time_ms[starts]     # first sample of each window
        lag = max(1, int(np.ceil(win / step)))
        vals = fcmod.fcd_values(fcd, lag)
        res["fcd"] = {"window_ms": win * sig.period_ms, "step_ms": step * sig.period_ms,
                      "n_windows": int(fcd.shape[0]), "min_lag_windows": lag,
                      "mean": float(np.nanmean(vals)) if vals.size else None,
                      "std": float(np.nanstd(vals)) if vals.size else None}
    else:
        res["fcd"] = None
    return res


def format_summary(summary: dict) -> str:
    """The summary as the lines ``cosim analyze`` prints."""
    how = " by default; --discard MS to change" if summary.get("discard_default") else ""
    lines = [f"{summary['file']}: status {summary['status']}, "
             f"{summary['duration_ms']:g} ms simulated"
             + (f" (first {summary['discard_ms']:g} ms discarded as transient{how})"
                if summary["discard_ms"] else "")]
    lines += [f"WARNING: {w}" for w in summary.get("warnings", ())]
    for s in summary["series"]:
        lines.append(f"  {s['engine']}/{s['dataset']}: {s['shape'][0]} samples x "
                     f"{len(s['variables'])} variables x {s['shape'][2]} regions "
                     f"every {s['period_ms']:g} ms")
    if summary["spectra"]:
        lines.append("spectral peaks (Welch), median [min, max] over regions:")
    for e in summary["spectra"]:
        p = e["peak_hz"]
        peak = "n/a" if p["median"] is None else f"{p['median']:.2f} Hz [{p['min']:.2f}, {p['max']:.2f}]"
        extra = f"; mean {e['mean']:.3g} {e['unit']}" if "mean" in e else ""
        lines.append(f"  {e['engine']}/{e['dataset']}/{e['variable']}: {peak}{extra}")
    for sp in summary["spikes"]:
        lines.append(f"spikes {sp['population']}: {sp['n_spikes']} spikes from "
                     f"{sp['n_neurons_spiking']} neurons")
    fc = summary.get("fc")
    if fc is None:
        lines.append("FC: no region signal long enough")
        return "\n".join(lines)
    lines.append(f"FC on {fc['dataset']} ({fc['variable']}) of {', '.join(fc['engines'])}: "
                 f"{fc['n_regions']} regions, "
                 f"{fc['n_samples']} samples every {fc['period_ms']:g} ms; "
                 f"mean FC {fc['mean_fc']:.3f}")
    if "sc_fc_correlation" in fc:
        lines.append(f"  SC-FC correlation (upper triangles): {fc['sc_fc_correlation']:.3f}")
    if "fc_agreement" in fc:
        lines.append(f"  agreement with {fc['empirical_fc']}: r = {fc['fc_agreement']:.3f}")
    d = fc.get("fcd")
    if d is None and fc.get("fcd_refused"):
        lines.append(f"  FCD: refused — {fc['fcd_refused']}")
    elif d is None:
        lines.append("  FCD: series shorter than 3 windows (see --window/--step)")
    else:
        mean = "n/a" if d["mean"] is None else f"{d['mean']:.3f} ± {d['std']:.3f}"
        lines.append(f"  FCD: {d['n_windows']} windows of {d['window_ms']:g} ms every "
                     f"{d['step_ms']:g} ms; non-overlapping entries {mean}")
    return "\n".join(lines)


def save_arrays(path: str | Path, summary: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays (and the summary as JSON text) to an HDF5 file."""
    import json

    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["summary_json"] = json.dumps(summary)
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
