"""Counter-based random numbers for numba kernels: Philox4x64-10.

A counter-based generator maps ``(counter, key) → 4 random 64-bit words`` with no hidden
state (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11).
A random number is a pure function of *what it is for*, so it does not depend on how work is
split between processes or in which order it is done — the basis of cosim's layout
independence.  The same algorithm (and bit output) as numpy's ``numpy.random.Philox``
(which pre-increments its counter: numpy's n-th block is ``philox4x64((n+1, 0, 0, 0), key)``).

Keys come from cosim's one key scheme, :func:`cosim.rng.stream_key` (``(seed, domain,
*ids)`` → two uint64 words; the domain table is in :mod:`cosim.rng`); the counter is the
kernel's own, by convention ``(index, item, 0, 0)`` — e.g. (event number, input line) — so
each (stream, item) owns an infinite, independent sequence.  This module has no key function
of its own.
"""

from __future__ import annotations

import math

from numba import njit, uint64

_M0 = 0xD2E7470EE14C6C93
_M1 = 0xCA5A826395121157
_W0 = 0x9E3779B97F4A7C15
_W1 = 0xBB67AE8584CAA73B
_MASK32 = 0xFFFFFFFF


@njit(cache=True, inline="always")
def _mulhilo64(a, b):
    """(high, low) 64-bit words of the 128-bit product ``a * b`` (uint64)."""
    m32 = uint64(_MASK32)
    a_lo = a & m32
    a_hi = a >> uint64(32)
    b_lo = b & m32
    b_hi = b >> uint64(32)
    ll = a_lo * b_lo
    lh = a_lo * b_hi
    hl = a_hi * b_lo
    hh = a_hi * b_hi
    mid = (ll >> uint64(32)) + (lh & m32) + (hl & m32)
    lo = (ll & m32) | (mid << uint64(32))
    hi = hh + (lh >> uint64(32)) + (hl >> uint64(32)) + (mid >> uint64(32))
    return hi, lo


@njit(cache=True)
def philox4x64(c0, c1, c2, c3, k0, k1):
    """Philox4x64-10 block: four uint64 outputs for counter (c0..c3) and key (k0, k1)."""
    c0 = uint64(c0)
    c1 = uint64(c1)
    c2 = uint64(c2)
    c3 = uint64(c3)
    k0 = uint64(k0)
    k1 = uint64(k1)
    m0 = uint64(_M0)
    m1 = uint64(_M1)
    w0 = uint64(_W0)
    w1 = uint64(_W1)
    for r in range(10):
        if r > 0:
            k0 = k0 + w0
            k1 = k1 + w1
        hi0, lo0 = _mulhilo64(m0, c0)
        hi1, lo1 = _mulhilo64(m1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def to_unit_open(x):
    """uint64 → float in the open interval (0, 1): ``((x >> 11) + 0.5) · 2^-53``."""
    return ((x >> uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def uniform4(index, item, k0, k1):
    """Four independent U(0,1) (open interval) numbers for (index, item) of stream (k0, k1)."""
    a, b, c, d = philox4x64(index, item, 0, 0, k0, k1)
    return to_unit_open(a), to_unit_open(b), to_unit_open(c), to_unit_open(d)


@njit(cache=True)
def exponential(index, item, k0, k1):
    """One Exp(1) variate for (index, item) of stream (k0, k1), by inversion."""
    a, _, _, _ = philox4x64(index, item, 0, 0, k0, k1)
    return -math.log(to_unit_open(a))
