"""Population-density engine: LIF populations as Fokker–Planck densities over V
(scenario ``type = "population_density"``).

Each population is a large number of identical leaky integrate-and-fire neurons (NEST's
``iaf_psc_delta``: ``τ_m dV/dt = −(V − E_L) + τ_m I_e / C_m`` plus a jump ``J`` per input
spike; threshold ``V_th``, reset ``V_reset`` after ``t_ref``) receiving Poisson input.  In the
diffusion approximation its inputs have mean ``μ`` and variance ``σ²``::

    μ  = E_L + τ_m I_e / C_m + τ_m Σ_inputs J K ν,    σ² = τ_m Σ_inputs J² K ν

over the external input groups (``K`` synapses per neuron of weight ``J`` mV, rate per
synapse ``ν = max(0, gain s_R(t) + rate)`` — ``s_R`` the region's delayed weighted input
from the bus, the rate → Poisson adapter's rule) and the recurrent projections (``ν`` the
source population's rate ``delay`` ms ago).  Synapses are current-based delta synapses
(conductance-based synapses are not modelled).  With ``tau_syn > 0`` the moments are
low-pass filtered, ``τ_s dμ/dt = −μ + μ_in`` (same for σ²), an approximation of
exponentially decaying currents.  The density ``p(V, t)`` obeys

    ∂p/∂t = −∂/∂V [ (μ − V)/τ_m p − σ²/(2τ_m) ∂p/∂V ] + r(t − t_ref) δ(V − V_reset)

with ``p(V_th) = 0``; the population rate is the flux through the threshold, ``r = F(V_th)``
(Hz).  Method (:mod:`cosim.engines.population_density_kernel`): conservative finite volumes
with Scharfetter–Gummel fluxes, backward Euler in time (first order in Δt, second in
``dv``), a tridiagonal (Thomas) solve per population and step; the solve is an M-matrix, so
the density stays ≥ 0 and the total probability (density + refractory) is conserved up to
round-off.  Both are checked at the end of every window, like NaN checks: a drift above
``mass_tolerance`` or a negative density stops the run with a one-line error naming the
engine, population and time.

Scenario section (mV, ms, pA, pF, Hz)::

    [engines.v1]
    type = "population_density"
    region = "rV1"              # the connectome region it stands for (bus coupling)
    dt = 0.1                    # [ms] engine step = bus step (neural masses' dt)
    substeps = 1                # density steps per engine step
    dv = 0.05                   # [mV] grid spacing
    warmup = 0.0                # [ms] relax before t = 0 (bus drive 0)

    [engines.v1.populations.E]  # iaf_psc_delta names
    tau_m = 20.0  V_th = 20.0  V_reset = 10.0  E_L = 0.0  t_ref = 2.0  I_e = 0.0  C_m = 1.0
    tau_syn = 0.0  n = 8000  v_min = -30.0  v_init = [10.0, 20.0]

    [engines.v1.projections.EI] # rate of I, delayed, on 200 synapses of −0.5 mV per E cell
    source = "I"  target = "E"  weight = -0.5  indegree = 200  delay = 1.5

    [engines.v1.inputs.bg]      # Poisson input max(0, gain s_R + rate) per synapse
    target = "E"  weight = 0.1  indegree = 1000  rate = 10.0  gain = 0.0

    [engines.v1.output]         # the region's afferent on the bus
    populations = ["E"]         # pooled rate (weighted by n); default the first population
    map = { type = "linear", gain = 0.00005 }     # as a spikes_to_rate adapter's map

Bus (``Take.DRIVE``, ``Export.AFFERENT``): the engine stands for one region; each engine
step (= bus step) it receives ``s_R`` held over the step and exports ``map(r̄)`` where
``r̄`` is the pooled rate averaged over the step (the spike count per neuron and bin a
spikes → rate adapter would see, without smoothing kernel).  Its initial afferent history
is ``map`` of the rate at t = 0, constant.

Records (dataset ``"timeseries"``, ``(time, variable, region)``, every ``[record] period``,
a whole multiple of dt): ``rate.<pop>`` (Hz, the mean over the record period),
``v_mean.<pop>`` (mV, mean V of all neurons, refractory ones at ``V_reset`` as NEST clamps
them), ``mu.<pop>``, ``sigma.<pop>`` (mV) at the sample time; default: rates and mean V.

Deterministic: no random numbers, so layout independence is exact.  ``max_parts() = 1``
(one region, a few populations).  Checkpoints hold the densities, the rate history (the
refractory and delay ring), the filtered moments and the step counter.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import CosimError, NumericalError
from ..numerics import check_finite
from . import population_density_config as cfg
from . import population_density_kernel as kern
from .base import Engine, Export, RecordSpec, Take, WindowOutput
from .population_density_config import Input, Output, Population, Projection  # noqa: F401

DATASET = "timeseries"
QUANTITIES = (("rate", "Hz"), ("v_mean", "mV"), ("mu", "mV"), ("sigma", "mV"))


class PopulationDensityEngine(Engine):
    """LIF populations as densities over V; see the module docstring.

    Plain Python use::

        eng = PopulationDensityEngine("pd", populations=[Population("E")],
                                      inputs=[Input("bg", "E", 0.2, 1000, rate_hz=12.0)])
        eng.build()
        out = eng.advance(0.0, 10.0, {})
        out.records["timeseries"]        # (time, variable, region)
    """

    type_name = "population_density"
    parameters = cfg.SECTION
    exports = Export.AFFERENT
    takes = Take.DRIVE

    def __init__(self, name: str, *, populations: Sequence[Population],
                 projections: Sequence[Projection] = (), inputs: Sequence[Input] = (),
                 output: Output | None = None, dt_ms: float = cfg.DT.default,
                 substeps: int = cfg.SUBSTEPS.default, dv_mv: float = cfg.DV.default,
                 warmup_ms: float = cfg.WARMUP.default,
                 mass_tolerance: float = cfg.MASS_TOLERANCE.default,
                 record_period_ms: float | None = None, record_variables=None,
                 region_indices: tuple[int, ...] = (), region_label: str | None = None):
        self.name = name
        self.dt_ms = float(dt_ms)
        self.substeps = int(substeps)
        self.h_ms = self.dt_ms / self.substeps
        self.dv_mv = float(dv_mv)
        self.warmup_ms = float(warmup_ms)
        self._warmup_steps = (cfg.whole_steps(self.warmup_ms, self.dt_ms, self._key("warmup"),
                                              "the warm-up", "dt") if self.warmup_ms > 0 else 0)
        self.mass_tolerance = float(mass_tolerance)
        self.region_indices = np.asarray(region_indices, dtype=np.int64).reshape(-1)
        self.region_label = region_label or (name if not self.region_indices.size else None)
        self.pops = list(populations)
        self.projections = list(projections)
        self.inputs = list(inputs)
        names = [p.name for p in self.pops]
        if not names:
            raise CosimError("declare at least one population", key=self._key("populations"))
        if len(set(names)) != len(names):
            raise CosimError("a population is declared twice", key=self._key("populations"))
        self.output = output or Output((names[0],))
        for p in self.output.populations:
            if p not in names:
                raise CosimError(f"unknown population {p!r}", key=self._key("output", "populations"))
        self._index = {n: i for i, n in enumerate(names)}
        self._describe_grid()
        period = self.dt_ms if record_period_ms is None else float(record_period_ms)
        every = cfg.whole_steps(period, self.dt_ms, "record.period", "the record period", "dt")
        self.record_period_ms, self.record_every = every * self.dt_ms, every
        allowed = [f"{q}.{p}" for p in names for q, _ in QUANTITIES]
        default = [f"{q}.{p}" for q in ("rate", "v_mean") for p in names]
        self.record_variables = tuple(record_variables or default)
        for v in self.record_variables:
            if v not in allowed:
                raise CosimError(f"engine {name!r} records {', '.join(allowed)}, not {v!r}",
                                 key=f"record.{name}.variables")
        self._built = False

    def _key(self, *parts: str) -> str:
        return ".".join(("engines", self.name) + parts)

    def _describe_grid(self) -> None:
        """Grid sizes, delays in density steps, the kernel's constant arrays."""
        h_t = self.h_ms
        cells, hs, resets, refs = [], [], [], []
        for p in self.pops:
            key = self._key("populations", p.name)
            n, h, ir = cfg.grid_cells(p, self.dv_mv, key + ".v_min")
            cells.append(n), hs.append(h), resets.append(ir)
            refs.append(cfg.whole_steps(p.t_ref, h_t, key + ".t_ref", "t_ref"))
        delays = [cfg.whole_steps(c.delay_ms, h_t, self._key("projections", c.name, "delay"),
                                  "the delay") for c in self.projections]
        self.n_cells = np.array(cells, dtype=np.int64)
        self.ring = int(max(refs + delays)) + 1
        P = self.pops
        offset = np.concatenate([[0], np.cumsum(self.n_cells)[:-1]]).astype(np.int64)
        vmin = np.array([p.V_th - n * h for p, n, h in zip(P, cells, hs)])
        self._grid = kern.Grid(
            offset, self.n_cells.copy(), np.array(hs), vmin, np.array([p.tau_m for p in P]),
            np.array([p.E_L + p.tau_m * p.I_e / p.C_m for p in P]),
            np.array(resets, dtype=np.int64), np.array(refs, dtype=np.int64),
            np.array([p.tau_syn for p in P]), np.array([p.V_reset for p in P]))
        ix = self._index
        g, c = self.inputs, self.projections
        self._inputs = kern.Inputs(
            np.array([ix[x.target] for x in g], dtype=np.int64),
            np.array([x.weight for x in g], dtype=np.float64),
            np.array([x.indegree for x in g], dtype=np.float64),
            np.array([x.gain / 1000.0 for x in g], dtype=np.float64),
            np.array([x.rate_hz / 1000.0 for x in g], dtype=np.float64),
            np.array([ix[x.source] for x in c], dtype=np.int64),
            np.array([ix[x.target] for x in c], dtype=np.int64),
            np.array([x.weight for x in c], dtype=np.float64),
            np.array([x.indegree for x in c], dtype=np.float64),
            np.array(delays, dtype=np.int64))
        sizes = np.array([p.n for p in P], dtype=np.float64)
        pooled = np.array([p.name in self.output.populations for p in P])
        self._pool = np.where(pooled, sizes, 0.0) / sizes[pooled].sum()

    # -- engine contract ----------------------------------------------------------------
    @property
    def population_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.pops)

    def grid(self, pop: str) -> tuple[np.ndarray, float]:
        """Cell centres (mV) and spacing of population ``pop``'s grid."""
        k = self._index[pop]
        h = float(self._grid.h[k])
        return self._grid.v_min[k] + (np.arange(self.n_cells[k]) + 0.5) * h, h

    def work(self) -> float:
        """Cell updates per ms."""
        return float(self.n_cells.sum()) / self.h_ms

    def record_specs(self) -> list[RecordSpec]:
        units = dict(QUANTITIES)
        label = self.region_label or str(self.region_indices[0])
        return [RecordSpec(DATASET, self.record_variables,
                           tuple(units[v.split(".")[0]] for v in self.record_variables),
                           (label,), self.record_period_ms,
                           attrs={"dt_ms": self.dt_ms, "substeps": self.substeps,
                                  "method": "finite volume, Scharfetter-Gummel, backward Euler"})]

    def build(self) -> None:
        n_pop = len(self.pops)
        total = int(self.n_cells.sum())
        p = np.zeros(total)
        for k, pop in enumerate(self.pops):
            v, h = self.grid(pop.name)
            lo, hi = pop.v_init if pop.v_init is not None else (pop.V_reset, pop.V_th)
            # cell averages of the uniform density on [lo, hi]: overlap of each cell
            left = np.clip(v - 0.5 * h, lo, hi)
            right = np.clip(v + 0.5 * h, lo, hi)
            mass = right - left
            p[self._grid.offset[k]:self._grid.offset[k] + self.n_cells[k]] = mass / mass.sum() / h
        self._st = kern.State(p, np.zeros((self.ring, n_pop)), np.zeros(n_pop), np.zeros(n_pop),
                              np.zeros(1, dtype=np.int64))
        self._cw = np.zeros((n_pop, int(self.n_cells.max())))
        self._mom = np.zeros(2 + n_pop)
        self._masses = np.zeros((n_pop, 2))
        self._rec_acc = np.zeros(n_pop)
        self._step = 0                      # engine steps since t = 0
        self._prime_moments()
        if self._warmup_steps:
            self._run(np.zeros(self._warmup_steps))
        # the rate at t = 0: the last warm-up step's, or 0 for a fresh density
        self._rate0 = self._last_rates.copy() if self.warmup_ms > 0 else np.zeros(n_pop)
        self._built = True

    def _prime_moments(self) -> None:
        """Filtered moments start at their input values (no filter transient at t = 0)."""
        for k in range(len(self.pops)):
            kern.moments_in(k, 0.0, self._grid, self._inputs, self._st.hist, -1, self.ring,
                            self._mom)
            self._st.mu[k], self._st.s2[k] = self._mom[0], self._mom[1]

    def _run(self, drive: np.ndarray):
        S, n_pop = drive.size, len(self.pops)
        outs = tuple(np.empty((S, n_pop)) for _ in range(4))
        kern.advance_window(S, self.substeps, self.h_ms, np.ascontiguousarray(drive, dtype=np.float64),
                            self._grid, self._inputs, self._st, self._cw, self._mom, *outs)
        self._last_rates = outs[0][-1] * 1000.0 if S else np.zeros(n_pop)
        return outs

    def initial(self, n_samples: int) -> dict[str, np.ndarray]:
        if not self._built:
            self.build()
        a = self.output.map(np.array([float(self._pool @ self._rate0)]))
        return {"afferent": np.full((n_samples, 1, 1), a[0])}

    def advance(self, t0_ms: float, t1_ms: float, inputs: dict) -> WindowOutput:
        """Advance ``[t0, t1)``; ``inputs["drive"]`` ``(S, 1)`` the bus drive per step (0 when
        absent)."""
        if not self._built:
            self.build()
        if abs(t0_ms - self._step * self.dt_ms) > 1e-6 * self.dt_ms:
            raise ValueError(f"engine {self.name!r} is at t = {self._step * self.dt_ms:g} ms, "
                             f"asked to advance from {t0_ms:g} ms")
        S = int(round((t1_ms - t0_ms) / self.dt_ms))
        if S < 1 or abs(S * self.dt_ms - (t1_ms - t0_ms)) > 1e-6 * self.dt_ms:
            raise ValueError(f"window [{t0_ms:g}, {t1_ms:g}) ms is not a whole number of steps "
                             f"of dt = {self.dt_ms:g} ms")
        drive = inputs.get("drive") if inputs else None
        s = np.zeros(S) if drive is None else np.asarray(drive, dtype=np.float64)[:, 0]
        if s.shape != (S,):
            raise ValueError(f"input 'drive' must have {S} steps, got {np.shape(drive)}")
        rate, vmean, mu, sigma = self._run(s)
        rate_hz = rate * 1000.0
        self._step += S
        self._check(t1_ms)
        pooled = rate_hz @ self._pool
        exports = {"afferent": self.output.map(pooled).reshape(S, 1, 1)}
        return WindowOutput(records={DATASET: self._samples(rate_hz, vmean, mu, sigma)},
                            exports=exports)

    def _samples(self, rate_hz, vmean, mu, sigma) -> np.ndarray:
        """Record samples at engine steps that are multiples of ``record_every``: rates
        averaged over the record period, the other quantities at the sample step."""
        S = rate_hz.shape[0]
        step0 = self._step - S
        every = self.record_every
        ends = np.flatnonzero((step0 + np.arange(1, S + 1)) % every == 0)
        csum = np.cumsum(rate_hz, axis=0) + self._rec_acc           # (S, population)
        rates = np.diff(np.vstack([np.zeros((1, csum.shape[1])), csum[ends]]), axis=0)
        self._rec_acc = csum[-1] - csum[ends[-1]] if ends.size else csum[-1].copy()
        by = {"rate": rates / every, "v_mean": vmean[ends], "mu": mu[ends], "sigma": sigma[ends]}
        cols = [by[q][:, self._index[p]] for q, p in
                (v.split(".", 1) for v in self.record_variables)]
        return np.stack(cols, axis=1)[:, :, None]

    def _check(self, t_ms: float) -> None:
        """Finite, non-negative densities whose total probability is 1 (module docstring)."""
        st = self._st
        check_finite(self.name, st.p, (("cell", lambda i: str(i)),), t_ms, dt_ms=self.h_ms,
                     variable="density")
        kern.masses(self._grid, st.p, st.hist, int(st.clock[0]), self.h_ms, self._masses)
        for k, pop in enumerate(self.pops):
            drift = abs(self._masses[k, 0] - 1.0)
            if not drift <= self.mass_tolerance:
                raise NumericalError(
                    f"engine {self.name}: population {pop.name}: total probability "
                    f"{self._masses[k, 0]:.15g} drifted from 1 by {drift:.3g} (tolerance "
                    f"{self.mass_tolerance:g}) at t = {t_ms:.6g} ms", engine=self.name,
                    location={"population": pop.name}, t_ms=float(t_ms))
            if self._masses[k, 1] < 0.0:
                raise NumericalError(
                    f"engine {self.name}: population {pop.name}: density is negative "
                    f"({self._masses[k, 1]:.3g}) at t = {t_ms:.6g} ms", engine=self.name,
                    location={"population": pop.name}, t_ms=float(t_ms))

    def probability(self) -> np.ndarray:
        """Total probability (density + refractory) of every population now."""
        kern.masses(self._grid, self._st.p, self._st.hist, int(self._st.clock[0]), self.h_ms,
                    self._masses)
        return self._masses[:, 0].copy()

    def density(self, pop: str) -> np.ndarray:
        """The density of population ``pop`` (1/mV, a view)."""
        k = self._index[pop]
        o = int(self._grid.offset[k])
        return self._st.p[o:o + int(self.n_cells[k])]

    def set_density(self, pop: str, p: np.ndarray) -> None:
        """Start population ``pop`` from the density ``p`` (1/mV on its grid, total
        probability ``h Σ p = 1``), no neuron refractory and no earlier rates."""
        if not self._built:
            self.build()
        k = self._index[pop]
        p = np.asarray(p, dtype=np.float64)
        h = float(self._grid.h[k])
        if p.shape != (int(self.n_cells[k]),) or (p < 0).any() or abs(h * p.sum() - 1) > 1e-12:
            raise ValueError(f"density of {pop!r} must be {int(self.n_cells[k])} values >= 0 "
                             f"with h sum = 1")
        self.density(pop)[:] = p
        self._st.hist[:, k] = 0.0

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        if not self._built:
            self.build()
        st = self._st
        return {"p": st.p.copy(), "hist": st.hist.copy(), "mu": st.mu.copy(), "s2": st.s2.copy(),
                "clock": st.clock.copy(), "step": np.array(self._step),
                "record_acc": self._rec_acc.copy(), "rate0": self._rate0.copy()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        if not self._built:
            self.build()
        st = self._st
        for key, target in (("p", st.p), ("hist", st.hist), ("mu", st.mu), ("s2", st.s2),
                            ("clock", st.clock), ("record_acc", self._rec_acc),
                            ("rate0", self._rate0)):
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"checkpoint {key!r} has shape {value.shape}, expected "
                                 f"{target.shape}")
            target[...] = value
        self._step = int(np.asarray(state["step"]))

    # -- scenario -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, name: str, reader, ctx) -> "PopulationDensityEngine":
        kw = cfg.engine_kwargs(name, reader, ctx)
        idx = kw["region_indices"]
        label = str(ctx.connectome.region_labels[idx[0]]) if idx else name
        try:
            return cls(name, region_label=label, **kw)
        except CosimError as exc:
            raise exc.at(file=ctx.file, key=exc.key or f"engines.{name}")
