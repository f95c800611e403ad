"""Scenario validation: every mistake is one line naming file, key and problem, exit 2."""

from __future__ import annotations

import pytest

from cosim.errors import CosimError
from cosim.scenario import load_scenario

from _util import run_cli
from scenarios import neural_mass, scenario_text, simulation

GOOD = scenario_text(simulation(duration=20.0, seed=1, output="out.h5"),
                     engines={"cortex": neural_mass(regions="all", integrator="heun")})


def _mutate(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def test_good_scenario_loads(write_scenario):
    sc = load_scenario(write_scenario(GOOD))
    assert sc.simulation.n_windows == 20
    assert sc.connectome.n_regions == 76
    assert list(sc.engines) == ["cortex"]
    assert sc.engines["cortex"].dt_ms == 0.1


CASES = [
    ("dt = 0.1", "dt = -0.1", "engines.cortex.dt: must be > 0, got -0.1"),
    ("dt = 0.1\n", "dt = 0.3\n[record]\nperiod = 0.9\n", "simulation.sync_interval: 1 ms is not a whole multiple of engines.cortex.dt = 0.3 ms"),
    ("duration = 20.0", "duration = 20.5", "simulation.duration: 20.5 ms is not a whole multiple"),
    ("duration = 20.0", "duration = \"long\"", "simulation.duration: must be a number in ms, got string 'long'"),
    ("duration = 20.0\n", "", "simulation.duration: missing required key"),
    ("seed = 1", "seed = 1.5", "simulation.seed: must be an integer, got number 1.5"),
    ("seed = 1", "sed = 1", "simulation.sed: unknown key; did you mean 'seed'?"),
    ("sync_interval = 1.0", "sync_interval = 0", "simulation.sync_interval: must be > 0, got 0"),
    ("source = \"tvb:connectivity_76\"", "source = \"tvb:connectivity_77\"", "connectome.source: unknown tvb-data connectome"),
    ("source = \"tvb:connectivity_76\"", "source = \"missing.zip\"", "connectome.source: connectome 'missing.zip' not found"),
    ("type = \"neural_mass\"", "type = \"neural_mas\"", "engines.cortex.type: must be one of"),
    ("regions = \"all\"", "regions = [\"rA1\", \"rXYZ\"]", "engines.cortex.regions"),
    ("[simulation]", "[record]\nperiod = 0.25\n[simulation]", "record.period: 0.25 ms is not a whole multiple of"),
    ("[simulation]", "[record.nowhere]\nvariables = []\n[simulation]", "record.nowhere: unknown key"),
    ("[connectome]", "[connectom]", "connectome: missing required key"),
]


@pytest.mark.parametrize("old, new, expected", CASES, ids=[c[2][:40] for c in CASES])
def test_errors_name_file_key_and_problem(write_scenario, old, new, expected):
    path = write_scenario(_mutate(old, new), "whole_brain.toml")
    with pytest.raises(CosimError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert msg.startswith("whole_brain.toml: ")
    assert expected in msg
    assert "\n" not in msg


def test_toml_syntax_error_is_one_line(write_scenario):
    path = write_scenario(GOOD + "\n[engines.cortex\n", "broken.toml")
    with pytest.raises(CosimError, match=r"^broken.toml: invalid TOML: .*line \d+"):
        load_scenario(path)


def test_cli_validate_and_errors(write_scenario, tmp_path):
    good = write_scenario(GOOD, "whole_brain.toml")
    r = run_cli("validate", str(good))
    assert r.returncode == 0, r.stderr
    assert "whole_brain.toml: ok" in r.stdout and "76-region" in r.stdout
    bad = write_scenario(_mutate("dt = 0.1", "dt = -0.1"), "whole_brain.toml")
    for cmd in ("validate", "run"):
        r = run_cli(cmd, str(bad), cwd=tmp_path)
        assert r.returncode == 2
        assert r.stderr.strip() == "whole_brain.toml: engines.cortex.dt: must be > 0, got -0.1"
        assert "Traceback" not in r.stderr and r.stdout == ""
    r = run_cli("validate", str(tmp_path / "absent.toml"))
    assert r.returncode == 2 and r.stderr.strip() == "absent.toml: no such file"
    # a fit description handed to validate / run: named as such, with the command to use
    fit = tmp_path / "my_fit.toml"
    fit.write_text('[fit]\nscenario = "whole_brain.toml"\nbudget = 4\n')
    for cmd in ("validate", "run"):
        r = run_cli(cmd, str(fit), cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.strip() == ("my_fit.toml: fit: a fit description, not a scenario: run "
                                    "it with `cosim fit my_fit.toml` (its base scenario is "
                                    "fit.scenario)"), r.stderr
    assert not (tmp_path / "out.h5").exists()
