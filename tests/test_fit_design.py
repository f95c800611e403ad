"""CMA-ES's initial space-filling design (``[optimizer] design``): deterministic from the
fit's seed, a Latin hypercube, inside the budget, CMA-ES started from its best point, the
log replayed on resume — checked with the real fit loop (``cosim.fitting.driver.run_fit``)
on an analytic loss, so no simulation runs."""

from __future__ import annotations

import io

import numpy as np
import pytest

from _hpc import hpc
from fit_cases import fit_text, linear_net, write_toml

pytest.importorskip("cma")

from cosim.fitting.driver import run_fit  # noqa: E402
from cosim.fitting.optimizers import CMAES, SIGMA_MIN, start_from_design  # noqa: E402
from cosim.fitting.spec import load_fit  # noqa: E402

#: The minimum of the analytic loss, in the unit box: far from the centre, where CMA-ES
#: without a design starts.
U_STAR = np.array([0.88, 0.12])
PARAMS = {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03]},
          "speed": {"key": "connectome.speed", "bounds": [1.0, 20.0]}}


def loss_of(u):
    """A narrow well at U_STAR on a gentle bowl; loss ≥ 0, = 0 only at U_STAR."""
    r2 = float(np.sum((np.asarray(u) - U_STAR) ** 2))
    return 1.0 - np.exp(-r2 / (2 * 0.04 ** 2)) + 0.2 * r2


class Analytic:
    """A backend that scores ``loss_of`` instead of running the scenario."""

    rank, size = 0, 1

    def __init__(self):
        self.calls = 0

    def run(self, spec, jobs, since):
        self.calls += len(jobs)
        return [{"index": i, "params": v, "status": "ok", "loss": loss_of(spec.unit(v)),
                 "fc_r": None, "fcd_ks": None, "output": None, "wall_s": 0.0,
                 "finished_s": 0.0} for i, v in jobs]


def _spec(tmp_path, budget=24, out="fit", seed=0, **optimizer):
    if not (tmp_path / "net.toml").exists():
        write_toml(tmp_path / "net.toml", linear_net())
        np.save(tmp_path / "ts.npy", np.random.default_rng(0).standard_normal((200, 6)))
    text = fit_text("net.toml", {"timeseries": str(tmp_path / "ts.npy"), "dataset": "timeseries"},
                    PARAMS, budget=budget, seed=seed,
                    optimizer={"method": "cmaes", "population": 6, **optimizer})
    path = tmp_path / f"fit_{seed}_{budget}_{optimizer.get('design', 'default')}.toml"
    path.write_text(text)
    return load_fit(path, out=tmp_path / out)


def _fit(spec):
    backend = Analytic()
    recs = run_fit(spec, backend, stream=io.StringIO())
    return recs, backend


def test_design_is_a_seeded_latin_hypercube_inside_the_budget(tmp_path):
    spec = _spec(tmp_path, budget=23, design=12)
    assert spec.design == 12
    recs, backend = _fit(spec)
    # the budget: 23 evaluations in all, the design counted in it, the last wave cut short
    assert len(recs) == 23 and backend.calls == 23
    assert [r["index"] for r in recs] == list(range(23))
    design = np.array([spec.unit(r["params"]) for r in recs[:12]])
    # a Latin hypercube: each of the 12 strata of each coordinate holds one point
    for k in range(2):
        assert sorted(np.floor(design[:, k] * 12).astype(int)) == list(range(12))
    # deterministic from the seed, different for another seed
    again = CMAES(_spec(tmp_path, design=12)).ask(12)
    np.testing.assert_allclose(np.array(again), design, atol=1e-9)     # values are rounded
    other = np.array(CMAES(_spec(tmp_path, seed=5, design=12)).ask(12))
    assert np.abs(other - design).min() > 0
    # the result is at least as good as the design's best, and CMA-ES improved on it
    best_design = min(r["loss"] for r in recs[:12])
    assert min(r["loss"] for r in recs) < best_design


def test_cmaes_starts_at_the_designs_best_point_with_its_spread():
    rng = np.random.default_rng(1)
    pts = rng.random((16, 2))
    losses = np.array([loss_of(u) for u in pts])
    losses[3] = np.nan                                  # a failed evaluation ranks last
    x0, sigma = start_from_design(pts, losses, 0.3)
    k = int(np.nanargmin(losses))
    assert np.array_equal(x0, pts[k])
    best4 = pts[np.argsort(np.where(np.isnan(losses), np.inf, losses))[:4]]
    assert sigma == pytest.approx(min(0.3, max(SIGMA_MIN, np.sqrt(np.mean(best4.std(axis=0) ** 2)))))
    # a tight cluster gives the floor, a wide one the cap
    assert start_from_design(np.full((8, 2), 0.5) + 1e-6 * rng.random((8, 2)),
                             np.arange(8.0), 0.3)[1] == SIGMA_MIN
    assert start_from_design(np.array([[0, 0], [1, 1], [0, 1], [1, 0.]]),
                             np.arange(4.0), 0.3)[1] == 0.3


def test_the_design_finds_a_minimum_far_from_the_centre_that_the_centre_start_misses(tmp_path):
    """Same budget (24), same seed: with the default design (one wave) the fit gets within
    0.05 of U_STAR; CMA-ES from the box centre (design = 0) ends worse."""
    with_design, _ = _fit(_spec(tmp_path, out="a"))
    without, _ = _fit(_spec(tmp_path, out="b", design=0))
    a = min(r["loss"] for r in with_design)
    b = min(r["loss"] for r in without)
    print(f"best loss with the design {a:.4g}, from the centre {b:.4g}")
    assert a < b
    best = min(with_design, key=lambda r: r["loss"])
    spec = _spec(tmp_path)
    assert np.abs(spec.unit(best["params"]) - U_STAR).max() < 0.05


def test_a_resumed_fit_replays_the_design_and_continues_identically(tmp_path):
    full, _ = _fit(_spec(tmp_path, budget=24, out="full", design=8))
    part, _ = _fit(_spec(tmp_path, budget=10, out="part", design=8))
    cont, backend = _fit(_spec(tmp_path, budget=24, out="part", design=8))
    # the 10 logged evaluations are reused (the design's waves of 6 and 2, and 2 of
    # CMA-ES's first wave: the same candidates, as the optimiser is replayed)
    assert backend.calls == 24 - 10
    strip = lambda rs: [(r["index"], r["params"], r["loss"]) for r in rs]   # noqa: E731
    assert strip(cont) == strip(full)
    assert strip(part) == strip(full)[:10]


def test_bad_design_is_exit_2_with_one_line(tmp_path):
    write_toml(tmp_path / "net.toml", linear_net())
    np.save(tmp_path / "ts.npy", np.random.default_rng(0).standard_normal((50, 6)))
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", {"timeseries": "ts.npy", "dataset": "timeseries"}, PARAMS,
        optimizer={"method": "cmaes", "design": -1}))
    r = hpc("fit", "fit.toml", cwd=tmp_path)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "fit.toml" in line and "optimizer.design" in line, line
