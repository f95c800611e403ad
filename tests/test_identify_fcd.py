"""`cosim identify` with FCD observables (``[identify] observables = "fcd"``): the quantiles
agree with an independent numpy computation, two gains that enter only as their product
are found structurally non-identifiable from the FCD too, and a fit description whose
target has no time series is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from _hpc import hpc
from fit_cases import fit_text, linear_net, truth_series, write_toml

DISCARD = 500.0


def _fcd_quantiles(ts, window, step, q):
    """Independent: windowed FCs by np.corrcoef, their upper triangles correlated pairwise,
    the FCD's upper triangle, quantiles at (k + 1/2)/q, Fisher z."""
    n = ts.shape[1]
    iu = np.triu_indices(n, 1)
    vecs = [np.corrcoef(ts[s:s + window].T)[iu] for s in range(0, ts.shape[0] - window + 1, step)]
    m = len(vecs)
    vals = [np.corrcoef(vecs[a], vecs[b])[0, 1] for a in range(m) for b in range(a + 1, m)]
    return np.arctanh(np.quantile(vals, (np.arange(q) + 0.5) / q))


def test_fcd_observables_equal_an_independent_computation():
    from cosim.analysis.fc import fcd_matrix
    from cosim.fitting.identify import fcd_observables

    rng = np.random.default_rng(5)
    ts = rng.standard_normal((400, 5)).cumsum(axis=0) * 0.1 + rng.standard_normal((400, 5))
    got = fcd_observables(fcd_matrix(ts, 60, 20)[0], 12)
    np.testing.assert_allclose(got, _fcd_quantiles(ts, 60, 20, 12), rtol=1e-10, atol=1e-12)


def test_two_gains_entering_as_a_product_are_not_identifiable_from_the_fcd(tmp_path):
    from cosim.fitting.identify import identify
    from cosim.fitting.spec import load_fit

    tanh = {"type": "hyperbolic_tangent", "G": 0.02, "a": 1.0}
    T = 20000.0 + DISCARD
    np.save(tmp_path / "data.npy", truth_series(tmp_path, T, seed=7, noise=0.1,
                                                coupling=tanh, discard_ms=DISCARD))
    write_toml(tmp_path / "net.toml", linear_net(T, coupling=tanh))
    target = {"timeseries": "data.npy", "dataset": "timeseries", "discard": DISCARD,
              "period": 10.0, "fcd_window": 2000.0, "fcd_step": 500.0}
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", target,
        {"G": {"key": "engines.net.coupling.G", "bounds": [0.006, 0.024], "initial": 0.012},
         "a": {"key": "engines.net.coupling.a", "bounds": [0.5, 2.0], "initial": 1.0}},
        loss={"fc": 0.0, "fcd": 1.0}, sets={"simulation.seed": 8},
        identify={"observables": "fcd", "fcd_quantiles": 10, "profile_points": 3,
                  "inner_budget": 2, "fit_budget": 2}))
    res = identify(load_fit(tmp_path / "fit.toml", out=tmp_path / "out"), stream=None)
    assert res["observables"] == "fcd" and res["n_observables"] == 10
    assert res["noise_model"].startswith("Fisher-z FCD quantiles")
    s = res["relative_singular_values"]
    assert s[0] == 1.0 and s[1] < 1e-6, s
    (combo,) = res["unidentifiable_combinations"]
    v = np.array([combo["relative_direction"]["G"], combo["relative_direction"]["a"]])
    assert abs(v @ np.array([1.0, -1.0]) / np.sqrt(2)) > 0.9999, v      # d(G a) = 0
    # the FCD does respond to the product: the sensitivity is not zero
    assert res["singular_values"][0] > 1e-3


@pytest.mark.parametrize("target, key", [
    ({"fc": "fc.npy"}, "identify.observables"),
])
def test_fcd_observables_without_a_time_series_exit_2_in_one_line(tmp_path, target, key):
    np.save(tmp_path / "fc.npy", np.eye(6) * 0.5 + 0.5)
    write_toml(tmp_path / "net.toml", linear_net(2000.0))
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", target, {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03]}},
        identify={"observables": "fcd"}))
    r = hpc("identify", "fit.toml", "--out", "out", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fit.toml: {key}: "), r.stderr
