"""SWC loading: same sections, areas and voltages as NEURON's Import3d, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cosim.errors import CosimError
from cosim.multicompartment import Network, apply_d_lambda, discretise
from cosim.multicompartment.swc import load_swc

neuron = pytest.importorskip("neuron")
from mc_reference import neuron_h, run_neuron, spike_recorder  # noqa: E402

DATA = Path(__file__).parent / "data"
FILES = ["mc_three_point_soma.swc", "mc_single_point_soma.swc", "mc_multi_point_soma.swc"]


@pytest.fixture
def import3d():
    h = neuron_h()
    h.load_file("import3d.hoc")
    loaded = []

    def load(path):
        r = h.Import3d_SWC_read()
        r.quiet = 1
        r.input(str(path))
        h.Import3d_GUI(r, False).instantiate(None)
        secs = {s.name(): s for s in h.allsec()}
        loaded.extend(secs.values())
        return secs
    yield h, load
    for s in loaded:
        h.delete_section(sec=s)


@pytest.mark.parametrize("fname", FILES)
def test_swc_matches_neuron_import3d(import3d, fname):
    h, load = import3d
    nsecs = load(DATA / fname)
    morph = load_swc(DATA / fname)
    assert sorted(nsecs) == sorted(s.name for s in morph.sections)
    morph.set(Ra_ohm_cm=150.0, cm_uF_per_cm2=1.0, mechanisms={"hh": {"gnabar": 0.1}})
    apply_d_lambda(morph, 0.05)
    tmpl = discretise(morph)
    for i, s in enumerate(morph.sections):
        ns = nsecs[s.name]
        ps = ns.parentseg()
        if s.parent >= 0:
            assert ps.sec.name() == morph.sections[s.parent].name and ps.x == s.parent_x
        assert ns.L == pytest.approx(s.length_um, rel=1e-6)
        ns.Ra, ns.cm = s.Ra_ohm_cm, s.cm_uF_per_cm2
        # d_lambda rule with NEURON's own lambda_f (stdlib.hoc) on the 3-D section
        lam = h.lambda_f(100.0, sec=ns)
        assert s.nseg == int((ns.L / (0.05 * lam) + 0.9) / 2) * 2 + 1
        ns.nseg = s.nseg
        ns.insert("hh")
        for seg in ns:
            seg.hh.gnabar = 0.1
        mine = np.flatnonzero((tmpl.section == i) & (tmpl.area_um2 > 0))
        mine = mine[np.argsort(tmpl.x[mine])]
        # NEURON keeps 3-D points in single precision: agreement to ~1e-8, not 1e-15
        np.testing.assert_allclose(tmpl.area_um2[mine], [seg.area() for seg in ns], rtol=1e-6)
        for seg, node in zip(ns, mine):      # axial resistance to the parent node, MΩ
            if tmpl.parent[node] >= 0 and tmpl.area_um2[tmpl.parent[node]] > 0 and seg.x != 0.5 / s.nseg:
                assert 1.0 / tmpl.node_par[1, node] == pytest.approx(seg.ri(), rel=1e-6)
    soma = nsecs["soma[0]"]
    far = max(morph.sections[1:], key=lambda s: s.length_um).name
    stim = h.IClamp(soma(0.5))
    stim.delay, stim.dur, stim.amp = 1.0, 20.0, 1.0
    v_ref = [h.Vector().record(soma(0.5)._ref_v), h.Vector().record(nsecs[far](0.9)._ref_v)]
    nc, sp_ref = spike_recorder(h, soma(0.5))
    run_neuron(h, 15.0, 0.025)

    net = Network(0.025)
    net.add_cells(tmpl, 1, detect_at=("soma[0]", 0.5))
    net.add_current_clamp(0, ("soma[0]", 0.5), 1.0, 20.0, 1.0)
    net.add_probe(0, ("soma[0]", 0.5))
    net.add_probe(0, (far, 0.9))
    (_, sp), v = net.run(15.0)
    for j in range(2):
        assert np.max(np.abs(v[:, j] - np.array(v_ref[j])[1:])) <= 1e-3
    assert len(sp) == len(sp_ref) > 0
    np.testing.assert_allclose(sp, np.array(sp_ref), atol=1e-6)


def test_bad_swc_names_file_and_line(tmp_path):
    with pytest.raises(CosimError, match=r"mc_bad\.swc: line 4: expected 7 columns"):
        load_swc(DATA / "mc_bad.swc")
    p = tmp_path / "orphan.swc"
    p.write_text("1 1 0 0 0 5 -1\n2 3 10 0 0 1 7\n")
    with pytest.raises(CosimError, match=r"orphan\.swc: line 2: parent 7 is not a sample"):
        load_swc(p)
    p.write_text("1 1 0 0 0 5 -1\n2 3 10 0 zero 1 1\n")
    with pytest.raises(CosimError, match=r"line 2: not a number"):
        load_swc(p)
    p.write_text("1 1 0 0 0 5 -1\n2 3 10 0 0 0 1\n")
    with pytest.raises(CosimError, match=r"line 2: radius must be > 0"):
        load_swc(p)
    with pytest.raises(CosimError, match=r"missing\.swc: cannot read"):
        load_swc(tmp_path / "missing.swc")
