"""``cosim fit FIT.toml`` and ``cosim identify FIT.toml`` (registered by :mod:`cosim.cli`).

``cosim fit FIT [--out DIR] [--budget N] [--overwrite] [--np K | --slurm …]``
    run (or resume) the fit here, over K MPI ranks (``mpiexec``), or with each wave of
    candidates as a SLURM job array (this process waits for each wave: run it on a login
    node or inside a job);
``cosim identify FIT [--out DIR] [--point NAME=VALUE …] [--json]``
    local sensitivity (singular values, unidentifiable combinations) and profile
    likelihoods with confidence intervals (:mod:`cosim.fitting.identify`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import CosimError


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    from ..hpc_cli import _add_job_arguments

    p.add_argument("fit", help="fit description .toml (cosim describe fit)")
    p.add_argument("--out", metavar="DIR", help="fit folder (overrides [fit] out)")
    p.add_argument("--budget", type=int, metavar="N",
                   help="number of evaluations (overrides [fit] budget)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a fit of another description in DIR")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--np", type=int, metavar="K",
                      help="evaluate each wave over K MPI ranks (mpiexec)")
    mode.add_argument("--slurm", action="store_true",
                      help="run each wave as a SLURM job array (sbatch --wait)")
    _add_job_arguments(p, "MPI tasks per evaluation with --slurm (default 1)")


def add_identify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("fit", help="fit description .toml")
    p.add_argument("--out", metavar="DIR", help="fit folder whose best point is used and "
                                                "where identify.json is written")
    p.add_argument("--point", action="append", default=[], metavar="NAME=VALUE",
                   help="the point to analyse (default: the fit's best, else initial)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def fit_main(args) -> int:
    from .spec import load_fit

    spec = load_fit(args.fit, out=args.out, budget=args.budget)
    if args.np is not None:
        if args.np < 1:
            raise CosimError(f"must be >= 1, got {args.np}", key="--np")
        from ..launch import mpiexec_command, run_command

        argv = ["-m", "cosim.fitting.worker", str(Path(args.fit).resolve()),
                "--out", str(spec.out.resolve()), "--budget", str(spec.budget)]
        return run_command(mpiexec_command(args.np, argv + (["--overwrite"] if args.overwrite
                                                                else [])))
    from .driver import Local, Slurm, run_fit
    from .report import write_results

    backend = Local()
    if args.slurm:
        from ..hpc_cli import _job_options

        if args.ntasks is not None and args.ntasks < 1:
            raise CosimError(f"must be >= 1, got {args.ntasks}", key="--ntasks")
        backend = Slurm(_job_options(args, spec.out, args.ntasks or 1), sys.stderr)
    records = run_fit(spec, backend, overwrite=args.overwrite)
    for line in write_results(spec, records):
        print(line)
    return 0


def _points(spec, texts: list[str]) -> dict | None:
    if not texts:
        return None
    out = {}
    for t in texts:
        name, sep, v = t.partition("=")
        name = name.strip()
        if not sep or name not in spec.names:
            raise CosimError(f"expected NAME=VALUE with NAME one of {', '.join(spec.names)}, "
                             f"got {t!r}", key="--point")
        try:
            out[name] = float(v)
        except ValueError:
            raise CosimError(f"{v!r} is not a number", key=f"--point {name}") from None
        p = spec.params[spec.names.index(name)]
        if not p.low <= out[name] <= p.high:
            raise CosimError(f"{out[name]:g} is outside bounds [{p.low:g}, {p.high:g}]",
                             key=f"--point {name}")
    return out


def identify_main(args) -> int:
    from .identify import format_result, identify
    from .spec import load_fit

    spec = load_fit(args.fit, out=args.out)
    result = identify(spec, point=_points(spec, args.point), stream=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_result(result))
    return 0
