"""The rV1 region of ``scenarios/default.toml`` written as a NEURON model.

Ball-and-stick Hodgkin–Huxley cells (soma 20 × 20 µm with NEURON's ``hh``; dendrite
200 × 1 µm, passive, g = 1e-4 S/cm², e = −65 mV; Ra = 100 Ω·cm, cm = 1 µF/cm²), recurrent
E/I connections with fixed in-degree, uniformly drawn delays and Tsodyks–Markram
depression on E→E, and two background input synapses driven by cosim.  Receptors are the
``.mod`` files in ``mod/`` (``CosimExp2Syn``: AMPA, GABA_A; ``CosimNMDA``: NMDA with Mg²⁺
block), with the kinetics of cosim's multicompartment engine
(``cosim/multicompartment/synapses.py``).

Loaded by ``type = "neuron"`` (:mod:`cosim.engines.neuron_engine`): ``build(ctx, **args)``
makes the cells ``ctx.gids`` (populations ``exc`` then ``inh``, from the scenario), and
``connect(ctx, cells, **args)`` makes the recurrent connections with
``ctx.pc.gid_connect``.

The connections are drawn exactly as cosim's multicompartment engine draws them — one
stream per (projection, target gid) in the domain ``multicompartment.connect`` keyed by
the engine's name (:mod:`cosim.rng`) — so that an engine of the same name in either
engine type simulates the *same* network: the cross-check of
``tests/test_neuron_engine.py``.  A model of one's own would draw from ``ctx.generator``.
"""

from __future__ import annotations

#: section, x, receptor, weights (µS), delay (ms) [min, max], STP (U, tau_rec, tau_fac) or None
PROJECTIONS = {
    "ee": dict(source="exc", target="exc", indegree=20, receptors=("AMPA", "NMDA"),
               weights=(0.0004, 0.0001), section="dend", x=0.5, delay=(1.0, 3.0),
               stp=(0.5, 800.0, 0.0)),
    "ei": dict(source="exc", target="inh", indegree=20, receptors=("AMPA",), weights=(0.0008,),
               section="soma", x=0.5, delay=(1.0, 2.0), stp=None),
    "ie": dict(source="inh", target="exc", indegree=10, receptors=("GABA_A",), weights=(0.002,),
               section="soma", x=0.5, delay=(1.0, 2.0), stp=None),
    "ii": dict(source="inh", target="inh", indegree=10, receptors=("GABA_A",), weights=(0.001,),
               section="soma", x=0.5, delay=(1.0, 2.0), stp=None),
}

#: Receptor kinetics (ms, ms, mV, mM): cosim's built-in AMPA, GABA_A, NMDA.
RECEPTORS = {"AMPA": ("CosimExp2Syn", 0.2, 2.0, 0.0, None),
             "GABA_A": ("CosimExp2Syn", 0.5, 8.0, -70.0, None),
             "NMDA": ("CosimNMDA", 2.0, 80.0, 0.0, 1.0)}

#: Background input synapse of each population: section, x (AMPA).
BACKGROUND = {"exc": ("dend", 0.8), "inh": ("soma", 0.5)}
NSEG = {"exc": 10, "inh": 4}


class BallStick:
    """One ball-and-stick cell; ``syn[(section, x, receptor)]`` are its synapses,
    ``syn_bg`` the background AMPA synapse that cosim's input lines drive."""

    def __init__(self, h, gid: int, population: str, dend_nseg: int):
        self.gid = gid
        self.soma = h.Section(name=f"soma_{gid}", cell=self)
        self.dend = h.Section(name=f"dend_{gid}", cell=self)
        self.soma.L = self.soma.diam = 20.0
        self.dend.L, self.dend.diam, self.dend.nseg = 200.0, 1.0, dend_nseg
        for sec in (self.soma, self.dend):
            sec.Ra, sec.cm = 100.0, 1.0
        self.soma.insert("hh")                 # NEURON's defaults
        self.dend.insert("pas")
        for seg in self.dend:
            seg.pas.g, seg.pas.e = 0.0001, -65.0
        self.dend.connect(self.soma(1.0), 0.0)
        self._h = h
        self.syn = {}
        sec, x = BACKGROUND[population]
        self.syn_bg = self.synapse(sec, x, "AMPA", shared=False)

    def synapse(self, section: str, x: float, receptor: str, shared: bool = True):
        """The point process of ``receptor`` at ``section(x)`` (one per site if shared)."""
        key = (section, x, receptor)
        if shared and key in self.syn:
            return self.syn[key]
        mech, tau1, tau2, e, mg = RECEPTORS[receptor]
        pp = getattr(self._h, mech)(getattr(self, section)(x))
        pp.tau1, pp.tau2, pp.e = tau1, tau2, e
        if mg is not None:
            pp.mg = mg
        if shared:
            self.syn[key] = pp
        return pp


def build(ctx, **indegrees):
    """The cells ``ctx.gids``: ``{gid: BallStick}``."""
    h = ctx.h
    h.usetable_hh = 0          # cosim's hh computes its rates exactly (no 200-point table)
    return {int(g): BallStick(h, int(g), ctx.population_of(g), NSEG[ctx.population_of(g)])
            for g in ctx.gids}


def connect(ctx, cells, **indegrees):
    """Recurrent connections onto the local cells, drawn as cosim's multicompartment engine
    draws them.  ``indegrees``: e.g. ``indegree_ee = 5`` overrides a projection's."""
    ncs = []
    for name, p in PROJECTIONS.items():
        k = int(indegrees.get(f"indegree_{name}", p["indegree"]))
        src, tgt = ctx.populations[p["source"]], ctx.populations[p["target"]]
        same = p["source"] == p["target"]
        n_cand = len(src) - (1 if same else 0)
        lo, hi = p["delay"]
        for gid in tgt:
            if gid not in cells:
                continue
            rng = ctx.rng.generator("multicompartment.connect", ctx.name, name, gid)
            pick = rng.choice(n_cand, size=k, replace=False)
            if same:
                pick = pick + (pick >= gid - src.start)
            delays = rng.uniform(lo, hi, size=k) if hi > lo else [lo] * k
            for receptor, w in zip(p["receptors"], p["weights"]):
                syn = cells[gid].synapse(p["section"], p["x"], receptor)
                for j, d in zip(pick, delays):
                    nc = ctx.pc.gid_connect(src.start + int(j), syn)
                    nc.weight[0] = w
                    if p["stp"] is not None:
                        nc.weight[1], nc.weight[2], nc.weight[3] = p["stp"]
                    nc.delay = float(d)
                    ncs.append(nc)
    cells[min(cells)].netcons = ncs        # keep them alive with the cells
