"""Helpers for the multicompartment tests: the same model built in NEURON.

Everything here uses NEURON's own Python API (h.Section, pt3dadd, hh, pas, IClamp,
Exp2Syn, NetCon) so that the reference is independent of cosim's kernels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"


def neuron_h():
    from neuron import h
    h.load_file("stdrun.hoc")
    h.usetable_hh = 0          # exact HH rates, no 200-point interpolation table
    h.secondorder = 0
    return h


def compile_nmda(tmpdir: Path) -> bool:
    """Compile tests/data/nmda_mg.mod with nrnivmodl and load it (False if impossible)."""
    from neuron import h, load_mechanisms
    if hasattr(h, "NMDAMg"):
        return True
    exe = shutil.which("nrnivmodl", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
    if exe is None:
        return False
    shutil.copy(DATA / "nmda_mg.mod", tmpdir / "nmda_mg.mod")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    res = subprocess.run([exe], cwd=tmpdir, capture_output=True, text=True, env=env, timeout=300)
    if res.returncode != 0:
        return False
    return bool(load_mechanisms(str(tmpdir), warn_if_already_loaded=False)) and hasattr(h, "NMDAMg")


def _sections(h, morph):
    """NEURON sections with a cosim Morphology's 3-D points, nseg, Ra, cm and topology."""
    secs = []
    for s in morph.sections:
        sec = h.Section(name=s.name)
        for x, y, z, d in s.points:
            h.pt3dadd(float(x), float(y), float(z), float(d), sec=sec)
        sec.nseg = s.nseg
        sec.Ra = s.Ra_ohm_cm
        sec.cm = s.cm_uF_per_cm2
        if s.parent >= 0:
            sec.connect(secs[s.parent](s.parent_x), 0)
        secs.append(sec)
    return secs


def _set_hh_pas(sec, mech, p):
    """cosim's ``hh`` / ``pas`` parameters ``p`` on every segment of ``sec``."""
    for seg in sec:
        if mech == "hh":
            seg.hh.gnabar, seg.hh.gkbar = p["gnabar"], p["gkbar"]
            seg.hh.gl, seg.hh.el = p["gl"], p["el"]
            seg.ena, seg.ek = p["ena"], p["ek"]
        elif mech == "pas":
            seg.pas.g, seg.pas.e = p["g"], p["e"]


def build_neuron(h, morph):
    """NEURON sections mirroring a cosim Morphology (3-D points, nseg, Ra, cm, mechanisms)."""
    secs = _sections(h, morph)
    for s, sec in zip(morph.sections, secs):
        for mech, p in s.mechanisms.items():
            sec.insert(mech)
            _set_hh_pas(sec, mech, p)
    return secs


def run_neuron(h, tstop_ms, dt_ms, v_init=-65.0, celsius=6.3):
    h.dt = dt_ms
    h.steps_per_ms = 1.0 / dt_ms
    h.celsius = celsius
    h.finitialize(v_init)
    n = int(round(tstop_ms / dt_ms))
    for _ in range(n):
        h.fadvance()


def spike_recorder(h, seg, threshold=0.0):
    vec = h.Vector()
    nc = h.NetCon(seg._ref_v, None, sec=seg.sec)
    nc.threshold = threshold
    nc.record(vec)
    return nc, vec


def load_mod_dir(mod_dir) -> bool:
    """Compile a folder of .mod files with nrnivmodl (cached by content hash, see
    cosim.engines.neuron_mod) and load it into NEURON; False if nrnivmodl is missing."""
    import neuron
    from cosim.engines.neuron_mod import compile_mods
    from cosim.errors import CosimError
    try:
        lib = compile_mods(mod_dir, neuron.__version__)
    except CosimError:
        return False
    neuron.load_mechanisms(str(lib), warn_if_already_loaded=False)
    return True


def build_neuron_mechs(h, morph, catalogue, ions=None):
    """Like :func:`build_neuron`, for any mechanisms: RANGE parameters per segment (a
    string value is evaluated at ``h.distance(root(0.5), seg)``), the others (NEURON
    GLOBALs) as ``<name>_<suffix>``; ``ions`` = {ion: {e, ci, co}}.  Rate tables are
    switched off (``usetable_<suffix> = 0``)."""
    from cosim.multicompartment.distribution import evaluate
    secs = _sections(h, morph)
    root = secs[0](0.5)
    for s, sec in zip(morph.sections, secs):
        for mech, p in s.mechanisms.items():
            sec.insert(mech)
            if mech in ("hh", "pas"):
                continue
            m = catalogue.mechanisms[mech]
            if hasattr(h, f"usetable_{mech}"):
                setattr(h, f"usetable_{mech}", 0)      # exact rates (cosim ignores TABLE)
            for name, value in p.items():
                if name in m.mod.range_names:
                    for seg in sec:
                        val = float(evaluate(value, h.distance(root, seg))) if isinstance(value, str) else value
                        setattr(getattr(seg, mech), name, val)
                else:
                    setattr(h, f"{name}_{mech}", value)
        for mech, p in s.mechanisms.items():
            _set_hh_pas(sec, mech, p)
        for ion, vals in (ions or {}).items():
            if hasattr(sec(0.5), f"e{ion}"):
                for seg in sec:
                    if "e" in vals:
                        setattr(seg, f"e{ion}", vals["e"])
                    if "ci" in vals:
                        setattr(seg, f"{ion}i", vals["ci"])
                    if "co" in vals:
                        setattr(seg, f"{ion}o", vals["co"])
    return secs
