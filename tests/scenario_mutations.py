"""Broken scenarios for the fuzz tests: real scenario files and small variants, each
mutated in one place so that it must be rejected (see ``tests/test_scenario_fuzz.py``).

A *base* is a parsed scenario (``dict``) plus the data files it needs; a *mutation* changes
one key of it (delete, typo in the name, wrong type, out-of-range or non-finite number,
unknown name, extra key) or breaks the TOML text.  Every mutation here is an error by
construction: where a change could be harmless (deleting an optional key, renaming a
user-chosen name) it is not generated.  ``Mutation.path`` is the dotted key it touched,
so a test can check that the error message names it.
"""

from __future__ import annotations

import fnmatch
import math
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosim.toml_writer import dumps

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"

# ---------------------------------------------------------------------------------------
# Bases
# ---------------------------------------------------------------------------------------

WC_CSV = """
[simulation]
duration = 10.0
sync_interval = 1.0
seed = 3
output = "wc.h5"
[connectome]
source = { weights = "w.csv", tract_lengths = "l.csv", labels = "names.txt" }
[engines.wc]
type = "neural_mass"
model = "wilson_cowan"
regions = ["A", "B", "C"]
dt = 0.05
integrator = "stochastic_heun"
coupling_evaluation = "step"
speed = 4.0
[engines.wc.options]
transfer = "erf"
[engines.wc.parameters]
tau_e = 10.0
P_e = { default = 0.5, B = 0.6 }
w_ee = [12.0, 12.5, 13.0]
[engines.wc.coupling]
type = "linear"
G = 0.2
offset = 0.0
[engines.wc.noise]
E = 0.001
[engines.wc.initial]
E = 0.1
random = true
seed = 5
[record]
period = 0.5
flush_every = 3
[record.wc]
variables = ["E", "I"]
[record.wc.average]
period = 2.0
"""

MC_SWC = """
[simulation]
duration = 4.0
sync_interval = 0.5
seed = 11
output = "mc.h5"
[connectome]
source = "c4.npz"
[engines.cells]
type = "multicompartment"
dt = 0.025
celsius = 16.3
v_init = -64.0
spike_threshold = -10.0
[engines.cells.receptors.NMDA]
tau_rise = 2.0
tau_decay = 80.0
e_rev = 0.0
mg = 1.2
[engines.cells.cells.pyr]
n = 6
morphology = "cell.swc"
d_lambda = 0.1
Ra = 120.0
cm = 1.0
detect = "soma[0]"
[engines.cells.cells.pyr.mechanisms]
soma = { hh = { gnabar = 0.12 } }
dend = { pas = { g = 0.0001, e = -65.0 } }
[engines.cells.cells.bas]
n = 3
morphology = "y_shaped"
nseg = 3
[engines.cells.projections.pp]
source = "pyr"
target = "pyr"
indegree = 2
receptors = ["AMPA", "NMDA"]
weights = [0.001, 0.0005]
section = "soma[0]"
x = 0.5
delay = [0.5, 1.5]
autapses = false
stp = { U = 0.4, tau_rec = 500.0, tau_fac = 10.0 }
[engines.cells.projections.bp]
source = "bas"
target = "pyr"
indegree = 1
receptors = ["GABA_A"]
weights = [0.002]
section = "soma[0]"
delay = 1.0
[engines.cells.inputs.drive]
target = "bas"
receptor = "AMPA"
section = "soma"
x = 0.5
weight = 0.001
per_cell = 2
[engines.cells.clamps.kick]
target = "pyr"
cells = [0, 2]
section = "soma[0]"
x = 0.5
delay = 1.0
duration = 2.0
amplitude = 0.3
[engines.cells.probes]
cells = [0, 1]
sections = ["soma[0]"]
x = 0.5
[record]
period = 0.5
[record.cells]
variables = ["spikes", "v"]
[record.cells.rate]
bin = 0.5
"""

JR_SPLIT = """
[simulation]
duration = 20.0
sync_interval = 2.0
seed = 0
output = "jr.h5"
[connectome]
source = "tvb:connectivity_76"
[engines.left]
type = "neural_mass"
model = "jansen_rit"
regions = ["lA1", "lA2", "lV1"]
dt = 0.1
integrator = "rk4"
[engines.left.parameters]
mu = { default = 0.22, lV1 = 0.3 }
[engines.left.coupling]
type = "sigmoidal_jansen_rit"
G = 0.5
cmax = 0.005
[engines.right]
type = "neural_mass"
model = "jansen_rit"
regions = "rest"
dt = 0.1
[record]
period = 1.0
[record.left]
variables = ["y0", "y1", "y2"]
raw = false
[record.left.subsample]
period = 2.0
[record.left.eeg]
period = 4.0
[record.right.rate]
period = 2.0
[record.right.bold]
tr = 10.0
step = 1.0
"""


def write_data_files(folder: Path) -> None:
    """The data files the variant bases read (3-region CSV, 4-region npz, an SWC cell)."""
    w = np.array([[0, 0.5, 0.2], [0.3, 0, 0.1], [0.4, 0.6, 0]])
    L = np.array([[0, 12.0, 30], [12, 0, 21], [30, 21, 0]])
    np.savetxt(folder / "w.csv", w, delimiter=",")
    np.savetxt(folder / "l.csv", L, delimiter=",")
    (folder / "names.txt").write_text("A\nB\nC\n")
    np.savez(folder / "c4.npz", weights=np.ones((4, 4)) - np.eye(4),
             tract_lengths=np.full((4, 4), 20.0), region_labels=np.array(["p", "q", "r", "s"]))
    shutil.copy(DATA / "mc_three_point_soma.swc", folder / "cell.swc")


def bases() -> dict[str, dict]:
    """name → parsed scenario: every ``scenarios/*.toml`` and the variants above."""
    out = {}
    for p in sorted((REPO / "scenarios").glob("*.toml")):
        out[p.stem] = tomllib.loads(p.read_text())
    out["wc_csv"] = tomllib.loads(WC_CSV)
    out["mc_swc"] = tomllib.loads(MC_SWC)
    out["jr_split"] = tomllib.loads(JR_SPLIT)
    return out


# ---------------------------------------------------------------------------------------
# Paths and mutations
# ---------------------------------------------------------------------------------------

#: Tables whose keys are names the user chooses: renaming one is not an error.
FREE_NAMES = ["engines", "engines.*.cells", "engines.*.projections", "engines.*.inputs",
              "engines.*.clamps", "engines.*.receptors", "adapters", "stimuli"]

#: Keys whose deletion must be an error (glob patterns on dotted paths).
REQUIRED = ["simulation", "simulation.duration", "simulation.sync_interval", "connectome",
            "connectome.source", "connectome.source.weights", "connectome.source.tract_lengths",
            "engines", "engines.*", "engines.*.type", "engines.*.model", "engines.*.cells",
            "engines.*.cells.*", "engines.*.cells.*.n",
            "engines.*.projections.*.source", "engines.*.projections.*.target",
            "engines.*.projections.*.indegree", "engines.*.projections.*.receptors",
            "engines.*.projections.*.weights", "engines.*.projections.*.stp.U",
            "engines.*.inputs.*.target", "engines.*.inputs.*.weight",
            "engines.*.clamps.*.target", "engines.*.clamps.*.duration",
            "engines.*.clamps.*.amplitude", "engines.*.probes.cells",
            "adapters.*.type", "adapters.*.engine", "adapters.*.input",
            "record.*.rate.bin", "stimuli.*.engine", "stimuli.*.target", "stimuli.*.temporal",
            "stimuli.*.temporal.type", "stimuli.*.temporal.amplitude",
            "stimuli.*.temporal.period", "stimuli.*.temporal.width",
            "stimuli.*.temporal.duration", "stimuli.*.temporal.frequency",
            "stimuli.*.temporal.file"]
#: ... and, in scenarios with adapters, the spiking engine's region and the inputs they feed.
REQUIRED_WITH_ADAPTERS = ["engines.*.region", "engines.*.inputs.*"]

#: Strings that may hold any text (changing them is not an error).
FREE_STRINGS = ["simulation.output", "record.*.eeg.unit"]

#: Out-of-range values per numeric key (besides NaN and ±inf, which every number refuses).
OUT_OF_RANGE = {
    "simulation.duration": [0, -10.0, 0.3],
    "simulation.sync_interval": [0, -1.0, 1e300, 0.3],
    "simulation.seed": [-1, -(2 ** 62)],
    "engines.*.dt": [0, -0.1, 1e300, 0.07],
    "engines.*.speed": [0, -3.0],
    "engines.*.celsius": [-300.0, 7000.0],
    "engines.*.noise.*": [-0.1],
    "engines.*.initial.seed": [-1],
    "engines.*.cells.*.n": [0, -2],
    "engines.*.cells.*.nseg": [0],
    "engines.*.cells.*.d_lambda": [0, -0.1],
    "engines.*.cells.*.Ra": [0, -1.0],
    "engines.*.cells.*.cm": [0, -1.0],
    "engines.*.receptors.*.tau_rise": [0, -1.0],
    "engines.*.receptors.*.tau_decay": [0, -1.0],
    "engines.*.receptors.*.mg": [-1.0],
    "engines.*.projections.*.indegree": [-1, 10 ** 6],
    "engines.*.projections.*.weights.*": [-0.001],
    "engines.*.projections.*.x": [-0.1, 1.5],
    "engines.*.projections.*.delay": [0, -1.0, 0.001],
    "engines.*.projections.*.delay.*": [0, -1.0],
    "engines.*.projections.*.stp.U": [0, 1.5],
    "engines.*.projections.*.stp.tau_rec": [-1.0],
    "engines.*.projections.*.stp.tau_fac": [-1.0],
    "engines.*.inputs.*.weight": [-1.0],
    "engines.*.inputs.*.x": [2.0],
    "engines.*.inputs.*.per_cell": [0],
    "engines.*.clamps.*.duration": [0, -1.0],
    "engines.*.clamps.*.delay": [-1.0],
    "engines.*.clamps.*.x": [1.5],
    "engines.*.clamps.*.cells.*": [-1, 999, 0.5],
    "engines.*.probes.cells.*": [-1, 999, 0.5],
    "engines.*.probes.x": [1.5],
    "record.period": [0, -1.0, 0.07],
    "record.flush_every": [0],
    "record.*.*.period": [0, -1.0, 0.3],
    "record.*.rate.bin": [0, -1.0],
    "record.*.bold.tr": [0, -1.0],
    "record.*.bold.step": [-1.0],
    "adapters.*.correlation": [-0.1, 1.5],
    "adapters.*.tau": [0, -5.0],
    "stimuli.*.temporal.onset": [-1.0],
    "stimuli.*.temporal.period": [0, -1.0],
    "stimuli.*.temporal.width": [0, -1.0],
    "stimuli.*.temporal.duration": [0, -1.0],
    "stimuli.*.temporal.frequency": [0, -1.0],
    "stimuli.*.temporal.stop": [0, -1.0],
    "stimuli.*.x": [-0.1, 1.5],
}

#: Typed replacements: each is refused wherever a value of the original type is expected.
WRONG_TYPE = {
    bool: ["yes", 1],
    int: ["fast", "nan", "1e400", True, ""],
    float: ["fast", "nan", "inf", "0.1 ms", True],
    str: [7, False, [1, 2]],
    list: ["x", False],
    dict: ["oops", True],
}

#: Any number a scenario holds refuses these.
NON_FINITE = [math.nan, math.inf, -math.inf]


def dotted(path: tuple) -> str:
    """``("engines", "v1", "delay", 0)`` → ``"engines.v1.delay.0"`` (for pattern matching)."""
    return ".".join(str(p) for p in path)


def matches(path: tuple, patterns) -> bool:
    d = dotted(path)
    return any(fnmatch.fnmatchcase(d, p) and d.count(".") == p.count(".") for p in patterns)


def walk(data: Any, path: tuple = ()):
    """Every ``(path, value)`` below ``data`` (tables, arrays and their elements)."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield path + (k,), v
            yield from walk(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield path + (i,), v
            yield from walk(v, path + (i,))


def get(data, path):
    for p in path:
        data = data[p]
    return data


def parent_is_free(path: tuple) -> bool:
    return matches(path[:-1], FREE_NAMES)


@dataclass(frozen=True)
class Mutation:
    kind: str
    path: tuple
    value: Any = None

    def apply(self, data: dict) -> dict:
        import copy
        d = copy.deepcopy(data)
        if self.kind in ("garbage", "non_utf8"):
            return d
        if self.kind == "add":
            get(d, self.path)[self.value] = 1
            return d
        *head, last = self.path
        parent = get(d, head)
        if self.kind == "delete":
            del parent[last]
        elif self.kind == "rename":
            parent[self.value] = parent.pop(last)
        else:                                    # retype, range, name: set a value
            parent[last] = self.value
        return d

    def describe(self) -> str:
        return f"{self.kind} {dotted(self.path)} {self.value!r}"


def typos(name: str) -> list[str]:
    """Misspellings of ``name``: a doubled letter, a dropped letter, swapped letters."""
    out = [name[:1] + name[:1] + name[1:], name + "s" if not name.endswith("s") else name[:-1] + "z"]
    if len(name) >= 4:
        out.append(name[:2] + name[3:])
        out.append(name[:1] + name[2] + name[1] + name[3:])
    return [t for t in out if t != name]


def _engine_deletable(path: tuple, data: dict) -> bool:
    """Deleting one of several engines that nothing refers to (no adapter, no stimulus)
    leaves a valid scenario: the others cover the brain (``regions = "rest"``)."""
    if len(path) != 2 or path[0] != "engines" or len(data.get("engines", {})) < 2:
        return False
    refs = [t.get("engine") for sec in ("adapters", "stimuli")
            for t in data.get(sec, {}).values() if isinstance(t, dict)]
    return path[1] not in refs


def candidates(name: str, data: dict) -> list[Mutation]:
    """Every mutation of base ``name`` (``data``) that must make it invalid."""
    out: list[Mutation] = []
    required = REQUIRED + (REQUIRED_WITH_ADAPTERS if "adapters" in data else [])
    for path, value in walk(data):
        is_key = isinstance(path[-1], str)
        if is_key and matches(path, required) and not _engine_deletable(path, data):
            out.append(Mutation("delete", path))
        if is_key and not parent_is_free(path):
            parent = get(data, path[:-1])
            for t in typos(path[-1]):
                if t not in parent:
                    out.append(Mutation("rename", path, t))
        if isinstance(value, dict):
            out.append(Mutation("add", path, "colour" if "colour" not in value else "colour2"))
        kind = type(value)
        for bad in WRONG_TYPE.get(kind, []):
            out.append(Mutation("retype", path, bad))
        if kind in (int, float):
            for bad in NON_FINITE + [v for pat, vs in OUT_OF_RANGE.items()
                                     if matches(path, [pat]) for v in vs]:
                out.append(Mutation("range", path, bad))
        if kind is str and not matches(path, FREE_STRINGS):
            out.append(Mutation("name", path, value + "X"))
            if value:
                out.append(Mutation("name", path, value[:-1]))
    out.append(Mutation("add", (), "colour"))
    out.append(Mutation("garbage", ()))
    out.append(Mutation("non_utf8", ()))
    if name == "default":           # the sync step above rV1's shortest fibre (9.8 ms)
        for sync in (10.0, 20.0, 40.0):
            out.append(Mutation("range", ("simulation", "sync_interval"), sync))
    return out


def scenario_bytes(m: Mutation, data: dict) -> bytes:
    """The text of the mutated scenario, as the file's bytes."""
    text = dumps(m.apply(data))
    if m.kind == "garbage":
        lines = text.splitlines()
        lines.insert(len(lines) // 2, "= = broken")
        return "\n".join(lines).encode()
    if m.kind == "non_utf8":
        return text.encode() + b"\n# \xff\xfe\n"
    return text.encode()
