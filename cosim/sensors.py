"""Sensors and region-level lead fields for the MEG and SEEG monitors (tvb-data files).

A *lead field* (gain matrix) ``G (sensor, source)`` maps source activity to sensor signals:
``signal(t) = G · source(t)``.  tvb-data ships, for its 16 384-vertex cortical surface
(``surfaceData/cortex_16384.zip``: ``vertices.txt``, ``vertex_normals.txt``, mm):

* ``sensors/meg_brainstorm_276.txt`` with ``projectionMatrix/projection_meg_276_surface_16k.npy``
  ``(276, 16384)``: the CTF MEG system of Brainstorm's default anatomy;
* ``sensors/seeg_588.txt`` (588 SEEG contacts, positions in mm) and no projection matrix;
* ``regionMapping/regionMapping_16k_76.txt`` / ``…_192.txt``: the region (0 … n−1 of
  ``connectivity_76`` / ``connectivity_192``) of each vertex.

Sensor files are TVB's format: one sensor a line, ``label x y z [ox oy oz]`` (mm), plain or
``.bz2``.

**Region-level lead field** (what a region simulation needs; TVB's rule, from
``tvb.simulator.monitors.Projection.config_for_sim``): the column of region ``r`` is the
**sum** of the vertex columns of the vertices mapped to ``r``::

    G_region[:, r] = Σ_{v : rmap[v] = r} G_vertex[:, v]

Why the sum: each vertex column is the field of a unit dipole at the vertex, along its
normal; a region simulation gives one activity per region, taken to drive every vertex of
the region alike, so the region's field is the superposition of its vertices' fields (a
region's total dipole moment grows with its area, i.e. its number of vertices).  An average
would make a large region as strong as a small one.  Entries that are not finite after the
sum are set to 0, as TVB does; rows that are not finite for any vertex are channels without
a lead field (the MEG file's trigger, response, ECG and reference channels: 28 of 276) and
are **dropped** (TVB keeps them as rows of zeros).

**SEEG** (tvb-data has no SEEG projection): the vertex lead field is TVB's ``iEEG.analytic``,
a point current dipole in an infinite homogeneous conductor (Sarvas 1987, Eq. 12)::

    G_vertex[k, v] = n_v · (s_k − r_v) / (4π σ |s_k − r_v|³)

(``s_k`` contact position, ``r_v`` vertex position, ``n_v`` its unit normal, mm; σ = 1 by
default as in TVB, so the unit is arbitrary), then reduced to regions by the sum above.

Every engine region must have at least one vertex in the region mapping (subcortical
regions without vertices would need a point-dipole at the region centre with an
orientation, which cosim's connectome does not carry).
"""

from __future__ import annotations

import bz2
import importlib.util
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import CosimError

#: tvb-data sub-folders searched for a ``tvb:<file name>``.
TVB_FOLDERS = ("sensors", "projectionMatrix", "regionMapping", "surfaceData")

#: The tvb-data region mappings and the connectivity each belongs to.
TVB_REGION_MAPPINGS = {"connectivity_76": "regionMapping_16k_76.txt",
                       "connectivity_192": "regionMapping_16k_192.txt"}


def _tvb_data_root() -> Path:
    spec = importlib.util.find_spec("tvb_data")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the tvb-data package is not installed (pip install tvb-data)")
    return Path(list(spec.submodule_search_locations)[0])


def tvb_files() -> list[str]:
    """The file names a scenario may give as ``tvb:<name>``."""
    try:
        root = _tvb_data_root()
    except FileNotFoundError:
        return []
    return sorted(p.name for f in TVB_FOLDERS for p in (root / f).glob("*")
                  if p.is_file() and not p.name.startswith("_"))


def resolve(name: str, base_dir: Path, file: str | None, key: str | None) -> Path:
    """``tvb:<file>`` inside tvb-data, else a path relative to ``base_dir``; must exist."""
    if name.startswith("tvb:"):
        base = name[4:]
        try:
            root = _tvb_data_root()
        except FileNotFoundError as exc:
            raise CosimError(str(exc), file=file, key=key) from None
        for folder in TVB_FOLDERS:
            p = root / folder / base
            if p.is_file():
                return p
        raise CosimError(f"unknown tvb-data file {base!r}; available: "
                         + ", ".join(f"tvb:{n}" for n in tvb_files()), file=file, key=key)
    p = Path(name).expanduser()
    if not p.is_absolute():
        p = base_dir / p
    if not p.is_file():
        raise CosimError(f"no such file: {p}", file=file, key=key)
    return p


def _text(path: Path) -> str:
    raw = bz2.decompress(path.read_bytes()) if path.suffix == ".bz2" else path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(frozen=True)
class Sensors:
    """Sensor labels, positions ``(sensor, 3)`` mm and orientations (or None)."""

    labels: tuple[str, ...]
    locations: np.ndarray
    orientations: np.ndarray | None = None


def read_sensors(path: Path, file: str | None = None, key: str | None = None) -> Sensors:
    """A TVB sensors file (``label x y z [ox oy oz]`` per line)."""
    where = dict(file=file or str(path), key=key)
    try:
        text = _text(path)
    except (OSError, ValueError, EOFError) as exc:
        raise CosimError(f"{path.name}: cannot read ({exc})", **where) from None
    labels, rows = [], []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            raise CosimError(f"{path.name}: line {n}: expected 'label x y z [ox oy oz]', got "
                             f"{line.strip()[:60]!r}", **where) from None
        if len(values) not in (3, 6) or (rows and len(values) != len(rows[0])):
            raise CosimError(f"{path.name}: line {n}: expected 'label x y z [ox oy oz]', got "
                             f"{len(values)} numbers", **where)
        labels.append(parts[0])
        rows.append(values)
    if not rows:
        raise CosimError(f"{path.name}: no sensors", **where)
    a = np.array(rows, dtype=np.float64)
    if not np.isfinite(a).all():
        raise CosimError(f"{path.name}: positions contain NaN or infinite values", **where)
    return Sensors(tuple(labels), a[:, :3].copy(), a[:, 3:].copy() if a.shape[1] == 6 else None)


def read_projection(path: Path, file: str | None = None, key: str | None = None) -> np.ndarray:
    """A ``(sensor, vertex)`` projection matrix: .npy, .npz (its one array), .mat (its one
    2-D array, e.g. tvb-data's ``ProjectionMatrix``) or text.  NaN are kept (see the module
    docstring for how they are handled)."""
    where = dict(file=file or str(path), key=key)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            m = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if len(z.files) != 1:
                    raise CosimError(f"{path.name}: .npz must hold one array, has {z.files}",
                                     **where)
                m = z[z.files[0]]
        elif suffix == ".mat":
            from scipy.io import loadmat
            arrays = [v for k, v in loadmat(path).items()
                      if not k.startswith("__") and np.ndim(v) == 2]
            if len(arrays) != 1:
                raise CosimError(f"{path.name}: .mat must hold one 2-D array", **where)
            m = arrays[0]
        else:
            m = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
    except CosimError:
        raise
    except (OSError, ValueError) as exc:
        raise CosimError(f"{path.name}: cannot read as a matrix ({exc})", **where) from None
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise CosimError(f"{path.name}: expected a 2-D (sensor, vertex) matrix, got shape "
                         f"{m.shape}", **where)
    return m


def read_region_mapping(path: Path, file: str | None = None, key: str | None = None) -> np.ndarray:
    """Region index (int64, ≥ 0) of each vertex, one integer a line (TVB's format)."""
    where = dict(file=file or str(path), key=key)
    try:
        values = np.loadtxt(path, ndmin=1)
    except (OSError, ValueError) as exc:
        raise CosimError(f"{path.name}: cannot read a region mapping ({exc})", **where) from None
    if values.ndim != 1 or not values.size or not np.all(values == np.rint(values)) \
            or values.min() < 0:
        raise CosimError(f"{path.name}: a region mapping is one non-negative integer per "
                         "vertex", **where)
    return values.astype(np.int64)


def read_surface(path: Path, file: str | None = None,
                 key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and unit vertex normals ``(vertex, 3)`` of a TVB surface zip
    (``vertices.txt``, ``vertex_normals.txt``)."""
    where = dict(file=file or str(path), key=key)
    try:
        with zipfile.ZipFile(path) as zf:
            names = {Path(n).name: n for n in zf.namelist()}
            out = []
            for member in ("vertices.txt", "vertex_normals.txt"):
                if member not in names:
                    raise CosimError(f"{path.name}: a surface zip needs {member}", **where)
                out.append(np.loadtxt(zf.open(names[member]), ndmin=2))
    except CosimError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CosimError(f"{path.name}: cannot read a surface ({exc})", **where) from None
    verts, normals = out
    if verts.shape[1:] != (3,) or normals.shape != verts.shape:
        raise CosimError(f"{path.name}: vertices {verts.shape} and normals {normals.shape} "
                         "must both be (vertex, 3)", **where)
    return verts, normals


def dipole_gain(sensor_mm: np.ndarray, source_mm: np.ndarray, normals: np.ndarray,
                sigma: float = 1.0, chunk: int = 64) -> np.ndarray:
    """Point-dipole lead field in a homogeneous conductor (TVB's ``iEEG.analytic``,
    Sarvas 1987 Eq. 12): ``G[k, v] = n_v · (s_k − r_v) / (4π σ |s_k − r_v|³)``."""
    out = np.empty((sensor_mm.shape[0], source_mm.shape[0]))
    for a in range(0, sensor_mm.shape[0], chunk):
        d = sensor_mm[a:a + chunk, None, :] - source_mm[None, :, :]     # (k, v, 3)
        dist = np.sqrt(np.sum(d ** 2, axis=2))[..., None]
        out[a:a + chunk] = np.sum(normals[None] * (d / dist ** 3), axis=2) / (4.0 * np.pi * sigma)
    return out


def region_gain(vertex_gain: np.ndarray, rmap: np.ndarray, n_regions: int) -> np.ndarray:
    """``(sensor, region)``: the sum of the vertex columns of each region (module
    docstring); non-finite sums become 0 (TVB)."""
    g = np.zeros((vertex_gain.shape[0], n_regions))
    np.add.at(g.T, rmap, vertex_gain.T)
    g[~np.isfinite(g)] = 0.0
    return g


@dataclass(frozen=True)
class LeadField:
    """A region-level lead field: ``gain (sensor, region)`` over ``regions`` (labels) and
    the sensor names of its rows; ``source`` says how it was made (stored in the output)."""

    gain: np.ndarray
    sensors: tuple[str, ...]
    regions: tuple[str, ...]
    source: str


@lru_cache(maxsize=8)
def _tvb_labels(name: str) -> tuple[str, ...]:
    from .connectome import load_connectome
    return tuple(load_connectome(f"tvb:{name}").region_labels)


def default_region_mapping(region_labels: Sequence[str]) -> str | None:
    """``tvb:regionMapping_16k_<n>.txt`` when the connectome's labels are those of the
    tvb-data connectivity it belongs to, else None."""
    for conn, mapping in TVB_REGION_MAPPINGS.items():
        if len(region_labels) == int(conn.split("_")[1]):
            try:
                if tuple(region_labels) == _tvb_labels(conn):
                    return f"tvb:{mapping}"
            except (CosimError, OSError):
                return None
    return None


def region_leadfield(vertex_gain: np.ndarray, sensors: Sensors, rmap: np.ndarray,
                     connectome_labels: Sequence[str], engine_regions: Sequence[str], *,
                     source: str, fail) -> LeadField:
    """Reduce a vertex lead field to the engine's regions (module docstring).

    ``fail(key, reason)`` builds the error for a mismatch (``key``: the scenario key)."""
    n_conn = len(connectome_labels)
    if vertex_gain.shape[0] != len(sensors.labels):
        raise fail("projection", f"has {vertex_gain.shape[0]} rows for "
                                 f"{len(sensors.labels)} sensors")
    if vertex_gain.shape[1] != rmap.size:
        raise fail("region_mapping", f"maps {rmap.size} vertices; the lead field has "
                                     f"{vertex_gain.shape[1]} vertex columns")
    if rmap.max() >= n_conn:
        raise fail("region_mapping", f"names region index {int(rmap.max())}; the connectome "
                                     f"has {n_conn} regions")
    labels = list(connectome_labels)
    idx = [labels.index(r) for r in engine_regions]
    counts = np.bincount(rmap, minlength=n_conn)
    empty = [engine_regions[j] for j, i in enumerate(idx) if counts[i] == 0]
    if empty:
        raise fail("region_mapping", f"region {empty[0]!r} has no vertex in the region "
                                     f"mapping ({len(empty)} such regions)")
    rows = np.isfinite(vertex_gain).any(axis=1)
    g = region_gain(vertex_gain[rows], rmap, n_conn)[:, idx]
    names = tuple(s for s, keep in zip(sensors.labels, rows) if keep)
    return LeadField(g, names, tuple(engine_regions), source)
