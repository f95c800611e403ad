"""A vectorisable ``exp`` for numba kernels (about 1 ulp, no libm call).

LLVM does not vectorise calls to libm's ``exp`` (and numba here has no SVML), so a loop
of HH rate evaluations would run one lane at a time.  :func:`fexp` uses the textbook
reduction ``exp(x) = 2**k · exp(r)``, ``k = round(x / ln 2)``, ``|r| ≤ ln2 / 2`` (Cody &
Waite split of ln 2), a degree-12 Taylor polynomial for ``exp(r)`` (truncation error
< 2e-16) and builds ``2**k`` from its IEEE-754 bits (``(k + 1023) << 52``); every step
vectorises.  Arguments are clamped to [-708, 709], i.e. to the normal range of float64.
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
    """``exp(x)`` for float64 ``x``; relative error ≈ 2e-16 on [-708, 709]."""
    x = min(max(x, -708.0), 709.0)
    kf = math.floor(x * _LOG2E + 0.5)
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _bits_to_float64((np.int64(kf) + 1023) << 52)


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def cnexp_step(x, a, b, dt):
    """One step of ``x' = a + b·x`` over ``dt``, exactly: ``x + (1 − e^{b·dt})(−a/b − x)``
    (``x + a·dt`` when ``b = 0``).  Both branches are computed and one is selected, so a
    loop of these has no branch and vectorises."""
    e = fexp(dt * b)
    exact = x + (1.0 - e) * (-a / b - x)
    euler = x + dt * a
    return exact if b != 0.0 else euler
