"""Neuron morphologies as trees of unbranched sections, plus the built-in templates.

A :class:`Section` is an unbranched cable described by 3-D points ``(x, y, z, diam)`` in
µm (a piecewise-linear diameter along the arc length, NEURON's ``pt3d`` model).  A section
hangs from position ``parent_x`` (0…1) of its parent section.  Electrical parameters are
per section, in NEURON's units:

* ``Ra_ohm_cm`` — axial resistivity (Ω·cm)
* ``cm_uF_per_cm2`` — specific membrane capacitance (µF/cm²)
* ``mechanisms`` — ``{"hh": {...}, "pas": {...}}`` densities (S/cm²) and reversals (mV),
  see :mod:`cosim.multicompartment.channels` for the parameter names and defaults.
* ``nseg`` — number of segments (compartments); or use :func:`apply_d_lambda`.

Templates: :func:`ball_and_stick` and :func:`y_shaped`; SWC files: :mod:`.swc`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import CosimError
from .channels import MECHANISM_DEFAULTS

KINDS = ("soma", "axon", "dend", "apic")


@dataclass
class Section:
    """One unbranched cable.

    ``points``: array ``(n_points >= 2, 4)`` of ``x, y, z, diam`` in µm; the section's
    length ``L`` is the arc length through the points.  ``parent``: index of the parent
    section in :attr:`Morphology.sections` (-1 for the root); ``parent_x``: where on the
    parent the section's 0-end attaches (0…1).
    """

    name: str
    kind: str
    points: np.ndarray
    parent: int = -1
    parent_x: float = 1.0
    nseg: int = 1
    Ra_ohm_cm: float = 35.4
    cm_uF_per_cm2: float = 1.0
    mechanisms: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 4)

    @property
    def arc_um(self) -> np.ndarray:
        """Cumulative arc length (µm) at each 3-D point, starting at 0."""
        steps = np.sqrt(np.sum(np.diff(self.points[:, :3], axis=0) ** 2, axis=1))
        return np.concatenate(([0.0], np.cumsum(steps)))

    @property
    def length_um(self) -> float:
        return float(self.arc_um[-1])


@dataclass
class Morphology:
    """A tree of sections; section 0 is the root and parents precede their children."""

    sections: list[Section]
    source: str = ""

    def index(self, name: str) -> int:
        """Index of the section called ``name`` (``CosimError`` if there is none)."""
        for i, sec in enumerate(self.sections):
            if sec.name == name:
                return i
        names = ", ".join(s.name for s in self.sections[:8])
        raise CosimError(f"no section named {name!r} (sections: {names}…)")

    def select(self, which: str) -> list[int]:
        """Indices of the sections named ``which`` or of kind ``which`` or ``"all"``."""
        if which == "all":
            return list(range(len(self.sections)))
        hits = [i for i, s in enumerate(self.sections) if s.kind == which or s.name == which]
        if not hits:
            raise CosimError(f"no section named or of kind {which!r}")
        return hits

    def set(self, which: str = "all", *, nseg: int | None = None, Ra_ohm_cm: float | None = None,
            cm_uF_per_cm2: float | None = None,
            mechanisms: dict[str, dict[str, float]] | None = None,
            catalogue=None) -> "Morphology":
        """Set parameters on the selected sections (in place; returns ``self``).

        A parameter value may be a string, an expression of the path distance ``d`` (µm)
        from the soma (:mod:`.distribution`).  ``mechanisms`` inserts each named mechanism (default parameters completed from
        :data:`MECHANISM_DEFAULTS`, or from ``catalogue``, a
        :class:`~.mechanism.Catalogue` holding mechanisms read from ``.mod`` files); an
        empty dict value inserts it with defaults.
        """
        for i in self.select(which):
            sec = self.sections[i]
            if nseg is not None:
                sec.nseg = int(nseg)
            if Ra_ohm_cm is not None:
                sec.Ra_ohm_cm = float(Ra_ohm_cm)
            if cm_uF_per_cm2 is not None:
                sec.cm_uF_per_cm2 = float(cm_uF_per_cm2)
            for mech, params in (mechanisms or {}).items():
                if catalogue is not None and mech in catalogue:
                    full = catalogue.defaults(mech)
                elif mech in MECHANISM_DEFAULTS:
                    full = dict(MECHANISM_DEFAULTS[mech])
                else:
                    known = catalogue.names if catalogue is not None else MECHANISM_DEFAULTS
                    raise CosimError(f"unknown mechanism {mech!r}; known: " + ", ".join(known))
                for key, value in params.items():
                    if key not in full:
                        raise CosimError(f"unknown parameter {key!r} of mechanism {mech!r}; "
                                         f"known: {', '.join(full)}")
                    if isinstance(value, str):       # a function of path distance d
                        from .distribution import parse
                        try:
                            parse(value)
                        except CosimError as exc:
                            raise CosimError(f"{mech}.{key}: {exc.reason}") from None
                        full[key] = value
                    else:
                        full[key] = float(value)
                sec.mechanisms[mech] = full
        return self

    def copy(self) -> "Morphology":
        return copy.deepcopy(self)

    @property
    def n_segments(self) -> int:
        return sum(s.nseg for s in self.sections)

    def total_area_um2(self) -> float:
        """Lateral membrane area (µm²) of all frusta (NEURON's ``area`` summed)."""
        total = 0.0
        for sec in self.sections:
            p = sec.points
            ds = np.sqrt(np.sum(np.diff(p[:, :3], axis=0) ** 2, axis=1))
            d1, d2 = p[:-1, 3], p[1:, 3]
            total += float(np.sum(0.5 * math.pi * (d1 + d2) * np.sqrt(ds ** 2 + (0.5 * (d2 - d1)) ** 2)))
        return total


def _line(start, direction, length_um: float, diam_um: float) -> np.ndarray:
    start = np.asarray(start, dtype=float)
    end = start + np.asarray(direction, dtype=float) / np.linalg.norm(direction) * length_um
    return np.array([[*start, diam_um], [*end, diam_um]])


def ball_and_stick(*, soma_L_um: float = 20.0, soma_diam_um: float = 20.0,
                   dend_L_um: float = 200.0, dend_diam_um: float = 1.0, dend_nseg: int = 21,
                   Ra_ohm_cm: float = 100.0, cm_uF_per_cm2: float = 1.0,
                   soma_mechanisms: dict | None = None,
                   dend_mechanisms: dict | None = None) -> Morphology:
    """A cylindrical soma with one cylindrical dendrite attached at ``soma(1)``.

    Defaults: HH soma (NEURON's ``hh`` defaults) and a passive dendrite
    (``pas`` with g = 0.001 S/cm², e = -65 mV), Ra = 100 Ω·cm, cm = 1 µF/cm².
    """
    soma = Section("soma", "soma", _line((0, 0, 0), (1, 0, 0), soma_L_um, soma_diam_um))
    dend = Section("dend", "dend", _line((soma_L_um, 0, 0), (1, 0, 0), dend_L_um, dend_diam_um),
                   parent=0, parent_x=1.0, nseg=dend_nseg)
    morph = Morphology([soma, dend], source="ball_and_stick")
    morph.set(Ra_ohm_cm=Ra_ohm_cm, cm_uF_per_cm2=cm_uF_per_cm2)
    morph.set("soma", mechanisms=soma_mechanisms if soma_mechanisms is not None else {"hh": {}})
    morph.set("dend", mechanisms=dend_mechanisms if dend_mechanisms is not None
              else {"pas": {"g": 0.001, "e": -65.0}})
    return morph


def y_shaped(*, soma_L_um: float = 20.0, soma_diam_um: float = 20.0,
             trunk_L_um: float = 100.0, trunk_diam_um: float = 2.0,
             branch_L_um: float = 150.0, branch_diam_um: float = 1.0, nseg: int = 11,
             Ra_ohm_cm: float = 100.0, cm_uF_per_cm2: float = 1.0,
             soma_mechanisms: dict | None = None,
             dend_mechanisms: dict | None = None) -> Morphology:
    """Soma, a dendritic trunk from ``soma(1)``, and two branches from ``trunk(1)``.

    Sections: ``soma``, ``trunk``, ``branch_a``, ``branch_b`` (kinds soma/dend/dend/dend).
    Default mechanisms as in :func:`ball_and_stick`.
    """
    soma = Section("soma", "soma", _line((0, 0, 0), (1, 0, 0), soma_L_um, soma_diam_um))
    t0 = np.array([soma_L_um, 0.0, 0.0])
    trunk = Section("trunk", "dend", _line(t0, (1, 0, 0), trunk_L_um, trunk_diam_um),
                    parent=0, nseg=nseg)
    b0 = t0 + [trunk_L_um, 0.0, 0.0]
    branch_a = Section("branch_a", "dend", _line(b0, (1, 1, 0), branch_L_um, branch_diam_um),
                       parent=1, nseg=nseg)
    branch_b = Section("branch_b", "dend", _line(b0, (1, -1, 0), branch_L_um, branch_diam_um),
                       parent=1, nseg=nseg)
    morph = Morphology([soma, trunk, branch_a, branch_b], source="y_shaped")
    morph.set(Ra_ohm_cm=Ra_ohm_cm, cm_uF_per_cm2=cm_uF_per_cm2)
    morph.set("soma", mechanisms=soma_mechanisms if soma_mechanisms is not None else {"hh": {}})
    morph.set("dend", mechanisms=dend_mechanisms if dend_mechanisms is not None
              else {"pas": {"g": 0.001, "e": -65.0}})
    return morph


def lambda_f_um(sec: Section, freq_hz: float) -> float:
    """AC length constant (µm) of ``sec`` at ``freq_hz`` (NEURON stdlib ``lambda_f``).

    For a cylinder ``λ_f = 1e5·sqrt(d / (4π f Ra cm))``; for tapered 3-D points the
    section's electrotonic length is summed over frusta as ``Δs / sqrt(d1 + d2)``.
    """
    p = sec.points
    arc = sec.arc_um
    scale = math.sqrt(4.0 * math.pi * freq_hz * sec.Ra_ohm_cm * sec.cm_uF_per_cm2)
    lam = float(np.sum(np.diff(arc) / np.sqrt(p[:-1, 3] + p[1:, 3])))
    lam *= math.sqrt(2.0) * 1e-5 * scale
    return sec.length_um / lam


def apply_d_lambda(morph: Morphology, d_lambda: float = 0.1, freq_hz: float = 100.0) -> Morphology:
    """Set every section's ``nseg`` by the d_lambda rule (odd, in place; returns ``morph``).

    ``nseg = 2·int((L / (d_lambda·λ_f) + 0.9) / 2) + 1`` — Hines & Carnevale, *The NEURON
    Book*, ch. 5: each segment shorter than ``d_lambda`` of the AC length constant at
    ``freq_hz``.
    """
    for sec in morph.sections:
        sec.nseg = int((sec.length_um / (d_lambda * lambda_f_um(sec, freq_hz)) + 0.9) / 2) * 2 + 1
    return morph
