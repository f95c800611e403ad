"""The ``cosim`` command.

``cosim validate FILE``            check a scenario without running it
``cosim run FILE [--output PATH]`` run it in this process and write one HDF5 file
``cosim analyze OUTPUT``           FC, FCD, spectral peaks and rates of an output file
``cosim plot OUTPUT [--out DIR]``  paper-ready PNG figures of an output file
``cosim slurm FILE``               write (and submit) an sbatch script
``cosim sweep FILE --param K=a:b:n`` a grid of variants: here, over MPI, or a SLURM array
``cosim watch ADDRESS|OUTPUT``     follow a running job's live progress (ZeroMQ)
``cosim fit FIT.toml``             fit free parameters to empirical FC/FCD (cosim.fitting)
``cosim identify FIT.toml``        sensitivity and profile likelihoods of a fit's parameters
``cosim describe KIND [NAME]``     the declared parameters (see cosim.describe)
``cosim models``                   the neural-mass models
``cosim export OUTPUT --nwb F --tvb D``  the output as NWB / TVB H5 (see cosim.export)
``cosim regions CONNECTOME``       the region labels of a connectome (index, label)
``cosim --version``                the installed version

``cosim run FILE --np K`` launches ``mpiexec -n K`` itself; under ``mpiexec``/``srun`` the
same command runs the multi-process runtime (see cosim.runtime).

Exit codes: 0 success; 2 bad input (scenario, data files, existing output) with exactly
one line ``file: key: problem`` on stderr and no traceback; 1 an internal error (one line;
set ``COSIM_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback

from .errors import CosimError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cosim", description="Hybrid multiscale brain co-simulation.")
    p.add_argument("--version", action="version", version=f"cosim {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check a scenario file without running it")
    v.add_argument("scenario", help="scenario .toml file")

    r = sub.add_parser("run", help="run a scenario and write its HDF5 output")
    r.add_argument("scenario", help="scenario .toml file")
    r.add_argument("--output", "-o", help="output .h5 file (overrides [simulation] output)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    r.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint ([simulation] checkpoint_every)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    r.add_argument("--np", type=int, metavar="K",
                   help="launch K MPI processes with mpiexec (the mpich wheel's, or PATH's)")
    r.add_argument("--monitor", metavar="ADDRESS", default=None,
                   help="ZeroMQ address to publish live progress on (default "
                        "tcp://127.0.0.1:*, written to <output>.monitor)")
    r.add_argument("--no-monitor", action="store_true", help="do not publish live progress")

    from .analysis.cli import add_analyze_arguments, add_plot_arguments
    from .hpc_cli import add_slurm_arguments, add_sweep_arguments, add_watch_arguments

    add_analyze_arguments(sub.add_parser("analyze", help="FC, FCD, spectral peaks and rates of an output file"))
    add_plot_arguments(sub.add_parser("plot", help="paper-ready PNG figures of an output file"))
    add_slurm_arguments(sub.add_parser("slurm", help="write (and submit) an sbatch script for a scenario"))
    add_sweep_arguments(sub.add_parser("sweep", help="run or submit a grid of scenario variants"))
    add_watch_arguments(sub.add_parser("watch", help="follow a running job's live progress"))
    from .fitting.cli import add_fit_arguments, add_identify_arguments

    add_fit_arguments(sub.add_parser("fit", help="fit scenario parameters to empirical FC/FCD"))
    add_identify_arguments(sub.add_parser("identify", help="which parameters the data "
                                                           "determine (sensitivity, profiles)"))

    d = sub.add_parser("describe", help="print the declared parameters of a scenario table, "
                                        "engine, model, coupling, monitor or adapter")
    d.add_argument("kind", nargs="?", help="simulation | connectome | record | engine | model | "
                                           "coupling | monitor | adapter")
    d.add_argument("name", nargs="?", help="e.g. jansen_rit, multicompartment, bold")
    d.add_argument("--markdown", action="store_true", help="the whole scenario reference "
                                                           "(docs/scenario.md)")
    sub.add_parser("models", help="list the neural-mass models")
    from .export_cli import add_export_arguments

    add_export_arguments(sub.add_parser("export", help="write an output as NWB or TVB H5"))
    j = sub.add_parser("join", help="rebuild the join of a multi-process output from its "
                                    "rank files (after a run whose coordinator died)")
    j.add_argument("output", help="the output file (its rank files: OUTPUT.d/)")
    g = sub.add_parser("regions", help="list a connectome's region labels")
    g.add_argument("connectome", help="tvb:connectivity_76, a TVB .zip, .npz or a CSV pair")
    return p


def _version() -> str:
    from . import __version__

    return __version__


def _regions(args) -> int:
    from .connectome import load_connectome

    c = load_connectome(args.connectome)
    for i, label in enumerate(c.region_labels):
        print(f"{i:4d}  {label}")
    return 0


def _join(args) -> int:
    from .rank_output import rejoin

    print(rejoin(args.output))
    return 0


def _validate(args) -> int:
    from .scenario import load_scenario

    sc = load_scenario(args.scenario)
    def regions(e):
        n = len(e.region_indices)
        return f"{n} region" + ("" if n == 1 else "s")

    engines = ", ".join(f"{n} ({e.type_name}, {regions(e)}, dt {e.dt_ms:g} ms)"
                        for n, e in sc.engines.items())
    print(f"{sc.name}: ok — {sc.connectome.n_regions}-region connectome "
          f"({sc.connectome.source}); {sc.simulation.duration_ms:g} ms in "
          f"{sc.simulation.n_windows} windows of {sc.simulation.sync_interval_ms:g} ms; "
          f"engines: {engines}" + "".join(
              f"; stimulus {n} ({r.pattern.kind} on {r.engine}.{r.target})"
              for n, r in sc.stimuli.items()))
    return 0


def launched_by_mpi() -> int:
    """World size announced by an MPI launcher (mpiexec, srun --mpi=…), else 0."""
    from .launch import launcher_world_size

    n = launcher_world_size()
    return 0 if n is None else (n if n > 0 else 2)


def _publisher(args, out, sc):
    """The live-progress publisher of this run (bound and announced), or None."""
    if args.no_monitor:
        return None
    from .monitoring import Publisher

    return Publisher(args.monitor, output=out, duration_ms=sc.simulation.duration_ms)


def _run(args) -> int:
    """``cosim run``: signals are held from here on (see :class:`cosim.runtime.StopFlag`)."""
    from .runtime import StopFlag

    if args.np and args.np > 1 and launched_by_mpi() <= 1:
        return _run_here(args)              # the launcher handles its own signals
    with StopFlag():
        return _run_here(args)


def _run_here(args) -> int:
    from .recording import check_output_path, default_output_path, input_files
    from .runtime import run_scenario
    from .scenario import load_scenario

    from .launch import launch_mpiexec, srun_without_mpi_plugin

    world = launched_by_mpi()
    if args.np is not None and args.np < 1:
        raise CosimError(f"--np must be >= 1, got {args.np}")
    if args.np and args.np > 1 and world <= 1:
        sc = load_scenario(args.scenario, output=args.output)     # fail fast, before mpiexec
        return launch_mpiexec(args.argv, args.np,
                              output=sc.simulation.output or default_output_path(sc))
    if world > 1:
        return _run_mpi(args)
    n = srun_without_mpi_plugin()
    if n:
        raise CosimError(f"started by srun as {n} tasks without an MPI plugin: every task "
                         "would run the whole scenario; use srun --mpi=pmi2 (or pmix)")
    sc = load_scenario(args.scenario, output=args.output)
    out = sc.simulation.output or default_output_path(sc)
    if not args.resume:
        check_output_path(out, args.overwrite, input_files(sc))
    stream = None if args.quiet else sys.stderr
    from .runtime import Terminated

    pub = _publisher(args, out, sc)
    status = "failed"
    try:
        summary = run_scenario(sc, output=out, overwrite=args.overwrite, progress_stream=stream,
                               resume=args.resume,
                               on_window=pub.publish if pub is not None else None)
        status = "completed"
    except Terminated as exc:
        status = "terminated"
        return _terminated(exc, out)
    finally:
        if pub is not None:
            pub.close(status)
    _report(summary)
    return 0


def _terminated(exc, out) -> int:
    """One line for a run stopped by a signal; exit code 128 + signal number."""
    s = exc.summary
    where = f" at t = {s.t_end_ms:g} ms" if s is not None else ""
    how = "interrupted" if exc.signum == signal.SIGINT else "terminated"
    print(f"cosim: {how} ({exc}){where}; {out} holds every completed window "
          f"(status terminated); continue with --resume if checkpoints are on",
          file=sys.stderr, flush=True)
    return 128 + exc.signum


def _report(summary) -> None:
    print(f"wrote {summary.output}: {summary.simulated_ms:g} ms simulated in "
          f"{summary.wall_s:.2f} s ({summary.wall_per_simulated_s:.3f} s wall per simulated s; "
          f"build/JIT {summary.build_s:.2f} s)")
    for line in summary.timing_lines():
        print("  " + line)


def _run_mpi(args) -> int:
    """``cosim run`` on every rank of an MPI job: validate collectively, then run.

    Every rank loads the scenario; any rank's error (scenario, output file) is shared with
    all ranks so that all of them exit with code 2 and rank 0 alone prints it — no rank is
    left waiting for a partner that has already quit.
    """
    from mpi4py import MPI

    from .plan import make_plan
    from .recording import check_output_path, default_output_path, input_files
    from .runtime import run_mpi
    from .scenario import load_scenario

    from .runtime import Terminated

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    error, code, sc, pub = None, 0, None, None
    try:
        sc = load_scenario(args.scenario, output=args.output)
        plan = make_plan(sc, comm.Get_size())
        out = sc.simulation.output or default_output_path(sc)
        if rank == 0:
            if args.resume:
                from .checkpoint import Checkpointer
                Checkpointer(out, sc.simulation.checkpoint_every_windows).resume(sc, plan)
            else:
                from .pipeline import record_specs
                from .recording import check_free_space

                check_output_path(out, args.overwrite, input_files(sc))
                check_free_space(out, record_specs(sc), sc, n_ranks=comm.Get_size())
            pub = _publisher(args, out, sc)
    except CosimError as exc:
        error, code = exc.message(), 2
    except Exception as exc:      # shared like a user error: no rank may be left waiting
        error, code = f"cosim: internal error: {type(exc).__name__}: {exc}", 1
    errors = comm.allgather((error, code))
    first = next((e for e in errors if e[0]), None)
    if first:
        if pub is not None:
            pub.close()
        if rank == 0:
            print(first[0], file=sys.stderr, flush=True)
        return first[1]
    stream = None if (args.quiet or rank != 0) else sys.stderr
    from . import watchdog

    status = "failed"
    try:
        summary = run_mpi(sc, comm, output=out, overwrite=args.overwrite, progress_stream=stream,
                          resume=args.resume, on_window=pub.publish if pub is not None else None)
        status = "completed"
    except Terminated as exc:
        status = "terminated"
        return _terminated(exc, out) if rank == 0 else 128 + exc.signum
    finally:
        watchdog.ending_on_purpose(rank)
        if pub is not None:
            pub.close(status)
    if rank == 0 and summary is not None:
        _report(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    from .analysis.cli import analyze_main, plot_main
    from .hpc_cli import slurm_main, sweep_main, watch_main

    from .describe import describe_main, models_main
    from .export_cli import export_main

    from .fitting.cli import fit_main, identify_main

    handler = {"validate": _validate, "run": _run, "analyze": analyze_main, "plot": plot_main,
               "slurm": slurm_main, "sweep": sweep_main, "watch": watch_main,
               "describe": describe_main, "models": models_main, "export": export_main,
               "regions": _regions, "join": _join, "fit": fit_main, "identify": identify_main}[args.command]
    try:
        return handler(args)
    except CosimError as exc:
        print(exc.message(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cosim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:               # `cosim regions … | head`: the reader has enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # an internal error: one line unless debugging
        if os.environ.get("COSIM_DEBUG"):
            traceback.print_exc()
        else:
            print(f"cosim: internal error: {type(exc).__name__}: {exc} "
                  "(set COSIM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
