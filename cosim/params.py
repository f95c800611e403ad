"""Parameter declarations: every scenario key is declared once, here-shaped.

A :class:`Param` says everything there is to know about one key — name, default, unit,
bounds or choices, type and a one-line doc — in the manner of TVB's
``NArray(default, domain=Range(lo, hi), doc)``.  The scenario :class:`~cosim.schema.Reader`
reads a key *from* its declaration (``reader.param(DT)``), so the reader call, the
validation, constructor defaults (``dt_ms: float = DT.default``), ``cosim describe`` and
the generated ``docs/scenario.md`` all derive from the one declaration.

A :class:`Section` groups the declarations of one scenario table (``[simulation]``,
``[engines.<name>]`` of one engine type, ``[record.<engine>.bold]`` …) with its sub-tables;
it is what ``cosim describe`` prints.

Declaring and reading, for an engine type::

    DT = Param("dt", 0.1, "ms", "integration step", gt=0)
    METHOD = Param("integrator", "heun", doc="time-stepping scheme", type="string",
                   choices=("heun", "rk4"))
    SECTION = Section("engines.<name>", "my engine", (DT, METHOD))

    def read(reader):
        return reader.params(SECTION.params)     # {"dt": 0.1, "integrator": "heun"}
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


class _Required:
    """Default of a key that a scenario must set."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a key without default (the scenario must give it).
REQUIRED: Any = _Required()

#: Value types of a declaration (:meth:`cosim.schema.Reader.param` reads each).
TYPES = ("number", "integer", "boolean", "string", "strings", "numbers", "table", "any")


@dataclass(frozen=True)
class Param:
    """The one declaration of a parameter.

    ``default``: :data:`REQUIRED` when the scenario must set it, ``None`` when absent means
    "not set" (the owner derives a value; ``derived`` says how); ``unit``: physical unit
    (``""`` for a dimensionless number or a non-number); ``gt/ge/lt/le``: bounds of a
    number or integer; ``choices``: allowed strings; ``type``: one of :data:`TYPES`.
    """

    name: str
    default: Any = REQUIRED
    unit: str = ""
    doc: str = ""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    type: str = "number"
    derived: str = ""

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"{self.name}: unknown parameter type {self.type!r}")
        if self.choices is not None and self.type != "string":
            raise ValueError(f"{self.name}: choices need type 'string'")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def with_(self, **changes) -> "Param":
        """A copy with some fields changed (e.g. another default for one owner)."""
        return dataclasses.replace(self, **changes)

    def violation(self, value: float) -> str | None:
        """Why the number ``value`` breaks this declaration's bounds (``None``: it does not);
        phrased like the scenario reader's errors."""
        checks = ((">", self.gt, operator.gt), (">=", self.ge, operator.ge),
                  ("<", self.lt, operator.lt), ("<=", self.le, operator.le))
        for op, bound, ok in checks:
            if bound is not None and not ok(value, bound):
                return f"must be {op} {bound:g}, got {value:g}"
        return None

    # -- text for describe / docs ---------------------------------------------------------
    def bounds_text(self) -> str:
        """``> 0, <= 1e+09`` or ``one of 'a', 'b'`` (``""`` when unconstrained)."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        parts = [f"{op} {_num(v)}" for op, v in ((">", self.gt), (">=", self.ge),
                                                 ("<", self.lt), ("<=", self.le))
                 if v is not None]
        return ", ".join(parts)

    def default_text(self) -> str:
        if self.required:
            return "required"
        if self.default is None:
            return self.derived or "unset"
        return show_value(self.default)


def _num(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def show_value(value: Any) -> str:
    """A value as it is written in TOML (``true``, ``"heun"``, ``3``, ``0.1``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Section:
    """The declarations of one scenario table and its sub-tables.

    ``key``: where the table lives (``"engines.<name>.cells.<group>"``, placeholders in
    angle brackets); ``doc``: what it describes; ``params``: its keys; ``tables``: nested
    sections; ``open``: the table also takes keys not declared here (``doc`` says which,
    e.g. any model parameter).
    """

    key: str
    doc: str
    params: tuple[Param, ...] = ()
    tables: tuple["Section", ...] = ()
    open: bool = False

    def __post_init__(self):
        names = [p.name for p in self.params]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"{self.key}: parameters declared twice: {sorted(dup)}")

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def table(self, key_suffix: str) -> "Section":
        """The sub-section whose key ends with ``key_suffix``."""
        for t in self.tables:
            if t.key.endswith(key_suffix):
                return t
        raise KeyError(key_suffix)

    def walk(self) -> Iterable["Section"]:
        """This section and every nested one, depth first."""
        yield self
        for t in self.tables:
            yield from t.walk()


def section(key: str, doc: str, params: Sequence[Param] = (), tables: Sequence[Section] = (),
            open: bool = False) -> Section:
    """:class:`Section` from lists (a convenience for declarations)."""
    return Section(key, doc, tuple(params), tuple(tables), open)
