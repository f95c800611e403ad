"""A safe arithmetic expression over named arrays: ``"y1 - y2"``, ``"sqrt(x**2 + y**2)"``.

The text is parsed with :mod:`ast` and checked before anything runs; only these are
allowed: names of the given variables (and the constants ``pi``, ``e``), numbers,
``+ - * / // % **``, unary ``+ -``, comparisons (``< <= > >= == !=``, giving 1.0 / 0.0),
``a if cond else b`` (:func:`numpy.where`) and calls of the functions in :data:`FUNCTIONS`
(numpy ufuncs) with positional arguments.  Attributes, subscripts, keywords, lambdas,
comprehensions, strings … are refused, so no user code ever runs: evaluation walks the
checked tree and applies numpy functions to arrays (never :func:`eval`).
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Callable, Mapping, Sequence

import numpy as np

#: Functions an expression may call: name → (numpy function, number of arguments).
FUNCTIONS: dict[str, tuple[Callable, int]] = {
    **{n: (getattr(np, n), 1) for n in (
        "abs", "sqrt", "exp", "log", "log10", "log1p", "expm1", "sin", "cos", "tan",
        "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sign", "floor", "ceil")},
    "sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), 1),
    "arctan2": (np.arctan2, 2), "minimum": (np.minimum, 2), "maximum": (np.maximum, 2),
    "min": (np.minimum, 2), "max": (np.maximum, 2), "hypot": (np.hypot, 2),
    "power": (np.power, 2),
}

CONSTANTS = {"pi": math.pi, "e": math.e}

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}


class ExpressionError(ValueError):
    """An expression that is not allowed; ``name`` is the unknown name, if that is why."""

    def __init__(self, reason: str, name: str | None = None):
        super().__init__(reason)
        self.name = name


class Expression:
    """A checked expression over ``variables``; ``expr(values)`` evaluates it, ``values``
    mapping each name it uses to an array (all broadcastable together)."""

    def __init__(self, text: str, variables: Sequence[str]):
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError("must be a non-empty expression such as \"y1 - y2\"")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"invalid expression {text!r} ({exc.msg})") from None
        self.text = text.strip()
        self._variables = tuple(variables)
        self.names: list[str] = []             # the variables it reads, in first-use order
        self._check(tree.body)
        self._tree = tree.body

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ExpressionError(f"{self.text!r}: only numbers are allowed as constants, "
                                      f"got {node.value!r}")
        elif isinstance(node, ast.Name):
            if node.id in self._variables:
                if node.id not in self.names:
                    self.names.append(node.id)
            elif node.id not in CONSTANTS:
                raise ExpressionError(
                    f"unknown name {node.id!r} in {self.text!r} (variables: "
                    f"{', '.join(self._variables)}; constants: pi, e)", name=node.id)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand)
        elif isinstance(node, ast.Compare) and all(type(o) in _COMPARE for o in node.ops):
            for n in [node.left, *node.comparators]:
                self._check(n)
        elif isinstance(node, ast.IfExp):
            for n in (node.test, node.body, node.orelse):
                self._check(n)
        elif isinstance(node, ast.Call):
            fname = node.func.id if isinstance(node.func, ast.Name) else None
            if fname not in FUNCTIONS:
                shown = fname or ast.unparse(node.func)
                raise ExpressionError(f"unknown function {shown!r} in {self.text!r} (allowed: "
                                      f"{', '.join(sorted(FUNCTIONS))})", name=shown)
            if node.keywords or len(node.args) != FUNCTIONS[fname][1]:
                raise ExpressionError(f"{fname}() takes {FUNCTIONS[fname][1]} positional "
                                      f"argument(s) in {self.text!r}")
            for a in node.args:
                if isinstance(a, ast.Starred):
                    raise ExpressionError(f"{self.text!r}: *arguments are not allowed")
                self._check(a)
        else:
            raise ExpressionError(f"{self.text!r}: {type(node).__name__} is not allowed "
                                  "(only names, numbers, arithmetic, comparisons and "
                                  "functions)")

    def __call__(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(self._eval(self._tree, values), dtype=np.float64)

    def _eval(self, node, values):
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id] if node.id in self._variables else CONSTANTS[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, values),
                                          self._eval(node.right, values))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, values))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            result = None
            for op, right_node in zip(node.ops, node.comparators):
                right = self._eval(right_node, values)
                r = _COMPARE[type(op)](left, right)
                result = r if result is None else np.logical_and(result, r)
                left = right
            return np.asarray(result, dtype=np.float64)
        if isinstance(node, ast.IfExp):
            return np.where(np.asarray(self._eval(node.test, values)) != 0,
                            self._eval(node.body, values), self._eval(node.orelse, values))
        fn = FUNCTIONS[node.func.id][0]
        return fn(*(self._eval(a, values) for a in node.args))
