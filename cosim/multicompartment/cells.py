"""Cell models built from the shipped cortical mechanisms (:mod:`.mechanism`).

:data:`LAYER5_MECHANISMS` — a layer-5 pyramidal-like cell in the spirit of Hay et al.
(2011, PLoS Comput Biol 7:e1002107), with this package's channel set (not Hay's fitted
model): Pospischil Na/Kdr at soma and axon (weaker in the apical tree), M-current,
high- and low-threshold Ca with SK and a Ca pool at the soma and in the apical tree, and
Ih uniform in the basal dendrites and growing exponentially with the path distance ``d``
(µm from the soma) in the apical tree (Kole et al. 2006 / Hay et al. 2011:
``gbar = 0.0002·(−0.8696 + 2.087·exp(d/323))`` S/cm²).  Keys are section kinds (SWC
types) applied in order, ``"all"`` first; values as in :meth:`.Morphology.set`.
Densities in S/cm², reversal potentials in mV (passive leak e = −75 mV; ek −85, ena 50
mV are set as ions by :data:`LAYER5_IONS`).
"""

from __future__ import annotations

IH_APICAL = "0.0002 * (-0.8696 + 2.087 * exp(d / 323))"

LAYER5_MECHANISMS = {
    "all": {"pas": {"g": 3e-5, "e": -75.0}},
    "soma": {"pas": {"g": 3e-5, "e": -75.0}, "na_pos": {"gnabar": 0.05}, "kdr_pos": {"gkbar": 0.01},
             "im_pos": {"gkbar": 5e-5}, "ca_hva": {"gbar": 5e-5}, "ca_lva": {"gbar": 2e-4},
             "sk": {"gbar": 2e-4}, "cadecay": {"decay": 100.0}, "ih": {"gbar": 8e-5}},
    "axon": {"pas": {"g": 3e-5, "e": -75.0}, "na_pos": {"gnabar": 0.1}, "kdr_pos": {"gkbar": 0.02}},
    "dend": {"pas": {"g": 3e-5, "e": -75.0}, "ih": {"gbar": 8e-5}},
    "apic": {"pas": {"g": 3e-5, "e": -75.0}, "na_pos": {"gnabar": 0.004},
             "kdr_pos": {"gkbar": 0.002}, "im_pos": {"gkbar": 5e-5}, "ih": {"gbar": IH_APICAL},
             "ca_hva": {"gbar": 2e-5}, "ca_lva": {"gbar": 2e-4}, "sk": {"gbar": 1e-4},
             "cadecay": {"decay": 80.0}},
}
#: Ion values of the cell: {ion: {"e": mV}} (NEURON's defaults otherwise).
LAYER5_IONS = {"na": {"e": 50.0}, "k": {"e": -85.0}}
#: Axial resistivity (Ω·cm), membrane capacitance (µF/cm²), segments by d_lambda.
LAYER5_PASSIVE = {"Ra_ohm_cm": 100.0, "cm_uF_per_cm2": 1.0, "d_lambda": 0.1}


def layer5_cell(swc_path, catalogue=None):
    """The morphology of ``swc_path`` with :data:`LAYER5_MECHANISMS` (and the catalogue
    used, by default the shipped set)."""
    from .mechanism import Catalogue, shipped_mod_dir
    from .morphology import apply_d_lambda
    from .swc import load_swc
    cat = catalogue if catalogue is not None else Catalogue.from_paths([shipped_mod_dir()])
    m = load_swc(swc_path)
    m.set(Ra_ohm_cm=LAYER5_PASSIVE["Ra_ohm_cm"], cm_uF_per_cm2=LAYER5_PASSIVE["cm_uF_per_cm2"])
    kinds = {s.kind for s in m.sections}
    for where, mechs in LAYER5_MECHANISMS.items():
        if where == "all" or where in kinds:
            for i in m.select(where):
                m.sections[i].mechanisms.clear()
            m.set(where, mechanisms=mechs, catalogue=cat)
    apply_d_lambda(m, LAYER5_PASSIVE["d_lambda"])
    return m, cat
