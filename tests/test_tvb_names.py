"""For TVB users: the name table (docs/tvb.md) is fresh, TVB spellings in a scenario give
one line naming cosim's name, and TVB parameter values convert (``cosim.tvb``)."""

from __future__ import annotations

import pytest

from cosim import tvb
from cosim.errors import CosimError
from cosim.scenario import load_scenario
from scenarios import neural_mass, scenario, simulation

from _util import REPO


def test_docs_tvb_md_is_up_to_date():
    """Regenerate with: python -m cosim.tvb --markdown > docs/tvb.md"""
    assert (REPO / "docs" / "tvb.md").read_text(encoding="utf-8") == tvb.markdown(), (
        "docs/tvb.md is stale: python -m cosim.tvb --markdown > docs/tvb.md")


def test_table_covers_every_declared_tvb_name():
    md = tvb.markdown()
    for cls, name in {**tvb.MODEL_CLASSES, **tvb.COUPLING_CLASSES, **tvb.INTEGRATORS}.items():
        assert f"`{cls}` | `{name}`" in md
    assert "sqrt(2 nsig)" in md and 'coupling_evaluation = "step"' in md
    assert tvb.MODEL_CLASSES["Epileptor"] == "epileptor"
    assert tvb.COUPLING_CLASSES["SigmoidalJansenRit"] == "sigmoidal_jansen_rit"


def _load(write_scenario, **engine):
    model = engine.pop("model", "wilson_cowan")
    path = write_scenario(scenario(simulation(duration=1.0), engines={"cortex": neural_mass(model, **engine)}),
                          "s.toml")
    with pytest.raises(CosimError) as e:
        load_scenario(path)
    return str(e.value)


@pytest.mark.parametrize("engine, message", [
    (dict(parameters={"c_ee": 12.0}),
     "s.toml: engines.cortex.parameters.c_ee: unknown parameter of wilson_cowan; "
     "did you mean 'w_ee' (TVB: c_ee)?"),
    (dict(model="generic_2d_oscillator", parameters={"c": 0.1}),
     "did you mean 'c2' (TVB: c)?"),
    (dict(model="reduced_wong_wang_exc_inh", parameters={"G": 2.0}),
     "the global coupling is the coupling's G here"),
    (dict(coupling={"type": "linear", "a": 0.1}),
     "s.toml: engines.cortex.coupling.a: unknown parameter of coupling linear; "
     "did you mean 'G' (TVB: a)?"),
    (dict(coupling={"type": "linear", "b": 0.1}), "did you mean 'offset' (TVB: b)?"),
    (dict(model="Epileptor"),
     "s.toml: engines.cortex.model: unknown model 'Epileptor'; did you mean 'epileptor' "
     "(TVB: Epileptor)?"),
    (dict(coupling={"type": "SigmoidalJansenRit"}, model="jansen_rit"),
     "did you mean 'sigmoidal_jansen_rit' (TVB: SigmoidalJansenRit)?"),
    (dict(integrator="HeunStochastic"), "did you mean 'stochastic_heun' (TVB: HeunStochastic)?"),
    (dict(integrator="euler_maruyama", noise={"nsig": 0.01}),
     "TVB's nsig = D is sigma = sqrt(2 D)"),
])
def test_tvb_spelling_is_one_line_naming_cosims(write_scenario, engine, message):
    err = _load(write_scenario, **engine)
    assert message in err and "\n" not in err


def test_from_tvb_renames_and_drops():
    assert tvb.from_tvb("Generic2dOscillator", {"c": 0.5, "a": -1.0}) == {"c2": 0.5, "a": -1.0}
    assert tvb.from_tvb("ReducedWongWangExcInh", {"G": 2.0, "J_i": 0.9}) == {"J_i": 0.9}
    with pytest.raises(KeyError):
        tvb.from_tvb("Epileptor", {"nonsense": 1.0})


def test_wilson_cowan_from_tvb_defaults():
    """TVB's default WilsonCowan in cosim's parameters (checked against TVB's runs in
    test_neural_mass_tvb_models.py)."""
    p = tvb.wilson_cowan_from_tvb()
    assert p["w_ee"] == 12.0 and p["w_ei"] == 4.0 and p["w_ie"] == 13.0 and p["w_ii"] == 11.0
    assert p["theta_e"] == 2.8 and p["sigma_e"] == pytest.approx(1 / 1.2)
    assert p["theta_i"] == 4.0 and p["sigma_i"] == 1.0 and p["shift_sigmoid"] == 1.0
    assert p["P_e"] == 0.0 and p["tau_e"] == 10.0
    q = tvb.wilson_cowan_from_tvb({"alpha_e": 2.0, "theta_e": 0.5, "P": 1.5})
    assert q["theta_e"] == 1.4 and q["sigma_e"] == pytest.approx(1 / 2.4) and q["P_e"] == 1.0
