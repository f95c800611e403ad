"""Radial connectivity kernels ``w(r)`` of a neural field, with their Fourier transforms.

Every kernel is isotropic in ``D = 1`` or ``2`` dimensions and declares

* ``value(r, D)`` — ``w`` at distance ``r`` (mm), in 1/mm^D (× its amplitude);
* ``hat(k, D)`` — the continuous Fourier transform ``ŵ(k) = ∫ w(|x|) e^{−i k·x} dx``
  (real, since ``w`` is even), ``k`` in rad/mm;
* ``second_moment(D)`` — ``M₂ = ∫ x₁² w(|x|) dx`` (mm² × amplitude), so that for small
  ``k``, ``ŵ(k) ≈ ŵ(0) − M₂ k² / 2``: the long-wavelength limit of ``w ⊛ f`` is
  ``ŵ(0) f + (M₂ / 2) ∇² f`` (a diffusion term).

Closed forms (``a`` amplitude, ``σ`` width):

=============  ===========================================  ================================
kernel         ``w(r)``                                     ``ŵ(k)``
=============  ===========================================  ================================
gaussian       ``a (2πσ²)^{−D/2} e^{−r²/2σ²}``               ``a e^{−σ²k²/2}``
dog            ``gaussian(a_e, σ_e) − gaussian(a_i, σ_i)``   difference of the two
exponential    D=1: ``a/(2σ) e^{−r/σ}``;                     D=1: ``a / (1 + σ²k²)``;
               D=2: ``a/(2πσ²) e^{−r/σ}``                     D=2: ``a / (1 + σ²k²)^{3/2}``
profile        linear interpolation of ``(r_i, w_i)``,      D=1: ``2∫ w cos(kr) dr``;
               0 beyond the last ``r_i``                    D=2: ``2π∫ w J₀(kr) r dr``
=============  ===========================================  ================================

Each kernel integrates to ``ŵ(0)`` (``a`` for gaussian and exponential, ``a_e − a_i`` for
dog).  The profile's transform and moment are computed by quadrature on a fine grid (the
interpolant is piecewise linear, so a composite rule on ≥ 64 points per segment is exact to
~1e-9 relative for smooth ``J₀``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _gauss(r, sigma: float, D: int):
    return np.exp(-0.5 * (np.asarray(r, dtype=np.float64) / sigma) ** 2) / (
        (2.0 * math.pi * sigma * sigma) ** (D / 2.0))


@dataclass(frozen=True)
class Gaussian:
    amplitude: float
    sigma_mm: float
    name = "gaussian"

    def value(self, r, D: int):
        return self.amplitude * _gauss(r, self.sigma_mm, D)

    def hat(self, k, D: int):
        k = np.asarray(k, dtype=np.float64)
        return self.amplitude * np.exp(-0.5 * (self.sigma_mm * k) ** 2)

    def second_moment(self, D: int) -> float:
        return self.amplitude * self.sigma_mm ** 2

    def reach_mm(self) -> float:
        return self.sigma_mm


@dataclass(frozen=True)
class DifferenceOfGaussians:
    """Mexican hat: narrow excitation ``(a_e, σ_e)`` minus broad inhibition ``(a_i, σ_i)``."""

    amplitude_e: float
    sigma_e_mm: float
    amplitude_i: float
    sigma_i_mm: float
    name = "dog"

    def _parts(self):
        return Gaussian(self.amplitude_e, self.sigma_e_mm), Gaussian(self.amplitude_i, self.sigma_i_mm)

    def value(self, r, D: int):
        e, i = self._parts()
        return e.value(r, D) - i.value(r, D)

    def hat(self, k, D: int):
        e, i = self._parts()
        return e.hat(k, D) - i.hat(k, D)

    def second_moment(self, D: int) -> float:
        e, i = self._parts()
        return e.second_moment(D) - i.second_moment(D)

    def reach_mm(self) -> float:
        return max(self.sigma_e_mm, self.sigma_i_mm)


@dataclass(frozen=True)
class Exponential:
    amplitude: float
    sigma_mm: float
    name = "exponential"

    def value(self, r, D: int):
        r = np.abs(np.asarray(r, dtype=np.float64))
        s = self.sigma_mm
        norm = 2.0 * s if D == 1 else 2.0 * math.pi * s * s
        return self.amplitude * np.exp(-r / s) / norm

    def hat(self, k, D: int):
        q = 1.0 + (self.sigma_mm * np.asarray(k, dtype=np.float64)) ** 2
        return self.amplitude / (q if D == 1 else q ** 1.5)

    def second_moment(self, D: int) -> float:
        return (2.0 if D == 1 else 3.0) * self.amplitude * self.sigma_mm ** 2

    def reach_mm(self) -> float:
        return self.sigma_mm


@dataclass(frozen=True)
class RadialProfile:
    """A user's radial profile: ``w`` at distances ``r_mm`` (ascending, first 0), linear in
    between, 0 beyond the last distance.  Values in 1/mm^D."""

    r_mm: tuple[float, ...]
    w: tuple[float, ...]
    name = "profile"

    def value(self, r, D: int):
        r = np.abs(np.asarray(r, dtype=np.float64))
        return np.interp(r, self.r_mm, self.w, right=0.0)

    def _quadrature(self):
        # composite Simpson on a fine grid over every linear segment
        pts = [np.linspace(a, b, 129) for a, b in zip(self.r_mm[:-1], self.r_mm[1:])]
        r = np.unique(np.concatenate(pts))
        return r, self.value(r, 1)

    def hat(self, k, D: int):
        from scipy.integrate import simpson
        from scipy.special import j0
        k = np.asarray(k, dtype=np.float64)
        r, w = self._quadrature()
        kr = np.multiply.outer(k, r)
        if D == 1:
            return 2.0 * simpson(w * np.cos(kr), x=r, axis=-1)
        return 2.0 * math.pi * simpson(w * j0(kr) * r, x=r, axis=-1)

    def second_moment(self, D: int) -> float:
        from scipy.integrate import simpson
        r, w = self._quadrature()
        if D == 1:
            return float(2.0 * simpson(w * r * r, x=r))
        return float(math.pi * simpson(w * r ** 3, x=r))

    def reach_mm(self) -> float:
        return float(self.r_mm[-1])


KERNELS = {"gaussian": Gaussian, "dog": DifferenceOfGaussians, "exponential": Exponential,
           "profile": RadialProfile}
