"""Subcommands for clusters: ``cosim slurm``, ``cosim sweep``, ``cosim watch``.

``cosim slurm FILE [--ntasks K] [--time T] …``   write an sbatch script for a scenario
``cosim sweep FILE --param KEY=SPEC … [--np K | --slurm | --dry-run]``
                                                 a grid of scenario variants: run them here,
                                                 over K MPI ranks, or as a SLURM job array
``cosim watch ADDRESS|OUTPUT [--once]``          follow a running job's live monitor

Each subcommand has ``add_<name>_arguments(parser)`` and ``<name>_main(args) -> int``;
errors are raised as :class:`~cosim.errors.CosimError`.  ``python -m cosim.hpc_cli``
runs them on their own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CosimError
from .slurm import LAUNCHERS, JobOptions, job_name_for


# -- shared SLURM options ------------------------------------------------------------------------

def _add_job_arguments(p: argparse.ArgumentParser, ntasks_help: str) -> None:
    g = p.add_argument_group("SLURM job")
    g.add_argument("--ntasks", "-n", type=int, default=None, metavar="K", help=ntasks_help)
    g.add_argument("--nodes", default="1", metavar="N",
                   help="nodes (N or MIN-MAX; default 1; '' to let SLURM choose)")
    g.add_argument("--time", default="01:00:00", help="wall-time limit (default 01:00:00)")
    g.add_argument("--signal-lead", type=int, default=60, metavar="SECONDS",
                   help="SLURM sends SIGTERM this long before the time limit, so that the run "
                        "flushes its file and checkpoints (default 60; 0: no signal)")
    g.add_argument("--partition", "-p", help="partition (queue)")
    g.add_argument("--account", "-A", help="account to charge")
    g.add_argument("--mem-per-cpu", metavar="SIZE", help="memory per CPU, e.g. 2G")
    g.add_argument("--job-name", "-J", help="job name (default: the file's stem)")
    g.add_argument("--overcommit", action="store_true",
                   help="allow more tasks than CPUs (sbatch and srun --overcommit): small "
                        "engines, or a large layout on a few cores")
    g.add_argument("--launcher", choices=LAUNCHERS, default="srun",
                   help="start the ranks with srun (default) or the MPI's own mpiexec")
    g.add_argument("--mpi", default="pmi2", metavar="TYPE",
                   help="srun's MPI plugin: pmi2 (default; MPICH, the mpich wheel) or pmix "
                        "(Open MPI), see `srun --mpi=list`")
    g.add_argument("--python", default=sys.executable,
                   help="Python that runs cosim in the job (default: this one)")
    g.add_argument("--mpiexec", help="mpiexec for --launcher mpiexec (default: next to "
                                     "--python, else the first on PATH in the job)")
    g.add_argument("--module", action="append", default=[], metavar="NAME",
                   help="`module load NAME` in the job (repeatable), e.g. the site's MPI")
    g.add_argument("--setup", action="append", default=[], metavar="LINE",
                   help="a shell line run before cosim (repeatable)")
    g.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="an extra #SBATCH option, e.g. --sbatch=--qos=short (repeatable)")
    g.add_argument("--chdir", help="working directory of the job (default: the current one)")
    g.add_argument("--log", metavar="PATTERN",
                   help="job log file (default %%x-%%j.out, arrays %%x-%%A_%%a.out)")
    g.add_argument("--script", metavar="PATH",
                   help="where to write the script ('-' for stdout)")
    g.add_argument("--force", action="store_true", help="replace an existing script file")
    g.add_argument("--submit", action="store_true", help="submit the script with sbatch")


def _job_options(args, name_from: str | Path, ntasks: int) -> JobOptions:
    return JobOptions(
        job_name=args.job_name or job_name_for(name_from), ntasks=ntasks,
        nodes=args.nodes or None, time=args.time, partition=args.partition,
        account=args.account, mem_per_cpu=args.mem_per_cpu, launcher=args.launcher,
        mpi=args.mpi, python=args.python, mpiexec=args.mpiexec, modules=list(args.module),
        setup=list(args.setup), chdir=Path(args.chdir or Path.cwd()).resolve(), log=args.log,
        sbatch=list(args.sbatch), signal_lead_s=args.signal_lead, overcommit=args.overcommit)


def _write_script(text: str, path: str, force: bool) -> Path | None:
    if path == "-":
        sys.stdout.write(text)
        return None
    p = Path(path)
    if p.exists() and not force:
        raise CosimError("script exists; pass --force to replace it, or choose another "
                         "--script", file=str(p))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CosimError(f"cannot write ({exc.strerror})", file=str(p)) from None
    p.chmod(0o755)
    return p


def _submit(path: Path | None, submit: bool) -> None:
    if not submit:
        return
    if path is None:
        raise CosimError("--submit needs a script file, not --script -")
    from .slurm import submit as sbatch

    print(f"submitted job {sbatch(path)}")


# -- cosim slurm ---------------------------------------------------------------------------------

def add_slurm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario .toml file")
    p.add_argument("--output", help="output .h5 file of the run (overrides "
                                          "[simulation] output)")
    p.add_argument("--overwrite", action="store_true",
                   help="let the job replace an existing output file")
    _add_job_arguments(p, "MPI tasks (default: the plan's minimum, one for the bus and one per "
                          "engine; 1 runs the scenario in one process without MPI)")


def slurm_main(args) -> int:
    from .plan import min_processes
    from .scenario import load_scenario
    from .slurm import scenario_script

    if args.ntasks is not None and args.ntasks < 1:
        raise CosimError(f"must be ≥ 1, got {args.ntasks}", key="--ntasks")
    ntasks = args.ntasks if args.ntasks is not None else min_processes(load_scenario(args.scenario))
    opts = _job_options(args, args.scenario, ntasks)
    path = args.script or f"{job_name_for(args.scenario)}.sbatch"
    text = scenario_script(args.scenario, opts, output=args.output, overwrite=args.overwrite,
                           script_name=path)
    written = _write_script(text, path, args.force)
    if written is not None:
        print(f"wrote {written} ({ntasks} task{'s' if ntasks > 1 else ''}, "
              f"{args.launcher if ntasks > 1 else 'no MPI launcher'}); submit with: sbatch {written}")
    _submit(written, args.submit)
    return 0


# -- cosim sweep ---------------------------------------------------------------------------------

def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario .toml file")
    p.add_argument("--param", action="append", default=[], metavar="KEY=SPEC", required=True,
                   help="a scenario key and its values: start:stop:count (inclusive), "
                        "a,b,c, or one value; repeat for a grid")
    p.add_argument("--out", metavar="DIR",
                   help="folder for the variants and their outputs (default: <stem>-sweep)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the variants of an earlier sweep in DIR and their outputs")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--np", type=int, metavar="K",
                      help="run the variants over K MPI ranks (mpiexec), each rank running "
                           "every K-th variant")
    mode.add_argument("--slurm", action="store_true",
                      help="write a SLURM job-array script (one task per variant) instead "
                           "of running")
    mode.add_argument("--dry-run", action="store_true",
                      help="write and validate the variants, run nothing")
    p.add_argument("--max-parallel", type=int, metavar="M",
                   help="with --slurm: at most M array tasks at a time (--array=0-N%%M)")
    p.add_argument("--progress", action="store_true",
                   help="progress lines of each run (single-process mode)")
    _add_job_arguments(p, "MPI tasks per variant (default 1: each array task runs its variant "
                          "in one process)")


def sweep_main(args) -> int:
    from .sweep import MANIFEST, make_variants, parse_param, run_variants

    params = [parse_param(s) for s in args.param]
    folder = Path(args.out or f"{Path(args.scenario).stem}-sweep")
    variants = make_variants(args.scenario, params, folder, overwrite=args.overwrite)
    print(f"wrote {len(variants)} variant{'s' if len(variants) != 1 else ''} to {folder}/ "
          f"({MANIFEST} lists them)")
    if args.dry_run:
        for v in variants:
            print(f"  {v.scenario.name}")
        return 0
    if args.slurm:
        from .sweep import array_script

        if args.ntasks is not None and args.ntasks < 1:
            raise CosimError(f"must be ≥ 1, got {args.ntasks}", key="--ntasks")
        opts = _job_options(args, folder, args.ntasks or 1)
        path = args.script or str(folder / "sweep.sbatch")
        force = args.force or args.overwrite
        text = array_script(variants, opts, overwrite=args.overwrite, script_name=path,
                            max_parallel=args.max_parallel)
        written = _write_script(text, path, force)
        if written is not None:
            print(f"wrote {written} (job array 0-{len(variants) - 1}); submit with: "
                  f"sbatch {written}")
        _submit(written, args.submit)
        return 0
    if args.np is not None:
        from .launch import mpiexec_command, run_command

        cmd = mpiexec_command(args.np, ["-m", "cosim.sweep_worker", str(folder.resolve())]
                              + (["--overwrite"] if args.overwrite else []))
        return run_command(cmd)
    results = run_variants(variants, overwrite=args.overwrite,
                           progress=sys.stderr if args.progress else None)
    failed = [r for r in results if not r.ok]
    print(f"sweep: {len(results) - len(failed)} of {len(results)} variants done"
          + (f"; failed: {', '.join(str(r.index) for r in failed)}" if failed else ""))
    return max((r.exit_code for r in results), default=0)


# -- cosim watch ---------------------------------------------------------------------------------

def add_watch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="ADDRESS|OUTPUT",
                   help="the run's monitoring address (tcp://host:port) or its output file "
                        "(whose <output>.monitor holds the address)")
    p.add_argument("--once", action="store_true", help="print one message and exit")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up when no message arrives for S seconds")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for <output>.monitor to appear")
    p.add_argument("--json", action="store_true", help="print the raw JSON messages")


def watch_main(args) -> int:
    from .monitoring import resolve_address, watch

    address = resolve_address(args.target, wait_s=args.wait)
    try:
        return watch(address, once=args.once, timeout_s=args.timeout, as_json=args.json)
    except KeyboardInterrupt:   # Ctrl-C is how one stops watching: not an error
        return 0


# -- standalone entry point ----------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m cosim.hpc_cli slurm|sweep|watch …``: the same as ``cosim …``."""
    from .cli import main as cosim_main

    return cosim_main(argv)


if __name__ == "__main__":
    sys.exit(main())
