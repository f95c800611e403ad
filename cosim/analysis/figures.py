"""The set of figures ``cosim plot`` draws for one output file (see :mod:`cosim.plotting`).

- ``raster_<population>.png`` — spikes and population rate of each spiking population;
- ``timeseries_<engine>_<dataset>.png`` — each region time series (first variable);
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
from .io import Output
from .report import AnalysisOptions, _fc_signal, analyze_output, join_regions


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


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
        rates = []                           # spike-rate monitor outputs
        for e in out.engines():
            if "rate" in out.datasets(e):
                s = out.series(e, "rate")
                if s.attrs.get("source") == "spikes":
                    rates.append((e, s))
        for sp in out.spikes():
            match = [s for e, s in rates if e == sp.engine]
            rate = None
            if match:
                s = match[0]
                cols = [i for i, v in enumerate(s.variables) if v in (sp.group, sp.population)] \
                    or list(range(len(s.variables)))
                rate = (s.time_ms, s.data[:, cols, 0], [s.variables[i] for i in cols])
            lo = opts.discard_ms
            rng = t_range_ms or (lo, min(lo + 2000.0, float(sp.timestamps_ms.max(initial=lo + 1.0))))
            written.append(plotting.plot_raster(
                out_dir / f"raster_{_slug(sp.population)}.png", sp.timestamps_ms, sp.node_ids,
                population=sp.population, rate=rate, t_range=rng, dpi=dpi))
        for s in out.all_series():
            if (engines and s.engine not in engines) or s.dataset == "bold":
                continue
            s = s.after(opts.discard_ms)
            if not s.data.shape[0]:
                continue
            if t_range_ms:
                keep = (s.time_ms >= t_range_ms[0]) & (s.time_ms <= t_range_ms[1])
            elif s.period_ms < 50.0:
                keep = s.time_ms <= s.time_ms[0] + 2000.0
            else:
                keep = np.ones(s.time_ms.size, bool)
            if keep.sum() < 2:
                continue
            written.append(plotting.plot_timeseries(
                out_dir / f"timeseries_{_slug(s.engine)}_{_slug(s.dataset)}.png",
                s.time_ms[keep], s.data[keep], s.regions, variables=s.variables,
                units=s.units, title=f"{s.engine}: {s.dataset}", dpi=dpi))
            key = f"spectra/{s.engine}/{s.dataset}/{s.variables[0]}"
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
                                            dpi=dpi))
            if "fcd/matrix" in arrays:
                written.append(plotting.plot_fcd(out_dir / "fcd.png", arrays["fcd/matrix"],
                                                 arrays["fcd/window_start_ms"],
                                                 window_ms=fc["fcd"]["window_ms"], dpi=dpi))
    return written
