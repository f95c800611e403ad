"""A model's dfun with one parameter set compiled in.

The surface engine gives every vertex the same parameters (one value each); the model's
dfun reads them as ``p[i, k]`` from a stride-0 parameter row at every vertex and stage.
:func:`fixed_parameters` rewrites the dfun's syntax tree so that each ``p[i, <literal k>]``
is a global constant ``value_k`` of the new function's module: numba freezes global floats
at compile time, so the loads (and products of constants such as ``d τ``) go away.  The
arithmetic is otherwise the dfun's own, in its order: LLVM folds only exact operations
without fast-math (``1.0 · W → W``, the product of two constants), so the fixed dfun gives
the bits of the row-reading one.

A dfun that reads ``p`` in any other way (a computed column, ``p`` handed to a helper, a
closure, ``i`` reassigned) is left as it is (``None``): those models keep the row path.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import numpy as np

PREFIX = "_cosim_fixed_p"


def fixed_parameters(dfun, row) -> "object | None":
    """``dfun(x, c, p, i, dx)`` (a Python or numba function) with ``p[i, k]`` replaced by
    the constants ``row[k]`` (a plain Python function, for :func:`cosim.integrators._inlined`);
    ``None`` if the dfun cannot be rewritten (see the module docstring)."""
    py = getattr(dfun, "py_func", dfun)
    row = np.asarray(row, dtype=np.float64).ravel()
    code = getattr(py, "__code__", None)
    if code is None or code.co_freevars:
        return None
    try:
        src = textwrap.dedent(inspect.getsource(py))
    except (OSError, TypeError):
        return None
    tree = ast.parse(src)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        return None
    fn = tree.body[0]
    a = fn.args
    if (len(a.args) != 5 or a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs
            or a.defaults):
        return None
    pname, iname = a.args[2].arg, a.args[3].arg
    used: set[int] = set()

    class Fix(ast.NodeTransformer):
        def visit_Subscript(self, node):
            self.generic_visit(node)
            s = node.slice
            if (isinstance(node.value, ast.Name) and node.value.id == pname
                    and isinstance(node.ctx, ast.Load) and isinstance(s, ast.Tuple)
                    and len(s.elts) == 2 and isinstance(s.elts[0], ast.Name)
                    and s.elts[0].id == iname and isinstance(s.elts[1], ast.Constant)
                    and type(s.elts[1].value) is int and 0 <= s.elts[1].value < row.size):
                k = s.elts[1].value
                used.add(k)
                return ast.copy_location(ast.Name(f"{PREFIX}{k}", ast.Load()), node)
            return node

    fn.body = [Fix().visit(st) for st in fn.body]
    for node in ast.walk(ast.Module(body=fn.body, type_ignores=[])):
        if isinstance(node, ast.Name) and (
                node.id == pname or (node.id == iname and not isinstance(node.ctx, ast.Load))):
            return None                          # p read otherwise, or i rebound: row path
        if isinstance(node, (ast.Global, ast.Nonlocal, ast.Lambda, ast.FunctionDef)):
            return None
    fn.decorator_list = []
    fn.name = f"{py.__name__}__fixed"
    mod = ast.Module(body=[fn], type_ignores=[])
    ast.increment_lineno(mod, code.co_firstlineno - 1)
    ast.fix_missing_locations(mod)
    glb = dict(py.__globals__)
    glb.update({f"{PREFIX}{k}": float(row[k]) for k in used})
    exec(compile(mod, code.co_filename, "exec"), glb)
    out = glb[fn.name]
    out.__doc__ = py.__doc__
    return out


def parameter_key(row) -> str:
    """The parameter values exactly (hex floats): part of a fixed kernel's cache key."""
    return ",".join(float(v).hex() for v in np.asarray(row, dtype=np.float64).ravel())
