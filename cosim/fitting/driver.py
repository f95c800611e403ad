"""Running a fit: waves of candidates, evaluated here, over MPI ranks or as SLURM arrays.

The fit folder (``[fit] out`` / ``--out``) holds::

    fit.json            the description's digest, parameters, options (written first)
    evaluations.jsonl   one JSON line per evaluation: index, wave, params, loss, fc_r,
                        fcd_ks, status, output, wall_s (its run), finished_s (seconds since
                        the session started when it finished, on the rank that ran it; a
                        SLURM task: its output's modification time), time_s (… when its
                        wave ended, and the optimiser was told) — appended as each wave ends
    evaluations/        NNNNN.toml (the variant) and NNNNN.h5 (its output)
    best.json           the best evaluation (written at the end)

**Resuming**: the optimiser is a deterministic function of the description and the losses
told, so a fit restarted on the same folder replays its log: a logged evaluation whose
parameters match the candidate is not run again.  A folder holding a fit of another
description (digest) is refused unless ``--overwrite``.  A larger ``--budget`` continues a
finished fit.

**Parallel**: every MPI rank runs the same optimiser; evaluation ``i`` of a wave runs on rank
``i mod K`` (one process per evaluation, :func:`cosim.fitting.objective.evaluate`); the
records are all-gathered so every rank tells the optimiser the same losses.  With SLURM, each
wave's variants are one job array (:func:`cosim.sweep.array_script`), submitted with
``sbatch --wait``; the driver scores the outputs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

from ..errors import CosimError
from .objective import evaluate, eval_paths, score_output, write_variant
from .optimizers import make_optimizer
from .spec import FitSpec, write_connectome

LOG = "evaluations.jsonl"
INFO = "fit.json"
BEST = "best.json"
#: Fields of a logged evaluation that differ between two runs of the same fit (times, paths).
VOLATILE = ("wall_s", "finished_s", "time_s", "output")


# -- the folder -----------------------------------------------------------------------------

def prepare_folder(spec: FitSpec, *, overwrite: bool = False) -> dict[int, dict]:
    """Create the fit folder (or check it holds this fit) and return the logged records."""
    folder = spec.out
    info = folder / INFO
    if info.exists():
        try:
            old = json.loads(info.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        if old.get("digest") != spec.digest:
            if not overwrite:
                raise CosimError("holds a fit of another description (or scenario, or data); "
                                 "pass --overwrite to replace it, or choose another --out",
                                 file=str(folder))
        if overwrite and old.get("digest") != spec.digest:
            for name in (LOG, BEST):
                (folder / name).unlink(missing_ok=True)
            shutil.rmtree(folder / "evaluations", ignore_errors=True)
    elif folder.exists() and not folder.is_dir():
        raise CosimError("exists and is not a folder", file=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    write_connectome(spec, folder)
    info.write_text(json.dumps({
        "fit": str(spec.path.resolve()), "scenario": str(spec.scenario.resolve()),
        "digest": spec.digest, "method": spec.method, "population": spec.population,
        "seed": spec.seed, "loss": {"fc": spec.loss_fc, "fcd": spec.loss_fcd,
                                               "fc_mse": spec.loss_mse},
        "params": [{"name": p.name, "key": p.key, "bounds": [p.low, p.high],
                    "initial": p.initial} for p in spec.params],
    }, indent=1) + "\n", encoding="utf-8")
    return read_log(folder)


def read_log(folder: Path) -> dict[int, dict]:
    """Records of ``folder/evaluations.jsonl`` by index (a torn last line is ignored)."""
    out: dict[int, dict] = {}
    p = Path(folder) / LOG
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            out[int(rec["index"])] = rec
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _append_log(folder: Path, records: list[dict]) -> None:
    with open(folder / LOG, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()


# -- backends -------------------------------------------------------------------------------

class Local:
    """Evaluations one after another in this process."""

    rank, size = 0, 1

    def run(self, spec: FitSpec, jobs: list[tuple[int, dict]], since: float) -> list[dict]:
        return [_finished(evaluate(spec, spec.out, i, v), since) for i, v in jobs]


def _finished(rec: dict, since: float) -> dict:
    """``rec`` with ``finished_s``: seconds from ``since`` (``time.perf_counter``) to now."""
    rec["finished_s"] = round(time.perf_counter() - since, 3)
    return rec


class MPI:
    """Evaluation ``j`` of a wave's jobs on rank ``j mod size``; records all-gathered."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def run(self, spec: FitSpec, jobs: list[tuple[int, dict]], since: float) -> list[dict]:
        mine, error = [], None
        for j, (i, v) in enumerate(jobs):
            if j % self.size == self.rank and error is None:
                try:
                    mine.append(_finished(evaluate(spec, spec.out, i, v), since))
                except CosimError as exc:
                    error = (2, exc.message())
                except Exception as exc:      # shared: no rank may be left waiting
                    error = (1, f"cosim fit: internal error: {type(exc).__name__}: {exc}")
        gathered = self.comm.allgather((mine, error))
        errors = [e for _, e in gathered if e is not None]
        if errors:
            raise _Shared(*errors[0])
        return sorted((r for part, _ in gathered for r in part), key=lambda r: r["index"])


class _Shared(Exception):
    """An error of one rank, known to all (code, one-line message)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Slurm:
    """One job array per wave (``sbatch --wait``), scored here."""

    rank, size = 0, 1

    def __init__(self, opts, stream: TextIO):
        self.opts, self.stream = opts, stream

    def run(self, spec: FitSpec, jobs: list[tuple[int, dict]], since: float) -> list[dict]:
        from ..sweep import Variant, array_script

        tic = time.perf_counter()
        variants = []
        for i, v in jobs:
            toml, out = write_variant(spec, spec.out, i, v)
            out.unlink(missing_ok=True)
            variants.append(Variant(i, toml.stem, v, toml, out))
        wave = jobs[0][0]
        script = spec.out / "evaluations" / f"wave_{wave:05d}.sbatch"
        text = array_script(variants, self.opts, overwrite=True, script_name=str(script))
        script.write_text(text, encoding="utf-8")
        job = _sbatch_wait(script)
        print(f"fit: wave of {len(jobs)} as SLURM job {job} done", file=self.stream, flush=True)
        wall = round((time.perf_counter() - tic) / max(1, len(jobs)), 3)
        recs = []
        start_wall = time.time() - (time.perf_counter() - since)   # the session's start
        for var in variants:
            ok = var.output.exists()
            rec = score_output(spec, var.output, "ok" if ok else "failed")
            done = (var.output.stat().st_mtime - start_wall if ok
                    else time.perf_counter() - since)
            recs.append({"index": var.index, "params": var.values, **rec,
                         "output": str(var.output), "wall_s": wall,
                         "finished_s": round(done, 3)})
        return recs


def _sbatch_wait(script: Path) -> str:
    if not shutil.which("sbatch"):
        raise CosimError("sbatch not found: run the fit on a SLURM login node",
                         file=str(script))
    proc = subprocess.run(["sbatch", "--parsable", "--wait", str(script)],
                          capture_output=True, text=True)
    job = proc.stdout.strip().split(";")[0]
    if proc.returncode != 0 and not job:
        raise CosimError(f"sbatch failed: {proc.stderr.strip() or proc.stdout.strip()}",
                         file=str(script))
    return job


# -- the loop -------------------------------------------------------------------------------

def _fmt_params(values: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def run_fit(spec: FitSpec, backend=None, *, overwrite: bool = False,
            stream: TextIO | None = None, prepared: dict[int, dict] | None = None,
            on_wave: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Run (or resume) the fit; every evaluation's record, in index order.

    Rank 0 of an MPI backend prepares the folder and writes the log; the others wait for it
    (``prepared`` is the log rank 0 read, broadcast by the caller)."""
    backend = backend or Local()
    stream = sys.stderr if stream is None else stream
    cache = prepare_folder(spec, overwrite=overwrite) if prepared is None else prepared
    opt = make_optimizer(spec)
    records: list[dict] = []
    best = None
    tic = time.perf_counter()
    wave = 0
    while len(records) < spec.budget and not opt.done:
        n = min(spec.population, spec.budget - len(records))
        cands = opt.ask(n)
        if not cands:
            break
        jobs, wave_recs = [], {}
        for j, u in enumerate(cands):
            i = len(records) + j
            values = spec.values(u)
            old = cache.get(i)
            if old is not None and old.get("params") == values:
                wave_recs[i] = old
            else:
                jobs.append((i, values))
        new = backend.run(spec, jobs, tic) if jobs else []
        done_s = round(time.perf_counter() - tic, 3)
        for r in new:
            r["wave"] = wave
            r["time_s"] = done_s            # since this session's start: when it was known
            wave_recs[r["index"]] = r
        ordered = [wave_recs[len(records) + j] for j in range(len(cands))]
        if backend.rank == 0 and new:
            _append_log(spec.out, new)
        opt.tell(cands, [r["loss"] for r in ordered])
        records += ordered
        previous = best
        for r in ordered:
            if best is None or r["loss"] < best["loss"]:
                best = r
        if not spec.keep_outputs and backend.rank == 0:
            _drop_outputs(ordered + ([previous] if previous is not None else []), best)
        if on_wave is not None:
            on_wave(ordered)
        if backend.rank == 0:
            r_txt = f" (FC r {best['fc_r']:.3f})" if best.get("fc_r") is not None else ""
            reused = len(cands) - len(jobs)
            print(f"fit: {len(records)}/{spec.budget} evaluations, wave {wave}"
                  + (f" ({reused} from the log)" if reused else "")
                  + f"; best loss {best['loss']:.4f}{r_txt} at {_fmt_params(best['params'])}; "
                  f"{time.perf_counter() - tic:.1f} s", file=stream, flush=True)
        wave += 1
    if backend.rank == 0 and records:
        write_best(spec, records)
    return records


def _drop_outputs(records: list[dict], best: dict) -> None:
    for r in records:
        if r is not best and r.get("output"):
            Path(r["output"]).unlink(missing_ok=True)


def best_record(records: list[dict]) -> dict:
    return min(records, key=lambda r: (r["loss"], r["index"]))


def write_best(spec: FitSpec, records: list[dict]) -> Path:
    b = best_record(records)
    p = spec.out / BEST
    p.write_text(json.dumps({"index": b["index"], "params": b["params"], "loss": b["loss"],
                             "fc_r": b.get("fc_r"), "fcd_ks": b.get("fcd_ks"),
                             "output": b.get("output"), "evaluations": len(records)},
                            indent=1) + "\n", encoding="utf-8")
    return p


def records_for(folder: Path) -> list[dict]:
    """The logged records of a fit folder, in index order."""
    return [r for _, r in sorted(read_log(folder).items())]


__all__ = ["run_fit", "Local", "MPI", "Slurm", "read_log", "records_for", "best_record",
           "prepare_folder", "eval_paths"]
