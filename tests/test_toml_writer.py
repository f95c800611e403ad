"""The TOML writer: what it writes, tomllib reads back as the same data."""

from __future__ import annotations

import ast
import datetime as dt
import math
import textwrap
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.toml_writer import dumps, value

REPO = Path(__file__).resolve().parents[1]


def _scenario_texts():
    """The repo's scenario files and the scenario strings embedded in the tests."""
    texts = [(p.name, p.read_text()) for p in sorted((REPO / "scenarios").glob("*.toml"))]
    for path in sorted((REPO / "tests").glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:   # a file being edited is not this test's business
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and "[simulation]" in node.value:
                text = textwrap.dedent(node.value)
                try:
                    tomllib.loads(text)
                except tomllib.TOMLDecodeError:
                    continue  # templates with {placeholders}
                texts.append((f"{path.name}:{node.lineno}", text))
    return texts


_TEXTS = _scenario_texts()


@pytest.mark.parametrize("text", [t for _, t in _TEXTS], ids=[n for n, _ in _TEXTS])
def test_scenarios_round_trip(text):
    data = tomllib.loads(text)
    assert tomllib.loads(dumps(data)) == data


def _built_scenarios():
    """The documents the tests build (tests/scenarios.py) and the fuzz bases."""
    import scenario_mutations as sm
    import scenarios as b

    built = {"scenario()": b.scenario(), "hybrid()": b.hybrid(checkpoint_every=10.0)}
    return {**built, **{f"fuzz base {k}": v for k, v in sm.bases().items()}}


_BUILT = _built_scenarios()


@pytest.mark.parametrize("name", sorted(_BUILT))
def test_built_scenarios_round_trip(name):
    assert tomllib.loads(dumps(_BUILT[name])) == _BUILT[name]


def test_awkward_values_round_trip():
    data = {
        "plain": "text", "quotes": 'a "b" \\ c', "controls": "tab\tnl\ncr\r\x00\x1f\x7f",
        "unicode": "Δt ≥ 0 ü", "": "empty key", "dotted.key": 1, "space key": True,
        "ints": [0, -1, 2**63 - 1, -(2**63)], "floats": [0.1, 1e-300, 1e300, -2.5, 1.0, 5e-324],
        "inf": [math.inf, -math.inf], "nested": [[1, 2], ["a"], []],
        "inline": [{"a": 1, "b": {"c": [1, 2]}}, {}],
        "when": [dt.date(2024, 1, 2), dt.time(3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5)],
        "table": {"sub": {"deep": {"x": 1}}, "y": "z"}, "empty": {},
    }
    assert tomllib.loads(dumps(data)) == data


def test_nan_and_negative_zero():
    back = tomllib.loads(dumps({"n": math.nan, "z": -0.0}))
    assert math.isnan(back["n"]) and math.copysign(1.0, back["z"]) == -1.0


def test_layout_and_header():
    text = dumps({"simulation": {"duration": 10.0, "seed": 1},
                  "engines": {"cortex": {"type": "neural_mass", "coupling": {"G": 0.5}}}},
                 header="line one\nline two")
    assert text == textwrap.dedent("""\
        # line one
        # line two

        [simulation]
        duration = 10.0
        seed = 1

        [engines.cortex]
        type = "neural_mass"

        [engines.cortex.coupling]
        G = 0.5
        """)


def test_numpy_scalars_and_rejected_types():
    np = pytest.importorskip("numpy")
    assert value(np.float64(0.25)) == "0.25" and value(np.int32(3)) == "3"
    with pytest.raises(TypeError):
        value(object())
    with pytest.raises(TypeError):
        dumps({1: 2})


_keys = st.text(max_size=8)
_scalars = (st.booleans() | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False) | st.text(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_keys, inner, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_random_documents_round_trip(data):
    assert tomllib.loads(dumps(data)) == data
