"""Synapse sites at given path distances from the soma.

The path distance of a point ``section(x)`` is NEURON's ``h.distance(soma(0.5),
section(x))``: along the tree, by arc length, from the centre of the root section
(:func:`.distribution.section_starts`).  A distance ``D`` can be crossed by several
branches of the selected sections; its *crossings* are

* on a non-root section spanning path distances ``(d0, d0 + L]``: the point at
  ``x = (D - d0) / L`` if ``d0 < D <= d0 + L`` (half-open, so a branch point belongs to
  its parent section only and is counted once);
* on the root section: ``x = 0.5 ± D / L`` if ``D <= L / 2``;

in morphology (SWC) order, each mapped to the centre of the segment holding it (as NEURON
puts a point process placed at ``sec(x)``); crossings falling into the same segment are
one.  Connection ``k`` of a target cell goes to distance ``k mod n`` (``n`` distances, so
each distance gets the same share of connections) and there to crossing ``(k // n) mod c``
(``c`` crossings of that distance: the connections of a distance are spread round-robin
over the branches that cross it).
"""

from __future__ import annotations

from ..errors import CosimError
from .distribution import section_starts


def crossings(morph, selected: list[int], distance_um: float, what: str = "") -> list[tuple[int, float]]:
    """Points ``(section index, x)`` of the sections ``selected`` at path distance
    ``distance_um`` from the soma, in morphology order (``CosimError`` if there is none)."""
    start = section_starts(morph)
    out = []
    far = 0.0
    for i in selected:
        L = morph.sections[i].length_um
        if i == 0:
            far = max(far, 0.5 * L)
            if distance_um <= 0.5 * L:
                out += [(0, 0.5 - distance_um / L)] + ([(0, 0.5 + distance_um / L)]
                                                        if distance_um > 0 else [])
            continue
        d0 = float(start[i])
        far = max(far, d0 + L)
        if d0 < distance_um <= d0 + L:
            out.append((i, (distance_um - d0) / L))
    if not out:
        where = f"the sections {what!r} selects" if what else "the selected sections"
        if distance_um > far:
            raise CosimError(f"{distance_um:g} µm is beyond the farthest point of {where} "
                             f"({far:.6g} µm from the soma)")
        raise CosimError(f"no point of {where} lies at {distance_um:g} µm from the soma")
    return out


def site_nodes_at_distances(template, selection: str, distances_um, n_connections: int) -> list[int]:
    """The node of connection ``k`` of a cell, ``k < n_connections``, for sites at the path
    distances ``distances_um`` on the sections ``selection`` selects (the rule of the
    module docstring)."""
    morph = template.morphology
    if len(distances_um) == 0:
        raise CosimError("needs at least one distance")
    secs = morph.select(selection)
    per = []
    for dist in distances_um:
        nodes = []
        for i, x in crossings(morph, secs, float(dist), selection):
            nd = template.node(i, min(max(x, 1e-9), 1.0 - 1e-9))
            if nd not in nodes:
                nodes.append(nd)
        per.append(nodes)
    n = len(per)
    return [per[k % n][(k // n) % len(per[k % n])] for k in range(n_connections)]


__all__ = ["crossings", "site_nodes_at_distances"]
