"""`cosim sweep`: grids of scenario variants, validated, run here / over MPI ranks / as a
SLURM array script (the array itself runs on a real cluster in test_slurm.py)."""

from __future__ import annotations

import json
import subprocess
import tomllib

import h5py
import numpy as np
import pytest

from _hpc import hpc, hpc_process
from cosim.cli import main as cli_main
from cosim.errors import CosimError
from cosim.launch import find_mpiexec
from cosim.sweep import grid, parse_param, set_key, variant_name
from scenarios import TVB76, connectome, neural_mass, scenario_text, simulation


def tiny(G: float = 1.0, source: str | dict = TVB76) -> str:
    """One Jansen–Rit engine, coupling ``G``, 20 windows of 1 ms, on ``source``."""
    return scenario_text(simulation(duration=20.0, seed=3, output="base.h5"),
                         connectome=connectome(source),
                         engines={"cortex": neural_mass(coupling={"G": G})})


TINY = tiny()


def sweep(*args, cwd):
    return hpc("sweep", *args, cwd=cwd)


# -- parsing -------------------------------------------------------------------------------------

def test_linspace_is_inclusive_and_rounded():
    p = parse_param("engines.cortex.coupling.G=0.05:0.5:10")
    assert p.key == "engines.cortex.coupling.G"
    assert p.values == (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
    assert parse_param("simulation.seed=1:5:5").values == (1, 2, 3, 4, 5)
    assert all(type(v) is int for v in parse_param("simulation.seed=1:5:5").values)
    assert parse_param("x.y=1:2:3").values == (1.0, 1.5, 2.0)
    assert parse_param("x.y=1.0:3.0:3").values == (1.0, 2.0, 3.0)
    assert all(type(v) is float for v in parse_param("x.y=1.0:3.0:3").values)
    assert parse_param("x.y=2:2:1").values == (2,)


def test_lists_and_single_values_keep_their_toml_types():
    assert parse_param("a.b=0.5,3,true,\"s\",jansen_rit").values == (0.5, 3, True, "s", "jansen_rit")
    assert parse_param("a.b=-1e-3").values == (-0.001,)


@pytest.mark.parametrize("spec,match", [
    ("engines.cortex.G", "expected KEY=start"), ("=1", "not a dotted scenario key"),
    ("a..b=1", "not a dotted scenario key"), ("a.b=", "no values"),
    ("a.b=1:x:3", "needs numbers"), ("a.b=1:2:0", "count must be ≥ 1"),
    ("a.b=1:2:1.5", "whole number"), ("a.b=1:2:1", "count 1"), ("a.b=1,,2", "empty value"),
    ("simulation.output=a.h5", "set by the sweep"),
])
def test_bad_param_specs(spec, match):
    with pytest.raises(CosimError, match=match):
        parse_param(spec)


def test_grid_order_names_and_duplicates():
    ps = [parse_param("e.c.coupling.G=0.1,0.2"), parse_param("simulation.seed=1:3:3")]
    g = grid(ps)
    assert len(g) == 6 and g[0] == {"e.c.coupling.G": 0.1, "simulation.seed": 1}
    assert g[1] == {"e.c.coupling.G": 0.1, "simulation.seed": 2}        # last varies fastest
    assert variant_name(4, 6, g[4]) == "004_G=0.2_seed=2"
    # two keys with the same last segment: the whole key names them
    assert variant_name(0, 1, {"engines.a.dt": 0.1, "engines.b.dt": 0.5}) == \
        "000_engines-a-dt=0.1_engines-b-dt=0.5"
    assert variant_name(0, 1, {"a.model": "x/y z"}) == "000_model=x_y_z"
    with pytest.raises(CosimError, match="given twice"):
        grid([ps[0], ps[0]])


def test_set_key_creates_tables_and_refuses_non_tables():
    d = {"engines": {"cortex": {"model": "jansen_rit", "coupling": {"G": 1.0}}}}
    set_key(d, "engines.cortex.coupling.G", 0.5)
    set_key(d, "engines.cortex.parameters.v0", 6.0)
    assert d["engines"]["cortex"]["coupling"]["G"] == 0.5
    assert d["engines"]["cortex"]["parameters"] == {"v0": 6.0}
    with pytest.raises(CosimError, match="engines.cortex.model is a string"):
        set_key(d, "engines.cortex.model.x", 1)
    with pytest.raises(CosimError, match="is a table"):
        set_key(d, "engines.cortex.coupling", 1)


# -- the command ----------------------------------------------------------------------------------

def test_dry_run_writes_valid_variants_with_their_outputs(tmp_path):
    (tmp_path / "jr.toml").write_text(TINY)
    r = sweep("jr.toml", "--param", "engines.cortex.coupling.G=0.5:1.5:3",
              "--param", "simulation.seed=7,8", "--dry-run", "--out", "grid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote 6 variants to grid/" in r.stdout
    manifest = json.loads((tmp_path / "grid" / "sweep.json").read_text())
    assert [v["name"] for v in manifest["variants"]][:2] == ["000_G=0.5_seed=7", "001_G=0.5_seed=8"]
    v5 = tomllib.loads((tmp_path / "grid" / "005_G=1.5_seed=8.toml").read_text())
    assert v5["engines"]["cortex"]["coupling"]["G"] == 1.5 and v5["simulation"]["seed"] == 8
    assert v5["simulation"]["output"] == str(tmp_path / "grid" / "005_G=1.5_seed=8.h5")
    assert v5["simulation"]["duration"] == 20.0 and v5["connectome"]["source"] == "tvb:connectivity_76"
    assert not list((tmp_path / "grid").glob("*.h5"))           # nothing ran
    again = sweep("jr.toml", "--param", "simulation.seed=1", "--dry-run", "--out", "grid",
                  cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr


@pytest.mark.parametrize("param,key", [
    ("engines.cortex.coupling.X=1,2", "--param engines.cortex.coupling.X"),
    ("engines.cortex.modl=1", "--param engines.cortex.modl"),
    ("engines.cortex.model.x=1", "--param engines.cortex.model.x"),
    ("engines.cortex.coupling.G=1,nope", "--param engines.cortex.coupling.G"),
])
def test_a_bad_key_or_value_is_exit_2_with_one_line_and_no_files(tmp_path, param, key):
    (tmp_path / "jr.toml").write_text(TINY)
    r = sweep("jr.toml", "--param", param, "--out", "grid", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and key in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.startswith("jr.toml: ")
    assert not (tmp_path / "grid").exists()


def test_relative_input_paths_still_resolve_from_the_sweep_folder(tmp_path):
    w = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.5, 0.2, 0.0]])
    data = tmp_path / "model" / "data"
    data.mkdir(parents=True)
    np.savetxt(data / "w.csv", w, delimiter=",")
    np.savetxt(data / "l.csv", 10 * (w > 0), delimiter=",")
    text = tiny(source={"weights": "data/w.csv", "tract_lengths": "data/l.csv"})
    (tmp_path / "model" / "small.toml").write_text(text)
    r = sweep("model/small.toml", "--param", "engines.cortex.coupling.G=0.1,0.2", "--dry-run",
              "--out", "elsewhere/grid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    v = tomllib.loads((tmp_path / "elsewhere" / "grid" / "000_G=0.1.toml").read_text())
    assert v["connectome"]["source"]["weights"] == str(data / "w.csv")


def test_sequential_sweep_equals_runs_of_hand_written_scenarios(tmp_path):
    (tmp_path / "jr.toml").write_text(TINY)
    r = sweep("jr.toml", "--param", "engines.cortex.coupling.G=0,20", "--out", "grid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "sweep: 2 of 2 variants done" in r.stdout
    assert f"[2/2] variant 001_G=20: wrote {tmp_path}/grid/001_G=20.h5 in " in r.stdout
    (tmp_path / "g20.toml").write_text(tiny(G=20.0))
    assert cli_main(["run", str(tmp_path / "g20.toml"), "--output", str(tmp_path / "g20.h5"),
                     "--quiet"]) == 0
    with h5py.File(tmp_path / "grid" / "001_G=20.h5") as a, h5py.File(tmp_path / "g20.h5") as b, \
            h5py.File(tmp_path / "grid" / "000_G=0.h5") as c:
        assert a.attrs["status"] == "completed"
        np.testing.assert_array_equal(a["engines/cortex/timeseries"][:], b["engines/cortex/timeseries"][:])
        assert not np.array_equal(a["engines/cortex/timeseries"][:], c["engines/cortex/timeseries"][:])
    # a second sweep into the same folder needs --overwrite, which replaces the outputs
    again = sweep("jr.toml", "--param", "engines.cortex.coupling.G=0,20", "--out", "grid", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    again = sweep("jr.toml", "--param", "engines.cortex.coupling.G=0,20", "--out", "grid",
                  "--overwrite", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "sweep: 2 of 2 variants done" in again.stdout


@pytest.mark.mpi
def test_np_mode_spreads_variants_over_ranks_with_the_same_results(tmp_path):
    if find_mpiexec() is None:
        pytest.skip("no mpiexec (install the mpi extra)")
    (tmp_path / "jr.toml").write_text(TINY)
    grid_ = ("--param", "engines.cortex.coupling.G=0,10,20,30")
    seq = sweep("jr.toml", *grid_, "--out", "seq", cwd=tmp_path)
    assert seq.returncode == 0, seq.stderr
    # variant 2's output exists already: it fails (exit 2), the others still run, no rank hangs
    (tmp_path / "par").mkdir()
    (tmp_path / "par" / "002_G=20.h5").write_text("not mine")
    par = hpc_process("sweep", "jr.toml", *grid_, "--out", "par", "--np", "2", cwd=tmp_path)
    assert par.returncode == 2, par.stderr
    assert "sweep: 3 of 4 variants done on 2 ranks; failed: 2" in par.stdout
    assert "rank 1: [1/2] variant 001_G=10: wrote" in par.stdout          # every 2nd variant
    assert "rank 0: [2/2] variant 002_G=20: FAILED: 002_G=20.h5: output file exists" in par.stdout
    assert (tmp_path / "par" / "002_G=20.h5").read_text() == "not mine"
    for name in ("000_G=0", "001_G=10", "003_G=30"):
        with h5py.File(tmp_path / "seq" / f"{name}.h5") as a, h5py.File(tmp_path / "par" / f"{name}.h5") as b:
            assert b.attrs["status"] == "completed"
            np.testing.assert_array_equal(a["engines/cortex/timeseries"][:],
                                          b["engines/cortex/timeseries"][:])


def test_slurm_mode_writes_an_array_script(tmp_path):
    (tmp_path / "jr.toml").write_text(TINY)
    r = sweep("jr.toml", "--param", "engines.cortex.coupling.G=0:1:3", "--slurm", "--out", "grid",
              "--max-parallel", "2", "--partition", "short", "--time", "10", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "grid" / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-2%2" in text and "#SBATCH --ntasks=1" in text
    assert "#SBATCH --partition=short" in text and "#SBATCH --output=%x-%A_%a.out" in text
    assert f"  {tmp_path}/grid/002_G=1.toml\n)" in text
    assert "# Job array of 3 tasks, one variant each" in text
    assert '"$PYTHON" -m cosim run "$SCENARIO"\n' in text and "srun" not in text.split("VARIANTS")[1]
    assert subprocess.run(["bash", "-n", str(tmp_path / "grid" / "sweep.sbatch")]).returncode == 0
    assert not list((tmp_path / "grid").glob("*.h5"))
