"""Connectome loading and validation, checked against The Virtual Brain's own loader."""

from __future__ import annotations

import bz2
import zipfile

import numpy as np
import pytest

from cosim.connectome import TVB_DATA_NAMES, load_connectome, make_connectome, tvb_data_path
from cosim.errors import CosimError


@pytest.fixture(scope="module")
def tvb_connectivity():
    conn_mod = pytest.importorskip("tvb.datatypes.connectivity",
                                   reason="tvb-library (the reference loader) is not installed")

    def load(name):
        c = conn_mod.Connectivity.from_file(str(tvb_data_path(name)))
        c.configure()
        return c

    return load


@pytest.mark.parametrize("name", ["connectivity_76", "connectivity_68", "connectivity_192"])
def test_tvb_data_matches_tvb_loader(name, tvb_connectivity):
    ours = load_connectome(f"tvb:{name}")
    ref = tvb_connectivity(name)
    assert ours.n_regions == ref.weights.shape[0]
    np.testing.assert_array_equal(ours.weights, ref.weights)
    np.testing.assert_array_equal(ours.tract_lengths_mm, ref.tract_lengths)
    assert list(ours.region_labels) == [str(s) for s in ref.region_labels]
    np.testing.assert_allclose(ours.centres_mm, ref.centres)


def test_delay_quantisation_matches_tvb(tvb_connectivity):
    ref = tvb_connectivity("connectivity_76")
    ref.speed = np.array([3.0])
    ref.configure()
    ref.set_idelays(0.1)
    ours = load_connectome("tvb:connectivity_76")
    np.testing.assert_array_equal(ours.delay_steps(3.0, 0.1), ref.idelays)
    # rint rule: quantisation error at most dt/2
    err = np.abs(ours.delay_steps(3.0, 0.1) * 0.1 - ours.delays_ms(3.0))
    assert err.max() <= 0.05 + 1e-12


def test_all_shipped_connectomes_load():
    sizes = {int(n.split("_")[1]): load_connectome(f"tvb:{n}").n_regions for n in TVB_DATA_NAMES}
    assert sizes == {66: 66, 68: 68, 76: 76, 96: 96, 192: 192}


def _write_tvb_folder(folder, w, L, labels, compress=()):
    folder.mkdir()
    centres = "\n".join(f"{s} {i}.0 0.0 1.0" for i, s in enumerate(labels)) + "\n"
    files = {"weights.txt": "\n".join(" ".join(map(str, r)) for r in w) + "\n",
             "tract_lengths.txt": "\n".join(" ".join(map(str, r)) for r in L) + "\n",
             "centres.txt": centres}
    for name, text in files.items():
        if name in compress:
            (folder / (name + ".bz2")).write_bytes(bz2.compress(text.encode()))
        else:
            (folder / name).write_text(text)


def test_folder_zip_npz_csv_formats_agree(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.random((4, 4))
    L = rng.random((4, 4)) * 100
    labels = ["a", "b", "c", "d"]
    _write_tvb_folder(tmp_path / "conn", w, L, labels, compress=("weights.txt",))
    z = tmp_path / "conn.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in (tmp_path / "conn").iterdir():
            zf.write(p, f"inner/{p.name}")
    np.savez(tmp_path / "conn.npz", weights=w, tract_lengths=L, region_labels=np.array(labels))
    np.savetxt(tmp_path / "w.csv", w, delimiter=",")
    np.savetxt(tmp_path / "l.csv", L, delimiter=",")
    (tmp_path / "names.txt").write_text("\n".join(labels))
    loaded = [load_connectome(tmp_path / "conn"), load_connectome(z),
              load_connectome(tmp_path / "conn.npz"),
              load_connectome({"weights": "w.csv", "tract_lengths": "l.csv", "labels": "names.txt"},
                              base_dir=tmp_path)]
    for c in loaded:
        np.testing.assert_allclose(c.weights, w, rtol=1e-15)
        np.testing.assert_allclose(c.tract_lengths_mm, L, rtol=1e-15)
        assert c.region_labels == tuple(labels)


def test_subset_and_index():
    c = load_connectome("tvb:connectivity_76")
    i, j = c.index_of("rV1"), c.index_of("lV1")
    s = c.subset([i, j])
    assert s.region_labels == ("rV1", "lV1")
    assert s.weights[0, 1] == c.weights[i, j]
    with pytest.raises(KeyError):
        c.index_of("nope")


@pytest.mark.parametrize("w, L, labels, message", [
    (np.ones((2, 3)), np.ones((2, 3)), None, "must be a square matrix"),
    (np.ones((2, 2)), np.ones((3, 3)), None, "differ in shape"),
    (np.array([[0, np.nan], [1, 0]]), np.ones((2, 2)), None, "weights[0, 1] is nan"),
    (np.ones((2, 2)), np.array([[0, np.inf], [1, 0]]), None, "tract_lengths[0, 1] is inf"),
    (np.array([[0, -1.0], [1, 0]]), np.ones((2, 2)), None, "weights[0, 1] = -1 is negative"),
    (np.ones((2, 2)), np.ones((2, 2)), ["a"], "1 region labels for a 2x2"),
    (np.ones((2, 2)), np.ones((2, 2)), ["a", "a"], "appears twice"),
])
def test_make_connectome_rejects(w, L, labels, message):
    with pytest.raises(CosimError) as err:
        make_connectome(w, L, labels, file="x.npz", key="connectome.source")
    assert message in str(err.value)
    assert str(err.value).startswith("x.npz: connectome.source: ")


def test_bad_files(tmp_path):
    _write_tvb_folder(tmp_path / "ok", np.ones((3, 3)), np.ones((3, 3)), ["a", "b", "c"])
    # missing member
    (tmp_path / "ok" / "tract_lengths.txt").unlink()
    with pytest.raises(CosimError, match=r"missing member tract_lengths.txt"):
        load_connectome(tmp_path / "ok")
    # non-numeric and truncated
    (tmp_path / "ok" / "tract_lengths.txt").write_text("1 2 3\n4 x 6\n7 8 9\n")
    with pytest.raises(CosimError, match=r"tract_lengths.txt line 2: 'x' is not a number"):
        load_connectome(tmp_path / "ok")
    (tmp_path / "ok" / "tract_lengths.txt").write_text("1 2 3\n4 5 6\n7 8\n")
    with pytest.raises(CosimError, match=r"truncated"):
        load_connectome(tmp_path / "ok")
    with pytest.raises(CosimError, match=r"not found"):
        load_connectome("nowhere.zip", file="s.toml", key="connectome.source")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CosimError, match=r"not a readable zip"):
        load_connectome(tmp_path / "broken.zip")
    with pytest.raises(CosimError, match=r"unknown tvb-data connectome 'connectivity_77'"):
        load_connectome("tvb:connectivity_77")
    np.savez(tmp_path / "partial.npz", weights=np.ones((2, 2)))
    with pytest.raises(CosimError, match=r"missing array 'tract_lengths'"):
        load_connectome(tmp_path / "partial.npz")
