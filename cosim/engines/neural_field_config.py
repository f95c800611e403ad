"""Declarations and validation of ``[engines.<name>]`` with ``type = "neural_field"``.

Every key is declared once here (:class:`cosim.params.Param`); :func:`read_section` reads
the scenario table through the :class:`~cosim.schema.Reader` (so a typo or a bad value is
one line naming file and key) and returns the constructor arguments of
:class:`~cosim.engines.neural_field.NeuralFieldEngine`.
"""

from __future__ import annotations

import math

from ..errors import CosimError
from ..fields.firing import KINDS as FIRING_KINDS, Firing
from ..fields.kernels import (KERNELS, DifferenceOfGaussians, Exponential, Gaussian,
                              RadialProfile)
from ..fields.sheet import INTEGRATORS
from ..params import REQUIRED, Param, section

SIZE = Param("size", REQUIRED, "mm", "side lengths of the periodic domain: [L] a 1-D ring, "
             "[Lx, Ly] a 2-D torus", type="numbers")
SPACING = Param("spacing", REQUIRED, "mm", "grid spacing h (every side a whole multiple of it)",
                gt=0)
DT = Param("dt", 0.1, "ms", "integration step", gt=0)
INTEGRATOR = Param("integrator", "heun", "", "explicit scheme: heun (order 2) or euler "
                   "(order 1); the input is held over each step", type="string",
                   choices=INTEGRATORS)
TAU = Param("tau", 10.0, "ms", "membrane time constant τ", gt=0)
DELAY = Param("delay", 0.0, "ms", "constant delay d of the lateral interaction (a whole "
              "multiple of dt)", ge=0)
I0 = Param("I0", 0.0, "1", "constant, homogeneous external input")
REGION = Param("region", None, "", "the connectome region the sheet stands for on the bus "
               "(its mean firing rate is the region's afferent; the region's delayed input "
               "drives every point); unset: the sheet runs alone", type="string")
INPUT_GAIN = Param("input_gain", 1.0, "1", "factor of the bus drive in I(x, t)")
MAX_POINTS = 1 << 22
SNAPSHOT_LIMIT = 3600      # points per snapshot: an HDF5 attribute holds the point names

KERNEL_TYPE = Param("type", "gaussian", "", "connectivity kernel w(r)", type="string",
                    choices=tuple(KERNELS))
AMPLITUDE = Param("amplitude", 1.0, "1", "gaussian / exponential: integral a of w")
SIGMA = Param("sigma", 1.0, "mm", "gaussian / exponential: width σ", gt=0)
AMPLITUDE_E = Param("amplitude_e", 1.0, "1", "dog: integral of the excitatory Gaussian")
SIGMA_E = Param("sigma_e", 1.0, "mm", "dog: width of the excitatory Gaussian", gt=0)
AMPLITUDE_I = Param("amplitude_i", 0.5, "1", "dog: integral of the inhibitory Gaussian")
SIGMA_I = Param("sigma_i", 2.0, "mm", "dog: width of the inhibitory Gaussian", gt=0)
PROFILE_R = Param("r", None, "mm", "profile: distances, ascending from 0", type="numbers")
PROFILE_W = Param("w", None, "1/mm^D", "profile: w at those distances (linear in between, "
                  "0 beyond)", type="numbers")
KERNEL_KEYS = {"gaussian": (AMPLITUDE, SIGMA), "exponential": (AMPLITUDE, SIGMA),
               "dog": (AMPLITUDE_E, SIGMA_E, AMPLITUDE_I, SIGMA_I),
               "profile": (PROFILE_R, PROFILE_W)}

FIRING_TYPE = Param("type", "logistic", "", "firing function S(u) in (0, 1)", type="string",
                    choices=FIRING_KINDS)
SLOPE = Param("slope", 1.0, "1/unit of u", "β: logistic 1/(1+exp(-β(u-θ))), erf "
              "(1+erf(β(u-θ)))/2", gt=0)
THRESHOLD = Param("threshold", 0.0, "1", "θ")

INITIAL_U = Param("u", 0.0, "1", "initial homogeneous value, or \"fixed_point\": the unique "
                  "homogeneous fixed point u0 = ŵ(0) S(u0) + I0", type="any")
INITIAL_NOISE = Param("noise", 0.0, "1", "standard deviation of a white perturbation added at "
                      "every point (stream (seed, \"neural_field.initial\", engine))", ge=0)
INITIAL_SEED = Param("seed", None, "", "seed of the perturbation", type="integer", ge=0,
                     derived="simulation.seed")
SNAP_PERIOD = Param("period", None, "ms", "field snapshot period (a whole multiple of dt); "
                    "unset: no snapshots", gt=0)
SNAP_STRIDE = Param("stride", 1, "", "keep every stride-th point per axis in snapshots",
                    type="integer", ge=1)

GEOMETRY = Param("geometry", "sheet", "", "sheet: the periodic ring or torus of this table; "
                 "surface: a neural mass at every vertex of a cortical surface, the keys of "
                 "engine neural_surface (TVB's surface simulation)", type="string",
                 choices=("sheet", "surface"))

SECTION = section(
    "engines.<name>", "type = \"neural_field\": a periodic neural-field sheet "
    "τ ∂u/∂t = −u + w ⊛ S(u(t − d)) + I (cosim.engines.neural_field), or with geometry = "
    "\"surface\" the cortical surface (the keys of engine neural_surface)",
    (GEOMETRY, SIZE, SPACING, DT, INTEGRATOR, TAU, DELAY, I0, REGION, INPUT_GAIN),
    (section("engines.<name>.kernel", "connectivity kernel w(r): gaussian (amplitude, sigma), "
             "dog (amplitude_e, sigma_e, amplitude_i, sigma_i), exponential (amplitude, "
             "sigma) or profile (r, w)",
             (KERNEL_TYPE, AMPLITUDE, SIGMA, AMPLITUDE_E, SIGMA_E, AMPLITUDE_I, SIGMA_I,
              PROFILE_R, PROFILE_W)),
     section("engines.<name>.firing", "firing function S(u)", (FIRING_TYPE, SLOPE, THRESHOLD)),
     section("engines.<name>.initial", "initial field (held for t <= 0)",
             (INITIAL_U, INITIAL_NOISE, INITIAL_SEED)),
     section("engines.<name>.snapshots", "field snapshots, dataset \"field\" (time, u, point)",
             (SNAP_PERIOD, SNAP_STRIDE))))


def whole(a: float, b: float) -> int | None:
    q = a / b
    k = round(q)
    return int(k) if abs(q - k) <= 1e-9 * max(1.0, abs(q)) else None


def grid_shape(size, spacing) -> tuple[int, ...]:
    if not isinstance(size, (list, tuple)) or len(size) not in (1, 2):
        raise CosimError("must be [L] (a ring) or [Lx, Ly] (a torus), in mm", key="size")
    shape = []
    for i, L in enumerate(size):
        if not (math.isfinite(L) and L > 0):
            raise CosimError(f"must be > 0 mm, got {L!r}", key=f"size[{i}]")
        n = whole(L, spacing)
        if n is None or n < 4:
            raise CosimError(f"{L:g} mm is not a whole multiple (>= 4) of spacing = {spacing:g} mm",
                             key=f"size[{i}]")
        shape.append(n)
    if math.prod(shape) > MAX_POINTS:
        raise CosimError(f"{math.prod(shape)} grid points; at most {MAX_POINTS}", key="spacing")
    return tuple(shape)


def read_kernel(r):
    kind = r.param(KERNEL_TYPE)
    r.done(allowed_extra=SECTION.table(".kernel").names)     # a misspelt key first
    allowed = {p.name for p in KERNEL_KEYS[kind]} | {"type"}
    for k in r.keys():
        if k not in allowed and k in SECTION.table(".kernel").names:
            raise r.error(k, f"is not a parameter of kernel {kind!r} "
                             f"({', '.join(sorted(allowed - {'type'}))})")
    v = {p.name: r.param(p) for p in KERNEL_KEYS[kind]}
    r.done()
    if kind == "gaussian":
        return Gaussian(v["amplitude"], v["sigma"])
    if kind == "exponential":
        return Exponential(v["amplitude"], v["sigma"])
    if kind == "dog":
        return DifferenceOfGaussians(v["amplitude_e"], v["sigma_e"], v["amplitude_i"], v["sigma_i"])
    rr, w = v["r"], v["w"]
    if rr is None or w is None:
        raise r.error("r" if rr is None else "w", "missing required key (kernel type \"profile\")")
    if len(rr) < 2 or len(rr) != len(w):
        raise r.error("w", f"needs one value per distance (>= 2), got {len(w)} for {len(rr)}")
    if rr[0] != 0 or any(b <= a for a, b in zip(rr, rr[1:])):
        raise r.error("r", "must start at 0 and increase strictly")
    return RadialProfile(tuple(rr), tuple(w))


def read_firing(r) -> Firing:
    out = Firing(r.param(FIRING_TYPE), r.param(SLOPE), r.param(THRESHOLD))
    r.done()
    return out


def read_section(reader, ctx) -> dict:
    """``[engines.<name>]`` → constructor keyword arguments (keys read through ``reader``)."""
    r = reader
    kw = dict(size=r.param(SIZE), spacing_mm=r.param(SPACING), dt_ms=r.param(DT),
              integrator=r.param(INTEGRATOR), tau_ms=r.param(TAU), delay_ms=r.param(DELAY),
              I0=r.param(I0), input_gain=r.param(INPUT_GAIN))
    region = r.param(REGION)
    if region is not None:
        labels = list(ctx.connectome.region_labels)
        if region not in labels:
            from ..region_names import suggestion
            raise r.error("region", f"unknown region {region!r} in the connectome"
                                    + suggestion(region, labels))
        if labels.index(region) in ctx.claimed_regions:
            raise r.error("region", f"region {region!r} is already simulated by another engine")
        kw["region"] = region
    kw["kernel"] = read_kernel(r.table("kernel", {}))
    kw["firing"] = read_firing(r.table("firing", {}))
    ir = r.table("initial", {})
    u = ir.param(INITIAL_U)
    if not (u == "fixed_point" or (isinstance(u, (int, float)) and not isinstance(u, bool)
                                   and math.isfinite(u))):
        raise ir.error("u", f"must be a number or \"fixed_point\", got {u!r}")
    kw["initial_u"] = u
    kw["initial_noise"] = ir.param(INITIAL_NOISE)
    kw["initial_seed"] = ir.param(INITIAL_SEED)
    ir.done()
    sr = r.table("snapshots", {})
    kw["snapshot_period_ms"] = sr.param(SNAP_PERIOD)
    kw["snapshot_stride"] = sr.param(SNAP_STRIDE)
    sr.done()
    return kw
