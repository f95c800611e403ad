"""Multicompartment engine against closed-form results and its own convergence orders.

* passive cable, steady state: V(x) ∝ cosh((L − x)/λ) beyond the injection point on a
  sealed-end cable, λ = sqrt(a·Rm / (2·Ra));
* isopotential passive compartment: charging curve with τ = Rm·Cm;
* Tsodyks–Markram efficacies along a spike train: the Markram et al. (1998) recursion and
  its steady state, both via the short-term-plasticity code alone and through the whole
  spike → delay → synapse path (PSP amplitudes of a passive cell);
* NMDA current through a voltage-held compartment follows the Jahr–Stevens block;
* convergence: order ≈ 1 in dt (backward Euler) and ≈ 2 in segment length.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.multicompartment import Network, ball_and_stick, discretise
from cosim.multicompartment.morphology import Morphology, Section
from cosim.multicompartment.stp import tm_train


def cable(L_um, diam_um, nseg, g_pas=1e-4, Ra=100.0, e=-65.0):
    sec = Section("dend", "dend", [[0, 0, 0, diam_um], [L_um, 0, 0, diam_um]], nseg=nseg)
    return Morphology([sec]).set(Ra_ohm_cm=Ra, mechanisms={"pas": {"g": g_pas, "e": e}})


def test_passive_cable_steady_state_follows_cosh():
    diam, g_pas, Ra = 2.0, 1e-4, 100.0
    lam_um = math.sqrt((diam / 2 * 1e-4) * (1.0 / g_pas) / (2.0 * Ra)) * 1e4   # a, Rm, Ra in cm
    L = 1.5 * lam_um
    tmpl = discretise(cable(L, diam, 151))
    net = Network(1.0, max_window_ms=1000.0)       # backward Euler: exact steady state
    net.add_cells(tmpl, 1, detect_at=0)
    net.add_current_clamp(0, 0, 0.0, 1e9, 0.05)
    probes = np.argsort(tmpl.x)[5::10]
    for k in probes:
        net.add_probe(0, int(k))
    _, v = net.run(400.0)
    dev = v[-1] + 65.0
    x_um = tmpl.x[probes] * L
    expected = np.cosh((L - x_um) / lam_um) / np.cosh((L - x_um[0]) / lam_um)
    np.testing.assert_allclose(dev / dev[0], expected, rtol=2e-5)
    assert dev[-1] / dev[0] < 0.5                  # a real attenuation was tested


def test_membrane_time_constant_is_rm_cm():
    g_pas, cm = 2e-4, 1.5                          # Rm = 5000 Ω·cm², τ = 7.5 ms
    soma = Section("soma", "soma", [[0, 0, 0, 20.0], [20.0, 0, 0, 20.0]])
    morph = Morphology([soma]).set(cm_uF_per_cm2=cm, mechanisms={"pas": {"g": g_pas, "e": -65.0}})
    area_cm2 = math.pi * 20.0 * 20.0 * 1e-8
    dt = 0.005
    net = Network(dt)
    net.add_cells(discretise(morph), 1)
    net.add_current_clamp(0, ("soma", 0.5), 0.0, 1e9, 0.02)
    net.add_probe(0, ("soma", 0.5))
    _, v = net.run(40.0)
    t = dt * np.arange(1, v.shape[0] + 1)
    tau = 1.0 / g_pas * cm * 1e-3                  # Ω·cm² · µF/cm² = µs → ms
    v_inf = 0.02e-9 / (g_pas * area_cm2) * 1e3     # I·R in mV
    exact = v_inf * (1.0 - np.exp(-t / tau))
    assert np.max(np.abs(v[:, 0] + 65.0 - exact)) < 2e-3 * v_inf   # O(dt/τ) scheme error
    t63 = np.interp(1.0 - math.exp(-1.0), (v[:, 0] + 65.0) / v_inf, t)
    assert t63 == pytest.approx(tau, rel=2e-3)


def markram_recursion(times, U, D, F):
    """u_{n+1} = U + u_n(1−U)e^{−Δ/F}, R_{n+1} = 1 + (R_n − u_n R_n − 1)e^{−Δ/D}; u_1 = U, R_1 = 1."""
    u, R, out = U, 1.0, []
    for n, t in enumerate(times):
        if n:
            delta = t - times[n - 1]
            u_new = U + u * (1 - U) * (math.exp(-delta / F) if F > 0 else 0.0)
            R = 1 + (R - u * R - 1) * math.exp(-delta / D)
            u = u_new
        out.append(u * R)
    return np.array(out)


@pytest.mark.parametrize("U,D,F", [(0.5, 800.0, 0.0), (0.1, 100.0, 1000.0), (0.3, 300.0, 50.0)])
def test_tsodyks_markram_regular_train(U, D, F):
    period = 20.0
    times = period * np.arange(1, 601)      # 12 s: reaches steady state even for F = 1 s
    eff = tm_train(times, U, D, F)
    np.testing.assert_allclose(eff, markram_recursion(times, U, D, F), rtol=1e-12)
    # steady state of a regular train (Tsodyks & Markram 1997; Markram et al. 1998)
    ed, ef = math.exp(-period / D), (math.exp(-period / F) if F > 0 else 0.0)
    u_inf = U / (1 - (1 - U) * ef)
    R_inf = (1 - ed) / (1 - (1 - u_inf) * ed)
    assert eff[-1] == pytest.approx(u_inf * R_inf, rel=1e-6)


def test_stp_through_spikes_delays_and_synapses():
    """PSP peaks of a fast passive cell scale like the TM efficacies of the real spike train."""
    U, D, F = 0.4, 150.0, 30.0
    pre = ball_and_stick(dend_nseg=1)
    post = Morphology([Section("soma", "soma", [[0, 0, 0, 10.0], [10.0, 0, 0, 10.0]])]).set(
        mechanisms={"pas": {"g": 5e-3, "e": -65.0}})       # τ_m = 0.2 ms: PSPs do not overlap
    net = Network(0.025, max_window_ms=50.0)
    net.add_cells(discretise(pre), 1)
    net.add_cells(discretise(post), 1, detect_at=("soma", 0.5))
    site = net.add_site(1, ("soma", 0.5), "AMPA")
    net.connect(0, site, 1e-5, 2.0, stp=(U, D, F))
    for k in range(12):
        net.add_current_clamp(0, ("soma", 0.5), 5.0 + 30.0 * k, 1.0, 1.0)
    net.add_probe(1, ("soma", 0.5))
    (g, t), v = net.run(380.0)
    spikes = t[g == 0]
    assert spikes.size == 12
    dev = v[:, 0] + 65.0
    onset = np.round((spikes + 2.0) / 0.025).astype(int)
    peaks = np.array([dev[k:k + 200].max() for k in onset])
    expected = markram_recursion(list(spikes), U, D, F)
    np.testing.assert_allclose(peaks / peaks[0], expected / expected[0], rtol=2e-4)


def test_nmda_current_follows_jahr_stevens_block():
    w, G = 1e-4, 0.5                               # weight µS; holding conductance S/cm²
    soma = Section("soma", "soma", [[0, 0, 0, 20.0], [20.0, 0, 0, 20.0]])
    g_hold_uS = G * math.pi * 400.0 * 1e-2
    ratios = []
    holds = [-90.0, -70.0, -50.0, -30.0, -10.0, 20.0, 40.0]
    for v_hold in holds:
        morph = Morphology([soma]).set(mechanisms={"pas": {"g": G, "e": v_hold}})
        net = Network(0.025, v_init_mV=v_hold, max_window_ms=200.0)
        net.add_cells(discretise(morph), 1)
        ext = net.add_external(net.add_site(0, ("soma", 0.5), "NMDA"), w)
        net.add_probe(0, ("soma", 0.5))
        _, v = net.run(150.0, events=(np.array([ext]), np.array([10.0])))
        i_syn = -g_hold_uS * (v[:, 0] - v_hold)    # nA, the current the holding leak balances
        k = np.argmax(np.abs(i_syn))
        ratios.append(i_syn[k] / (w * (v[k, 0] - 0.0)))
    expected = 1.0 / (1.0 + 1.0 / 3.57 * np.exp(-0.062 * np.array(holds)))
    np.testing.assert_allclose(ratios, expected, rtol=2e-3)
    assert expected[0] < 0.05 and expected[-1] > 0.8          # the curve's full range


def _soma_v_at(dt, nseg, t_end=5.0, hh=True):
    morph = ball_and_stick(dend_nseg=nseg, dend_L_um=400.0, dend_diam_um=2.0,
                           soma_mechanisms={"hh": {}} if hh else {"pas": {"g": 1e-4, "e": -65.0}},
                           dend_mechanisms={"pas": {"g": 1e-4, "e": -65.0}})
    net = Network(dt, max_window_ms=t_end)
    net.add_cells(discretise(morph), 1)
    net.add_current_clamp(0, ("soma", 0.5), 0.0, 1e9, 0.1)
    net.add_probe(0, ("dend", 1.0))
    _, v = net.run(t_end)
    return v[-1, 0]


def test_backward_euler_is_first_order_in_dt():
    ref = _soma_v_at(0.025 / 32, 9)
    errs = [abs(_soma_v_at(dt, 9) - ref) for dt in (0.1, 0.05, 0.025)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 0.85) & (orders < 1.25)), orders


def test_space_discretisation_is_second_order():
    vals = [_soma_v_at(0.05, n, t_end=30.0, hh=False) for n in (5, 10, 20, 40)]
    d = np.abs(np.diff(vals))
    orders = np.log2(d[:-1] / d[1:])
    assert np.all((orders > 1.8) & (orders < 2.2)), orders
