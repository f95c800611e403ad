"""A reader of NEURON's NMODL (``.mod`` files): tokenizer, recursive-descent parser, and the
:class:`~.mechanism.Mechanism` description the kernel generator (:mod:`.codegen`) uses.

The subset is what typical cortical channel models use (the other constructs are refused
with one line ``<file>:<line>: <construct> is not supported …`` before any run starts):

* ``NEURON``: ``SUFFIX``, ``USEION <ion> READ … WRITE … [VALENCE z]``, ``RANGE``,
  ``GLOBAL``, ``NONSPECIFIC_CURRENT``, ``THREADSAFE`` (ignored);
* ``UNITS`` (unit names are ignored; the constants ``(faraday)``, ``(k-mole)``/``(R)``,
  ``(k)``, ``(e)`` and ``(pi)`` give their CODATA-2018 values, as NEURON 9), file-level
  ``LOCAL`` (kept per instance), unit annotations after numbers (``18(mV)``, ignored), ``PARAMETER``, ``ASSIGNED``,
  ``STATE``, ``CONSTANT``, ``INDEPENDENT`` (ignored), ``UNITSOFF``/``UNITSON`` (ignored);
* ``INITIAL``, ``BREAKPOINT`` with ``SOLVE <block> [METHOD cnexp | derivimplicit]``,
  ``DERIVATIVE``, ``PROCEDURE``, ``FUNCTION``; statements ``LOCAL``, assignments,
  ``x' = …``, procedure calls, ``if (…) {…} else if … else {…}``;
* ``TABLE`` statements are read and ignored: rates are always computed exactly, as
  NEURON does with ``usetable_<suffix> = 0``;
* expressions with ``+ - * / ^``, comparisons, ``&& || !``, and the functions ``exp log
  log10 sqrt pow fabs sin cos tan tanh atan floor ceil fmin fmax``.

* ``POINT_PROCESS`` with ``NET_RECEIVE(weight)``: cosim sums the weights of the events
  reaching one synapse in one time step and runs the block once with the sum, so the
  block must only add amounts proportional to the weight (``A = A + weight*factor``) —
  checked, anything else is refused; currents of point processes are in nA.

Not supported (refused): ``ARTIFICIAL_CELL``, ``NET_RECEIVE`` with per-connection state
(more than one argument), ``KINETIC`` and ``~`` reactions, ``VERBATIM`` C code,
``POINTER``, ``ELECTRODE_CURRENT``, ``FROM … TO`` loops, arrays, ``WATCH``,
``net_send``, and every block not listed above.

Unit annotations like ``(mV)`` are read but not used for conversion — exactly like
NEURON's ``nocmodl`` (only ``modlunit`` checks them); numbers are in the file's units.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from ..errors import CosimError

#: CODATA 2018 values, as NEURON 9 (``nrnunits.lib``, not the legacy units).
FARADAY = 96485.33212        # C/mol
GAS_CONSTANT = 8.314462618   # J/(K·mol)

_UNIT_CONSTANTS = {"faraday": FARADAY, "k-mole": GAS_CONSTANT, "r": GAS_CONSTANT,
                   "pi": math.pi, "k": 1.380649e-23, "e": 1.602176634e-19}

_TOKEN = re.compile(r"""
    (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/^(){}<>=,'!~@\[\]:;?&|.%])
""", re.VERBOSE)

MATH_FUNCTIONS = {"exp": "math.exp", "log": "math.log", "log10": "math.log10",
                  "sqrt": "math.sqrt", "pow": "math.pow", "fabs": "abs", "sin": "math.sin",
                  "cos": "math.cos", "tan": "math.tan", "tanh": "math.tanh",
                  "atan": "math.atan", "floor": "math.floor", "ceil": "math.ceil",
                  "fmin": "min", "fmax": "max"}

#: Names NEURON provides to every mechanism.
SPECIAL = ("v", "celsius", "dt", "t")

_UNSUPPORTED_BLOCKS = ("KINETIC", "LINEAR", "NONLINEAR", "DISCRETE", "PARTIAL",
                       "FUNCTION_TABLE", "BEFORE", "AFTER", "CONSTRUCTOR", "DESTRUCTOR",
                       "TERMINAL", "MATCH", "LAG", "SENS", "CONSERVE",
                       "COMPARTMENT", "LONGITUDINAL_DIFFUSION", "STEADYSTATE", "WATCH",
                       "FOR_NETCONS", "FROM", "WHILE", "while", "for", "VERBATIM",
                       "PROTECT", "MUTEXLOCK", "MUTEXUNLOCK", "LAG", "RESET")


class NmodlError(CosimError):
    """A ``.mod`` file cosim cannot read: ``<file>:<line>: <reason>``."""

    def __init__(self, reason: str, *, path: str = "", line: int = 0):
        where = f"{os.path.basename(path)}:{line}" if path else None
        super().__init__(reason, file=None, key=where)
        self.path = path
        self.line = line


@dataclass(frozen=True)
class Tok:
    kind: str      # num | name | op | eof
    text: str
    line: int


def tokenize(text: str, path: str = "") -> list[Tok]:
    """Tokens of an NMODL file; comments, ``TITLE`` lines and ``COMMENT`` blocks dropped
    (``VERBATIM`` is kept as a token so that the parser can refuse it by line)."""
    toks: list[Tok] = []
    lines = text.splitlines()
    i = 0
    in_comment = False
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        i += 1
        stripped = raw.strip()
        if in_comment:
            if stripped.startswith("ENDCOMMENT"):
                in_comment = False
            continue
        if stripped.startswith("COMMENT"):
            in_comment = True
            continue
        if stripped.startswith("TITLE"):
            continue
        if stripped.startswith("VERBATIM"):
            toks.append(Tok("name", "VERBATIM", lineno))
            while i < len(lines) and not lines[i].strip().startswith("ENDVERBATIM"):
                i += 1
            i += 1
            continue
        # ':' and '?' start comments
        cut = len(raw)
        for ch in (":", "?"):
            k = raw.find(ch)
            if k >= 0:
                cut = min(cut, k)
        line = raw[:cut]
        pos = 0
        while pos < len(line):
            if line[pos] in " \t\r\f\v":
                pos += 1
                continue
            if line[pos] == '"':         # a string (in printf / units); skip it whole
                end = line.find('"', pos + 1)
                end = len(line) if end < 0 else end + 1
                toks.append(Tok("str", line[pos:end], lineno))
                pos = end
                continue
            m = _TOKEN.match(line, pos)
            if m is None:
                raise NmodlError(f"unexpected character {line[pos]!r}", path=path, line=lineno)
            kind = m.lastgroup
            txt = m.group(kind)
            if kind == "name" and txt in ("UNITSON", "UNITSOFF"):
                pass
            else:
                toks.append(Tok(kind, txt, lineno))
            pos = m.end()
    if in_comment:
        raise NmodlError("COMMENT without ENDCOMMENT", path=path, line=len(lines))
    toks.append(Tok("eof", "", len(lines)))
    return toks


# -- the syntax tree ----------------------------------------------------------------------
# Expressions: ("num", float) ("name", str) ("call", name, [args]) ("bin", op, a, b)
#              ("neg", a) ("not", a)
# Statements:  ("assign", name, expr, line) ("deriv", state, expr, line)
#              ("call", name, [args], line) ("if", cond, [then], [else], line)
#              ("local", [names], line) ("solve", block, method, line)


@dataclass
class Callable:
    """A ``PROCEDURE``, ``FUNCTION`` or ``DERIVATIVE`` block."""

    kind: str
    name: str
    args: list[str]
    body: list
    line: int
    locals: set[str] = field(default_factory=set)


@dataclass
class ModFile:
    path: str
    suffix: str = ""
    suffix_line: int = 0
    title_comment: str = ""
    ions: dict[str, dict] = field(default_factory=dict)      # ion -> {read, write, valence}
    range_names: list[str] = field(default_factory=list)
    global_names: list[str] = field(default_factory=list)
    nonspecific: list[str] = field(default_factory=list)
    parameters: list[tuple[str, float | None, str, int]] = field(default_factory=list)
    assigned: list[tuple[str, str, int]] = field(default_factory=list)
    states: list[tuple[str, str, int]] = field(default_factory=list)
    constants: dict[str, float] = field(default_factory=dict)
    initial: list = field(default_factory=list)
    breakpoint: list = field(default_factory=list)
    callables: dict[str, Callable] = field(default_factory=dict)
    point: bool = False
    net_receive: Callable | None = None


class Parser:
    def __init__(self, text: str, path: str):
        self.path = path
        self.toks = tokenize(text, path)
        self.i = 0
        self.mod = ModFile(path)
        m = re.search(r"^\s*COMMENT\s*$(.*?)^\s*ENDCOMMENT", text, re.S | re.M)
        if m:
            self.mod.title_comment = m.group(1).strip()

    # -- token helpers
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, reason: str, tok: Tok | None = None):
        t = tok or self.tok
        return NmodlError(reason, path=self.path, line=t.line)

    def unsupported(self, construct: str, tok: Tok | None = None):
        return self.error(f"{construct} is not supported by cosim's NMODL reader", tok)

    def expect(self, text: str) -> Tok:
        t = self.tok
        if t.text != text or t.kind not in ("op", "name"):
            raise self.error(f"expected {text!r}, found {t.text or 'end of file'!r}")
        return self.next()

    def accept(self, text: str) -> bool:
        if self.tok.text == text and self.tok.kind in ("op", "name"):
            self.i += 1
            return True
        return False

    def name(self) -> str:
        t = self.tok
        if t.kind != "name":
            raise self.error(f"expected a name, found {t.text or 'end of file'!r}")
        self.i += 1
        return t.text

    def number(self) -> float:
        sign = -1.0 if self.accept("-") else 1.0
        if not sign < 0:
            self.accept("+")
        t = self.tok
        if t.kind != "num":
            raise self.error(f"expected a number, found {t.text or 'end of file'!r}")
        self.i += 1
        return sign * float(t.text)

    def units(self) -> str:
        """``( … )`` as text (after the opening parenthesis is seen)."""
        self.expect("(")
        depth, parts = 1, []
        while True:
            t = self.next()
            if t.kind == "eof":
                raise self.error("unclosed unit parenthesis", t)
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
                if depth == 0:
                    return "".join(parts)
            parts.append(t.text)

    def block_body(self, skip: bool = False):
        self.expect("{")
        if skip:
            depth = 1
            while depth:
                t = self.next()
                if t.kind == "eof":
                    raise self.error("unclosed '{'", t)
                depth += (t.text == "{") - (t.text == "}")
            return None

    # -- file
    def parse(self) -> ModFile:
        while self.tok.kind != "eof":
            t = self.tok
            if t.kind != "name":
                raise self.error(f"unexpected {t.text!r} at top level")
            kw = t.text
            if kw == "NEURON":
                self.next()
                self.neuron_block()
            elif kw == "UNITS":
                self.next()
                self.units_block()
            elif kw in ("PARAMETER", "CONSTANT"):
                self.next()
                self.parameter_block()
            elif kw == "ASSIGNED":
                self.next()
                self.declaration_block(self.mod.assigned)
            elif kw == "STATE":
                self.next()
                self.declaration_block(self.mod.states)
            elif kw == "LOCAL":          # file-level scratch variables: per instance here
                self.next()
                for n in self.name_list():
                    self.mod.assigned.append((n, "", t.line))
            elif kw == "INDEPENDENT":
                self.next()
                self.block_body(skip=True)
            elif kw == "INITIAL":
                self.next()
                self.mod.initial = self.statements()
            elif kw == "BREAKPOINT":
                self.next()
                self.mod.breakpoint = self.statements()
            elif kw in ("DERIVATIVE", "PROCEDURE", "FUNCTION"):
                self.next()
                self.callable_block(kw, t)
            elif kw == "NET_RECEIVE":
                self.next()
                self.net_receive_block(t)
            elif kw in _UNSUPPORTED_BLOCKS or kw.isupper():
                raise self.unsupported(f"block {kw}")
            else:
                raise self.error(f"unexpected {kw!r} at top level")
        if not self.mod.suffix:
            raise NmodlError("no SUFFIX in the NEURON block", path=self.path, line=1)
        return self.mod

    def name_list(self) -> list[str]:
        names = [self.name()]
        while self.accept(","):
            names.append(self.name())
        return names

    def neuron_block(self):
        self.expect("{")
        mod = self.mod
        while not self.accept("}"):
            t = self.tok
            kw = self.name()
            if kw == "SUFFIX":
                mod.suffix, mod.suffix_line = self.name(), t.line
            elif kw == "POINT_PROCESS":
                mod.suffix, mod.suffix_line, mod.point = self.name(), t.line, True
            elif kw == "ARTIFICIAL_CELL":
                raise self.unsupported("ARTIFICIAL_CELL", t)
            elif kw == "USEION":
                ion = self.name()
                entry = mod.ions.setdefault(ion, {"read": [], "write": [], "valence": None})
                while self.tok.text in ("READ", "WRITE", "VALENCE"):
                    which = self.name()
                    if which == "VALENCE":
                        entry["valence"] = self.number()
                    else:
                        entry[which.lower()].extend(self.name_list())
            elif kw == "RANGE":
                mod.range_names.extend(self.name_list())
            elif kw == "GLOBAL":
                mod.global_names.extend(self.name_list())
            elif kw == "NONSPECIFIC_CURRENT":
                mod.nonspecific.extend(self.name_list())
            elif kw == "THREADSAFE":
                pass
            else:
                raise self.unsupported(f"NEURON block statement {kw}", t)

    def units_block(self):
        self.expect("{")
        while not self.accept("}"):
            if self.tok.text == "(":
                self.units()
                self.expect("=")
                self.units()
                continue
            t = self.tok
            name = self.name()
            self.expect("=")
            if self.tok.text == "(":
                unit = self.units().strip().lower()
                if unit not in _UNIT_CONSTANTS:
                    raise self.unsupported(f"UNITS constant ({unit})", t)
                value = _UNIT_CONSTANTS[unit]
                if self.tok.text == "(":
                    self.units()
            else:
                value = self.number()
                if self.tok.text == "(":
                    self.units()
            self.mod.constants[name] = value

    def parameter_block(self):
        self.expect("{")
        while not self.accept("}"):
            t = self.tok
            name = self.name()
            if self.tok.text == "[":
                raise self.unsupported("an array variable", t)
            value = None
            if self.accept("="):
                value = self.number()
            unit = self.units() if self.tok.text == "(" else ""
            if self.accept("<"):
                self.number()
                self.expect(",")
                self.number()
                self.expect(">")
            self.mod.parameters.append((name, value, unit, t.line))

    def declaration_block(self, into: list):
        self.expect("{")
        while not self.accept("}"):
            t = self.tok
            name = self.name()
            if self.tok.text == "[":
                raise self.unsupported("an array variable", t)
            unit = self.units() if self.tok.text == "(" else ""
            if self.accept("FROM"):
                self.number()
                self.expect("TO")
                self.number()
            into.append((name, unit, t.line))

    def callable_block(self, kind: str, head: Tok):
        name = self.name()
        args: list[str] = []
        if kind != "DERIVATIVE":
            self.expect("(")
            if not self.accept(")"):
                while True:
                    args.append(self.name())
                    if self.tok.text == "(":
                        self.units()
                    if self.accept(")"):
                        break
                    self.expect(",")
            if self.tok.text == "(":      # FUNCTION f(x) (units)
                self.units()
        if name in self.mod.callables:
            raise self.error(f"{kind} {name} defined twice", head)
        c = Callable(kind, name, args, [], head.line)
        c.body = self.statements(c)
        self.mod.callables[name] = c

    def net_receive_block(self, head: Tok):
        if self.mod.net_receive is not None:
            raise self.error("NET_RECEIVE defined twice", head)
        self.expect("(")
        args = []
        while True:
            args.append(self.name())
            if self.tok.text == "(":
                self.units()
            if self.accept(")"):
                break
            self.expect(",")
        if len(args) != 1:
            raise self.unsupported("NET_RECEIVE with more than one argument (per-connection "
                                   "state)", head)
        c = Callable("NET_RECEIVE", "NET_RECEIVE", args, [], head.line)
        c.body = self.statements(c)
        self.mod.net_receive = c

    # -- statements
    def statements(self, owner: Callable | None = None) -> list:
        self.expect("{")
        out = []
        while not self.accept("}"):
            st = self.statement(owner)
            if st is not None:
                out.append(st)
        return out

    def statement(self, owner):
        t = self.tok
        if t.kind == "eof":
            raise self.error("unclosed '{'")
        if t.kind == "op" and t.text == "{":
            return ("if", ("num", 1.0), self.statements(owner), [], t.line)
        if t.kind != "name":
            if t.text == "~":
                raise self.unsupported("a kinetic reaction (~)", t)
            raise self.error(f"unexpected {t.text!r}")
        kw = t.text
        if kw == "LOCAL":
            self.next()
            names = self.name_list()
            if self.tok.text == "[":
                raise self.unsupported("a LOCAL array", t)
            return ("local", names, t.line)
        if kw == "TABLE":
            self.next()
            self.name_list() if self.tok.kind == "name" and self.tok.text not in ("DEPEND", "FROM") else None
            if self.accept("DEPEND"):
                self.name_list()
            self.expect("FROM")
            self.expression()
            self.expect("TO")
            self.expression()
            self.expect("WITH")
            self.expression()
            return None
        if kw == "SOLVE":
            self.next()
            block = self.name()
            method = ""
            if self.accept("METHOD"):
                method = self.name()
            if self.tok.text == "STEADYSTATE":
                raise self.unsupported("SOLVE … STEADYSTATE")
            return ("solve", block, method, t.line)
        if kw == "if":
            self.next()
            self.expect("(")
            cond = self.expression()
            self.expect(")")
            then = self.statements(owner)
            other = []
            if self.accept("else"):
                if self.tok.text == "if":
                    other = [self.statement(owner)]
                else:
                    other = self.statements(owner)
            return ("if", cond, then, other, t.line)
        if kw in _UNSUPPORTED_BLOCKS or kw in ("net_send", "net_event", "net_move", "printf",
                                                "VERBATIM"):
            raise self.unsupported(kw if kw != "VERBATIM" else "VERBATIM (C code)", t)
        self.next()
        if self.tok.text == "'":
            self.next()
            self.expect("=")
            return ("deriv", kw, self.expression(), t.line)
        if self.tok.text == "[":
            raise self.unsupported("an array variable", t)
        if self.accept("="):
            return ("assign", kw, self.expression(), t.line)
        if self.tok.text == "(":
            args = self.call_args()
            return ("call", kw, args, t.line)
        raise self.error(f"expected '=', \"'\" or '(' after {kw!r}, found {self.tok.text!r}")

    def call_args(self) -> list:
        self.expect("(")
        args = []
        if not self.accept(")"):
            while True:
                args.append(self.expression())
                if self.accept(")"):
                    break
                self.expect(",")
        return args

    # -- expressions (precedence: || && comparison +- */ unary ^)
    def expression(self):
        a = self.and_expr()
        while self.tok.text == "||":
            self.next()
            a = ("bin", "or", a, self.and_expr())
        return a

    def and_expr(self):
        a = self.comparison()
        while self.tok.text == "&&":
            self.next()
            a = ("bin", "and", a, self.comparison())
        return a

    def comparison(self):
        a = self.additive()
        while self.tok.kind == "op" and self.tok.text in ("<", ">", "<=", ">=", "==", "!="):
            op = self.next().text
            a = ("bin", op, a, self.additive())
        return a

    def additive(self):
        a = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.next().text
            a = ("bin", op, a, self.term())
        return a

    def term(self):
        a = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.next().text
            a = ("bin", op, a, self.unary())
        return a

    def unary(self):
        if self.accept("-"):
            return ("neg", self.unary())
        if self.accept("+"):
            return self.unary()
        if self.accept("!"):
            return ("not", self.unary())
        return self.power()

    def power(self):
        base = self.primary()
        if self.accept("^"):
            return ("bin", "^", base, self.unary())       # right-associative
        return base

    def primary(self):
        t = self.tok
        if t.kind == "num":
            self.next()
            if self.tok.text == "(":      # a unit annotation: 18(mV), .1(1/mV)
                self.units()
            return ("num", float(t.text))
        if t.kind == "name":
            self.next()
            if self.tok.text == "(":
                return ("call", t.text, self.call_args())
            if self.tok.text == "[":
                raise self.unsupported("an array variable", t)
            return ("name", t.text)
        if self.accept("("):
            e = self.expression()
            self.expect(")")
            return e
        raise self.error(f"expected an expression, found {t.text or 'end of file'!r}")


def parse_file(path: str | os.PathLike) -> ModFile:
    """Parse one ``.mod`` file (raises :class:`NmodlError` with file and line)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise CosimError(f"cannot read {path}: {exc.strerror}") from None
    return Parser(text, path).parse()
