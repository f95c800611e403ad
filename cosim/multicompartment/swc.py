"""SWC morphology files → :class:`~.morphology.Morphology`, with NEURON Import3d conventions.

SWC (Cannon et al. 1998; neuromorpho.org): one sample per line,
``id type x y z radius parent`` (µm; parent −1 for the root), ``#`` comments.  Types:
1 soma, 2 axon, 3 (basal) dendrite, 4 apical dendrite; others become kind ``"custom<N>"``.

Sections are formed the way NEURON's ``Import3d_SWC_read`` forms them, so a file loads
into the same electrical structure in both simulators:

* a section is a run of contiguous samples (each the next line's parent, same type); it
  ends at a branch point, a leaf, a type change or a non-contiguous child;
* a child section starts with its parent sample (so sections join without gaps), attaches
  at the parent's 1-end, and a dendrite leaving the soma takes its own first diameter for
  that shared sample;
* a **single-sample soma** — or the neuromorpho.org **three-point soma** (centre plus two
  samples at ±r, same diameter, no children on them) — is a sphere of diameter d, stored
  as a cylinder ``L = diam = d`` (same area); children attach at ``soma(0.5)`` "by wire"
  (their own samples only);
* on a multi-sample soma, children of interior soma samples attach at ``soma(0.5)`` by
  wire, children of the first sample at ``soma(0)``.

Problems (wrong column count, non-numbers, unknown or later parent, a sample that is its
own parent, several roots, no soma, non-positive radius) raise
:class:`~cosim.errors.CosimError` naming file and line.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CosimError
from .morphology import Morphology, Section

_KIND = {1: "soma", 2: "axon", 3: "dend", 4: "apic"}


def _kind(t: int) -> str:
    return _KIND.get(t, f"custom{t}")


def read_swc_samples(path: str | os.PathLike):
    """Parse an SWC file: arrays ``ids, types, xyz (n,3), radius, parent_index, lines``."""
    path = os.fspath(path)
    ids, types, xyzr, parents, lines = [], [], [], [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.readlines()
    except OSError as exc:
        raise CosimError(f"cannot read SWC file: {exc.strerror}", file=path) from None
    for lineno, raw in enumerate(text, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        f = line.split()
        where = f"line {lineno}"
        if len(f) != 7:
            raise CosimError(f"expected 7 columns (id type x y z radius parent), got {len(f)}",
                             file=path, key=where)
        try:
            i, t, p = int(f[0]), int(f[1]), int(f[6])
            vals = [float(v) for v in f[2:6]]
        except ValueError:
            raise CosimError(f"not a number in {line!r}", file=path, key=where) from None
        if not np.all(np.isfinite(vals)):
            raise CosimError("coordinates and radius must be finite", file=path, key=where)
        if vals[3] <= 0:
            raise CosimError(f"radius must be > 0, got {vals[3]:g}", file=path, key=where)
        ids.append(i)
        types.append(t)
        xyzr.append(vals)
        parents.append(p)
        lines.append(lineno)
    if not ids:
        raise CosimError("no samples in SWC file", file=path)
    index: dict[int, int] = {}
    line_of = {i: ln for i, ln in zip(ids, lines)}      # last definition of every id
    pidx = []
    for k, (i, p) in enumerate(zip(ids, parents)):
        where = f"line {lines[k]}"
        if i in index:
            raise CosimError(f"sample id {i} defined twice (first on line {lines[index[i]]})",
                             file=path, key=where)
        if p == i:
            raise CosimError(f"sample {i} is its own parent (a cycle)", file=path, key=where)
        if p == -1:
            if k != 0:
                raise CosimError("a second root (parent -1); the file must hold one tree",
                                 file=path, key=where)
            pidx.append(-1)
        elif p in index:
            pidx.append(index[p])
        elif p in line_of:
            raise CosimError(f"parent {p} comes later (line {line_of[p]}); SWC lists every "
                             "parent before its children — a cycle or an unsorted file",
                             file=path, key=where)
        else:
            raise CosimError(f"parent {p} is not a sample of the file", file=path, key=where)
        index[i] = k
    if pidx[0] != -1:
        raise CosimError("the first sample must be the root (parent -1)", file=path, key=f"line {lines[0]}")
    if 1 not in types:
        raise CosimError("no soma: no sample of type 1 (the root is of type "
                         f"{types[0]}, {_kind(types[0])})", file=path, key=f"line {lines[0]}")
    arr = np.array(xyzr)
    return (np.array(ids), np.array(types), arr[:, :3], arr[:, 3], np.array(pidx), lines)


def _three_point_soma(types, xyz, diam, par, children) -> bool:
    soma = np.flatnonzero(types == 1)
    if soma.size != 3 or list(soma) != [0, 1, 2]:
        return False
    if par[1] != 0 or par[2] != 0 or children[1] or children[2]:
        return False
    if not (diam[1] == diam[0] and diam[2] == diam[0]):
        return False
    length = np.linalg.norm(xyz[1] - xyz[0]) + np.linalg.norm(xyz[2] - xyz[0])
    return abs(length / diam[0] - 1.0) < 0.01


def load_swc(path: str | os.PathLike) -> Morphology:
    """Read an SWC file into sections (see the module docstring for the conventions)."""
    ids, types, xyz, radius, par, lines = read_swc_samples(path)
    diam = 2.0 * radius
    n = ids.size
    children: list[list[int]] = [[] for _ in range(n)]
    for i in range(1, n):
        children[par[i]].append(i)
    soma3 = _three_point_soma(types, xyz, diam, par, children)
    if soma3:
        par = par.copy()
        par[2] = 1                      # Import3d: chain the two extra samples, then drop them
        children[0].remove(2)
        children[1].append(2)
    # nchild with NEURON's marks: +0.01 for a non-contiguous child and for a type change
    val = np.zeros(n)
    prox = np.zeros(n, dtype=bool)      # child attaches to the proximal end of its parent
    for i in range(1, n):
        p = par[i]
        val[p] += 1.0
        if p != i - 1:
            val[p] += 0.01
            if (p > 1 and types[p] != 1 and types[par[p]] == 1) or (p == 0 and types[0] != 1):
                prox[i] = True
                val[p] = 1.0
        if types[p] != types[i]:
            val[p] += 0.01
    soma_children = np.zeros(n, dtype=int)
    for i in range(1, n):
        if types[i] == 1 and types[par[i]] == 1:
            soma_children[par[i]] += 1
    for i in range(n - 1):
        if types[i] == 1 and types[i + 1] == 1 and par[i + 1] == i:
            if not (i != 0 and soma_children[i] > 1):
                val[i] = 1.0
    ends = np.flatnonzero(val != 1.0)
    if ends.size == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    sec_of = np.zeros(n, dtype=int)
    starts = np.concatenate(([0], ends[:-1] + 1))
    for s, (a, b) in enumerate(zip(starts, ends)):
        sec_of[a:b + 1] = s

    sections: list[Section] = []
    root_points = 1 if soma3 else None
    counts: dict[str, int] = {}
    for s, (a, b) in enumerate(zip(starts, ends)):
        kind = _kind(int(types[a]))
        name = f"{kind}[{counts.get(kind, 0)}]"
        counts[kind] = counts.get(kind, 0) + 1
        if s == 0:
            last = a + (root_points or (b - a + 1))
            own = np.arange(a, last)
            pts = np.column_stack([xyz[own], diam[own]])
            if own.size == 1:           # sphere of diameter d as a cylinder L = diam = d
                x, y, z, d = pts[0]
                pts = np.array([[x - d / 2, y, z, d], [x, y, z, d], [x + d / 2, y, z, d]])
            sections.append(Section(name, kind, pts))
            continue
        own = np.arange(a, b + 1)
        p = par[a]
        ps = sec_of[p]
        psec = sections[ps]
        p_first = starts[ps]
        p_last = ends[ps] if ps != 0 or root_points is None else starts[0]
        parent_x, wire = 1.0, False
        den_con_soma = psec.kind == "soma" and types[a] != 1
        handled = False
        if ps == 0:
            handled = True
            if den_con_soma and (root_points == 1 or ends[0] == starts[0]):
                parent_x, wire = 0.5, own.size > 1
            elif p == p_first:
                parent_x = 0.0
                wire = types[a] != 1 and soma_children[p] > 1
            else:
                handled = False
        if not handled and psec.kind == "soma":
            if p < p_last:
                parent_x = 0.5
                wire = den_con_soma and own.size > 1
            elif own.size > 1 and soma_children[p] > 1 and types[a] != 1:
                wire = True
        if prox[a]:
            parent_x = 0.0
        idx = own if wire else np.concatenate(([p], own))
        pts = np.column_stack([xyz[idx], diam[idx]])
        if not wire and psec.kind == "soma" and kind != "soma":
            pts[0, 3] = pts[1, 3]
        if pts.shape[0] < 2:            # a one-sample section (wire): NEURON needs 2 points
            raise CosimError(f"sample {ids[a]} forms a single-point section that NEURON's "
                             "Import3d would reject", file=os.fspath(path), key=f"line {lines[a]}")
        sections.append(Section(name, kind, pts, parent=int(ps), parent_x=parent_x))
    return Morphology(sections, source=os.fspath(path))
