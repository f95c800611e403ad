"""Local connectivity from a kernel of geodesic distance (cosim.fields.geodesic).

Independent sources: on a flat triangulated patch the geodesic distance is the Euclidean
one (exact); on a curved mesh, The Virtual Brain's ``LocalConnectivity(cutoff=…,
equation=Gaussian / DoubleGaussian)`` ``.compute_sparse_matrix()`` on the same surface.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

pytest.importorskip("gdist", reason="tvb-gdist is not installed")

from cosim.errors import CosimError  # noqa: E402
from cosim.fields import geodesic as gd  # noqa: E402


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Every test its own geodesic cache folder (not the user's ~/.cache/cosim)."""
    monkeypatch.setenv("COSIM_CACHE_DIR", str(tmp_path / "cache"))


def _grid(n=14, h=1.0, bump=0.0):
    """An n × n patch of spacing h mm, two triangles per cell, height bump · Gaussian."""
    x, y = np.meshgrid(np.arange(n) * h, np.arange(n) * h, indexing="ij")
    c = (n - 1) * h / 2
    z = bump * np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * (0.25 * n * h) ** 2))
    v = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, cc, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
    t = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, cc], 1)]).astype(np.int32)
    return v, t


def test_flat_patch_distances_are_euclidean():
    v, t = _grid(n=12, h=0.7)
    d = gd.geodesic_distances(v, t, 2.5)
    i, j = d.nonzero()
    eu = np.linalg.norm(v[i] - v[j], axis=1)
    np.testing.assert_allclose(d.data, eu, rtol=1e-12)
    # every pair within the cutoff is present (and none beyond it, nor i = j)
    full = np.linalg.norm(v[:, None] - v[None], axis=2)
    want = (full < 2.5) & (full > 0)
    got = np.zeros_like(want)
    got[i, j] = True
    assert (got == want).all() and d.nnz > 10 * len(v)


@pytest.mark.parametrize("kernel,params", [
    ("gaussian", {"amp": 1.0, "sigma": 1.2}),
    ("double_gaussian", {"amp_1": 1.0, "sigma_1": 1.0, "amp_2": 0.4, "sigma_2": 2.0}),
])
def test_matches_tvbs_local_connectivity(kernel, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tvb.datatypes import equations, local_connectivity, surfaces
    logging.getLogger("tvb").setLevel(logging.ERROR)
    v, t = _grid(n=16, h=1.0, bump=3.0)
    ours = gd.local_connectivity(v, t, 3.5, kernel, params)
    eq = (equations.Gaussian if kernel == "gaussian" else equations.DoubleGaussian)()
    eq.parameters.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        surf = surfaces.CorticalSurface(vertices=v, triangles=t)
        surf.configure()
        lc = local_connectivity.LocalConnectivity(surface=surf, cutoff=3.5, equation=eq)
        lc.compute_sparse_matrix()
    theirs = lc.matrix.tocsr()
    theirs.sort_indices()
    assert ours.shape == theirs.shape == (256, 256)
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-12, atol=1e-15)
    # the homogenisation: every row's positive part sums to the same value
    pos = ours.multiply(ours > 0).sum(axis=1).A.ravel()
    np.testing.assert_allclose(pos, pos.mean(), rtol=1e-12)
    if kernel == "double_gaussian":
        assert (ours.data < 0).any() and (ours.data > 0).any()


def test_errors():
    v, t = _grid(n=4)
    with pytest.raises(CosimError, match="unknown kernel 'gauss'"):
        gd.local_connectivity(v, t, 2.0, "gauss")
    with pytest.raises(CosimError, match="'width' is not a parameter of kernel 'gaussian'"):
        gd.local_connectivity(v, t, 2.0, "gaussian", {"width": 1.0})
    with pytest.raises(CosimError, match="sigma must be > 0"):
        gd.local_connectivity(v, t, 2.0, "gaussian", {"sigma": 0.0})
    with pytest.raises(CosimError, match="cutoff must be > 0"):
        gd.local_connectivity(v, t, 0.0)


def test_load_surface(tmp_path):
    v, t = gd.load_surface("tvb:cortex_16384")
    assert v.shape == (16384, 3) and t.shape == (32760, 3) and t.dtype == np.int32
    np.savez(tmp_path / "s.npz", vertices=v[:10], triangles=np.array([[0, 1, 2], [2, 3, 11]]))
    with pytest.raises(CosimError, match="triangles must hold vertex indices 0 … 9"):
        gd.load_surface(str(tmp_path / "s.npz"))
    np.savez(tmp_path / "q.npz", vertices=v[:10])
    with pytest.raises(CosimError, match="must hold arrays 'vertices' and 'triangles'"):
        gd.load_surface("q.npz", tmp_path)
    with pytest.raises(CosimError, match="unknown tvb-data surface"):
        gd.load_surface("tvb:cortex_80k")


# -- the surface engine with local_connectivity = "geodesic" ---------------------------------

SCEN = """
[simulation]
duration = 3.0
sync_interval = 1.0
seed = 4

[connectome]
source = "tvb:connectivity_76"
speed = 3.0

[engines.cortex]
type = "neural_field"
geometry = "surface"
model = "generic_2d_oscillator"
region_mapping = "rm.txt"
local_connectivity = "geodesic"
local_coupling_strength = 0.5
dt = 0.1

[engines.cortex.local_kernel]
surface = "mesh.npz"
cutoff = 3.5
type = "double_gaussian"
amp_1 = 1.0
sigma_1 = 1.0
amp_2 = 0.4
sigma_2 = 2.0

[engines.cortex.coupling]
type = "linear"
G = 0.05

[engines.cortex.initial]
random = true

[record]
period = 0.5
"""


def _mesh_files(tmp_path):
    v, t = _grid(n=16, h=1.0, bump=3.0)
    np.savez(tmp_path / "mesh.npz", vertices=v, triangles=t)
    np.savetxt(tmp_path / "rm.txt", np.arange(len(v)) % 76, fmt="%d")
    return v, t


def test_engine_builds_the_geodesic_matrix(tmp_path):
    """A scenario with ``local_connectivity = "geodesic"`` gives the bits of the same
    scenario reading the matrix (cosim.fields.geodesic, checked against TVB above) from a
    .npz file."""
    import h5py
    import scipy.sparse as sp
    from cosim.cli import main
    v, t = _mesh_files(tmp_path)
    m = gd.local_connectivity(v, t, 3.5, "double_gaussian",
                              {"amp_1": 1.0, "sigma_1": 1.0, "amp_2": 0.4, "sigma_2": 2.0})
    sp.save_npz(tmp_path / "lc.npz", m)
    a = tmp_path / "geo.toml"
    a.write_text(SCEN)
    start, end = SCEN.index("[engines.cortex.local_kernel]"), SCEN.index("[engines.cortex.coupling]")
    b = tmp_path / "file.toml"
    b.write_text((SCEN[:start] + SCEN[end:]).replace('"geodesic"', '"lc.npz"'))
    for p in (a, b):
        assert main(["run", str(p), "-o", str(p.with_suffix(".h5")), "-q", "--no-monitor"]) == 0
    with h5py.File(a.with_suffix(".h5")) as f, h5py.File(b.with_suffix(".h5")) as g:
        x, y = f["engines/cortex/regions"][()], g["engines/cortex/regions"][()]
    assert x.shape == (6, 2, 76)
    np.testing.assert_array_equal(x, y)


DG = {"amp_1": 1.0, "sigma_1": 1.0, "amp_2": 0.4, "sigma_2": 2.0}


def _same(a, b):
    for k in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert a.shape == b.shape


def test_second_build_reads_the_cache_bitwise(tmp_path, monkeypatch):
    """The first build computes and writes the cache; the second reads it (no gdist call)
    and equals the first bit for bit; another cutoff or kernel parameter is another key; a
    damaged cache file is rebuilt."""
    v, t = _grid(n=12, h=1.0, bump=2.0)
    first, built = gd.cached_local_connectivity(v, t, 3.0, "double_gaussian", DG)
    assert built
    files = sorted((tmp_path / "cache" / "geodesic").glob("*.npz"))
    assert len(files) == 1 and not list(files[0].parent.glob(".*"))   # no temporary left
    calls = []
    real = gd.local_connectivity
    monkeypatch.setattr(gd, "local_connectivity", lambda *a, **k: calls.append(a) or real(*a, **k))
    second, built2 = gd.cached_local_connectivity(v, t, 3.0, "double_gaussian", dict(DG))
    assert not built2 and not calls
    _same(first, second)
    _same(first, real(v, t, 3.0, "double_gaussian", DG))
    assert gd.cached_local_connectivity(v, t, 2.5, "double_gaussian", DG)[1]
    assert gd.cached_local_connectivity(v, t, 3.0, "double_gaussian", dict(DG, amp_2=0.5))[1]
    assert len(calls) == 2
    files[0].write_bytes(b"not a npz file")
    again, built3 = gd.cached_local_connectivity(v, t, 3.0, "double_gaussian", DG)
    assert built3
    _same(first, again)


def test_concurrent_builds_compute_once(monkeypatch):
    """Builders of the same matrix at once (the ranks of a split surface): one computes, the
    others wait on the cache's lock and read its file."""
    import threading
    import time
    v, t = _grid(n=10, h=1.0)
    real = gd.local_connectivity
    calls = []

    def slow(*a, **k):
        calls.append(a)
        time.sleep(0.3)
        return real(*a, **k)
    monkeypatch.setattr(gd, "local_connectivity", slow)
    out = [None] * 3
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(
        i, gd.cached_local_connectivity(v, t, 2.5, "gaussian", {"sigma": 1.0}))) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(calls) == 1 and sorted(b for _, b in out) == [False, False, True]
    for m, _ in out[1:]:
        _same(out[0][0], m)


@pytest.mark.parametrize("old,new,key,reason", [
    ("cutoff = 3.5\n", "", "engines.cortex.local_kernel.cutoff", "missing"),
    ("cutoff = 3.5", "cutoff = -1.0", "engines.cortex.local_kernel.cutoff", "> 0"),
    ("amp_2 = 0.4", "amp_3 = 0.4", "engines.cortex.local_kernel.amp_3",
     "is not a parameter of kernel 'double_gaussian'"),
    ("sigma_2 = 2.0", "sigma_2 = 0.0", "engines.cortex.local_kernel.sigma_2", "must be > 0"),
    ('type = "double_gaussian"', 'type = "mexican"', "engines.cortex.local_kernel.type",
     "must be one of"),
    ('surface = "mesh.npz"', 'surface = "none.npz"', "engines.cortex.local_kernel.surface",
     "no such file"),
    ('local_connectivity = "geodesic"', 'local_connectivity = "tvb:local_connectivity_16384"',
     "engines.cortex.local_kernel", 'only with local_connectivity = "geodesic"'),
])
def test_bad_geodesic_keys_are_one_line_errors(tmp_path, capsys, old, new, key, reason):
    from cosim.cli import main
    _mesh_files(tmp_path)
    assert old in SCEN
    p = tmp_path / "geo.toml"
    p.write_text(SCEN.replace(old, new, 1))
    assert main(["validate", str(p)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith(f"geo.toml: {key}: ") and reason in line, line


def test_surface_must_match_the_region_mapping(tmp_path, capsys):
    from cosim.cli import main
    _mesh_files(tmp_path)
    np.savetxt(tmp_path / "rm.txt", np.arange(300) % 76, fmt="%d")
    p = tmp_path / "geo.toml"
    p.write_text(SCEN)
    assert main(["validate", str(p)]) == 2
    line = capsys.readouterr().err.strip()
    assert line == ("geo.toml: engines.cortex.local_kernel.surface: has 256 vertices; the "
                    "region mapping has 300"), line


def test_the_shipped_matrix_is_the_neighbour_mean():
    """What tvb-data's local_connectivity_16384 is (so that a geodesic one is compared with
    the right thing): no distance kernel — ``L_ij = 1 / deg(i)`` for the mesh neighbours
    ``j`` of vertex ``i`` (edges of cortex_16384's triangles), each row the neighbour mean."""
    import scipy.sparse as sp
    from cosim.fields.surface import load_local_connectivity
    m = load_local_connectivity("tvb:local_connectivity_16384")
    v, t = gd.load_surface("tvb:cortex_16384")
    i = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0]])
    j = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2]])
    adj = sp.csr_matrix((np.ones(i.size), (i, j)), shape=m.shape)
    adj.data[:] = 1.0                                   # each edge once
    deg = np.asarray(adj.sum(axis=1)).ravel()
    ref = sp.diags(1.0 / deg) @ adj
    assert m.nnz == ref.nnz == 98280
    assert abs(m - ref).max() <= 1e-12
