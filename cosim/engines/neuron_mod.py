"""Compiling a folder of NEURON ``.mod`` files with ``nrnivmodl``, cached by content hash.

The cache key is the SHA-256 of every ``.mod`` file's name and bytes (sorted by name), the
NEURON version and the machine type, so an unchanged folder is compiled once per machine
and NEURON version, however many runs and ranks use it.  The compiled library lives in
``$COSIM_CACHE_DIR/nrnivmodl/<key>/`` (default ``~/.cache/cosim``).  Several ranks may
compile the same folder at once: each compiles in a private temporary folder and renames
it into place; the first rename wins, the others use the winner's library.

A compile error is one :class:`~cosim.errors.CosimError` line naming the ``.mod`` file and
the compiler's first complaint.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import cache
from ..errors import CosimError


def cache_root() -> Path:
    return cache.cache_root("nrnivmodl")


def mod_files(mod_dir: str | os.PathLike) -> list[Path]:
    return sorted(p for p in Path(mod_dir).iterdir() if p.suffix == ".mod" and p.is_file())


def content_key(mod_dir: str | os.PathLike, neuron_version: str,
                extra: dict[str, str] | None = None) -> str:
    """Hash of the folder's ``.mod`` files (names and bytes), NEURON version and machine,
    and of the ``extra`` files compiled with them (name → text)."""
    h = hashlib.sha256()
    for part in (neuron_version, platform.machine()):
        h.update(part.encode() + b"\0")
    files = [(p.name, p.read_bytes()) for p in mod_files(mod_dir)]
    files += sorted((name, text.encode()) for name, text in (extra or {}).items())
    for name, data in files:
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:24]


def _nrnivmodl() -> str:
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    exe = shutil.which("nrnivmodl", path=path)
    if exe is None:
        raise CosimError("nrnivmodl not found next to the Python interpreter or on PATH "
                         "(install the extra: pip install cosim[neuron])")
    return exe


def compile_mods(mod_dir: str | os.PathLike, neuron_version: str, *,
                 key: str | None = None, extra: dict[str, str] | None = None) -> Path:
    """Folder holding the compiled mechanisms of ``mod_dir`` (compiled now if not cached).

    ``key``: the scenario key to name in an error (e.g. ``engines.v1.mod_dir``);
    ``extra``: more ``.mod`` files (name → text) compiled into the same library (cosim's own,
    :data:`.neuron_model.EVENTS_MOD`).
    """
    files = mod_files(mod_dir)
    if not files:
        raise CosimError(f"folder {mod_dir} holds no .mod file", key=key)
    clash = sorted(set(extra or ()) & {p.name for p in files})
    if clash:
        raise CosimError(f"folder {mod_dir} holds {clash[0]}, a name cosim's own mechanisms "
                         f"use; rename it", key=key)
    root = cache_root()
    final = root / content_key(mod_dir, neuron_version, extra)
    if _library(final) is not None:
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    except OSError as exc:
        raise CosimError(f"cannot write the nrnivmodl cache {root} ({exc.strerror}); set "
                         f"COSIM_CACHE_DIR to a writable folder", key=key) from None
    try:
        for p in files:
            shutil.copy(p, work / p.name)
        for name, text in (extra or {}).items():
            (work / name).write_text(text)
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                   + os.environ.get("PATH", ""))
        res = subprocess.run([_nrnivmodl()], cwd=work, capture_output=True, text=True, env=env,
                             timeout=900)
        if res.returncode != 0 or _library(work) is None:
            bad, why = _first_error(res.stdout + "\n" + res.stderr, [p.name for p in files])
            raise CosimError(f"nrnivmodl failed on {bad}: {why}",
                             file=Path(mod_dir) / bad if bad != "the folder" else mod_dir, key=key)
        try:
            os.rename(work, final)
        except OSError:          # another rank or run was first: use its library
            if _library(final) is None:
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return final


def _library(folder: Path) -> Path | None:
    """The compiled mechanism library in ``folder`` (``<arch>/libnrnmech.so``), if any."""
    if not folder.is_dir():
        return None
    for lib in folder.glob("*/libnrnmech.*"):
        return lib
    for lib in folder.glob("*/.libs/libnrnmech.*"):
        return lib
    return None


def _first_error(text: str, names: list[str]) -> tuple[str, str]:
    """(file name, first complaint) from nrnivmodl's output."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    bad = "the folder"
    for ln in lines:
        for n in names:
            if n in ln and re.search(r"error|Error|line \d+", ln):
                bad = n
                break
        if bad != "the folder":
            break
    noise = ("make", "Traceback", "raise", "subprocess")
    why = next((ln for ln in lines if re.search(r"[Ee]rror", ln) and not ln.startswith(noise)),
               lines[-1] if lines else "no output")
    if bad == "the folder":       # C compile errors name the generated .c file
        m = re.search(r"(\w+)\.(?:c|cpp):\d+", text)
        if m and m.group(1) + ".mod" in names:
            bad = m.group(1) + ".mod"
    return bad, why[:300]
