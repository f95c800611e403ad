"""Typed, validated reading of one TOML table, with errors that name file and key.

Each part of a scenario (``[simulation]``, ``[engines.cortex]``, …) is read through a
:class:`Reader`.  Every accessor checks the type and range of one key and raises
:class:`~cosim.errors.CosimError` naming ``file: dotted.key: problem``.  After reading,
:meth:`Reader.done` rejects any key that nobody asked for, so a typo (``durration``)
is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .errors import CosimError

if TYPE_CHECKING:
    from .params import Param

_MISSING = object()


def _typename(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Reader:
    """Reads keys of one table; remembers which keys were read.

    Parameters
    ----------
    table : dict
        The parsed TOML table.
    file : str
        File the table came from (for messages).
    prefix : str
        Dotted path of this table inside the file (``"engines.cortex"``); ``""`` at top level.
    """

    def __init__(self, table: Any, file: str | None, prefix: str = ""):
        if not isinstance(table, dict):
            raise CosimError(f"must be a table, got {_typename(table)} {_show(table)}",
                             file=file, key=prefix or None)
        self.raw = table
        self.file = file
        self.prefix = prefix
        self._seen: set[str] = set()

    # -- helpers -------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """Dotted path of ``name`` in this table."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str | None, reason: str) -> CosimError:
        """A :class:`CosimError` located at key ``name`` of this table (or the table)."""
        return CosimError(reason, file=self.file,
                          key=self.key(name) if name is not None else (self.prefix or None))

    def has(self, name: str) -> bool:
        return name in self.raw

    def keys(self) -> list[str]:
        return list(self.raw.keys())

    def _get(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        if name in self.raw:
            return self.raw[name]
        if default is _MISSING:
            close = difflib.get_close_matches(name, [k for k in self.raw if k not in self._seen],
                                              n=1, cutoff=0.75)
            hint = f"; found {close[0]!r}, a misspelling?" if close else ""
            raise self.error(name, "missing required key" + hint)
        return default

    # -- typed accessors -----------------------------------------------------------------
    def number(self, name: str, default: Any = _MISSING, *, gt: float | None = None,
               ge: float | None = None, lt: float | None = None, le: float | None = None,
               unit: str = "") -> float | None:
        """A finite real number (TOML integer or float), optionally range-checked."""
        value = self._get(name, default)
        if value is None or (value is default and name not in self.raw):
            return value
        return self.check_number(name, value, gt=gt, ge=ge, lt=lt, le=le, unit=unit)

    def check_number(self, name: str, value: Any, *, gt=None, ge=None, lt=None, le=None,
                     unit: str = "") -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"must be a number{' in ' + unit if unit else ''}, "
                                   f"got {_typename(value)} {_show(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise self.error(name, f"must be finite, got {_show(value)}")
        if gt is not None and not value > gt:
            raise self.error(name, f"must be > {gt:g}, got {value:g}")
        if ge is not None and not value >= ge:
            raise self.error(name, f"must be >= {ge:g}, got {value:g}")
        if lt is not None and not value < lt:
            raise self.error(name, f"must be < {lt:g}, got {value:g}")
        if le is not None and not value <= le:
            raise self.error(name, f"must be <= {le:g}, got {value:g}")
        return value

    def integer(self, name: str, default: Any = _MISSING, *, ge: int | None = None,
                le: int | None = None) -> int | None:
        """A TOML integer (not a float, not a boolean), optionally range-checked."""
        value = self._get(name, default)
        if value is None or (value is default and name not in self.raw):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {_typename(value)} {_show(value)}")
        if ge is not None and value < ge:
            raise self.error(name, f"must be >= {ge}, got {value}")
        if le is not None and value > le:
            raise self.error(name, f"must be <= {le}, got {value}")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> bool | None:
        value = self._get(name, default)
        if value is None or (value is default and name not in self.raw):
            return value
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {_typename(value)} {_show(value)}")
        return value

    def string(self, name: str, default: Any = _MISSING, *,
               choices: Sequence[str] | None = None) -> str | None:
        value = self._get(name, default)
        if value is None or (value is default and name not in self.raw):
            return value
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {_typename(value)} {_show(value)}")
        if choices is not None and value not in choices:
            raise self.error(name, f"must be one of {', '.join(map(repr, choices))}, "
                                   f"got {value!r}{_suggest(value, choices)}")
        return value

    def string_list(self, name: str, default: Any = _MISSING) -> list[str] | None:
        value = self._get(name, default)
        if value is None or (value is default and name not in self.raw):
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"must be an array of strings, got {_show(value)}")
        return list(value)

    def number_list(self, name: str, default: Any = _MISSING) -> list[float] | None:
        value = self._get(name, default)
        if value is None or (value is default and name not in self.raw):
            return value
        if not isinstance(value, list):
            raise self.error(name, f"must be an array of numbers, got {_typename(value)} {_show(value)}")
        return [self.check_number(f"{name}[{i}]", v) for i, v in enumerate(value)]

    def table(self, name: str, default: Any = _MISSING) -> "Reader | None":
        """A sub-table as a :class:`Reader` (``default={}`` makes it optional and empty)."""
        value = self._get(name, default)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(name, f"must be a table, got {_typename(value)} {_show(value)}")
        return Reader(value, self.file, self.key(name))

    def any(self, name: str, default: Any = _MISSING) -> Any:
        """The raw value (the caller validates it with :meth:`error`)."""
        return self._get(name, default)

    # -- declared keys -------------------------------------------------------------------
    def param(self, decl: "Param") -> Any:
        """Read the key declared by ``decl`` (:class:`cosim.params.Param`): its type,
        default, bounds, choices and unit all come from the declaration."""
        from .params import REQUIRED

        default = _MISSING if decl.default is REQUIRED else decl.default
        kind = decl.type
        if kind == "number":
            return self.number(decl.name, default, gt=decl.gt, ge=decl.ge, lt=decl.lt,
                               le=decl.le, unit=decl.unit)
        if kind == "integer":
            return self.integer(decl.name, default, ge=_int_bound(decl.ge, decl.gt, +1),
                                le=_int_bound(decl.le, decl.lt, -1))
        if kind == "boolean":
            return self.boolean(decl.name, default)
        if kind == "string":
            return self.string(decl.name, default, choices=decl.choices)
        if kind == "strings":
            return self.string_list(decl.name, default)
        if kind == "numbers":
            return self.number_list(decl.name, default)
        if kind == "table":
            return self.table(decl.name, default)
        return self.any(decl.name, default)

    def params(self, decls: Iterable["Param"]) -> dict[str, Any]:
        """``{name: value}`` of every declaration in ``decls`` (see :meth:`param`)."""
        return {d.name: self.param(d) for d in decls}

    def done(self, allowed_extra: Iterable[str] = ()) -> None:
        """Reject keys that were never read: ``unknown key`` (with a suggestion)."""
        known = self._seen | set(allowed_extra)
        for name in self.raw:
            if name not in known:
                raise self.error(name, "unknown key" + _suggest(name, sorted(known)))


def _int_bound(inclusive, strict, step: int):
    """An integer bound from a declaration's inclusive and strict bounds."""
    if inclusive is not None:
        return int(inclusive)
    if strict is not None:
        return int(math.floor(strict)) + 1 if step > 0 else int(math.ceil(strict)) - 1
    return None


def _suggest(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for a near miss among ``choices``, else ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
