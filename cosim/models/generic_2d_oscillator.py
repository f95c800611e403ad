"""Generic two-dimensional oscillator (Sanz-Leon et al. 2015), TVB's ``Generic2dOscillator``.

A fast variable ``V`` with a cubic nullcline and a slow recovery variable ``W``; with the
defaults it is an excitable FitzHugh–Nagumo-like system, other settings give limit cycles,
bistability or a Hopf point::

    dV/dt = d τ (α W − f V³ + e V² + g V + γ I + γ c)
    dW/dt = (d / τ) (a + b V + c₂ V² − β W)

``c`` is the long-range input (reads ``V`` of the source regions); ``c₂`` is TVB's ``c``,
called ``c2`` here so that it cannot be confused with the coupling input.  Time in ms; ``V``
and ``W`` are dimensionless.

Reference: P. Sanz-Leon, S. A. Knock, A. Spiegler, V. K. Jirsa, NeuroImage 111:385 (2015);
``tvb.simulator.models.Generic2dOscillator`` (same names and defaults; TVB's ``c`` is ``c2``).
"""

from __future__ import annotations

from numba import njit

from .base import Model, Observable, Parameter, StateVariable


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """Generic 2D oscillator derivatives of node ``i`` (see module docstring)."""
    tau = p[i, 0]
    I = p[i, 1]
    a = p[i, 2]
    b = p[i, 3]
    c2 = p[i, 4]
    d = p[i, 5]
    e = p[i, 6]
    f = p[i, 7]
    g = p[i, 8]
    alpha = p[i, 9]
    beta = p[i, 10]
    gamma = p[i, 11]
    V = x[i, 0]
    W = x[i, 1]
    V2 = V * V
    dx[i, 0] = d * tau * (alpha * W - f * V2 * V + e * V2 + g * V + gamma * I + gamma * c[i, 0])
    dx[i, 1] = d * (a + b * V + c2 * V2 - beta * W) / tau


#: The activity BOLD and the rate monitor read by default: the fast variable V (not a rate
#: in Hz; scale it in the monitor), as TVB's Bold monitor does with its default VOI.
RATE = Observable("rate", "", "activity: the fast variable V (dimensionless)", ("V",))

MODEL = Model(
    name="generic_2d_oscillator",
    doc=__doc__,
    state_variables=(
        StateVariable("V", "1", "fast variable (a function of the membrane potential)", 0.0,
                      (-2.0, 4.0)),
        StateVariable("W", "1", "slow recovery variable", 0.0, (-6.0, 6.0)),
    ),
    parameters=(
        Parameter("tau", 1.0, "1", "time-scale hierarchy between V and W"),
        Parameter("I", 0.0, "1", "baseline shift of the cubic nullcline (external current)"),
        Parameter("a", -2.0, "1", "vertical shift of the W nullcline"),
        Parameter("b", -10.0, "1", "linear slope of the W nullcline"),
        Parameter("c2", 0.0, "1", "parabolic term of the W nullcline (TVB's c)"),
        Parameter("d", 0.02, "1/ms", "temporal scale factor"),
        Parameter("e", 3.0, "1", "coefficient of the quadratic term of the cubic nullcline"),
        Parameter("f", 1.0, "1", "coefficient of the cubic term of the cubic nullcline"),
        Parameter("g", 0.0, "1", "coefficient of the linear term of the cubic nullcline"),
        Parameter("alpha", 1.0, "1", "rate of the feedback from W to V"),
        Parameter("beta", 1.0, "1", "rate of the feedback from W to itself"),
        Parameter("gamma", 1.0, "1", "scales both I and the long-range input"),
    ),
    coupling_variables=("V",),
    default_coupling="linear",
    dfuns={(): dfun},
    observables={"rate": RATE},
    reference="Sanz-Leon et al., NeuroImage 111:385 (2015); TVB Generic2dOscillator",
    extra={"tvb": {"class": "Generic2dOscillator", "rename": {"c2": "c"}}},
)
