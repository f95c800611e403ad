"""The ``cosim`` command.

``cosim validate FILE``            check a scenario without running it
``cosim run FILE [--output PATH]`` run it in this process and write one HDF5 file
``cosim analyze OUTPUT``           FC, FCD, spectral peaks and rates of an output file
``cosim plot OUTPUT [--out DIR]``  paper-ready PNG figures of an output file

Exit codes: 0 success; 2 bad input (scenario, data files, existing output) with exactly
one line ``file: key: problem`` on stderr and no traceback; 1 an internal error (one line;
set ``COSIM_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .errors import CosimError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cosim", description="Hybrid multiscale brain co-simulation.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check a scenario file without running it")
    v.add_argument("scenario", help="scenario .toml file")

    r = sub.add_parser("run", help="run a scenario and write its HDF5 output")
    r.add_argument("scenario", help="scenario .toml file")
    r.add_argument("--output", "-o", help="output .h5 file (overrides [simulation] output)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    from .analysis.cli import add_analyze_arguments, add_plot_arguments

    add_analyze_arguments(sub.add_parser("analyze", help="FC, FCD, spectral peaks and rates of an output file"))
    add_plot_arguments(sub.add_parser("plot", help="paper-ready PNG figures of an output file"))
    return p


def _validate(args) -> int:
    from .scenario import load_scenario

    sc = load_scenario(args.scenario)
    engines = ", ".join(f"{n} ({sc.engine_types[n]}, {len(getattr(e, 'region_indices', ()))} regions, "
                        f"dt {e.dt_ms:g} ms)" for n, e in sc.engines.items())
    print(f"{sc.name}: ok — {sc.connectome.n_regions}-region connectome "
          f"({sc.connectome.source}); {sc.simulation.duration_ms:g} ms in "
          f"{sc.simulation.n_windows} windows of {sc.simulation.sync_interval_ms:g} ms; "
          f"engines: {engines}")
    return 0


def _run(args) -> int:
    from .recording import check_output_path, default_output_path
    from .runtime import run_scenario
    from .scenario import load_scenario

    sc = load_scenario(args.scenario, output=args.output)
    out = sc.simulation.output or default_output_path(sc)
    check_output_path(out, args.overwrite)
    stream = None if args.quiet else sys.stderr
    summary = run_scenario(sc, output=out, overwrite=args.overwrite, progress_stream=stream)
    print(f"wrote {summary.output}: {summary.simulated_ms:g} ms simulated in "
          f"{summary.wall_s:.2f} s ({summary.wall_per_simulated_s:.3f} s wall per simulated s; "
          f"build/JIT {summary.build_s:.2f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .analysis.cli import analyze_main, plot_main

    handler = {"validate": _validate, "run": _run, "analyze": analyze_main,
               "plot": plot_main}[args.command]
    try:
        return handler(args)
    except CosimError as exc:
        print(exc.message(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cosim: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line unless debugging
        if os.environ.get("COSIM_DEBUG"):
            traceback.print_exc()
        else:
            print(f"cosim: internal error: {type(exc).__name__}: {exc} "
                  "(set COSIM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
