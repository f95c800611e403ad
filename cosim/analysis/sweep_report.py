"""``cosim analyze SWEEPDIR``: every variant of a sweep (``sweep.json``, :mod:`cosim.sweep`)
analysed with the same options, aggregated into one table and one figure.

Per variant (one row): its swept values, the output's status, the FC signal's sample count,
mean FC, SC–FC correlation, the agreement with an empirical FC (``--empirical-fc``), and
the median spectral peak (Hz) of the first spectrum (EEG when recorded).  The **score** is
the FC agreement when an empirical FC is given, else the mean FC.  Written next to
``sweep.json``: ``sweep_analysis.csv`` (the table) and ``sweep_analysis.png`` (score and
peak against the swept parameters: lines for one parameter, a heat map for two, score per
variant for more; needs matplotlib).  Variants whose output is missing or unreadable are
rows with that status and empty numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import CosimError
from .report import AnalysisOptions, analyze_output

COLUMNS = ("n_samples", "mean_fc", "sc_fc_correlation", "fc_agreement", "peak_hz")


def _peak(summary: dict) -> float | None:
    spectra = summary.get("spectra") or []
    pick = next((e for e in spectra if e["dataset"] == "eeg"), spectra[0] if spectra else None)
    return None if pick is None else pick["peak_hz"]["median"]


def analyze_sweep(folder: str | Path, opts: AnalysisOptions = AnalysisOptions()
                  ) -> tuple[list[str], list[dict]]:
    """``(parameter keys, rows)`` for the sweep in ``folder`` (see module docstring)."""
    from ..sweep import load_manifest

    variants = load_manifest(folder)
    keys: list[str] = []
    for v in variants:
        keys += [k for k in v.values if k not in keys]
    rows = []
    for v in variants:
        row: dict = {"index": v.index, "name": v.name, **{k: v.values.get(k) for k in keys},
                     "status": "missing", **{c: None for c in COLUMNS}, "warnings": []}
        if v.output.exists():
            try:
                summary, _ = analyze_output(v.output, opts)
            except CosimError as exc:
                row["status"] = f"unreadable ({exc.reason})"
            else:
                row["status"] = summary["status"]
                row["warnings"] = summary["warnings"]
                fc = summary.get("fc") or {}
                row.update(n_samples=fc.get("n_samples"), mean_fc=fc.get("mean_fc"),
                           sc_fc_correlation=fc.get("sc_fc_correlation"),
                           fc_agreement=fc.get("fc_agreement"), peak_hz=_peak(summary))
        rows.append(row)
    return keys, rows


def score_name(rows: list[dict]) -> str:
    return "fc_agreement" if any(r["fc_agreement"] is not None for r in rows) else "mean_fc"


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def format_table(keys: list[str], rows: list[dict]) -> str:
    """The table as aligned text (one line per variant)."""
    cols = ["index", *keys, "status", *COLUMNS]
    cells = [cols] + [[_fmt(r[c]) for c in cols] for r in rows]
    width = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, width)) for row in cells]
    n_warn = sum(1 for r in rows if r["warnings"])
    if n_warn:
        lines.append(f"WARNING: {n_warn} variant(s) have analysis warnings (--json shows them)")
    return "\n".join(lines)


def write_csv(path: Path, keys: list[str], rows: list[dict]) -> Path:
    cols = ["index", "name", *keys, "status", *COLUMNS]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if r[c] is None else r[c] for c in cols])
    return path


def sweep_figure(path: Path, keys: list[str], rows: list[dict], *, dpi: int = 200) -> Path:
    """Score (and peak) against the swept parameters (see :func:`cosim.plotting.plot_sweep`)."""
    from .. import plotting

    score = score_name(rows)
    values = {k: [r[k] for r in rows] for k in keys}
    s = np.array([np.nan if r[score] is None else r[score] for r in rows], dtype=float)
    p = np.array([np.nan if r["peak_hz"] is None else r["peak_hz"] for r in rows], dtype=float)
    return plotting.plot_sweep(path, values, {score.replace("_", " "): s, "peak (Hz)": p},
                               dpi=dpi)
