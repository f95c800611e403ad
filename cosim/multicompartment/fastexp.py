"""Vectorisable ``exp``, ``log`` and ``pow`` for numba kernels (about 1 ulp, no libm call).

LLVM does not vectorise calls to libm's ``exp`` (and numba here has no SVML), so a loop
of HH rate evaluations would run one lane at a time.  :func:`fexp` uses the textbook
reduction ``exp(x) = 2**k · exp(r)``, ``k = round(x / ln 2)``, ``|r| ≤ ln2 / 2`` (Cody &
Waite split of ln 2), a degree-11 minimax polynomial for ``exp(r)`` (Remez exchange on
the relative error over ``|r| ≤ ln2/2``: 3.1e-18 before rounding its coefficients to
float64; Horner with FMA; ≤ 1 ulp from numpy's ``exp`` in the tests — the degree-12 Taylor
polynomial it replaced cost one step more and erred up to 2 ulp) and builds ``2**k`` from
its IEEE-754 bits (``(k + 1023) << 52``); every step vectorises.  Arguments are clamped to [-708, 709], i.e. to the normal range of float64.
:func:`flog` and :func:`fpow` (``exp(b·log a)``) are built the same way.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@intrinsic
def _bits_to_float64(typingctx, bits):
    """Reinterpret an int64 bit pattern as a float64 (an LLVM bitcast, free)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return sig, codegen


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def fexp(x):
    """``exp(x)`` for float64 ``x``; within 1 ulp on [-708, 709] (module docstring)."""
    x = min(max(x, -708.0), 709.0)
    kf = math.floor(x * _LOG2E + 0.5)
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    p = 2.4994304884817207e-08
    p = p * r + 2.7632293279459877e-07
    p = p * r + 2.7557622530872255e-06
    p = p * r + 2.4801486521427463e-05
    p = p * r + 0.00019841269432679237
    p = p * r + 0.0013888888951223987
    p = p * r + 0.00833333333355927
    p = p * r + 0.04166666666649277
    p = p * r + 0.1666666666666617
    p = p * r + 0.5000000000000018
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _bits_to_float64((np.int64(kf) + 1023) << 52)


@intrinsic
def _float64_to_bits(typingctx, x):
    """Reinterpret a float64 as its int64 bit pattern (an LLVM bitcast, free)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return sig, codegen


_SQRT2 = 1.4142135623730951
_TINY = 2.2250738585072014e-308     # smallest normal float64


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def flog(x):
    """``log(x)`` for float64 ``x``; relative error ≈ 3e-16 for normal ``x > 0``, ``-inf`` at
    0 and below the normal range, NaN for ``x < 0`` or NaN, ``inf`` at ``inf``.

    ``x = 2**e · m`` (bits), ``m`` moved to [√½, √2); ``log m = 2·atanh(s)``,
    ``s = (m − 1)/(m + 1)`` (|s| ≤ 0.1716, ``m − 1`` exact), by its series to ``s**23``
    (truncation < 1e-18); ``e·ln 2`` in two parts (Cody & Waite).  Branch-free (selects),
    so a loop of these vectorises."""
    b = _float64_to_bits(max(x, _TINY))
    # the biased exponent as a double without an int → float conversion (AVX2 has no packed
    # one): 2**52 + n has n in its low mantissa bits
    ef = _bits_to_float64(((b >> 52) & 0x7FF) | 0x4330000000000000) - 4503599627371519.0
    m = _bits_to_float64((b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    ef = ef + 1.0 if big else ef
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = 1.0 / 23.0
    p = p * z + 1.0 / 21.0
    p = p * z + 1.0 / 19.0
    p = p * z + 1.0 / 17.0
    p = p * z + 1.0 / 15.0
    p = p * z + 1.0 / 13.0
    p = p * z + 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z + 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z + 1.0 / 3.0
    r = ef * _LN2_HI + (2.0 * s + (2.0 * s * z * p + ef * _LN2_LO))
    r = -math.inf if x < _TINY else r
    r = math.inf if x == math.inf else r
    r = math.nan if x < 0.0 else r
    return x if x != x else r          # (selects only: "or" would branch)


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def fpow(a, b):
    """``a ** b`` for float64 as ``exp(b·log a)`` (:func:`flog`, :func:`fexp`): relative error
    ≈ (2 + |b·log a|)·1e-16 for ``a > 0``; ``a = 0`` gives 0 / 1 / inf (b > 0, = 0, < 0),
    ``a < 0`` gives ``±|a| ** b`` for an integer ``b`` and NaN otherwise.  Branch-free."""
    t = b * flog(abs(a))
    y = fexp(t)
    y = math.inf if t > 709.0 else y
    y = 0.0 if t < -708.0 else y
    # selects only ("and"/"or"/"not" would branch and keep the loop scalar)
    neg = -y if math.floor(b * 0.5) * 2.0 != math.floor(b) else y      # odd b
    neg = neg if math.floor(b) == b else math.nan                       # b not whole
    y = neg if a < 0.0 else y
    zero = 0.0 if b > 0.0 else math.inf
    y = zero if a == 0.0 else y
    return 1.0 if b == 0.0 else y


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def cnexp_step(x, a, b, dt):
    """One step of ``x' = a + b·x`` over ``dt``, exactly: ``x + (1 − e^{b·dt})(−a/b − x)``
    (``x + a·dt`` when ``b = 0``).  Both branches are computed and one is selected, so a
    loop of these has no branch and vectorises."""
    e = fexp(dt * b)
    exact = x + (1.0 - e) * (-a / b - x)
    euler = x + dt * a
    return exact if b != 0.0 else euler
