"""The set of figures ``cosim plot`` draws for one output file (see :mod:`cosim.plotting`).

- ``raster_<engine>.png`` — spikes of each spiking engine, its cell populations in their own
  colours, and the population rates;
- ``timeseries_<engine>_<dataset>.png`` — each region time series (image: region names,
  hemisphere lines); an engine whose model declares an EEG observable is drawn as EEG
  (its EEG monitor, else the observable computed from the samples: Jansen–Rit y1 − y2)
  instead of its raw state variables; colour scales come from the samples after the
  discarded transient;
- ``field_<engine>.png`` — a neural field's snapshots on its grid and a kymograph
  (:func:`cosim.plotting.plot_field`);
- ``spectrum_<engine>_<dataset>.png`` — Welch spectra of each series sampled ≥ 20 Hz;
- ``bold.png``, ``fc.png``, ``fcd.png`` — BOLD, FC and FCD of the FC signal
  (:func:`cosim.analysis.report.analyze_output`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import plotting
from .io import Output, Series
from .spectra import peak_frequencies, power_spectra
from .report import AnalysisOptions, _fc_signal, analyze_output, join_regions


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _eeg_instead(out: Output, s: Series) -> tuple[Series | None, str]:
    """The series to draw for ``s``: an engine's raw state samples give way to its EEG —
    the engine's EEG monitor when it records one (drawn on its own: ``None`` here), else
    the model's declared EEG observable computed from the samples (Jansen–Rit: y1 − y2);
    anything else is drawn as it is.  Returns ``(series, title suffix)``."""
    if "monitor" in s.attrs or "model" not in s.attrs:
        return s, ""
    if "eeg" in out.datasets(s.engine):
        return None, ""
    from ..monitor_config import model_observable

    obs = model_observable(str(s.attrs["model"]), "eeg")
    if obs is None or obs.fn is None or not set(obs.variables) <= set(s.variables):
        return s, ""
    x = obs.fn(*(s.variable(v) for v in obs.variables), **obs.values(None))
    eeg = Series(s.engine, "eeg", np.asarray(x)[:, None, :], s.time_ms, ("eeg",), (obs.unit,),
                 s.regions, s.period_ms, {**s.attrs, "derived_from": s.dataset})
    return eeg, f" ({obs.formula or obs.doc}, the model's EEG)"


def _fc_note(fc: dict) -> str:
    """``"N samples"``, with a warning when FC rests on too few (see cosim.analysis.report)."""
    from .report import MIN_FC_SAMPLES

    n = fc["n_samples"]
    return f"{n} samples" + (f" — WARNING: fewer than {MIN_FC_SAMPLES}, unreliable"
                             if n < MIN_FC_SAMPLES else "")


def plot_output(path: str | Path, out_dir: str | Path, opts: AnalysisOptions = AnalysisOptions(),
                *, t_range_ms: tuple[float, float] | None = None, dpi: int = 300,
                engines: list[str] | None = None) -> list[Path]:
    """Draw every figure that the file's contents allow into ``out_dir``; return the paths.

    ``t_range_ms`` limits raster and time-series plots (default: the first 2 s after
    ``opts.discard_ms`` for series sampled faster than 20 Hz, everything for slower ones).
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    summary, arrays = analyze_output(path, opts)
    opts = replace(opts, discard_ms=summary["discard_ms"])     # the default resolved
    with Output(path) as out:
        rates = {}                           # spike-rate monitor outputs per engine
        for e in out.engines():
            if "rate" in out.datasets(e):
                s = out.series(e, "rate")
                if s.attrs.get("source") == "spikes":
                    rates[e] = s
        lo = opts.discard_ms
        for engine in dict.fromkeys(sp.engine for sp in out.spikes()):
            pops = sorted((sp for sp in out.spikes() if sp.engine == engine),
                          key=lambda sp: sp.first_gid)
            gids, times = out.engine_spikes(engine)
            groups = [(sp.group, sp.first_gid, sp.first_gid + sp.n_cells) for sp in pops]
            rate = None
            if engine in rates:
                s = rates[engine]
                rate = (s.time_ms, s.data[:, :, 0], list(s.variables))
            rng = t_range_ms or (lo, min(lo + 2000.0, float(times.max(initial=lo + 1.0))))
            written.append(plotting.plot_raster(
                out_dir / f"raster_{_slug(engine)}.png", times, gids, population=engine,
                rate=rate, t_range=rng, dpi=dpi, groups=groups))
        for s_full in out.all_series():
            if (engines and s_full.engine not in engines) or s_full.dataset == "bold":
                continue
            if "grid_shape" in s_full.attrs and s_full.dataset == "field":
                # a neural field's snapshots: on its grid, and as a kymograph
                written.append(plotting.plot_field(
                    out_dir / f"field_{_slug(s_full.engine)}.png", s_full.time_ms,
                    s_full.data[:, 0, :], list(s_full.attrs["grid_shape"]),
                    float(s_full.attrs["spacing_mm"]), dpi=dpi,
                    title=f"{s_full.engine}: field u"))
                continue
            s_full, derived = _eeg_instead(out, s_full)
            if s_full is None:
                continue
            s = s_full.after(opts.discard_ms)
            if not s.data.shape[0]:
                continue
            shown = s_full if t_range_ms else s
            if t_range_ms:
                keep = (shown.time_ms >= t_range_ms[0]) & (shown.time_ms <= t_range_ms[1])
            elif s.period_ms < 50.0:
                keep = shown.time_ms <= shown.time_ms[0] + 2000.0
            else:
                keep = np.ones(shown.time_ms.size, bool)
            if keep.sum() < 2:
                continue
            # colour scales from the samples after the transient, whatever is shown
            clim = [plotting.robust_limits(s.data[:, v, :]) for v in range(s.data.shape[1])]
            written.append(plotting.plot_timeseries(
                out_dir / f"timeseries_{_slug(s.engine)}_{_slug(s.dataset)}.png",
                shown.time_ms[keep], shown.data[keep], s.regions, variables=s.variables,
                units=s.units, title=f"{s.engine}: {s.dataset}" + derived, dpi=dpi, clim=clim))
            key = f"spectra/{s.engine}/{s.dataset}/{s.variables[0]}"
            if derived and s.period_ms <= opts.max_spectrum_period_ms and s.data.shape[0] >= 8:
                freq, psd = power_spectra(s.variable(), s.period_ms, segment_ms=opts.segment_ms)
                arrays[f"{key}/freq_hz"], arrays[f"{key}/psd"] = freq, psd
                arrays[f"{key}/peak_hz"] = peak_frequencies(freq, psd, fmin=opts.fmin_hz,
                                                            fmax=opts.fmax_hz)
            if f"{key}/psd" in arrays and np.any(arrays[f"{key}/psd"] > 0):
                written.append(plotting.plot_spectra(
                    out_dir / f"spectrum_{_slug(s.engine)}_{_slug(s.dataset)}.png",
                    arrays[f"{key}/freq_hz"], arrays[f"{key}/psd"], unit=s.units[0],
                    peaks_hz=arrays[f"{key}/peak_hz"], fmax_hz=opts.fmax_hz,
                    title=f"{s.engine}: {s.dataset} ({s.variables[0]})", dpi=dpi))
        bold = join_regions(out, "bold", opts.discard_ms)
        if bold is not None and bold.data.shape[0] >= 2:
            written.append(plotting.plot_bold(out_dir / "bold.png", bold.time_ms, bold.data,
                                              bold.regions, dpi=dpi))
        fc = summary.get("fc")
        sig = _fc_signal(out, opts) if fc is not None else None
        fc_regions = sig.regions if sig is not None else ()
        if fc is not None:
            written.append(plotting.plot_fc(out_dir / "fc.png", arrays["fc/matrix"],
                                            empirical=arrays.get("fc/empirical"),
                                            agreement=fc.get("fc_agreement"),
                                            source=fc["dataset"], regions=fc_regions,
                                            dpi=dpi, note=_fc_note(fc)))
            if "fcd/matrix" in arrays:
                written.append(plotting.plot_fcd(out_dir / "fcd.png", arrays["fcd/matrix"],
                                                 arrays["fcd/window_start_ms"],
                                                 window_ms=fc["fcd"]["window_ms"], dpi=dpi))
    return written
