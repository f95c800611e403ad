"""The cortical-surface engine: a neural mass at every vertex, coupled locally through a
sparse local-connectivity matrix and over the connectome (The Virtual Brain's surface
simulation; method in :mod:`cosim.fields.surface`).

Scenario section::

    [engines.cortex]
    type = "neural_field"
    geometry = "surface"                        # (type = "neural_surface": the same engine)
    model = "generic_2d_oscillator"             # any cosim model (see `cosim models`)
    region_mapping = "tvb:regionMapping_16k_76"  # or a text file: one region per vertex
    local_connectivity = "tvb:local_connectivity_16384"   # or a .mat / .npz sparse matrix,
                                                # or "geodesic" with a [….local_kernel] table:
    # [engines.cortex.local_kernel]             # L_ij = k(geodesic d_ij < cutoff), TVB's rule
    # surface = "tvb:cortex_16384"              #   (cosim.fields.geodesic; needs tvb-gdist)
    # cutoff = 10.0                             # mm
    # type = "gaussian"                         # or "double_gaussian"; then its parameters:
    # sigma = 3.0                               #   amp, sigma, midpoint, offset
    local_coupling_strength = 1.0               # κ (TVB's Cortex.coupling_strength)
    dt = 0.1                                    # ms
    integrator = "heun"                         # or "euler" (TVB's deterministic schemes)
    threads = 1                                 # numba threads of the window kernel (same bits)
    [engines.cortex.parameters]                 # model parameters (one value each)
    [engines.cortex.coupling]                   # long-range coupling: type and parameters
    type = "linear"
    G = 0.01
    [engines.cortex.initial]                    # one value per state variable, or
    random = true                               # uniform in the model's range per vertex

Regions without vertices must be simulated by other engines declared before this one
(e.g. subcortical neural masses): their afferents come from the bus (``Take.SOURCES``), and
the surface exports its regions' afferents — ``g`` of the region averages — every step
(``Export.AFFERENT``).  Delays: ``rint(length / speed /
dt)`` steps at ``[connectome] speed``.  Record: ``"regions"`` ``(time, variable, region)``,
the region averages of the state variables every ``[record] period``.  The ``[record.<name>]``
monitors read that dataset: ``[record.<name>.bold]`` is BOLD per region — the
Balloon–Windkessel model driven by the region average (cosim's neural-mass BOLD on the
region series; TVB's surface Bold runs its kernel per vertex: with a linear kernel,
``hrf = "<kernel>"``, averaging per region first gives the same numbers; the Balloon model is
nonlinear, so driving it per vertex and averaging would differ at second order in the
spread of the vertices of a region).

It splits into contiguous vertex blocks over as many ranks as the plan gives it (when it
simulates every region; else it runs on one rank); the blocks are joined after each stage
through the engine's ``exchange``, so a split run gives the one-rank bits.
"""

from __future__ import annotations


import numba
import numpy as np

from ..errors import CosimError
from ..fields import geodesic as geo
from ..fields import surface as sf
from ..multicompartment.partition import block
from ..numerics import check_finite
from ..params import REQUIRED, Param, section
from ..rng import Streams
from . import neural_mass_config as nmc
from .base import BuildContext, Engine, Export, RecordSpec, Take, WindowOutput

DATASET = "regions"

#: geodesic local connectivities built in this process (the split parts share one)
_GEODESIC: dict = {}

MODEL = nmc.MODEL
REGION_MAPPING = Param("region_mapping", "tvb:regionMapping_16k_76", "", "vertex → connectome "
                       "region: a tvb: name or a text file of one region index per vertex",
                       type="string")
LOCAL_CONNECTIVITY = Param("local_connectivity", "tvb:local_connectivity_16384", "",
                           "sparse local connectivity (vertex × vertex): a tvb: name, a .mat "
                           "or a .npz file, or \"geodesic\": built from a kernel of geodesic "
                           "distance on the surface ([engines.<name>.local_kernel])",
                           type="string")
SURFACE = Param("surface", "tvb:cortex_16384", "", "the triangle mesh (vertices in mm): "
                "tvb:cortex_16384, a TVB surface .zip or a .npz of vertices and triangles",
                type="string")
CUTOFF = Param("cutoff", REQUIRED, "mm", "geodesic distance beyond which L = 0 (TVB's "
               "LocalConnectivity.cutoff)", gt=0)
KERNEL = Param("type", "gaussian", "", "kernel of the geodesic distance d (TVB's equations): "
               "gaussian amp·exp(−(d−midpoint)²/2σ²)+offset [amp, sigma, midpoint, offset]; "
               "double_gaussian [amp_1, sigma_1, midpoint_1, amp_2, sigma_2, midpoint_2]",
               type="string", choices=tuple(geo.KERNELS))
EXCLUDE = Param("exclude_regions", [], "", "connectome regions whose vertices are removed "
                "from the surface (with their rows and columns of the local connectivity), to "
                "be simulated by other engines", type="strings")
LOCAL_STRENGTH = Param("local_coupling_strength", 1.0, "1", "κ: factor of the local "
                       "connectivity (TVB's Cortex.coupling_strength)")
DT = nmc.DT.with_(doc="integration step")
INTEGRATOR = Param("integrator", "heun", "", "heun (TVB's HeunDeterministic) or euler",
                   type="string", choices=("heun", "euler"))
EEG = Param("eeg", None, "", "EEG projection (sensor × surface vertex, .npy or "
            "tvb:projection_eeg_65_surface_16k): dataset \"eeg\" = P q every record period, q "
            "the model's local variable at each vertex; sensor rows with NaN/Inf are left out",
            type="string")
MEG = Param("meg", None, "", "MEG projection (tvb:projection_meg_276_surface_16k or a .npy): "
            "dataset \"meg\", as eeg", type="string")
THREADS = Param("threads", 1, "", "numba threads of the one-part window kernel (a prange over "
                "the vertices per stage and over the regions for their averages: the same bits "
                "as 1 thread); at most numba's NUMBA_NUM_THREADS (the cores by default); split "
                "parts (MPI ranks) step on one thread each", type="integer", ge=1, le=256)
COMPILE_PARAMETERS = Param(
    "compile_parameters", True, "", "compile the model's parameter values into the window "
    "kernel (the same bits as reading them, ~10 % faster per step; one numba compile of "
    "tens of seconds per new parameter set, then cached on disk: set false for sweeps and "
    "fits over model parameters)",
    type="boolean")
INITIAL_RANDOM = Param("random", False, "", "variables not given are uniform in the model's "
                       "range at every vertex (stream (seed, \"neural_surface.initial\", engine))",
                       type="boolean")

SECTION = section(
    "engines.<name>", "type = \"neural_field\" with geometry = \"surface\" (or type = "
    "\"neural_surface\", the same engine): a neural mass at every vertex of a cortical "
    "surface, local + long-range coupling (cosim.engines.neural_surface)",
    (MODEL, REGION_MAPPING, LOCAL_CONNECTIVITY, LOCAL_STRENGTH, EXCLUDE, DT, INTEGRATOR, EEG,
     MEG, THREADS, COMPILE_PARAMETERS),
    (section("engines.<name>.parameters", "model parameters, one value each", open=True),
     section("engines.<name>.coupling", "long-range coupling type and parameters (one value "
             "each)", (nmc.COUPLING_TYPE,), open=True),
     section("engines.<name>.initial", "initial state, held as history for t <= 0: one value "
             "per state variable", (INITIAL_RANDOM,), open=True),
     section("engines.<name>.local_kernel", "with local_connectivity = \"geodesic\": L_ij = "
             "k(d_ij) for the geodesic distances d_ij < cutoff (tvb-gdist), rows homogenised "
             "as TVB's LocalConnectivity (cosim.fields.geodesic); kernel parameters one value "
             "each", (SURFACE, CUTOFF, KERNEL), open=True)))


class NeuralSurfaceEngine(Engine):
    """See the module docstring."""

    type_name = "neural_surface"
    parameters = SECTION
    exports = Export.AFFERENT
    takes = Take.SOURCES

    def __init__(self, name: str, model, connectome, *, region_mapping="tvb:regionMapping_16k_76",
                 local_connectivity="tvb:local_connectivity_16384",
                 local_coupling_strength: float = 1.0, dt_ms: float = DT.default,
                 integrator: str = "heun", parameters=None, coupling=None,
                 coupling_parameters=None, initial=None, random_initial=False,
                 initial_state: np.ndarray | None = None, seed=0,
                 speed_mm_per_ms: float = 3.0, record_period_ms: float | None = None,
                 record_variables=None, base_dir=None, sync_interval_ms: float | None = None,
                 exclude_regions=(), eeg=None, meg=None, threads: int = 1,
                 compile_parameters: bool = COMPILE_PARAMETERS.default, part=(0, 1)):
        self._args = dict(name=name, model=model, connectome=connectome,
                          region_mapping=region_mapping, local_connectivity=local_connectivity,
                          local_coupling_strength=local_coupling_strength, dt_ms=dt_ms,
                          integrator=integrator, parameters=parameters, coupling=coupling,
                          coupling_parameters=coupling_parameters, initial=initial,
                          random_initial=random_initial, initial_state=initial_state, seed=seed,
                          speed_mm_per_ms=speed_mm_per_ms, record_period_ms=record_period_ms,
                          record_variables=record_variables, base_dir=base_dir,
                          sync_interval_ms=sync_interval_ms, exclude_regions=exclude_regions,
                          eeg=eeg, meg=meg, threads=threads,
                          compile_parameters=compile_parameters)
        self.name = str(name)
        # shown in plans, `cosim validate` and the output's engine attributes: the type the
        # scenario means (neural_surface is an alias; the class stays registered under it)
        self.type_name = "neural_field"
        self.model = nmc.resolve_model(model)
        self.options = nmc.resolve_options(self.model, None)
        self.dt_ms = float(dt_ms)
        if integrator not in INTEGRATOR.choices:
            raise CosimError(f"must be one of {', '.join(INTEGRATOR.choices)}, got {integrator!r}",
                             key="integrator")
        self.integrator = integrator
        if not 1 <= int(threads) <= numba.config.NUMBA_NUM_THREADS:
            raise CosimError(f"must be 1 … {numba.config.NUMBA_NUM_THREADS} (numba's "
                             f"NUMBA_NUM_THREADS), got {threads}", key="threads")
        self.threads = int(threads)
        #: the model's parameter values compiled into the kernels (see :meth:`_fixed`)
        self.compile_parameters = bool(compile_parameters)
        self.rng = Streams.of(seed)
        try:
            self.region_of = sf.load_region_mapping(region_mapping, base_dir)
        except CosimError as exc:
            raise CosimError(exc.reason, key="region_mapping") from None
        self._lc_spec = local_connectivity
        self._base_dir = base_dir
        labels = tuple(connectome.region_labels)
        n_reg = len(labels)
        if self.region_of.max() >= n_reg:
            raise CosimError(f"maps a vertex to region {int(self.region_of.max())}; the connectome "
                             f"has {n_reg} regions", key="region_mapping")
        self.n_surface_vertices = int(self.region_of.size)
        drop = []
        for k, lab in enumerate(exclude_regions):
            if lab not in labels:
                from ..region_names import suggestion
                raise CosimError(f"unknown region {lab!r} in the connectome"
                                 + suggestion(lab, labels), key=f"exclude_regions[{k}]")
            drop.append(labels.index(lab))
        #: the surface vertices kept (all but those of the excluded regions), ascending
        self.kept = np.flatnonzero(~np.isin(self.region_of, drop)).astype(np.int64)
        if not self.kept.size:
            raise CosimError("excludes every vertex", key="exclude_regions")
        self.region_of = np.ascontiguousarray(self.region_of[self.kept])
        self.n_vertices = int(self.region_of.size)
        self.counts = np.bincount(self.region_of, minlength=n_reg).astype(np.float64)
        #: the kernels' copy of region_of, as narrow as fits (uint16 for the connectomes'
        #: tens to hundreds of regions: a quarter of the bytes each pass streams)
        self._rk = np.ascontiguousarray(self.region_of, dtype=sf.index_dtype(n_reg))
        # the regions with vertices are the engine's; the others belong to other engines
        self.region_indices = np.flatnonzero(self.counts > 0).astype(np.int64)
        self.external = np.flatnonzero(self.counts == 0).astype(np.int64)
        self.all_labels = labels
        self.region_labels = tuple(labels[i] for i in self.region_indices)
        self.local_strength = float(local_coupling_strength)
        names = [v.name for v in self.model.state_variables]
        spec = sf.LOCAL.get(self.model.name, (self.model.coupling_variables[0], None, 0, "1"))
        self._local = (names.index(spec[0]), -1 if spec[1] is None else names.index(spec[1]),
                       spec[2])
        self.coupling = nmc.resolve_coupling(self.model, coupling)
        self.coupling_params = nmc.coupling_parameters(self.coupling, labels, coupling_parameters or {})
        if self.coupling.name in ("difference", "kuramoto") and self.external.size:
            raise CosimError(f"{self.coupling.name} coupling reads the target's state; with "
                             f"regions of other engines use linear, scaling or a sigmoid",
                             key="coupling.type")
        #: the model parameters, one row (every vertex has them)
        self.param_row = nmc.model_parameters(self.model, ("all",), parameters or {})[0]
        if spec[3] == "1/gamma":
            gamma = self.param_row[self.model.parameter_names.index("gamma")]
            if gamma == 0:
                raise CosimError("gamma = 0: TVB's local term lc is added next to gamma·c; "
                                 "cosim adds lc/gamma to c", key="parameters.gamma")
            self._lfactor = 1.0 / gamma
        else:
            self._lfactor = 1.0
        self._weights = np.asarray(connectome.weights, dtype=np.float64)
        self._steps = connectome.delay_steps(speed_mm_per_ms, self.dt_ms)
        nz = self._weights != 0
        self.max_delay_steps = int(self._steps[nz].max()) if nz.any() else 0
        self.window_steps = (nmc.whole_multiple(sync_interval_ms, self.dt_ms) or 1
                             if sync_interval_ms else 1)
        self.speed_mm_per_ms = float(speed_mm_per_ms)
        (self.record_period_ms, self.record_every, self.record_variables,
         self._rec_vars) = nmc.record_selection(self.model, self.dt_ms, record_period_ms,
                                                record_variables)
        self._initial_state = initial_state
        self._initial = dict(initial or {})
        for k in self._initial:
            if k not in names:
                raise CosimError(f"not a state variable of {self.model.name}"
                                 + nmc.suggest(k, names), key=f"initial.{k}")
        self.random_initial = bool(random_initial)
        self.sensors = {}
        for key, spec_ in (("eeg", eeg), ("meg", meg)):
            if spec_ is None:
                continue
            try:
                m = sf.load_projection(spec_, base_dir, mmap=True)
            except CosimError as exc:
                raise CosimError(exc.reason, key=key) from None
            if m.shape[1] != self.n_surface_vertices:
                raise CosimError(f"projects {m.shape[1]} vertices; the surface has "
                                 f"{self.n_surface_vertices}", key=key)
            # rows with NaN/Inf (tvb-data's files have some: unused channels) are left out
            rows = np.flatnonzero(np.isfinite(m).all(axis=1))
            if not rows.size:
                raise CosimError("has no sensor row without NaN/Inf", key=key)
            self.sensors[key] = (spec_, rows)
        self.part, self.n_parts = part
        b = block(self.n_vertices, self.part, self.n_parts)
        self.v0, self.v1 = b.start, b.stop
        self._exchange = None
        self._bus = False
        self._ext_until = None
        self._built = False

    @classmethod
    def from_config(cls, name: str, reader, ctx: BuildContext) -> "NeuralSurfaceEngine":
        from pathlib import Path
        r = reader
        if r.has("geometry") and r.any("geometry", None) != "surface":
            raise r.error("geometry", f"must be \"surface\" for this engine, got "
                                      f"{r.any('geometry', None)!r}")
        kw = dict(region_mapping=r.param(REGION_MAPPING), exclude_regions=r.param(EXCLUDE),
                  eeg=r.param(EEG), meg=r.param(MEG),
                  local_connectivity=r.param(LOCAL_CONNECTIVITY),
                  local_coupling_strength=r.param(LOCAL_STRENGTH), dt_ms=r.param(DT),
                  integrator=r.param(INTEGRATOR), threads=r.param(THREADS),
                  compile_parameters=r.param(COMPILE_PARAMETERS))
        model = r.param(MODEL)
        pr = r.table("parameters", {})
        kw["parameters"] = {k: pr.number(k) for k in pr.keys()}
        cr = r.table("coupling", {})
        kw["coupling"] = cr.param(nmc.COUPLING_TYPE)
        kw["coupling_parameters"] = {k: cr.number(k) for k in cr.keys() if k != "type"}
        ir = r.table("initial", {})
        kw["random_initial"] = ir.param(INITIAL_RANDOM)
        kw["initial"] = {k: ir.number(k) for k in ir.keys() if k != INITIAL_RANDOM.name}
        if kw["local_connectivity"] == "geodesic":
            lr = r.table("local_kernel")
            kw["local_connectivity"] = {
                "surface": lr.param(SURFACE), "cutoff": lr.param(CUTOFF),
                "kernel": lr.param(KERNEL),
                "parameters": {k: lr.number(k) for k in lr.keys()
                               if k not in (SURFACE.name, CUTOFF.name, KERNEL.name)}}
        elif r.has("local_kernel"):
            raise r.error("local_kernel", "only with local_connectivity = \"geodesic\"")
        r.done(allowed_extra=("type", "geometry"))
        try:
            eng = cls(name, model, ctx.connectome, seed=ctx.rng, speed_mm_per_ms=ctx.speed_mm_per_ms,
                      record_period_ms=ctx.record_period_ms, record_variables=ctx.record_variables,
                      base_dir=Path(ctx.file).parent if ctx.file else None,
                      sync_interval_ms=ctx.sync_interval_ms, **kw)
            eng._check_local()
        except CosimError as exc:
            raise nmc.locate(exc, name, reader) from None
        missing = [int(r) for r in eng.external if int(r) not in ctx.claimed_regions]
        excluded = [r for r in missing if eng.all_labels[r] in (kw["exclude_regions"] or ())]
        if excluded:
            # the engine that should simulate them is missing: the set of engines is wrong
            raise CosimError(f"region {eng.all_labels[excluded[0]]!r} is left out of the "
                             f"surface by engines.{name}.exclude_regions, but no engine "
                             f"declared before {name!r} simulates it", file=reader.file,
                             key="engines")
        if missing:
            raise CosimError(f"region {eng.all_labels[missing[0]]!r} has no vertex; a "
                             f"region without vertices must be simulated by an engine "
                             f"declared before this one ({len(missing)} such regions)",
                             file=reader.file, key=reader.key("region_mapping"))
        return eng

    @property
    def params(self) -> np.ndarray:
        """``(region, parameter)`` of the engine's regions (the recorded columns), every row
        :attr:`param_row` — what monitors (e.g. a Jansen–Rit rate transfer) read per region."""
        return np.broadcast_to(self.param_row, (self.region_indices.size, self.param_row.size))

    def _check_local(self):
        """Load the local connectivity once at description time (its shape is checked; a
        geodesic one: the surface and the kernel, the matrix is built at :meth:`build`)."""
        spec = self._lc_spec
        if isinstance(spec, dict):
            try:
                v, _ = geo.load_surface(spec["surface"], self._base_dir)
            except CosimError as exc:
                raise CosimError(exc.reason, key="local_kernel.surface") from None
            if v.shape[0] != self.n_surface_vertices:
                raise CosimError(f"has {v.shape[0]} vertices; the region mapping has "
                                 f"{self.n_surface_vertices}", key="local_kernel.surface")
            try:
                geo.kernel_values(spec["kernel"], spec["parameters"], np.zeros(1))
            except CosimError as exc:
                raise CosimError(exc.reason, key=f"local_kernel.{exc.key or 'type'}") from None
            if spec["cutoff"] is None or not spec["cutoff"] > 0:
                raise CosimError("must be > 0 mm", key="local_kernel.cutoff")
            return
        try:
            m = sf.load_local_connectivity(self._lc_spec, self._base_dir)
        except CosimError as exc:
            raise CosimError(exc.reason, key="local_connectivity") from None
        if m.shape[0] != self.n_surface_vertices:
            raise CosimError(f"is {m.shape[0]} × {m.shape[1]}; the region mapping has "
                             f"{self.n_surface_vertices} vertices", key="local_connectivity")

    # -- contract -------------------------------------------------------------------------
    def work(self) -> float:
        return self.n_vertices * self.model.n_state * 8.0 / self.dt_ms

    def max_parts(self) -> int:
        """Vertex blocks of ≥ 1024 vertices; 1 when other engines simulate some regions
        (every part reads the whole bus input; only part 0 takes and exports it)."""
        return 1 if self.external.size else max(1, self.n_vertices // 1024)

    def part_regions(self, part: int, n_parts: int) -> np.ndarray:
        return self.region_indices if part == 0 else self.region_indices[:0]

    def coupled(self) -> None:
        self._bus = True

    def initial(self, n_samples: int) -> dict[str, np.ndarray]:
        if not self._built:
            self.build()
        a0 = self._hist[0][:, self._own]               # the constant initial afferents
        return {"afferent": np.ascontiguousarray(np.broadcast_to(a0, (n_samples,) + a0.shape))}

    def partition(self, part, n_parts, exchange=None):
        if n_parts == 1:
            return self
        eng = type(self)(**self._args, part=(part, n_parts))
        eng._exchange = exchange
        return eng

    def merge_records(self, by_part):
        return by_part[0]            # every part holds the whole state after each step

    def record_specs(self):
        units = dict(zip(self.model.state_names, self.model.state_units))
        return [RecordSpec(DATASET, self.record_variables,
                           tuple(units[v] for v in self.record_variables), self.region_labels,
                           self.record_period_ms,
                           attrs={"model": self.model.name, "coupling": self.coupling.name,
                                  "integrator": self.integrator, "dt_ms": self.dt_ms,
                                  "n_vertices": self.n_vertices,
                                  "local_coupling_strength": self.local_strength,
                                  "monitor": "region average of the vertex states"})] + [
            RecordSpec(key, (key,), ("1",), tuple(f"{key}{i}" for i in rows),
                       self.record_period_ms,
                       attrs={"projection": spec_, "projected": self._local_name(),
                              "monitor": f"{key}: projection of the vertex activity "
                                         "(sensor rows with NaN/Inf left out)"})
            for key, (spec_, rows) in self.sensors.items()]

    def _local_name(self) -> str:
        lp, lm, _ = self._local
        names = self.model.state_names
        return names[lp] + (f" - {names[lm]}" if lm >= 0 else "")

    # -- execution ------------------------------------------------------------------------
    def initial_vertex_state(self) -> np.ndarray:
        """``(vertex, state)`` at t = 0 (also the history for t ≤ 0)."""
        V, sv = self.n_vertices, self.model.state_variables
        if self._initial_state is not None:
            x = np.array(self._initial_state, dtype=np.float64)
            if x.shape != (V, len(sv)):
                raise ValueError(f"initial_state must be ({V}, {len(sv)}), got {x.shape}")
            return x
        if self.random_initial:
            lo = np.array([v.range[0] for v in sv])
            hi = np.array([v.range[1] for v in sv])
            x = lo + (hi - lo) * self.rng.generator("neural_surface.initial", self.name).random((V, len(sv)))
        else:
            x = np.tile([v.initial for v in sv], (V, 1)).astype(np.float64)
        for k, v in self._initial.items():
            x[:, [s.name for s in sv].index(k)] = v
        return x

    def build(self) -> None:
        dfun = self.model.dfun(self.options)
        lc = self.local_matrix()
        if self.kept.size != lc.shape[0]:
            lc = lc[self.kept][:, self.kept].tocsr()
            lc.sort_indices()
        # κ (and the model's factor) in every entry, as TVB's Cortex.prepare_local_coupling;
        # fixed-width rows + remainder (sf.ell_split): predictable loops over ~6 neighbours
        lc = (lc * (self.local_strength * self._lfactor)).tocsr()
        lc.sort_indices()
        self._L = sf.ell_split(lc)
        width = self._L[0].shape[1]
        self._cvar = np.asarray(self.model.coupling_indices(), dtype=np.int64)
        (self._local_q, self._derivs, self._region_input, self._region_average,
         self._region_mean, self._window, grouped) = sf.surface_kernels(
            self.model.name, dfun, self.coupling, width, self.model.n_state, self._fixed(),
            self.model.bounds(), local=self._local, cvar=self._cvar,
            index_bits=sf.row_index_bits(lc.shape[0]))
        # the one-part window's form of the matrix: rows grouped by length, or as _L
        self._Lw = sf.grouped_rows(lc, width, self._rk) if grouped else self._L
        V, ns, R = self.n_vertices, self.model.n_state, len(self.all_labels)
        # one parameter row for every vertex: a stride-0 view, read by the model's dfun
        self._p = np.broadcast_to(np.ascontiguousarray(self.param_row), (V, self.param_row.size))
        lo, hi = self.model.bounds()
        self._lo, self._hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        # long-range edges by target, sources ascending
        w = self._weights
        ptr, src, dly, ww = [0], [], [], []
        for i in range(R):
            j = np.flatnonzero(w[i])
            src += j.tolist()
            dly += self._steps[i, j].tolist()
            ww += w[i, j].tolist()
            ptr.append(len(src))
        self._net = (np.array(ptr, dtype=np.int64), np.array(src, dtype=np.int64),
                     np.array(dly, dtype=np.int64), np.array(ww, dtype=np.float64))
        self._rowsum = w.sum(axis=1)
        self._cvar = np.asarray(self.model.coupling_indices(), dtype=np.int64)
        ncv = self._cvar.size
        self.n_aff = self.coupling.n_afferent(ncv)
        self.n_in = self.coupling.n_inputs(ncv)
        # a window of S steps exports the afferents of its S steps from the ring
        self.H = self.max_delay_steps + 1 + self.window_steps
        self._hist = np.zeros((self.H, self.n_aff, R))
        self._x = self.initial_vertex_state()
        self._xs = np.empty_like(self._x)
        self._k1 = np.zeros_like(self._x)
        self._k2 = np.zeros_like(self._x)
        self._q = np.empty(V)
        self._proj = {key: np.ascontiguousarray(
            np.asarray(sf.load_projection(spec_, self._base_dir, mmap=True))[rows][:, self.kept],
            dtype=np.float64) for key, (spec_, rows) in self.sensors.items()}
        self._qq = np.empty((2, V))
        self._c = np.zeros((V, self.n_in))
        self._xr = np.zeros((R, ns))
        self._aff = np.zeros((R, self.n_aff))
        self._s = np.zeros((R, self.n_aff))
        self._cr = np.zeros((R, self.n_in))
        self._rec_rows = np.asarray(self._rec_vars, dtype=np.int64)
        # the vertices of each region, ascending (CSR): the window kernels sum by region
        order = np.argsort(self.region_of, kind="stable")
        self._members = (np.concatenate([[0], np.cumsum(np.bincount(
            self.region_of, minlength=R))]).astype(np.int64), order.astype(np.int64))
        if self.threads > 1:
            self._window_par = sf.surface_window_parallel(
                self.model.name, dfun, self.coupling, width, self.model.n_state, self._fixed(),
                self.model.bounds(), local=self._local, cvar=self._cvar)
        self._region_average(self._x, self._rk, self.counts, self._cvar,
                             self.coupling_params, self._xr, self._aff, self._hist, 0)
        self._hist[:] = self._hist[0]             # constant history for t ≤ 0
        self._own = self.part_regions(self.part, self.n_parts)
        self.step = 0
        self._built = True

    def _fixed(self):
        """The parameter row the kernels compile in (every vertex has the same values; see
        :mod:`cosim.fields.specialise`), or None: the kernels read the row."""
        return self.param_row if self.compile_parameters else None

    def local_matrix(self):
        """The local connectivity of the whole surface (CSR, before excluded regions are
        removed): loaded, or built from the geodesic kernel (once per process, and once per
        machine: :func:`cosim.fields.geodesic.cached_local_connectivity`)."""
        spec = self._lc_spec
        if not isinstance(spec, dict):
            return sf.load_local_connectivity(spec, self._base_dir)
        key = (spec["surface"], str(self._base_dir),
               float(spec["cutoff"]), spec["kernel"], tuple(sorted(spec["parameters"].items())))
        if key not in _GEODESIC:
            v, t = geo.load_surface(spec["surface"], self._base_dir)
            _GEODESIC[key] = geo.cached_local_connectivity(v, t, spec["cutoff"], spec["kernel"],
                                                           spec["parameters"])[0]
        return _GEODESIC[key]

    def _join(self, x) -> None:
        """Every part's block of ``x`` into every part's copy (split runs only)."""
        if self._exchange is None:
            return
        ns = x.shape[1]
        ids = np.arange(self.v0 * ns, self.v1 * ns, dtype=np.int64)
        all_ids, values = self._exchange(ids, x[self.v0:self.v1].ravel())
        x.reshape(-1)[all_ids] = values

    def _one_step(self) -> None:
        n, x, xs = self.step, self._x, self._xs
        ptr, src, dly, w = self._net
        lp, lm, lin = self._local
        self._region_input(self._hist, n, ptr, src, dly, w, self._xr, self._cvar,
                           self.coupling_params, self._rowsum, self._s, self._cr)
        self._local_q(x, lp, lm, self._q)
        self._derivs(x, self._q, self._cr, self._rk, self._L, lin,
                     self.v0, self.v1, self._p, self._c, self._k1)
        if self.integrator == "euler":
            sf.euler_update(x, self._k1, self.dt_ms, self.v0, self.v1, self._lo, self._hi, x)
        else:
            sf.euler_update(x, self._k1, self.dt_ms, self.v0, self.v1, self._lo, self._hi, xs)
            self._join(xs)
            self._local_q(xs, lp, lm, self._q)
            self._derivs(xs, self._q, self._cr, self._rk, self._L, lin,
                         self.v0, self.v1, self._p, self._c, self._k2)
            sf.heun_update(x, self._k1, self._k2, self.dt_ms, self.v0, self.v1, self._lo, self._hi)
        self._join(x)
        self.step = n + 1
        self._region_average(x, self._rk, self.counts, self._cvar, self.coupling_params,
                             self._xr, self._aff, self._hist, self.step % self.H)

    def advance(self, t0_ms: float, t1_ms: float, inputs=None) -> WindowOutput:
        if not self._built:
            self.build()
        step0 = self.step
        if abs(t0_ms - step0 * self.dt_ms) > 1e-6 * self.dt_ms:
            raise ValueError(f"engine {self.name!r} is at t = {step0 * self.dt_ms:g} ms, "
                             f"asked to advance from {t0_ms:g} ms")
        n_steps = nmc.whole_multiple(t1_ms - t0_ms, self.dt_ms)
        if self._bus:
            self._take_sources((inputs or {}).get("sources"), step0, n_steps)
        every = self.record_every
        rec = np.empty(((step0 + n_steps) // every - step0 // every, self._rec_rows.size,
                        len(self.all_labels)))
        sens = {key: np.empty((rec.shape[0], 1, P.shape[0])) for key, P in self._proj.items()}
        if self._exchange is None:       # one part: whole windows in one kernel call
            # (cut at the record steps when sensors are projected from the vertex states)
            k, done = 0, 0
            while done < n_steps:
                m = n_steps - done
                if self._proj:
                    m = min(m, every - (step0 + done) % every)
                if self.threads > 1:
                    numba.set_num_threads(self.threads)
                    self._window_par(
                        m, step0 + done, self.integrator == "heun", self.dt_ms, every, self._x,
                        self._xs, self._k1, self._k2, self._qq, self._hist, self._net,
                        self._L, self._local, (self._rk, self.counts),
                        self._members, self._cvar, self.coupling_params, self._rowsum, self._p,
                        self._lo, self._hi, (self._xr, self._aff, self._s, self._cr, self._c),
                        self._rec_rows, rec[k:])
                else:
                    self._window(m, step0 + done, self.integrator == "heun", self.dt_ms, every,
                                 self._x, self._xs, self._k1, self._k2, self._qq, self._hist,
                                 self._net, self._Lw, self._local,
                                 (self._rk, self.counts), self._members, self._cvar,
                                 self.coupling_params, self._rowsum, self._p, self._lo,
                                 self._hi, (self._xr, self._aff, self._s, self._cr, self._c),
                                 self._rec_rows, rec[k:])
                done += m
                self.step = step0 + done
                if self.step % every == 0:
                    self._project(sens, k)
                    k += 1
        else:
            k = 0
            for _ in range(n_steps):
                self._one_step()
                if self.step % every == 0:
                    self._region_mean(self._x, self._rk, self.counts, self._rec_rows, rec[k])
                    self._project(sens, k)
                    k += 1
        check_finite(self.name, self._x[self.v0:self.v1],
                     (("vertex", lambda i: str(i + self.v0)),
                      ("variable", self.model.state_names)), self.step * self.dt_ms,
                     dt_ms=self.dt_ms)
        exports = {}
        if self._bus:
            slots = (step0 + 1 + np.arange(n_steps)) % self.H
            exports["afferent"] = np.ascontiguousarray(self._hist[slots][:, :, self._own])
        records = {DATASET: np.ascontiguousarray(rec[:, :, self.region_indices])}
        records.update(sens)
        return WindowOutput(records=records, exports=exports)

    def _project(self, sens, k) -> None:
        """Sensor sample ``k``: ``P q`` with ``q`` the local variable of every vertex."""
        if not self._proj:
            return
        lp, lm, _ = self._local
        self._local_q(self._x, lp, lm, self._q)
        for key, P in self._proj.items():
            sens[key][k, 0] = P @ self._q

    def _take_sources(self, src, step0: int, n_steps: int) -> None:
        """The afferents of the regions of other engines into the ring (as the neural-mass
        engine: the initial history first, then each window's new samples)."""
        ext = self.external
        if not ext.size:
            return
        if n_steps > self.window_steps:
            raise ValueError(f"engine {self.name!r}: windows of at most {self.window_steps} steps")
        if src is None:
            raise ValueError(f"engine {self.name!r} needs input 'sources' (regions {ext.tolist()})")
        v = np.asarray(src, dtype=np.float64)
        if self._ext_until is None:
            L = v.shape[0]
            first = step0 - (L - 1)
            for i in range(L):
                s_ = first + i
                if s_ > step0 - self.H:
                    self._hist[s_ % self.H][:, ext] = v[i]
            # steps older than the samples given: the oldest one stands for them
            for s_ in range(step0 - self.H + 1, first):
                self._hist[s_ % self.H][:, ext] = v[0]
        else:
            if v.shape[0] != step0 - self._ext_until:
                raise ValueError(f"engine {self.name!r}: 'sources' must hold steps "
                                 f"{self._ext_until + 1} … {step0}, got {v.shape[0]} samples")
            for i in range(v.shape[0]):
                self._hist[(self._ext_until + 1 + i) % self.H][:, ext] = v[i]
        self._ext_until = step0

    def vertex_state(self) -> np.ndarray:
        """The current state ``(vertex, state variable)``."""
        return self._x.copy()

    def state(self):
        if not self._built:
            self.build()
        out = {"x": self._x.copy(), "history": self._hist.copy(), "step": np.array(self.step)}
        if self._ext_until is not None:
            out["external_until"] = np.array(self._ext_until)
        return out

    def restore(self, state):
        if not self._built:
            self.build()
        self._x[...] = np.asarray(state["x"])
        self.step = int(np.asarray(state["step"]))
        # the region averages of the restored state (the same numbers as at the save)
        self._region_average(self._x, self._rk, self.counts, self._cvar,
                             self.coupling_params, self._xr, self._aff, self._hist,
                             self.step % self.H)
        self._hist[...] = np.asarray(state["history"])
        self._ext_until = (int(np.asarray(state["external_until"]))
                           if "external_until" in state else None)
