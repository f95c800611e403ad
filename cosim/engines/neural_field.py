"""The neural-field engine: a periodic sheet ``τ ∂u/∂t = −u + w ⊛ S(u(t − d)) + I(x, t)``.

Scenario section (times in ms, lengths in mm; every key in ``docs/scenario.md``)::

    [engines.sheet]
    type = "neural_field"
    size = [100.0]              # mm: [L] a 1-D ring, [Lx, Ly] a 2-D torus
    spacing = 0.5               # mm
    dt = 0.1                    # ms
    integrator = "heun"         # or "euler"
    tau = 10.0                  # ms
    delay = 0.0                 # ms, constant, a whole multiple of dt
    I0 = 0.0                    # constant homogeneous input
    region = "rA1"              # optional: the sheet stands for this connectome region
    input_gain = 1.0            # I(x, t) = I0 + input_gain · s_region(t) (+ stimuli)
    [engines.sheet.kernel]      # gaussian | dog | exponential | profile
    type = "dog"
    amplitude_e = 3.0
    sigma_e = 1.0
    amplitude_i = 2.5
    sigma_i = 2.0
    [engines.sheet.firing]      # logistic | erf
    type = "logistic"
    slope = 4.0
    threshold = 0.0
    [engines.sheet.initial]
    u = "fixed_point"           # or a number
    noise = 1e-4                # white perturbation (stream (seed, "neural_field.initial", name))
    [engines.sheet.snapshots]
    period = 5.0                # ms
    stride = 2                  # every 2nd point per axis

Method (:mod:`cosim.fields.sheet`): FFT convolution on the periodic grid (the kernel's
transform computed once), Heun (order 2) or Euler, the delayed term read from a ring of the
last ``D + 1`` convolutions, the input held over each step.

Records: ``"mean"`` ``(time, [u, rate], 1)`` — the sheet averages of ``u`` and ``S(u)``
every ``[record] period``; ``"field"`` ``(time, u, point)`` — snapshots of ``u`` (every
``stride``-th point per axis, points in C order; attrs ``grid_shape``, ``spacing_mm``).

Bus (with ``region``): exports ``Export.AFFERENT`` — the mean firing rate ``⟨S(u)⟩`` of the
sheet after every step — and takes ``Take.DRIVE`` — the region's delayed weighted input
``s_R(t)``, applied uniformly (× ``input_gain``).  Stimuli: :meth:`NeuralFieldEngine.
add_stimulus` binds a ``[stimuli.<name>]`` with ``target = "u"``: ``profile(x[, y]) · u(t)``
added to ``I`` (``profile`` an expression of the position in mm); :meth:`set_stimulus` takes
any ``f(t_ms, x_mm) → (N,)``.

The sheet is one FFT domain and is not split across ranks (``max_parts() = 1``).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CosimError
from ..fields.firing import Firing
from ..fields.sheet import Sheet
from ..numerics import check_finite
from ..rng import Streams
from . import neural_field_config as cfg
from .base import BuildContext, Engine, Export, RecordSpec, Take, WindowOutput

MEAN, FIELD = "mean", "field"
MEAN_VARIABLES = ("u", "rate")


class NeuralFieldEngine(Engine):
    """A neural-field sheet (see the module docstring)."""

    type_name = "neural_field"
    parameters = cfg.SECTION
    exports = Export.AFFERENT
    takes = Take.DRIVE

    def __init__(self, name: str, *, size, spacing_mm: float, kernel, firing: Firing,
                 dt_ms: float = cfg.DT.default, integrator: str = cfg.INTEGRATOR.default,
                 tau_ms: float = cfg.TAU.default, delay_ms: float = cfg.DELAY.default,
                 I0: float = cfg.I0.default, region: str | None = None, connectome=None,
                 input_gain: float = cfg.INPUT_GAIN.default, initial_u=cfg.INITIAL_U.default,
                 initial_noise: float = cfg.INITIAL_NOISE.default, initial_seed=None,
                 seed: int | Streams = 0, record_period_ms: float | None = None,
                 record_variables=None, snapshot_period_ms: float | None = None,
                 snapshot_stride: int = cfg.SNAP_STRIDE.default):
        self.name = str(name)
        self.shape = cfg.grid_shape(list(size), float(spacing_mm))
        self.dims = len(self.shape)
        self.spacing_mm = float(spacing_mm)
        self.kernel, self.firing = kernel, firing
        self.dt_ms, self.tau_ms = float(dt_ms), float(tau_ms)
        self.integrator = integrator
        self.delay_steps = cfg.whole(float(delay_ms), self.dt_ms)
        if self.delay_steps is None:
            raise CosimError(f"{delay_ms:g} ms is not a whole multiple of dt = {self.dt_ms:g} ms",
                             key="delay")
        self.delay_ms = self.delay_steps * self.dt_ms
        self.I0, self.input_gain = float(I0), float(input_gain)
        self.rng = Streams.of(seed)
        self.seed = self.rng.seed
        self.label = region if region is not None else self.name
        if region is not None:
            self.region_indices = np.array([list(connectome.region_labels).index(region)],
                                           dtype=np.int64)
        else:
            self.region_indices = np.zeros(0, dtype=np.int64)
        n = math.prod(self.shape)
        hist_bytes = (self.delay_steps + 1) * n * 8.0
        if hist_bytes > 1 << 31:
            raise CosimError(f"the delay history needs {hist_bytes / 2**30:.3g} GiB "
                             f"({self.delay_steps} steps × {n} points); use a larger dt",
                             key="delay")
        self.record_period_ms = self.dt_ms if record_period_ms is None else float(record_period_ms)
        self.record_every = cfg.whole(self.record_period_ms, self.dt_ms)
        if not self.record_every:
            raise CosimError(f"{self.record_period_ms:g} ms is not a whole multiple of dt = "
                             f"{self.dt_ms:g} ms", key="record.period")
        variables = tuple(MEAN_VARIABLES if record_variables is None else record_variables)
        for v in variables:
            if v not in MEAN_VARIABLES:
                raise CosimError(f"{v!r} is not a variable of a neural field "
                                 f"({', '.join(MEAN_VARIABLES)})", key="record.variables")
        if not variables:
            raise CosimError("is empty", key="record.variables")
        self.record_variables = variables
        self._rec_index = [MEAN_VARIABLES.index(v) for v in variables]
        self.snapshot_every = None
        self.snapshot_stride = int(snapshot_stride)
        if snapshot_period_ms is not None:
            self.snapshot_every = cfg.whole(float(snapshot_period_ms), self.dt_ms)
            if not self.snapshot_every:
                raise CosimError(f"{snapshot_period_ms:g} ms is not a whole multiple of dt = "
                                 f"{self.dt_ms:g} ms", key="snapshots.period")
            kept = math.prod(-(-s // self.snapshot_stride) for s in self.shape)
            if kept > cfg.SNAPSHOT_LIMIT:
                raise CosimError(f"a snapshot would hold {kept} points; at most "
                                 f"{cfg.SNAPSHOT_LIMIT} (raise the stride)", key="snapshots.stride")
        self.initial_noise = float(initial_noise)
        self.initial_seed = initial_seed
        if initial_u == "fixed_point":
            from ..analysis.dispersion import fixed_points
            roots = fixed_points(kernel, self.dims, firing, self.I0)
            if len(roots) != 1:
                raise CosimError(f"the sheet has {len(roots)} homogeneous fixed points "
                                 f"({', '.join(f'{r:.6g}' for r in roots)}); give u as a number",
                                 key="initial.u")
            initial_u = roots[0]
        self.initial_u = float(initial_u)
        self.stimulus = None
        self._stimuli: list = []            # (pattern, profile (N,)) of [stimuli] tables
        self._built = False

    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext):
        if reader.param(cfg.GEOMETRY) == "surface":
            from .neural_surface import NeuralSurfaceEngine
            return NeuralSurfaceEngine.from_config(name, reader, ctx)
        if not reader.has(cfg.GEOMETRY.name) and reader.has("model"):
            raise reader.error("model", "a key of the cortical surface (the sheet has no "
                                        "model): set geometry = \"surface\"")
        kw = cfg.read_section(reader, ctx)
        reader.done(allowed_extra=("type", cfg.GEOMETRY.name))
        try:
            return cls(name, connectome=ctx.connectome, seed=ctx.rng,
                       record_period_ms=ctx.record_period_ms,
                       record_variables=ctx.record_variables, **kw)
        except CosimError as exc:
            key = exc.key or ""
            if key == "record.variables":
                key = f"record.{name}.variables"
            elif not key.startswith("record."):
                key = reader.key(key) if key else reader.prefix
            raise CosimError(exc.reason, file=reader.file, key=key) from None

    # -- description ----------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    def work(self) -> float:
        n = self.n_points
        return 10.0 * n * math.log2(max(n, 2)) / self.dt_ms

    def _snapshot_points(self) -> np.ndarray:
        idx = np.arange(self.n_points).reshape(self.shape)
        s = self.snapshot_stride
        return (idx[::s] if self.dims == 1 else idx[::s, ::s]).ravel()

    def record_specs(self) -> list[RecordSpec]:
        attrs = {"tau_ms": self.tau_ms, "delay_ms": self.delay_ms, "dt_ms": self.dt_ms,
                 "integrator": self.integrator, "kernel": self.kernel.name,
                 "firing": self.firing.kind, "grid_shape": list(self.shape),
                 "spacing_mm": self.spacing_mm}
        units = {"u": "1", "rate": "1"}
        specs = [RecordSpec(MEAN, self.record_variables,
                            tuple(units[v] for v in self.record_variables), (self.label,),
                            self.record_period_ms, attrs=attrs)]
        if self.snapshot_every:
            s = self.snapshot_stride
            kept = [-(-n // s) for n in self.shape]
            specs.append(RecordSpec(
                FIELD, ("u",), ("1",), tuple(f"p{i}" for i in self._snapshot_points()),
                self.snapshot_every * self.dt_ms,
                attrs=dict(attrs, grid_shape=kept, spacing_mm=self.spacing_mm * s,
                           point_order="C order of the decimated grid")))
        return specs

    def add_stimulus(self, spec):
        """``[stimuli.<name>]`` with ``target = "u"``: ``profile(x[, y]) · u(t)`` added to the
        input ``I`` (held over each step, like the bus drive: ``u`` at the step's start)."""
        from ..expression import Expression, ExpressionError
        from ..stimuli import StimulusRecord

        if spec.target != "u":
            raise spec.error("target", f"a neural_field takes target \"u\" (profile(x) u(t) "
                                       f"added to its input), got {spec.target!r}")
        spec.refuse(("profile",), "\"u\" of a neural_field")
        names = ("x",) if len(self.shape) == 1 else ("x", "y")
        text = spec.given.get("profile", "1")
        try:
            expr = Expression(text, names)
        except ExpressionError as exc:
            raise spec.error("profile", str(exc)) from None
        x = self.coordinates()
        w = np.broadcast_to(expr({n: x[:, i] for i, n in enumerate(names)}),
                            (self.n_points,)).astype(np.float64)
        if not np.isfinite(w).all():
            bad = int(np.flatnonzero(~np.isfinite(w))[0])
            raise spec.error("profile", f"{text!r} is {w[bad]} at x = {x[bad].tolist()} mm")
        self._stimuli.append((spec.pattern, w))
        return StimulusRecord(spec.name, self.name, "u", spec.pattern, self.dt_ms, 0.0,
                              tuple(f"p{i}" for i in range(self.n_points)), w,
                              "1 (the field's input I)",
                              "u(k dt) added to I over step k (held, like the bus drive)")

    def coordinates(self) -> np.ndarray:
        """``(N, dims)`` mm: the grid points, C order (point ``i`` of the records)."""
        axes = [np.arange(n) * self.spacing_mm for n in self.shape]
        return np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)

    def set_stimulus(self, fn) -> None:
        """``fn(t_ms, x_mm) → (N,)`` added to the input at every step (``x_mm``: point
        coordinates ``(N, dims)``); the hook for stimuli.  Set before :meth:`build`."""
        self.stimulus = fn

    # -- execution ------------------------------------------------------------------------
    def _initial_field(self) -> np.ndarray:
        u = np.full(self.n_points, self.initial_u)
        if self.initial_noise > 0:
            rng = (self.rng if self.initial_seed is None else Streams(self.initial_seed))
            u += self.initial_noise * rng.generator("neural_field.initial", self.name) \
                .standard_normal(self.n_points)
        return u

    def build(self) -> None:
        self.sheet = Sheet(self.shape, self.spacing_mm, self.tau_ms, self.kernel, self.firing,
                           self.delay_steps, self.dt_ms, self.integrator, self.I0)
        self.sheet.build(self._initial_field())
        self._initial_rate = self.sheet.rate_mean
        self._snap_points = self._snapshot_points()
        if self.stimulus is not None:
            x = self.coordinates()
            fn = self.stimulus
            self._stim = lambda step: np.ascontiguousarray(fn(step * self.dt_ms, x), dtype=np.float64)
        else:
            self._stim = None
        # [stimuli] tables: profiles (J, N); amplitudes evaluated once per window
        self._profiles = (np.ascontiguousarray([w for _, w in self._stimuli], dtype=np.float64)
                          if self._stimuli else None)
        self._built = True

    def initial(self, n_samples: int) -> dict[str, np.ndarray]:
        if not self._built:
            self.build()
        return {"afferent": np.full((n_samples, 1, 1), self._initial_rate)}

    @property
    def time_ms(self) -> float:
        return self.sheet.step * self.dt_ms if self._built else 0.0

    def advance(self, t0_ms: float, t1_ms: float, inputs: dict | None = None) -> WindowOutput:
        if not self._built:
            self.build()
        sheet = self.sheet
        step0 = sheet.step
        if abs(t0_ms - step0 * self.dt_ms) > 1e-6 * self.dt_ms:
            raise ValueError(f"engine {self.name!r} is at t = {step0 * self.dt_ms:g} ms, "
                             f"asked to advance from {t0_ms:g} ms")
        n_steps = cfg.whole(t1_ms - t0_ms, self.dt_ms)
        if n_steps is None or n_steps < 0:
            raise ValueError(f"window [{t0_ms:g}, {t1_ms:g}) ms is not a whole number of steps "
                             f"of dt = {self.dt_ms:g} ms")
        drive = None
        if inputs and "drive" in inputs:
            d = np.asarray(inputs["drive"], dtype=np.float64)[:, 0]
            # the bus gives s_R at the start of each bus step; bus_dt = dt for an exporter
            if d.size != n_steps:
                raise ValueError(f"engine {self.name!r}: drive has {d.size} samples for "
                                 f"{n_steps} steps")
            drive = self.input_gain * d
        every, snap = self.record_every, self.snapshot_every
        if self._stim is not None:                    # a set_stimulus hook: step by step
            rate, umean, snaps = self._advance_hook(n_steps, drive)
        else:
            stim = None
            if self._profiles is not None:
                tt = (step0 + np.arange(n_steps)) * self.dt_ms
                amps = np.empty((n_steps, len(self._stimuli)))
                for j, (pat, _) in enumerate(self._stimuli):
                    amps[:, j] = pat(tt)
                stim = (self._profiles, amps)
            rate, umean, snaps = sheet.run(n_steps, drive, stim, snap, self._snap_points)
        # samples after steps n = step0 + 1 … with n a multiple of `every`
        at = np.flatnonzero((step0 + 1 + np.arange(n_steps)) % every == 0)
        rec = np.stack([umean[at], rate[at]], axis=1)[:, :, None]
        field = snaps[:, None, :]
        aff = rate.reshape(n_steps, 1, 1)
        # a blow-up stops the run here, before this window's samples reach the output
        check_finite(self.name, sheet.u, (("point", lambda i: f"p{i}"),), self.time_ms,
                     dt_ms=self.dt_ms, variable="u")
        records = {MEAN: np.ascontiguousarray(rec[:, self._rec_index])}
        if snap:
            records[FIELD] = field
        return WindowOutput(records=records, exports={"afferent": aff})

    def _advance_hook(self, n_steps, drive):
        sheet, snap = self.sheet, self.snapshot_every
        rate, umean, snaps = np.empty(n_steps), np.empty(n_steps), []

        def on_step(m):
            rate[m], umean[m] = sheet.rate_mean, sheet.u_mean()
            if snap and sheet.step % snap == 0:
                snaps.append(sheet.u[self._snap_points].copy())
        sheet.advance(n_steps, drive, self._stim, on_step)
        return rate, umean, np.array(snaps).reshape(len(snaps), self._snap_points.size)

    def field(self) -> np.ndarray:
        """The current field ``u`` on the grid, shape ``shape``."""
        return self.sheet.u.reshape(self.shape).copy()

    def state(self) -> dict[str, np.ndarray]:
        if not self._built:
            self.build()
        return self.sheet.state()

    def restore(self, state) -> None:
        if not self._built:
            self.build()
        self.sheet.restore(state)
