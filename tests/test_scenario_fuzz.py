"""Scenario fuzzing: hundreds of broken scenarios, each rejected by `cosim validate` and
`cosim run` with exit code 2 and one line naming the file and the key — no traceback, no
output file, no hang.

The broken scenarios are the real ones in ``scenarios/`` and small variants (CSV and npz
connectomes, an SWC cell, noise, monitors), each mutated in one place
(:mod:`scenario_mutations`).  Most go through the in-process entry point
``cosim.cli.main``; a sample goes through real ``python -m cosim`` processes, and three
through ``mpiexec -n 3`` (message printed once, every rank exits with 2).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scenario_mutations as sm
from _util import run_cli
from cosim.cli import main

BASES = sm.bases()
CANDIDATES = {name: sm.candidates(name, data) for name, data in BASES.items()}
KINDS = {name: sorted({m.kind for m in ms}) for name, ms in CANDIDATES.items()}
NAMES = sorted(BASES)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    sm.write_data_files(d)
    return d


def _write(folder: Path, name: str, m: sm.Mutation) -> Path:
    data = dict(BASES[name])
    sim = data.get("simulation")
    if isinstance(sim, dict) and "output" in sim:        # relative to the cwd of the run
        data = {**data, "simulation": {**sim, "output": "out.h5"}}
    p = folder / f"{name}.toml"
    p.write_bytes(sm.scenario_bytes(m, data))
    return p


def _cli(*argv: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """``cosim.cli.main(argv)`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    finally:
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue()


def expected_keys(m: sm.Mutation) -> list[str]:
    """Dotted keys an error message about mutation ``m`` may name."""
    path = sm.dotted(m.path)
    if m.kind == "rename":
        return [path, sm.dotted(m.path[:-1] + (m.value,))]
    if m.kind == "add":
        return [sm.dotted(m.path + (m.value,))]
    return [path]


def check_message(stderr: str, scenario: str, m: sm.Mutation) -> None:
    """One line ``<scenario>: <key>: <reason>``, the key related to what was mutated."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith(f"{scenario}: "), line
    rest = line[len(scenario) + 2:]
    if m.kind in ("garbage", "non_utf8"):
        assert rest.startswith(("invalid TOML", "not a UTF-8")), line
        return
    key = re.sub(r"\[(\d+)\]", r".\1", rest.split(": ")[0])
    assert re.fullmatch(r"[\w\-.]+", key), f"no key in {line!r}"
    ok = False
    for want in expected_keys(m):
        # the key itself, a table holding it, a key inside it — or, for a cross-reference
        # (adapters.x.input naming a deleted input group), a message that names it
        last = re.escape(want.rsplit(".", 1)[-1])
        ok |= (key == want or want.startswith(key + ".") or key.startswith(want + ".")
               or re.search(rf"(?<!\w){last}(?!\w)", rest) is not None)
    assert ok, f"{m.describe()}: message does not name the key: {line!r}"


@st.composite
def mutations(draw):
    name = draw(st.sampled_from(NAMES))
    kind = draw(st.sampled_from(KINDS[name]))
    m = draw(st.sampled_from([c for c in CANDIDATES[name] if c.kind == kind]))
    return name, m


def test_candidates_cover_every_kind_of_mistake():
    """The candidate list is big and spans every kind of mistake and every base."""
    assert len(NAMES) >= 4 and {"default", "whole_brain_jr"} <= set(NAMES)
    for name in NAMES:
        assert {"delete", "rename", "retype", "range", "name", "add"} <= set(KINDS[name])
    assert sum(len(v) for v in CANDIDATES.values()) > 2000
    sync = [m for m in CANDIDATES["default"] if m.path == ("simulation", "sync_interval")
            and m.value in (10.0, 20.0)]
    assert sync, "the default scenario's sync interval above rV1's shortest fibre"


@settings(max_examples=450, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=mutations())
def test_validate_rejects_broken_scenarios(data_dir, case):
    name, m = case
    path = _write(data_dir, name, m)
    rc, out, err = _cli("validate", str(path))
    assert rc == 2, f"{m.describe()}: exit {rc}: {out}{err}"
    assert out == ""
    check_message(err, path.name, m)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=mutations())
def test_run_rejects_broken_scenarios_before_writing(data_dir, case):
    name, m = case
    path = _write(data_dir, name, m)
    with tempfile.TemporaryDirectory(dir=data_dir) as cwd:
        # never start a real simulation: a case that validates is a failure by itself
        assert _cli("validate", str(path), cwd=Path(cwd))[0] == 2, m.describe()
        rc, out, err = _cli("run", str(path), "--quiet", cwd=Path(cwd))
        assert rc == 2, f"{m.describe()}: exit {rc}: {err}"
        check_message(err, path.name, m)
        assert list(Path(cwd).iterdir()) == [], "an output file or folder was created"


def test_sync_interval_above_the_shortest_cross_engine_fibre(data_dir):
    """The hybrid default with Δ = 10 ms > rV1's shortest fibre (9.8 ms)."""
    m = sm.Mutation("range", ("simulation", "sync_interval"), 10.0)
    path = _write(data_dir, "default", m)
    rc, _, err = _cli("validate", str(path))
    assert rc == 2
    assert err.startswith("default.toml: simulation.sync_interval: 10 ms is longer than the "
                          "delay of the connection"), err
    assert "rV1" in err and "shorten the sync interval to at most 9" in err


# A sample through the real command line: the same one line, exit 2, nothing written.
SUBPROCESS_CASES = [
    ("default", sm.Mutation("range", ("engines", "cortex", "dt"), -0.1), "validate"),
    ("default", sm.Mutation("range", ("simulation", "sync_interval"), 20.0), "run"),
    ("default", sm.Mutation("name", ("adapters", "v1_in_exc", "input"), "bg_excX"), "run"),
    ("default", sm.Mutation("name", ("engines", "v1", "region"), "rV9"), "validate"),
    ("whole_brain_jr", sm.Mutation("rename", ("simulation", "duration"), "durration"), "run"),
    ("whole_brain_jr", sm.Mutation("name", ("engines", "cortex", "model"), "jansen_ritt"), "validate"),
    ("wc_csv", sm.Mutation("retype", ("engines", "wc", "noise", "E"), "fast"), "run"),
    ("mc_swc", sm.Mutation("range", ("engines", "cells", "probes", "cells", 0), 0.5), "validate"),
    ("mc_swc", sm.Mutation("name", ("engines", "cells", "cells", "pyr", "morphology"), "cel.swc"), "run"),
    ("jr_split", sm.Mutation("garbage", ()), "run"),
]


def test_real_cli_sample(data_dir, tmp_path):
    procs = []
    for i, (name, m, cmd) in enumerate(SUBPROCESS_CASES):
        folder = data_dir / f"sub{i}"
        folder.mkdir()
        for f in data_dir.iterdir():
            if f.is_file():
                (folder / f.name).write_bytes(f.read_bytes())
        path = _write(folder, name, m)
        cwd = tmp_path / f"cwd{i}"
        cwd.mkdir()
        procs.append((name, m, path, cwd, _popen(cmd, path, cwd)))
    for name, m, path, cwd, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, f"{m.describe()}: {err}"
        assert out == ""
        check_message(err, path.name, m)
        assert list(cwd.iterdir()) == []


def _popen(cmd: str, path: Path, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "COSIM_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "cosim", cmd, str(path)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_real_cli_missing_and_unreadable_files(tmp_path):
    r = run_cli("run", str(tmp_path / "nothing.toml"), cwd=tmp_path)
    assert (r.returncode, r.stderr.strip()) == (2, "nothing.toml: no such file")
    r = run_cli("validate", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is a directory" in r.stderr


# Under mpiexec: every rank validates, rank 0 alone prints, every rank exits with 2.
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _mpi_case(folder: Path, kind: str) -> tuple[list[str], str]:
    """(command, expected start of the message) for one broken MPI launch."""
    sim = BASES["default"]["simulation"]             # two windows: short even if it ran
    data = {**BASES["default"], "simulation": {**sim, "duration": 2 * sim["sync_interval"],
                                               "output": "out.h5"}}
    n, text = "3", sm.dumps(data)
    if kind == "bad_key":
        m = sm.Mutation("range", ("engines", "v1", "cells", "exc", "nseg"), 0)
        text = sm.scenario_bytes(m, data).decode()
        expected = "default.toml: engines.v1.cells.exc.nseg: must be >= 1, got 0"
    elif kind == "output_exists":
        (folder / "out.h5").write_bytes(b"previous results")
        expected = "out.h5: output file exists; pass --overwrite"
    else:                                              # two processes for three roles
        n = "2"
        expected = "default.toml: needs 1 process or at least 3 (one for the bus and one per engine"
    (folder / "default.toml").write_text(text)
    # each rank reports its own exit code on stdout (mpiexec returns only one)
    rank_cmd = f'"{sys.executable}" -m cosim run default.toml; rc=$?; echo "exit $rc"; exit $rc'
    return [str(MPIEXEC), "-n", n, "sh", "-c", rank_cmd], expected


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec next to the Python interpreter")
@pytest.mark.parametrize("kind", ["bad_key", "output_exists", "impossible_layout"])
@pytest.mark.mpi
def test_mpi_error_printed_once_every_rank_exits_2(tmp_path, kind):
    cmd, expected = _mpi_case(tmp_path, kind)
    env = {k: v for k, v in os.environ.items() if k != "COSIM_DEBUG"}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stdout.split("\n") == ["exit 2"] * int(cmd[2]) + [""], r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(expected), r.stderr
    assert "Traceback" not in r.stderr
    if kind == "output_exists":
        assert (tmp_path / "out.h5").read_bytes() == b"previous results"
    else:
        assert not (tmp_path / "out.h5").exists()
