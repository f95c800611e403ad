"""Multicompartment benchmark: cosim vs NEURON vs Arbor, side by side in one run.

The model (identical in all three simulators)
---------------------------------------------
``--cells`` (100) independent ball-and-stick cells, each:

* soma: cylinder L = diam = 20 µm, 1 compartment;
* dendrite: cylinder L = 1000 µm, diam = 2 µm, 100 compartments (10 µm each), attached
  to the soma's 1-end;
* Ra = 100 Ω·cm, cm = 1 µF/cm², Hodgkin–Huxley in **every** compartment with NEURON's
  ``hh`` kinetics and defaults (gnabar 0.12, gkbar 0.036, gl 0.0003 S/cm², el −54.3,
  ena 50, ek −77 mV) at **6.3 °C**; v_init −65 mV;
* a current clamp at the soma centre, 0.5 nA from 5 ms to the end (≈ 80 Hz firing);
* spikes detected at the soma, upward crossing of 0 mV.

Fixed step dt = 0.025 ms, 1000 ms simulated, one thread.  So 101 compartments per cell,
10 100 in all, and 40 000 steps: **ns per compartment-step** = run wall time / (10 100 ×
40 000).  The same count (the model's compartments) is used for every simulator.

How each simulator is run (each in a worker process of its own, see ``_common``)
-------------------------------------------------------------------------------
* **NEURON**: ``nseg`` as above, ``cvode`` off, ``CVode.cache_efficient(1)``,
  ``finitialize(-65)`` (not timed) then ``ParallelContext.psolve(tstop)`` (timed);
  ``celsius = 6.3``; spikes by ``NetCon(soma(0.5)._ref_v).record``.
* **Arbor**: a segment tree of 1 soma segment + 100 dendrite segments of 10 µm and
  ``cv_policy_every_segment`` — 101 CVs on the same boundaries as NEURON's segments
  (the soma and dendrite form one unbranched branch in Arbor, so ``fixed_per_branch``
  would not place a CV boundary at the soma end); ``hh`` from the default catalogue,
  tempK = 279.45 K, ``context(threads=1)``; all cells in one cell group
  (``partition_hint(cpu_group_size=n)``, measured slightly faster than Arbor's default
  of one cell per group — the peer gets its better setting).  Spikes by a
  ``threshold_detector`` at the soma centre.  (Arbor 0.12 without MPI records nothing
  with ``spike_recording.all``; ``local`` is the same set in one process.)
* **cosim**: :class:`cosim.multicompartment.Network` (the population API the scenario
  engine :mod:`cosim.engines.multicompartment` is built on) with ``ball_and_stick`` of the
  same geometry, ``hh`` in soma and dendrite, ``add_current_clamp``, ``Network.run(tstop)``
  after ``reset()``; its kernels are compiled by a warm-up run of a one-cell model first.

Timed: one call that advances the built model by 1000 ms.  Not timed: building the
model, initialisation, and the warm-up (JIT compilation), which is reported as
``jit_seconds``.  Runs are interleaved across simulators; the minimum over ``--repeats``
rounds is reported.

Memory: peak resident memory added by building and running the model, in each
simulator's own process (Linux ``VmHWM`` reset after warm-up; see ``_common``), divided
by the number of compartments.  It includes everything the simulator allocates for the
model (matrices, mechanism state, event queues, spike buffers), not the interpreter or
the libraries.

Agreement: cell 0's spike train must match between each pair of simulators: equal spike
counts (±1) and every paired spike time within ``--spike-tol-ms`` (1 ms over 1 s: NEURON's
``hh`` interpolates its rates in tables by default, Arbor evaluates them exactly and
interpolates crossing times, so the trains drift apart by up to ≈ 0.8 ms over 80 spikes).
A stricter check, ``cosim-neuron_exact_rates``, compares cosim with a one-cell NEURON run
with ``usetable_hh = 0`` (the exact rate functions, run during NEURON's warm-up, not
timed): the spikes must fall on the same time steps (within one dt).

Case "cortical_cell" (``cases.cortical_cell`` in the JSON)
------------------------------------------------------
``--cortical-cells`` (10) copies of the layer-5 pyramidal-like cell
(:data:`cosim.multicompartment.cells.LAYER5_MECHANISMS`) on the Allen Cell Types
reconstruction 515570710 (``scenarios/cortical_l5/allen_515570710.swc``, d_lambda = 0.1), with the
shipped cortical ``.mod`` files (Na, Kdr, M, Ih with an apical gradient, Ca_HVA, Ca_LVA,
SK, Ca pool) at 34 °C, a 1.0 nA soma step from 20 ms on.  NEURON runs the *same* ``.mod``
files compiled by ``nrnivmodl`` (``usetable_na_pos = 0``), cosim reads them itself.  ns per
compartment-step counts the model's segments (NEURON's Σ nseg), from the wall time
(``ns_per_compartment_step``, ``ratios``) and from each worker's CPU time of the same timed
calls (``time.process_time``: ``ns_per_compartment_step_cpu``, ``ratios_cpu`` — the figures
to trust on a shared, loaded machine).  Agreement: cell 0's spikes within one dt.  Arbor (:class:`ArborCortical`): the same SWC, section kinds,
densities (Ih's apical exponential as an ``iexpr`` of the distance), passive properties,
ions, temperature, clamp, dt and a CV count within 3 % of NEURON's, but the channels are
its ``bbp`` catalogue's (Hay et al. 2011: NaTs2_t, SKv3_1, Im, Ih, Ca_HVA, Ca_LVAst,
SK_E2, CaDynamics_E2 for na_pos, kdr_pos, im_pos, ih, ca_hva, ca_lva, sk, cadecay):
the same number and kinds of channel per CV, other rate equations.  So the Arbor ratio
compares the cost of equal work per CV-step, not equal trajectories (with these
densities Hay's channels put the soma into depolarisation block after the first
spike); no spike agreement is asserted for it.

Usage::

    python bench/multicompartment.py [--repeats 3] [--duration-ms 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SIMULATORS = ("cosim", "neuron", "arbor")
TARGETS = {"neuron": 2.0, "arbor": 1.0}  # peer ÷ ours must be ≥ (neuron) / > (arbor) this

MODEL = {
    "n_cells": 100,
    "soma_L_um": 20.0,
    "soma_diam_um": 20.0,
    "dend_L_um": 1000.0,
    "dend_diam_um": 2.0,
    "dend_nseg": 100,
    "Ra_ohm_cm": 100.0,
    "cm_uF_per_cm2": 1.0,
    "celsius": 6.3,
    "v_init_mV": -65.0,
    "ena_mV": 50.0,
    "ek_mV": -77.0,
    "iclamp_amp_nA": 0.5,
    "iclamp_delay_ms": 5.0,
    "threshold_mV": 0.0,
    "dt_ms": 0.025,
    "duration_ms": 1000.0,
}

#: The warm-up model: one cell, a few ms — enough to compile every kernel.
WARMUP = {"n_cells": 1, "duration_ms": 10.0}


def n_compartments_per_cell(m: dict) -> int:
    return 1 + int(m["dend_nseg"])


# =========================================================================== NEURON

class NeuronRunner:
    def __init__(self, config: dict):
        try:
            import neuron  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"NEURON is not installed ({exc}); pip install neuron") from None
        from neuron import h
        self.h = h
        self.m = config
        self.cells = []

    def versions(self):
        import neuron
        return {"neuron": neuron.__version__}

    def _build(self, m: dict, n_cells: int):
        h = self.h
        cells = []
        for i in range(n_cells):
            soma = h.Section(name=f"soma_{i}")
            dend = h.Section(name=f"dend_{i}")
            soma.L, soma.diam, soma.nseg = m["soma_L_um"], m["soma_diam_um"], 1
            dend.L, dend.diam, dend.nseg = m["dend_L_um"], m["dend_diam_um"], m["dend_nseg"]
            dend.connect(soma(1.0), 0.0)
            for sec in (soma, dend):
                sec.Ra, sec.cm = m["Ra_ohm_cm"], m["cm_uF_per_cm2"]
                sec.insert("hh")
                sec.ena, sec.ek = m["ena_mV"], m["ek_mV"]
            clamp = h.IClamp(soma(0.5))
            clamp.delay, clamp.dur, clamp.amp = m["iclamp_delay_ms"], 1e9, m["iclamp_amp_nA"]
            times = h.Vector()
            nc = h.NetCon(soma(0.5)._ref_v, None, sec=soma)
            nc.threshold = m["threshold_mV"]
            nc.record(times)
            cells.append((soma, dend, clamp, nc, times))
        return cells

    def _simulate(self, cells, m: dict, duration_ms: float) -> float:
        h = self.h
        h.celsius = m["celsius"]
        h.dt = m["dt_ms"]
        h.steps_per_ms = 1.0 / m["dt_ms"]
        cv = h.CVode()
        cv.active(0)
        cv.cache_efficient(1)
        pc = h.ParallelContext()
        pc.set_maxstep(10)
        for c in cells:
            c[4].resize(0)
        h.finitialize(m["v_init_mV"])
        tic = time.perf_counter()
        pc.psolve(duration_ms)
        return time.perf_counter() - tic

    def warmup(self):
        import numpy as np
        h = self.h
        h.load_file("stdrun.hoc")
        cells = self._build(self.m, WARMUP["n_cells"])
        self._simulate(cells, self.m, WARMUP["duration_ms"])
        # Reference for the agreement check (not timed, before the model is built): one
        # cell with hh's rate tables off, i.e. the exact rate functions.
        h.usetable_hh = 0
        self._simulate(cells, self.m, self.m["duration_ms"])
        self.exact_cell0 = np.array(cells[0][4], dtype=float)
        h.usetable_hh = 1
        del cells

    def build(self):
        self.cells = self._build(self.m, self.m["n_cells"])
        n_nodes = sum(sec.nseg for c in self.cells[:1] for sec in c[:2])
        return {"compartments_per_cell": int(n_nodes)}

    def run(self):
        import numpy as np
        wall = self._simulate(self.cells, self.m, self.m["duration_ms"])
        cell0 = np.array(self.cells[0][4], dtype=float)
        total = sum(len(c[4]) for c in self.cells)
        return wall, {"spikes_cell0_ms": cell0, "total_spikes": np.array(total),
                      "spikes_cell0_exact_rates_ms": self.exact_cell0}


# =========================================================================== Arbor

def arbor_simulation(A, cell, n_cells: int, catalogue=None):
    """An Arbor simulation of ``n_cells`` copies of ``cell`` on one thread, one cell group,
    recording spikes (``catalogue``: the mechanisms, else Arbor's default)."""

    class Recipe(A.recipe):
        def __init__(rec):
            super().__init__()
            rec.props = A.neuron_cable_properties()
            if catalogue is not None:
                rec.props.catalogue = catalogue

        def num_cells(rec):
            return n_cells

        def cell_kind(rec, gid):
            return A.cell_kind.cable

        def cell_description(rec, gid):
            return cell

        def global_properties(rec, kind):
            return rec.props

    recipe = Recipe()
    ctx = A.context(threads=1)
    hints = {A.cell_kind.cable: A.partition_hint(cpu_group_size=n_cells)}
    sim = A.simulation(recipe, ctx, A.partition_load_balance(recipe, ctx, hints))
    sim.record(A.spike_recording.local)
    return sim


class ArborRunner:
    def __init__(self, config: dict):
        try:
            import arbor  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"Arbor is not installed ({exc}); pip install arbor") from None
        import arbor
        self.A = arbor
        self.U = arbor.units
        self.m = config
        self.sim = None

    def versions(self):
        return {"arbor": self.A.__version__}

    def _cell(self, m: dict):
        A, U = self.A, self.U
        tree = A.segment_tree()
        r_soma, r_dend = m["soma_diam_um"] / 2.0, m["dend_diam_um"] / 2.0
        L0 = m["soma_L_um"]
        parent = tree.append(A.mnpos, A.mpoint(0, 0, 0, r_soma), A.mpoint(L0, 0, 0, r_soma), tag=1)
        n = int(m["dend_nseg"])
        seg = m["dend_L_um"] / n
        for k in range(n):
            parent = tree.append(parent, A.mpoint(L0 + k * seg, 0, 0, r_dend),
                                 A.mpoint(L0 + (k + 1) * seg, 0, 0, r_dend), tag=3)
        # The soma is the first segment of the single branch: its centre is at this
        # fraction of the branch.
        soma_mid = f"(location 0 {0.5 * L0 / (L0 + m['dend_L_um']):.12g})"
        decor = (A.decor()
                 .set_property(Vm=m["v_init_mV"] * U.mV,
                               cm=m["cm_uF_per_cm2"] * 0.01 * U.F / U.m2,
                               rL=m["Ra_ohm_cm"] * U.Ohm * U.cm,
                               tempK=(m["celsius"] + 273.15) * U.Kelvin)
                 .set_ion("na", rev_pot=m["ena_mV"] * U.mV)
                 .set_ion("k", rev_pot=m["ek_mV"] * U.mV)
                 .paint("(all)", A.density("hh"))
                 .place(soma_mid, A.i_clamp(m["iclamp_delay_ms"] * U.ms, 1e9 * U.ms,
                                            m["iclamp_amp_nA"] * U.nA))
                 .place(soma_mid, A.threshold_detector(m["threshold_mV"] * U.mV), "detector"))
        return A.cable_cell(tree, decor, A.label_dict(), A.cv_policy_every_segment())

    def _simulation(self, m: dict, n_cells: int):
        A = self.A
        cell = self._cell(m)

        sim = arbor_simulation(A, cell, n_cells)
        return sim, A.cv_data(cell).num_cv

    def _simulate(self, sim, duration_ms: float) -> float:
        sim.reset()
        tic = time.perf_counter()
        sim.run(duration_ms * self.U.ms, self.m["dt_ms"] * self.U.ms)
        return time.perf_counter() - tic

    def warmup(self):
        sim, _ = self._simulation(self.m, WARMUP["n_cells"])
        self._simulate(sim, WARMUP["duration_ms"])

    def build(self):
        self.sim, num_cv = self._simulation(self.m, self.m["n_cells"])
        return {"compartments_per_cell": int(num_cv)}

    def run(self):
        import numpy as np
        wall = self._simulate(self.sim, self.m["duration_ms"])
        spikes = self.sim.spikes()
        gids = spikes["source"]["gid"]
        times = spikes["time"]
        cell0 = np.sort(times[gids == 0])
        return wall, {"spikes_cell0_ms": cell0, "total_spikes": np.array(len(times))}


# =========================================================================== cosim

class CosimRunner:
    """cosim's multicompartment kernel through its population API
    (:class:`cosim.multicompartment.Network`), the layer under the scenario engine."""

    def __init__(self, config: dict):
        try:
            from cosim.multicompartment import Network, ball_and_stick, discretise  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"cosim's multicompartment engine is not available ({exc})") from None
        self.m = config
        self.net = None

    def versions(self):
        from importlib.metadata import version
        import cosim
        return {"cosim": cosim.__version__, "numba": version("numba"), "numpy": version("numpy")}

    def _network(self, m: dict, n_cells: int):
        from cosim.multicompartment import Network, ball_and_stick, discretise
        hh = {"hh": {"ena": m["ena_mV"], "ek": m["ek_mV"]}}
        morph = ball_and_stick(soma_L_um=m["soma_L_um"], soma_diam_um=m["soma_diam_um"],
                               dend_L_um=m["dend_L_um"], dend_diam_um=m["dend_diam_um"],
                               dend_nseg=m["dend_nseg"], Ra_ohm_cm=m["Ra_ohm_cm"],
                               cm_uF_per_cm2=m["cm_uF_per_cm2"],
                               soma_mechanisms=hh, dend_mechanisms=hh)
        template = discretise(morph)
        net = Network(dt_ms=m["dt_ms"], celsius=m["celsius"], v_init_mV=m["v_init_mV"],
                      spike_threshold_mV=m["threshold_mV"])
        for gid in net.add_cells(template, n_cells, detect_at=("soma", 0.5)):
            net.add_current_clamp(gid, ("soma", 0.5), m["iclamp_delay_ms"], 1e9, m["iclamp_amp_nA"])
        net.build()
        return net, template

    def _simulate(self, net, duration_ms: float):
        net.reset()
        tic = time.perf_counter()
        spikes, _ = net.run(duration_ms)
        return time.perf_counter() - tic, spikes

    def warmup(self):
        net, _ = self._network(self.m, WARMUP["n_cells"])
        self._simulate(net, WARMUP["duration_ms"])

    def build(self):
        self.net, template = self._network(self.m, self.m["n_cells"])
        return {"compartments_per_cell": int(template.n_compartments)}

    def run(self):
        import numpy as np
        wall, (gids, times) = self._simulate(self.net, self.m["duration_ms"])
        cell0 = np.sort(times[gids == 0])
        return wall, {"spikes_cell0_ms": cell0, "total_spikes": np.array(len(times))}


# =========================================================================== cortical cell

CORTICAL = {"n_cells": 10, "celsius": 34.0, "dt_ms": 0.025, "duration_ms": 1000.0,
            "iclamp_amp_nA": 1.0, "iclamp_delay_ms": 20.0, "threshold_mV": 0.0,
            "swc": str(Path(__file__).resolve().parent.parent / "scenarios" / "cortical_l5" / "allen_515570710.swc")}


class CosimCortical:
    def __init__(self, config: dict):
        try:
            from cosim.multicompartment.cells import layer5_cell  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"cosim has no mechanism layer ({exc})") from None
        self.m = config

    def versions(self):
        import cosim
        return {"cosim": cosim.__version__}

    def _network(self, n_cells):
        from cosim.multicompartment import Network, discretise
        from cosim.multicompartment.cells import LAYER5_IONS, layer5_cell
        m = self.m
        morph, cat = layer5_cell(m["swc"])
        tmpl = discretise(morph, cat)
        soma = morph.sections[0].name
        net = Network(m["dt_ms"], celsius=m["celsius"], ions=LAYER5_IONS,
                      spike_threshold_mV=m["threshold_mV"])
        for gid in net.add_cells(tmpl, n_cells, detect_at=(soma, 0.5)):
            net.add_current_clamp(gid, (soma, 0.5), m["iclamp_delay_ms"], 1e9, m["iclamp_amp_nA"])
        net.build()
        return net, morph

    def warmup(self):
        net, _ = self._network(1)
        net.run(5.0)

    def build(self):
        self.net, morph = self._network(self.m["n_cells"])
        return {"compartments_per_cell": int(sum(s.nseg for s in morph.sections))}

    def run(self):
        import numpy as np
        self.net.reset()
        tic = time.perf_counter()
        (gids, times), _ = self.net.run(self.m["duration_ms"])
        wall = time.perf_counter() - tic
        return wall, {"spikes_cell0_ms": np.sort(times[gids == 0]), "total_spikes": np.array(len(times))}


class NeuronCortical:
    def __init__(self, config: dict):
        try:
            import neuron  # noqa: F401
            from cosim.multicompartment.cells import layer5_cell  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"NEURON or cosim's mechanism layer missing ({exc})") from None
        from neuron import h
        self.h = h
        self.m = config

    def versions(self):
        import neuron
        return {"neuron": neuron.__version__}

    def _build(self, n_cells):
        import neuron
        from cosim.engines.neuron_mod import compile_mods
        from cosim.multicompartment.cells import LAYER5_IONS, layer5_cell
        from cosim.multicompartment.mechanism import shipped_mod_dir
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from mc_reference import build_neuron_mechs
        h = self.h
        h.load_file("stdrun.hoc")
        if not hasattr(h, "na_pos"):
            neuron.load_mechanisms(str(compile_mods(shipped_mod_dir(), neuron.__version__)),
                                   warn_if_already_loaded=False)
        h.usetable_na_pos = 0
        cells = []
        for _ in range(n_cells):
            morph, cat = layer5_cell(self.m["swc"])
            secs = build_neuron_mechs(h, morph, cat, LAYER5_IONS)
            clamp = h.IClamp(secs[0](0.5))
            clamp.delay, clamp.dur, clamp.amp = self.m["iclamp_delay_ms"], 1e9, self.m["iclamp_amp_nA"]
            times = h.Vector()
            nc = h.NetCon(secs[0](0.5)._ref_v, None, sec=secs[0])
            nc.threshold = self.m["threshold_mV"]
            nc.record(times)
            cells.append((secs, clamp, nc, times))
        return cells

    def _simulate(self, cells, duration_ms):
        h = self.h
        h.celsius = self.m["celsius"]
        h.dt = self.m["dt_ms"]
        h.steps_per_ms = 1.0 / self.m["dt_ms"]
        cv = h.CVode()
        cv.active(0)
        cv.cache_efficient(1)
        pc = h.ParallelContext()
        pc.set_maxstep(10)
        for c in cells:
            c[3].resize(0)
        h.finitialize(-65.0)
        tic = time.perf_counter()
        pc.psolve(duration_ms)
        return time.perf_counter() - tic

    def warmup(self):
        cells = self._build(1)
        self._simulate(cells, 5.0)
        for sec in cells[0][0]:
            self.h.delete_section(sec=sec)
        del cells

    def build(self):
        self.cells = self._build(self.m["n_cells"])
        return {"compartments_per_cell": int(sum(sec.nseg for sec in self.cells[0][0]))}

    def run(self):
        import numpy as np
        wall = self._simulate(self.cells, self.m["duration_ms"])
        return wall, {"spikes_cell0_ms": np.array(self.cells[0][3], dtype=float),
                      "total_spikes": np.array(sum(len(c[3]) for c in self.cells))}


#: The cortical cell's channels in Arbor's ``bbp`` catalogue (Hay et al. 2011's set): the
#: same kinds of channel as the shipped ``.mod`` files, with Hay's equations.  cosim
#: mechanism → (Arbor mechanism, its conductance parameter).
ARBOR_BBP = {"na_pos": ("NaTs2_t", "gNaTs2_tbar"), "kdr_pos": ("SKv3_1", "gSKv3_1bar"),
             "im_pos": ("Im", "gImbar"), "ih": ("Ih", "gIhbar"), "ca_hva": ("Ca_HVA", "gCa_HVAbar"),
             "ca_lva": ("Ca_LVAst", "gCa_LVAstbar"), "sk": ("SK_E2", "gSK_E2bar"),
             "cadecay": ("CaDynamics_E2", None)}


class ArborCortical:
    """The cortical cell in Arbor: the same SWC (``load_swc_neuron``, NEURON's reading), the
    same densities per section kind from :data:`LAYER5_MECHANISMS` (Ih's apical gradient as
    an Arbor ``iexpr`` of the distance from the root), ``pas`` everywhere, ``na``/``k``
    reversal potentials from :data:`LAYER5_IONS`, Nernst calcium, 34 °C, the same clamp,
    dt and detector; the channels are the ``bbp`` catalogue's (:data:`ARBOR_BBP`).  CVs:
    ``max_extent`` chosen so that the CV count is within 3 % of NEURON's Σ nseg (d_lambda)."""

    def __init__(self, config: dict):
        try:
            import arbor  # noqa: F401
        except ImportError as exc:
            raise C.PeerUnavailable(f"Arbor is not installed ({exc}); pip install arbor") from None
        import arbor
        self.A, self.U, self.m = arbor, arbor.units, config

    def versions(self):
        return {"arbor": self.A.__version__}

    def _cell(self):
        from cosim.multicompartment.cells import IH_APICAL, LAYER5_IONS, LAYER5_MECHANISMS, \
            LAYER5_PASSIVE, layer5_cell
        A, U, m = self.A, self.U, self.m
        if IH_APICAL != "0.0002 * (-0.8696 + 2.087 * exp(d / 323))":
            raise C.PeerUnavailable("the apical Ih rule changed; update ArborCortical")
        morph_c, _ = layer5_cell(m["swc"])
        target = sum(sec.nseg for sec in morph_c.sections)
        loaded = A.load_swc_neuron(m["swc"])
        pas = LAYER5_MECHANISMS["all"]["pas"]
        decor = (A.decor()
                 .set_property(Vm=-65.0 * U.mV, cm=LAYER5_PASSIVE["cm_uF_per_cm2"] * 0.01 * U.F / U.m2,
                               rL=LAYER5_PASSIVE["Ra_ohm_cm"] * U.Ohm * U.cm,
                               tempK=(m["celsius"] + 273.15) * U.Kelvin)
                 .set_ion("na", rev_pot=LAYER5_IONS["na"]["e"] * U.mV)
                 .set_ion("k", rev_pot=LAYER5_IONS["k"]["e"] * U.mV)
                 .set_ion("ca", int_con=5e-5 * U.mM, ext_con=2.0 * U.mM,
                          method=A.mechanism("nernst/x=ca"))
                 .paint("(all)", A.density(f"pas/e={pas['e']:g}", g=pas["g"])))
        ih_apic = ("(mul (scalar 0.0002) (add (scalar -0.8696) (mul (scalar 2.087) "
                   "(exp (div (distance 1.0 (root)) (scalar 323))))))")
        for kind, mechs in LAYER5_MECHANISMS.items():
            if kind == "all":
                continue
            for name, vals in mechs.items():
                if name == "pas":
                    continue
                arb, gname = ARBOR_BBP[name]
                if name == "cadecay":
                    mech = A.density(arb, decay=vals["decay"])
                else:
                    g = next(iter(vals.values()))
                    if isinstance(g, str):
                        mech = A.scaled_mechanism(A.density(arb, {gname: 1.0}))
                        mech.scale(gname, ih_apic)
                    else:
                        mech = A.density(arb, {gname: float(g)})
                decor.paint(f'(tag {dict(soma=1, axon=2, dend=3, apic=4)[kind]})', mech)
        soma = '(on-components 0.5 (tag 1))'
        decor.place(soma, A.i_clamp(m["iclamp_delay_ms"] * U.ms, 1e9 * U.ms,
                                    m["iclamp_amp_nA"] * U.nA))
        decor.place(soma, A.threshold_detector(m["threshold_mV"] * U.mV), "detector")
        lo, hi = 1.0, 400.0
        for _ in range(30):                 # max_extent giving target CVs (± 3 %)
            ext = 0.5 * (lo + hi)
            cell = A.cable_cell(loaded.morphology, decor, loaded.labels, A.cv_policy_max_extent(ext * U.um))
            n = A.cv_data(cell).num_cv
            if abs(n - target) <= 0.03 * target:
                break
            lo, hi = (ext, hi) if n > target else (lo, ext)
        return cell, n

    def _simulation(self, n_cells):
        A = self.A
        cell, num_cv = self._cell()
        cat = A.default_catalogue()
        cat.extend(A.bbp_catalogue(), "")

        sim = arbor_simulation(A, cell, n_cells, cat)
        return sim, num_cv

    def _simulate(self, sim, duration_ms):
        sim.reset()
        tic = time.perf_counter()
        sim.run(duration_ms * self.U.ms, self.m["dt_ms"] * self.U.ms)
        return time.perf_counter() - tic

    def warmup(self):
        sim, _ = self._simulation(1)
        self._simulate(sim, 5.0)

    def build(self):
        self.sim, num_cv = self._simulation(self.m["n_cells"])
        return {"compartments_per_cell": int(num_cv)}

    def run(self):
        import numpy as np
        wall = self._simulate(self.sim, self.m["duration_ms"])
        spikes = self.sim.spikes()
        gids, times = spikes["source"]["gid"], spikes["time"]
        return wall, {"spikes_cell0_ms": np.sort(times[gids == 0]), "total_spikes": np.array(len(times))}


FACTORIES = {"cosim": CosimRunner, "neuron": NeuronRunner, "arbor": ArborRunner,
             "cosim-cortical": CosimCortical, "neuron-cortical": NeuronCortical,
             "arbor-cortical": ArborCortical}


def cortical_case(args) -> dict:
    """Run the cortical-cell case side by side; its part of the JSON."""
    model = dict(CORTICAL, n_cells=args.cortical_cells,
                 duration_ms=args.cortical_duration_ms or args.duration_ms)
    names = [f"{s}-cortical" for s in SIMULATORS if not args.only or s in args.only]
    n_steps = round(model["duration_ms"] / model["dt_ms"])
    print(f"\ncase cortical_cell: {model['n_cells']} layer-5 cells (Allen 515570710, shipped .mod "
          f"set), {model['celsius']} °C, {model['duration_ms']:g} ms", flush=True)
    results = C.run_interleaved(__file__, [{"name": n, "config": model} for n in names],
                                args.repeats, verbose=args.verbose, cold_jit=args.cold_jit,
                                log=lambda s: print(s, file=sys.stderr, flush=True))
    ns, ns_cpu, skipped, cpc, versions = {}, {}, {}, {}, {}
    for name in names:
        r = results[name]
        short = name.split("-")[0]
        if r["status"] != "ok":
            skipped[short] = r["reason"]
            continue
        cpc[short] = r["setup"]["info"].get("compartments_per_cell")
        n_comp = model["n_cells"] * cpc[short]
        ns[short] = min(r["walls_s"]) / (n_comp * n_steps) * 1e9
        cpus = [c for c in r.get("cpus_s", []) if c is not None]
        if cpus:
            ns_cpu[short] = min(cpus) / (n_comp * n_steps) * 1e9
        versions.update(r["setup"]["versions"])
    ratios = {peer: C.ratio(ns.get(peer), ns.get("cosim")) for peer in ("neuron", "arbor")}
    ratios_cpu = {peer: C.ratio(ns_cpu.get(peer), ns_cpu.get("cosim"))
                  for peer in ("neuron", "arbor")}
    agreement = {}
    if "cosim" in ns and "neuron" in ns:
        agreement["cosim-neuron"] = compare_spikes(
            results["cosim-cortical"]["arrays"]["spikes_cell0_ms"],
            results["neuron-cortical"]["arrays"]["spikes_cell0_ms"], model["dt_ms"])
    rows = [[s, ns.get(s, "skipped"), ratios.get(s) if s != "cosim" else 1.0,
             ns_cpu.get(s), ratios_cpu.get(s) if s != "cosim" else 1.0, cpc.get(s)]
            for s in ("cosim", "neuron", "arbor") if f"{s}-cortical" in names]
    C.print_table(["simulator", "ns/comp-step", "peer÷ours", "CPU ns/comp-step", "CPU peer÷ours",
                   "comp/cell"], rows)
    for name, reason in skipped.items():
        print(f"  {name}: skipped — {reason}")
    for pair, a in agreement.items():
        print(f"agreement {pair:<26} cell-0 spikes {a['counts'][0]} vs {a['counts'][1]}, "
              f"max |Δt| {a['max_abs_dt_ms']:.3f} ms → {'AGREE' if a['agree'] else 'DISAGREE'}")
    targets = C.check_targets(ratios, TARGETS, at_least={"neuron"})
    return {"ratios": ratios, "ns_per_compartment_step": ns, "ratios_cpu": ratios_cpu,
            "ns_per_compartment_step_cpu": ns_cpu, "agreement": agreement,
            "arbor_model": "bbp catalogue channels of the same kinds and densities (other "
                           "equations); same morphology, CVs within 3 %, dt, clamp",
            "targets_met": targets, "skipped": skipped, "model": model,
            "compartments_per_cell": cpc, "n_steps": n_steps, "versions": versions}


# =========================================================================== driver

def compare_spikes(a, b, tol_ms: float) -> dict:
    """Spike-train agreement of two sorted arrays of times (ms)."""
    import numpy as np
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = min(len(a), len(b))
    max_dt = float(np.max(np.abs(a[:n] - b[:n]))) if n else 0.0
    ok = abs(len(a) - len(b)) <= 1 and max_dt <= tol_ms and (len(a) > 0) == (len(b) > 0)
    return {"counts": [int(len(a)), int(len(b))], "max_abs_dt_ms": max_dt, "agree": bool(ok)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-ms", type=float, default=MODEL["duration_ms"],
                   help="simulated time per run (default 1000)")
    p.add_argument("--cells", type=int, default=MODEL["n_cells"], help="number of cells (default 100)")
    p.add_argument("--cortical-cells", type=int, default=CORTICAL["n_cells"],
                   help="cells of the cortical_cell case (default 10; 0 skips the case)")
    p.add_argument("--cortical-duration-ms", type=float, default=None,
                   help="simulated time of the cortical_cell case (default: --duration-ms)")
    p.add_argument("--spike-tol-ms", type=float, default=1.0,
                   help="largest allowed difference of paired spike times (default 1 ms)")
    C.add_common_args(p, repeats=3)
    args = p.parse_args(argv)
    if args.worker:
        C.worker_main(FACTORIES, args.worker)
        return 0

    model = dict(MODEL, duration_ms=args.duration_ms, n_cells=args.cells)
    names = [s for s in SIMULATORS if not args.only or s in args.only]
    n_comp = model["n_cells"] * n_compartments_per_cell(model)
    n_steps = round(model["duration_ms"] / model["dt_ms"])
    info = C.machine_info()
    print(f"multicompartment benchmark: {model['n_cells']} cells × {n_compartments_per_cell(model)} "
          f"compartments = {n_comp}, HH everywhere, {model['celsius']} °C, dt {model['dt_ms']} ms, "
          f"{model['duration_ms']:g} ms simulated ({n_steps} steps), 1 thread, "
          f"min over {args.repeats} interleaved rounds", flush=True)

    plan = [{"name": n, "config": model} for n in names]
    results = C.run_interleaved(__file__, plan, args.repeats, verbose=args.verbose,
                                cold_jit=args.cold_jit,
                                log=lambda s: print(s, file=sys.stderr, flush=True))

    ns, jit, build, mem, versions, skipped, cpc = {}, {}, {}, {}, {}, {}, {}
    for name in names:
        r = results[name]
        if r["status"] != "ok":
            skipped[name] = r["reason"]
            continue
        wall = min(r["walls_s"])
        ns[name] = wall / (n_comp * n_steps) * 1e9
        jit[name] = r["setup"]["jit_cold_s"] if args.cold_jit else r["setup"]["warmup_s"]
        build[name] = r["setup"]["build_s"]
        mem[name] = r["peak_rss_delta_bytes"] / n_comp
        versions.update(r["setup"]["versions"])
        cpc[name] = r["setup"]["info"].get("compartments_per_cell")

    ratios = {peer: C.ratio(ns.get(peer), ns.get("cosim")) for peer in ("neuron", "arbor")}

    agreement = {}
    ok_names = [n for n in names if results[n]["status"] == "ok"]
    for i, a in enumerate(ok_names):
        for b in ok_names[i + 1:]:
            agreement[f"{a}-{b}"] = compare_spikes(results[a]["arrays"]["spikes_cell0_ms"],
                                                   results[b]["arrays"]["spikes_cell0_ms"],
                                                   args.spike_tol_ms)
    if "cosim" in ok_names and "neuron" in ok_names:
        # NEURON with hh's rate tables off: the same equations evaluated exactly, so the
        # spike steps must coincide (within one step).
        agreement["cosim-neuron_exact_rates"] = compare_spikes(
            results["cosim"]["arrays"]["spikes_cell0_ms"],
            results["neuron"]["arrays"]["spikes_cell0_exact_rates_ms"], model["dt_ms"])

    rows = []
    for name in names:
        if name in skipped:
            rows.append([name, "skipped", None, None, None, None, None, None])
            continue
        arr = results[name]["arrays"]
        rows.append([name, ns[name], ratios.get(name) if name != "cosim" else 1.0,
                     mem[name], jit[name], build[name], int(arr["total_spikes"]),
                     cpc[name]])
    print()
    C.print_table(["simulator", "ns/comp-step", "peer÷ours", "peak B/comp",
                   "warm-up/JIT s", "build s", "spikes (all)", "comp/cell"], rows)
    for name, reason in skipped.items():
        print(f"  {name}: skipped — {reason}")
    print()
    for pair, a in agreement.items():
        print(f"agreement {pair:<26} cell-0 spikes {a['counts'][0]} vs {a['counts'][1]}, "
              f"max |Δt| {a['max_abs_dt_ms']:.3f} ms → {'AGREE' if a['agree'] else 'DISAGREE'}")
    targets = C.check_targets(ratios, TARGETS, at_least={"neuron"})
    cases = {"cortical_cell": cortical_case(args)} if args.cortical_cells > 0 else {}

    if args.json:
        C.write_json(args.json, {
            "benchmark": "multicompartment",
            "ratios": ratios,
            "ns_per_compartment_step": ns,
            "jit_seconds": jit.get("cosim"),
            "warmup_seconds": jit,
            "build_seconds": build,
            "peak_memory_bytes_per_compartment": mem,
            "memory_method": next((results[n]["setup"]["memory_method"] for n in ok_names), None),
            "agreement": agreement,
            "all_agree": all(a["agree"] for a in agreement.values()) if agreement else None,
            "targets_met": targets,
            "skipped": skipped,
            "wall_seconds_all_rounds": {n: results[n]["walls_s"] for n in ok_names},
            "model": model,
            "n_compartments": n_comp,
            "n_steps": n_steps,
            "repeats": args.repeats,
            "numba_cache": "cold (empty)" if args.cold_jit else "as found on disk",
            "versions": versions,
            "machine": info,
            "cases": cases,
        })
    agree = list(agreement.values()) + [a for c in cases.values() for a in c["agreement"].values()]
    return 0 if all(a["agree"] for a in agree) else 1


if __name__ == "__main__":
    sys.exit(main())
