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

With ``flat=(NS, NC)`` the state, input and derivative arrays are also read as flat
arrays: ``x[i, k]`` → ``x[i · NS + k]`` (``c``: ``NC``, ``dx``: ``NS``).  numba indexes a
2-D array with its run-time row stride, a flat one with a compile-time one, and LLVM
vectorises a loop over ``i`` of the flat dfun across vertices (interleaved loads and
stores) — where the dfun is arithmetic only: a dfun that calls anything but
:data:`VECTOR_CALLS` (``exp``, ``tanh``: a scalar libm call per vertex without a vector
math library) or uses ``x``, ``c``, ``dx`` other than as ``name[i, k]`` gives ``None``.
The same operations in the same order: the same bits.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import numpy as np

PREFIX = "_cosim_fixed_p"
#: the calls a flat dfun may make (each a select or one instruction per lane)
VECTOR_CALLS = frozenset({"abs", "min", "max"})
#: the flat dfun's row strides (module constants of the rewritten function)
STRIDES = ("_cosim_flat_ns", "_cosim_flat_nc")


def fixed_parameters(dfun, row, flat: tuple[int, int] | None = None) -> "object | None":
    """``dfun(x, c, p, i, dx)`` (a Python or numba function) with ``p[i, k]`` replaced by
    the constants ``row[k]`` (a plain Python function, for :func:`cosim.integrators._inlined`);
    ``flat=(NS, NC)``: also ``x``, ``c``, ``dx`` indexed as flat arrays of those row lengths;
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
    xname, cname, pname, iname, dxname = (v.arg for v in a.args)
    used: set[int] = set()
    stride = {xname: STRIDES[0], dxname: STRIDES[0], cname: STRIDES[1]} if flat else {}
    flattened: set[int] = set()          # id() of the array names of rewritten subscripts

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
            if (isinstance(node.value, ast.Name) and node.value.id in stride
                    and isinstance(s, ast.Tuple) and len(s.elts) == 2
                    and isinstance(s.elts[0], ast.Name) and s.elts[0].id == iname):
                flattened.add(id(node.value))
                row_start = ast.BinOp(s.elts[0], ast.Mult(),
                                      ast.Name(stride[node.value.id], ast.Load()))
                node.slice = ast.BinOp(row_start, ast.Add(), s.elts[1])
            return node

    fn.body = [Fix().visit(st) for st in fn.body]
    for node in ast.walk(ast.Module(body=fn.body, type_ignores=[])):
        if isinstance(node, ast.Name) and (
                node.id == pname or (node.id == iname and not isinstance(node.ctx, ast.Load))):
            return None                          # p read otherwise, or i rebound: row path
        if isinstance(node, (ast.Global, ast.Nonlocal, ast.Lambda, ast.FunctionDef)):
            return None
        if flat and isinstance(node, ast.Name) and node.id in stride and id(node) not in flattened:
            return None                          # x, c or dx used otherwise: not flat
        if flat and isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in VECTOR_CALLS):
            return None                          # a call per vertex: no vectorised loop
    fn.decorator_list = []
    fn.name = f"{py.__name__}__fixed" + ("_flat" if flat else "")
    mod = ast.Module(body=[fn], type_ignores=[])
    ast.increment_lineno(mod, code.co_firstlineno - 1)
    ast.fix_missing_locations(mod)
    glb = dict(py.__globals__)
    glb.update({f"{PREFIX}{k}": float(row[k]) for k in used})
    if flat:
        glb.update({STRIDES[0]: int(flat[0]), STRIDES[1]: int(flat[1])})
    exec(compile(mod, code.co_filename, "exec"), glb)
    out = glb[fn.name]
    out.__doc__ = py.__doc__
    return out


def parameter_key(row) -> str:
    """The parameter values exactly (hex floats): part of a fixed kernel's cache key."""
    return ",".join(float(v).hex() for v in np.asarray(row, dtype=np.float64).ravel())
