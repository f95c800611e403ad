"""A population of multicompartment cells with synapses, connections, stimuli and probes.

:class:`Network` is the plain Python API (no scenario file needed)::

    net = Network(dt_ms=0.025)
    gids = net.add_cells(discretise(ball_and_stick()), 10)
    site = net.add_site(gids[0], ("dend", 0.5), "AMPA")
    net.connect(gids[1], site, weight_uS=0.002, delay_ms=1.5, stp=(0.5, 800.0, 0.0))
    ext = net.add_external(site, weight_uS=0.001)
    net.add_probe(gids[0], ("soma", 0.5))
    net.build()
    spikes, v = net.run(100.0, events=(np.array([ext]), np.array([5.0])))

Cells added together share a :class:`~.compartments.CellTemplate` and form one batch of
the kernel (:mod:`.cable`).  Events (external inputs, spikes + delays) take effect at the
step boundary nearest to their time (ties go to the earlier step), NEURON's rule for
its fixed step: an event at ``te`` acts from the step starting at ``t_k`` with
``t_k − dt/2 < te ≤ t_k + dt/2``.

A network may hold only part of a larger one: cells keep *global* gids
(``add_cells(..., first_gid=…)``), connections may come from gids that are not local,
and spikes can be delivered later, from outside, with :meth:`Network.deliver`
(``advance(..., deliver=False)``) — the building blocks of a partitioned region.  Sums
of events at a site are formed in a canonical order (see :mod:`.cable`), so the bits do
not depend on the partitioning or on how a run is cut into calls.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CosimError
from . import cable, codegen
from .mechanism import ION_CI, ION_CO, ION_DEFAULTS, ION_E, ION_I, ION_NERNST, ION_ROWS
from .channels import hh_q10
from .compartments import CellTemplate
from .stp import NO_STP, initial_state
from .synapses import RECEPTOR_DEFAULTS, SYN_PARAMS, site_params


#: Integrators of the cable equation: name → the kernel's ``vfac`` (:mod:`.cable`):
#: backward Euler (NEURON's default, first order) and Crank–Nicolson (``secondorder = 2``).
INTEGRATORS = {"backward_euler": 1.0, "crank_nicolson": 2.0}


def event_step(t_ms, dt_ms: float):
    """Step index at whose start an event at ``t_ms`` is delivered (see module doc)."""
    return np.ceil(np.asarray(t_ms, dtype=float) / dt_ms - 0.5 - 1e-9).astype(np.int64)


class Network:
    """Cells, synaptic sites, connections, current clamps and voltage probes.

    Parameters: ``dt_ms`` time step; ``celsius`` temperature (°C, HH Q10 = 3); ``v_init_mV``
    initial voltage; ``spike_threshold_mV`` detection threshold; ``max_window_ms`` the
    longest single kernel call (sizes the event ring together with the longest delay).
    """

    def __init__(self, dt_ms: float = 0.025, *, celsius: float = 6.3, v_init_mV: float = -65.0,
                 spike_threshold_mV: float = 0.0, max_window_ms: float = 10.0,
                 record_every_steps: int = 1, ions: dict | None = None,
                 integrator: str = "backward_euler"):
        self.dt_ms = float(dt_ms)
        if integrator not in INTEGRATORS:
            raise CosimError(f"unknown integrator {integrator!r}; known: {', '.join(INTEGRATORS)}")
        #: The cable integrator (:data:`INTEGRATORS`) and the kernel's ``vfac`` for it.
        self.integrator = integrator
        self.vfac = INTEGRATORS[integrator]
        self.celsius = float(celsius)
        self.v_init_mV = float(v_init_mV)
        self.threshold_mV = float(spike_threshold_mV)
        self.max_window_steps = max(1, int(round(max_window_ms / self.dt_ms)))
        self.record_every = int(record_every_steps)
        #: Ion values ``{ion: {"e": mV, "ci": mM, "co": mM}}`` overriding NEURON's
        #: defaults (:data:`.mechanism.ION_DEFAULTS`) for the mechanism layer.
        self.ions = {k: dict(v) for k, v in (ions or {}).items()}
        self._kernel = None
        self._pp_types: dict[str, tuple] = {}       # receptor name -> (mechanism, params)
        self._batches: list[tuple[CellTemplate, int, int]] = []   # template, n, first gid
        self._detect: list[int] = []            # node per local cell
        self._gids: list[int] = []              # global gid per local cell (ascending)
        self._sites: list[tuple[int, int, str]] = []
        self._site_index: dict[tuple[int, int, str], int] = {}
        self._receptors: dict[str, dict[str, float]] = {k: dict(v) for k, v in RECEPTOR_DEFAULTS.items()}
        self._conns: list[tuple[int, int, float, int, tuple[float, float, float]]] = []
        self._ext: list[tuple[int, float]] = []
        self._stims: list[tuple[int, int, float, float, float]] = []
        self._drives: list[tuple[int, int, int, float]] = []     # gid, node, pattern, weight
        self._patterns: list = []
        self._no_drive = np.zeros((0, 0))
        self._probes: list[tuple[int, int]] = []
        self.probe_names: list[str] = []
        self._built = False

    # -- description ------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return len(self._detect)

    def set_receptor(self, name: str, **params: float) -> None:
        """Define or change a receptor type (see :data:`.synapses.RECEPTOR_DEFAULTS`)."""
        base = dict(self._receptors.get(name, {"tau_rise_ms": 0.2, "tau_decay_ms": 2.0, "e_rev_mV": 0.0}))
        base.update({k: float(v) for k, v in params.items()})
        self._receptors[name] = base

    def add_point_process(self, mech, name: str | None = None, **params: float) -> str:
        """Make the POINT_PROCESS ``mech`` (a :class:`~.mechanism.Mechanism`, e.g. a user's
        synapse ``.mod``) usable as a receptor called ``name`` (default its own name),
        with parameters ``params`` (the file's defaults otherwise).  Events reaching its
        sites run its NET_RECEIVE with the summed weight of each step."""
        self._check_open()
        if not mech.point:
            raise CosimError(f"mechanism {mech.name!r} is not a POINT_PROCESS")
        name = mech.name if name is None else name
        if name in self._receptors:
            raise CosimError(f"receptor {name!r} is already defined")
        values = mech.defaults
        for k, v in params.items():
            if k not in values:
                raise CosimError(f"unknown parameter {k!r} of point process {mech.name!r}; "
                                 f"known: {', '.join(values)}")
            values[k] = float(v)
        self._pp_types[name] = (mech, values)
        return name

    def add_cells(self, template: CellTemplate, n: int, *, detect_at=("soma", 0.5),
                  first_gid: int | None = None) -> range:
        """Add ``n`` cells of ``template``; spikes are detected at ``detect_at``. Returns gids.

        Gids are consecutive from ``first_gid`` (default: after the last cell added) and
        must increase from batch to batch; a partial network skips the gids of others.
        """
        self._check_open()
        end = self._gids[-1] + 1 if self._gids else 0
        first = end if first_gid is None else int(first_gid)
        if first < end:
            raise CosimError(f"cells must be added in increasing gid order: first gid {first} < {end}")
        self._batches.append((template, int(n), first))
        node = self._node(template, detect_at)
        self._detect.extend([node] * int(n))
        self._gids.extend(range(first, first + int(n)))
        return range(first, first + int(n))

    def template_of(self, gid: int) -> CellTemplate:
        for tmpl, n, first in self._batches:
            if first <= gid < first + n:
                return tmpl
        raise CosimError(f"no cell with gid {gid} in this network")

    @staticmethod
    def _node(template: CellTemplate, where) -> int:
        if isinstance(where, (int, np.integer)):
            return int(where)
        sec, x = where
        return template.node(sec, x)

    def add_site(self, gid: int, where, receptor: str) -> int:
        """Synaptic site of ``receptor`` on cell ``gid`` at ``where`` (node or (section, x))."""
        self._check_open()
        if receptor not in self._receptors and receptor not in self._pp_types:
            raise CosimError(f"unknown receptor {receptor!r}; known: "
                             f"{', '.join(list(self._receptors) + list(self._pp_types))}")
        key = (int(gid), self._node(self.template_of(gid), where), receptor)
        if key not in self._site_index:
            self._site_index[key] = len(self._sites)
            self._sites.append(key)
        return self._site_index[key]

    def connect(self, pre_gid: int, site: int, weight_uS: float, delay_ms: float,
                stp: tuple[float, float, float] | None = None) -> None:
        """Spikes of ``pre_gid`` reach ``site`` after ``delay_ms`` (≥ dt) with weight µS.

        ``pre_gid`` need not be a cell of this network (its spikes then come through
        :meth:`deliver`).  ``stp = (U, tau_rec_ms, tau_fac_ms)`` enables Tsodyks–Markram
        plasticity.  Connections from one cell onto one site keep the order of the calls.
        """
        self._check_open()
        steps = int(round(delay_ms / self.dt_ms))
        if steps < 1:
            raise CosimError(f"delay must be >= dt = {self.dt_ms} ms, got {delay_ms}")
        self._conns.append((int(pre_gid), int(site), float(weight_uS), steps,
                            tuple(stp) if stp is not None else NO_STP))

    def add_external(self, site: int, weight_uS: float) -> int:
        """An external input line onto ``site``; returns its index for ``run(events=…)``."""
        self._check_open()
        self._ext.append((int(site), float(weight_uS)))
        return len(self._ext) - 1

    def add_current_clamp(self, gid: int, where, delay_ms: float, dur_ms: float, amp_nA: float):
        """A NEURON-``IClamp``-like square current pulse (nA, positive = depolarising)."""
        self._check_open()
        node = self._node(self.template_of(gid), where)
        self._stims.append((int(gid), node, float(delay_ms), float(dur_ms), float(amp_nA)))

    def add_current_drive(self, gid: int, where, pattern, weight: float = 1.0) -> None:
        """A time-varying current ``weight · pattern(t)`` nA (``pattern``: a function of an
        array of times, ms; a stimulus's temporal pattern), evaluated at the middle of each
        step, ``t_n + dt/2``, as an IClamp is."""
        self._check_open()
        node = self._node(self.template_of(gid), where)
        if not any(p is pattern for p in self._patterns):
            self._patterns.append(pattern)
        k = next(i for i, p in enumerate(self._patterns) if p is pattern)
        self._drives.append((int(gid), node, k, float(weight)))

    def add_probe(self, gid: int, where, name: str | None = None) -> int:
        """Record ``v`` (mV) of cell ``gid`` at ``where`` every ``record_every_steps``."""
        self._check_open()
        tmpl = self.template_of(gid)
        node = self._node(tmpl, where)
        self._probes.append((int(gid), node))
        self.probe_names.append(probe_name(tmpl, gid, node) if name is None else name)
        return len(self._probes) - 1

    def _check_open(self):
        if self._built:
            raise CosimError("network is already built; describe it completely before build()")

    # -- assembly ---------------------------------------------------------------------
    def flat_index(self, gid: int, node: int) -> int:
        for b, (tmpl, n, first) in enumerate(self._batches):
            if first <= gid < first + n:
                return int(self._batch_arr[b, 3] + node * n + (gid - first))
        raise CosimError(f"no cell with gid {gid} in this network")

    def build(self) -> "Network":
        """Freeze the description into kernel arrays and set the initial state."""
        if self._built:
            return self
        if not self._batches:
            raise CosimError("network has no cells")
        batches, parents, pars, hh = [], [], [], []
        noff = soff = 0
        for tmpl, n, _ in self._batches:
            batches.append((noff, tmpl.n_nodes, n, soff))
            parents.append(tmpl.parent)
            pars.append(tmpl.node_par)
            hh.append(tmpl.has_hh)
            noff += tmpl.n_nodes
            soff += tmpl.n_nodes * n
        self._batch_arr = np.array(batches, dtype=np.int64).reshape(-1, 4)
        self._tmpl = (np.concatenate(parents).astype(np.int64), np.ascontiguousarray(np.concatenate(pars, axis=1)),
                      np.concatenate(hh).astype(np.uint8))
        self.n_state = soff
        self.state_arr = np.zeros((cable.N_STATE, soff))
        self._work = np.zeros((2, soff))
        self.q10 = hh_q10(self.celsius)
        # synaptic sites
        ns = len(self._sites)
        self._site_k = np.array([self.flat_index(g, nd) for g, nd, _ in self._sites], dtype=np.int64)
        # point-process sites keep a zero row: no built-in conductance (A = B = 0)
        self._site_par = np.array([site_params(self._receptors[r], self.dt_ms) if r in self._receptors
                                   else np.zeros(len(SYN_PARAMS)) for _, _, r in self._sites]
                                  ).reshape(ns, len(SYN_PARAMS))
        self._site_ab = np.zeros((ns, 2))
        # connections in CSR by presynaptic gid (a stable sort keeps the order of connect())
        conns = sorted(self._conns, key=lambda c: c[0])
        pre = np.array([c[0] for c in conns], dtype=np.int64)
        n_gid = max([self._gids[-1] + 1 if self._gids else 0] + [c[0] + 1 for c in conns[-1:]])
        self._c_ptr = np.searchsorted(pre, np.arange(n_gid + 1)).astype(np.int64)
        self._c_site = np.array([c[1] for c in conns], dtype=np.int64)
        self._c_w = np.array([c[2] for c in conns], dtype=np.float64)
        self._c_delay = np.array([c[3] for c in conns], dtype=np.int64)
        self._stp_par = np.array([c[4] for c in conns], dtype=np.float64).reshape(-1, 3)
        self._stp_state = initial_state(len(conns))
        self._conn = (self._c_ptr, self._c_site, self._c_delay, self._c_w, self._stp_par, self._stp_state)
        max_delay = int(self._c_delay.max()) if conns else 0
        self.min_delay_steps = int(self._c_delay.min()) if conns else None
        self.n_slots = max_delay + self.max_window_steps + 2
        self._ring = np.zeros((2, self.n_slots, max(ns, 1)))     # (external | spikes, slot, site)
        self._ext_site = np.array([e[0] for e in self._ext], dtype=np.int64)
        self._ext_w = np.array([e[1] for e in self._ext], dtype=np.float64)
        # detection, stimuli, probes
        self._det_k = np.array([self.flat_index(g, nd) for g, nd in zip(self._gids, self._detect)],
                               dtype=np.int64)
        self._det_gid = np.array(self._gids, dtype=np.int64)
        self._above = np.zeros(self.n_cells, dtype=np.uint8)
        self._st_k = np.array([self.flat_index(g, nd) for g, nd, *_ in self._stims], dtype=np.int64)
        self._st_par = np.array([s[2:] for s in self._stims], dtype=np.float64).reshape(-1, 3)
        self._dr_k = np.array([self.flat_index(g, nd) for g, nd, _, _ in self._drives],
                              dtype=np.int64)
        self._dr_pat = np.array([d[2] for d in self._drives], dtype=np.int64)
        self._dr_w = np.array([d[3] for d in self._drives], dtype=np.float64)
        self._rec_k = np.array([self.flat_index(g, nd) for g, nd in self._probes], dtype=np.int64)
        self._sp_gid = np.zeros(max(64, 4 * self.n_cells), dtype=np.int64)
        self._sp_t = np.zeros(self._sp_gid.size)
        self._sp_count = np.zeros(1, dtype=np.int64)
        self._build_mechanisms()
        self._built = True
        self.reset()
        return self

    def _build_mechanisms(self) -> None:
        """Instance arrays of the mechanism layer and its generated kernels (if any)."""
        per_mech: dict[str, list] = {}
        for tmpl, _, _ in self._batches:
            for mech in (tmpl.catalogue.mechanisms.values() if tmpl.catalogue is not None else ()):
                if mech.name in per_mech and per_mech[mech.name][0] is not mech:
                    raise CosimError(f"two different mechanisms named {mech.name!r} in one network")
                per_mech.setdefault(mech.name, [mech, [], [], []])
        for mech, _ in self._pp_types.values():
            if mech.name in per_mech and per_mech[mech.name][0] is not mech:
                raise CosimError(f"two different mechanisms named {mech.name!r} in one network")
            per_mech.setdefault(mech.name, [mech, [], [], []])
        self._pp = (np.full(len(self._sites), -1, np.int64), np.zeros(len(self._sites), np.int64))
        for b, (tmpl, n, _) in enumerate(self._batches):
            soff = self._batch_arr[b, 3]
            for mech, nodes, par, fac in tmpl.mechs:
                k = (soff + nodes[:, None] * n + np.arange(n)[None, :]).ravel()
                per_mech[mech.name][1].append(k)
                per_mech[mech.name][2].append(np.repeat(par, n, axis=1))
                per_mech[mech.name][3].append(np.repeat(fac, n))
        pp_sites: dict[str, list] = {}
        for j, (_, _, r) in enumerate(self._sites):
            if r in self._pp_types:
                mech, values = self._pp_types[r]
                e = per_mech[mech.name]
                self._pp[1][j] = sum(x.size for x in e[1])
                e[1].append(np.array([self._site_k[j]], np.int64))
                e[2].append(np.array([[values[p] for p in mech.param_names]], float).T.reshape(-1, 1))
                e[3].append(np.ones(1))
                pp_sites.setdefault(mech.name, []).append(j)
        self._mech_list = []
        self._mechs = ()
        self._ions = ()
        self._ion_names = []
        if not per_mech:
            return
        entries = sorted(per_mech.values(), key=lambda e: (os.path.basename(e[0].path), e[0].name))
        self._mech_list = [e[0] for e in entries]
        for i, m in enumerate(self._mech_list):
            for j in pp_sites.get(m.name, ()):
                self._pp[0][j] = i
        mechs = []
        for mech, ks, pars, facs in entries:
            n_par = len(mech.params)
            k = np.concatenate(ks).astype(np.int64) if ks else np.zeros(0, np.int64)
            fac = np.concatenate(facs).astype(np.float64) if facs else np.zeros(0)
            par = np.concatenate(pars, axis=1) if pars else np.zeros((n_par, 0))
            mechs.append((k, fac, np.ascontiguousarray(par.reshape(n_par, k.size)),
                          np.zeros((len(mech.states), k.size)),
                          np.zeros((len(mech.assigned) + codegen.n_scratch(mech), k.size))))
        self._mechs = tuple(mechs)
        for mech, (k, _, par, _, _) in zip(self._mech_list, mechs):
            for row, name in codegen.global_params(mech):
                if k.size and np.any(par[row] != par[row, 0]):
                    raise CosimError(f"mechanism {mech.name}: {name} is GLOBAL (one value for "
                                     f"all sections) but is set to {par[row].min():g} and "
                                     f"{par[row].max():g}; declare it RANGE in the .mod file")
        self._ion_names = sorted({ion for m in self._mech_list for ion in m.ions})
        unknown = sorted(set(self.ions) - set(self._ion_names))
        if unknown:
            raise CosimError(f"ion {unknown[0]!r} is set but no mechanism uses it; used: "
                             f"{', '.join(self._ion_names) or 'none'}")
        self._ions = tuple(np.zeros((ION_ROWS, self.n_state)) for _ in self._ion_names)
        nernst = {ion: np.zeros(self.n_state) for ion in self._ion_names}
        for m, (k, *_rest) in zip(self._mech_list, self._mechs):
            for ion in m.writes_concentration:
                nernst[ion][k] = 1.0
        self._ion_nernst = nernst
        self._kernel = codegen.kernel_module(self._mech_list, self._ion_names,
                                             second_order=self.vfac == 2.0)

    def _reset_ions(self) -> None:
        for ion, arr in zip(self._ion_names, self._ions):
            base = dict(ION_DEFAULTS.get(ion, {"e": 0.0, "ci": 1.0, "co": 1.0}))
            base.update(self.ions.get(ion, {}))
            arr[ION_E] = base["e"]
            arr[ION_I] = 0.0
            arr[ION_CI] = base["ci"]
            arr[ION_CO] = base["co"]
            arr[ION_NERNST] = self._ion_nernst[ion]

    def reset(self) -> None:
        """NEURON's ``finitialize(v_init)``: rest state, no pending events, t = 0."""
        cable.init_state(self.v_init_mV, self.q10, self._tmpl, self._batch_arr, self.state_arr)
        if self._kernel is not None:
            self._reset_ions()
            for _, _, _, S, A in self._mechs:
                S[:] = 0.0
                A[:] = 0.0
            self._kernel.init_mechanisms(self.state_arr[cable.V], self.celsius, self.dt_ms,
                                         self._mechs, self._ions)
        self._site_ab[:] = 0.0
        self._ring[:] = 0.0
        self._stp_state[:] = initial_state(self._stp_state.shape[0])
        self._above[:] = self.state_arr[cable.V, self._det_k] > self.threshold_mV
        self.step = 0

    # -- running ----------------------------------------------------------------------
    def schedule(self, ext_index, t_ms) -> None:
        """Queue external events (input line index, time ms) at or after the current step.

        Events are added in the order (time, line) whatever order they come in, so that
        the sum at a site does not depend on how the caller grouped them.
        """
        ext_index = np.asarray(ext_index, dtype=np.int64).ravel()
        t_ms = np.asarray(t_ms, dtype=np.float64).ravel()
        if ext_index.size != t_ms.size:
            raise ValueError("events: index and time arrays differ in length")
        if ext_index.size == 0:
            return
        if ext_index.min() < 0 or ext_index.max() >= len(self._ext):
            raise ValueError(f"events: input index out of range [0, {len(self._ext)})")
        k = event_step(t_ms, self.dt_ms)
        if k.min() < self.step or k.max() >= self.step + self.n_slots - 1:
            raise ValueError(f"events: times must lie in [{self.step * self.dt_ms}, "
                             f"{(self.step + self.n_slots - 1) * self.dt_ms}) ms")
        order = np.lexsort((ext_index, t_ms))
        ext_index = ext_index[order]
        cable.add_events(self._ring, k[order] % self.n_slots, self._ext_site[ext_index],
                         self._ext_w[ext_index])

    def deliver(self, gids, t_ms) -> None:
        """Deliver spikes ``(gid int64[], time_ms float64[])`` of any cells (local or not)
        to this network's connections, in the canonical order (time, gid, connection).

        For runs with ``advance(..., deliver=False)``: every spike must be delivered
        before the network advances more than the shortest delay past it, and all spikes
        of one time step in one call, calls in time order (as after each sub-interval).
        """
        gids = np.asarray(gids, dtype=np.int64).ravel()
        t_ms = np.asarray(t_ms, dtype=np.float64).ravel()
        if gids.size != t_ms.size:
            raise ValueError("spikes: gid and time arrays differ in length")
        if self.min_delay_steps is None:
            return
        steps = np.rint(t_ms / self.dt_ms).astype(np.int64)
        if gids.size and steps.min() + self.min_delay_steps < self.step:
            raise ValueError(f"spike at {t_ms[steps.argmin()]} ms delivered too late: the network "
                             f"is at {self.t_ms} ms and the shortest delay is "
                             f"{self.min_delay_steps * self.dt_ms} ms")
        if gids.size and steps.max() > self.step:
            raise ValueError(f"spike at {t_ms.max()} ms lies ahead of the network ({self.t_ms} ms)")
        order = np.lexsort((gids, t_ms))
        cable.deliver_spikes(gids[order], steps[order], t_ms[order], self._ring, self._conn)

    def advance(self, n_steps: int, events=None, deliver: bool = True):
        """Advance ``n_steps``; return spikes ``(gids, times_ms)`` and ``v`` samples
        ``(n_samples, n_probes)`` of the steps that end in this call.

        ``events = (input_index int64[], time_ms float64[])`` must fall within this call.
        ``deliver = False``: spikes are not sent to the connections; pass them (and those
        of other partitions) to :meth:`deliver` — same bits as ``deliver = True``.
        """
        if not self._built:
            self.build()
        if events is not None:
            if n_steps > self.max_window_steps:
                raise ValueError("events are accepted only for calls of at most max_window_ms")
            self.schedule(*events)
        every = self.record_every
        if every:
            first_row = self.step // every + 1
            n_rows = (self.step + n_steps) // every - self.step // every
        else:
            first_row, n_rows = 0, 0
        v_out = np.zeros((n_rows, len(self._probes)))
        drive_u = self.drive_values(self.step, n_steps)
        self._sp_count[0] = 0
        done = 0
        while done < n_steps:
            chunk = min(n_steps - done, self.max_window_steps)
            args = (chunk, self.step, self.dt_ms, self.vfac, self.q10, self._tmpl, self._batch_arr, self.state_arr,
                    self._work, (self._site_k, self._site_par, self._site_ab), self._ring,
                    self._conn, (self._det_k, self._det_gid, self.threshold_mV, self._above, bool(deliver)),
                    (self._sp_gid, self._sp_t, self._sp_count),
                    (self._st_k, self._st_par, self._dr_k, self._dr_w, self._dr_pat, drive_u[done:]),
                    (self._rec_k, every, v_out, first_row))
            if self._kernel is None:
                got = cable.run_window(*args)
            else:
                got = self._kernel.run_window(*args, self.celsius, self._mechs, self._ions, self._pp)
            self.step += got
            done += got
            if got < chunk:  # spike buffer nearly full: enlarge and go on
                self._sp_gid = np.concatenate([self._sp_gid, np.zeros_like(self._sp_gid)])
                self._sp_t = np.concatenate([self._sp_t, np.zeros_like(self._sp_t)])
        n = int(self._sp_count[0])
        return (self._sp_gid[:n].copy(), self._sp_t[:n].copy()), v_out

    def run(self, t_stop_ms: float, events=None):
        """From the current time to ``t_stop_ms``; events may span the whole run."""
        if not self._built:
            self.build()
        n_total = int(round(t_stop_ms / self.dt_ms)) - self.step
        spikes_g, spikes_t, vs = [], [], []
        ev_i, ev_t = (np.asarray(events[0], np.int64), np.asarray(events[1], float)) if events else (None, None)
        done = 0
        while done < n_total:
            chunk = min(self.max_window_steps, n_total - done)
            window_events = None
            if ev_i is not None:
                k = event_step(ev_t, self.dt_ms)
                sel = (k >= self.step) & (k < self.step + chunk)
                window_events = (ev_i[sel], ev_t[sel])
            (g, t), v = self.advance(chunk, window_events)
            spikes_g.append(g)
            spikes_t.append(t)
            vs.append(v)
            done += chunk
        cat = np.concatenate
        return (cat(spikes_g) if spikes_g else np.zeros(0, np.int64),
                cat(spikes_t) if spikes_t else np.zeros(0)), (cat(vs) if vs else np.zeros((0, len(self._probes))))

    @property
    def t_ms(self) -> float:
        return self.step * self.dt_ms

    def drive_values(self, step0: int, n_steps: int) -> np.ndarray:
        """``(n_steps, n_patterns)``: every drive pattern at the step midpoints
        ``(k + 1/2) dt`` of steps ``step0 …`` (the kernel's current-clamp time)."""
        if not self._patterns:
            return self._no_drive
        from ..stimuli import step_times

        t = step_times(step0 + np.arange(n_steps) + 0.5, self.dt_ms)
        return np.ascontiguousarray(np.stack([p(t) for p in self._patterns], axis=1))

    @property
    def gids(self) -> np.ndarray:
        """Global gids of the local cells, ascending."""
        return np.array(self._gids, dtype=np.int64)

    def v_of(self, gid: int, node: int) -> float:
        """Current voltage (mV) of one node."""
        return float(self.state_arr[cable.V, self.flat_index(gid, node)])

    # -- checkpoints ------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        st = {"step": np.array([self.step], dtype=np.int64), "cable": self.state_arr.copy(),
              "site_ab": self._site_ab.copy(), "ring": self._ring.copy(),
              "stp": self._stp_state.copy(), "above": self._above.copy()}
        for m, (_, _, P, S, A) in zip(self._mech_list, self._mechs):
            st[f"mech.{m.name}.P"] = P.copy()
            st[f"mech.{m.name}.S"] = S.copy()
            st[f"mech.{m.name}.A"] = A[:len(m.assigned)].copy()
        for ion, arr in zip(self._ion_names, self._ions):
            st[f"ion.{ion}"] = arr.copy()
        return st

    def restore(self, st: dict[str, np.ndarray]) -> None:
        self.step = int(st["step"][0])
        self.state_arr[:] = st["cable"]
        self._site_ab[:] = st["site_ab"]
        self._ring[:] = st["ring"]
        self._stp_state[:] = st["stp"]
        self._above[:] = st["above"]
        for m, (_, _, P, S, A) in zip(self._mech_list, self._mechs):
            P[:] = st[f"mech.{m.name}.P"]
            S[:] = st[f"mech.{m.name}.S"]
            A[:len(m.assigned)] = st[f"mech.{m.name}.A"]
        for ion, arr in zip(self._ion_names, self._ions):
            arr[:] = st[f"ion.{ion}"]

    def mechanism_states(self):
        """``[(mechanism name, state names, S float64[n_states, n_instances], k int64[n])]``
        of the mechanism layer (for finiteness checks)."""
        return [(m.name, m.states, S, k) for m, (k, _, _, S, _) in zip(self._mech_list, self._mechs)]


def probe_name(template: CellTemplate, gid: int, node: int) -> str:
    """Default name of a voltage probe: ``"<gid>:<section>(<x>)"``."""
    sec = template.morphology.sections[template.section[node]].name
    return f"{gid}:{sec}({template.x[node]:.4g})"
