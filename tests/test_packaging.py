"""Packaging and the small commands around it: a distribution name of our own, install lines
that work from a checkout, ``cosim --version``, ``cosim regions``, region-name suggestions."""

from __future__ import annotations

import re
import tomllib

import pytest

import cosim
from _util import REPO, run_cli
from cosim.connectome import load_connectome
from cosim.region_names import closest, normalise
from scenarios import neural_mass, scenario_text, simulation

#: PyPI projects whose names a user might type for cosim; none of them is this project
OTHER_PROJECTS = {"cosim", "cosimulation"}


def test_distribution_name_is_not_an_unrelated_pypi_project():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["name"] == cosim.DISTRIBUTION == "brain-cosim"
    assert meta["name"].lower() not in OTHER_PROJECTS
    assert "version" in meta["dynamic"]                   # read from cosim.__version__
    assert meta["scripts"]["cosim"] == "cosim.cli:main"


@pytest.mark.parametrize("doc", ["README.md", "slurm/README.md"])
def test_every_install_line_installs_this_checkout(doc):
    """No command tells a user to ``pip install cosim`` (a stranger's package): every ``pip
    install`` in a code block installs the checkout (``.``, ``-e .``, with extras) or names a third-party
    package that is not cosim."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", (REPO / doc).read_text(), flags=re.S)
    lines = [ln for b in blocks for ln in b.splitlines() if "pip install" in ln]
    assert lines
    for ln in lines:
        for cmd in re.findall(r"pip install ([^&#|;`)]*)", ln):
            args = [a.strip("\"'") for a in cmd.split() if not a.startswith("-")]
            for a in args:
                name = re.split(r"[\[<>=]", a)[0].lower()
                assert name not in OTHER_PROJECTS, f"{doc}: {ln}"
                if "[" in a:
                    extras = re.findall(r"\[([^\]]*)\]", a)[0].split(",")
                    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
                        "optional-dependencies"]
                    assert set(extras) <= set(declared), f"{doc}: {ln}"
                assert name in {"", ".", "mpi4py", "matplotlib"}, f"{doc}: {ln}"


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cosim {cosim.__version__}"


def test_regions_lists_the_connectome_labels():
    r = run_cli("regions", "tvb:connectivity_76")
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines()]
    labels = load_connectome("tvb:connectivity_76").region_labels
    assert [(int(i), lab) for i, lab in rows] == list(enumerate(labels))
    r = run_cli("regions", "no_such.npz")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_region_names_normalise_case_and_hemisphere():
    assert normalise("M1_left") == normalise("lM1") == normalise("Left-M1") == ("l", "m1")
    assert normalise("rV1") == normalise("v1 RH") == ("r", "v1")
    labels = load_connectome("tvb:connectivity_76").region_labels
    assert closest("M1_left", labels)[0] == "lM1"
    assert closest("V1_right", labels)[0] == "rV1"
    assert closest("lm1", labels) == ["lM1"]
    assert set(closest("v1", labels)[:2]) == {"lV1", "rV1"}


def test_a_misspelt_region_suggests_the_closest_label(tmp_path):
    (tmp_path / "s.toml").write_text(scenario_text(
        simulation(duration=10.0), engines={"cortex": neural_mass(regions=["lV1", "M1_left"])}))
    r = run_cli("validate", "s.toml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "unknown region 'M1_left'" in r.stderr and "did you mean 'lM1'?" in r.stderr
