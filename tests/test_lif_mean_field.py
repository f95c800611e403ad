"""The ``lif_mean_field`` neural-mass model (Siegert rate model of an E/I LIF network) run
by the neural-mass engine, against independent sources: the scipy Siegert function and its
self-consistent rates (a different quadrature), the population-density engine's stationary
state of the same network (the Fokker–Planck equation solved on a grid), the exact
exponential relaxation of the linearised filter, and the Gaussian average that the
fluctuation correction approximates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from cosim.analysis import LIF, Network, self_consistent_rates, siegert
from cosim.connectome import make_connectome
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.engines.population_density import Input, Population, PopulationDensityEngine, Projection
from cosim.models import MODELS
from cosim.models.lif_mean_field import _phi

M = MODELS["lif_mean_field"]
P = {p.name: p.default for p in M.parameters}


def _run(duration, transfer="siegert", parameters=None, initial=None, period=1.0):
    conn = make_connectome([[0.0]], [[0.0]], ["a"])
    eng = NeuralMassEngine("mf", "lif_mean_field", conn, dt_ms=0.05, integrator="rk4",
                           parameters=parameters or {}, model_options={"transfer": transfer},
                           initial=initial or {}, record_period_ms=period)
    return eng.advance(0.0, duration, {}).records["timeseries"][:, :, 0]   # (time, r_e/r_i)


def _network():
    W = np.array([[P["J_ee"], P["J_ei"]], [P["J_ie"], P["J_ii"]]])
    K = np.array([[P["K_ee"], P["K_ei"]], [P["K_ie"], P["K_ii"]]])
    return Network([LIF(), LIF()], W, K, [P["J_ext"]] * 2, [1.0, 1.0], [P["nu_e"], P["nu_i"]])


def test_rests_at_the_self_consistent_siegert_rates_and_the_density_engines():
    r = _run(300.0)[-1]
    (fp,) = self_consistent_rates(_network())
    np.testing.assert_allclose(r, fp, rtol=1e-9)
    # the same network as densities over V (tests/test_population_density.py's E/I pair)
    pops = [Population("E", v_min=-20.0), Population("I", v_min=-20.0)]
    projs = [Projection("EE", "E", "E", P["J_ee"], P["K_ee"], 1.5),
             Projection("IE", "I", "E", P["J_ei"], P["K_ei"], 1.5),
             Projection("EI", "E", "I", P["J_ie"], P["K_ie"], 1.5),
             Projection("II", "I", "I", P["J_ii"], P["K_ii"], 1.5)]
    inputs = [Input("bgE", "E", P["J_ext"], 1.0, rate_hz=P["nu_e"]),
              Input("bgI", "I", P["J_ext"], 1.0, rate_hz=P["nu_i"])]
    dens = PopulationDensityEngine("ei", populations=pops, projections=projs, inputs=inputs)
    dens.build()
    dens.advance(0.0, 600.0, {})
    rd = dens.advance(600.0, 610.0, {}).records["timeseries"][-1, :2, 0]
    np.testing.assert_allclose(r, rd, rtol=2e-3)


def test_relaxes_with_the_linearised_rate_of_the_filter():
    """Near the fixed point r* the model is linear, dr/dt = (A − 1)/τ_s (r − r*) with
    A = ∂Φ/∂r; a small displacement decays (or rotates) by exp of that matrix's eigenvalues."""
    net = _network()
    (fp,) = self_consistent_rates(net)
    h = 1e-4
    A = np.column_stack([(net.transfer(fp + h * e) - net.transfer(fp - h * e)) / (2 * h)
                         for e in np.eye(2)])
    L = (A - np.eye(2)) / P["tau_s"]
    d0 = np.array([0.05, -0.03])
    trace = _run(20.0, initial={"r_e": fp[0] + d0[0], "r_i": fp[1] + d0[1]}, period=5.0)
    from scipy.linalg import expm
    for k, t in enumerate((5.0, 10.0, 15.0, 20.0)):
        expected = expm(L * t) @ d0
        np.testing.assert_allclose(trace[k] - fp, expected, rtol=2e-3, atol=2e-6)


def _gauss_average(mu, s2, s_mu):
    s = math.sqrt(s2)
    f = lambda x: siegert(mu + x, s) * math.exp(-0.5 * (x / s_mu) ** 2)
    val, _ = integrate.quad(f, -8 * s_mu, 8 * s_mu, epsabs=0, epsrel=1e-12)
    return val / (math.sqrt(2 * math.pi) * s_mu)


@pytest.mark.parametrize("mu,s2", [(16.0, 9.0), (19.0, 4.0), (22.0, 6.0)])
def test_fluctuation_correction_is_the_gaussian_average_to_fourth_order(mu, s2):
    errs = []
    for s_mu in (0.8, 0.4):
        corrected = _phi(mu, s2, 20.0, 20.0, 10.0, 2.0, True, s_mu) * 1e3
        plain = _phi(mu, s2, 20.0, 20.0, 10.0, 2.0, False, s_mu) * 1e3
        exact = _gauss_average(mu, s2, s_mu)
        assert abs(corrected - exact) < abs(plain - exact)
        errs.append(abs(corrected - exact) / exact)
    assert 2 ** 3.5 < errs[0] / errs[1] < 2 ** 4.5, errs      # error ∝ s_mu⁴


def test_usable_as_a_model_with_long_range_coupling():
    """Two regions coupled through their E rates: a stronger drive raises the partner."""
    conn = make_connectome([[0.0, 1.0], [1.0, 0.0]], [[0.0, 3.0], [3.0, 0.0]], ["a", "b"])
    eng = NeuralMassEngine("mf", "lif_mean_field", conn, dt_ms=0.1, integrator="heun",
                           coupling="linear", coupling_parameters={"G": 5.0},
                           parameters={"nu_e": {"default": 5000.0, "a": 5200.0}},
                           record_period_ms=10.0)
    r = eng.advance(0.0, 300.0, {}).records["timeseries"][-1]        # (variable, region)
    alone = _run(300.0)[-1]
    assert r[0, 0] > r[0, 1] > alone[0]
