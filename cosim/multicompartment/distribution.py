"""Densities that vary along the cell: a parameter given as an expression of ``d``.

``d`` is the path distance (µm) along the tree from the centre of the root section
(the soma, ``soma(0.5)``) to the centre of each segment — NEURON's
``h.distance(soma(0.5), seg)``.  The expression uses NMODL's syntax (:mod:`.nmodl`):
numbers, ``d``, ``+ - * / ^``, comparisons (true = 1), and ``exp log log10 sqrt pow fabs
… fmin fmax``, e.g. ``"0.0002 * (-0.8696 + 2.087 * exp(d / 323))"`` (Ih of Hay et al.
2011), ``"1e-4 * (d > 300)"`` (a step) or ``"fmax(0, 1e-3 - 1e-6 * d)"`` (linear).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CosimError
from .nmodl import MATH_FUNCTIONS, NmodlError, Parser

_NP = {"exp": np.exp, "log": np.log, "log10": np.log10, "sqrt": np.sqrt, "pow": np.power,
       "fabs": np.abs, "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": np.tanh,
       "atan": np.arctan, "floor": np.floor, "ceil": np.ceil, "fmin": np.minimum,
       "fmax": np.maximum}
_OPS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
        "<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal,
        "==": np.equal, "!=": np.not_equal, "and": np.logical_and, "or": np.logical_or}


def parse(text: str):
    """The syntax tree of a distribution expression (``CosimError`` naming the problem)."""
    try:
        p = Parser(text, "")
        tree = p.expression()
        if p.tok.kind != "eof":
            raise CosimError(f"unexpected {p.tok.text!r}")
    except NmodlError as exc:
        raise CosimError(f"bad expression {text!r}: {exc.reason}") from None
    except CosimError as exc:
        raise CosimError(f"bad expression {text!r}: {exc.reason}") from None
    _check(tree, text)
    return tree


def _check(e, text):
    kind = e[0]
    if kind == "name" and e[1] != "d":
        raise CosimError(f"bad expression {text!r}: unknown name {e[1]!r} (only d, the path "
                         "distance from the soma in µm)")
    if kind == "call":
        if e[1] not in MATH_FUNCTIONS:
            raise CosimError(f"bad expression {text!r}: unknown function {e[1]}()")
        for a in e[2]:
            _check(a, text)
    elif kind == "bin":
        _check(e[2], text)
        _check(e[3], text)
    elif kind in ("neg", "not"):
        _check(e[1], text)


def _eval(e, d):
    kind = e[0]
    if kind == "num":
        return np.full_like(d, e[1])
    if kind == "name":
        return d
    if kind == "neg":
        return -_eval(e[1], d)
    if kind == "not":
        return (~(_eval(e[1], d) != 0)).astype(float)
    if kind == "call":
        return np.asarray(_NP[e[1]](*[_eval(a, d) for a in e[2]]), dtype=float)
    return np.asarray(_OPS[e[1]](_eval(e[2], d), _eval(e[3], d)), dtype=float)


def evaluate(text: str, d) -> np.ndarray:
    """The expression at path distances ``d`` (µm); it must be finite everywhere."""
    d = np.asarray(d, dtype=float)
    with np.errstate(all="ignore"):
        out = _eval(parse(text), d)
    if not np.all(np.isfinite(out)):
        bad = d[~np.isfinite(out)][0]
        raise CosimError(f"expression {text!r} is not finite at d = {bad:g} µm")
    return out


def value_at(value, d) -> np.ndarray | float:
    """A parameter value at distances ``d``: a number as is, a string evaluated."""
    return evaluate(value, d) if isinstance(value, str) else value


def section_starts(morph) -> np.ndarray:
    """Path distance (µm) from ``root(0.5)`` to each section's 0-end (0 for the root)."""
    secs = morph.sections
    start = np.zeros(len(secs))
    for i, s in enumerate(secs):
        if i == 0:
            continue
        p = secs[s.parent]
        if s.parent == 0:
            start[i] = abs(s.parent_x - 0.5) * p.length_um
        else:
            start[i] = start[s.parent] + s.parent_x * p.length_um
    return start


def path_distance(morph, section: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Path distance (µm) from ``root(0.5)`` to ``section(x)`` for arrays of both."""
    start = section_starts(morph)
    L = np.array([s.length_um for s in morph.sections])
    section = np.asarray(section, dtype=np.int64)
    x = np.asarray(x, dtype=float)
    return np.where(section == 0, np.abs(x - 0.5) * L[0], start[section] + x * L[section])


__all__ = ["parse", "evaluate", "value_at", "section_starts", "path_distance", "math"]
