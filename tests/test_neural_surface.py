"""The cortical-surface engine: split over ranks by vertex blocks gives the one-rank bits
(``mpiexec -n 3``: bus + 2 parts), a checkpoint resumes bit for bit, the per-step path of a
split part equals the one-kernel window path, and bad keys are one-line errors."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numba
import numpy as np
import pytest

from _util import REPO
from cosim.cli import main
from cosim.connectome import load_connectome
from cosim.engines.neural_surface import NeuralSurfaceEngine

SCENARIO = REPO / "scenarios" / "cortical_surface.toml"


def _short(tmp_path, duration=4.0, extra=""):
    text = SCENARIO.read_text().replace("duration = 100.0", f"duration = {duration}")
    text = text.replace('output = "results/cortical_surface.h5"\n', "") + extra
    p = tmp_path / "surface.toml"
    p.write_text(text)
    return p


def _engine(**kw):
    args = dict(coupling="linear", coupling_parameters={"G": 0.05}, local_coupling_strength=0.02,
                random_initial=True, seed=5, record_period_ms=0.5)
    args.update(kw)
    return NeuralSurfaceEngine("cortex", "generic_2d_oscillator",
                               load_connectome("tvb:connectivity_76"), **args)


@pytest.mark.parametrize("integrator", ["heun", "euler"])
def test_split_parts_equal_the_window_kernel(integrator):
    """Two parts, each in a thread, joined by an in-process allgather (what the runtime's
    Allgatherv does between ranks), give the bits of the one-part window kernel (whose
    stages are fused passes)."""
    import threading
    one = _engine(integrator=integrator)
    one.build()
    rec_one = [one.advance(t, t + 1.0).records["regions"] for t in (0.0, 1.0, 2.0)]
    n = 2
    barrier = threading.Barrier(n)
    slots = [None] * n

    def exchange_of(p):
        def exchange(ids, values):
            slots[p] = (ids.copy(), values.copy())
            barrier.wait()
            out = (np.concatenate([s[0] for s in slots]), np.concatenate([s[1] for s in slots]))
            barrier.wait()
            return out
        return exchange

    desc = _engine(integrator=integrator)
    parts = [desc.partition(p, n, exchange_of(p)) for p in range(n)]
    recs = [[] for _ in range(n)]

    def run(p):
        parts[p].build()
        for t in (0.0, 1.0, 2.0):
            recs[p].append(parts[p].advance(t, t + 1.0).records["regions"])
    threads = [threading.Thread(target=run, args=(p,)) for p in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in range(n):
        np.testing.assert_array_equal(parts[p].vertex_state(), one.vertex_state())
        merged = [desc.merge_records([{"regions": recs[q][k]} for q in range(n)])["regions"]
                  for k in range(3)]
        for a, b in zip(merged, rec_one):
            np.testing.assert_array_equal(a, b)
    assert parts[0].v1 == parts[1].v0 == 8192 and desc.max_parts() == 16


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")
@pytest.mark.parametrize("integrator", ["heun", "euler"])
def test_threads_give_the_one_thread_bits(integrator):
    """threads = 2 (the parallel window kernel: a prange over the vertices per stage, over
    the regions for their sums) gives the bits of the serial kernel: state, delay ring,
    region averages and EEG."""
    kw = dict(integrator=integrator, eeg="tvb:projection_eeg_65_surface_16k")
    one, two = _engine(**kw), _engine(threads=2, **kw)
    for e in (one, two):
        e.build()
    for t in (0.0, 1.0):
        a, b = one.advance(t, t + 1.0), two.advance(t, t + 1.0)
        for key in ("regions", "eeg"):
            np.testing.assert_array_equal(a.records[key], b.records[key])
    np.testing.assert_array_equal(one.vertex_state(), two.vertex_state())
    np.testing.assert_array_equal(one.state()["history"], two.state()["history"])
    assert two.threads == 2 and np.ptp(a.records["regions"]) > 0


def test_checkpoint_resume_is_bitwise():
    one = _engine()
    one.build()
    for t in (0.0, 1.0, 2.0, 3.0):
        last = one.advance(t, t + 1.0).records["regions"]
    first = _engine()
    first.build()
    for t in (0.0, 1.0):
        first.advance(t, t + 1.0)
    second = _engine()
    second.restore({k: v.copy() for k, v in first.state().items()})
    for t in (2.0, 3.0):
        last2 = second.advance(t, t + 1.0).records["regions"]
    np.testing.assert_array_equal(second.vertex_state(), one.vertex_state())
    np.testing.assert_array_equal(last, last2)


@pytest.mark.mpi
def test_mpiexec_split_equals_one_process(tmp_path):
    from cosim.launch import find_mpiexec
    scen = _short(tmp_path)
    one, three = tmp_path / "one.h5", tmp_path / "three.h5"
    assert main(["run", str(scen), "-o", str(one), "-q", "--no-monitor"]) == 0
    res = subprocess.run([find_mpiexec(), "-n", "3", sys.executable, "-m", "cosim", "run",
                          str(scen), "-o", str(three), "-q", "--no-monitor"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    with h5py.File(one) as a, h5py.File(three) as b:
        x, y = a["engines/cortex/regions"][()], b["engines/cortex/regions"][()]
        assert x.shape == (4, 2, 76) and a["engines/cortex/eeg"].shape == (4, 1, 63)
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a["engines/cortex/eeg"][()], b["engines/cortex/eeg"][()])


@pytest.mark.parametrize("old,new,key,reason", [
    ('model = "generic_2d_oscillator"', 'model = "g2d"', "engines.cortex.model", "must be one of"),
    ('region_mapping = "tvb:regionMapping_16k_76"', 'region_mapping = "nowhere.txt"',
     "engines.cortex.region_mapping", "no such file"),
    ('local_connectivity = "tvb:local_connectivity_16384"', 'local_connectivity = "tvb:lc"',
     "engines.cortex.local_connectivity", "unknown tvb-data file"),
    ('integrator = "heun"', 'integrator = "rk4"', "engines.cortex.integrator", "must be one of"),
    ("G = 0.05", "G = 0.05\nH = 1", "engines.cortex.coupling.H", "unknown parameter"),
    ("random = true", "random = true\nQ = 1.0", "engines.cortex.initial.Q", "not a state variable"),
    ('geometry = "surface"', 'geometry = "sphere"', "engines.cortex.geometry", "must be one of"),
    ('geometry = "surface"', 'geometry = "surface"\nsize = [10.0]', "engines.cortex.size",
     "unknown key"),
    ('type = "neural_field"\ngeometry = "surface"', 'type = "neural_surface"\ngeometry = "sheet"',
     "engines.cortex.geometry", 'must be "surface" for this engine'),
    ('geometry = "surface"\n', "", "engines.cortex.model", 'set geometry = "surface"'),
    ('integrator = "heun"', 'integrator = "heun"\nthreads = 0', "engines.cortex.threads", ">= 1"),
    ('integrator = "heun"', 'integrator = "heun"\nthreads = 200', "engines.cortex.threads",
     "NUMBA_NUM_THREADS"),
])
def test_bad_keys_are_one_line_errors(tmp_path, capsys, old, new, key, reason):
    scen = _short(tmp_path)
    text = scen.read_text()
    assert old in text, old
    scen.write_text(text.replace(old, new, 1))
    assert main(["validate", str(scen)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith(f"surface.toml: {key}: ") and reason in line, line


def test_neural_surface_is_an_alias(tmp_path):
    """``type = "neural_field"`` + ``geometry = "surface"`` and ``type = "neural_surface"``
    declare the same engine."""
    from cosim.scenario import load_scenario
    a = _short(tmp_path)
    b = tmp_path / "alias.toml"
    b.write_text(a.read_text().replace('type = "neural_field"\ngeometry = "surface"',
                                       'type = "neural_surface"'))
    ea, eb = (load_scenario(p).engines["cortex"] for p in (a, b))
    assert type(ea) is type(eb) is NeuralSurfaceEngine
    assert ea.record_specs() == eb.record_specs() and ea.n_vertices == eb.n_vertices == 16384
    same = ("model", "region_mapping", "local_connectivity", "local_coupling_strength", "dt_ms",
            "integrator", "coupling", "coupling_parameters", "random_initial", "eeg")
    assert all(ea._args[k] == eb._args[k] for k in same)


def test_plan_and_validate_name_the_engine_neural_field(tmp_path, capsys):
    """The run plan (slurm/sweep printouts) and `cosim validate` show the surface as the
    neural_field it is declared as, also when declared through the alias."""
    from cosim.plan import make_plan
    from cosim.scenario import load_scenario
    a = _short(tmp_path)
    b = tmp_path / "alias.toml"
    b.write_text(a.read_text().replace('type = "neural_field"\ngeometry = "surface"',
                                       'type = "neural_surface"'))
    for p in (a, b):
        sc = load_scenario(p)
        assert sc.engine_types == {"cortex": "neural_field"}
        assert make_plan(sc, 3).describe()[1:] == ["rank 1: engine cortex (neural_field) part 1/2",
                                                   "rank 2: engine cortex (neural_field) part 2/2"]
        assert main(["validate", str(p)]) == 0
        assert "engines: cortex (neural_field, 76 regions" in capsys.readouterr().out


def test_region_mapping_must_cover_every_region(tmp_path, capsys):
    from cosim.fields.surface import tvb_file
    mapping = np.loadtxt(tvb_file("regionMapping_16k_76")).astype(int)
    mapping[mapping == 5] = 4
    np.savetxt(tmp_path / "rm.txt", mapping, fmt="%d")
    scen = _short(tmp_path)
    scen.write_text(scen.read_text().replace('"tvb:regionMapping_16k_76"', '"rm.txt"'))
    assert main(["validate", str(scen)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("surface.toml: engines.cortex.region_mapping: region") and "no vertex" in err


HYBRID = REPO / "scenarios" / "surface_hybrid.toml"


def _hybrid_text(duration=5.0, kappa=None):
    text = HYBRID.read_text().replace("duration = 200.0", f"duration = {duration}")
    text = text.replace('output = "results/surface_hybrid.h5"\n', "")
    if kappa is not None:
        text = text.replace("local_coupling_strength = 0.02", f"local_coupling_strength = {kappa}")
    return text


def test_hybrid_equals_the_whole_surface_when_vertices_move_together(tmp_path):
    """κ = 0 and one initial state everywhere: every vertex of a region follows the same
    trajectory, which is that region's neural mass.  So the surface with four regions as
    neural masses on the bus equals the whole surface (an exact check of the bus coupling
    in both directions, up to the rounding of the region averages)."""
    hyb = tmp_path / "hybrid.toml"
    hyb.write_text(_hybrid_text(kappa=0.0))
    text = _hybrid_text(kappa=0.0)
    start, end = text.index("[engines.subcortex]"), text.index("# ---- the cortex")
    whole = tmp_path / "whole.toml"
    whole.write_text(text[:start] + text[end:].replace(
        'exclude_regions = ["rAMYG", "rHC", "lAMYG", "lHC"]\n', ""))
    for p in (hyb, whole):
        assert main(["run", str(p), "-o", str(p.with_suffix(".h5")), "-q", "--no-monitor"]) == 0
    labels = list(load_connectome("tvb:connectivity_76").region_labels)
    sub = [labels.index(r) for r in ("rAMYG", "rHC", "lAMYG", "lHC")]
    with h5py.File(whole.with_suffix(".h5")) as w, h5py.File(hyb.with_suffix(".h5")) as h:
        ref = w["engines/cortex/regions"][()]                      # (time, [V, W], 76)
        cortex = h["engines/cortex/regions"][()]                   # 72 regions
        masses = h["engines/subcortex/timeseries"][()]             # 4 regions
        kept = [i for i in range(76) if i not in sub]
        assert list(h["engines/cortex/regions"].attrs["regions"]) == [labels[i] for i in kept]
    scale = np.abs(ref).max(axis=(0, 2))[None, :, None]
    np.testing.assert_allclose(cortex / scale, ref[:, :, kept] / scale, rtol=0, atol=1e-12)
    np.testing.assert_allclose(masses / scale, ref[:, :, sub] / scale, rtol=0, atol=1e-12)
    assert np.ptp(ref[:, 0], axis=0).max() > 0.05 and np.ptp(ref[-1, 0]) > 1e-3   # regions differ


@pytest.mark.mpi
def test_hybrid_under_mpiexec_equals_one_process(tmp_path):
    from cosim.launch import find_mpiexec
    scen = tmp_path / "hybrid.toml"
    scen.write_text(_hybrid_text(duration=3.0))
    one, three = tmp_path / "one.h5", tmp_path / "three.h5"
    assert main(["run", str(scen), "-o", str(one), "-q", "--no-monitor"]) == 0
    res = subprocess.run([find_mpiexec(), "-n", "3", sys.executable, "-m", "cosim", "run",
                          str(scen), "-o", str(three), "-q", "--no-monitor"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    with h5py.File(one) as a, h5py.File(three) as b:
        for ds in ("engines/cortex/regions", "engines/subcortex/timeseries"):
            np.testing.assert_array_equal(a[ds][()], b[ds][()])


def test_eeg_and_meg_project_the_vertex_activity():
    """``eeg``/``meg``: the shipped 16k projection matrices applied to V at every record
    step (checked against numpy on the recorded vertex state), in both kernel paths."""
    from cosim.fields.surface import tvb_file
    kw = dict(eeg="tvb:projection_eeg_65_surface_16k", meg="tvb:projection_meg_276_surface_16k",
              record_period_ms=1.0, exclude_regions=["rV1"])
    eng = _engine(**kw)
    assert [s.dataset for s in eng.record_specs()] == ["regions", "eeg", "meg"]
    eng.build()
    out = eng.advance(0.0, 2.0)
    P = np.load(tvb_file("projection_eeg_65_surface_16k"))
    M = np.load(tvb_file("projection_meg_276_surface_16k"))
    # tvb-data's files hold NaN rows (2 EEG, 28 MEG channels): those sensors are left out
    P = P[np.isfinite(P).all(axis=1)][:, eng.kept]
    M = M[np.isfinite(M).all(axis=1)][:, eng.kept]
    V = eng.vertex_state()[:, 0]
    assert out.records["eeg"].shape == (2, 1, 63) and out.records["meg"].shape == (2, 1, 248)
    np.testing.assert_allclose(out.records["eeg"][-1, 0], P @ V, rtol=1e-12, atol=1e-12 * np.abs(P @ V).max())
    np.testing.assert_allclose(out.records["meg"][-1, 0], M @ V, rtol=1e-12, atol=1e-12 * np.abs(M @ V).max())
    # the per-step (split) path gives the same samples
    other = _engine(**kw)
    other._exchange = lambda ids, values: (ids, values)     # a single part that "joins"
    other.build()
    out2 = other.advance(0.0, 2.0)
    for ds in ("regions", "eeg", "meg"):
        np.testing.assert_array_equal(out.records[ds], out2.records[ds])
    with pytest.raises(Exception, match="projects 65 vertices"):
        bad = tvb_file("projection_eeg_65_surface_16k")
        np.save("/tmp/_cosim_bad_proj.npy", np.load(bad)[:, :65])
        _engine(eeg="/tmp/_cosim_bad_proj.npy")


def test_excluded_regions_need_an_engine(tmp_path, capsys):
    text = _hybrid_text()
    start, end = text.index("[engines.subcortex]"), text.index("# ---- the cortex")
    scen = tmp_path / "nosub.toml"
    scen.write_text(text[:start] + text[end:])
    assert main(["validate", str(scen)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("nosub.toml: engines: region 'rAMYG' is left out of the surface by "
                   "engines.cortex.exclude_regions, but no engine declared before 'cortex' "
                   "simulates it"), err


def _fixed_width_product():
    """The fixed-width rows' product as the kernels form it (``ell_split``): each row's
    first ``width`` entries in column order, plus the long rows' remainder (the kernels'
    own remainder pass, ``_t_long_rows``)."""
    from numba import njit
    from cosim.fields.surface import _t_long_rows

    long_rows = njit(_t_long_rows)

    @njit
    def product(L, q, out):
        fi, fv, xp, xi, xv, lr, ex = L
        ex[:] = 0.0
        long_rows(q, L)
        for v in range(q.size):
            acc = 0.0
            for e in range(fi.shape[1]):
                acc += fv[v, e] * q[fi[v, e]]
            out[v] = acc + ex[v]
    return product


def test_fixed_width_rows_are_the_csr_sums():
    """``ell_split``: the local product as the kernels form it — each row's first ``width``
    entries summed in column order (padding adds 0), plus the sum of the rest in column
    order (the long rows' remainder, summed before the pass) — equals that sum of scipy's
    CSR entries bit for bit, and scipy's product to rounding; rows shorter and longer
    than the width, empty rows, the shipped 16k matrix's width."""
    import scipy.sparse as sp
    from cosim.fields.surface import ell_split, load_local_connectivity

    product = _fixed_width_product()
    rng = np.random.default_rng(2)
    m = sp.random(300, 300, density=0.03, random_state=3, format="csr")
    m.data -= 0.5
    m = m.tolil()
    m[7, :] = 0
    m[11, :40] = rng.standard_normal(40)                  # one long row
    m = m.tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    q = rng.standard_normal(300)
    for width in (None, 1, 4, 50):
        L = ell_split(m, width)
        out = np.empty(300)
        product(L, q, out)
        k = L[0].shape[1]                                  # the fixed width

        def part(v, lo, hi):
            e0 = m.indptr[v]
            return sum((m.data[e] * q[m.indices[e]]
                        for e in range(e0 + lo, min(e0 + hi, m.indptr[v + 1]))), 0.0)
        ref = np.array([part(v, 0, k) + part(v, k, m.shape[1] + 1) for v in range(300)])
        assert (L[5] == np.nonzero(np.diff(m.indptr) > k)[0]).all()
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_allclose(out, m @ q, rtol=1e-12, atol=1e-12)
    assert ell_split(load_local_connectivity("tvb:local_connectivity_16384"))[0].shape == (16384, 8)


def _grouped_inputs(width, bits, n_in):
    """The one-part flat window's input pass (``grouped_inputs``) as the kernels inline it,
    with ``n_in`` inputs per vertex."""
    from numba import njit
    import cosim.fields.surface as sf
    from cosim.integrators import _FLAGS, _inlined, _rebound

    glb = dict(vars(sf), N_IN=n_in)
    glb["emit"] = _inlined(_rebound(sf._t_emit, glb))
    return njit(**_FLAGS)(sf._grouped_inputs(width, bits, glb))


def test_rows_grouped_by_length_give_the_fixed_width_sums():
    """``grouped_rows`` + ``grouped_inputs`` (the flat window's local product, rows grouped
    by length, indices packed four or two to a word): every vertex's inputs are its
    region's row with the local sum added to input ``lin`` — that sum the fixed-width
    one's bit for bit (first ``width`` entries in column order, then the rest's sum), and
    scipy's product to rounding; rows of every length up to and beyond the width, empty
    rows, 16- and 32-bit indices (too many columns for the bits: refused); and on the
    shipped 16k matrix the same bits as ``ell_split``'s product."""
    import scipy.sparse as sp
    from cosim.fields.surface import (ell_split, grouped_rows, load_local_connectivity,
                                      row_index_bits)

    rng = np.random.default_rng(5)
    n = 300
    m = sp.random(n, n, density=0.02, random_state=4, format="csr")
    m.data -= 0.5
    m = m.tolil()
    m[7, :] = 0
    m[11, :40] = rng.standard_normal(40)                  # one long row
    m = m.tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    q = rng.standard_normal(n)
    region_of = rng.integers(0, 5, n).astype(np.uint16)
    cr = rng.standard_normal((5, 2))
    lengths = set(np.diff(m.indptr).tolist())
    assert {0, 1, 2, 3, 4, 5} <= lengths and max(lengths) > 12
    for width in (1, 4, 12):
        for bits in (16, 32):
            f = _grouped_inputs(width, bits, 2)
            G = grouped_rows(m, width, region_of, bits)
            cf = np.full(2 * n, np.nan)
            f(q, G, cr, 1, cf)

            def part(v, lo, hi):
                e0 = m.indptr[v]
                return sum((m.data[e] * q[m.indices[e]]
                            for e in range(e0 + lo, min(e0 + hi, m.indptr[v + 1]))), 0.0)
            local = np.array([part(v, 0, width) + part(v, width, n + 1) for v in range(n)])
            np.testing.assert_array_equal(cf[0::2], cr[region_of, 0])
            np.testing.assert_array_equal(cf[1::2], cr[region_of, 1] + local)
            np.testing.assert_allclose(cf[1::2] - cr[region_of, 1], m @ q, rtol=1e-12,
                                       atol=1e-12)
    # the 16k cortex: the grouped product against the fixed-width one, bit for bit
    lc = load_local_connectivity("tvb:local_connectivity_16384").tocsr()
    lc.sort_indices()
    assert row_index_bits(lc.shape[0]) == 16 and row_index_bits(70_000) == 32
    with pytest.raises(ValueError, match="70000 columns do not fit 16-bit indices"):
        grouped_rows(sp.csr_matrix((70_000, 70_000)), 8, np.zeros(70_000, np.uint16), 16)
    L = ell_split(lc)
    q = rng.standard_normal(lc.shape[0])
    ref = np.empty_like(q)
    _fixed_width_product()(L, q, ref)
    cf = np.full(lc.shape[0], np.nan)
    zero = np.zeros((1, 1))
    _grouped_inputs(L[0].shape[1], 16, 1)(q, grouped_rows(lc, L[0].shape[1],
                                                          np.zeros(lc.shape[0], np.uint16)),
                                          zero, 0, cf)
    np.testing.assert_array_equal(cf, ref)
