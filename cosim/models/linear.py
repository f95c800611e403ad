"""Linear node ``dx/dt = γ x + c`` (TVB's ``Linear`` model).

Useful as a test bench: with ``γ = 0``, a self-connection of weight 1 and linear coupling
``G = −b`` it is the delay equation ``x'(t) = −b x(t − τ)``, whose exact solutions are
known, so integrator and delay-history accuracy can be measured through the real engine.
"""

from __future__ import annotations

from numba import njit

from .base import Model, Parameter, StateVariable


@njit(cache=True)
def dfun(x, c, p, i, dx):
    """``dx = γ x + c`` for node ``i``."""
    dx[i, 0] = p[i, 0] * x[i, 0] + c[i, 0]


MODEL = Model(
    name="linear",
    doc=__doc__,
    state_variables=(StateVariable("x", "1", "activity", 0.0, (-1.0, 1.0)),),
    parameters=(Parameter("gamma", -10.0, "1/ms", "rate of the linear term (negative: decay)"),),
    coupling_variables=("x",),
    default_coupling="linear",
    dfuns={(): dfun},
    reference="TVB Linear model",
    extra={"tvb": {"class": "Linear"}},
)
