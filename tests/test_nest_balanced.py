"""The balanced state of a Brunel-type E/I network run by the NEST engine, measured.

A network of ``iaf_psc_delta`` neurons (N_E = 2000, N_I = 500), fixed in-degrees K_E = K and
K_I = K/4, weights J = J0/√K and −gJ (J0 = 5 mV, g = 6), every neuron driven by K
independent Poisson inputs of 40 Hz (weight J), is simulated through
:class:`cosim.engines.nest.NestEngine` for K = 100, 200, 400 — the scaling of van Vreeswijk
& Sompolinsky (1996), in which excitation and inhibition each grow with K and cancel.
Measured per recorded cell from the engine's spikes and NEST's connection list:

* the mean excitatory input (recurrent E spikes received + external) and the mean
  inhibitory input, counted in spikes received (μ/J), each ∝ K (fitted exponent ≈ 1);
* their sum, in mV, stays O(1) (fitted exponent ≈ 0) while each term grows ∝ √K in mV;
* the fluctuations of the net input, counted in spikes (σ/J), ∝ √K (exponent ≈ 1/2);
* firing is irregular (mean ISI CV ≈ 1) and asynchronous (mean pairwise spike-count
  correlation in 10 ms bins ≪ 1).

(In count units the sum grows ∝ √K: it is O(1) only in mV, i.e. O(1/J); the issue's
"inputs ∝ K, sum O(1), fluctuations ∝ √K" is this statement with the means and
fluctuations counted in spikes and the sum in mV.)  Finite K shows: the rates still rise
with K (42 → 62 Hz), which moves the mean exponents above 1; the tolerances below allow it.

The external Poisson drive's spikes are not recorded; its contribution is the exact mean
(J·K·ν_ext·bin) and variance (J²·K·ν_ext·bin) of a Poisson process.  Means in mV are
τ_m × the mean drive (the membrane equation's units); σ is the std of the net drive over
5 ms bins, scaled the same way.
"""

from __future__ import annotations

import numpy as np
import pytest

nest = pytest.importorskip("nest")

from cosim.engines.nest import Connection, Distribution, NestEngine, Population  # noqa: E402

NE, NI, J0, G, NU_EXT_HZ, TAU_MS = 2000, 500, 5.0, 6.0, 40.0, 20.0
T_MS, WARM_MS, N_REC = 500.0, 100.0, 100


def _network(K: int) -> NestEngine:
    J = J0 / np.sqrt(K)
    neuron = {"tau_m": TAU_MS, "C_m": 1.0, "V_th": 20.0, "V_reset": 10.0, "E_L": 0.0,
              "t_ref": 2.0, "V_m": Distribution("uniform", (("min", 0.0), ("max", 20.0)))}
    pops = [Population("E", "iaf_psc_delta", NE, neuron),
            Population("I", "iaf_psc_delta", NI, neuron),
            Population("ext", "poisson_generator", 1, {"rate": K * NU_EXT_HZ})]
    conns = []
    for tgt in ("E", "I"):
        conns += [Connection(f"E{tgt}", "E", tgt, "fixed_indegree", {"indegree": K},
                             "static_synapse", J, 1.5),
                  Connection(f"I{tgt}", "I", tgt, "fixed_indegree", {"indegree": K // 4},
                             "static_synapse", -G * J, 1.5),
                  Connection(f"x{tgt}", "ext", tgt, "all_to_all", {}, "static_synapse", J, 1.5)]
    return NestEngine("brunel", populations=pops, connections=conns, seed=2, threads=2,
                      sync_interval_ms=T_MS, duration_ms=T_MS)


def _measure(K: int) -> dict:
    J = J0 / np.sqrt(K)
    eng = _network(K)
    eng.build()
    cells = eng.nodes["E"][:N_REC]
    conns = nest.GetConnections(target=cells).get(["source", "target", "weight"])
    out = eng.advance(0.0, T_MS, {})
    gids, t = out.exports["spikes"]
    keep = t > WARM_MS
    gids, t = gids[keep], t[keep]
    span = T_MS - WARM_MS
    bin_ms = 5.0
    nb = int(span / bin_ms)
    counts = np.zeros((NE + NI, nb))
    np.add.at(counts, (gids, np.minimum(((t - WARM_MS) / bin_ms).astype(int), nb - 1)), 1.0)
    # weight matrix of the recorded cells' recurrent inputs (cell, source gid), multapses summed
    src = np.asarray(conns["source"], dtype=np.int64)
    tgt = np.asarray(conns["target"], dtype=np.int64)
    w = np.asarray(conns["weight"], dtype=np.float64)
    rec = src <= eng.nodes["I"][-1].global_id                  # not the generator
    row = tgt[rec] - cells[0].global_id
    col = eng._gids(src[rec])
    W = np.zeros((N_REC, NE + NI))
    np.add.at(W, (row, col), w[rec])
    exc = np.where(W > 0, W, 0.0) @ counts                     # (cell, bin) mV per bin
    inh = np.where(W < 0, W, 0.0) @ counts
    ext_mean = J * K * NU_EXT_HZ * bin_ms / 1000.0             # Poisson: mean = var / J
    to_mV = TAU_MS / bin_ms                                    # Σ jumps per bin → τ·drive (mV)
    mu_e = (exc.mean(axis=1) + ext_mean) * to_mV
    mu_i = inh.mean(axis=1) * to_mV
    var = (exc + inh).var(axis=1) + J * ext_mean               # external variance J²·K·ν·bin
    sigma = np.sqrt(var) * to_mV
    # irregularity and synchrony of E cells
    cv = []
    for g in range(0, NE, 4):
        ts = t[gids == g]
        if ts.size >= 6:
            isi = np.diff(ts)
            cv.append(isi.std() / isi.mean())
    c10 = counts[:NE].reshape(NE, nb // 2, 2).sum(axis=2)       # 10 ms bins
    active = c10[c10.sum(axis=1) > 0][:200]
    cc = np.corrcoef(active)
    corr = cc[np.triu_indices_from(cc, 1)]
    return dict(K=K, rate_hz=float((gids < NE).sum() / NE / span * 1000.0), mu_e=float(mu_e.mean()),
                mu_i=float(mu_i.mean()), net=float((mu_e + mu_i).mean()), sigma=float(sigma.mean()),
                n_e=float(mu_e.mean() / J), n_i=float(mu_i.mean() / J), n_sigma=float(sigma.mean() / J),
                cv=float(np.mean(cv)), corr=float(np.nanmean(corr)))


@pytest.fixture(scope="module")
def measured():
    return [_measure(K) for K in (100, 200, 400)]


def _exponent(rows, key) -> float:
    k = np.log([r["K"] for r in rows])
    return float(np.polyfit(k, np.log(np.abs([r[key] for r in rows])), 1)[0])


def test_firing_is_irregular_and_asynchronous(measured):
    for r in measured:
        assert 5.0 < r["rate_hz"] < 100.0, r
        assert 0.75 < r["cv"] < 1.3, r
        assert abs(r["corr"]) < 0.05, r


def test_inputs_scale_with_k_their_sum_stays_o1_and_fluctuations_with_sqrt_k(measured):
    a = {k: _exponent(measured, k) for k in ("n_e", "n_i", "n_sigma", "net", "mu_e", "sigma")}
    print({r["K"]: {k: round(v, 3) for k, v in r.items()} for r in measured},
          {k: round(v, 3) for k, v in a.items()})
    assert 0.95 < a["n_e"] < 1.35 and 0.95 < a["n_i"] < 1.35      # counts ∝ K
    assert 0.4 < a["n_sigma"] < 0.75                              # count fluctuations ∝ √K
    assert abs(a["net"]) < 0.2                                    # the sum (mV) is O(1)
    for r in measured:                                            # large E and I, cancelling
        assert r["mu_e"] > 4 * abs(r["net"]) and -r["mu_i"] > 3 * abs(r["net"]), r
