"""Smoke test of the benchmarks in bench/: they run, write the documented JSON, and every
simulator that took part simulated the same model (its outputs agree with cosim's).

Not a timing test: durations are a few ms, one round.  A peer simulator that is not
installed is reported by the benchmark as skipped, and its test here is skipped with the
benchmark's reason.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _run(script: str, out: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--repeats", "1", "--json", str(out), *args],
                          capture_output=True, text=True, timeout=300)
    assert out.exists(), f"{script} wrote no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    data = json.loads(out.read_text())
    data["_exit"] = proc.returncode
    data["_output"] = proc.stdout + proc.stderr[-3000:]
    return data


@pytest.fixture(scope="module")
def neural_mass(tmp_path_factory) -> dict:
    pytest.importorskip("cosim.engines.neural_mass", reason="cosim's neural-mass engine is not there")
    out = tmp_path_factory.mktemp("bench") / "neural_mass.json"
    return _run("neural_mass.py", out, "--duration-ms", "20")


@pytest.fixture(scope="module")
def multicompartment(tmp_path_factory) -> dict:
    pytest.importorskip("cosim.multicompartment", reason="cosim's multicompartment engine is not there")
    out = tmp_path_factory.mktemp("bench") / "multicompartment.json"
    return _run("multicompartment.py", out, "--duration-ms", "25", "--cells", "2",
                "--cortical-cells", "1")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_neural_mass_json_structure(neural_mass):
    d = neural_mass
    for key in ("ratios", "seconds_per_sim_second", "jit_seconds", "agreement", "skipped",
                "versions", "machine", "duration_ms"):
        assert key in d, key
    assert set(d["ratios"]) == {"tvb", "neurolib"}
    # cosim itself must always run
    assert "cosim-jr" not in d["skipped"] and "cosim-wc" not in d["skipped"], d["skipped"]
    for name in ("cosim-jr", "cosim-wc"):
        assert _positive(d["seconds_per_sim_second"][name])
        assert d["jit_seconds"][name] >= 0
    assert d["_exit"] == 0, d["_output"]


@pytest.mark.parametrize("peer, ours", [("tvb", "cosim-jr"), ("neurolib", "cosim-wc")])
def test_neural_mass_peer_agrees(neural_mass, peer, ours):
    d = neural_mass
    if peer in d["skipped"]:
        pytest.skip(f"{peer}: {d['skipped'][peer]}")
    assert _positive(d["ratios"][peer])
    assert _positive(d["seconds_per_sim_second"][peer])
    a = d["agreement"][f"{ours}-{peer}"]
    assert a["same_connectome"], a
    assert a["n_samples"] == 20
    assert a["agree"], a


def test_multicompartment_json_structure(multicompartment):
    d = multicompartment
    for key in ("ratios", "ns_per_compartment_step", "jit_seconds",
                "peak_memory_bytes_per_compartment", "memory_method", "agreement", "skipped",
                "versions", "machine", "model"):
        assert key in d, key
    assert set(d["ratios"]) == {"neuron", "arbor"}
    assert "cosim" not in d["skipped"], d["skipped"]
    assert _positive(d["ns_per_compartment_step"]["cosim"])
    assert d["jit_seconds"] >= 0
    assert d["peak_memory_bytes_per_compartment"]["cosim"] >= 0
    assert d["model"]["n_cells"] == 2
    assert d["_exit"] == 0, d["_output"]


@pytest.mark.parametrize("peer", ["neuron", "arbor"])
def test_multicompartment_peer_agrees(multicompartment, peer):
    d = multicompartment
    if peer in d["skipped"]:
        pytest.skip(f"{peer}: {d['skipped'][peer]}")
    assert _positive(d["ratios"][peer])
    a = d["agreement"][f"cosim-{peer}"]
    assert a["counts"][0] == a["counts"][1] >= 2, a   # 0.5 nA fires twice in 25 ms
    assert a["agree"], a
    if peer == "neuron":
        exact = d["agreement"]["cosim-neuron_exact_rates"]
        assert exact["agree"], exact   # same spike steps as NEURON with exact rates


def test_neuron_region_bench_runs_all_three_sides(tmp_path):
    """bench/neuron_region.py: rV1 in the NEURON engine, in cosim's own engine and in the
    hand-written TVB + NEURON glue; the two cosim runs give the same rV1 spikes."""
    pytest.importorskip("neuron")
    pytest.importorskip("tvb.simulator")
    d = _run("neuron_region.py", tmp_path / "neuron_region.json", "--duration-ms", "20")
    assert d["_exit"] == 0, d["_output"]
    assert d["spikes_identical"] is True
    assert set(d["wall_per_sim_s"]) == {"neuron", "multicompartment", "glue"}
    assert all(_positive(v) for v in d["wall_per_sim_s"].values())
    assert _positive(d["ratios"]["glue"]) and d["ratios"]["glue"] == d["ratio_glue_over_cosim"]
    assert 0 <= d["coupling_overhead"] < 1
    assert d["glue_rate_exc_hz"] >= 0
    split = d["glue_split_s"]
    assert all(_positive(split[k]) for k in ("neuron_s", "tvb_s"))
    assert d["glue_bound"] == pytest.approx(sum(split.values()) / split["neuron_s"])


@pytest.fixture(scope="module")
def population_density(tmp_path_factory) -> dict:
    pytest.importorskip("nest", reason="NEST is not installed")
    out = tmp_path_factory.mktemp("bench") / "population_density.json"
    return _run("population_density.py", out, "--duration-ms", "40", "--scale", "0.02")


def test_population_density_json_structure_and_agreement(population_density):
    d = population_density
    assert d["_exit"] == 0, d["_output"]
    assert set(d["ratios"]) == {"nest_10000", "nest_100000"}
    assert d["neurons"] == {"nest_10000": 200, "nest_100000": 2000}
    assert not d["skipped"], d["skipped"]
    assert _positive(d["ratios"]["nest_10000"]) and _positive(d["ratios"]["nest_100000"])
    assert _positive(d["ratios_precise"]["nest_100000"])
    assert _positive(d["seconds_per_sim_second"]["density"])
    # same model: the density's rate is within the 2000-neuron network's sampling error
    assert d["rate_error_reference"] == "nest_ps 2000"
    assert 0 < d["rate_error"] < 2.5 * d["reference_sampling_error"], d
    assert d["density_discretisation_error"] < 0.05


@pytest.fixture(scope="module")
def neural_field(tmp_path_factory) -> dict:
    pytest.importorskip("cosim.engines.neural_surface", reason="cosim's surface engine is not there")
    out = tmp_path_factory.mktemp("bench") / "neural_field.json"
    # one cosim thread: the threaded bits are tests/test_neural_surface.py's
    return _run("neural_field.py", out, "--duration-ms", "3", "--grids", "16", "32",
                "--sheet-steps", "40", "--cosim-threads", "1", "--clock", "cpu")


def test_neural_field_json_structure(neural_field):
    d = neural_field
    for key in ("ratios", "seconds_per_sim_second", "sheet", "agreement", "skipped",
                "versions", "machine", "duration_ms"):
        assert key in d, key
    assert set(d["ratios"]) == {"tvb"}
    assert _positive(d["seconds_per_sim_second"]["cosim"])
    assert d["clock"] == "cpu"
    assert set(d["sheet"]) == {"sheet-16", "sheet-32"}
    for v in d["sheet"].values():
        assert _positive(v["steps_per_second"]) and _positive(v["ns_per_point_log2N"])
    if "tvb" in d["skipped"]:
        pytest.skip(d["skipped"]["tvb"])
    assert _positive(d["ratios"]["tvb"])
    # the same model on both sides: region averages agree (TVB's float32 history aside)
    assert d["agreement"]["agree"] and d["agreement"]["max_rel_diff"] < 1e-4, d["agreement"]
    assert d["_exit"] == 0, d["_output"]


def test_multicompartment_cortical_cell_case(multicompartment):
    c = multicompartment["cases"]["cortical_cell"]
    assert set(c["ratios"]) == {"neuron", "arbor"}
    assert "cosim" not in c["skipped"], c["skipped"]
    assert _positive(c["ns_per_compartment_step"]["cosim"])
    if "neuron" in c["skipped"]:
        pytest.skip(f"neuron: {c['skipped']['neuron']}")
    assert _positive(c["ratios"]["neuron"])
    assert _positive(c["ratios_cpu"]["neuron"]) and _positive(c["ns_per_compartment_step_cpu"]["cosim"])
    a = c["agreement"]["cosim-neuron"]
    assert a["counts"][0] == a["counts"][1] >= 1 and a["agree"], a   # same .mod files, same spikes
    assert c["compartments_per_cell"]["cosim"] == c["compartments_per_cell"]["neuron"]


def test_multicompartment_cortical_cell_arbor(multicompartment):
    """Arbor's side of the cortical cell (bbp catalogue channels): measured, on as many
    CVs as NEURON has segments (within 3 %); skipped where Arbor is not installed."""
    c = multicompartment["cases"]["cortical_cell"]
    if "arbor" in c["skipped"]:
        pytest.skip(f"arbor: {c['skipped']['arbor']}")
    assert _positive(c["ratios"]["arbor"]) and _positive(c["ns_per_compartment_step"]["arbor"])
    n_cosim, n_arbor = c["compartments_per_cell"]["cosim"], c["compartments_per_cell"]["arbor"]
    assert abs(n_arbor - n_cosim) <= 0.03 * n_cosim, (n_arbor, n_cosim)


def test_fit_bench_runs_both_fitters_on_the_same_budget(tmp_path):
    """bench/fit.py at toy size: cosim fit and neurolib's Evolution, 4 evaluations each."""
    pytest.importorskip("cma", reason="cosim fit's CMA-ES needs the cma package")
    out = tmp_path / "fit.json"
    proc = subprocess.run([sys.executable, str(BENCH / "fit.py"), "--duration-ms", "6000",
                           "--discard-ms", "1000", "--population", "2", "--generations", "2",
                           "--cores", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    d = json.loads(out.read_text())
    if "neurolib" in d["skipped"]:
        pytest.skip(f"neurolib: {d['skipped']['neurolib']}")
    assert "failed" not in d, d["failed"]
    nl, co = d["results"]["neurolib"], d["results"]["cosim"]
    assert nl["evaluations"] == co["evaluations"] >= 2
    for side in (nl, co):
        assert -1.0 <= side["best_r"] <= 1.0 and side["best_r"] == max(side["rs"])
        assert 0 <= side["time_to_best_s"] <= side["wall_s"]
        assert 0.0 <= side["best_params"]["G"] <= 3.0
        assert 1.0 <= side["best_params"]["speed"] <= 20.0
    assert set(d["targets_met"]) == {"reaches_neurolib_best_r", "in_a_third_of_the_time"}


@pytest.mark.mpi
def test_scale_json_structure(tmp_path):
    """bench/scale.py at P = 3 (4 windows, no wall-time runs): the documented keys, and
    over the whole run every message and byte a rank sent was received by another."""
    d = _run("scale.py", tmp_path / "scale.json", "--np", "3", "--duration-ms", "4",
             "--wall-ms", "0")
    assert d["_exit"] == 0, d["_output"]
    for key in ("max_messages_per_rank_per_window", "max_bytes_per_rank_per_window",
                "rank0_messages_per_window", "rank0_work_s_per_window", "per_rank", "pingpong",
                "model", "wall", "machine"):
        assert key in d, key
    ranks = d["per_rank"]["3"]
    assert len(ranks) == 3
    assert d["max_messages_per_rank_per_window"]["3"] == max(r["messages"] for r in ranks) > 0
    assert d["max_bytes_per_rank_per_window"]["3"] == max(r["bytes"] for r in ranks) > 0
    sent = np.sum([r["run_sent"] for r in ranks], axis=0)
    received = np.sum([r["run_received"] for r in ranks], axis=0)
    assert list(sent) == list(received)
    assert _positive(d["pingpong"]["latency_s"]) and _positive(d["pingpong"]["bandwidth_bytes_per_s"])
    assert set(d["model"]["P"]) == {"256", "1024"}
    assert d["wall"] == {}


def test_exchange_overhead_bench_times_both_buses_on_the_same_inputs(tmp_path):
    """bench/exchange_overhead.py at toy size: the distributed and the central bus give the
    same inputs (bitwise) for two layouts, and the JSON holds both timings."""
    out = tmp_path / "exchange.json"
    proc = subprocess.run([sys.executable, str(BENCH / "exchange_overhead.py"), "--parts", "1",
                           "9", "--rounds", "2", "--windows", "3", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert set(d["results"]) == {"1", "9"}
    for r in d["results"].values():
        assert r["inputs_agree"] is True
        assert _positive(r["distributed_us_per_window"]) and _positive(r["central_us_per_window"])
    assert d["results"]["9"]["parts"] == 8 and d["results"]["1"]["parts"] == 2


def test_cosim_overhead_split_parts_the_one_process_time(tmp_path):
    """bench/cosim_overhead.py --one-process-only --split at toy size: the time besides the
    engines, and where it goes: the bus and the coordinator's records each cost something
    once the timers' own cost is taken off."""
    out = tmp_path / "overhead.json"
    proc = subprocess.run([sys.executable, str(BENCH / "cosim_overhead.py"), "--one-process-only",
                           "--split", "--duration-ms", "40", "--sync-ms", "1", "--repeats", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    r = json.loads(out.read_text())["one_process"]["1"]
    assert r["windows"] == 40 and r["parts"] == 2
    sp = r["split"]
    assert set(sp["us_per_window"]) == {"bus", "records and output", "loop"}
    assert _positive(sp["us_per_window"]["bus"]) and _positive(sp["us_per_window"]["records and output"])
    assert 0 < sp["timer_us_per_call"] < 5


def test_second_thread_bench_times_work_inline_and_on_a_thread(tmp_path):
    """bench/second_thread.py at toy size: both kinds of work calibrated to the size asked
    for, all four modes timed, and work done inline lengthens the loop."""
    out = tmp_path / "thread.json"
    proc = subprocess.run([sys.executable, str(BENCH / "second_thread.py"), "--work-us", "300",
                           "--duration-ms", "60", "--rounds", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["engine"] == "v1"
    assert set(d["loop_us_per_work_us"]) == {f"{h} {k}" for h in ("inline", "thread")
                                             for k in ("nogil", "python")}
    for kind in ("nogil", "python"):
        assert 150 < d["work_us"][kind] < 600, d["work_us"]
        assert d["loop_us_per_work_us"][f"inline {kind}"] > 0.3, d
    assert _positive(d["loop_us_per_window"]["none"])
