"""Epileptor (Jirsa et al. 2014), the virtual-epileptic-patient model; TVB's ``Epileptor``.

Two coupled oscillators and a slow permittivity variable ``z``: population 1
(``x1, y1``, fast discharges), population 2 (``x2, y2``, spike-and-wave events), and a
low-pass filter ``g`` of ``x1``.  Time is in the model's own unit (read as ms); ``tt``
scales the whole system::

    dx1/dt = tt [y1 − z + I_ext + K_vf c₁ + f₁(x1, x2, z) x1]
    dy1/dt = tt [c − d x1² − y1]
    dz/dt  = tt r [h(x1) − z + K_s c₁]
    dx2/dt = tt [−y2 + x2 − x2³ + I_ext2 + b₂ g − 0.3 (z − 3.5) + K_f c₂]
    dy2/dt = tt [−y2 + f₂(x2)] / τ
    dg/dt  = tt [−0.01 (g − 0.1 x1)]

    f₁ = −a x1² + b x1                     if x1 < 0
         slope − x2 + 0.6 (z − 4)²          otherwise
    f₂ = 0 if x2 < −0.25, else a₂ (x2 + 0.25)
    h  = s (x1 − x0) + (−0.1 z⁷ if z < 0 else 0)                (modification = 0)
         x0 + 3 / (1 + exp(−(x1 + 0.5) / 0.1))                   (modification = 1)

``c₁``, ``c₂`` are the long-range inputs, which read ``x1`` and ``x2`` of the source
regions (TVB's ``cvar = [0, 3]``); the usual coupling is ``difference``, entering through
the permittivity coupling ``K_s`` (and ``K_vf``, ``K_f``).  ``x0`` is the excitability:
below about −2.06 a region is healthy, above it seizes.  ``x2 − x1`` is the LFP-like
signal (``eeg`` observable).  ``a₂``, ``b₂`` are TVB's ``aa``, ``bb`` (same names here).

References: V. K. Jirsa, W. C. Stacey, P. P. Quilichini, A. I. Ivanov, C. Bernard,
Brain 137:2210 (2014); Proix et al., Brain 140:641 (2017);
``tvb.simulator.models.Epileptor`` (same names and defaults; TVB writes the literal 4
where this module reads ``s``, whose default is 4).
"""

from __future__ import annotations

import math

from numba import njit

from .base import Model, Observable, Parameter, StateVariable


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Epileptor derivatives of node ``i`` (see module docstring)."""
    a = p[i, 0]
    b = p[i, 1]
    cc = p[i, 2]
    d = p[i, 3]
    r = p[i, 4]
    s = p[i, 5]
    x0 = p[i, 6]
    Iext = p[i, 7]
    slope = p[i, 8]
    Iext2 = p[i, 9]
    tau = p[i, 10]
    aa = p[i, 11]
    bb = p[i, 12]
    Kvf = p[i, 13]
    Kf = p[i, 14]
    Ks = p[i, 15]
    tt = p[i, 16]
    modification = p[i, 17]
    x1 = x[i, 0]
    y1 = x[i, 1]
    z = x[i, 2]
    x2 = x[i, 3]
    y2 = x[i, 4]
    g = x[i, 5]
    c1 = c[i, 0]
    c2 = c[i, 1]
    if x1 < 0.0:
        f1 = -a * x1 * x1 + b * x1
    else:
        f1 = slope - x2 + 0.6 * (z - 4.0) * (z - 4.0)
    dx[i, 0] = tt * (y1 - z + Iext + Kvf * c1 + f1 * x1)
    dx[i, 1] = tt * (cc - d * x1 * x1 - y1)
    if modification != 0.0:
        h = x0 + 3.0 / (1.0 + math.exp(-(x1 + 0.5) / 0.1))
    else:
        z7 = -0.1 * z ** 7 if z < 0.0 else 0.0
        h = s * (x1 - x0) + z7
    dx[i, 2] = tt * (r * (h - z + Ks * c1))
    dx[i, 3] = tt * (-y2 + x2 - x2 * x2 * x2 + Iext2 + bb * g - 0.3 * (z - 3.5) + Kf * c2)
    f2 = 0.0 if x2 < -0.25 else aa * (x2 + 0.25)
    dx[i, 4] = tt * ((-y2 + f2) / tau)
    dx[i, 5] = tt * (-0.01 * (g - 0.1 * x1))


MODEL = Model(
    name="epileptor",
    doc=__doc__,
    state_variables=(
        StateVariable("x1", "1", "fast variable of population 1", -1.5, (-2.0, 1.0)),
        StateVariable("y1", "1", "recovery variable of population 1", -10.0, (-20.0, 2.0)),
        StateVariable("z", "1", "slow permittivity variable", 3.0, (2.0, 5.0)),
        StateVariable("x2", "1", "fast variable of population 2", -1.0, (-2.0, 0.0)),
        StateVariable("y2", "1", "recovery variable of population 2", 0.0, (0.0, 2.0)),
        StateVariable("g", "1", "low-pass filter of x1 (coupling of population 1 to 2)", 0.0,
                      (-1.0, 1.0)),
    ),
    parameters=(
        Parameter("a", 1.0, "1", "coefficient of the cubic term of x1"),
        Parameter("b", 3.0, "1", "coefficient of the squared term of x1"),
        Parameter("c", 1.0, "1", "additive coefficient of y1"),
        Parameter("d", 5.0, "1", "coefficient of the squared term of y1"),
        Parameter("r", 0.00035, "1/ms", "time scale of z (slow: r << 1)"),
        Parameter("s", 4.0, "1", "linear coefficient of x1 in z (TVB writes the literal 4)"),
        Parameter("x0", -1.6, "1", "epileptogenicity (excitability; > about -2.06 seizes)"),
        Parameter("Iext", 3.1, "1", "external input of population 1"),
        Parameter("slope", 0.0, "1", "linear coefficient in x1 (x1 >= 0 branch)"),
        Parameter("Iext2", 0.45, "1", "external input of population 2"),
        Parameter("tau", 10.0, "ms", "time scale of y2", gt=0),
        Parameter("aa", 6.0, "1", "linear coefficient of y2"),
        Parameter("bb", 2.0, "1", "gain of the low-pass coupling g in x2"),
        Parameter("Kvf", 0.0, "1", "long-range coupling on the very fast time scale (x1)"),
        Parameter("Kf", 0.0, "1", "long-range coupling on the fast time scale (x2)"),
        Parameter("Ks", 0.0, "1", "permittivity coupling: long-range input to z"),
        Parameter("tt", 1.0, "1", "time scaling of the whole system", gt=0),
        Parameter("modification", 0.0, "1", "1: sigmoidal (nonlinear) influence of x1 on z; "
                  "0: linear (TVB's modification = False)", ge=0, le=1),
    ),
    coupling_variables=("x1", "x2"),
    default_coupling="difference",
    dfuns={(): dfun},
    observables={"eeg": Observable("eeg", "1", "LFP-like signal x2 - x1", ("x1", "x2"),
                                   lambda x1, x2: x2 - x1, formula="x2 - x1")},
    reference="Jirsa et al., Brain 137:2210 (2014); TVB Epileptor",
    extra={"tvb": {"class": "Epileptor"}},
)
