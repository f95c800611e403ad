"""Broken data files — connectomes and SWC morphologies that are truncated, non-numeric,
non-square, negative, disconnected or missing — each give one clear line naming the file
(and the line or member), through the library and through `cosim validate` (exit 2)."""

from __future__ import annotations

import contextlib
import io
import zipfile

import numpy as np
import pytest

from cosim.cli import main
from cosim.connectome import isolated_regions, load_connectome
from cosim.errors import CosimError
from cosim.multicompartment.swc import load_swc
from scenarios import connectome, neural_mass, scenario_text, simulation

W = np.array([[0.0, 0.5, 0.2], [0.3, 0.0, 0.1], [0.4, 0.6, 0.0]])
L = np.array([[0.0, 12.0, 30.0], [12.0, 0.0, 21.0], [30.0, 21.0, 0.0]])


def _csv(m) -> str:
    return "\n".join(",".join(f"{v:g}" for v in row) for row in m) + "\n"


def _tvb_zip(path, weights_text=None, **replace: bytes):
    members = {"weights.txt": (weights_text or _csv(W).replace(",", " ")).encode(),
               "tract_lengths.txt": _csv(L).replace(",", " ").encode(),
               "centres.txt": b"A 0 0 0\nB 1 0 0\nC 0 1 0\n"}
    members.update(replace)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"conn/{name}", data)
    return path


def _error(source, **kw) -> str:
    with pytest.raises(CosimError) as err:
        load_connectome(source, **kw)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# -- connectomes -----------------------------------------------------------------------------

def test_truncated_zip(tmp_path):
    whole = _tvb_zip(tmp_path / "whole.zip").read_bytes()
    for cut in (len(whole) // 2, len(whole) - 30, 40):
        p = tmp_path / "cut.zip"
        p.write_bytes(whole[:cut])
        msg = _error(p)
        assert msg.startswith("cut.zip: ")
        assert "not a readable zip file" in msg or "truncated or corrupt" in msg


def test_zip_member_that_is_binary_garbage(tmp_path):
    rng = np.random.default_rng(0)
    garbage = bytes(rng.integers(128, 256, 300, dtype=np.uint8))    # never valid UTF-8
    p = _tvb_zip(tmp_path / "g.zip", **{"weights.txt": garbage})
    assert _error(p) == "g.zip: weights.txt: not a text file"
    p = _tvb_zip(tmp_path / "n.zip", **{"tract_lengths.txt": b"1 2 3\x00\x00\x00\x01"})
    assert _error(p) == "n.zip: tract_lengths.txt: binary data, not a text file"


def test_zip_member_with_corrupt_data(tmp_path):
    p = _tvb_zip(tmp_path / "c.zip")
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("conn/weights.txt")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start:start + info.compress_size] = b"\xff" * info.compress_size   # same size, bad data
    p.write_bytes(bytes(raw))
    msg = _error(p)
    assert msg.startswith("c.zip: weights.txt: cannot be read from the zip"), msg


def test_weights_with_a_trailing_partial_row(tmp_path):
    p = _tvb_zip(tmp_path / "t.zip", weights_text="0 0.5 0.2\n0.3 0 0.1\n0.4 0.6\n")
    assert _error(p) == ("t.zip: weights.txt: rows have different lengths (3 values in the first "
                         "row, 2 in the last row); truncated file?")


def test_csv_with_a_header_line(tmp_path):
    (tmp_path / "w.csv").write_text("A,B,C\n" + _csv(W))
    (tmp_path / "l.csv").write_text(_csv(L))
    msg = _error({"weights": "w.csv", "tract_lengths": "l.csv"}, base_dir=tmp_path)
    assert msg == ("w.csv: line 1: 'A' is not a number; a header line? remove it (names go in "
                   "a separate labels file)")


def test_csv_non_numeric_non_square_negative_missing(tmp_path):
    (tmp_path / "l.csv").write_text(_csv(L))
    src = {"weights": "w.csv", "tract_lengths": "l.csv"}
    (tmp_path / "w.csv").write_text(_csv(W).replace("0.6", "O.6"))
    assert _error(src, base_dir=tmp_path) == "w.csv: line 3: 'O.6' is not a number"
    (tmp_path / "w.csv").write_text(_csv(W[:2]))
    assert "weights must be a square matrix, got shape (2, 3)" in _error(src, base_dir=tmp_path)
    neg = W.copy()
    neg[1, 2] = -0.1
    (tmp_path / "w.csv").write_text(_csv(neg))
    assert _error(src, base_dir=tmp_path).endswith("weights[1, 2] = -0.1 is negative")
    (tmp_path / "w.csv").write_text("")
    assert _error(src, base_dir=tmp_path) == "w.csv: is empty"
    (tmp_path / "w.csv").write_bytes(b"\xff\xfe0,1\n")
    assert _error(src, base_dir=tmp_path) == "w.csv: w.csv: not a text file"
    (tmp_path / "w.csv").unlink()
    msg = _error(src, base_dir=tmp_path, file="s.toml", key="connectome.source")
    assert msg.startswith("s.toml: connectome.source.weights: file 'w.csv' not found")
    msg = _error({"weights": 3, "tract_lengths": "l.csv"}, file="s.toml", key="connectome.source")
    assert msg == "s.toml: connectome.source.weights: must be a file name (string), got 3"


def test_npz_truncated_text_and_wrong_shapes(tmp_path):
    p = tmp_path / "c.npz"
    np.savez_compressed(p, weights=W, tract_lengths=L)
    whole = p.read_bytes()
    p.write_bytes(whole[: len(whole) // 2])
    assert "not a readable .npz file" in _error(p)
    np.savez(p, weights=np.array([["a", "b"], ["c", "d"]]), tract_lengths=L[:2, :2])
    assert _error(p) == "c.npz: weights are not numbers (array of <U1)"
    np.savez(p, weights=W, tract_lengths=L, region_labels=np.array([["A", "B", "C"]]))
    assert "region_labels must be a 1-d array of names, got shape (1, 3)" in _error(p)


def test_labels_file_that_is_not_text(tmp_path):
    (tmp_path / "w.csv").write_text(_csv(W))
    (tmp_path / "l.csv").write_text(_csv(L))
    (tmp_path / "names.txt").write_bytes(b"A\n\xffB\nC\n")
    msg = _error({"weights": "w.csv", "tract_lengths": "l.csv", "labels": "names.txt"},
                 base_dir=tmp_path)
    assert msg == "names.txt: names.txt: not a text file"


def test_isolated_region_refused_in_user_files_unless_allowed(tmp_path):
    w = W.copy()
    w[2, :] = 0.0
    w[:, 2] = 0.0
    w[2, 2] = 1.0                  # a self-connection does not connect a region
    (tmp_path / "w.csv").write_text(_csv(w))
    (tmp_path / "l.csv").write_text(_csv(L))
    (tmp_path / "names.txt").write_text("A\nB\nC\n")
    src = {"weights": "w.csv", "tract_lengths": "l.csv", "labels": "names.txt"}
    msg = _error(src, base_dir=tmp_path, file="s.toml", key="connectome.source")
    assert msg == ("s.toml: connectome.source: region 'C' of w.csv has no connection to or from "
                   "any other region (zero row and column of weights); set "
                   "connectome.allow_disconnected = true if that is intended")
    c = load_connectome(src, base_dir=tmp_path, allow_disconnected=True)
    assert isolated_regions(c) == [2]
    # a region that only sends (zero row) or only receives (zero column) is connected
    w2 = W.copy()
    w2[2, :] = 0.0
    (tmp_path / "w.csv").write_text(_csv(w2))
    assert isolated_regions(load_connectome(src, base_dir=tmp_path)) == []
    # the same check for zip and npz files
    _tvb_zip(tmp_path / "z.zip", weights_text=_csv(w).replace(",", " "))
    assert "region 'C' of z.zip has no connection" in _error(tmp_path / "z.zip")
    np.savez(tmp_path / "i.npz", weights=np.zeros((4, 4)), tract_lengths=np.zeros((4, 4)))
    assert "regions 'r0', 'r1', 'r2', 'r3' of i.npz have no connection" in _error(tmp_path / "i.npz")


def test_tvb_connectomes_are_taken_as_shipped():
    """connectivity_76 has two isolated regions (the corpus callosum halves): accepted."""
    c = load_connectome("tvb:connectivity_76")
    assert sorted(c.region_labels[i] for i in isolated_regions(c)) == ["lCC", "rCC"]


def _scenario(labels: str | None = None, **connectome_keys) -> str:
    """Wilson–Cowan on the w.csv / l.csv (/ ``labels``) connectome; ``connectome_keys`` e.g.
    allow_disconnected."""
    files = {"weights": "w.csv", "tract_lengths": "l.csv"}
    if labels:
        files["labels"] = labels
    return scenario_text(simulation(duration=4.0),
                         connectome=connectome(files, **connectome_keys),
                         engines={"m": neural_mass("wilson_cowan")})


def _validate(path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["validate", str(path)])
    return rc, err.getvalue()


def test_scenario_key_allow_disconnected(tmp_path):
    w = W.copy()
    w[0, 1:] = w[1:, 0] = 0.0
    (tmp_path / "w.csv").write_text(_csv(w))
    (tmp_path / "l.csv").write_text(_csv(L))
    p = tmp_path / "s.toml"
    p.write_text(_scenario())
    rc, err = _validate(p)
    assert rc == 2 and err.startswith("s.toml: connectome.source: region 'r0' of w.csv has no")
    p.write_text(_scenario(allow_disconnected=True))
    assert _validate(p) == (0, "")
    p.write_text(_scenario(allow_disconnected="yes"))
    rc, err = _validate(p)
    assert rc == 2 and err == ("s.toml: connectome.allow_disconnected: must be true or false, "
                               "got string 'yes'\n")


def test_broken_connectome_through_validate_is_one_line_exit_2(tmp_path):
    (tmp_path / "w.csv").write_text(_csv(W)[:-6])          # cut inside the last row
    (tmp_path / "l.csv").write_text(_csv(L))
    p = tmp_path / "s.toml"
    p.write_text(_scenario())
    rc, err = _validate(p)
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("w.csv: rows have different lengths") and "truncated" in err


# -- SWC morphologies ------------------------------------------------------------------------

GOOD_SWC = "# a cell\n1 1 0 0 0 5 -1\n2 3 5 0 0 1 1\n3 3 15 0 0 1 2\n4 3 25 0 0 0.8 3\n"


@pytest.mark.parametrize("text, expected", [
    ("1 1 0 0 0 5 -1\n2 3 5 0 0 1\n", "line 2: expected 7 columns (id type x y z radius parent), got 6"),
    ("1 1 0 0 0 5 -1\n2 3 5 0 zero 1 1\n", "line 2: not a number in '2 3 5 0 zero 1 1'"),
    ("1 1 0 0 0 5 -1\n2 3 5 0 0 1 9\n", "line 2: parent 9 is not a sample of the file"),
    ("1 1 0 0 0 5 -1\n2 3 5 0 0 1 3\n3 3 9 0 0 1 2\n",
     "line 2: parent 3 comes later (line 3); SWC lists every parent before its children — a "
     "cycle or an unsorted file"),
    ("1 1 0 0 0 5 -1\n2 3 5 0 0 1 2\n", "line 2: sample 2 is its own parent (a cycle)"),
    ("1 3 0 0 0 1 -1\n2 3 5 0 0 1 1\n",
     "line 1: no soma: no sample of type 1 (the root is of type 3, dend)"),
    ("1 1 0 0 0 5 -1\n2 3 5 0 0 -1 1\n", "line 2: radius must be > 0, got -1"),
    ("1 1 0 0 0 5 -1\n2 3 5 0 nan 1 1\n", "line 2: coordinates and radius must be finite"),
    ("1 1 0 0 0 5 -1\n1 3 5 0 0 1 1\n", "line 2: sample id 1 defined twice (first on line 1)"),
    ("# only a comment\n", "no samples in SWC file"),
])
def test_bad_swc(tmp_path, text, expected):
    p = tmp_path / "cell.swc"
    p.write_text(text)
    with pytest.raises(CosimError) as err:
        load_swc(p)
    assert str(err.value) == f"cell.swc: {expected}"


def test_truncated_and_missing_swc(tmp_path):
    p = tmp_path / "cell.swc"
    p.write_text(GOOD_SWC)
    assert len(load_swc(p).sections) == 2
    p.write_text(GOOD_SWC[:-9])                   # cut inside the last line
    with pytest.raises(CosimError, match=r"^cell\.swc: line 5: expected 7 columns"):
        load_swc(p)
    with pytest.raises(CosimError, match=r"^absent\.swc: cannot read SWC file: No such file"):
        load_swc(tmp_path / "absent.swc")


# -- each message of a CSV-pair connectome names the file it is about ------------------------

def test_csv_pair_errors_name_the_file_at_fault(tmp_path):
    (tmp_path / "w.csv").write_text(_csv(W))
    (tmp_path / "names.txt").write_text("A\nB\nC\n")
    src = {"weights": "w.csv", "tract_lengths": "l.csv", "labels": "names.txt"}
    bad = L.copy()
    bad[2, 0] = -4.0
    (tmp_path / "l.csv").write_text(_csv(bad))
    assert _error(src, base_dir=tmp_path) == "l.csv: tract_lengths[2, 0] = -4 is negative"
    (tmp_path / "l.csv").write_text(_csv(L[:2, :2]))
    assert _error(src, base_dir=tmp_path) == \
        "l.csv: weights (3, 3) and tract_lengths (2, 2) differ in shape"
    (tmp_path / "l.csv").write_text(_csv(L))
    (tmp_path / "names.txt").write_text("A\nB\n")
    assert _error(src, base_dir=tmp_path) == "names.txt: 2 region labels for a 3x3 connectome"
    (tmp_path / "names.txt").write_text("A\nB\nA\n")
    assert _error(src, base_dir=tmp_path) == \
        "names.txt: region label 'A' appears twice (rows 0 and 2)"
    # through the command line: one line, exit 2, the labels file named
    p = tmp_path / "s.toml"
    p.write_text(_scenario(labels="names.txt"))
    rc, err = _validate(p)
    assert (rc, err) == (2, "names.txt: region label 'A' appears twice (rows 0 and 2)\n")
    from _util import run_cli

    (tmp_path / "names.txt").write_text("A\nB\nC\n")
    (tmp_path / "l.csv").write_text(_csv(L[:2, :2]))
    r = run_cli("run", str(p), cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "l.csv: weights (3, 3) and tract_lengths (2, 2) "
                                           "differ in shape\n")
