"""A layer-5 pyramidal-like cell as a NEURON model, run by cosim's ``neuron`` engine.

The morphology is the Allen Cell Types reconstruction 515570710 (Rbp4-Cre, mouse visual
cortex; ``../cortical_l5/allen_515570710.swc``), read with NEURON's own ``Import3d``; the
channels are the NMODL files shipped with cosim (``mod_dir = "cosim:cortical"``: Pospischil et
al. 2008 Na, Kdr and M-current, Kole et al. 2006 Ih, Reuveni et al. 1993 Ca_HVA, a T-type
Ca_LVA, Köhler et al. 1996 SK and a Ca pool), compiled by ``nrnivmodl``, with the densities of
a Hay et al. (2011)-style cell: Na/Kdr at soma and axon, weaker in the apical tree, Ca and
SK at the soma and in the apical tree, and Ih growing with the path distance d (µm) from the
soma along the apical tree, ``gbar = 0.0002 · (−0.8696 + 2.087 · exp(d / 323))`` S/cm².  The
densities are :data:`cosim.multicompartment.cells.LAYER5_MECHANISMS` — the same declaration
cosim's own multicompartment engine uses for ``scenarios/cortical_l5/`` — so the two engines
run one cell model.  Segments by NEURON's d_lambda rule (0.1 at 100 Hz).

Synaptic input: ``syn_bg``, an ``Exp2Syn`` (AMPA: τ 0.2 / 2 ms, e = 0 mV) on the apical
dendrite at the path distance ``syn_distance`` µm (default 300) — driven by cosim's input
lines (the region's delayed connectome input as Poisson trains).

``build(ctx, **args)`` returns ``{gid: cell}`` for ``ctx.gids``; no recurrent connections.
"""

from __future__ import annotations

import math
import os

from cosim.multicompartment.cells import LAYER5_IONS, LAYER5_MECHANISMS, LAYER5_PASSIVE
from cosim.multicompartment.distribution import evaluate

SWC = os.path.join(os.pardir, "cortical_l5", "allen_515570710.swc")
KINDS = ("soma", "axon", "dend", "apic")


class L5Cell:
    """One cell: section lists ``soma``, ``axon``, ``dend``, ``apic`` (Import3d's names)."""

    def __init__(self, h, path: str, syn_distance: float):
        reader = h.Import3d_SWC_read()
        reader.quiet = 1
        reader.input(path)
        h.Import3d_GUI(reader, False).instantiate(self)
        sections = [s for kind in KINDS for s in getattr(self, kind, [])]
        for sec in sections:
            sec.Ra = LAYER5_PASSIVE["Ra_ohm_cm"]
            sec.cm = LAYER5_PASSIVE["cm_uF_per_cm2"]
            lam = 1e5 * math.sqrt(sec.diam / (4 * math.pi * 100.0 * sec.Ra * sec.cm))
            sec.nseg = int((sec.L / (LAYER5_PASSIVE["d_lambda"] * lam) + 0.9) / 2) * 2 + 1
        h.distance(0, self.soma[0](0.5))
        for kind in KINDS:
            mechs = LAYER5_MECHANISMS.get(kind, LAYER5_MECHANISMS["all"])
            for sec in getattr(self, kind, []):
                _insert(h, sec, mechs)
        self.syn_bg = h.Exp2Syn(self._apical_site(h, syn_distance))
        self.syn_bg.tau1, self.syn_bg.tau2, self.syn_bg.e = 0.2, 2.0, 0.0

    def _apical_site(self, h, d_um: float):
        """The apical segment whose path distance from the soma is closest to ``d_um``."""
        segs = [seg for sec in self.apic for seg in sec]
        return min(segs, key=lambda seg: abs(h.distance(seg) - d_um))


def _insert(h, sec, mechs: dict) -> None:
    for mech, params in mechs.items():
        sec.insert(mech)
        if hasattr(h, f"usetable_{mech}"):
            setattr(h, f"usetable_{mech}", 0)          # exact rates, as cosim computes them
        for name, value in params.items():
            for seg in sec:
                v = float(evaluate(value, h.distance(seg))) if isinstance(value, str) else value
                m = getattr(seg, mech)
                if hasattr(m, name):
                    setattr(m, name, v)
                else:                                  # a GLOBAL of the mechanism
                    setattr(h, f"{name}_{mech}", v)
    for ion, vals in LAYER5_IONS.items():
        if hasattr(sec(0.5), f"e{ion}"):
            for seg in sec:
                setattr(seg, f"e{ion}", vals["e"])


def build(ctx, syn_distance: float = 300.0):
    """The cells ``ctx.gids``: ``{gid: L5Cell}``."""
    h = ctx.h
    h.load_file("import3d.hoc")
    path = os.path.join(ctx.model_dir, SWC)
    return {int(g): L5Cell(h, path, float(syn_distance)) for g in ctx.gids}
