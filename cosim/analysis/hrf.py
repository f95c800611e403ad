"""Haemodynamic response kernels for the convolution ("Volterra") BOLD monitor.

The kernels of The Virtual Brain's ``Bold`` monitor (``tvb.datatypes.equations``), each a
function of the time ``t`` after the neural activity, in **seconds**:

* ``first_order_volterra`` (TVB's default; Friston et al. 2000, the first-order Volterra
  kernel of the Balloon model, a damped oscillator)::

      G(t) = 1/3 · exp(−t / (2 τ_s)) · sin(ω t) / ω,   ω = √(1/τ_f − 1/(4 τ_s²))

  and the signal is ``BOLD = k_1 V_0 (Σ G · z − 1)``;
* ``gamma`` (Boynton et al. 1996): ``(t/τ)^(n−1) exp(−t/τ) / (τ (n−1)!)``, scaled to a
  maximum of ``a``;
* ``double_exponential`` (Polonsky et al. 2000):
  ``amp_1 e^(−t/τ_1) sin(2π f_1 t) − amp_2 e^(−t/τ_2) sin(2π f_2 t)``, scaled to a maximum
  of ``a``;
* ``mixture_of_gammas`` (Glover 1999, SPM-like):
  ``(l t)^(a_1−1) e^(−l t) / Γ(a_1) − c (l t)^(a_2−1) e^(−l t) / Γ(a_2)``.

For the last three ``BOLD = Σ G · z``.  The sum runs over the block means ``z`` of the
input over ``step`` (TVB: 4 ms) and over the kernel sampled at ``t = 0, step, …`` up to
``length`` (TVB: 20 s), without a ``step`` factor (TVB's convention: the kernel's scale
absorbs it).  See :class:`cosim.monitors_tvb.VolterraBoldMonitor` for the exact alignment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..params import Param


@dataclass(frozen=True)
class Kernel:
    """An HRF kernel: ``fn(t_s, **parameters)``; ``offset``: whether the signal is
    ``k_1 V_0 (Σ G z − 1)`` (first-order Volterra) rather than ``Σ G z``."""

    name: str
    doc: str
    parameters: tuple[Param, ...]
    fn: Callable
    offset: bool = False

    def evaluate(self, t_s: np.ndarray, values: dict | None = None) -> np.ndarray:
        kw = {p.name: float(p.default) for p in self.parameters}
        kw.update({k: float(v) for k, v in (values or {}).items() if v is not None})
        return self.fn(np.asarray(t_s, dtype=np.float64), **kw)

    def values(self, given: dict | None = None) -> dict[str, float]:
        kw = {p.name: float(p.default) for p in self.parameters}
        kw.update({k: float(v) for k, v in (given or {}).items() if v is not None})
        return kw


def _volterra(t, tau_s, tau_f, k_1, V_0):
    w = math.sqrt(1.0 / tau_f - 1.0 / (4.0 * tau_s ** 2))
    return 1.0 / 3.0 * np.exp(-0.5 * (t / tau_s)) * np.sin(w * t) / w


def _normalised(g, a):
    return g / g.max() * a


def _gamma(t, tau, n, a):
    factorial = math.prod(range(1, int(n)))           # (n − 1)! of int(n), as TVB
    return _normalised((t / tau) ** (n - 1) * np.exp(-(t / tau)) / (tau * factorial), a)


def _double_exponential(t, tau_1, f_1, amp_1, tau_2, f_2, amp_2, a):
    g = (amp_1 * np.exp(-t / tau_1) * np.sin(2.0 * np.pi * f_1 * t)
         - amp_2 * np.exp(-t / tau_2) * np.sin(2.0 * np.pi * f_2 * t))
    return _normalised(g, a)


def _mixture_of_gammas(t, a_1, a_2, l, c):
    return ((l * t) ** (a_1 - 1) * np.exp(-l * t) / math.gamma(a_1)
            - c * (l * t) ** (a_2 - 1) * np.exp(-l * t) / math.gamma(a_2))


def _p(name, default, unit, doc, **bounds):
    return Param(name, default, unit, doc, **bounds)


KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel("first_order_volterra", "first-order Volterra kernel of the Balloon model "
           "(Friston et al. 2000); TVB's default",
           (_p("tau_s", 0.8, "s", "decay time", gt=0), _p("tau_f", 0.4, "s", "oscillation "
            "time (1/tau_f > 1/(4 tau_s^2))", gt=0),
            _p("k_1", 5.6, "", "first Volterra coefficient"),
            _p("V_0", 0.02, "", "resting blood volume fraction", gt=0)),
           _volterra, offset=True),
    Kernel("gamma", "gamma function (Boynton et al. 1996), scaled to a maximum of a",
           (_p("tau", 1.08, "s", "time constant", gt=0), _p("n", 3.0, "", "phase delay "
            "(its integer part gives (n-1)!)", ge=1), _p("a", 0.1, "", "maximum")),
           _gamma),
    Kernel("double_exponential", "difference of two damped sines (Polonsky et al. 2000), "
           "scaled to a maximum of a",
           (_p("tau_1", 7.22, "s", "first decay time", gt=0), _p("f_1", 0.03, "Hz", "first "
            "frequency"), _p("amp_1", 0.1, "", "first amplitude"),
            _p("tau_2", 7.4, "s", "second decay time", gt=0), _p("f_2", 0.12, "Hz", "second "
            "frequency"), _p("amp_2", 0.1, "", "second amplitude"), _p("a", 0.1, "", "maximum")),
           _double_exponential),
    Kernel("mixture_of_gammas", "difference of two gamma densities (Glover 1999)",
           (_p("a_1", 6.0, "", "shape of the first gamma", gt=0),
            _p("a_2", 13.0, "", "shape of the second gamma", gt=0),
            _p("l", 1.0, "1/s", "rate of both", gt=0), _p("c", 0.4, "", "weight of the second")),
           _mixture_of_gammas),
)}


def kernel_samples(length_ms: float, step_ms: float) -> np.ndarray:
    """Kernel times (s): ``N = ceil(length / step)`` samples ``0, L/N, …`` (TVB's grid)."""
    n = int(math.ceil(length_ms / step_ms - 1e-9))
    length_s = length_ms / 1000.0
    t = np.arange(0.0, length_s, length_s / n)
    return t[:n]
