"""Results of a fit: summary lines, table, figures (``cosim fit`` at the end and
``cosim analyze FITDIR``).

Figures (PNG next to the log; need matplotlib, skipped with a note otherwise):

* ``fit_fc.png`` — empirical FC, the best evaluation's simulated FC, and their upper
  triangles against each other (with r);
* ``fit_landscape.png`` — loss over one parameter (points and the lower envelope), or over
  two (every evaluation as a point coloured by loss, the best marked); for more, the first
  two;
* ``fit_convergence.png`` — loss of every evaluation and the best so far, against the
  evaluation index.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import CosimError
from .driver import BEST, INFO, best_record, records_for


def summary_lines(names: list[str], records: list[dict]) -> list[str]:
    b = best_record(records)
    r = f", FC r {b['fc_r']:.4f}" if b.get("fc_r") is not None else ""
    ks = f", FCD KS {b['fcd_ks']:.4f}" if b.get("fcd_ks") is not None else ""
    bad = sum(1 for x in records if x["status"] != "ok")
    lines = [f"best of {len(records)} evaluations (#{b['index']}): loss {b['loss']:.6g}{r}{ks}"]
    lines += [f"  {n} = {b['params'][n]:.8g}" for n in names]
    if bad:
        lines.append(f"  {bad} evaluation(s) invalid or diverged (scored the worst loss)")
    return lines


def format_table(names: list[str], records: list[dict]) -> str:
    cols = ["index", "wave", *names, "loss", "fc_r", "fcd_ks", "status"]
    def cell(r, c):
        v = r["params"].get(c) if c in names else r.get(c)
        return "-" if v is None else (f"{v:.5g}" if isinstance(v, float) else str(v))
    rows = [cols] + [[cell(r, c) for c in cols] for r in records]
    w = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(x) for c, x in zip(row, w)) for row in rows)


def write_results(spec, records: list[dict]) -> list[str]:
    """Summary lines; ``best.json`` and figures written into the fit folder."""
    lines = summary_lines(spec.names, records) + [f"log: {spec.out / 'evaluations.jsonl'}"]
    try:
        paths = figures(spec.out, spec.names, records, spec.target.fc, spec)
    except CosimError as exc:
        lines.append(f"no figures ({exc.reason})")
    else:
        lines += [f"figure: {p}" for p in paths]
    return lines


def figures(folder: Path, names: list[str], records: list[dict], fc_emp, spec=None,
            dpi: int = 150) -> list[Path]:
    from .. import plotting

    plotting._matplotlib()
    out = [convergence_figure(folder / "fit_convergence.png", records, dpi),
           landscape_figure(folder / "fit_landscape.png", names, records, dpi)]
    b = best_record(records)
    if spec is not None and b.get("output") and Path(b["output"]).exists() and b["status"] == "ok":
        from .objective import read_simulated
        from ..analysis.fc import functional_connectivity

        sim = read_simulated(spec, Path(b["output"]))
        out.append(fc_figure(folder / "fit_fc.png", sim.fc_emp,
                             functional_connectivity(sim.series), b.get("fc_r"), dpi))
    return out


def convergence_figure(path: Path, records: list[dict], dpi: int) -> Path:
    from .. import plotting

    @plotting._paper_style
    def draw():
        loss = np.array([r["loss"] for r in records])
        fig = plotting._figure(plotting.SINGLE_COLUMN_IN, 2.4)
        ax = fig.subplots()
        ax.plot(np.arange(loss.size), loss, ".", color="0.6", markersize=3, label="evaluation")
        ax.plot(np.arange(loss.size), np.minimum.accumulate(loss), color="k", label="best so far")
        ax.set_xlabel("evaluation")
        ax.set_ylabel("loss")
        ax.legend(frameon=False, loc="upper right")
        return plotting._save(fig, path, dpi)
    return draw()


def landscape_figure(path: Path, names: list[str], records: list[dict], dpi: int) -> Path:
    from .. import plotting

    @plotting._paper_style
    def draw():
        loss = np.array([r["loss"] for r in records])
        b = int(np.argmin(loss))
        fig = plotting._figure(plotting.SINGLE_COLUMN_IN, 2.6)
        ax = fig.subplots()
        x = np.array([r["params"][names[0]] for r in records])
        if len(names) == 1:
            order = np.argsort(x, kind="stable")
            ax.plot(x[order], loss[order], ".-", color="k", markersize=3)
            ax.plot(x[b], loss[b], "*", color="tab:red", markersize=8)
            ax.set_xlabel(names[0])
            ax.set_ylabel("loss")
        else:
            y = np.array([r["params"][names[1]] for r in records])
            sc = ax.scatter(x, y, c=loss, s=12, cmap="viridis_r")
            ax.plot(x[b], y[b], "*", color="tab:red", markersize=10)
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            fig.colorbar(sc, ax=ax, label="loss", shrink=0.85)
        return plotting._save(fig, path, dpi)
    return draw()


def fc_figure(path: Path, fc_emp: np.ndarray, fc_sim: np.ndarray, r, dpi: int) -> Path:
    from .. import plotting

    @plotting._paper_style
    def draw():
        fig = plotting._figure(plotting.DOUBLE_COLUMN_IN, 2.4)
        axes = fig.subplots(1, 3)
        for ax, m, title in ((axes[0], fc_emp, "empirical FC"), (axes[1], fc_sim, "simulated FC")):
            im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
            ax.set_title(title)
            ax.set_xlabel("region")
            ax.set_ylabel("region")
        fig.colorbar(im, ax=axes[:2], shrink=0.8, label="r")
        iu = np.triu_indices(fc_emp.shape[0], 1)
        axes[2].plot(fc_emp[iu], fc_sim[iu], ".", markersize=1.5, color="k")
        axes[2].set_xlabel("empirical FC")
        axes[2].set_ylabel("simulated FC")
        if r is not None:
            axes[2].set_title(f"r = {r:.3f}")
        return plotting._save(fig, path, dpi)
    return draw()


# -- cosim analyze FITDIR -------------------------------------------------------------------

def is_fit_folder(folder: Path) -> bool:
    return (Path(folder) / INFO).exists()


def analyze_fit(folder: Path) -> tuple[dict, list[dict]]:
    """``(info, records)`` of a fit folder (CosimError if it holds no evaluations)."""
    folder = Path(folder)
    try:
        info = json.loads((folder / INFO).read_text(encoding="utf-8"))
        names = [p["name"] for p in info["params"]]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CosimError(f"not a cosim fit folder ({exc})", file=str(folder / INFO)) from None
    records = records_for(folder)
    if not records:
        raise CosimError("the fit has no logged evaluations yet", file=str(folder))
    info["names"] = names
    return info, records


def analyze_fit_main(folder: Path, *, as_json: bool = False) -> list[str]:
    """Lines ``cosim analyze FITDIR`` prints; figures rewritten."""
    info, records = analyze_fit(folder)
    names = info["names"]
    if as_json:
        return [json.dumps({"fit": info, "best": best_record(records), "evaluations": records},
                           indent=1)]
    lines = [format_table(names, records), *summary_lines(names, records)]
    spec = None
    fit_file = Path(info.get("fit", ""))
    if fit_file.is_file():
        try:
            from .spec import load_fit

            spec = load_fit(fit_file, out=folder)
        except CosimError as exc:
            lines.append(f"(the fit file cannot be read any more: {exc.message()}; no FC figure)")
    try:
        paths = figures(folder, names, records, None if spec is None else spec.target.fc, spec)
    except CosimError as exc:
        lines.append(f"no figures ({exc.reason})")
    else:
        lines += [f"figure: {p}" for p in paths]
    if (folder / BEST).exists():
        lines.append(f"best: {folder / BEST}")
    return lines
