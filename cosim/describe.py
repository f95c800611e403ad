"""``cosim describe KIND [NAME]`` and the generated scenario reference ``docs/scenario.md``.

Both print the parameter declarations (:mod:`cosim.params`) — nothing here repeats a
default, unit or bound::

    cosim describe simulation              # [simulation]  (also: connectome, record)
    cosim describe engine neural_mass      # [engines.<name>] of that type, with sub-tables
    cosim describe model jansen_rit        # parameters, state variables, observables
    cosim describe coupling linear
    cosim describe monitor bold            # [record.<engine>.bold]
    cosim describe adapter rate_to_poisson
    cosim describe stimulus pulse_train    # [stimuli.<name>] with that temporal pattern
    cosim describe fit [target]            # the keys of a fit description (cosim fit)
    cosim describe --markdown              # the whole reference (docs/scenario.md)
    python -m cosim.describe --markdown > docs/scenario.md

Without NAME every declaration of that kind is printed.  An unknown kind or name is a
:class:`~cosim.errors.CosimError` naming the known ones (exit code 2 from the CLI).
"""

from __future__ import annotations

import difflib
import re
import sys
from typing import Callable, Iterable

from .errors import CosimError
from .params import Param, Section, show_value

#: Parameter declarations of each engine type: ``module:attribute`` of its Section.
#: (An engine type registered elsewhere may carry its own as the class attribute
#: ``parameters``, a :class:`~cosim.params.Section`.)


# -- what there is to describe ---------------------------------------------------------------

def engine_section(type_name: str) -> Section:
    """The declarations of engine type ``type_name`` (its class's ``parameters``)."""
    from .engines import engine_class

    sec = engine_class(type_name).parameters
    if not isinstance(sec, Section):
        raise CosimError(f"engine type {type_name!r} declares no parameters")
    return sec


def _engines() -> dict[str, Callable[[], Section]]:
    from .engines import engine_types

    return {t: (lambda t=t: engine_section(t)) for t in engine_types()}


def _models():
    from .models import MODELS

    return MODELS


def _couplings():
    from .coupling import COUPLINGS

    return COUPLINGS


def _monitors():
    from .monitor_params import MONITORS

    return MONITORS


def _adapters():
    from adapters.config import ADAPTERS

    return ADAPTERS


def _stimuli() -> dict[str, Section]:
    """Temporal pattern type → ``[stimuli.<name>]`` with that ``temporal`` table."""
    from .stimuli import STIMULUS
    from .stimulus_patterns import SECTIONS

    return {t: Section(STIMULUS.key, STIMULUS.doc, STIMULUS.params, (sec,))
            for t, sec in SECTIONS.items()}


def _framework(name: str) -> Section:
    from . import scenario_params as sp

    return {"simulation": sp.SIMULATION, "connectome": sp.CONNECTOME, "record": sp.RECORD}[name]


#: kind → (names → object) ; the framework tables have no names.
KINDS: dict[str, Callable[[], dict] | None] = {
    "simulation": None, "connectome": None, "record": None,
    "engine": lambda: _engines(), "model": _models, "coupling": _couplings,
    "monitor": _monitors, "adapter": _adapters, "stimulus": _stimuli,
    "fit": lambda: _fit_sections(),
}


def _fit_sections():
    from .fitting.declarations import SECTIONS

    return SECTIONS


def _unknown(what: str, word: str, known: Iterable[str]) -> CosimError:
    known = list(known)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return CosimError(f"unknown {what} {word!r}{hint} (known: {', '.join(known)})")


# -- plain text ------------------------------------------------------------------------------

def _rows(params: Iterable[Param]) -> list[tuple[str, ...]]:
    return [(p.name, _default(p), p.unit or "-", p.bounds_text() or "-", p.doc)
            for p in params]


def _default(p: Param) -> str:
    text = p.default_text()
    return f"{text} ({p.derived})" if p.derived and p.default is not None else text


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1]
            for r in rows]


def section_text(sec: Section) -> list[str]:
    """Lines describing ``sec`` and its sub-tables."""
    out = []
    for s in sec.walk():
        out.append(f"[{s.key}]  {s.doc}")
        out += _table(_rows(s.params))
        out.append("")
    return out


def _first_line(doc: str) -> str:
    return next((ln.strip() for ln in (doc or "").splitlines() if ln.strip()), "")


def model_text(m) -> list[str]:
    out = [f"model {m.name!r}: {_first_line(m.doc)}"]
    if m.reference:
        out.append(f"  reference: {m.reference}")
    out.append(f"  coupling variables: {', '.join(m.coupling_variables)}; default coupling: "
               f"{m.default_coupling}")
    out.append("parameters ([engines.<name>.parameters]):")
    out += _table(_rows(m.parameters))
    out.append("state variables ([engines.<name>.initial], [engines.<name>.noise], "
               "[record.<engine>] variables):")
    out += _table([(v.name, show_value(float(v.initial)), v.unit or "-",
                    f"random in [{v.range[0]:g}, {v.range[1]:g}]", v.doc)
                   for v in m.state_variables])
    if m.options:
        out.append("options ([engines.<name>.options]):")
        out += _table(_rows(m.options))
    if m.observables:
        out.append("observables (monitors read them):")
        for name, obs in m.observables.items():
            what = obs.formula or ("the variable " + obs.variables[0])
            out.append(f"  {name}: {obs.doc} [{obs.unit or 'unit of ' + obs.variables[0]}] "
                       f"= {what}")
            out += _table(_rows(obs.parameters), indent="    ")
    out.append("")
    return out


def coupling_text(c) -> list[str]:
    out = [f"coupling {c.name!r} ([engines.<name>.coupling] type = \"{c.name}\"): {c.doc}"]
    out += _table(_rows(c.parameters))
    out.append("")
    return out


def describe(kind: str | None, name: str | None = None) -> str:
    """The text ``cosim describe KIND [NAME]`` prints."""
    if kind is None:
        return "kinds: " + ", ".join(KINDS) + "\n"
    if kind not in KINDS:
        raise _unknown("kind", kind, KINDS)
    lookup = KINDS[kind]
    if lookup is None:
        if name is not None:
            raise CosimError(f"[{kind}] has no names; use: cosim describe {kind}")
        lines = section_text(_framework(kind))
        if kind == "record":
            from .monitor_params import MONITORS, RECORD_ENGINE

            lines += section_text(Section(RECORD_ENGINE.key, RECORD_ENGINE.doc + "; monitors "
                                          "(cosim describe monitor NAME): " + ", ".join(MONITORS),
                                          RECORD_ENGINE.params))
        return "\n".join(lines)
    table = lookup()
    if name is not None and name not in table:
        raise _unknown(kind, name, table)
    names = [name] if name is not None else list(table)
    lines: list[str] = []
    for n in names:
        obj = table[n]
        if kind == "model":
            lines += model_text(obj)
        elif kind == "coupling":
            lines += coupling_text(obj)
        else:
            sec = obj() if callable(obj) else obj
            lines += section_text(sec)
    return "\n".join(lines)


def models_text() -> str:
    """``cosim models``: one line per model."""
    rows = [(m.name, ", ".join(m.state_names), _first_line(m.doc)) for m in _models().values()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a.ljust(w0)}  {b.ljust(w1)}  {c}" for a, b, c in rows) + "\n"


# -- markdown --------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    """Text for a markdown cell or paragraph (``<name>`` would be read as an HTML tag)."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text.replace("|", "\\|"))


def _md_table(rows: list[tuple[str, ...]], head=("key", "default", "unit", "allowed", "meaning")):
    if not rows:
        return []
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"`{r[0]}`"] + [_md_escape(c) for c in r[1:]]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _md_rows(params: Iterable[Param]) -> list[tuple[str, ...]]:
    """Like :func:`_rows`; a default that is a TOML value is shown as code."""
    rows = []
    for p, r in zip(params, _rows(params)):
        value = not (p.required or p.default is None)
        d = r[1]
        if value:
            d = f"`{show_value(p.default)}`" + (f" ({p.derived})" if p.derived else "")
        rows.append((r[0], d) + r[2:])
    return rows


def _md_section(sec: Section, level: int = 3) -> list[str]:
    out = []
    for s in sec.walk():
        out += [f"{'#' * level} `[{s.key}]`", "", _md_escape(s.doc) + ("" if s.doc.endswith(".")
                                                                       else "."), ""]
        out += _md_table(_md_rows(s.params))
    return out


def markdown() -> str:
    """The scenario reference, generated from the declarations (``docs/scenario.md``)."""
    from . import scenario_params as sp

    out = ["# Scenario reference", "",
           "<!-- Generated by `python -m cosim.describe --markdown > docs/scenario.md` from the "
           "parameter declarations; do not edit (tests/test_describe.py fails when stale). -->",
           "",
           "A scenario is one TOML file.  Units: time ms, length mm (µm in morphologies), "
           "conduction speed mm/ms (= m/s), rates Hz.  \"required\" keys have no default; "
           "placeholders are in angle brackets (`<name>`).  `cosim describe KIND [NAME]` "
           "prints the same declarations.", "",
           "## Framework tables", ""]
    for sec in (sp.SIMULATION, sp.CONNECTOME, sp.RECORD):
        out += _md_section(sec)
    out += ["## Engines", "", "`[engines.<name>] type = \"...\"` selects the engine type.", ""]
    for t, get in _engines().items():
        out += [f"## Engine `{t}`", ""] + _md_section(get())
    out += ["## Monitors (`[record.<engine>]`)", ""]
    from .monitor_params import RECORD_ENGINE
    out += _md_section(RECORD_ENGINE)
    out += ["## Adapters (`[adapters.<name>]`)", ""]
    for t, sec in _adapters().items():
        out += [f"## Adapter `{t}`", ""] + _md_section(sec)
    from .stimuli import STIMULUS
    out += ["## Stimuli (`[stimuli.<name>]`)", ""] + _md_section(STIMULUS)
    out += ["## Fit descriptions (`cosim fit FIT.toml`, `cosim identify FIT.toml`)", "",
            "A fit description is a TOML file of its own (see cosim.fitting).", ""]
    for sec in _fit_sections().values():
        out += _md_section(sec)
    out += ["## Models (`[engines.<name>] model = \"...\"`)", ""]
    for m in _models().values():
        out += [f"### Model `{m.name}`", "", _md_escape(_first_line(m.doc)), ""]
        if m.reference:
            out += [f"Reference: {_md_escape(m.reference)}.", ""]
        out += [f"Coupling variables: {', '.join(m.coupling_variables)}; default coupling: "
                f"`{m.default_coupling}`.", "", "Parameters (`[engines.<name>.parameters]`):", ""]
        out += _md_table(_md_rows(m.parameters))
        out += ["State variables:", ""]
        out += _md_table([(v.name, show_value(float(v.initial)), v.unit or "-",
                           f"random in [{v.range[0]:g}, {v.range[1]:g}]", v.doc)
                          for v in m.state_variables],
                         head=("variable", "initial", "unit", "random initial", "meaning"))
        if m.options:
            out += ["Options (`[engines.<name>.options]`):", ""]
            out += _md_table(_md_rows(m.options))
        for name, obs in m.observables.items():
            out += [f"Observable `{name}`: {_md_escape(obs.doc)} "
                    f"({obs.unit or 'unit of ' + obs.variables[0]}).", ""]
            out += _md_table(_md_rows(obs.parameters))
    out += ["## Couplings (`[engines.<name>.coupling] type = \"...\"`)", ""]
    for c in _couplings().values():
        out += [f"### Coupling `{c.name}`", "", f"`{_md_escape(c.doc)}`", ""]
        out += _md_table(_md_rows(c.parameters))
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def describe_main(args) -> int:
    """``cosim describe`` (argparse namespace: kind, name, markdown)."""
    if args.markdown:
        if args.kind is not None:
            raise CosimError("--markdown prints the whole reference; give no KIND")
        sys.stdout.write(markdown())
    else:
        sys.stdout.write(describe(args.kind, args.name))
    return 0


def models_main(args) -> int:
    """``cosim models``."""
    sys.stdout.write(models_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cosim.describe [--markdown | KIND [NAME]]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["--markdown"]:
            sys.stdout.write(markdown())
        else:
            sys.stdout.write(describe(*(argv[:2] or [None])))
    except CosimError as exc:
        print(exc.message(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
