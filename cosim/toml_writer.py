"""A small TOML writer for the data :mod:`tomllib` reads from scenario files.

``tomllib.loads(dumps(d)) == d`` for dicts of strings, booleans, integers, floats (also
inf/nan — compare nan by hand), dates and times, arrays (nested, of inline tables) and
tables.  Tables are written as ``[a.b]`` sections; tables inside arrays as inline tables
(``[{…}, {…}]``), which TOML reads back as the same list of dicts.  Comments and key order
of the file a dict came from are not kept; key order of the dict is.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Mapping

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def dumps(data: Mapping[str, Any], *, header: str = "") -> str:
    """TOML text for ``data``; ``header`` lines are written first as ``#`` comments."""
    out: list[str] = [f"# {line}".rstrip() for line in header.splitlines()]
    _table(data, (), out)
    return "\n".join(out).lstrip("\n") + "\n"


def key(k: str) -> str:
    """A key, bare when it can be, else a quoted string."""
    if not isinstance(k, str):
        raise TypeError(f"TOML keys must be strings, got {type(k).__name__} {k!r}")
    return k if _BARE_KEY.fullmatch(k) else string(k)


def string(s: str) -> str:
    """A basic (double-quoted) TOML string with escapes."""
    parts = []
    for ch in s:
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(ch)
    return '"' + "".join(parts) + '"'


def value(v: Any) -> str:
    """An inline TOML value (anything but a table that is written as a section)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(float(v))  # shortest round-trip form: 0.1, 1e-05, 1.0 (numpy's too)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
    # numpy scalars and the like
    if hasattr(v, "item") and callable(v.item):
        return value(v.item())
    raise TypeError(f"cannot write {type(v).__name__} {v!r} as TOML")


def _table(t: Mapping[str, Any], path: tuple[str, ...], out: list[str]) -> None:
    scalars = [(k, v) for k, v in t.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in t.items() if isinstance(v, Mapping)]
    # A section header is needed for keys of its own, or to keep an empty table.
    if path and (scalars or not tables):
        out.append("")
        out.append("[" + ".".join(key(p) for p in path) + "]")
    for k, v in scalars:
        out.append(f"{key(k)} = {value(v)}")
    for k, v in tables:
        _table(v, path + (k,), out)
