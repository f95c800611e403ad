"""`cosim identify`: parameter recovery with confidence intervals that cover the truth and
shrink with longer data, and a structural non-identifiability (two gains that enter only
as their product) found by the sensitivity analysis and as flat profiles.

Data are simulated by cosim at known parameters with one seed and observation noise added
(independent Gaussian, 10 % of each region's standard deviation: it attenuates the FC by
1 %, well inside the intervals); the fits simulate another seed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _hpc import hpc
from fit_cases import fit_text, linear_net, truth_series, write_toml

G_TRUE = 0.02
DISCARD = 500.0


def _recover(tmp_path, seconds: float) -> dict:
    from cosim.fitting.identify import identify
    from cosim.fitting.spec import load_fit

    d = tmp_path / f"T{seconds:g}"
    d.mkdir()
    T = seconds * 1000.0 + DISCARD
    np.save(d / "data.npy", truth_series(d, T, seed=7, noise=0.1, noise_seed=1,
                                         discard_ms=DISCARD))
    write_toml(d / "net.toml", linear_net(T))
    (d / "fit.toml").write_text(fit_text(
        "net.toml", {"timeseries": "data.npy", "dataset": "timeseries", "discard": DISCARD},
        {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03], "initial": 0.01}},
        loss={"fc": 0.0, "fc_mse": 1.0}, sets={"simulation.seed": 8},
        identify={"profile_points": 7, "fit_budget": 16, "step": 0.02}))
    return identify(load_fit(d / "fit.toml", out=d / "out"), stream=None)


def test_recovered_coupling_lies_in_its_interval_which_shrinks_with_longer_data(tmp_path):
    short, long = _recover(tmp_path, 10.0), _recover(tmp_path, 40.0)
    widths = []
    for res in (short, long):
        g = res["parameters"]["G"]
        assert g["identifiable"] and not g["flat"], g
        lo, hi = g["ci"]
        assert lo < G_TRUE < hi, (lo, hi)
        assert lo < g["estimate"] < hi
        assert res["relative_singular_values"] == [1.0]
        assert res["unidentifiable_combinations"] == []
        widths.append(hi - lo)
        # the interval is where the profile is below the stated threshold
        prof = g["profile"]
        inside = [p["rss"] <= res["threshold"] for p in prof]
        assert any(inside) and not all(inside)
        assert all(lo <= p["value"] <= hi for p, ok in zip(prof, inside) if ok)
    # four times the data: the interval about halves (1/sqrt(4)); at least it shrinks by 1/3
    assert widths[1] < 0.67 * widths[0], widths


def test_two_gains_entering_as_a_product_are_not_identifiable(tmp_path):
    # c_i = G sum_j w_ij a (1 + tanh((b x_j - midpoint)/sigma)): only G*a matters
    tanh = {"type": "hyperbolic_tangent", "G": G_TRUE, "a": 1.0}
    T = 5000.0 + DISCARD
    np.save(tmp_path / "data.npy", truth_series(tmp_path, T, seed=7, noise=0.1,
                                                coupling=tanh, discard_ms=DISCARD))
    write_toml(tmp_path / "net.toml", linear_net(T, coupling=tanh))
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", {"timeseries": "data.npy", "dataset": "timeseries", "discard": DISCARD},
        {"G": {"key": "engines.net.coupling.G", "bounds": [0.006, 0.024], "initial": 0.012},
         "a": {"key": "engines.net.coupling.a", "bounds": [0.5, 2.0], "initial": 1.0}},
        loss={"fc": 0.0, "fc_mse": 1.0}, sets={"simulation.seed": 8},
        identify={"profile_points": 5, "inner_budget": 12, "fit_budget": 16}))
    r = hpc("identify", "fit.toml", "--out", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "identify.json").read_text())
    s = res["relative_singular_values"]
    assert s[0] == 1.0 and s[1] < 1e-6, s
    (combo,) = res["unidentifiable_combinations"]
    # predicted: d(G a) = 0  <=>  dG/G = -da/a, the relative direction (1, -1)/sqrt(2)
    v = np.array([combo["relative_direction"]["G"], combo["relative_direction"]["a"]])
    assert abs(v @ np.array([1.0, -1.0]) / np.sqrt(2)) > 0.9999, v
    for name in ("G", "a"):
        p = res["parameters"][name]
        assert p["flat"] and not p["identifiable"], p
        rss = [q["rss"] for q in p["profile"]]
        assert max(rss) <= res["threshold"]
        # re-optimising the other gain (12 Nelder-Mead evaluations) keeps the product near
        # its best value, wherever the other's bounds allow it
        product = res["mle"]["G"] * res["mle"]["a"]
        other, (lo, hi) = ("a", (0.5, 2.0)) if name == "G" else ("G", (0.006, 0.024))
        reachable = [q for q in p["profile"] if lo <= product / q["value"] <= hi]
        assert len(reachable) >= 3
        for q in reachable:
            assert q["others"][other] * q["value"] == pytest.approx(product, rel=0.05)
    assert "NOT IDENTIFIABLE" in r.stdout and "relative direction (G +0.707, a -0.707)" \
        in r.stdout.replace("-0.707, a +0.707", "+0.707, a -0.707")
    assert r.stdout.count("FLAT: not identifiable") == 2
