"""Synapse sites at given path distances from the soma (``site_distances``).

* the points cosim picks on the Allen layer-5 cell are the points of the SWC tree at the
  asked path distances, found here from the raw SWC samples (every crossing, none more);
* a region whose projection uses ``site_distances`` against NEURON: the same driver
  cells, the same cell, the synapses placed at the (section, x) NEURON's own
  ``h.distance`` gives, connection k by the documented rule: max |ΔV| ≤ 0.1 mV, the same
  spikes;
* bad inputs are one line naming file and key (and under ``mpiexec``, exit 2).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosim.engines.multicompartment import CellGroup, Clamp, MulticompartmentEngine, Projection
from cosim.multicompartment import ball_and_stick, discretise
from cosim.multicompartment.sites import crossings, site_nodes_at_distances
from cosim.multicompartment.swc import load_swc

from _util import REPO
from mc_reference import build_neuron, neuron_h, run_neuron, spike_recorder

SCEN_DIR = REPO / "scenarios" / "cortical_l5"
SWC = SCEN_DIR / "allen_515570710.swc"
DIST = (60.0, 180.0, 320.0)
DT = 0.025
TOL_MV = 0.1


def _swc_crossings(path: Path, swc_type: int, D: float) -> np.ndarray:
    """Points (x, y, z) of the SWC tree at path distance ``D`` from the soma on edges whose
    child sample has ``swc_type``, from the raw samples: a sample's distance is its
    parent's plus the straight edge; the first sample after the (three-point) soma is at
    0 (NEURON attaches those sections to soma(0.5) by wire)."""
    a = np.loadtxt(path, comments="#", ndmin=2)
    row = {int(i): k for k, i in enumerate(a[:, 0])}
    dist = np.zeros(len(a))
    out = []
    for k in range(len(a)):
        t, par = int(a[k, 1]), int(a[k, 6])
        if t == 1 or par == -1 or int(a[row[par], 1]) == 1:
            continue
        p = row[par]
        seg = np.linalg.norm(a[k, 2:5] - a[p, 2:5])
        dist[k] = dist[p] + seg
        if t == swc_type and dist[p] < D <= dist[k]:
            out.append(a[p, 2:5] + (D - dist[p]) / seg * (a[k, 2:5] - a[p, 2:5]))
    return np.array(out)


def _xyz(morph, i: int, x: float) -> np.ndarray:
    sec = morph.sections[i]
    s = x * sec.length_um
    return np.array([np.interp(s, sec.arc_um, sec.points[:, c]) for c in range(3)])


@pytest.mark.parametrize("kind, swc_type", [("apic", 4), ("dend", 3)])
def test_points_are_the_swc_points_at_the_distances(kind, swc_type):
    morph = load_swc(SWC)
    sel = morph.select(kind)
    many = 0
    for D in DIST:
        want = _swc_crossings(SWC, swc_type, D)
        if not len(want):
            with pytest.raises(Exception, match="beyond the farthest point|no point of"):
                crossings(morph, sel, D, kind)
            continue
        got = np.array([_xyz(morph, i, x) for i, x in crossings(morph, sel, D, kind)])
        assert len(got) == len(want), (D, len(got), len(want))
        # the same set of points (each within 1e-6 µm of one of the others)
        gap = np.linalg.norm(got[:, None, :] - want[None, :, :], axis=2)
        assert gap.min(axis=1).max() < 1e-6 and gap.min(axis=0).max() < 1e-6
        many = max(many, len(got))
    assert many >= 3          # several branches cross the distances: the rule matters


def _cells():
    pyr = load_swc(SWC)
    for s in pyr.sections:
        if s.kind != "soma":
            s.nseg = 5
    pyr.set(Ra_ohm_cm=100.0, cm_uF_per_cm2=1.0)
    pyr.set("all", mechanisms={"pas": {"g": 5e-5, "e": -65.0}})
    pyr.set("soma", mechanisms={"hh": {}})
    return ball_and_stick(dend_nseg=3), pyr


ONSETS = (2.0, 3.0, 4.5, 5.0, 6.0, 8.0)     # ms, one driver cell each
W_US = 0.004


def _region(drv, pyr):
    cells = [CellGroup("drv", len(ONSETS), drv), CellGroup("pyr", 1, pyr, detect="soma[0]")]
    proj = [Projection("in", "drv", "pyr", len(ONSETS), ["AMPA"], [W_US], section="apic",
                       delay_ms=(1.0, 1.0), site_distances_um=DIST)]
    clamps = [Clamp("drv", [i], "soma", 0.5, t, 40.0, 0.4) for i, t in enumerate(ONSETS)]
    return cells, proj, clamps


def test_region_with_site_distances_matches_neuron():
    drv, pyr = _cells()
    cells, proj, clamps = _region(drv, pyr)
    far_sec = "apic[40]"
    g_pyr = len(ONSETS)
    eng = MulticompartmentEngine("r", cells=cells, projections=proj, clamps=clamps,
                                 probes=[(g_pyr, "soma[0]", 0.5), (g_pyr, far_sec, 0.5)],
                                 seed=5, sync_interval_ms=1.0, record_period_ms=DT)
    eng.build()
    tstop = 50.0
    outs = [eng.advance(float(w), w + 1.0, {}) for w in range(int(tstop))]
    v = np.concatenate([o.records["v"] for o in outs])[:, 0, :]
    g = np.concatenate([o.records["spikes"][0] for o in outs])
    t = np.concatenate([o.records["spikes"][1] for o in outs])
    conns = eng.net._conns                     # (pre gid, site, weight, delay steps, stp)
    assert len(conns) == len(ONSETS)

    # NEURON: the same cells; synapse k where h.distance puts the documented point
    h = neuron_h()
    drv_secs = [build_neuron(h, drv) for _ in ONSETS]
    secs = build_neuron(h, pyr)
    root = secs[0](0.5)
    h.distance(0, root)
    apic = [sec for s, sec in zip(pyr.sections, secs) if s.kind == "apic"]
    points = []
    for D in DIST:
        here = []
        for sec in apic:
            d0, d1 = h.distance(root, sec(0)), h.distance(root, sec(1))
            if d0 < D <= d1:
                x = (D - d0) / (d1 - d0)
                assert abs(x * sec.nseg - round(x * sec.nseg)) > 1e-6    # no segment boundary
                here.append((sec, x))
        points.append(here)
    keep = []
    for k, (pre, _site, w, steps, _stp) in enumerate(conns):
        sec, x = points[k % len(DIST)][(k // len(DIST)) % len(points[k % len(DIST)])]
        syn = h.Exp2Syn(sec(x))
        syn.tau1, syn.tau2, syn.e = 0.2, 2.0, 0.0
        nc = h.NetCon(drv_secs[pre][0](0.5)._ref_v, syn, sec=drv_secs[pre][0])
        nc.threshold, nc.delay, nc.weight[0] = 0.0, steps * DT, w
        keep += [syn, nc]
    for i, t0 in enumerate(ONSETS):
        ic = h.IClamp(drv_secs[i][0](0.5))
        ic.delay, ic.dur, ic.amp = t0, 40.0, 0.4
        keep.append(ic)
    far = dict(zip((s.name for s in pyr.sections), secs))[far_sec]
    vecs = [h.Vector().record(root._ref_v), h.Vector().record(far(0.5)._ref_v)]
    recs = [spike_recorder(h, c[0](0.5)) for c in drv_secs] + [spike_recorder(h, root)]
    run_neuron(h, tstop, DT)
    vn = np.array([np.array(x)[1:] for x in vecs]).T
    for gid, (_, vec) in enumerate(recs):
        sp = np.sort(t[g == gid])
        spn = np.array(vec)
        assert len(sp) == len(spn) and np.all(np.abs(sp - spn) <= DT + 1e-9), (gid, sp, spn)
    del keep, recs
    for c in drv_secs + [secs]:
        for sec in c:
            h.delete_section(sec=sec)
    assert v.shape == vn.shape
    dv = np.abs(v - vn).max()
    assert dv <= TOL_MV, dv
    assert (g == g_pyr).sum() >= 1                     # the synapses drive the cell to spike
    # and the placement matters: the same inputs at a single site give another trace
    cells, proj, clamps = _region(drv, pyr)
    proj[0].site_distances_um, proj[0].x = None, 0.5
    proj[0].section = "apic[0]"
    other = MulticompartmentEngine("r", cells=cells, projections=proj, clamps=clamps,
                                   probes=[(g_pyr, "soma[0]", 0.5), (g_pyr, far_sec, 0.5)],
                                   seed=5, sync_interval_ms=1.0, record_period_ms=DT)
    other.build()
    vo = np.concatenate([other.advance(float(w), w + 1.0, {}).records["v"]
                         for w in range(int(tstop))])[:, 0, :]
    assert np.abs(vo - v).max() > 1.0


def test_connections_follow_the_rule_and_layouts_agree():
    """Connection k of every target cell at distance k mod n, round-robin over the
    crossings; two partitions give the single-process bits."""
    from cosim.multicompartment.partition import advance_in_lockstep, merge_outputs
    drv, pyr = _cells()
    tmpl = discretise(pyr)
    nodes = site_nodes_at_distances(tmpl, "apic", DIST, 12)
    per = [[tmpl.node(i, x) for i, x in crossings(pyr, pyr.select("apic"), D)] for D in DIST]
    assert nodes == [per[k % 3][(k // 3) % len(per[k % 3])] for k in range(12)]
    assert len(set(nodes)) > len(DIST)                  # several branches used

    def region(sync):
        cells, proj, clamps = _region(drv, pyr)
        cells[1].n = 2
        return MulticompartmentEngine("r", cells=cells, projections=proj, clamps=clamps,
                                      probes=[(6, "soma[0]", 0.5), (7, "apic[40]", 0.5)],
                                      seed=5, sync_interval_ms=sync, record_period_ms=0.25)
    one = region(1.0)
    one.build()
    sites = one.net._sites
    for pre, site, *_ in one.net._conns:
        assert sites[site][2] == "AMPA"
    for gid in (6, 7):
        got = [sites[s][1] for _, s, *_ in one.net._conns if sites[s][0] == gid]
        assert got == site_nodes_at_distances(one.templates["pyr"], "apic", DIST, len(ONSETS))
    v = np.concatenate([one.advance(float(w), w + 1.0, {}).records["v"] for w in range(20)])
    parts = [region(2.0).partition(p, 2) for p in range(2)]
    for p in parts:
        p.build()
    vs = [merge_outputs(parts, advance_in_lockstep(parts, 2.0 * w, 2.0 * w + 2.0, {})).records["v"]
          for w in range(10)]
    assert np.array_equal(np.concatenate(vs), v)


# -- bad inputs: one line naming file and key --------------------------------------------------

def _l5_scenario(tmp_path: Path, old: str, new: str) -> Path:
    text = (SCEN_DIR / "l5_region.toml").read_text()
    assert old in text
    shutil.copy(SWC, tmp_path / SWC.name)
    p = tmp_path / "bad.toml"
    p.write_text(text.replace(old, new).replace('output = "results/l5_region.h5"', 'output = "x.h5"'))
    return p


EE = 'section = "dend[3]"\nx = 0.5\ndelay = [1.0, 3.0]'
BAD = [
    ('section = "apic"\nsite_distances = [100.0, 5000.0]\ndelay = [1.0, 3.0]',
     "engines.v1.projections.ee.site_distances: projection 'ee': 5000 µm is beyond the "
     "farthest point of the sections 'apic' selects (791.183 µm from the soma)"),
    ('section = "apic"\nsite_distances = [100.0, -5.0]\ndelay = [1.0, 3.0]',
     "engines.v1.projections.ee.site_distances[1]: must be >= 0, got -5"),
    ('section = "apic"\nsite_distances = []\ndelay = [1.0, 3.0]',
     "engines.v1.projections.ee.site_distances: must list at least one path distance (µm)"),
    ('section = "apic"\nsites = 3\nsite_distances = [100.0]\ndelay = [1.0, 3.0]',
     "engines.v1.projections.ee.site_distances: give either site_distances or sites, not both"),
    ('section = "apic"\nx = 0.3\nsite_distances = [100.0]\ndelay = [1.0, 3.0]',
     "engines.v1.projections.ee.site_distances: give either site_distances or x, not both"),
    ('section = "dend[3]"\nsite_distances = [1.0]\ndelay = [1.0, 3.0]',
     "engines.v1.projections.ee.site_distances: projection 'ee': no point of the sections "
     "'dend[3]' selects lies at 1 µm from the soma"),
    ('section = "apic"\nsite_distances = ["far"]\ndelay = [1.0, 3.0]',
     "engines.v1.projections.ee.site_distances[0]: must be a number"),
]


@pytest.mark.parametrize("new, line", BAD)
def test_bad_site_distances_one_line(tmp_path, capsys, new, line):
    from cosim.cli import main
    p = _l5_scenario(tmp_path, EE, new)
    assert main(["validate", str(p)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(f"{p.name}: {line}"), err


@pytest.mark.mpi
@pytest.mark.skipif(not (Path(sys.executable).parent / "mpiexec").exists(),
                    reason="no mpiexec (pip install -e .[mpi])")
def test_bad_site_distances_under_mpiexec_is_one_line(tmp_path):
    new, line = BAD[0]
    p = _l5_scenario(tmp_path, EE, new)
    cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", "3", sys.executable, "-m", "cosim",
           "run", str(p), "-o", str(tmp_path / "x.h5"), "-q", "--no-monitor"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0] == f"bad.toml: {line}", r.stderr
    assert not (tmp_path / "x.h5").exists()
