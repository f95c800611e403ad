"""``cosim describe`` / ``cosim models`` print the declarations; docs/scenario.md is fresh."""

import pytest

from cosim import describe as d
from cosim.cli import main
from cosim.params import show_value

from _util import REPO


def _every_named():
    for kind, lookup in d.KINDS.items():
        if lookup is None:
            yield kind, None
        else:
            for name in lookup():
                yield kind, name


def _declarations(kind, name):
    """The parameters a `describe kind name` must show."""
    if kind in ("simulation", "connectome", "record"):
        return list(d._framework(kind).params)
    obj = d.KINDS[kind]()[name]
    if kind == "model":
        return list(obj.parameters) + [p for o in obj.observables.values() for p in o.parameters]
    if kind == "coupling":
        return list(obj.parameters)
    sec = obj() if callable(obj) else obj
    return [p for s in sec.walk() for p in s.params]


@pytest.mark.parametrize("kind, name", list(_every_named()))
def test_describe_shows_every_parameter_unit_and_default(kind, name):
    text = d.describe(kind, name)
    params = _declarations(kind, name)
    assert params or kind == "record"
    for p in params:
        line = next((ln for ln in text.splitlines() if ln.split()[:1] == [p.name]
                     and p.doc in ln), None)
        assert line is not None, f"{kind} {name}: {p.name} missing"
        assert p.unit in line
        assert (show_value(p.default) if not (p.required or p.default is None)
                else p.default_text()) in line


def test_describe_model_shows_states_options_and_observables():
    text = d.describe("model", "jansen_rit")
    for v in ("y0", "y5", "mV/ms", "observables", "rate", "eeg", "y1 - y2", "sigmoidal_jansen_rit"):
        assert v in text
    assert "transfer" in d.describe("model", "wilson_cowan")


def test_cli_describe_and_models(capsys):
    assert main(["describe", "engine", "multicompartment"]) == 0
    out = capsys.readouterr().out
    for key in ("dt", "celsius", "v_init", "spike_threshold", "cells.<group>", "receptors",
                "projections", "inputs", "clamps", "probes", "°C"):
        assert key in out
    assert main(["describe", "simulation"]) == 0
    assert "<= 1e+09" in capsys.readouterr().out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    from cosim.models import MODELS
    assert all(m in out for m in MODELS)


@pytest.mark.parametrize("argv, word, known", [
    (["describe", "modle"], "'model'", "adapter"),
    (["describe", "model", "jansen"], "'jansen_rit'", "wilson_cowan"),
    (["describe", "monitor", "boldd"], "'bold'", "subsample"),
    (["describe", "engine", "arbor"], "", "multicompartment"),
])
def test_unknown_kind_or_name_is_one_line_exit_2(capsys, argv, word, known):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and word in err and known in err


def test_docs_scenario_md_is_up_to_date():
    """Regenerate with: python -m cosim.describe --markdown > docs/scenario.md"""
    path = REPO / "docs" / "scenario.md"
    assert path.read_text(encoding="utf-8") == d.markdown(), (
        "docs/scenario.md is stale: python -m cosim.describe --markdown > docs/scenario.md")


def test_markdown_has_every_section():
    md = d.markdown()
    for kind, name in _every_named():
        for p in _declarations(kind, name):
            assert f"`{p.name}`" in md
    for head in ("`[simulation]`", "Engine `neural_mass`", "Engine `multicompartment`",
                 "`[record.<engine>.bold]`", "Adapter `rate_to_poisson`", "Model `jansen_rit`",
                 "Coupling `sigmoidal_jansen_rit`", "`[adapters.<name>.map]`"):
        assert head in md


def test_cli_markdown_is_the_reference(capsys):
    assert main(["describe", "--markdown"]) == 0
    assert capsys.readouterr().out == d.markdown()
    assert d.main(["--markdown"]) == 0
    assert capsys.readouterr().out == d.markdown()
