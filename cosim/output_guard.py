"""What protects an output file: one run per file, room on the disk, never an input.

* **One run per output.**  :class:`OutputLock` takes an exclusive ``fcntl.flock`` on
  ``<output>.lock`` (it dies with the process) before the run creates anything; a second run
  is refused with ``held by another run (pid …)`` (:func:`check_output_path`,
  :func:`output_holder`) and touches nothing.  The recorder then writes the new file under
  a temporary name and renames it over the old one, so nothing is ever truncated.
* **Room on the disk.**  :func:`check_free_space` refuses a run whose estimated output
  (:func:`estimate_output_bytes`, from the record specs) does not fit; the recorder checks
  again before every flush (:data:`FLUSH_MARGIN_BYTES`).
* **Never an input.**  :func:`input_files` lists what a scenario reads; the output may not
  be one of them, even with ``--overwrite``.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import socket
import tempfile
import time
import tomllib
from pathlib import Path

from .engines.base import RecordSpec
from .errors import CosimError


def check_output_path(path: Path, overwrite: bool, inputs=()) -> None:
    """Refuse an output another run holds, one of the run's ``inputs`` (paths, see
    :func:`input_files`; even with ``overwrite``), a directory, an existing file unless
    ``overwrite``, or one in a folder that cannot be written."""
    path = Path(path)
    holder = output_holder(path)
    if holder:
        raise CosimError(f"held by another run ({holder}); wait for it to end or choose "
                         "another --output", file=str(path))
    if path.is_dir():
        raise CosimError("output path is a directory", file=str(path))
    for p in inputs:
        if _same_file(path, Path(p)):
            raise CosimError(f"the output file is an input of the run ({p}); choose another "
                             "--output", file=str(path))
    if path.exists() and not overwrite:
        raise CosimError("output file exists; pass --overwrite to replace it, or choose "
                         f"another --output (it is {path.absolute()})", file=str(path))
    _check_writable(path)


def _check_writable(path: Path) -> None:
    """Refuse an output whose folder (or, if it does not exist yet, its nearest existing
    ancestor) cannot be written: a probe file is created and removed there."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".cosim-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CosimError(f"cannot write in {folder} ({exc.strerror})", file=str(path)) from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:                 # one of them does not exist
        return a.resolve() == b.resolve()


def input_files(scenario) -> list[Path]:
    """The files a scenario reads: the scenario file and every string value of it that
    names an existing file (connectome files, SWC morphologies, lead fields, …), relative
    paths taken from the scenario's folder; ``[simulation] output`` is not an input."""
    path = Path(scenario.path)
    found = [path]
    try:
        data = tomllib.loads(scenario.text)
    except (tomllib.TOMLDecodeError, RecursionError, TypeError):
        return found
    data.get("simulation", {}).pop("output", None)
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str) and v and "\0" not in v and len(v) < 4096:
            p = Path(v).expanduser()
            p = p if p.is_absolute() else path.parent / p
            try:
                if p.is_file():
                    found.append(p)
            except OSError:
                pass
    return found


# -- one run per output file ----------------------------------------------------------------

def lock_path(path: Path) -> Path:
    """``<output>.lock``: the run writing ``<output>`` holds an exclusive flock on it."""
    return Path(str(path) + ".lock")


def output_holder(path: Path) -> str | None:
    """``"pid N on HOST"`` if a running run holds ``path``'s lock, else None."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_text(fd)
        except OSError:             # a filesystem without flock: nothing to tell
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _holder_text(fd: int) -> str:
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "pid unknown"


class OutputLock:
    """Exclusive lock of one output file for the life of a run (see module docstring).

    Raises :class:`CosimError` ``held by another run (pid …)`` when another process holds
    it.  On a filesystem without ``flock`` (some network filesystems) the run goes ahead
    unlocked.  :meth:`release` removes the lock file.
    """

    def __init__(self, path: Path):
        self.path = lock_path(path)
        self.fd: int | None = None
        for attempt in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise CosimError(f"cannot create the lock file {self.path.name} ({exc.strerror})",
                                 file=str(path)) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder_text(fd)
                os.close(fd)
                if attempt < 4:         # maybe a check_output_path looking for a moment
                    time.sleep(0.05)
                    continue
                raise CosimError(f"held by another run ({holder}); wait for it to end or "
                                 "choose another --output", file=str(path)) from None
            except OSError:
                os.close(fd)
                return
            try:                        # the file we locked may have been removed meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            self.fd = fd
            return
        raise CosimError("cannot lock the output file (its lock file keeps changing)",
                         file=str(path))

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)        # while still locked: the next run makes a new one
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


# -- free space --------------------------------------------------------------------------------

SPIKE_RATE_ALLOWANCE_HZ = 100.0     # mean rate per cell assumed for the spike estimate
HEADER_ALLOWANCE_BYTES = 1 << 20    # attributes, scenario text, provenance, HDF5 metadata
FLUSH_MARGIN_BYTES = 1 << 20        # a flush leaves at least this much free (metadata, close)


def series_chunk_rows(nv: int, nr: int) -> int:
    """Rows per chunk of a ``(time, nv, nr)`` float64 dataset: chunks of at most 1 MiB."""
    return max(1, min(4096, (1 << 20) // max(1, 8 * nv * nr)))


def chunked_bytes(n: int, rows: int, row_bytes: int) -> int:
    """File bytes of ``n`` rows stored in chunks of ``rows`` rows (whole chunks)."""
    return math.ceil(n / rows) * rows * row_bytes if n > 0 else 0


def estimate_output_bytes(specs: dict[str, list[RecordSpec]], scenario, n_ranks: int = 1) -> int:
    """Upper estimate of the output file's size in bytes.

    Time series: samples (``duration / period``) × variables × regions × 8 bytes, in whole
    chunks, plus their time axes; spikes: cells (``attrs["n_cells"]`` of the spike spec) ×
    :data:`SPIKE_RATE_ALLOWANCE_HZ` × duration × 16 bytes (time + node id) — a network
    firing faster than that is caught by the check before each flush; timing: windows ×
    ranks × 3 × 8; connectome: 2 n² × 8; stimuli: steps × 2 × 8 each (:mod:`cosim.stimuli`);
    plus :data:`HEADER_ALLOWANCE_BYTES`.
    """
    sim = scenario.simulation
    total = HEADER_ALLOWANCE_BYTES + 16 * len(scenario.connectome.region_labels) ** 2
    total += len(scenario.text.encode("utf-8"))
    for engine_specs in specs.values():
        for spec in engine_specs:
            if spec.attrs.get("kind") == "spikes":
                n = int(spec.attrs.get("n_cells", 0) * SPIKE_RATE_ALLOWANCE_HZ
                        * sim.duration_ms / 1000.0)
                total += chunked_bytes(n, 65536, 16)
                continue
            nv, nr = len(spec.variables), len(spec.regions)
            n = int(math.floor((sim.duration_ms - spec.start_ms) / spec.period_ms + 1e-9))
            rows = series_chunk_rows(nv, nr)
            total += chunked_bytes(n, rows, 8 * nv * nr) + chunked_bytes(n, max(rows, 256), 8)
    for rec in getattr(scenario, "stimuli", {}).values():      # values + time_ms per step
        n = int(math.ceil(sim.duration_ms / rec.dt_ms - 1e-9))
        total += 2 * chunked_bytes(n, 4096, 8) + 8 * len(rec.targets)
    n_windows = math.ceil(sim.duration_ms / sim.sync_interval_ms - 1e-9)
    total += chunked_bytes(n_windows, 256, 24 * n_ranks)
    return total


def free_bytes(path: Path) -> int:
    """Bytes available to this user on the filesystem that holds (or will hold) ``path``."""
    p = Path(path).absolute().parent
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def check_free_space(path: Path, specs: dict[str, list[RecordSpec]], scenario, *,
                     n_ranks: int = 1) -> None:
    """Refuse (:class:`CosimError`) a new output whose estimated size
    (:func:`estimate_output_bytes`, plus the :data:`FLUSH_MARGIN_BYTES` every flush leaves)
    does not fit in the free space of its filesystem; an existing file at ``path`` counts
    as free (it is replaced)."""
    need = estimate_output_bytes(specs, scenario, n_ranks) + FLUSH_MARGIN_BYTES
    free = free_bytes(path)
    try:
        free += Path(path).stat().st_size
    except OSError:
        pass
    if need > free:
        raise CosimError(f"not enough free space: the output needs about {format_size(need)} "
                         f"(estimated from the record specs), {format_size(free)} free",
                         file=str(path))


def is_disk_full(exc: BaseException) -> bool:
    """Is ``exc`` (an OSError, or h5py's RuntimeError from a failed flush) out of space?"""
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "errno = 28" in text or "No space left" in text or "errno = 122" in text
