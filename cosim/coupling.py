"""Long-range coupling functions: what a region receives from its delayed afferents.

Every coupling here has the separable form::

    a_j(t) = g(x_j(t))                                  "afferent" value(s) of source j
    s_i(t) = Σ_j w_ij a_j(t − d_ij)                     weighted delayed sum
    c_i(t) = post(s_i(t), x_i(t))                       input to the model's dfun

``weights[i, j]`` is the connection from source ``j`` to target ``i`` (TVB convention).
Because ``g`` depends on the source only, the engine stores ``a_j`` (not the raw state) in
the delay history and evaluates ``g`` once per region and step instead of once per edge;
the result is the same as TVB's per-edge ``pre(x_i, x_j)`` for these couplings, up to
summation order (``kuramoto``'s ``sin(θ_j − θ_i)`` is expanded as
``sin θ_j cos θ_i − cos θ_j sin θ_i``, two afferents per source).

Coupling parameters may differ per region (one value, an array with one value per engine
region, or a label table, as model parameters): ``g`` reads the *source* region's values,
``post`` the *target*'s.

Types (``x_j`` are the model's coupling variables, ``G`` the global coupling strength; the
TVB class and its parameter names in brackets, see ``docs/tvb.md``):

``linear``  [``Linear``: a = G, b = offset]
    ``c_i = G Σ_j w_ij x_j(t − d_ij) + offset``, one input per coupling variable.
``scaling``  [``Scaling``: a = G]
    ``c_i = G Σ_j w_ij x_j(t − d_ij)``.
``difference``  [``Difference``: a = G]
    ``c_i = G Σ_j w_ij (x_j(t − d_ij) − x_i(t))`` (diffusive), one input per coupling
    variable; evaluated as ``G (s_i − x_i Σ_j w_ij)``.
``kuramoto``  [``Kuramoto``: a = G]
    ``c_i = G Σ_j w_ij sin(x_j(t − d_ij) − x_i(t))``, one coupling variable (a phase).
    TVB's ``post`` divides by ``gx.shape[0]``, which is the number of coupling variables
    (1), not the number of regions: the textbook ``K / N`` is ``G = K / N``.
``hyperbolic_tangent``  [``HyperbolicTangent``: a, b, midpoint, sigma]
    ``c_i = G Σ_j w_ij a (1 + tanh((b x_j − midpoint) / sigma))`` (a sigmoid before the
    sum; TVB has no ``G``: keep 1).
``sigmoidal``  [``Sigmoidal``: cmin, cmax, midpoint, a, sigma]
    ``c_i = cmin + (cmax − cmin) / (1 + exp(−a (G s_i − midpoint) / sigma))``, a sigmoid
    of the weighted sum ``s_i = Σ_j w_ij x_j(t − d_ij)`` (TVB has no ``G``: keep 1).
``sigmoidal_jansen_rit``  [``SigmoidalJansenRit``: a = G, cmin, cmax, midpoint, r]
    ``c_i = G Σ_j w_ij [c_min + (c_max − c_min) / (1 + exp(r (midpoint − (x_j,0 − x_j,1))))]``
    with ``(x_j,0, x_j,1) = (y1, y2)`` of Jansen–Rit: the sigmoid of the source's pyramidal
    potential.  One input.

Kernel functions (numba, pure; ``x`` (n, n_state), ``cvar`` (n_cvar,) state indices,
``cp`` (n, n_cp) coupling parameters per region in declaration order, ``i`` node)::

    afferent(x, cvar, cp, i, aff)            aff[i, :] = g(x[i]) with cp[i]
    post(s, x, cvar, rowsum, cp, i, c)       c[i, :]  = post(s[i], x[i]) with cp[i];
                                             rowsum[i] = Σ_j w_ij
"""

from __future__ import annotations

import math
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
    (otherwise one per coupling variable); ``afferents``: number of afferent values per
    source when it is not the number of inputs (``kuramoto``: sin and cos of the phase);
    ``tvb``: TVB's class name and ``{cosim name: TVB name}`` where they differ.
    """

    name: str
    doc: str
    parameters: tuple[Parameter, ...]
    afferent: Callable
    post: Callable
    n_cvar: int | None = None
    single_output: bool = False
    afferents: int | None = None
    tvb: tuple[str, dict] | None = None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def n_afferent(self, n_cvar: int) -> int:
        if self.afferents is not None:
            return self.afferents
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
        c[i, k] = cp[i, 0] * s[i, k] + cp[i, 1]


LINEAR = Coupling(
    name="linear",
    doc="c_i = G sum_j w_ij x_j(t - d_ij) + offset",
    parameters=(_G, Parameter("offset", 0.0, "input unit", "constant added to the input")),
    afferent=_identity_afferent,
    post=_linear_post,
    tvb=("Linear", {"G": "a", "offset": "b"}),
)


# -- difference --------------------------------------------------------------------------
@njit(cache=True)
def _difference_post(s, x, cvar, rowsum, cp, i, c):
    for k in range(cvar.shape[0]):
        c[i, k] = cp[i, 0] * (s[i, k] - rowsum[i] * x[i, cvar[k]])


DIFFERENCE = Coupling(
    name="difference",
    doc="c_i = G sum_j w_ij (x_j(t - d_ij) - x_i(t))",
    parameters=(_G,),
    afferent=_identity_afferent,
    post=_difference_post,
    tvb=("Difference", {"G": "a"}),
)


# -- sigmoidal (Jansen–Rit) --------------------------------------------------------------
@njit(cache=True)
def _sigmoid_jr_afferent(x, cvar, cp, i, aff):
    v = x[i, cvar[0]] - x[i, cvar[1]]
    aff[i, 0] = sigmoid_nb(v, cp[i, 1], cp[i, 2], cp[i, 4], cp[i, 3])


@njit(cache=True)
def _scaled_post(s, x, cvar, rowsum, cp, i, c):
    for k in range(c.shape[1]):
        c[i, k] = cp[i, 0] * s[i, k]


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
    tvb=("SigmoidalJansenRit", {"G": "a"}),
)


# -- scaling -----------------------------------------------------------------------------
SCALING = Coupling(
    name="scaling",
    doc="c_i = G sum_j w_ij x_j(t - d_ij)",
    parameters=(_G,),
    afferent=_identity_afferent,
    post=_scaled_post,
    tvb=("Scaling", {"G": "a"}),
)


# -- kuramoto ----------------------------------------------------------------------------
@njit(cache=True)
def _kuramoto_afferent(x, cvar, cp, i, aff):
    theta = x[i, cvar[0]]
    aff[i, 0] = math.sin(theta)
    aff[i, 1] = math.cos(theta)


@njit(cache=True)
def _kuramoto_post(s, x, cvar, rowsum, cp, i, c):
    # Σ_j w_ij sin(θ_j − θ_i) = cos θ_i Σ_j w_ij sin θ_j − sin θ_i Σ_j w_ij cos θ_j
    theta = x[i, cvar[0]]
    c[i, 0] = cp[i, 0] * (math.cos(theta) * s[i, 0] - math.sin(theta) * s[i, 1])


KURAMOTO = Coupling(
    name="kuramoto",
    doc="c_i = G sum_j w_ij sin(x_j(t - d_ij) - x_i(t))",
    parameters=(_G,),
    afferent=_kuramoto_afferent,
    post=_kuramoto_post,
    n_cvar=1,
    single_output=True,
    afferents=2,
    tvb=("Kuramoto", {"G": "a"}),
)


# -- hyperbolic tangent ------------------------------------------------------------------
@njit(cache=True)
def _tanh_afferent(x, cvar, cp, i, aff):
    a, b, midpoint, sigma = cp[i, 1], cp[i, 2], cp[i, 3], cp[i, 4]
    for k in range(cvar.shape[0]):
        aff[i, k] = a * (1.0 + math.tanh((b * x[i, cvar[k]] - midpoint) / sigma))


HYPERBOLIC_TANGENT = Coupling(
    name="hyperbolic_tangent",
    doc="c_i = G sum_j w_ij a (1 + tanh((b x_j(t - d_ij) - midpoint) / sigma))",
    parameters=(
        _G,
        Parameter("a", 1.0, "input unit", "half of the sigmoid's maximum"),
        Parameter("b", 1.0, "1/(state unit)", "scaling of the source variable"),
        Parameter("midpoint", 0.0, "1", "midpoint of the linear part of the sigmoid"),
        Parameter("sigma", 1.0, "1", "width of the sigmoid", gt=0),
    ),
    afferent=_tanh_afferent,
    post=_scaled_post,
    tvb=("HyperbolicTangent", {}),
)


# -- sigmoidal (of the summed input) -----------------------------------------------------
@njit(cache=True)
def _sigmoidal_post(s, x, cvar, rowsum, cp, i, c):
    G, cmin, cmax, midpoint, a, sigma = cp[i, 0], cp[i, 1], cp[i, 2], cp[i, 3], cp[i, 4], cp[i, 5]
    for k in range(cvar.shape[0]):
        c[i, k] = cmin + (cmax - cmin) / (1.0 + math.exp(-a * ((G * s[i, k] - midpoint) / sigma)))


SIGMOIDAL = Coupling(
    name="sigmoidal",
    doc="c_i = cmin + (cmax - cmin) / (1 + exp(-a (G s_i - midpoint) / sigma)), "
        "s_i = sum_j w_ij x_j(t - d_ij)",
    parameters=(
        _G,
        Parameter("cmin", -1.0, "input unit", "minimum of the sigmoid"),
        Parameter("cmax", 1.0, "input unit", "maximum of the sigmoid"),
        Parameter("midpoint", 0.0, "state unit", "midpoint of the sigmoid"),
        Parameter("a", 1.0, "1", "steepness of the sigmoid", gt=0),
        Parameter("sigma", 230.0, "state unit", "width of the sigmoid", gt=0),
    ),
    afferent=_identity_afferent,
    post=_sigmoidal_post,
    tvb=("Sigmoidal", {}),
)


COUPLINGS: dict[str, Coupling] = {c.name: c for c in (
    LINEAR, SCALING, DIFFERENCE, KURAMOTO, HYPERBOLIC_TANGENT, SIGMOIDAL, SIGMOIDAL_JANSEN_RIT)}
