"""One rank of an MPI-parallel fit: ``mpiexec -n K python -m cosim.fitting.worker FIT``.

Every rank reads the description; an error on any rank is shared so all exit with the same
code and rank 0 alone prints its one line.  Rank 0 prepares the folder and reads the log,
broadcasts it, then all ranks run :func:`cosim.fitting.driver.run_fit` with the
:class:`~cosim.fitting.driver.MPI` backend.  Started without a launcher it is a plain
single-process fit.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import CosimError
from ..launch import launcher_world_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cosim.fitting.worker")
    p.add_argument("fit")
    p.add_argument("--out")
    p.add_argument("--budget", type=int)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    from .driver import MPI, Local, _Shared, prepare_folder, run_fit
    from .report import write_results
    from .spec import load_fit

    comm = None
    if launcher_world_size() is not None:
        from mpi4py import MPI as _mpi

        comm = _mpi.COMM_WORLD
    rank = 0 if comm is None else comm.Get_rank()

    def shared(fn):
        """``fn()`` on this rank; (result, None) or (None, (code, message)) on every rank."""
        try:
            res, err = fn(), None
        except CosimError as exc:
            res, err = None, (2, exc.message())
        except Exception as exc:
            res, err = None, (1, f"cosim fit: internal error: {type(exc).__name__}: {exc}")
        if comm is not None:
            errs = [e for e in comm.allgather(err) if e is not None]
            err = errs[0] if errs else None
        return res, err

    spec, err = shared(lambda: load_fit(args.fit, out=args.out, budget=args.budget))
    if err is None:
        log, err = shared(lambda: prepare_folder(spec, overwrite=args.overwrite)
                          if rank == 0 else None)
    if err is not None:
        if rank == 0:
            print(err[1], file=sys.stderr, flush=True)
        return err[0]
    if comm is not None:
        log = comm.bcast(log, root=0)
        if rank != 0:                   # rank 0 wrote <out>/connectome.npz in prepare_folder
            from .spec import write_connectome

            write_connectome(spec, spec.out, write=False)
    backend = MPI(comm) if comm is not None else Local()
    try:
        records = run_fit(spec, backend, prepared=log)
    except _Shared as exc:
        if rank == 0:
            print(exc.message, file=sys.stderr, flush=True)
        return exc.code
    if rank == 0:
        for line in write_results(spec, records):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
