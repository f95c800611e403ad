"""Stuart–Landau oscillator: the normal form of a supercritical Hopf bifurcation.

With ``z = x + i y``::

    dz/dt = (a + i ω) z − |z|² z + c,        c = c_x + i c_y

i.e. ``x' = (a − x² − y²) x − ω y + c_x`` and ``y' = (a − x² − y²) y + ω x + c_y``.
For ``a < 0`` the origin is a stable focus; for ``a > 0`` a stable limit cycle of radius
``√a`` turning at angular frequency ``ω`` (rad/ms; f = ω / 2π kHz).  The coupling reads
``x`` and ``y`` of the source regions; the usual whole-brain "Hopf model" uses the
difference coupling ``c = G Σ_j w_ij (z_j(t − d_ij) − z_i(t))``.

References: Y. Kuramoto, *Chemical Oscillations, Waves and Turbulence* (1984);
G. Deco et al., Sci. Rep. 7:3095 (2017) (whole-brain Hopf model).
"""

from __future__ import annotations

import math

from numba import njit

from .base import Model, Parameter, StateVariable


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Stuart–Landau derivatives of node ``i`` (see module docstring)."""
    a = p[i, 0]
    omega = p[i, 1]
    xr = x[i, 0]
    yi = x[i, 1]
    g = a - (xr * xr + yi * yi)
    dx[i, 0] = g * xr - omega * yi + c[i, 0]
    dx[i, 1] = g * yi + omega * xr + c[i, 1]


MODEL = Model(
    name="stuart_landau",
    doc=__doc__,
    state_variables=(
        StateVariable("x", "1", "real part of z", 0.1, (-1.0, 1.0)),
        StateVariable("y", "1", "imaginary part of z", 0.0, (-1.0, 1.0)),
    ),
    parameters=(
        Parameter("a", -0.01, "1/ms", "bifurcation parameter (limit cycle of radius sqrt(a) for a > 0)"),
        Parameter("omega", 2.0 * math.pi * 0.01, "rad/ms", "angular frequency (default 10 Hz)"),
    ),
    coupling_variables=("x", "y"),
    default_coupling="difference",
    dfuns={(): dfun},
    reference="Hopf normal form; Deco et al., Sci. Rep. 7:3095 (2017)",
    extra={"tvb": {"class": "SupHopf", "defaults": {"a": -0.5, "omega": 1.0}}},
)
