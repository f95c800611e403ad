"""Paper-ready figures of a run: raster + population rate, region time series, power
spectra, FC and FCD matrices, BOLD.

Each function writes one PNG with labelled axes and units, sized for a journal column
(:data:`SINGLE_COLUMN_IN` = 3.5 in ≈ 89 mm, :data:`DOUBLE_COLUMN_IN` = 7.2 in ≈ 183 mm)
with 8-pt text.  matplotlib is an optional dependency (``pip install matplotlib``, or the ``plot`` extra),
imported only when a figure is drawn; figures are built with
:class:`matplotlib.figure.Figure` (no pyplot state, no display needed).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import CosimError

SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.2

_RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
       "ytick.labelsize": 7, "legend.fontsize": 7, "lines.linewidth": 0.8,
       "axes.spines.top": False, "axes.spines.right": False, "image.interpolation": "nearest"}


#: colours of cell populations in rasters (excitatory first: red, inhibitory: blue, …)
GROUP_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def hemisphere_breaks(regions: Sequence[str]) -> list[int]:
    """Indices ``i`` where region ``i`` starts another hemisphere than region ``i − 1``
    (hemispheres from the names: :func:`cosim.region_names.normalise`)."""
    from .region_names import normalise

    hemi = [normalise(r)[0] for r in regions]
    return [i for i in range(1, len(hemi)) if hemi[i] and hemi[i - 1] and hemi[i] != hemi[i - 1]]


def robust_limits(values: np.ndarray, q: float = 0.5) -> tuple[float, float]:
    """Colour limits: the ``q`` and ``100 − q`` percentiles of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [q, 100.0 - q])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)


def _region_axis(ax, regions: Sequence[str], axis: str, n: int) -> None:
    """Region names as tick labels (font shrinks with the count; every k-th beyond 90) and
    a line at every hemisphere change, on ``axis`` ("x" or "y") of an image whose pixel
    ``i`` is region ``i``."""
    if len(regions) != n:
        return
    size = 7.0 if n <= 20 else max(3.0, 140.0 / n)
    step = max(1, int(np.ceil(n / 90)))
    ticks = list(range(0, n, step))
    names = [regions[i] for i in ticks]
    if axis == "x":
        ax.set_xticks(ticks, names, rotation=90, fontsize=size)
        ax.set_xlabel("region")
    else:
        ax.set_yticks(ticks, names, fontsize=size)
        ax.set_ylabel("region")
    for i in hemisphere_breaks(regions):
        (ax.axvline if axis == "x" else ax.axhline)(i - 0.5, color="k", linewidth=0.6)


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise CosimError("plots need matplotlib: pip install matplotlib") from None
    return matplotlib


def _paper_style(fn):
    """Run a plotting function inside the paper style (8-pt text, tight bounding box)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _matplotlib().rc_context(_RC):
            return fn(*args, **kwargs)

    return wrapper


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _save(fig, path: Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit and unit not in ("1", "") else name


def _time_axis(t_ms: np.ndarray) -> tuple[np.ndarray, str]:
    """Seconds for spans over 5 s, else ms."""
    if t_ms.size and t_ms[-1] - t_ms[0] > 5000.0:
        return t_ms / 1000.0, "time (s)"
    return t_ms, "time (ms)"


@_paper_style
def plot_raster(path: Path, times_ms: np.ndarray, node_ids: np.ndarray, *, population: str,
                rate: tuple[np.ndarray, np.ndarray, Sequence[str]] | None = None,
                bin_ms: float = 5.0,
                n_neurons: int | None = None, t_range: tuple[float, float] | None = None,
                max_neurons: int = 500, dpi: int = 300,
                groups: Sequence[tuple[str, int, int]] | None = None) -> Path:
    """Spike raster (top) and population rate (bottom, Hz per neuron).

    ``groups``: cell populations ``(name, first_id, stop_id)`` of the ids: each is drawn in
    its own colour (:data:`GROUP_COLOURS`, legend), separated by a thin line, and the
    binned rate (without ``rate``) is one line per population.

    ``rate``: ``(time_ms, rate_hz (time, group), group names)`` from the rate monitor (one
    line per cell group); otherwise spikes are binned in
    ``bin_ms`` and divided by ``n_neurons`` (default: the number of distinct ids that
    spiked, stated in the axis label).  At most ``max_neurons`` ids (evenly chosen) are
    drawn.
    """
    t = np.asarray(times_ms, dtype=float)
    ids = np.asarray(node_ids)
    lo, hi = t_range if t_range else ((0.0, float(t.max())) if t.size else (0.0, 1.0))
    keep = (t >= lo) & (t <= hi)
    t, ids = t[keep], ids[keep]
    uniq = np.unique(ids)
    shown = uniq if uniq.size <= max_neurons else uniq[np.linspace(0, uniq.size - 1, max_neurons).astype(int)]
    sel = np.isin(ids, shown)
    fig = _figure(SINGLE_COLUMN_IN, 3.0)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(2.2, 1))
    size = float(np.clip(1500.0 / max(1, shown.size), 0.6, 30.0))   # tick height ~ row
    if groups:
        for k, (name, a, b) in enumerate(groups):
            m = sel & (ids >= a) & (ids < b)
            ax1.scatter(t[m], ids[m], s=size, marker="|", linewidths=0.5,
                        color=GROUP_COLOURS[k % len(GROUP_COLOURS)], rasterized=True,
                        label=f"{name} ({b - a})")
            if k:
                ax1.axhline(a - 0.5, color="0.6", linewidth=0.4)
        ax1.legend(frameon=False, ncols=len(groups), loc="lower right",
                   bbox_to_anchor=(1.0, 1.0), borderaxespad=0.1, markerscale=2)
    else:
        ax1.scatter(t[sel], ids[sel], s=size, marker="|", linewidths=0.5, color="k",
                    rasterized=True)
    ax1.set_ylabel("neuron id")
    note = f" ({shown.size} of {uniq.size} shown)" if shown.size < uniq.size else ""
    ax1.set_title(f"{population}: {t.size} spikes{note}", loc="left")
    if rate is not None:
        rt, rv, names = rate
        rv = np.asarray(rv).reshape(len(rt), -1)
        m = (rt >= lo) & (rt <= hi)
        gnames = [g[0] for g in groups] if groups else []
        for g in range(rv.shape[1]):      # sample j is the rate over the bin ending at t_j
            name = names[g] if g < len(names) else str(g)
            colour = (GROUP_COLOURS[gnames.index(name) % len(GROUP_COLOURS)] if name in gnames
                      else ("k" if rv.shape[1] == 1 else None))
            ax2.step(rt[m], rv[m, g], where="pre", color=colour, label=name)
        if rv.shape[1] > 1:
            ax2.legend(frameon=False, ncols=rv.shape[1], loc="lower right",
                       bbox_to_anchor=(1.0, 1.0), borderaxespad=0.1)
        ax2.set_ylabel("rate (Hz)")
    elif groups:
        edges = np.arange(lo, hi + bin_ms, bin_ms)
        for k, (name, a, b) in enumerate(groups):
            counts, _ = np.histogram(t[(ids >= a) & (ids < b)], edges)
            ax2.step(edges[:-1], counts / ((b - a) * bin_ms / 1000.0), where="post",
                     color=GROUP_COLOURS[k % len(GROUP_COLOURS)], label=name)
        ax2.set_ylabel("rate (Hz)")
    else:
        n = n_neurons or max(1, uniq.size)
        edges = np.arange(lo, hi + bin_ms, bin_ms)
        counts, _ = np.histogram(t, edges)
        ax2.step(edges[:-1], counts / (n * bin_ms / 1000.0), where="post", color="k")
        ax2.set_ylabel("rate (Hz)" if n_neurons else "rate (Hz/active n.)")
    ax2.set_xlabel("time (ms)")
    ax2.set_xlim(lo, hi)
    return _save(fig, path, dpi)


@_paper_style
def plot_timeseries(path: Path, time_ms: np.ndarray, data: np.ndarray, regions: Sequence[str],
                    *, variables: Sequence[str], units: Sequence[str], title: str = "",
                    max_traces: int = 12, max_variables: int = 6, dpi: int = 300,
                    clim: Sequence[tuple[float, float]] | None = None) -> Path:
    """Region time series ``data (time, variable, region)``, one panel per variable (at
    most ``max_variables``): overlaid traces for up to ``max_traces`` regions, otherwise a
    region × time image (region names, hemisphere lines) with a colour bar whose limits are
    ``clim[v]`` (callers pass those of the samples after the discarded transient) or the
    0.5–99.5 percentiles of the data shown."""
    x, xlabel = _time_axis(np.asarray(time_ms, dtype=float))
    data = np.asarray(data, dtype=float)
    n_var = min(data.shape[1], max_variables)
    fig = _figure(DOUBLE_COLUMN_IN, 0.4 + 1.35 * n_var if n_var > 1 else 2.6)
    axes = np.atleast_1d(fig.subplots(n_var, 1, sharex=True))
    for v, ax in enumerate(axes):
        d = data[:, v, :]
        label = _label(variables[v], units[v])
        if d.shape[1] <= max_traces:
            for r in range(d.shape[1]):
                ax.plot(x, d[:, r], label=regions[r] if r < len(regions) else str(r))
            ax.set_ylabel(label)
            if v == 0 and 1 < d.shape[1] <= 8:
                ax.legend(frameon=False, ncols=min(8, d.shape[1]), loc="lower left",
                          bbox_to_anchor=(0.0, 1.0), borderaxespad=0.1)
        else:
            lo, hi = clim[v] if clim is not None else robust_limits(d)
            im = ax.imshow(d.T, aspect="auto", origin="upper", cmap="viridis", vmin=lo, vmax=hi,
                           extent=(x[0], x[-1], d.shape[1] - 0.5, -0.5))
            if len(regions) == d.shape[1]:
                _region_axis(ax, regions, "y", d.shape[1])
            else:
                ax.set_ylabel("region index")
            fig.colorbar(im, ax=ax, label=label, shrink=0.9, extend="both")
        ax.set_xlim(x[0], x[-1])
    axes[-1].set_xlabel(xlabel)
    if title:
        fig.suptitle(title, fontsize=8)
    return _save(fig, path, dpi)


@_paper_style
def plot_spectra(path: Path, freq_hz: np.ndarray, psd: np.ndarray, *, unit: str,
                 peaks_hz: np.ndarray | None = None, title: str = "",
                 fmax_hz: float | None = None, dpi: int = 300) -> Path:
    """Welch PSD of every region (grey) and their mean (black), log power axis; the median
    peak frequency is marked."""
    f = np.asarray(freq_hz)
    psd = np.asarray(psd)
    fmax = fmax_hz or min(f[-1], 100.0)
    band = (f > 0) & (f <= fmax)
    top = float(psd[band].max()) if band.any() else 0.0
    fig = _figure(SINGLE_COLUMN_IN, 2.6)
    ax = fig.subplots()
    ax.semilogy(f[band], psd[band], color="0.7", linewidth=0.4)
    ax.semilogy(f[band], psd[band].mean(axis=1), color="k", linewidth=1.2, label="mean")
    if top > 0:
        ax.set_ylim(top * 1e-6, top * 2.0)              # six decades below the peak
    if peaks_hz is not None and np.isfinite(peaks_hz).any():
        med = float(np.nanmedian(peaks_hz))
        ax.axvline(med, color="tab:red", linestyle="--", linewidth=0.8,
                   label=f"median peak {med:.1f} Hz")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"PSD ({unit}²/Hz)" if unit and unit != "1" else "PSD (1/Hz)")
    ax.set_xlim(0, fmax)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def _matrix_axes(fig, ax, m, *, label: str, cmap: str, vmin: float, vmax: float,
                 extent=None):
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper", extent=extent)
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    return im


@_paper_style
def plot_fc(path: Path, fc: np.ndarray, *, empirical: np.ndarray | None = None,
            agreement: float | None = None, source: str = "BOLD",
            regions: Sequence[str] = (), dpi: int = 300, note: str = "") -> Path:
    """FC matrix (Pearson r, −1…1); with ``empirical``, the two side by side and the
    agreement in the title.  Regions are labelled by name (every k-th beyond 90) with a
    line at each hemisphere change; without names, by index."""
    from matplotlib.ticker import MaxNLocator

    panels = [(f"simulated FC ({source})", fc)]
    if empirical is not None:
        panels.append(("empirical FC", empirical))
    fig = _figure(SINGLE_COLUMN_IN * (1.0 if len(panels) == 1 else 1.9), 2.8)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    n = fc.shape[0]
    for ax, (title, m) in zip(axes, panels):
        _matrix_axes(fig, ax, m, label="Pearson r", cmap="RdBu_r", vmin=-1, vmax=1)
        if len(regions) == n:
            _region_axis(ax, regions, "x", n)
            _region_axis(ax, regions, "y", n)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("region index")
            ax.set_ylabel("region index")
        ax.set_title(title)
    title = [f"FC agreement r = {agreement:.2f}"] if agreement is not None else []
    if note:                      # e.g. the sample count, and a warning when it is small
        title.append(note)
    if title:
        fig.suptitle("; ".join(title), fontsize=8)
    return _save(fig, path, dpi)


@_paper_style
def plot_fcd(path: Path, fcd: np.ndarray, window_start_ms: np.ndarray, *,
             window_ms: float, dpi: int = 300) -> Path:
    """FCD matrix: correlation between windowed FCs, axes in window start time (s)."""
    s = np.asarray(window_start_ms) / 1000.0
    half = (s[1] - s[0]) / 2 if s.size > 1 else 0.5
    fig = _figure(SINGLE_COLUMN_IN, 2.9)
    ax = fig.subplots()
    _matrix_axes(fig, ax, fcd, label="FC correlation", cmap="viridis", vmin=-1, vmax=1,
                 extent=(s[0] - half, s[-1] + half, s[-1] + half, s[0] - half))
    ax.set_xlabel("window start (s)")
    ax.set_ylabel("window start (s)")
    ax.set_title(f"FCD ({window_ms / 1000.0:g} s windows)")
    return _save(fig, path, dpi)


@_paper_style
def plot_bold(path: Path, time_ms: np.ndarray, bold: np.ndarray, regions: Sequence[str], *,
              dpi: int = 300) -> Path:
    """BOLD signal (% change) of every region against time in s (as traces up to 12
    regions; beyond, an image of each region's deviation from its mean)."""
    t = np.asarray(time_ms) / 1000.0
    bold = np.asarray(bold)
    fig = _figure(DOUBLE_COLUMN_IN, 2.6)
    ax = fig.subplots()
    if bold.shape[1] <= 12:
        for r in range(bold.shape[1]):
            ax.plot(t, bold[:, r], marker="." if t.size < 60 else None, markersize=2,
                    label=regions[r] if r < len(regions) else str(r))
        if 1 < bold.shape[1] <= 8:
            ax.legend(frameon=False, ncols=min(4, bold.shape[1]))
        ax.set_ylabel("BOLD (% signal change)")
    else:
        half = (t[1] - t[0]) / 2 if t.size > 1 else 0.5
        dev = bold - bold.mean(axis=0)                  # fluctuations around each mean
        lim = max(abs(v) for v in robust_limits(dev)) or 1.0
        im = ax.imshow(dev.T, aspect="auto", origin="upper", cmap="RdBu_r",
                       extent=(t[0] - half, t[-1] + half, bold.shape[1] - 0.5, -0.5),
                       vmin=-lim, vmax=lim)
        if len(regions) == bold.shape[1]:
            _region_axis(ax, regions, "y", bold.shape[1])
        else:
            ax.set_ylabel("region index")
        fig.colorbar(im, ax=ax, label="BOLD − region mean (%)", shrink=0.9)
    ax.set_xlabel("time (s)")
    ax.set_title("BOLD (Balloon–Windkessel)")
    return _save(fig, path, dpi)


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               for v in values)


@_paper_style
def plot_sweep(path: Path, params: dict[str, Sequence], metrics: dict[str, np.ndarray], *,
               dpi: int = 300) -> Path:
    """Metrics of a sweep's variants against the swept parameters, one panel per metric:
    a line over the values of one parameter, a heat map over the grid of two, the value
    per variant (labelled by its parameters) for more.  NaN: no value (missing output)."""
    keys = list(params)
    fig = _figure(SINGLE_COLUMN_IN * (1.0 if len(metrics) == 1 else 1.9), 2.6)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    short = [k.split(".")[-1] for k in keys]
    for ax, (name, y) in zip(axes, metrics.items()):
        y = np.asarray(y, dtype=float)
        if len(keys) == 1:
            x = list(params[keys[0]])
            if _numeric(x):
                order = np.argsort(np.asarray(x, dtype=float), kind="stable")
                ax.plot(np.asarray(x, dtype=float)[order], y[order], marker="o", markersize=3,
                        color="k")
            else:
                ax.plot(range(len(x)), y, marker="o", markersize=3, color="k")
                ax.set_xticks(range(len(x)), [str(v) for v in x], rotation=45)
            ax.set_xlabel(short[0])
            ax.set_ylabel(name)
        elif len(keys) == 2:
            a, b = (list(dict.fromkeys(params[k])) for k in keys)
            for vals in (a, b):
                if _numeric(vals):
                    vals.sort()
            grid = np.full((len(a), len(b)), np.nan)
            for va, vb, v in zip(params[keys[0]], params[keys[1]], y):
                grid[a.index(va), b.index(vb)] = v
            im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
            ax.set_yticks(range(len(a)), [f"{v:g}" if _numeric([v]) else str(v) for v in a])
            ax.set_xticks(range(len(b)), [f"{v:g}" if _numeric([v]) else str(v) for v in b],
                          rotation=45)
            ax.set_ylabel(short[0])
            ax.set_xlabel(short[1])
            fig.colorbar(im, ax=ax, label=name, shrink=0.85)
        else:
            ax.plot(range(y.size), y, marker="o", markersize=3, color="k")
            ax.set_xticks(range(y.size), [", ".join(f"{s}={params[k][i]}" for s, k in
                                                    zip(short, keys)) for i in range(y.size)],
                          rotation=90)
            ax.set_ylabel(name)
        ax.set_title(name)
    return _save(fig, path, dpi)


@_paper_style
def plot_field(path: Path, time_ms: np.ndarray, data: np.ndarray, grid_shape: Sequence[int],
               spacing_mm: float, *, title: str = "", n_snapshots: int = 4,
               dpi: int = 300) -> Path:
    """A neural field's snapshots ``data (time, point)`` on its grid (points in C order):
    a 1-D ring as a kymograph (position × time); a 2-D sheet as ``n_snapshots`` snapshots
    evenly spaced in time plus the kymograph of its middle row.  One colour scale."""
    x_t, tlabel = _time_axis(np.asarray(time_ms, dtype=float))
    d = np.asarray(data, dtype=float)
    lo, hi = robust_limits(d)
    shape = tuple(int(n) for n in grid_shape)
    if len(shape) == 1:
        fig = _figure(DOUBLE_COLUMN_IN, 2.6)
        ax = fig.subplots()
        im = ax.imshow(d.T, aspect="auto", origin="lower", cmap="viridis", vmin=lo, vmax=hi,
                       extent=(x_t[0], x_t[-1], 0.0, shape[0] * spacing_mm))
        ax.set_xlabel(tlabel)
        ax.set_ylabel("position (mm)")
        fig.colorbar(im, ax=ax, label="u", shrink=0.9)
    else:
        k = min(n_snapshots, d.shape[0])
        idx = np.linspace(0, d.shape[0] - 1, k).round().astype(int)
        fig = _figure(DOUBLE_COLUMN_IN, 4.2)
        grid = fig.subplots(2, k, squeeze=False)
        ext = (0.0, shape[1] * spacing_mm, 0.0, shape[0] * spacing_mm)
        for j, i in enumerate(idx):
            ax = grid[0, j]
            im = ax.imshow(d[i].reshape(shape), origin="lower", cmap="viridis", vmin=lo,
                           vmax=hi, extent=ext)
            ax.set_title(f"t = {time_ms[i]:g} ms", fontsize=7)
            ax.set_xlabel("x (mm)")
            if j == 0:
                ax.set_ylabel("y (mm)")
        gs = grid[1, 0].get_gridspec()
        for ax in grid[1]:
            ax.remove()
        ax = fig.add_subplot(gs[1, :])
        row = d.reshape(d.shape[0], *shape)[:, shape[0] // 2, :]
        ax.imshow(row.T, aspect="auto", origin="lower", cmap="viridis", vmin=lo, vmax=hi,
                  extent=(x_t[0], x_t[-1], 0.0, shape[1] * spacing_mm))
        ax.set_xlabel(tlabel)
        ax.set_ylabel("x (mm), middle row")
        fig.colorbar(im, ax=list(grid[0]) + [ax], label="u", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=8)
    return _save(fig, path, dpi)
