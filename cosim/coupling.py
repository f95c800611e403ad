"""Long-range coupling functions: what a region receives from its delayed afferents.

Every coupling here has the separable form::

    a_j(t) = g(x_j(t))                                  "afferent" value of source j
    s_i(t) = Σ_j w_ij a_j(t − d_ij)                     weighted delayed sum
    c_i(t) = post(s_i(t), x_i(t))                       input to the model's dfun

``weights[i, j]`` is the connection from source ``j`` to target ``i`` (TVB convention).
Because ``g`` depends on the source only, the engine stores ``a_j`` (not the raw state) in
the delay history and evaluates ``g`` once per region and step instead of once per edge;
the result is the same as TVB's per-edge ``pre(x_i, x_j)`` for these couplings, up to
summation order.

Types (``x_j`` are the model's coupling variables, ``G`` the global coupling strength):

``linear``
    ``c_i = G Σ_j w_ij x_j(t − d_ij) + offset``, one input per coupling variable.
``difference``
    ``c_i = G Σ_j w_ij (x_j(t − d_ij) − x_i(t))`` (diffusive / Kuramoto-like), one input per
    coupling variable; evaluated as ``G (s_i − x_i Σ_j w_ij)``.
``sigmoidal_jansen_rit``
    ``c_i = G Σ_j w_ij [c_min + (c_max − c_min) / (1 + exp(r (midpoint − (x_j,0 − x_j,1))))]``
    with ``(x_j,0, x_j,1) = (y1, y2)`` of Jansen–Rit: the sigmoid of the source's pyramidal
    potential, TVB's ``SigmoidalJansenRit`` with ``a = G``.  One input.

Kernel functions (numba, pure; ``x`` (n, n_state), ``cvar`` (n_cvar,) state indices,
``cp`` coupling parameters in declaration order, ``i`` node)::

    afferent(x, cvar, cp, i, aff)            aff[i, :] = g(x[i])
    post(s, x, cvar, rowsum, cp, i, c)       c[i, :]  = post(s[i], x[i]); rowsum[i] = Σ_j w_ij
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit

from .models.base import Parameter
from .models.sigmoid import NU_MAX, R, sigmoid_nb

_G = Parameter("G", 1.0, "1", "global coupling strength (scales the weighted sum)")


@dataclass(frozen=True)
class Coupling:
    """Declaration of a coupling function (see module docstring).

    ``n_cvar``: number of coupling variables required (``None``: any);
    ``single_output``: the coupling produces one input regardless of ``n_cvar``
    (otherwise one per coupling variable).
    """

    name: str
    doc: str
    parameters: tuple[Parameter, ...]
    afferent: Callable
    post: Callable
    n_cvar: int | None = None
    single_output: bool = False

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def n_afferent(self, n_cvar: int) -> int:
        return 1 if self.single_output else n_cvar

    def n_inputs(self, n_cvar: int) -> int:
        return 1 if self.single_output else n_cvar

    def default_parameters(self) -> np.ndarray:
        return np.array([p.default for p in self.parameters], dtype=np.float64)


# -- linear ------------------------------------------------------------------------------
@njit(cache=True)
def _identity_afferent(x, cvar, cp, i, aff):
    for k in range(cvar.shape[0]):
        aff[i, k] = x[i, cvar[k]]


@njit(cache=True)
def _linear_post(s, x, cvar, rowsum, cp, i, c):
    for k in range(cvar.shape[0]):
        c[i, k] = cp[0] * s[i, k] + cp[1]


LINEAR = Coupling(
    name="linear",
    doc="c_i = G sum_j w_ij x_j(t - d_ij) + offset",
    parameters=(_G, Parameter("offset", 0.0, "input unit", "constant added to the input")),
    afferent=_identity_afferent,
    post=_linear_post,
)


# -- difference --------------------------------------------------------------------------
@njit(cache=True)
def _difference_post(s, x, cvar, rowsum, cp, i, c):
    for k in range(cvar.shape[0]):
        c[i, k] = cp[0] * (s[i, k] - rowsum[i] * x[i, cvar[k]])


DIFFERENCE = Coupling(
    name="difference",
    doc="c_i = G sum_j w_ij (x_j(t - d_ij) - x_i(t))",
    parameters=(_G,),
    afferent=_identity_afferent,
    post=_difference_post,
)


# -- sigmoidal (Jansen–Rit) --------------------------------------------------------------
@njit(cache=True)
def _sigmoid_jr_afferent(x, cvar, cp, i, aff):
    v = x[i, cvar[0]] - x[i, cvar[1]]
    aff[i, 0] = sigmoid_nb(v, cp[1], cp[2], cp[4], cp[3])


@njit(cache=True)
def _scaled_post(s, x, cvar, rowsum, cp, i, c):
    c[i, 0] = cp[0] * s[i, 0]


#: TVB's ``SigmoidalJansenRit.midpoint``: 6 mV (Jansen & Rit's v0), not the model's 5.52 mV
#: — kept, so cosim's coupling equals TVB's; the adapter maps invert this sigmoid.
MIDPOINT = Parameter("midpoint", 6.0, "mV", "potential of the sigmoid's midpoint (TVB's "
                     "SigmoidalJansenRit default)")

SIGMOIDAL_JANSEN_RIT = Coupling(
    name="sigmoidal_jansen_rit",
    doc="c_i = G sum_j w_ij S(y1_j - y2_j), S = cmin + (cmax - cmin)/(1 + exp(r (midpoint - v)))",
    parameters=(
        _G,
        Parameter("cmin", 0.0, "1/ms", "minimum of the sigmoid"),
        Parameter("cmax", 2.0 * NU_MAX.default, "1/ms", "maximum of the sigmoid (2 nu_max)"),
        MIDPOINT,
        R,
    ),
    afferent=_sigmoid_jr_afferent,
    post=_scaled_post,
    n_cvar=2,
    single_output=True,
)


COUPLINGS: dict[str, Coupling] = {c.name: c for c in (LINEAR, DIFFERENCE, SIGMOIDAL_JANSEN_RIT)}
