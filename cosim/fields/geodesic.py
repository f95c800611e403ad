"""Local connectivity of a cortical surface built from a kernel of geodesic distance — The
Virtual Brain's ``LocalConnectivity(cutoff=…, equation=…)``.

1. ``d_ij``: the exact polyhedral geodesic distance on the triangle mesh (``tvb-gdist``,
   the Mitchell–Mount–Papadimitriou algorithm) between vertices ``i ≠ j`` closer than the
   cutoff (a sparse matrix; ``i = j`` and pairs beyond the cutoff are absent);
2. ``L_ij = k(d_ij)`` with the kernel ``k`` (:data:`KERNELS`, TVB's equations):

   * ``gaussian``: ``amp exp(−(d − midpoint)² / 2σ²) + offset``;
   * ``double_gaussian``: ``amp_1 exp(−(d − midpoint_1)² / 2σ_1²) −
     amp_2 exp(−(d − midpoint_2)² / 2σ_2²)`` (a Mexican hat);

3. homogenised (TVB's rule, so that a vertex in a dense patch of the mesh gets the same total
   input as one in a sparse patch): the positive and the negative entries of each row are
   scaled separately so that each row's positive (negative) sum equals the mean over the
   rows of the positive (negative) sums; a row without positive (negative) entries keeps
   none.

tvb-data's shipped ``local_connectivity_16384`` is not such a matrix: it is the mean over
each vertex's mesh neighbours (``L_ij = 1/deg(i)`` on the triangle edges; checked in
tests/test_geodesic_local.py), a discrete diffusion-like coupling with no distance kernel.

Built once per machine: :func:`cached_local_connectivity` keeps each matrix in
``$COSIM_CACHE_DIR/geodesic/<key>.npz`` (default ``~/.cache/cosim``), the key a SHA-256 of
the surface's vertices and triangles, the cutoff, the kernel and its parameters, the
tvb-gdist version and this module's source; written atomically (a temporary file renamed
into place) under a file lock, so ranks building the same matrix at once wait for the first
one and read its file instead of computing it again.

Surfaces: ``tvb:cortex_16384`` (tvb-data's ``surfaceData/cortex_16384.zip``), a TVB surface
zip (``vertices.txt``, ``triangles.txt``, mm), or a ``.npz`` with arrays ``vertices``
``(n, 3)`` and ``triangles`` ``(m, 3)`` (0-based vertex indices).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CosimError
from .surface import tvb_data_path

#: kernel → its parameters and their defaults (TVB's Gaussian and DoubleGaussian)
KERNELS = {
    "gaussian": {"amp": 1.0, "sigma": 1.0, "midpoint": 0.0, "offset": 0.0},
    "double_gaussian": {"amp_1": 0.5, "sigma_1": 20.0, "midpoint_1": 0.0,
                        "amp_2": 1.0, "sigma_2": 10.0, "midpoint_2": 0.0},
}

TVB_SURFACES = {"cortex_16384": ("surfaceData", "cortex_16384.zip")}


def kernel_values(kind: str, parameters: dict, d: np.ndarray) -> np.ndarray:
    """``k(d)`` for distances ``d`` (mm)."""
    if kind not in KERNELS:
        raise CosimError(f"unknown kernel {kind!r}; one of {', '.join(KERNELS)}", key="type")
    p = dict(KERNELS[kind])
    for k, v in parameters.items():
        if k not in p:
            raise CosimError(f"{k!r} is not a parameter of kernel {kind!r} (its parameters: "
                             f"{', '.join(KERNELS[kind])})", key=k)
        p[k] = float(v)
    for k in ("sigma", "sigma_1", "sigma_2"):
        if k in p and not p[k] > 0:
            raise CosimError(f"{k} must be > 0, got {p[k]:g}", key=k)
    d = np.asarray(d, dtype=np.float64)
    if kind == "gaussian":
        return p["amp"] * np.exp(-((d - p["midpoint"]) ** 2 / (2.0 * p["sigma"] ** 2))) + p["offset"]
    return (p["amp_1"] * np.exp(-((d - p["midpoint_1"]) ** 2 / (2.0 * p["sigma_1"] ** 2)))
            - p["amp_2"] * np.exp(-((d - p["midpoint_2"]) ** 2 / (2.0 * p["sigma_2"] ** 2))))


def load_surface(spec: str, base_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (n, 3) float64 mm, triangles (m, 3) int32)`` of a surface (module doc)."""
    if spec.startswith("tvb:"):
        name = spec[4:].removesuffix(".zip")
        if name not in TVB_SURFACES:
            raise CosimError(f"unknown tvb-data surface {spec!r}; available: "
                             + ", ".join(f"tvb:{n}" for n in TVB_SURFACES))
        p = tvb_data_path(*TVB_SURFACES[name])
    else:
        p = Path(spec).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
        if not p.is_file():
            raise CosimError(f"no such file: {p}")
    try:
        if p.suffix == ".zip":
            with zipfile.ZipFile(p) as z:
                names = {Path(n).name: n for n in z.namelist()}
                if "vertices.txt" not in names or "triangles.txt" not in names:
                    raise CosimError(f"{p.name} holds no vertices.txt and triangles.txt")
                v = np.loadtxt(z.open(names["vertices.txt"]), dtype=np.float64)
                t = np.loadtxt(z.open(names["triangles.txt"]))
        elif p.suffix == ".npz":
            with np.load(p) as f:
                if "vertices" not in f or "triangles" not in f:
                    raise CosimError(f"{p.name} must hold arrays 'vertices' and 'triangles'")
                v, t = np.asarray(f["vertices"], dtype=np.float64), np.asarray(f["triangles"])
        else:
            raise CosimError(f"{p.name}: expected a TVB surface .zip or a .npz")
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CosimError(f"{p.name} is not a readable surface ({exc})") from None
    if v.ndim != 2 or v.shape[1] != 3 or t.ndim != 2 or t.shape[1] != 3 or not t.size:
        raise CosimError(f"{p.name}: vertices must be (n, 3) and triangles (m, 3), got "
                         f"{v.shape} and {t.shape}")
    if not np.all(t == np.rint(t)) or t.min() < 0 or t.max() >= v.shape[0]:
        raise CosimError(f"{p.name}: triangles must hold vertex indices 0 … {v.shape[0] - 1}")
    if not np.isfinite(v).all():
        raise CosimError(f"{p.name}: vertices contain NaN/Inf")
    return np.ascontiguousarray(v), np.ascontiguousarray(t, dtype=np.int32)


def geodesic_distances(vertices: np.ndarray, triangles: np.ndarray, cutoff_mm: float):
    """Sparse CSR ``d_ij`` (mm) of the vertex pairs closer than ``cutoff_mm`` (``i ≠ j``)."""
    if not cutoff_mm > 0:
        raise CosimError(f"the cutoff must be > 0 mm, got {cutoff_mm:g}")
    try:
        import gdist
    except ImportError:
        raise CosimError("geodesic local connectivity needs tvb-gdist "
                         "(pip install tvb-gdist, or cosim's [surface] extra)") from None
    d = gdist.local_gdist_matrix(np.ascontiguousarray(vertices, dtype=np.float64),
                                 np.ascontiguousarray(triangles, dtype=np.int32),
                                 max_distance=float(cutoff_mm))
    d = d.tocsr()
    d.sort_indices()
    return d


def homogenise(m):
    """TVB's homogenisation (module doc, step 3) of a sparse CSR matrix."""
    import scipy.sparse as sp
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    n = m.shape[0]
    rows = np.repeat(np.arange(n), np.diff(m.indptr))
    pos = np.where(m.data > 0.0, m.data, 0.0)
    neg = np.where(m.data < 0.0, m.data, 0.0)
    out = np.zeros_like(m.data)
    for part in (pos, neg):
        sums = np.bincount(rows, part, minlength=n)
        mean = sums.mean()
        factor = np.zeros(n)
        nz = sums != 0
        factor[nz] = mean / sums[nz]
        out += factor[rows] * part
    res = sp.csr_matrix((out, m.indices.copy(), m.indptr.copy()), shape=m.shape)
    res.sort_indices()
    return res


def local_connectivity(vertices, triangles, cutoff_mm: float, kernel: str = "gaussian",
                       parameters: dict | None = None):
    """The local connectivity (CSR, vertex × vertex) of the module docstring."""
    d = geodesic_distances(vertices, triangles, cutoff_mm)
    d.data = kernel_values(kernel, parameters or {}, d.data)
    return homogenise(d)


def cache_key(vertices, triangles, cutoff_mm: float, kernel: str, parameters: dict) -> str:
    """The cache key of :func:`cached_local_connectivity` (module doc)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        gd = version("tvb-gdist")
    except PackageNotFoundError:
        gd = "?"
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(vertices, dtype=np.float64),
              np.ascontiguousarray(triangles, dtype=np.int64)):
        h.update(repr(a.shape).encode() + a.tobytes())
    params = sorted((k, float(v)) for k, v in (parameters or {}).items())
    h.update(repr((float(cutoff_mm), kernel, params, gd)).encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:32]


def _read(path: Path):
    import scipy.sparse as sp
    try:
        m = sp.load_npz(path).tocsr()
    except (OSError, ValueError, KeyError):
        return None                  # missing or unreadable: rebuilt and rewritten
    m.sort_indices()
    return m


def cached_local_connectivity(vertices, triangles, cutoff_mm: float, kernel: str = "gaussian",
                              parameters: dict | None = None):
    """:func:`local_connectivity`, read from the on-disk cache when it was built before
    (module doc); ``(matrix, built)`` with ``built`` False when read from the cache."""
    import fcntl
    import scipy.sparse as sp
    from ..cache import cache_root
    root = cache_root("geodesic")
    key = cache_key(vertices, triangles, cutoff_mm, kernel, parameters or {})
    path = root / f"{key}.npz"
    m = _read(path) if path.is_file() else None
    if m is not None:
        return m, False
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f"{key}.lock", "a")
    except OSError as exc:
        raise CosimError(f"cannot write the geodesic cache {root} ({exc.strerror}); set "
                         f"COSIM_CACHE_DIR to a writable folder") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # another rank may be building it
        m = _read(path) if path.is_file() else None
        if m is not None:
            return m, False
        m = local_connectivity(vertices, triangles, cutoff_mm, kernel, parameters)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{key}.", suffix=".npz")
        os.close(fd)
        try:
            sp.save_npz(tmp, m, compressed=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return m, True
