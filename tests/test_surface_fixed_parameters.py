"""The surface kernels with the model's parameters compiled in (cosim.fields.specialise):
the rewritten dfun of every model computes the row-reading dfun's numbers (each p[i, k]
replaced by the right value), dfuns that read p otherwise keep the row path, and the
surface window with parameters, bounds and columns compiled in gives the bits of a split
part's per-step path reading them from arrays."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.connectome import load_connectome
from cosim.engines.neural_surface import NeuralSurfaceEngine
from cosim.fields.specialise import fixed_parameters, parameter_key
from cosim.models import MODELS


def _call(fn, x, c, p, i, dx):
    try:
        fn(x, c, p, i, dx)
    except (ArithmeticError, ValueError) as exc:
        return type(exc)
    return dx.copy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fixed_dfun_equals_row_dfun(name):
    """Python-level: distinct values in every parameter column, so a wrong column shows."""
    model = MODELS[name]
    rng = np.random.default_rng(len(name))
    row = model.default_parameters() * (1.0 + 0.1 * rng.random(len(model.parameters)))
    row = row + 0.01 * (row == 0)
    n, ns = 3, model.n_state
    lo = np.array([v.range[0] for v in model.state_variables])
    hi = np.array([v.range[1] for v in model.state_variables])
    for opts, dfun in model.dfuns.items():
        fixed = fixed_parameters(dfun, row)
        if fixed is None:
            continue
        x = lo + (hi - lo) * rng.random((n, ns))
        c = rng.standard_normal((n, 8))
        p = np.broadcast_to(row, (n, row.size))
        for i in range(n):
            a = _call(dfun.py_func, x, c, p, i, np.zeros((n, ns)))
            b = _call(fixed, x, c, np.full((n, row.size), np.nan), i, np.zeros((n, ns)))
            if isinstance(a, type):
                assert a is b, (name, opts)
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{name} {opts}")


def test_which_models_compile_their_parameters():
    rewritten = {name for name, m in MODELS.items()
                 if fixed_parameters(m.dfun(next(iter(m.dfuns))), m.default_parameters())}
    assert {"generic_2d_oscillator", "jansen_rit", "linear"} <= rewritten


def _helper(p, i):
    return p[i, 0]


def _reads_p_through_helper(x, c, p, i, dx):
    dx[i, 0] = _helper(p, i)


def _computed_column(x, c, p, i, dx):
    k = 1
    dx[i, 0] = p[i, k]


def _rebinds_i(x, c, p, i, dx):
    dx[i, 0] = p[i, 0]
    i = 0
    dx[i, 1] = p[i, 1]


def _reads_row(x, c, p, i, dx):
    dx[i, 0] = p[i, 0] * x[i, 0] + p[i, 1]


def test_other_reads_of_p_keep_the_row_path():
    row = np.array([2.0, -3.5])
    for f in (_reads_p_through_helper, _computed_column, _rebinds_i):
        assert fixed_parameters(f, row) is None, f.__name__
    g = fixed_parameters(_reads_row, row)
    dx = np.zeros((1, 1))
    g(np.array([[1.5]]), None, None, 0, dx)
    assert dx[0, 0] == 2.0 * 1.5 - 3.5
    assert parameter_key([0.1, -2.0]) == f"{(0.1).hex()},{(-2.0).hex()}"


@pytest.mark.parametrize("integrator", ["heun", "euler"])
def test_compiled_window_gives_the_row_reading_split_path_bits(integrator, monkeypatch):
    """The one-part window kernel — non-default parameters, state bounds that bind, the
    local variable and coupling columns all compiled in — against the per-step path of a
    split part reading the parameter row and the bounds from arrays (the engine given an
    identity exchange steps as one part of one through that path: _derivs, euler_update,
    heun_update)."""
    from cosim.models.base import Model
    lo, hi = np.array([-1.0, -np.inf]), np.array([1.5, np.inf])
    monkeypatch.setattr(Model, "bounds", lambda self: (lo.copy(), hi.copy()))
    out = []
    for split in (False, True):
        eng = NeuralSurfaceEngine(
            "cortex", "generic_2d_oscillator", load_connectome("tvb:connectivity_76"),
            coupling="linear", coupling_parameters={"G": 0.05}, local_coupling_strength=0.02,
            random_initial=True, seed=7, record_period_ms=0.5, integrator=integrator,
            parameters={"a": -1.7, "tau": 1.3, "gamma": 0.8, "e": 2.9, "d": 0.025})
        eng.compile_parameters = not split
        eng.build()
        if split:
            eng._exchange = lambda ids, values: (ids, values)
        rec = [eng.advance(0.0, 0.1).records["regions"]]
        first = eng.vertex_state()
        rec += [eng.advance(t0, t1).records["regions"] for t0, t1 in ((0.1, 1.0), (1.0, 2.0))]
        out.append((np.concatenate(rec), first, eng.vertex_state()))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    V = out[0][1][:, 0]
    assert V.min() == -1.0 and V.max() == 1.5            # the bounds bound at the first step
    assert np.ptp(out[0][0][:, 0]) > 0                   # the state moved


def test_compile_parameters_is_a_scenario_key(tmp_path, capsys):
    """``compile_parameters`` (declared, default true) reaches the engine; false keeps the
    parameter row (one kernel for every parameter set); a non-boolean is a one-line error."""
    from cosim.cli import main
    from cosim.scenario import load_scenario
    from test_neural_surface import _short
    a = _short(tmp_path)
    text = a.read_text()
    assert 'geometry = "surface"\n' in text
    b, c = tmp_path / "row.toml", tmp_path / "bad.toml"
    b.write_text(text.replace('geometry = "surface"\n',
                              'geometry = "surface"\ncompile_parameters = false\n'))
    c.write_text(text.replace('geometry = "surface"\n',
                              'geometry = "surface"\ncompile_parameters = 3\n'))
    ea, eb = (load_scenario(p).engines["cortex"] for p in (a, b))
    assert ea.compile_parameters and np.array_equal(ea._fixed(), ea.param_row)
    assert not eb.compile_parameters and eb._fixed() is None
    assert main(["validate", str(c)]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("bad.toml: engines.cortex.compile_parameters: ")


@pytest.mark.mpi
def test_bad_compile_parameters_under_mpiexec_is_one_line_every_rank_exits_2(tmp_path):
    """The same bad value under ``mpiexec -n 3``: every rank validates and exits 2, rank 0
    alone prints the one line, nothing is written."""
    import os
    import subprocess
    import sys

    from cosim.launch import find_mpiexec
    from test_neural_surface import _short
    text = _short(tmp_path).read_text()
    (tmp_path / "bad.toml").write_text(
        text.replace('geometry = "surface"\n', 'geometry = "surface"\ncompile_parameters = "yes"\n'))
    rank_cmd = f'"{sys.executable}" -m cosim run bad.toml -o out.h5; rc=$?; echo "exit $rc"; exit $rc'
    env = {k: v for k, v in os.environ.items() if k != "COSIM_DEBUG"}
    r = subprocess.run([find_mpiexec(), "-n", "3", "sh", "-c", rank_cmd], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stdout.split("\n") == ["exit 2"] * 3 + [""], r.stdout + r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("bad.toml: engines.cortex.compile_parameters: "), r.stderr
    assert not (tmp_path / "out.h5").exists()


def _flat_call(fn, x, c, i, dx):
    """``fn`` (a flat dfun) on the flat views of the 2-D arrays."""
    try:
        fn(x.reshape(-1), c.reshape(-1), None, i, dx.reshape(-1))
    except (ArithmeticError, ValueError) as exc:
        return type(exc)
    return dx.copy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_flat_dfun_equals_row_dfun(name):
    """The flat rewrite (``x[i, k]`` → ``x[i·NS + k]``, the parameters compiled in) of every
    model that has one gives the 2-D row-reading dfun's numbers at every node."""
    model = MODELS[name]
    rng = np.random.default_rng(7 + len(name))
    row = model.default_parameters() * (1.0 + 0.1 * rng.random(len(model.parameters)))
    row = row + 0.01 * (row == 0)
    n, ns, nc = 4, model.n_state, 3
    lo = np.array([v.range[0] for v in model.state_variables])
    hi = np.array([v.range[1] for v in model.state_variables])
    for opts, dfun in model.dfuns.items():
        flat = fixed_parameters(dfun, row, flat=(ns, nc))
        if flat is None:
            continue
        x = lo + (hi - lo) * rng.random((n, ns))
        c = rng.standard_normal((n, nc))
        p = np.broadcast_to(row, (n, row.size))
        for i in range(n):
            a = _call(dfun.py_func, x, c, p, i, np.zeros((n, ns)))
            b = _flat_call(flat, x, c, i, np.zeros((n, ns)))
            if isinstance(a, type):
                assert a is b, (name, opts)
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{name} {opts}")


def _calls_exp(x, c, p, i, dx):
    dx[i, 0] = np.exp(x[i, 0]) * p[i, 0]


def _passes_x_on(x, c, p, i, dx):
    dx[i, 0] = _first(x, i)


def _first(x, i):
    return x[i, 0]


def _whole_row(x, c, p, i, dx):
    dx[i] = x[i] * p[i, 0]


def _arithmetic(x, c, p, i, dx):
    V = x[i, 0]
    dx[i, 0] = p[i, 0] * V - max(V, 0.5) * abs(c[i, 1])
    dx[i, 1] = -x[i, 1]


def test_only_arithmetic_dfuns_are_flat():
    """A call per node (no vectorised loop), an array handed on or indexed otherwise: no
    flat dfun (the window keeps its fused pass); abs/min/max are kept."""
    row = np.array([2.0])
    for f in (_calls_exp, _passes_x_on, _whole_row):
        assert fixed_parameters(f, row, flat=(2, 2)) is None, f.__name__
    g = fixed_parameters(_arithmetic, row, flat=(2, 3))
    x, c, dx = np.array([0.25, -1.0, 3.0, 4.0]), np.array([0, -3.0, 0, 0, 7.0, 0]), np.zeros(4)
    g(x, c, None, 1, dx)
    assert dx[2] == 2.0 * 3.0 - 3.0 * 7.0 and dx[3] == -4.0
    assert dx[0] == dx[1] == 0.0
    assert {m for m in ("generic_2d_oscillator", "linear", "jansen_rit")
            if fixed_parameters(MODELS[m].dfun(next(iter(MODELS[m].dfuns))),
                                MODELS[m].default_parameters(), flat=(MODELS[m].n_state, 1))
            } == {"generic_2d_oscillator", "linear"}         # jansen_rit's sigmoid calls exp


def test_the_one_part_window_is_the_flat_one_where_the_dfun_allows():
    """So the window tests above run the flat window (generic_2d_oscillator), and the fused
    one for a dfun with calls (jansen_rit)."""
    for model, coupling, window in (("generic_2d_oscillator", "linear", "window_flat__"),
                                    ("jansen_rit", "sigmoidal_jansen_rit", "window__")):
        eng = NeuralSurfaceEngine("cortex", model, load_connectome("tvb:connectivity_76"),
                                  coupling=coupling, local_coupling_strength=0.02,
                                  random_initial=True, seed=1)
        eng.build()
        assert eng._window.py_func.__name__.startswith(window), model
