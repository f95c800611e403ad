"""``cosim analyze OUTPUT`` and ``cosim plot OUTPUT`` (registered by :mod:`cosim.cli`).

Each subcommand has ``add_*_arguments(parser)`` to declare its options on an argparse
sub-parser and ``*_main(args) -> int`` taking the parsed namespace.  Problems raise
:class:`~cosim.errors.CosimError` (the ``cosim`` command prints one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import CosimError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="a cosim output .h5 file (analyze: or a cosim sweep or fit folder)")
    p.add_argument("--discard", type=float, default=None, metavar="MS",
                   help="leave out the first MS ms (initial transient) [10 %% of the run, "
                        "at least 500 ms, at most half of it; 0 keeps everything]")
    p.add_argument("--fc-dataset", metavar="NAME",
                   help="dataset for FC/FCD (default: bold, else rate, else eeg, else the "
                        "engine's samples)")
    p.add_argument("--window", type=float, default=60000.0, metavar="MS",
                   help="FCD sliding-window length [60000]")
    p.add_argument("--step", type=float, default=2000.0, metavar="MS",
                   help="FCD window shift [2000]")
    p.add_argument("--segment", type=float, default=2000.0, metavar="MS",
                   help="Welch segment length; resolution 1000/MS Hz [2000]")
    p.add_argument("--fmin", type=float, default=0.5, metavar="HZ",
                   help="lowest frequency considered for spectral peaks [0.5]")
    p.add_argument("--fmax", type=float, default=None, metavar="HZ",
                   help="highest frequency considered for spectral peaks [Nyquist]")
    p.add_argument("--empirical-fc", metavar="FILE",
                   help="empirical FC matrix (.npy, .npz, .csv, .txt), region order of the "
                        "connectome or of the simulated regions")


def add_analyze_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``cosim analyze``."""
    _common(p)
    p.add_argument("--save", metavar="FILE.h5",
                   help="also write FC, FCD and spectra arrays to this HDF5 file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``cosim plot``."""
    _common(p)
    p.add_argument("--out", metavar="DIR",
                   help="folder for the PNG files [<output stem>_plots next to OUTPUT]")
    p.add_argument("--t-start", type=float, default=None, metavar="MS",
                   help="start of the raster/time-series window")
    p.add_argument("--t-stop", type=float, default=None, metavar="MS",
                   help="end of the raster/time-series window")
    p.add_argument("--engine", action="append", metavar="NAME",
                   help="only this engine's time series (repeatable)")
    p.add_argument("--dpi", type=int, default=300, help="resolution [300]")


def _options(args):
    from .report import AnalysisOptions

    for name in ("window", "step", "segment"):
        if getattr(args, name) <= 0:
            raise CosimError(f"--{name} must be > 0, got {getattr(args, name):g}")
    if args.discard is not None and args.discard < 0:
        raise CosimError(f"--discard must be >= 0, got {args.discard:g}")
    return AnalysisOptions(discard_ms=args.discard, fc_dataset=args.fc_dataset,
                           window_ms=args.window, step_ms=args.step, segment_ms=args.segment,
                           fmin_hz=args.fmin, fmax_hz=args.fmax,
                           empirical_fc=Path(args.empirical_fc) if args.empirical_fc else None)


def analyze_main(args) -> int:
    """``cosim analyze``: print a summary (FC, FCD, spectral peaks, rates)."""
    from .report import analyze_output, format_summary, save_arrays

    if Path(args.output).is_dir():
        from ..fitting.report import analyze_fit_main, is_fit_folder

        if is_fit_folder(Path(args.output)):
            for line in analyze_fit_main(Path(args.output), as_json=args.json):
                print(line)
            return 0
        return _analyze_sweep(args)
    summary, arrays = analyze_output(args.output, _options(args))
    for w in summary["warnings"]:
        print(f"cosim analyze: WARNING: {w}", file=sys.stderr)
    if args.save:
        save_arrays(args.save, summary, arrays)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if args.save:
            print(f"arrays written to {args.save}")
    return 0


def _analyze_sweep(args) -> int:
    """``cosim analyze SWEEPDIR``: one table (and CSV) and one figure for every variant."""
    from .sweep_report import analyze_sweep, format_table, sweep_figure, write_csv

    folder = Path(args.output)
    if not (folder / "sweep.json").exists():
        raise CosimError("is a folder without a sweep.json; give an output .h5 file or a "
                         "folder written by cosim sweep", file=str(folder))
    if args.save:
        raise CosimError("--save takes one output file, not a sweep folder", key="--save")
    keys, rows = analyze_sweep(folder, _options(args))
    if args.json:
        print(json.dumps({"params": keys, "variants": rows}, indent=2))
    else:
        print(format_table(keys, rows))
    print(f"table written to {write_csv(folder / 'sweep_analysis.csv', keys, rows)}",
          file=sys.stderr if args.json else sys.stdout)
    try:
        fig = sweep_figure(folder / "sweep_analysis.png", keys, rows)
    except CosimError as exc:                       # no matplotlib: the table still stands
        print(f"cosim analyze: no figure ({exc.reason})", file=sys.stderr)
    else:
        print(f"figure written to {fig}", file=sys.stderr if args.json else sys.stdout)
    return 0


def plot_main(args) -> int:
    """``cosim plot``: write the figures of :func:`cosim.analysis.figures.plot_output`."""
    from .figures import plot_output

    out_dir = Path(args.out) if args.out else Path(args.output).with_name(
        Path(args.output).stem + "_plots")
    t_range = None
    if args.t_start is not None or args.t_stop is not None:
        t_range = (args.t_start if args.t_start is not None else 0.0,
                   args.t_stop if args.t_stop is not None else float("inf"))
    paths = plot_output(args.output, out_dir, _options(args), t_range_ms=t_range,
                        dpi=args.dpi, engines=args.engine)
    for p in paths:
        print(p)
    if not paths:
        print(f"{args.output}: nothing to plot")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m cosim.analysis.cli analyze|plot …``) until the
    subcommands are registered in :mod:`cosim.cli`."""
    p = argparse.ArgumentParser(prog="cosim")
    sub = p.add_subparsers(dest="command", required=True)
    add_analyze_arguments(sub.add_parser("analyze", help="FC, FCD, spectra of an output"))
    add_plot_arguments(sub.add_parser("plot", help="figures of an output"))
    args = p.parse_args(argv)
    try:
        return {"analyze": analyze_main, "plot": plot_main}[args.command](args)
    except CosimError as exc:
        import sys

        print(exc.message(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
