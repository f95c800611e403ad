"""Discretisation of a :class:`~.morphology.Morphology` into compartments (nodes).

Follows NEURON's second-order-correct "centred" scheme: a section with ``nseg`` segments
has one node at the centre of each segment, plus a zero-area node at its 1-end (and the
root section one at its 0-end) where children attach.  Neighbouring nodes are joined by
the axial resistance of the two half segments between them, integrated over the
piecewise-linear 3-D diameter exactly as NEURON does (frusta)::

    area  = π/2 · Σ (d1 + d2) · sqrt(Δs² + ((d2 − d1)/2)²)           (µm²)
    r     = 4·Ra·1e-2/π · Σ Δs / (d1·d2)                              (MΩ, Ra in Ω·cm)

A zero-area node with a single neighbour carries no current; it is dropped (its voltage
equals its neighbour's).  Nodes are numbered so that every parent precedes its children
(Hines order), node 0 being the root.

Per-node parameters (:data:`NODE_PARAMS`, absolute units: nF, µS, mV) are what the
cable kernel uses; ``cap = cm·area·1e-5`` nF, ``g = density·area·1e-2`` µS.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import CosimError
from .distribution import path_distance, value_at
from .morphology import Morphology, Section


def _at(value, d: float) -> float:
    """A parameter value at path distance ``d`` (µm): numbers as they are."""
    return float(value_at(value, d)) if isinstance(value, str) else value

#: Rows of :attr:`CellTemplate.node_par`.
NODE_PARAMS = ("cap_nF", "gax_uS", "gsum_uS", "gna_uS", "gk_uS", "gl_uS", "el_mV",
               "ena_mV", "ek_mV", "gpas_uS", "epas_mV")
CAP, GAX, GSUM, GNA, GK, GL, EL, ENA, EK, GPAS, EPAS = range(len(NODE_PARAMS))


def _half_integrals(arc: np.ndarray, diam: np.ndarray, a: float, b: float):
    """Area (µm²) and ``Σ Δs/(d1·d2)`` (1/µm) of the frusta between arc positions a, b."""
    inner = arc[(arc > a) & (arc < b)]
    s = np.concatenate(([a], inner, [b]))
    d = np.interp(s, arc, diam)
    ds = np.diff(s)
    d1, d2 = d[:-1], d[1:]
    area = 0.5 * math.pi * float(np.sum((d1 + d2) * np.sqrt(ds * ds + (0.5 * (d2 - d1)) ** 2)))
    rsum = float(np.sum(ds / (d1 * d2)))
    return area, rsum


def segment_geometry(sec: Section):
    """Per segment: area (µm²), left and right half axial resistance (MΩ), mean diam (µm)."""
    arc = sec.arc_um
    diam = sec.points[:, 3]
    L = arc[-1]
    ds = L / sec.nseg
    rfac = 4.0 * sec.Ra_ohm_cm * 1e-2 / math.pi
    out = np.empty((sec.nseg, 4))
    for j in range(sec.nseg):
        a, m, b = j * ds, (j + 0.5) * ds, (j + 1) * ds
        area_l, r_l = _half_integrals(arc, diam, a, m)
        area_r, r_r = _half_integrals(arc, diam, m, b)
        s = np.linspace(a, b, 9)
        out[j] = (area_l + area_r, rfac * r_l, rfac * r_r, float(np.mean(np.interp(s, arc, diam))))
    return out


@dataclass(frozen=True)
class CellTemplate:
    """Compartments of one morphology: the arrays the cable kernel needs.

    ``parent``: (n_nodes,) parent node, -1 for node 0; ``area_um2``: (n_nodes,);
    ``node_par``: (len(NODE_PARAMS), n_nodes); ``has_hh``: (n_nodes,) uint8;
    ``section``/``x``: which section and position (0…1) each node represents.
    """

    morphology: Morphology
    parent: np.ndarray
    area_um2: np.ndarray
    node_par: np.ndarray
    has_hh: np.ndarray
    section: np.ndarray
    x: np.ndarray
    #: Mechanisms of the mechanism layer (:mod:`.mechanism`; every one but hh and pas):
    #: ``(mechanism, nodes int64[n], params float64[n_params, n], fac float64[n])`` with
    #: ``fac = area·1e-2`` (mA/cm² → nA), in the order NEURON runs them (by file name).
    mechs: tuple = ()
    #: The :class:`~.mechanism.Catalogue` the mechanisms come from: one kernel serves
    #: every model of a catalogue (mechanisms without instances cost nothing per step).
    catalogue: object = None

    @property
    def n_nodes(self) -> int:
        return int(self.parent.size)

    @property
    def n_compartments(self) -> int:
        """Nodes with membrane (non-zero area)."""
        return int(np.count_nonzero(self.area_um2 > 0))

    def node(self, section: str | int, x: float = 0.5) -> int:
        """The node representing ``section(x)`` — the centre of the segment holding x.

        ``x = 0`` and ``x = 1`` give the section's end nodes (or, where those were
        dropped, the nearest segment centre).
        """
        isec = section if isinstance(section, (int, np.integer)) else self.morphology.index(section)
        if not 0.0 <= x <= 1.0:
            raise CosimError(f"position x must be in [0, 1], got {x}")
        nseg = self.morphology.sections[isec].nseg
        target = (min(int(x * nseg), nseg - 1) + 0.5) / nseg if 0.0 < x < 1.0 else x
        mine = np.flatnonzero(self.section == isec)
        return int(mine[np.argmin(np.abs(self.x[mine] - target))])


def discretise(morph: Morphology, catalogue=None) -> CellTemplate:
    """Build the compartment arrays of ``morph`` (see module docstring).

    ``catalogue`` (:class:`~.mechanism.Catalogue`) describes the mechanisms other than
    hh and pas that the sections insert.
    """
    secs = morph.sections
    for i, sec in enumerate(secs):
        if (i == 0) != (sec.parent < 0) or sec.parent >= i:
            raise CosimError(f"section {sec.name!r}: sections must be listed root first, "
                             "each after its parent")
        if sec.nseg < 1:
            raise CosimError(f"section {sec.name!r}: nseg must be >= 1, got {sec.nseg}")
        if np.any(sec.points[:, 3] <= 0) or sec.length_um <= 0:
            raise CosimError(f"section {sec.name!r}: diameters and length must be > 0")
    # Raw NEURON node list: (section, x, area, mechanisms) and undirected edges (a, b, MΩ).
    n_sec, n_area, n_x, edges = [0], [0.0], [0.0], []
    centres: list[list[int]] = []
    start_node: list[int] = []
    end_node: list[int] = []
    for i, sec in enumerate(secs):
        if i == 0:
            attach = 0
        elif sec.parent_x >= 1.0:
            attach = end_node[sec.parent]
        elif sec.parent_x <= 0.0:
            attach = start_node[sec.parent]
        else:
            pn = secs[sec.parent].nseg
            attach = centres[sec.parent][min(int(sec.parent_x * pn), pn - 1)]
        start_node.append(attach)
        geo = segment_geometry(sec)
        prev, r_prev, mine = attach, 0.0, []
        for j in range(sec.nseg):
            k = len(n_sec)
            n_sec.append(i)
            n_x.append((j + 0.5) / sec.nseg)
            n_area.append(geo[j, 0])
            edges.append((prev, k, r_prev + geo[j, 1]))
            prev, r_prev = k, geo[j, 2]
            mine.append(k)
        k = len(n_sec)
        n_sec.append(i)
        n_x.append(1.0)
        n_area.append(0.0)
        edges.append((prev, k, r_prev))
        centres.append(mine)
        end_node.append(k)
    return _assemble(morph, np.array(n_sec), np.array(n_x), np.array(n_area), edges, catalogue)


def _assemble(morph, n_sec, n_x, n_area, edges, catalogue=None) -> CellTemplate:
    n_raw = n_sec.size
    nbrs: list[list[tuple[int, float]]] = [[] for _ in range(n_raw)]
    for a, b, r in edges:
        nbrs[a].append((b, r))
        nbrs[b].append((a, r))
    keep = np.array([n_area[k] > 0 or len(nbrs[k]) > 1 for k in range(n_raw)])
    root = int(np.flatnonzero(keep)[0])
    order, parent_raw, r_par = [], {root: -1}, {root: 0.0}
    stack = [root]
    while stack:  # depth-first preorder: parents precede children
        k = stack.pop()
        order.append(k)
        for nb, r in reversed(nbrs[k]):
            if keep[nb] and nb not in parent_raw:
                parent_raw[nb] = k
                r_par[nb] = r
                stack.append(nb)
    new = {k: i for i, k in enumerate(order)}
    n = len(order)
    parent = np.array([new[parent_raw[k]] if parent_raw[k] >= 0 else -1 for k in order],
                      dtype=np.int64)
    area = n_area[order]
    node_par = np.zeros((len(NODE_PARAMS), n))
    has_hh = np.zeros(n, dtype=np.uint8)
    layer: dict[str, list] = {}       # mechanism -> [(node, params)]
    dist = path_distance(morph, n_sec[order], n_x[order])   # for densities given as f(d)
    for i, k in enumerate(order):
        if i > 0:
            node_par[GAX, i] = 1.0 / r_par[k]
        if area[i] <= 0:
            continue
        sec = morph.sections[n_sec[k]]
        node_par[CAP, i] = sec.cm_uF_per_cm2 * area[i] * 1e-5
        mechs_here = {name: ({p: _at(v, dist[i]) for p, v in vals.items()}
                             if any(isinstance(v, str) for v in vals.values()) else vals)
                      for name, vals in sec.mechanisms.items()}
        hh = mechs_here.get("hh")
        if hh is not None:
            has_hh[i] = 1
            g = area[i] * 1e-2
            node_par[GNA, i], node_par[GK, i], node_par[GL, i] = hh["gnabar"] * g, hh["gkbar"] * g, hh["gl"] * g
            node_par[EL, i], node_par[ENA, i], node_par[EK, i] = hh["el"], hh["ena"], hh["ek"]
        pas = mechs_here.get("pas")
        if pas is not None:
            node_par[GPAS, i] = pas["g"] * area[i] * 1e-2
            node_par[EPAS, i] = pas["e"]
        for name, values in mechs_here.items():
            if name not in ("hh", "pas"):
                layer.setdefault(name, []).append((i, values))
    node_par[GSUM] = node_par[GAX]
    np.add.at(node_par[GSUM], parent[1:], node_par[GAX, 1:])
    mechs = []
    for name, inst in layer.items():
        if catalogue is None or name not in getattr(catalogue, "mechanisms", {}):
            raise CosimError(f"mechanism {name!r} is not in the catalogue given to discretise")
        mech = catalogue.mechanisms[name]
        nodes = np.array([i for i, _ in inst], dtype=np.int64)
        par = np.array([[vals.get(p, dflt) for p, dflt in mech.defaults.items()]
                        for _, vals in inst], dtype=np.float64).reshape(len(inst), -1).T
        mechs.append((mech, nodes, np.ascontiguousarray(par), area[nodes] * 1e-2))
    mechs.sort(key=lambda m: (os.path.basename(m[0].path), m[0].name))
    return CellTemplate(morph, parent, area, node_par, has_hh,
                        n_sec[order].astype(np.int64), n_x[order], tuple(mechs),
                        catalogue if mechs else None)
