"""tests/scenarios.py: the builders give the documents they say, and scenarios cosim accepts."""

from __future__ import annotations

import tomllib

from cosim.scenario import load_scenario
from scenarios import (TVB76, ball_and_stick, hybrid, neural_mass, record, scenario,
                       scenario_text, simulation, write)


def test_none_leaves_a_key_out_and_extra_keys_are_kept_in_order():
    assert simulation(duration=4.0, sync=None) == {"duration": 4.0}
    assert neural_mass(dt=None) == {"type": "neural_mass", "model": "jansen_rit"}
    assert list(neural_mass("linear", regions="rest", integrator="rk4", initial={"x": 1.0})) == [
        "type", "model", "regions", "dt", "integrator", "initial"]
    assert record(cortex={"variables": ["y1"]}) == {"cortex": {"variables": ["y1"]}}
    assert ball_and_stick(4, 2, mechanisms=None) == {"n": 4, "morphology": "ball_and_stick",
                                                     "nseg": 2}


def test_builders_return_fresh_dicts():
    a, b = ball_and_stick(4, 2), ball_and_stick(4, 2)
    a["mechanisms"]["soma"]["hh"]["gnabar"] = 0.2
    assert b["mechanisms"]["soma"]["hh"] == {} and hybrid() == hybrid()


def test_scenario_text_reads_back_as_the_dict():
    sc = scenario(simulation(seed=3, output="o.h5"), record=record(0.5))
    assert tomllib.loads(scenario_text(simulation(seed=3, output="o.h5"), record=record(0.5))) == sc
    assert sc["connectome"] == {"source": TVB76} and list(sc["engines"]) == ["cortex"]


def test_the_default_and_the_hybrid_scenario_load(tmp_path):
    one = load_scenario(write(tmp_path / "one.toml", scenario()))
    assert list(one.engines) == ["cortex"] and one.simulation.n_windows == 20
    two = load_scenario(write(tmp_path / "hybrid.toml", hybrid(duration=4.0)))
    assert list(two.engines) == ["cortex", "v1"] and sorted(two.adapters) == ["in_exc", "in_inh", "out"]
