"""Plumbing shared by the benchmarks: simulator workers, timing, memory, tables, JSON.

Why workers
-----------
Every simulator of a benchmark runs in a **worker process of its own**, started by the one
benchmark invocation and driven over a pipe, one JSON object per line:

* no simulator shares an interpreter, a JIT cache, an allocator or loaded C libraries with
  another, so none is slowed down (or sped up) by the others;
* memory is measured per simulator, in its own address space;
* a peer that cannot live in the benchmark's virtual environment runs under its own
  interpreter (``--neurolib-python``), still in the same invocation;
* the timed runs are **interleaved** — round r runs simulator A, then B, then C, then
  round r+1 — so a burst of load from other programs on a shared machine hits all
  simulators alike instead of one of them; we report the minimum over the rounds.

Only one worker computes at a time; the others wait on a blocking read and use no CPU.
Each worker is pinned to one thread (``OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1``).

Worker life cycle (:func:`worker_main`)::

    setup  →  runner = factory(config); runner.warmup()      # JIT / first call, timed: warmup_s
              reset the peak-RSS counter; baseline = RSS now
              runner.build()                                 # full-size model, timed: build_s
    run    →  wall_s, arrays = runner.run()                  # one timed run (min over rounds)
              peak_rss_delta = peak RSS since reset − baseline
    quit

Memory method: Linux ``/proc/self/status`` ``VmHWM`` (peak resident set), reset with
``/proc/self/clear_refs`` ← ``5`` after the warm-up, minus ``VmRSS`` at that moment — so
it is the peak extra resident memory of building and running the model, excluding the
interpreter, the imported libraries and JIT compilation.  Where the reset is not
allowed, ``ru_maxrss`` is used instead and the method string says so.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

#: Environment of every worker: one thread, no progress bars.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
}

_PROTOCOL_TIMEOUT_S = 3600.0


class PeerUnavailable(Exception):
    """A simulator cannot run here (not installed, wrong version…); carries the reason."""


# --------------------------------------------------------------------------- memory

_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_bytes() -> int:
    """Resident set size now (bytes); falls back to ``ru_maxrss`` off Linux."""
    kib = _status_kib("VmRSS")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def reset_peak_rss() -> str:
    """Reset the kernel's peak-RSS counter; return the name of the method in use."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return "VmHWM-VmRSS after clear_refs reset (Linux peak resident set)"
    except OSError:
        return "ru_maxrss delta (peak could not be reset; includes earlier peaks)"


def peak_rss_bytes() -> int:
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


# --------------------------------------------------------------------------- worker side

def worker_main(factories: dict[str, Callable[[dict], Any]], name: str) -> None:
    """Serve the protocol for simulator ``name`` on this process's stdin/stdout.

    A factory takes the config dict and returns a runner with ``versions() -> dict``,
    ``warmup()``, ``build() -> dict`` and ``run() -> (wall_s, {name: ndarray})``.  It
    raises :class:`PeerUnavailable` (or ``ImportError``) when the simulator is missing.
    """
    # Keep the real stdout for the protocol; anything a library prints goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    runner = None
    saved = False
    baseline = 0
    out_dir = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        try:
            if cmd == "setup":
                config = msg["config"]
                out_dir = Path(msg["out_dir"])
                try:
                    runner = factories[name](config)
                    versions = runner.versions()
                except (PeerUnavailable, ImportError) as exc:
                    reply({"ok": False, "unavailable": True, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                tic = time.perf_counter()
                runner.warmup()
                warmup_s = time.perf_counter() - tic
                method = reset_peak_rss()
                baseline = current_rss_bytes()
                tic = time.perf_counter()
                info = runner.build() or {}
                build_s = time.perf_counter() - tic
                reply({"ok": True, "versions": versions, "warmup_s": warmup_s, "build_s": build_s,
                       "info": info, "memory_method": method, "python": sys.executable})
            elif cmd == "run":
                cpu0 = time.process_time()
                wall_s, arrays = runner.run()
                cpu_s = time.process_time() - cpu0     # this process's CPU time of the call
                path = None
                if arrays and not saved:  # the driver compares the first run's outputs
                    saved = True
                    import numpy as np
                    path = str(out_dir / f"{name}.npz")
                    np.savez(path, **arrays)
                reply({"ok": True, "wall_s": wall_s, "cpu_s": cpu_s, "arrays": path,
                       "peak_rss_delta_bytes": peak_rss_bytes() - baseline})
            elif cmd == "quit":
                reply({"ok": True})
                return
            else:
                reply({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception:
            reply({"ok": False, "unavailable": False, "error": traceback.format_exc()})


# --------------------------------------------------------------------------- parent side

class WorkerError(RuntimeError):
    pass


class Worker:
    """One simulator's worker process, seen from the benchmark driver."""

    def __init__(self, script: str | Path, name: str, python: str | None = None,
                 verbose: bool = False, env: dict | None = None):
        self.name = name
        self.python = python or sys.executable
        env = {**os.environ, **SINGLE_THREAD_ENV, **(env or {})}
        self._stderr = None if verbose else tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            [self.python, str(script), "--worker", name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, text=True, bufsize=1)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)

    def stderr_tail(self, n_chars: int = 4000) -> str:
        if self._stderr is None:
            return "(stderr shown above)"
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-n_chars:]

    def request(self, cmd: str, timeout_s: float = _PROTOCOL_TIMEOUT_S, **payload) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **payload}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(f"{self.name}: worker died\n{self.stderr_tail()}") from None
        if not self._sel.select(timeout_s):
            self.close()
            raise WorkerError(f"{self.name}: no answer to {cmd!r} within {timeout_s:g} s")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerError(f"{self.name}: worker exited with code {self.proc.returncode} "
                              f"during {cmd!r}\n{self.stderr_tail()}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request("quit", timeout_s=30)
            except (WorkerError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_interleaved(script: str | Path, plan: list[dict], repeats: int, *, verbose: bool = False,
                    cold_jit: bool = False, log=print) -> dict[str, dict]:
    """Set up every simulator in ``plan`` in order, then time them round-robin.

    ``plan`` items: ``{"name", "config", "python" (optional), "before_setup" (optional
    callable(results_so_far, out_dir) -> config updates; raises PeerUnavailable to skip),
    "env" (optional: the timed worker's environment on top of one thread, e.g. more
    NUMBA_NUM_THREADS)}``.
    Every config gets ``out_dir``, a scratch folder shared by the workers of this run.
    ``cold_jit``: first set up each simulator once in a throw-away worker with an empty
    numba cache, so that warm-up is the full compilation (reported as ``setup.jit_cold_s``);
    the timed worker then loads the kernels from that cache.  (Doing it in the timed worker
    would let the model reuse the compiler's freed memory and spoil the memory figure.)
    Without it, kernels numba cached on disk earlier are loaded, as in a user's second run.  Returns, per
    name, either ``{"status": "skipped", "reason"}`` or ``{"status": "ok", "setup",
    "walls_s", "cpus_s", "peak_rss_delta_bytes", "arrays"}`` where ``cpus_s`` are the worker
    process's CPU times (``time.process_time``) of the same timed calls — the measure to
    trust on a loaded machine — and ``arrays`` are the loaded outputs of the first timed run.
    """
    import numpy as np

    results: dict[str, dict] = {}
    workers: dict[str, Worker] = {}
    out_dir = Path(tempfile.mkdtemp(prefix="cosim-bench-"))
    env = {"NUMBA_CACHE_DIR": str(out_dir / "numba-cache")} if cold_jit else {}
    try:
        for item in plan:
            name = item["name"]
            config = dict(item["config"])
            config["out_dir"] = str(out_dir)
            if item.get("before_setup") is not None:
                try:
                    config.update(item["before_setup"](results, out_dir))
                except PeerUnavailable as exc:
                    results[name] = {"status": "skipped", "reason": str(exc)}
                    log(f"  {name:<14} skipped: {exc}")
                    continue
            jit_cold = None
            if cold_jit:
                log(f"  {name:<14} compiling from an empty numba cache …")
                w0 = Worker(script, name, item.get("python"), verbose=verbose,
                            env={**env, **item.get("env", {})})
                rep0 = w0.request("setup", config=config, out_dir=str(out_dir))
                w0.close()
                jit_cold = rep0.get("warmup_s")
            log(f"  {name:<14} setting up (warm-up / JIT, build) …")
            w = Worker(script, name, item.get("python"), verbose=verbose,
                       env={**env, **item.get("env", {})})
            rep = w.request("setup", config=config, out_dir=str(out_dir))
            rep["jit_cold_s"] = jit_cold
            if not rep["ok"]:
                w.close()
                if rep.get("unavailable"):
                    results[name] = {"status": "skipped", "reason": rep["error"]}
                    log(f"  {name:<14} skipped: {rep['error']}")
                    continue
                raise WorkerError(f"{name}: setup failed:\n{rep['error']}\n{w.stderr_tail()}")
            workers[name] = w
            results[name] = {"status": "ok", "setup": rep, "walls_s": [], "cpus_s": [],
                             "peak_rss_delta_bytes": 0, "arrays": None}
        for r in range(repeats):
            for name, w in workers.items():
                rep = w.request("run")
                if not rep["ok"]:
                    raise WorkerError(f"{name}: run failed:\n{rep['error']}\n{w.stderr_tail()}")
                res = results[name]
                res["walls_s"].append(rep["wall_s"])
                res["cpus_s"].append(rep.get("cpu_s"))
                res["peak_rss_delta_bytes"] = max(res["peak_rss_delta_bytes"],
                                                  rep["peak_rss_delta_bytes"])
                if res["arrays"] is None and rep["arrays"]:
                    with np.load(rep["arrays"]) as z:
                        res["arrays"] = {k: z[k] for k in z.files}
                log(f"  round {r + 1}/{repeats}  {name:<14} {rep['wall_s']:.3f} s")
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(out_dir, ignore_errors=True)
    return results


# --------------------------------------------------------------------------- reporting

def mpiexec() -> str:
    """The ``mpiexec`` next to this interpreter (the ``mpich`` wheel), else the one on PATH."""
    cand = Path(sys.executable).parent / "mpiexec"
    if cand.exists():
        return str(cand)
    found = shutil.which("mpiexec")
    if not found:
        sys.exit("no mpiexec found: pip install -e .[mpi]")
    return found


def machine_info() -> dict:
    """Where and when the numbers were taken (they only mean something with this)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "n_cpus": os.cpu_count(),
        "load_average_at_start": load,
        "threads_per_simulator": 1,
    }


def add_common_args(p: argparse.ArgumentParser, *, repeats: int) -> None:
    p.add_argument("--repeats", type=int, default=repeats,
                   help=f"timed runs per simulator, interleaved; the minimum is reported (default {repeats})")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--only", nargs="+", metavar="SIM",
                   help="run only these simulators (names as in the table)")
    p.add_argument("--verbose", action="store_true", help="show the workers' stderr")
    p.add_argument("--cold-jit", action="store_true",
                   help="start from an empty numba cache, so jit_seconds is the full compile "
                        "time (default: numba's on-disk cache as it is, like a user's later runs)")
    p.add_argument("--worker", help=argparse.SUPPRESS)


def write_json(path: str | Path, payload: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_table(headers: list[str], rows: list[list[Any]], out=sys.stdout) -> None:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)), file=out)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return str(v)


def ratio(peer: float | None, ours: float | None) -> float | None:
    """``peer / ours`` (how many times faster we are), or None when one side is missing."""
    if peer is None or ours is None or ours <= 0:
        return None
    return peer / ours


def check_targets(ratios: dict, targets: dict[str, float], at_least: set[str]) -> dict:
    """Print and return whether each peer ratio meets its target: ``≥ need`` for the peers in
    ``at_least``, ``> need`` for the others (``None`` where the peer did not run)."""
    met = {}
    for peer, need in targets.items():
        rr = ratios.get(peer)
        inclusive = peer in at_least
        met[peer] = None if rr is None else bool(rr >= need if inclusive else rr > need)
        if rr is not None:
            print(f"target vs {peer}: {'≥' if inclusive else '>'}{need:g}× → {rr:.2f}× "
                  f"{'met' if met[peer] else 'NOT met'}")
    return met
