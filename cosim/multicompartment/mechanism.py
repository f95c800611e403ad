"""The mechanism layer: what a membrane mechanism declares, and the catalogue of them.

A :class:`Mechanism` declares its parameters (units, defaults), its states, the ions it
reads and writes, its currents and its state update — here as the syntax tree of an
NMODL file (:mod:`.nmodl`).  :mod:`.codegen` turns any set of mechanisms into numba
kernels; the cable solver (:mod:`.cable`) takes them through its ``mechs``/``ions``
hooks without being edited.

``hh`` and ``pas`` stay the built-in fast path of :mod:`.channels` (its kernel is
unchanged, so results of hh/pas models are bit for bit the earlier ones); every other
mechanism goes through this layer, beside them in the same kernel.

Ions (NEURON's conventions and defaults): a node's ion ``x`` has a reversal potential
``ex`` (mV), a current density ``ix`` (mA/cm², summed over the mechanisms writing it at
each step), and concentrations ``xi``/``xo`` (mM).  Where a mechanism writes ``xi`` or
``xo`` (a calcium pool), ``ex`` is the Nernst potential of the concentrations, computed
at initialisation and before every current evaluation; elsewhere ``ex`` is the fixed
value.  Nernst: ``e = 1000·R·(celsius + 273.15)/(z·F) · ln(co/ci)`` with CODATA 2018
R and F (NEURON 9's units).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CosimError
from ..params import Param
from .channels import MECHANISMS as BUILTIN
from .nmodl import FARADAY, GAS_CONSTANT, SPECIAL, ModFile, NmodlError, parse_file

#: NEURON's default ion values: reversal potential (mV), inside and outside
#: concentrations (mM), valence.
ION_DEFAULTS = {
    "na": {"e": 50.0, "ci": 10.0, "co": 140.0, "z": 1.0},
    "k": {"e": -77.0, "ci": 54.4, "co": 2.5, "z": 1.0},
    "ca": {"e": 132.4579341637009, "ci": 5e-5, "co": 2.0, "z": 2.0},
}
#: Rows of a node's ion array: reversal potential, current density, concentrations, and
#: whether the reversal potential follows the concentrations (1.0) or is fixed (0.0).
ION_E, ION_I, ION_CI, ION_CO, ION_NERNST, ION_DIDV = range(6)
ION_ROWS = 6


def nernst(ci: float, co: float, z: float, celsius: float) -> float:
    """Nernst potential (mV), NEURON's ``nrn_nernst``."""
    if z == 0:
        return 0.0
    if ci <= 0:
        return 1e6
    if co <= 0:
        return -1e6
    return 1000.0 * GAS_CONSTANT * (celsius + 273.15) / FARADAY / z * math.log(co / ci)


@dataclass
class Mechanism:
    """A density mechanism or point process read from a ``.mod`` file (see the module
    docstring)."""

    name: str
    path: str
    params: tuple[Param, ...]
    states: tuple[str, ...]
    assigned: tuple[str, ...]
    ions: dict[str, dict]             # ion -> {"read": set, "write": set, "valence": z}
    currents: tuple[str, ...]         # written ion currents and nonspecific currents
    mod: ModFile = field(repr=False)
    doc: str = ""

    @property
    def point(self) -> bool:
        """A point process (a synapse): currents in nA, events through NET_RECEIVE."""
        return self.mod.point

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}

    def ion_var(self, name: str) -> tuple[str, int] | None:
        """``(ion, row)`` if ``name`` is a variable of an ion this mechanism uses."""
        for ion in self.ions:
            for row, n in ((ION_E, f"e{ion}"), (ION_I, f"i{ion}"), (ION_CI, f"{ion}i"),
                           (ION_CO, f"{ion}o")):
                if n == name:
                    return ion, row
        return None

    @property
    def writes_concentration(self) -> set[str]:
        """Ions whose concentration this mechanism writes."""
        return {ion for ion, u in self.ions.items()
                if f"{ion}i" in u["write"] or f"{ion}o" in u["write"]}


def mechanism_from_mod(mod: ModFile) -> Mechanism:
    """Classify the names of a parsed file; refuse what the kernels cannot do."""
    path = mod.path

    def fail(reason, line):
        return NmodlError(reason, path=path, line=line)

    ions: dict[str, dict] = {}
    ion_vars: set[str] = set()
    for ion, u in mod.ions.items():
        z = u["valence"] if u["valence"] is not None else ION_DEFAULTS.get(ion, {}).get("z")
        if z is None:
            raise fail(f"USEION {ion}: an ion cosim does not know needs VALENCE", mod.suffix_line)
        names = {f"e{ion}", f"i{ion}", f"{ion}i", f"{ion}o"}
        for n in list(u["read"]) + list(u["write"]):
            if n not in names:
                raise fail(f"USEION {ion}: {n!r} is not a variable of ion {ion}", mod.suffix_line)
        if f"e{ion}" in u["write"]:
            raise fail(f"USEION {ion} WRITE e{ion} is not supported", mod.suffix_line)
        ions[ion] = {"read": set(u["read"]), "write": set(u["write"]), "valence": float(z)}
        ion_vars |= set(u["read"]) | set(u["write"])
    if mod.point and mod.ions:
        raise fail("USEION in a POINT_PROCESS is not supported (point-process currents are "
                   "NONSPECIFIC_CURRENT in nA)", mod.suffix_line)
    if mod.net_receive is not None and not mod.point:
        raise fail("NET_RECEIVE needs a POINT_PROCESS", mod.net_receive.line)
    consts = set(mod.constants)
    params = []
    seen: set[str] = set()
    for name, value, unit, line in mod.parameters:
        if name in seen:
            raise fail(f"{name!r} declared twice", line)
        seen.add(name)
        if name in SPECIAL or name in ion_vars or name in ("diam", "area"):
            if name in ("diam", "area"):
                raise fail(f"the section variable {name!r} is not supported", line)
            continue
        params.append(Param(name, 0.0 if value is None else float(value), unit,
                            f"{mod.suffix} parameter"))
    states, assigned = [], []
    for name, unit, line in mod.states:
        if name in seen:
            raise fail(f"{name!r} declared twice", line)
        seen.add(name)
        if name in ion_vars:
            continue
        states.append(name)
    for name, unit, line in mod.assigned:
        if name in seen:
            raise fail(f"{name!r} declared twice", line)
        seen.add(name)
        if name in SPECIAL or name in ion_vars:
            continue
        if name in ("diam", "area"):
            raise fail(f"the section variable {name!r} is not supported", line)
        assigned.append(name)
    currents = []
    for ion, u in ions.items():
        if f"i{ion}" in u["write"]:
            currents.append(f"i{ion}")
    for n in mod.nonspecific:
        if n not in assigned:
            raise fail(f"NONSPECIFIC_CURRENT {n} must be declared in ASSIGNED", mod.suffix_line)
        currents.append(n)
    for n in mod.range_names + mod.global_names:
        if n not in seen and n not in ion_vars:
            raise fail(f"RANGE/GLOBAL {n} is not declared in PARAMETER, ASSIGNED or STATE",
                       mod.suffix_line)
    for n in consts & seen:
        raise fail(f"{n!r} is both a UNITS constant and a variable", mod.suffix_line)
    return Mechanism(mod.suffix, path, tuple(params), tuple(states), tuple(assigned), ions,
                     tuple(currents), mod, mod.title_comment)


def load_mechanism(path: str | os.PathLike) -> Mechanism:
    """Read and check one ``.mod`` file (kernels are generated later, see :mod:`.codegen`)."""
    mech = mechanism_from_mod(parse_file(path))
    from .codegen import check_mechanism
    check_mechanism(mech)
    return mech


class Catalogue:
    """The mechanisms a model may insert: the built-ins ``hh`` and ``pas`` and those read
    from ``.mod`` files, in load order (which is the order NEURON's ``nrnivmodl`` gives
    them: files sorted by name)."""

    def __init__(self, mechanisms: list[Mechanism] = ()):
        self.mechanisms: dict[str, Mechanism] = {}
        for m in mechanisms:
            self.add(m)

    def add(self, mech: Mechanism) -> None:
        if mech.name in BUILTIN:
            raise NmodlError(f"SUFFIX {mech.name} clashes with the built-in mechanism "
                             f"{mech.name!r}", path=mech.path, line=mech.mod.suffix_line)
        if mech.name in self.mechanisms:
            raise NmodlError(f"SUFFIX {mech.name} is also defined in "
                             f"{os.path.basename(self.mechanisms[mech.name].path)}",
                             path=mech.path, line=mech.mod.suffix_line)
        self.mechanisms[mech.name] = mech

    @classmethod
    def from_paths(cls, paths: list[str | os.PathLike]) -> "Catalogue":
        """``.mod`` files, or folders of them (every ``*.mod``), read in name order."""
        files: list[Path] = []
        for p in paths:
            p = Path(p)
            if p.is_dir():
                files.extend(sorted(q for q in p.iterdir() if q.suffix == ".mod"))
            elif p.is_file():
                files.append(p)
            else:
                raise CosimError(f"mechanism file or folder {os.fspath(p)!r} not found")
        files.sort(key=lambda q: q.name)
        return cls([load_mechanism(f) for f in files])

    @property
    def names(self) -> list[str]:
        return list(BUILTIN) + list(self.mechanisms)

    def params(self, name: str) -> tuple[Param, ...]:
        if name in BUILTIN:
            return BUILTIN[name]
        if name in self.mechanisms:
            return self.mechanisms[name].params
        raise CosimError(f"unknown mechanism {name!r}; known: {', '.join(self.names)}")

    def defaults(self, name: str) -> dict[str, float]:
        return {p.name: p.default for p in self.params(name)}

    def __contains__(self, name: str) -> bool:
        return name in BUILTIN or name in self.mechanisms

    def order(self, name: str) -> int:
        return list(self.mechanisms).index(name)


#: The catalogue of the built-in mechanisms only.
BUILTIN_CATALOGUE = Catalogue()


def shipped_mod_dir() -> Path:
    """The folder of the cortical mechanisms shipped with cosim."""
    return Path(__file__).parent / "mod"
