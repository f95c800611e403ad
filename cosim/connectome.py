"""Structural connectivity: weights, tract lengths, region names and centres.

Convention: ``weights[i, j]`` is the strength of the connection **from region j to
region i** (row = target, column = source), the same as The Virtual Brain, so the
coupling input of region ``i`` is ``sum_j weights[i, j] * x_j(t - d_ij)``.

Sources understood by :func:`load_connectome`:

``"tvb:connectivity_76"`` (also 66, 68, 96, 192)
    The connectomes shipped by the ``tvb-data`` package.
a ``.zip`` file or a folder in TVB's format
    Members ``weights.txt``, ``tract_lengths.txt``, ``centres.txt`` (``label x y z`` per
    line), each optionally ``.bz2``-compressed and optionally inside one sub-folder.
a ``.npz`` file
    Arrays ``weights`` and ``tract_lengths`` (n, n); optional ``region_labels`` (n,)
    strings and ``centres`` (n, 3) mm.
a pair of CSV files
    ``{weights = "w.csv", tract_lengths = "l.csv", labels = "names.txt"}`` — comma- or
    whitespace-separated numeric matrices; ``labels`` (one name per line) is optional.

Isolated regions: a region of a user-supplied connectome (zip, folder, npz, CSV) without
any connection to or from another region (zero row and column of ``weights``, diagonal
ignored) is refused — it is usually a data error (a shifted row, a label without data) —
unless ``allow_disconnected=True`` (scenario: ``[connectome] allow_disconnected = true``).
The connectomes shipped by ``tvb-data`` are taken as they are: ``connectivity_76`` has two
such regions, ``lCC`` and ``rCC`` (the corpus callosum halves).

Delays: ``d_ij = tract_lengths[i, j] / speed`` (ms, with lengths in mm and speed in
mm/ms = m/s).  On a time grid of step ``dt`` the delay is quantised to the nearest whole
number of steps, ``n_ij = rint(d_ij / dt)`` (round half to even, TVB's rule), so the
largest quantisation error is ``dt / 2``.
"""

from __future__ import annotations

import bz2
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import CosimError

#: Longest delay, in steps, a history may hold (beyond it memory, or int64, runs out).
MAX_DELAY_STEPS = 1 << 28

TVB_DATA_NAMES = ("connectivity_66", "connectivity_68", "connectivity_76",
                  "connectivity_96", "connectivity_192")


@dataclass(frozen=True)
class Connectome:
    """A validated structural connectome.

    Attributes
    ----------
    weights : ndarray (n, n)
        Connection strengths, ``weights[target, source]``, dimensionless (≥ 0).
    tract_lengths_mm : ndarray (n, n)
        Fibre tract lengths in mm (≥ 0), same indexing as ``weights``.
    region_labels : tuple of str
        Region names, unique.
    centres_mm : ndarray (n, 3) or None
        Region centre coordinates in mm.
    source : str
        Where it was loaded from (for provenance in output files).
    """

    weights: np.ndarray
    tract_lengths_mm: np.ndarray
    region_labels: tuple[str, ...]
    centres_mm: np.ndarray | None = None
    source: str = ""

    @property
    def n_regions(self) -> int:
        return self.weights.shape[0]

    def index_of(self, label: str) -> int:
        """Index of region ``label``; ``KeyError`` if absent."""
        try:
            return self.region_labels.index(label)
        except ValueError:
            raise KeyError(label) from None

    def delays_ms(self, speed_mm_per_ms: float) -> np.ndarray:
        """Conduction delays ``tract_lengths / speed`` in ms, shape (n, n)."""
        if not speed_mm_per_ms > 0:
            raise ValueError(f"speed must be > 0 mm/ms, got {speed_mm_per_ms}")
        return self.tract_lengths_mm / float(speed_mm_per_ms)

    def delay_steps(self, speed_mm_per_ms: float, dt_ms: float) -> np.ndarray:
        """Delays as whole numbers of steps of ``dt_ms``: ``rint(d / dt)`` (int64, (n, n)).

        Raises :class:`CosimError` (key ``connectome.speed``) for delays of more than
        ``MAX_DELAY_STEPS`` steps — a history that long cannot be kept (and int64 would
        overflow for an absurdly small speed)."""
        if not dt_ms > 0:
            raise ValueError(f"dt must be > 0 ms, got {dt_ms}")
        steps = np.rint(self.delays_ms(speed_mm_per_ms) / dt_ms)
        longest = float(steps.max()) if steps.size else 0.0
        if not longest <= MAX_DELAY_STEPS:
            raise CosimError(f"the longest tract, {float(self.tract_lengths_mm.max()):g} mm, takes "
                             f"{longest:.3g} steps of {dt_ms:g} ms at {speed_mm_per_ms:g} mm/ms "
                             f"(at most {MAX_DELAY_STEPS}); is the speed in mm/ms (= m/s)?",
                             key="connectome.speed")
        return steps.astype(np.int64)

    def subset(self, indices) -> "Connectome":
        """The connectome restricted to regions ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        return Connectome(self.weights[np.ix_(idx, idx)].copy(),
                          self.tract_lengths_mm[np.ix_(idx, idx)].copy(),
                          tuple(self.region_labels[i] for i in idx),
                          None if self.centres_mm is None else self.centres_mm[idx].copy(),
                          self.source)


def make_connectome(weights, tract_lengths_mm, region_labels=None, centres_mm=None, *,
                    source: str = "", file: str | None = None,
                    key: str | None = None, files: Mapping[str, str] | None = None) -> Connectome:
    """Validate arrays and build a :class:`Connectome`.

    Raises :class:`CosimError` (naming ``file``/``key``) for non-square or mismatched
    matrices, NaN/Inf, negative entries, wrong label count or duplicate labels.  ``files``
    (``{"tract_lengths": path, "labels": path, …}``) names the file an array came from when
    it is not ``file``, so that each message names the file it is about.
    """
    files = dict(files or {})

    def fail(reason, about="weights"):
        return CosimError(reason, file=files.get(about, file), key=key)

    w = _float_array(weights, "weights", fail)
    L = _float_array(tract_lengths_mm, "tract_lengths", lambda r: fail(r, "tract_lengths"))
    for name, m in (("weights", w), ("tract_lengths", L)):
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise fail(f"{name} must be a square matrix, got shape {m.shape}", name)
        if m.shape[0] == 0:
            raise fail(f"{name} is empty", name)
        bad = ~np.isfinite(m)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise fail(f"{name}[{i}, {j}] is {m[i, j]} (NaN/Inf not allowed)", name)
        neg = m < 0
        if neg.any():
            i, j = np.argwhere(neg)[0]
            raise fail(f"{name}[{i}, {j}] = {m[i, j]:g} is negative", name)
    if w.shape != L.shape:       # the weights define n: the tract lengths are at fault
        raise fail(f"weights {w.shape} and tract_lengths {L.shape} differ in shape",
                   "tract_lengths")
    n = w.shape[0]
    if region_labels is None:
        labels = tuple(f"r{i}" for i in range(n))
    else:
        labels = tuple(str(s).strip() for s in region_labels)
        if len(labels) != n:
            raise fail(f"{len(labels)} region labels for a {n}x{n} connectome", "labels")
        seen: dict[str, int] = {}
        for i, s in enumerate(labels):
            if not s:
                raise fail(f"region label {i} is empty", "labels")
            if s in seen:
                raise fail(f"region label {s!r} appears twice (rows {seen[s]} and {i})", "labels")
            seen[s] = i
    c = None
    if centres_mm is not None:
        c = _float_array(centres_mm, "centres", lambda r: fail(r, "centres"))
        if c.shape != (n, 3):
            raise fail(f"centres must have shape ({n}, 3), got {c.shape}", "centres")
        if not np.isfinite(c).all():
            raise fail("centres contain NaN/Inf", "centres")
    w.setflags(write=False)
    L.setflags(write=False)
    if c is not None:
        c.setflags(write=False)
    return Connectome(w, L, labels, c, source)


def _float_array(value, name: str, fail) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(f"{name} are not numbers (array of {np.asarray(value).dtype})") from None


def isolated_regions(conn: Connectome) -> list[int]:
    """Regions with no connection to or from any other region (diagonal ignored)."""
    if conn.n_regions < 2:
        return []
    off = conn.weights != 0
    np.fill_diagonal(off, False)
    return [int(i) for i in np.flatnonzero(~off.any(axis=0) & ~off.any(axis=1))]


def check_connected(conn: Connectome, *, file: str | None = None, key: str | None = None) -> None:
    """Raise :class:`CosimError` if a region is isolated (see module docstring)."""
    lonely = isolated_regions(conn)
    if not lonely:
        return
    names = ", ".join(repr(conn.region_labels[i]) for i in lonely[:5])
    more = f" and {len(lonely) - 5} more" if len(lonely) > 5 else ""
    what = "region" if len(lonely) == 1 else "regions"
    raise CosimError(f"{what} {names}{more} of {os.path.basename(conn.source) or 'the connectome'} "
                     f"{'has' if len(lonely) == 1 else 'have'} no connection to or from any other "
                     f"region (zero row and column of weights); set connectome.allow_disconnected "
                     f"= true if that is intended", file=file, key=key)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

def load_connectome(source: Any, *, base_dir: str | os.PathLike | None = None,
                    file: str | None = None, key: str | None = None,
                    allow_disconnected: bool = False) -> Connectome:
    """Load a connectome from any supported ``source`` (see module docstring).

    ``base_dir`` resolves relative paths (the scenario file's folder); ``file``/``key``
    locate the setting in error messages.  Problems raise :class:`CosimError`, and so does
    an isolated region of a user-supplied file unless ``allow_disconnected``.
    """
    if isinstance(source, (str, os.PathLike)) and os.fspath(source).startswith("tvb:"):
        return _load_tvb_data(os.fspath(source)[4:], file, key)
    conn = _load_user(source, base_dir, file, key)
    if not allow_disconnected:
        check_connected(conn, file=file or conn.source, key=key)
    return conn


def _load_user(source: Any, base_dir, file, key) -> Connectome:
    if isinstance(source, Mapping):
        return _load_csv_pair(source, base_dir, file, key)
    if not isinstance(source, (str, os.PathLike)):
        raise CosimError(f"must be a path, 'tvb:<name>' or a table of CSV files, got {source!r}",
                         file=file, key=key)
    text = os.fspath(source)
    path = _resolve(text, base_dir)
    if not path.exists():
        raise CosimError(f"connectome {text!r} not found (looked at {path})", file=file, key=key)
    if path.is_dir():
        return _load_tvb_members(_FolderMembers(path), str(path), key)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        try:
            members = _ZipMembers(path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CosimError(f"not a readable zip file ({exc})", file=str(path), key=key) from None
        return _load_tvb_members(members, str(path), key)
    if suffix == ".npz":
        return _load_npz(path, key)
    raise CosimError(f"unsupported connectome file type {suffix!r} "
                     "(expected a TVB .zip or folder, .npz, or a table of CSV files)",
                     file=file, key=key)


def tvb_data_path(name: str) -> Path:
    """Path of ``connectivity_<n>.zip`` inside the installed ``tvb-data`` package."""
    import importlib.util
    spec = importlib.util.find_spec("tvb_data")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the tvb-data package is not installed (pip install tvb-data)")
    return Path(list(spec.submodule_search_locations)[0]) / "connectivity" / f"{name}.zip"


def _resolve(text: str, base_dir) -> Path:
    p = Path(text).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def _load_tvb_data(name: str, file, key) -> Connectome:
    if name not in TVB_DATA_NAMES:
        raise CosimError(f"unknown tvb-data connectome {name!r}; available: "
                         + ", ".join(f"tvb:{n}" for n in TVB_DATA_NAMES), file=file, key=key)
    try:
        path = tvb_data_path(name)
    except FileNotFoundError as exc:
        raise CosimError(str(exc), file=file, key=key) from None
    c = _load_tvb_members(_ZipMembers(path), str(path), key)
    return Connectome(c.weights, c.tract_lengths_mm, c.region_labels, c.centres_mm,
                      source=f"tvb:{name}")


class _ZipMembers:
    """Members of a TVB zip by base name, looking into one sub-folder if needed."""

    def __init__(self, path: Path):
        self.path = path
        self.zf = zipfile.ZipFile(path)
        self.names = {os.path.basename(n): n for n in self.zf.namelist() if not n.endswith("/")}

    def read(self, base: str) -> tuple[str, bytes] | None:
        for candidate in (base, base + ".bz2"):
            if candidate in self.names:
                try:
                    return candidate, self.zf.read(self.names[candidate])
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
                        NotImplementedError) as exc:
                    raise CosimError(f"{candidate}: cannot be read from the zip ({exc}); "
                                     "truncated or corrupt file?", file=str(self.path)) from None
        return None


class _FolderMembers:
    def __init__(self, path: Path):
        self.path = path

    def read(self, base: str) -> tuple[str, bytes] | None:
        for candidate in (base, base + ".bz2"):
            p = self.path / candidate
            if p.is_file():
                return candidate, p.read_bytes()
        return None


def _text(member: str, raw: bytes, where: str) -> str:
    if member.endswith(".bz2"):
        try:
            raw = bz2.decompress(raw)
        except (OSError, ValueError, EOFError) as exc:
            raise CosimError(f"{member}: corrupt bz2 data ({exc})", file=where) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CosimError(f"{member}: not a text file", file=where) from None
    if "\x00" in text:
        raise CosimError(f"{member}: binary data, not a text file", file=where)
    return text


def _matrix(text: str, member: str | None, where: str, delimiter=None) -> np.ndarray:
    """A numeric matrix from text; ``member`` names it inside ``where`` (``None``: the
    file itself), so messages read ``conn.zip: weights.txt line 3: …`` or ``w.csv: line 3: …``."""
    def fail(line: str | None, reason: str) -> CosimError:
        key = " ".join(p for p in (member, line) if p) or None
        return CosimError(reason, file=where, key=key)

    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split() if delimiter is None else line.split(delimiter)
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            hint = ("; a header line? remove it (names go in a separate labels file)"
                    if not rows and not any(_is_float(p) for p in parts) else "")
            raise fail(f"line {lineno}", f"{bad.strip()!r} is not a number{hint}") from None
    if not rows:
        raise fail(None, "is empty")
    lens = [len(r) for r in rows]
    if len(set(lens)) != 1:
        i = next(i for i, k in enumerate(lens) if k != lens[0])
        where_bad = "the last row" if i == len(rows) - 1 else f"data row {i + 1}"
        raise fail(None, f"rows have different lengths ({lens[0]} values in the first row, "
                         f"{lens[i]} in {where_bad}); truncated file?")
    return np.array(rows, dtype=np.float64)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _centres(text: str, member: str, where: str) -> tuple[list[str], np.ndarray]:
    labels, xyz = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            raise CosimError(f"{member} line {lineno}: expected 'label x y z', got {line.strip()!r}",
                             file=where)
        try:
            xyz.append([float(p) for p in parts[1:4]])
        except ValueError:
            raise CosimError(f"{member} line {lineno}: coordinates are not numbers: "
                             f"{' '.join(parts[1:4])!r}", file=where) from None
        labels.append(parts[0])
    return labels, np.array(xyz, dtype=np.float64).reshape(-1, 3)


def _load_tvb_members(members, where: str, key) -> Connectome:
    got = {}
    for base in ("weights.txt", "tract_lengths.txt", "centres.txt"):
        m = members.read(base)
        if m is None:
            raise CosimError(f"missing member {base} (or {base}.bz2)", file=where, key=key)
        got[base] = _text(m[0], m[1], where), m[0]
    w = _matrix(*got["weights.txt"], where)
    L = _matrix(*got["tract_lengths.txt"], where)
    labels, centres = _centres(*got["centres.txt"], where)
    return make_connectome(w, L, labels, centres, source=where, file=where, key=key)


def _load_npz(path: Path, key) -> Connectome:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise CosimError(f"not a readable .npz file ({exc}); truncated or corrupt?",
                         file=str(path), key=key) from None
    for need in ("weights", "tract_lengths"):
        if need not in arrays:
            raise CosimError(f"missing array {need!r} (has: {', '.join(sorted(arrays)) or 'none'})",
                             file=str(path), key=key)
    labels = arrays.get("region_labels")
    if labels is not None and labels.ndim != 1:
        raise CosimError(f"region_labels must be a 1-d array of names, got shape {labels.shape}",
                         file=str(path), key=key)
    return make_connectome(arrays["weights"], arrays["tract_lengths"],
                           None if labels is None else [str(s) for s in labels],
                           arrays.get("centres"), source=str(path), file=str(path), key=key)


def _load_csv_pair(table: Mapping, base_dir, file, key) -> Connectome:
    allowed = {"weights", "tract_lengths", "labels"}
    for k in table:
        if k not in allowed:
            raise CosimError("unknown key (expected weights, tract_lengths, labels)",
                             file=file, key=f"{key}.{k}" if key else k)
    def path_of(name: str) -> Path:
        k = f"{key}.{name}" if key else name
        if not isinstance(table[name], str):
            raise CosimError(f"must be a file name (string), got {table[name]!r}", file=file, key=k)
        p = _resolve(table[name], base_dir)
        if not p.is_file():
            raise CosimError(f"file {table[name]!r} not found (looked at {p})", file=file, key=k)
        return p

    arrays, paths = {}, {}
    for need in ("weights", "tract_lengths"):
        if need not in table:
            raise CosimError("missing required key", file=file, key=f"{key}.{need}" if key else need)
        p = paths[need] = path_of(need)
        arrays[need] = _matrix(_text(p.name, p.read_bytes(), str(p)), None, str(p))
    labels = None
    if "labels" in table:
        p = paths["labels"] = path_of("labels")
        labels = [ln.strip() for ln in _text(p.name, p.read_bytes(), str(p)).splitlines()
                  if ln.strip()]
    return make_connectome(arrays["weights"], arrays["tract_lengths"], labels,
                           source=str(paths["weights"]), file=str(paths["weights"]), key=None,
                           files={k: str(v) for k, v in paths.items()})
