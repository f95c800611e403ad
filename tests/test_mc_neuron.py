"""cosim's multicompartment engine against NEURON, run side by side (same model, same dt).

NEURON's fixed step (secondorder = 0, staggered exponential-Euler gates) is the scheme
cosim implements, so traces agree up to round-off (and, for NMDA, NEURON's numerical
di/dv against cosim's analytic one): we require max |ΔV| ≤ 1e-3 mV (the issue asked for
0.1 mV) and identical spike times (both on the dt grid; NEURON adds 1e-10 ms).
"""

from __future__ import annotations

import numpy as np
import pytest

from cosim.multicompartment import Network, ball_and_stick, discretise, y_shaped
from cosim.multicompartment.morphology import Morphology, Section

neuron = pytest.importorskip("neuron")
from mc_reference import build_neuron, compile_nmda, neuron_h, run_neuron, spike_recorder  # noqa: E402

DT = 0.025
TOL_MV = 1e-3   # measured: 1e-10 (HH soma), 1.5e-5 (AMPA+NMDA), 4e-6 mV (Y, active)


def _compare(v_ours, v_ref, spikes_ours, spikes_ref):
    dv = np.max(np.abs(v_ours - v_ref))
    assert dv <= TOL_MV, f"max |dV| = {dv:.3g} mV"
    assert len(spikes_ours) == len(spikes_ref) and len(spikes_ref) > 0
    assert np.max(np.abs(np.asarray(spikes_ours) - np.asarray(spikes_ref))) <= 1e-6
    return dv


def test_hh_soma_current_clamp_matches_neuron():
    soma = Section("soma", "soma", [[0, 0, 0, 20.0], [20.0, 0, 0, 20.0]])
    morph = Morphology([soma]).set(mechanisms={"hh": {}}, Ra_ohm_cm=35.4)
    h = neuron_h()
    (nsoma,) = build_neuron(h, morph)
    stim = h.IClamp(nsoma(0.5))
    stim.delay, stim.dur, stim.amp = 2.0, 30.0, 0.3
    v_ref = h.Vector().record(nsoma(0.5)._ref_v)
    nc, sp_ref = spike_recorder(h, nsoma(0.5))
    run_neuron(h, 40.0, DT)

    net = Network(DT)
    net.add_cells(discretise(morph), 1)
    net.add_current_clamp(0, ("soma", 0.5), 2.0, 30.0, 0.3)
    net.add_probe(0, ("soma", 0.5))
    (_, sp), v = net.run(40.0)
    _compare(v[:, 0], np.array(v_ref)[1:], sp, np.array(sp_ref))


def test_ball_and_stick_ampa_nmda_matches_neuron(tmp_path_factory):
    if not compile_nmda(tmp_path_factory.mktemp("nmda_mod")):
        pytest.skip("nrnivmodl unavailable")
    morph = ball_and_stick(dend_nseg=21)
    h = neuron_h()
    soma, dend = build_neuron(h, morph)
    ampa = h.Exp2Syn(dend(0.5))
    ampa.tau1, ampa.tau2, ampa.e = 0.2, 2.0, 0.0
    nmda = h.NMDAMg(dend(0.8))
    nmda.tau1, nmda.tau2, nmda.e, nmda.mg = 2.0, 80.0, 0.0, 1.0
    times = [5.0, 5.5, 6.0, 30.0, 31.0, 60.25]
    ncs = []
    for syn, w in ((ampa, 0.012), (nmda, 0.004)):
        nc = h.NetCon(None, syn)
        nc.weight[0] = w
        ncs.append(nc)
    fih = h.FInitializeHandler(lambda: [nc.event(t) for nc in ncs for t in times])  # noqa: F841
    v_soma = h.Vector().record(soma(0.5)._ref_v)
    v_dend = h.Vector().record(dend(0.8)._ref_v)
    nc_sp, sp_ref = spike_recorder(h, soma(0.5))
    run_neuron(h, 100.0, DT)

    net = Network(DT)
    net.add_cells(discretise(morph), 1)
    s_ampa = net.add_site(0, ("dend", 0.5), "AMPA")
    s_nmda = net.add_site(0, ("dend", 0.8), "NMDA")
    e_ampa = net.add_external(s_ampa, 0.012)
    e_nmda = net.add_external(s_nmda, 0.004)
    net.add_probe(0, ("soma", 0.5))
    net.add_probe(0, ("dend", 0.8))
    idx = np.array([e_ampa] * len(times) + [e_nmda] * len(times))
    (_, sp), v = net.run(100.0, events=(idx, np.array(times * 2)))
    _compare(v[:, 0], np.array(v_soma)[1:], sp, np.array(sp_ref))
    assert np.max(np.abs(v[:, 1] - np.array(v_dend)[1:])) <= TOL_MV
    # the NMDA component matters here: its peak dendritic depolarisation is > 5 mV
    assert np.max(v[:, 1]) > -60.0


def test_branched_active_dendrites_match_neuron():
    morph = y_shaped(nseg=7, dend_mechanisms={"hh": {"gnabar": 0.06}})
    h = neuron_h()
    secs = build_neuron(h, morph)
    stim = h.IClamp(secs[2](0.9))
    stim.delay, stim.dur, stim.amp = 1.0, 20.0, 0.15
    v_ref = [h.Vector().record(secs[i](x)._ref_v) for i, x in ((0, 0.5), (3, 0.5), (2, 0.9))]
    nc, sp_ref = spike_recorder(h, secs[0](0.5))
    run_neuron(h, 30.0, DT, celsius=16.3)

    net = Network(DT, celsius=16.3)
    net.add_cells(discretise(morph), 1)
    net.add_current_clamp(0, ("branch_a", 0.9), 1.0, 20.0, 0.15)
    for name, x in (("soma", 0.5), ("branch_b", 0.5), ("branch_a", 0.9)):
        net.add_probe(0, (name, x))
    (_, sp), v = net.run(30.0)
    _compare(v[:, 0], np.array(v_ref[0])[1:], sp, np.array(sp_ref))
    for j in (1, 2):
        assert np.max(np.abs(v[:, j] - np.array(v_ref[j])[1:])) <= TOL_MV
