"""The population-density engine against NEST networks of LIF neurons: the rate's transient
after a step of the input, for 10 000 unconnected neurons and for a recurrent E/I network of
10 000 (8000 E + 2000 I), both started from the same state.

Reference: NEST 3.10's ``iaf_psc_delta_ps`` driven by ``poisson_generator_ps`` — the
precise-timing version of ``iaf_psc_delta`` (the same LIF with delta synapses, integrated
exactly between input spikes, Poisson spikes at exact times).  The grid version on a 0.1 ms
grid sums each step's input into one jump at the step end; that shifts the effective
threshold (the discrete-monitoring correction ≈ 0.58 σ √(h/τ) ≈ 0.1 mV here) and, with a
compensating ``I_e``, the mean input by ``μ_in h/(2τ)``: rate errors of 5–15 % that have
nothing to do with the density (measured while writing this test), so the exact neuron is the
reference.  What remains is the diffusion approximation itself (jumps J = 0.2 mV vs
σ ≈ 2.2–2.5 mV; J = 0.1 / 0.2 mV in the network) and the network's sampling noise.

Initial state: the NEST neurons' V are drawn from the engine's stationary density (those that
would be refractory start at V_reset in the engine too); both receive the step 0.1 ms after
``T0`` (the generators' delay).

Sampling error (stated): a bin of width b holds the spikes of N neurons, each firing at most
once per bin (t_ref = b = 2 ms), so Var(count) ≤ E(count) = N r b; z = (count − N r̄ b)/√(N r̄ b)
with r̄ the engine's rate averaged over the bin.  Unconnected neurons are independent: z has
mean square ≈ 1.  In the recurrent network finite-size fluctuations feed back through the
connections, so the count variance exceeds the Poisson bound (measured ≈ 2.4× for E); its
bounds are widened by √3 and stated below.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from cosim.engines.population_density import Input, Population, PopulationDensityEngine, Projection

nest = pytest.importorskip("nest")
os.environ.setdefault("PYNEST_QUIET", "1")

DT, BIN = 0.1, 2.0
LIF = {"tau_m": 20.0, "C_m": 1.0, "E_L": 0.0, "V_th": 20.0, "V_reset": 10.0, "t_ref": 2.0}


def _nest_kernel(seed):
    from cosim.engines.nest import import_nest

    n = import_nest()
    n.ResetKernel()
    n.SetKernelStatus({"resolution": DT, "rng_seed": seed, "local_num_threads": 1})
    return n


def _start_states(stationary, fresh, names, sizes, rng):
    """NEST voltages drawn from ``stationary``'s densities; ``fresh`` starts from the same
    state (its refractory mass at the reset cells)."""
    vs = {}
    for name, n in zip(names, sizes):
        p = stationary.density(name).copy()
        v, h = stationary.grid(name)
        cells = rng.choice(p.size, size=n, p=p / p.sum())
        vs[name] = v[cells] + (rng.random(n) - 0.5) * h
        ir = int(stationary._grid.reset_cell[stationary._index[name]])
        missing = 1.0 - h * p.sum()
        p[ir - 1] += missing / (2 * h)
        p[ir] += missing / (2 * h)
        fresh.set_density(name, p)
    return vs


def _counts(times, T):
    return np.histogram(times, bins=np.arange(0.0, T + BIN / 2, BIN))[0]


def _z(counts, rate_hz, n):
    per_bin = rate_hz.reshape(-1, int(round(BIN / DT))).mean(axis=1)
    expected = per_bin * n * BIN / 1000.0
    return (counts - expected) / np.sqrt(expected), per_bin


def test_step_response_of_10000_unconnected_lif_neurons_matches_nest():
    N, Jmv, T0, T = 10_000, 0.2, 20.0, 60.0
    k1, k2, mu0 = 6.25, 7.8125, -9.0          # input spikes/ms; μ: 16 → 22.25 mV, σ: 2.24 → 2.5 mV
    pop = Population("E", I_e=mu0 / 20.0, v_min=-20.0)

    def engine():
        return PopulationDensityEngine("pd", populations=[pop], inputs=[
            Input("bg", "E", Jmv, 1.0, rate_hz=1000 * k1, gain=1000.0)], dt_ms=DT, substeps=5)

    stationary = engine()
    stationary.build()
    stationary.advance(0.0, 400.0, {})
    eng = engine()
    eng.build()
    v = _start_states(stationary, eng, ["E"], [N], np.random.default_rng(3))["E"]
    drive = np.zeros((int(T / DT), 1))
    drive[int(T0 / DT) + 1:, 0] = k2 - k1     # the input rate steps 0.1 ms after T0
    rate = eng.advance(0.0, T, {"drive": drive}).records["timeseries"][:, 0, 0]

    n = _nest_kernel(5)
    cells = n.Create("iaf_psc_delta_ps", N, dict(LIF, I_e=mu0 / 20.0))
    cells.V_m = v.tolist()
    before = n.Create("poisson_generator_ps", params={"rate": 1000 * k1, "stop": T0})
    after = n.Create("poisson_generator_ps", params={"rate": 1000 * k2, "start": T0})
    for g in (before, after):
        n.Connect(g, cells, syn_spec={"weight": Jmv, "delay": DT})
    rec = n.Create("spike_recorder")
    n.Connect(cells, rec)
    n.Simulate(T)
    z, per_bin = _z(_counts(rec.events["times"], T), rate, N)

    assert per_bin[int(T0 / BIN) + 5] > 10 * per_bin[: int(T0 / BIN)].mean()   # a real step
    assert np.abs(z).max() < 4.5, z
    assert np.mean(z ** 2) < 1.8, np.mean(z ** 2)            # ≈ 1.16 measured; E = 1 ± 0.22
    assert abs(z.mean()) < 0.7                                # no bias beyond 4.4 σ of the mean


def test_step_response_of_a_recurrent_ei_network_matches_nest():
    NE, NI, T0, T = 8000, 2000, 20.0, 60.0
    KE, KI, JE, JI, bg, bg2 = 100, 50, 0.1, -0.2, 4500.0, 4750.0

    def engine():
        pops = [Population("E", n=NE, v_min=-20.0), Population("I", n=NI, v_min=-20.0)]
        projs = [Projection(s + t, s, t, JE if s == "E" else JI, KE if s == "E" else KI, 1.5)
                 for s in "EI" for t in "EI"]
        inputs = [Input("bgE", "E", 0.2, 1.0, rate_hz=bg, gain=1.0),
                  Input("bgI", "I", 0.2, 1.0, rate_hz=bg)]
        return PopulationDensityEngine("ei", populations=pops, projections=projs, inputs=inputs,
                                       dt_ms=DT, substeps=2, record_variables=["rate.E", "rate.I"])

    stationary = engine()
    stationary.build()
    stationary.advance(0.0, 500.0, {})
    eng = engine()
    eng.build()
    vs = _start_states(stationary, eng, ["E", "I"], [NE, NI], np.random.default_rng(2))
    drive = np.zeros((int(T / DT), 1))
    drive[int(T0 / DT) + 1:, 0] = bg2 - bg    # E's external rate 4500 → 4750 Hz
    rates = eng.advance(0.0, T, {"drive": drive}).records["timeseries"][:, :, 0]

    n = _nest_kernel(7)
    E = n.Create("iaf_psc_delta_ps", NE, LIF)
    I = n.Create("iaf_psc_delta_ps", NI, LIF)
    E.V_m, I.V_m = vs["E"].tolist(), vs["I"].tolist()
    for src, w, K in ((E, JE, KE), (I, JI, KI)):
        for tgt in (E, I):
            n.Connect(src, tgt, {"rule": "fixed_indegree", "indegree": K, "allow_autapses": False},
                      {"weight": w, "delay": 1.5})
    gens = [(n.Create("poisson_generator_ps", params={"rate": bg, "stop": T0}), E),
            (n.Create("poisson_generator_ps", params={"rate": bg2, "start": T0}), E),
            (n.Create("poisson_generator_ps", params={"rate": bg}), I)]
    for g, tgt in gens:
        n.Connect(g, tgt, syn_spec={"weight": 0.2, "delay": DT})
    recs = [n.Create("spike_recorder") for _ in range(2)]
    n.Connect(E, recs[0])
    n.Connect(I, recs[1])
    n.Simulate(T)
    widen = np.sqrt(3.0)                       # network noise above the Poisson bound (docstring)
    for col, (rec, size, rise) in enumerate(zip(recs, (NE, NI), (3.0, 2.0))):
        z, per_bin = _z(_counts(rec.events["times"], T), rates[:, col], size)
        z = z / widen
        # E's peak ≈ 3.7×, I's ≈ 2.5× the baseline: the transient is not small
        assert per_bin[int(T0 / BIN) + 5] > rise * per_bin[: int(T0 / BIN)].mean()
        assert np.abs(z).max() < 4.0, (col, z * widen)
        assert np.mean(z ** 2) < 1.8, (col, np.mean(z ** 2) * 3)  # measured 2.4 (E), 1.0 (I) ×3
