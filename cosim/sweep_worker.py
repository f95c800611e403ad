"""One rank of an MPI-parallel sweep: ``mpiexec -n K python -m cosim.sweep_worker DIR``.

Rank ``r`` of ``K`` runs variants ``r, r + K, r + 2K, …`` of the sweep in ``DIR`` one after
another with the single-process runner; rank 0 gathers the results, prints a summary and
every rank exits with the worst exit code (0 all done, 2 a variant had bad input, 1 an
internal error).  A failing variant never stops the others, and every rank reaches the
final gather, so a failure cannot leave ranks waiting.  Started without a launcher it
runs everything as rank 0 of 1.
"""

from __future__ import annotations

import argparse
import sys

from .errors import CosimError
from .launch import launcher_world_size
from .sweep import load_manifest, run_variants


def _world():
    """(rank, size, comm) — comm is None when no MPI launcher started this process."""
    if launcher_world_size() is None:
        return 0, 1, None
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return comm.Get_rank(), comm.Get_size(), comm


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cosim.sweep_worker",
                                description="Run this rank's share of a cosim sweep.")
    p.add_argument("sweep", help="sweep folder (or its sweep.json)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    rank, size, comm = _world()
    try:
        variants = load_manifest(args.sweep)
        error = None
    except CosimError as exc:
        variants, error = [], exc.message()
    mine = variants[rank::size]
    results = run_variants(mine, overwrite=args.overwrite, prefix=f"rank {rank}: ")
    local = [(r.index, r.ok, r.exit_code, r.message) for r in results]
    local_rc = 2 if error else max((r.exit_code for r in results), default=0)
    if comm is not None:
        gathered = comm.gather(local, root=0)
        rc = comm.allreduce(local_rc, op=_max_op())
    else:
        gathered, rc = [local], local_rc
    if error and rank == 0:
        print(error, file=sys.stderr)
    if rank == 0 and not error:
        flat = sorted((r for part in gathered for r in part), key=lambda r: r[0])
        failed = [r for r in flat if not r[1]]
        print(f"sweep: {len(flat) - len(failed)} of {len(variants)} variants done on "
              f"{size} rank{'s' if size > 1 else ''}"
              + (f"; failed: {', '.join(str(r[0]) for r in failed)}" if failed else ""),
              flush=True)
    return rc


def _max_op():
    from mpi4py import MPI

    return MPI.MAX


if __name__ == "__main__":
    sys.exit(main())
