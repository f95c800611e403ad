"""Scenario mistakes the fuzz tests found, one case each: exit code 2 and one line naming
file and key (before the fixes: a NameError, a MemoryError, a silently truncated cell
index, an accepted zero time constant, a message without key)."""

from __future__ import annotations

import contextlib
import io

import pytest

import scenario_mutations as sm
from cosim.cli import main

M = sm.Mutation
BASES = sm.bases()

CASES = [
    # NameError (exit 1) when a mechanisms selector or `detect` names no section
    ("default", M("rename", ("engines", "v1", "cells", "exc", "mechanisms", "dend"), "dned"),
     "engines.v1.cells.exc.mechanisms.dned: no section named or of kind 'dned'"),
    ("mc_swc", M("name", ("engines", "cells", "cells", "pyr", "detect"), "soma[9]"),
     "engines.cells.cells.pyr.detect: no section named 'soma[9]'"),
    # accepted: a zero time constant divides later, a negative Mg concentration
    ("mc_swc", M("range", ("engines", "cells", "receptors", "NMDA", "tau_decay"), 0),
     "engines.cells.receptors.NMDA.tau_decay: must be > 0, got 0"),
    ("mc_swc", M("range", ("engines", "cells", "receptors", "NMDA", "mg"), -1.0),
     "engines.cells.receptors.NMDA.mg: must be >= 0, got -1"),
    # cell index 0.5 silently became cell 0
    ("mc_swc", M("range", ("engines", "cells", "clamps", "kick", "cells", 1), 1.0),
     "engines.cells.clamps.kick.cells: must be an array of integers >= 0, got [0, 1.0]"),
    ("mc_swc", M("range", ("engines", "cells", "probes", "cells", 0), 0.5),
     "engines.cells.probes.cells: must be an array of integers >= 0, got [0.5, 1]"),
    # MemoryError / OverflowError (exit 1) while validating
    ("default", M("range", ("engines", "v1", "cells", "exc", "n"), 10 ** 9),
     "engines.v1.cells.exc.n: must be <= 10000000, got 1000000000"),
    ("default", M("range", ("engines", "v1", "inputs", "bg_exc", "per_cell"), 10 ** 9),
     "engines.v1.inputs.bg_exc.per_cell: 240000000000 input lines"),
    ("mc_swc", M("range", ("engines", "cells", "cells", "bas", "nseg"), 10 ** 12),
     "engines.cells.cells.bas.nseg: must be <= 32767"),
    ("mc_swc", M("range", ("engines", "cells", "cells", "pyr", "d_lambda"), 1e-9),
     "engines.cells.cells.pyr.d_lambda: 1e-09 gives section"),
    ("whole_brain_jr", M("range", ("engines", "cortex", "dt"), 1e-5),
     "engines.cortex.dt: the longest delay, 46.1514 ms (at 3 mm/ms), is 4.62e+06 steps of dt = "
     "1e-05 ms: its history would need 15.7 GiB"),
    ("whole_brain_jr", M("range", ("engines", "cortex", "speed"), 1e-300),    # int64 overflow
     "engines.cortex.dt: the longest delay, 1.38454e+302 ms (at 1e-300 mm/ms)"),
    # physically impossible values
    ("mc_swc", M("range", ("engines", "cells", "cells", "pyr", "mechanisms", "soma", "hh", "gnabar"), -0.1),
     "engines.cells.cells.pyr.mechanisms.soma.hh.gnabar: must be >= 0, got -0.1"),
    ("mc_swc", M("range", ("engines", "cells", "celsius"), -300.0),
     "engines.cells.celsius: must be > -273.15, got -300"),
    ("mc_swc", M("range", ("engines", "cells", "celsius"), 7000.0),     # OverflowError in q10
     "engines.cells.celsius: must be <= 100, got 7000"),
    # messages that named no key, or the wrong one
    ("mc_swc", M("name", ("record", "cells", "variables", 1), "V"),
     "record.cells.variables: engine 'cells' records 'spikes' and 'v', not 'V'"),
    ("mc_swc", M("range", ("record", "period"), 0.03),
     "record.period: 0.03 ms is not a whole multiple of engines.cells.dt = 0.025 ms"),
    ("mc_swc", M("name", ("engines", "cells", "projections", "pp", "target"), "pyrX"),
     "engines.cells.projections.pp.target: projection 'pp': unknown cell population 'pyrX'"),
    ("default", M("name", ("engines", "cortex", "regions"), "all"),
     "engines.v1.region: region 'rV1' is already simulated by engine 'cortex'"),
    ("mc_swc", M("name", ("engines", "cells", "cells", "pyr", "morphology"), "cel.swc"),
     "engines.cells.cells.pyr.morphology: SWC file 'cel.swc' not found"),
    ("jr_split", M("range", ("record", "left", "eeg", "sensors"), ["Fz", "Cz"]),   # was "unknown key"
     "record.left.eeg.sensors: names the rows of a lead field: add leadfield = "),
    # a misspelt required key: say which key looks like it
    ("whole_brain_jr", M("rename", ("simulation", "duration"), "durration"),
     "simulation.duration: missing required key; found 'durration', a misspelling?"),
]


@pytest.mark.parametrize("base, mutation, expected", CASES, ids=[c[2][:50] for c in CASES])
def test_found_by_fuzzing(tmp_path, base, mutation, expected):
    sm.write_data_files(tmp_path)
    path = tmp_path / f"{base}.toml"
    path.write_bytes(sm.scenario_bytes(mutation, BASES[base]))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["validate", str(path)])
    assert rc == 2, err.getvalue()
    assert err.getvalue().count("\n") == 1
    assert err.getvalue().startswith(f"{base}.toml: {expected}"), err.getvalue()


def test_absurd_speed_between_spiking_regions(tmp_path):
    """Two spiking regions on the bus, speed 1e-300 mm/ms: the delays overflowed int64 (a
    RuntimeWarning, then a negative delay in the message); now one line at connectome.speed."""
    sm.write_data_files(tmp_path)
    data = BASES["mc_swc"]
    data = {**data, "connectome": {**data["connectome"], "speed": 1e-300},
            "engines": {"cells": {**data["engines"]["cells"], "region": "p"},
                        "b": {"type": "multicompartment", "region": "q", "cells": {"x": {"n": 2}}}}}
    path = tmp_path / "two.toml"
    path.write_text(sm.dumps(data))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["validate", str(path)])
    assert rc == 2
    assert err.getvalue().startswith("two.toml: connectome.speed: the longest tract, 20 mm, takes "
                                     "4e+301 steps of 0.5 ms at 1e-300 mm/ms"), err.getvalue()
    assert err.getvalue().count("\n") == 1


@pytest.mark.parametrize("value", ["[" * 10000 + "]" * 10000,
                                   "{a = " * 10000 + "1" + "}" * 10000], ids=["array", "table"])
def test_deeply_nested_toml_is_one_line_not_a_recursion_error(tmp_path, value):
    """`x = [[[[…]]]]` 10 000 deep: `internal error: RecursionError` (exit 1) before; now exit 2
    and one line naming the file, in process and through the real command line."""
    from _util import run_cli

    path = tmp_path / "deep.toml"
    path.write_text(f"x = {value}\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["validate", str(path)])
    assert rc == 2, err.getvalue()
    assert err.getvalue().count("\n") == 1
    assert err.getvalue().startswith("deep.toml: invalid TOML: nested more than"), err.getvalue()
    r = run_cli("run", str(path), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("deep.toml: invalid TOML: nested more than")
