"""Numba kernels for a set of mechanisms, generated from their descriptions.

For a set of :class:`~.mechanism.Mechanism` this writes one Python module: per mechanism
an ``init_<m>``, ``cur_<m>`` and ``state_<m>`` kernel (a loop over the mechanism's
instances — one per compartment where it is inserted), its PROCEDUREs and FUNCTIONs, and
a ``run_window`` that is :func:`.cable.run_window`'s own source with the two hooks
``# @mechanisms: currents`` and ``# @mechanisms: states`` filled in.  The module goes to
``$COSIM_CACHE_DIR/mechanisms/<key>/`` (default ``~/.cache/cosim``), keyed by the SHA-256
of its text and of the kernel modules it imports, and is imported from there, so numba's
``cache=True`` keeps the machine code between runs like the other kernels.

Per step, as NEURON's fixed step (``secondorder = 0``):

* *currents* (before the Hines solve, at ``v_n`` with the states of the last update):
  ion currents restart from 0 and reversal potentials follow the concentrations where a
  mechanism writes them; each mechanism's BREAKPOINT (without its SOLVE) gives the
  current at ``v`` (mA/cm² · area → nA, to the right-hand side) and its conductance
  ``∂i/∂v`` (to the diagonal); written ion currents are summed into the node's ion.  The
  conductance: when the BREAKPOINT's currents are linear in ``v`` (straight-line
  assignments of degree ≤ 1 in ``v``, checked on the syntax tree: ``i = g·(v − e)`` with
  ``g`` free of ``v`` — every shipped channel) it is the derivative taken on the syntax
  tree, and the BREAKPOINT runs once; otherwise (a GHK current, a Mg block, an ``if``) it
  runs at ``v + 0.001`` and at ``v`` and the slope is ``(i(v+0.001) − i(v))/0.001``,
  NEURON's rule (:func:`conductance_method`).  For a linear current the two agree to
  rounding (the finite difference loses ≈ ε·|v − e|/0.001 ≈ 1e-11 relative);
* *states* (after ``v_{n+1}`` is known): each SOLVE of the BREAKPOINT, in order:
  ``cnexp`` — an equation ``x' = f`` linear in ``x`` (checked on the syntax tree),
  advanced exactly over ``dt``: of the form ``x' = (x∞ − x)/τ`` it is
  ``x += (x∞ − x)·(1 − exp(−dt/τ))`` (one division, one exp); else ``x' = a + b·x`` with
  ``a = f(x=0)``, ``b = f(x=1) − a``: ``x += (1 − exp(b·dt))·(−a/b − x)`` (``x += a·dt``
  when b = 0), as nocmodl writes it — the two forms agree to rounding;
  ``derivimplicit`` — backward Euler ``y = y_n + dt·f(y)`` solved by Newton's method
  (numerical Jacobian, to a relative 1e-10); a PROCEDURE without METHOD is called.
  Concentrations written by a mechanism go back to the node's ion afterwards.

With ``integrator = "crank_nicolson"`` (``kernel_module(..., second_order=True)``, NEURON's
``secondorder = 2``) the *currents* step also sums each written ion current's slope
(symbolic or ``(i(v+0.001) − i(v))/0.001`` as above) into the ion (row ``ION_DIDV``), and
after the solve the ion currents move to the half step, ``i += (∂i/∂v)·Δv``
(``ion_half_step``), before the *states* read them.  Backward Euler's module is generated without these lines.

Kernels do not allocate; the instance arrays are ``k int64[n]`` (flat node index),
``fac float64[n]`` (area·1e-2: mA/cm² → nA), ``P float64[n_params, n]``, ``S float64[n_states,
n]``, ``A float64[n_assigned + n_scratch, n]`` (ASSIGNED, then scratch rows, see below); an
ion is ``float64[5, n_nodes]`` (:data:`.mechanism.ION_ROWS`).

Speed.  Per instance the work is NEURON's (the same rate functions and exponentials); it
is made cheap by letting LLVM vectorise it over instances (4 doubles per AVX2 operation):

* the ``cur`` and ``state`` kernels of a mechanism that solves with ``cnexp`` run as three
  loops: a gather of ``v``, the ion values read and the concentrations written into
  scratch rows of ``A``, the BREAKPOINT / DERIVATIVE arithmetic over contiguous rows only
  (no indirect access, no branch: ``cnexp`` is :func:`.fastexp.cnexp_step` or the
  relaxation form), and a scatter of node current, conductance and ion currents (``cur``)
  or of the concentrations (``state``) to the nodes;
* a kernel loads and stores only what it reads and writes; ASSIGNED variables that every
  block writes before reading them (:attr:`_MechGen.temporaries`: a gate's ``minf``,
  ``mtau``) are not stored back by ``cur``/``state``; a mechanism without currents has
  an empty ``cur``; an ion whose concentrations no mechanism writes only has its currents
  reset each step;
* NMODL ``exp``, ``log`` and ``pow`` / ``^`` are :func:`.fastexp.fexp`, :func:`.fastexp.flog`
  and :func:`.fastexp.fpow` (≈ 1–2 ulp, vectorisable; libm's are scalar calls, and one
  ``pow`` per instance — SK's ``(0.00043/cai)^4.8`` — kept its whole loop scalar),
  PROCEDUREs and FUNCTIONs are inlined into the kernels;
* GLOBAL parameters are read once per call (one value for all instances, as in NEURON;
  :func:`global_params`), so temperature factors like ``q10^((celsius − 36)/10)`` are
  loop-invariant and computed once per call.

These change results by rounding only (FMA contraction, ``fexp``/``flog``/``fpow`` ≈ 1–2
ulp, the symbolic conductance, the relaxation form of ``cnexp``); no reassociation or
finite-math assumptions.  ``derivimplicit`` mechanisms keep the one-loop form.  The
built-in ``hh``/``pas`` path (:mod:`.cable`) is not touched.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
from pathlib import Path

from .. import cache
from .mechanism import ION_CI, ION_CO, ION_DIDV, ION_E, ION_I, ION_NERNST, Mechanism
from .nmodl import MATH_FUNCTIONS, SPECIAL, NmodlError

_DEPENDENCIES = ("cable", "channels", "compartments", "fastexp", "stp", "synapses", "mechanism")
NEWTON_TOL = 1e-10
#: NMODL functions computed by a vectorisable kernel instead of libm (see :mod:`.fastexp`).
_FAST_MATH = {"exp": "fexp", "log": "flog", "pow": "fpow"}
#: Extra numba flags of a vectorised state kernel: FMA contraction only (no reassociation,
#: no assumptions about NaN/inf), which changes results by rounding only.
_VEC_FLAGS = ", fastmath={'contract'}"


def global_params(mech: Mechanism) -> list[tuple[int, str]]:
    """``(row in P, name)`` of a mechanism's GLOBAL parameters (the kernels read row 0)."""
    return _MechGen(mech).globals_()


def n_scratch(mech: Mechanism) -> int:
    """Rows a mechanism's kernels use after its ASSIGNED rows in ``A`` (gathered node values)."""
    g = _MechGen(mech)
    return len(g.gathered()) + 2 + 2 * len(g.written_currents())
NEWTON_MAX_ITER = 50


def cache_dir() -> Path:
    return cache.cache_root("mechanisms")


# -- syntax-tree helpers --------------------------------------------------------------------

def _walk_expr(e, names: set, calls: set):
    kind = e[0]
    if kind == "name":
        names.add(e[1])
    elif kind == "call":
        calls.add(e[1])
        for a in e[2]:
            _walk_expr(a, names, calls)
    elif kind == "bin":
        _walk_expr(e[2], names, calls)
        _walk_expr(e[3], names, calls)
    elif kind in ("neg", "not"):
        _walk_expr(e[1], names, calls)


def _walk(stmts, reads: set, writes: set, calls: set, locals_: set):
    for st in stmts:
        kind = st[0]
        if kind in ("assign", "deriv"):
            writes.add(st[1])
            _walk_expr(st[2], reads, calls)
            if kind == "deriv":
                reads.add(st[1])
        elif kind == "call":
            calls.add(st[1])
            for a in st[2]:
                _walk_expr(a, reads, calls)
        elif kind == "if":
            _walk_expr(st[1], reads, calls)
            _walk(st[2], reads, writes, calls, locals_)
            _walk(st[3], reads, writes, calls, locals_)
        elif kind == "local":
            locals_.update(st[1])


def _degree(e, x: str, touches) -> int:
    """Polynomial degree of expression ``e`` in ``x`` (2 stands for 'not linear')."""
    return _v_degree(e, {x: 1}, touches)


def _homogeneous(e, w: str) -> bool:
    """``e`` is proportional to ``w`` (linear, no term free of ``w``)."""
    kind = e[0]
    if kind == "name":
        return e[1] == w
    if kind == "neg":
        return _homogeneous(e[1], w)
    if kind != "bin":
        return False
    op, a, b = e[1], e[2], e[3]
    free_a = _degree(a, w, lambda _: set()) == 0
    free_b = _degree(b, w, lambda _: set()) == 0
    if op in ("+", "-"):
        return _homogeneous(a, w) and _homogeneous(b, w)
    if op == "*":
        return (_homogeneous(a, w) and free_b) or (_homogeneous(b, w) and free_a)
    if op == "/":
        return _homogeneous(a, w) and free_b
    return False


def _v_degree(e, deg: dict, touches) -> int:
    """Polynomial degree in ``v`` of expression ``e`` (2 stands for 'not linear'), where
    ``deg`` gives the degree of the names assigned so far (``v`` itself: 1) and
    ``touches(f)`` the instance names function ``f`` reads."""
    kind = e[0]
    if kind == "num":
        return 0
    if kind == "name":
        return deg.get(e[1], 0)
    if kind == "neg":
        return _v_degree(e[1], deg, touches)
    if kind == "not":
        return 2 if _v_degree(e[1], deg, touches) else 0
    if kind == "call":
        varying = {n for n, d in deg.items() if d}
        if any(_v_degree(a, deg, touches) for a in e[2]) or touches(e[1]) & varying:
            return 2
        return 0
    op, a, b = e[1], _v_degree(e[2], deg, touches), _v_degree(e[3], deg, touches)
    if op in ("+", "-"):
        return max(a, b)
    if op == "*":
        return min(a + b, 2)
    if op == "/":
        return a if b == 0 else 2
    return 0 if a == b == 0 else 2


def _relaxation(e, x: str, touches):
    """``(x∞, τ)`` when ``e`` is ``(x∞ − x)/τ`` with ``x∞`` and ``τ`` free of ``x``, else
    None (the form of every gate written with a steady state and a time constant)."""
    if e[0] != "bin" or e[1] != "/" or e[2][0] != "bin" or e[2][1] != "-" or e[2][3] != ("name", x):
        return None
    inf, tau = e[2][2], e[3]
    if _degree(inf, x, touches) or _degree(tau, x, touches):
        return None
    return inf, tau


_ASSIGN_RE = re.compile(r"^\s*([A-Za-z_][\w\s,]*?)\s*[-+*/]?=(?!=)")
_X_RE = re.compile(r"\bx_\w+")


def _targets(lines) -> set:
    """The ``x_…`` names assigned by generated lines."""
    out = set()
    for ln in lines:
        m = _ASSIGN_RE.match(ln)
        if m:
            out.update(t.strip() for t in m.group(1).split(",") if t.strip().startswith("x_"))
    return out


def _prune(loads, body, stores, keep_stores=()):
    """Drop the stores of names ``body`` does not assign and the loads of names neither
    ``body`` nor the remaining stores read: a kernel moves only what it uses (the same
    bits in memory — an unassigned name would be stored back unchanged)."""
    written = _targets(body)
    stores = [ln for ln in stores
              if not (m := _X_RE.search(ln.split("=", 1)[1])) or m.group(0) in written]
    used = set(_X_RE.findall("\n".join(list(body) + stores + list(keep_stores))))
    loads = [ln for ln in loads
             if not (m := _ASSIGN_RE.match(ln)) or not m.group(1).strip().startswith("x_")
             or m.group(1).strip() in used]
    return loads, stores


class _MechGen:
    """Python source of one mechanism's kernels."""

    def __init__(self, mech: Mechanism, second_order: bool = False, numerical_didv: bool = False):
        self.m = mech
        self.second_order = second_order      # also d(ion current)/dv (Crank–Nicolson)
        self.numerical_didv = numerical_didv  # NEURON's two evaluations even when linear
        self.mod = mech.mod
        self.path = mech.path
        self.tag = mech.name
        self.ions = sorted(mech.ions)
        self.callables = self.mod.callables
        self._touch: dict[str, tuple[set, set]] = {}
        for name in self.callables:
            self._analyse(name, ())

    def fail(self, reason, line):
        return NmodlError(reason, path=self.path, line=line)

    # names
    def instance_names(self) -> set:
        m = self.m
        ionv = set()
        for ion, u in m.ions.items():
            ionv |= u["read"] | u["write"]
        return set(m.param_names) | set(m.states) | set(m.assigned) | ionv | set(SPECIAL)

    def _analyse(self, name: str, stack: tuple):
        """(touched, written) instance-level names of callable ``name``, transitively."""
        if name in self._touch:
            return self._touch[name]
        c = self.callables[name]
        if name in stack:
            raise self.fail(f"recursive call of {name} is not supported", c.line)
        reads, writes, calls, locals_ = set(), set(), set(), set()
        _walk(c.body, reads, writes, calls, locals_)
        inst = self.instance_names()
        own = set(c.args) | locals_ | ({name} if c.kind == "FUNCTION" else set())
        touched = {n for n in (reads | writes) if n in inst and n not in own}
        written = {n for n in writes if n in inst and n not in own}
        for callee in calls:
            if callee in self.callables:
                t, w = self._analyse(callee, stack + (name,))
                touched |= t - own
                written |= w - own
        if c.kind == "FUNCTION" and written:
            raise self.fail(f"FUNCTION {name} assigns {', '.join(sorted(written))}; cosim "
                            "supports FUNCTIONs that only return a value", c.line)
        for n in written & set(SPECIAL):
            raise self.fail(f"{name} assigns {n}, which is read-only", c.line)
        self._touch[name] = (touched, written)
        return touched, written

    def touches(self, fname: str) -> set:
        return self._touch[fname][0] if fname in self._touch else set()

    # expressions
    def expr(self, e, scope: set, line: int, subst: dict | None = None) -> str:
        kind = e[0]
        if kind == "num":
            return repr(float(e[1]))
        if kind == "name":
            n = e[1]
            if subst and n in subst:
                return subst[n]
            return self.ref(n, scope, line)
        if kind == "neg":
            return f"(-{self.expr(e[1], scope, line, subst)})"
        if kind == "not":
            return f"(not {self.expr(e[1], scope, line, subst)})"
        if kind == "call":
            fn, args = e[1], [self.expr(a, scope, line, subst) for a in e[2]]
            if fn in self.callables:
                c = self.callables[fn]
                if c.kind != "FUNCTION":
                    raise self.fail(f"{c.kind} {fn} used as a value", line)
                if len(args) != len(c.args):
                    raise self.fail(f"{fn} takes {len(c.args)} arguments, got {len(args)}", line)
                extra = [self.ref(n, scope, line) if not (subst and n in subst) else subst[n]
                         for n in sorted(self.touches(fn))]
                return f"f_{self.tag}_{fn}({', '.join(args + extra)})"
            if fn in MATH_FUNCTIONS:
                return f"{_FAST_MATH.get(fn, MATH_FUNCTIONS[fn])}({', '.join(args)})"
            raise self.fail(f"unknown function {fn}()", line)
        op, a, b = e[1], self.expr(e[2], scope, line, subst), self.expr(e[3], scope, line, subst)
        if op == "^":
            return f"fpow({a}, {b})"
        py = {"and": "and", "or": "or"}.get(op, op)
        return f"({a} {py} {b})"

    def ref(self, n: str, scope: set, line: int) -> str:
        if n in scope:
            return f"l_{n}"
        if n in self.mod.constants:
            return repr(float(self.mod.constants[n]))
        if n == "PI":
            return "math.pi"
        if n in self.instance_names():
            return f"x_{n}"
        raise self.fail(f"undeclared name {n!r}", line)

    def target(self, n: str, scope: set, line: int) -> str:
        if n in scope:
            return f"l_{n}"
        if n in SPECIAL:
            raise self.fail(f"assigning {n} is not supported", line)
        if n in self.instance_names():
            return f"x_{n}"
        if n in self.mod.constants:
            raise self.fail(f"assigning the constant {n}", line)
        raise self.fail(f"undeclared name {n!r}", line)

    # statements
    def stmts(self, body, scope: set, ind: str, deriv=None) -> list[str]:
        out = []
        for st in body:
            kind, line = st[0], st[-1]
            if kind == "local":
                continue
            if kind == "assign":
                out.append(f"{ind}{self.target(st[1], scope, line)} = "
                           f"{self.expr(st[2], scope, line)}")
            elif kind == "deriv":
                if deriv is None:
                    raise self.fail(f"{st[1]}' = … outside a DERIVATIVE block", line)
                out.extend(deriv(st, scope, ind))
            elif kind == "call":
                out.extend(self.call_stmt(st, scope, ind))
            elif kind == "if":
                out.append(f"{ind}if {self.expr(st[1], scope, line)}:")
                out.extend(self.stmts(st[2], scope, ind + "    ", deriv) or [f"{ind}    pass"])
                if st[3]:
                    out.append(f"{ind}else:")
                    out.extend(self.stmts(st[3], scope, ind + "    ", deriv) or [f"{ind}    pass"])
            elif kind == "solve":
                pass        # handled by the state kernel
        return out

    def call_stmt(self, st, scope, ind):
        _, fn, args, line = st
        if fn in MATH_FUNCTIONS:
            return []
        if fn not in self.callables:
            raise self.fail(f"unknown procedure {fn}()", line)
        c = self.callables[fn]
        if c.kind == "DERIVATIVE":
            raise self.fail(f"DERIVATIVE {fn} can only be used in SOLVE", line)
        if len(args) != len(c.args):
            raise self.fail(f"{fn} takes {len(c.args)} arguments, got {len(args)}", line)
        a = [self.expr(x, scope, line) for x in args]
        touched, written = self._touch[fn]
        extra = [self.ref(n, scope, line) for n in sorted(touched)]
        prefix = "f" if c.kind == "FUNCTION" else "p"
        call = f"{prefix}_{self.tag}_{fn}({', '.join(a + extra)})"
        if c.kind == "PROCEDURE" and written:
            lhs = ", ".join(self.target(n, scope, line) for n in sorted(written))
            return [f"{ind}{lhs}, = {call}"]
        return [f"{ind}{call}"]

    @staticmethod
    def locals_of(body) -> set:
        r, w, c, loc = set(), set(), set(), set()
        _walk(body, r, w, c, loc)
        return loc

    # callables as functions
    def callable_src(self, c) -> list[str]:
        touched, written = self._touch[c.name]
        scope = set(c.args) | self.locals_of(c.body)
        if c.kind == "FUNCTION":
            scope.add(c.name)
        params = [f"l_{a}" for a in c.args] + [f"x_{n}" for n in sorted(touched)]
        prefix = "f" if c.kind == "FUNCTION" else "p"
        lines = ["", "", "@njit(cache=True, error_model='numpy', inline='always')",
                 f"def {prefix}_{self.tag}_{c.name}({', '.join(params)}):"]
        for n in sorted(scope - set(c.args)):
            lines.append(f"    l_{n} = 0.0")
        lines.extend(self.stmts(c.body, scope, "    "))
        if c.kind == "FUNCTION":
            lines.append(f"    return l_{c.name}")
        elif written:
            lines.append(f"    return ({', '.join(f'x_{n}' for n in sorted(written))},)")
        else:
            lines.append("    return 0.0")
        return lines

    # the three kernels
    def signature(self, kind: str) -> str:
        ions = [f"ion_{i}" for i in self.ions]
        head = {"init": "v, k, P, S, A", "cur": "v, d, rhs, k, fac, P, S, A",
                "state": "v, k, P, S, A"}[kind]
        return f"def {kind}_{self.tag}({', '.join([head] + ions + ['celsius', 'dt', 't'])}):"

    def gathered(self) -> list[tuple[str, str]]:
        """``(name, source)`` of the node values a vectorised kernel copies into its scratch
        rows first: ``v``, the ion variables it reads and the concentrations it writes
        (which its state kernel copies back to the nodes at the end)."""
        out = [("v", "v[kk]")]
        for ion in self.ions:
            u = self.m.ions[ion]
            for n, row in ((f"e{ion}", ION_E), (f"i{ion}", ION_I), (f"{ion}i", ION_CI),
                           (f"{ion}o", ION_CO)):
                if (n in u["read"] and n not in u["write"]) or (
                        n in u["write"] and row in (ION_CI, ION_CO)):
                    out.append((n, f"ion_{ion}[{row}, kk]"))
        return out

    @property
    def vectorised_state(self) -> bool:
        """The state kernel runs as a gather loop, a loop without indirect memory access
        (which LLVM vectorises) and a scatter of the concentrations it writes: when every
        SOLVE is ``cnexp`` or a PROCEDURE (Newton's loop does not vectorise)."""
        for st in self.mod.breakpoint:
            if st[0] == "solve":
                c = self.callables.get(st[1])
                if c is not None and c.kind == "DERIVATIVE" and st[2] != "cnexp":
                    return False
        return True

    def globals_(self) -> list[tuple[int, str]]:
        """``(row, name)`` of the GLOBAL parameters: one value for all instances (as in
        NEURON), read once before a kernel's loop so that what depends only on them and on
        ``celsius`` (temperature factors) is computed once per call."""
        g = set(self.mod.global_names)
        return [(i, p) for i, p in enumerate(self.m.param_names) if p in g]

    def load(self, ind: str, init: bool, scratch: bool = False, hoist: bool = True) -> list[str]:
        m = self.m
        if scratch:
            na = len(m.assigned)
            out = [f"{ind}x_{n} = A[{na + r}, j]" for r, (n, _) in enumerate(self.gathered())]
            out += [f"{ind}x_celsius = celsius", f"{ind}x_dt = dt", f"{ind}x_t = t"]
        else:
            out = [f"{ind}kk = k[j]", f"{ind}x_v = v[kk]", f"{ind}x_celsius = celsius",
                   f"{ind}x_dt = dt", f"{ind}x_t = t"]
        hoisted = {p for _, p in self.globals_()} if hoist and not init else set()
        out += [f"{ind}x_{p} = P[{i}, j]" for i, p in enumerate(m.param_names) if p not in hoisted]
        for i, s in enumerate(m.states):
            if init:
                s0 = f"{s}0"
                out.append(f"{ind}x_{s} = x_{s0}" if s0 in m.param_names else f"{ind}x_{s} = 0.0")
            else:
                out.append(f"{ind}x_{s} = S[{i}, j]")
        tmp = self.temporaries if (hoist and not init) else set()   # cur and state kernels
        out += [f"{ind}x_{a} = A[{i}, j]" if a not in tmp else f"{ind}x_{a} = 0.0"
                for i, a in enumerate(m.assigned)]
        for ion in self.ions:
            u = m.ions[ion]
            for n, row in ((f"e{ion}", ION_E), (f"i{ion}", ION_I), (f"{ion}i", ION_CI),
                           (f"{ion}o", ION_CO)):
                if n in u["read"] or n in u["write"]:
                    if n == f"i{ion}" and n in u["write"]:
                        out.append(f"{ind}x_{n} = 0.0")
                    elif not scratch:
                        out.append(f"{ind}x_{n} = ion_{ion}[{row}, kk]")
        return out

    def head(self, init: bool = False) -> list[str]:
        """Lines before a kernel's loop: the GLOBAL parameters (see :meth:`globals_`)."""
        g = self.globals_()
        if init or not g:
            return []
        return ["    if k.size == 0:", "        return"] + [
            f"    x_{p} = P[{i}, 0]" for i, p in g]

    def _rw(self, stmts, W: set, R: set, inst: set, own: set):
        """Accesses of the instance names ``inst`` in order: ``R`` gets those read while not
        yet certainly written, ``W`` those certainly written (both branches of an ``if``)."""
        def reads(e):
            names, calls = set(), set()
            _walk_expr(e, names, calls)
            R.update((names & inst) - own - W)
            for f in calls:
                if f in self.callables:
                    self._rw_callable(f, W, R, inst)
        for st in stmts:
            kind = st[0]
            if kind in ("assign", "deriv"):
                reads(st[2])
                if kind == "deriv" and st[1] not in W:
                    R.add(st[1])
                if st[1] in inst and st[1] not in own:
                    W.add(st[1])
            elif kind == "call":
                for a in st[2]:
                    reads(a)
                if st[1] in self.callables:
                    self._rw_callable(st[1], W, R, inst)
            elif kind == "solve":
                if st[1] in self.callables:
                    self._rw_callable(st[1], W, R, inst)
            elif kind == "if":
                reads(st[1])
                W1, W2 = set(W), set(W)
                self._rw(st[2], W1, R, inst, own)
                self._rw(st[3], W2, R, inst, own)
                W |= W1 & W2

    def _rw_callable(self, name, W, R, inst):
        c = self.callables[name]
        own = set(c.args) | self.locals_of(c.body) | ({name} if c.kind == "FUNCTION" else set())
        self._rw(c.body, W, R, inst, own)

    @property
    def temporaries(self) -> set:
        """ASSIGNED names no kernel reads before writing them (a gate's ``minf``, ``mtau``:
        set by its rates PROCEDURE, then used): the ``cur`` and ``state`` kernels do not
        store them (``init`` does), their row in ``A`` is never read afterwards."""
        if not hasattr(self, "_temporaries"):
            inst = set(self.m.assigned)
            R = set()
            blocks = [self.mod.initial, self.breakpoint_body(),
                      [st for st in self.mod.breakpoint if st[0] == "solve"]]
            if self.mod.net_receive is not None:
                blocks.append(self.mod.net_receive.body)
            for body in blocks:
                self._rw(body, set(), R, inst, self.locals_of(body))
            self._temporaries = inst - R
        return self._temporaries

    def store(self, ind: str, states=True, temporaries=True) -> list[str]:
        m = self.m
        out = []
        if states:
            out += [f"{ind}S[{i}, j] = x_{s}" for i, s in enumerate(m.states)]
        out += [f"{ind}A[{i}, j] = x_{a}" for i, a in enumerate(m.assigned)
                if temporaries or a not in self.temporaries]
        out += [f"{ind}P[{i}, j] = x_{p}" for i, p in enumerate(m.param_names)
                if p in self.written_params]
        return out

    def conc_writes(self, ind: str) -> list[str]:
        out = []
        for ion in self.ions:
            for n, row in ((f"{ion}i", ION_CI), (f"{ion}o", ION_CO)):
                if n in self.m.ions[ion]["write"]:
                    out.append(f"{ind}ion_{ion}[{row}, kk] = x_{n}")
        return out

    @property
    def written_params(self) -> set:
        r, w, c, loc = set(), set(), set(), set()
        _walk(self.mod.initial + self.mod.breakpoint, r, w, c, loc)
        for name in self.callables:
            w |= self._touch[name][1]
        return w & set(self.m.param_names)

    def init_src(self) -> list[str]:
        scope = self.locals_of(self.mod.initial)
        lines = ["", "", "@njit(cache=True, error_model='numpy')", self.signature("init"),
                 "    for j in range(k.size):"]
        lines += self.load("        ", True)
        lines += [f"        l_{n} = 0.0" for n in sorted(scope)]
        lines += self.stmts(self.mod.initial, scope, "        ")
        lines += self.store("        ") + self.conc_writes("        ")
        return lines

    def breakpoint_body(self):
        return [st for st in self.mod.breakpoint if st[0] != "solve"]

    def written_currents(self) -> list[str]:
        return [c for c in self.m.currents if c.startswith("i") and c[1:] in self.m.ions]

    def linear_current(self):
        """The BREAKPOINT (without SOLVE) as ``[(name, expression, degree in v, line)]`` when its
        currents are linear in ``v`` — straight-line assignments, every expression of
        degree ≤ 1 in ``v`` (through the names assigned before it), no name read before
        the body assigns it, no call whose value depends on ``v`` — so ``g = ∂i/∂v`` is
        exact from the syntax tree and one evaluation gives ``i`` and ``g``; else None
        (e.g. a GHK current: the numerical ``(i(v + 0.001) − i(v))/0.001``)."""
        body = [st for st in self.breakpoint_body() if st[0] != "local"]
        if any(st[0] != "assign" for st in body):
            return None
        assigned = {st[1] for st in body}
        if "v" in assigned:
            return None
        deg, seen, out = {"v": 1}, set(), []
        for _, w, e, line in body:
            names, calls = set(), set()
            _walk_expr(e, names, calls)
            for f in calls:
                names |= self.touches(f)
            if (names & assigned) - seen:
                return None
            d = _v_degree(e, deg, self.touches)
            if d > 1:
                return None
            deg[w] = d
            seen.add(w)
            out.append((w, e, d, line))
        return out

    def dv_expr(self, e, deg: dict, scope: set, line: int):
        """Source of ``∂e/∂v`` for an expression ``e`` of degree ≤ 1 in ``v`` (None: 0);
        a name ``n`` of degree 1 assigned before has the derivative ``_dv_n``."""
        kind = e[0]
        if kind == "name":
            if e[1] == "v":
                return "1.0"
            return f"_dv_{e[1]}" if deg.get(e[1], 0) else None
        if kind == "neg":
            a = self.dv_expr(e[1], deg, scope, line)
            return None if a is None else f"(-{a})"
        if kind != "bin" or _v_degree(e, deg, self.touches) == 0:
            return None
        op = e[1]
        da, db = (self.dv_expr(x, deg, scope, line) for x in (e[2], e[3]))
        if op in ("+", "-"):
            if da is None:
                return db if op == "+" or db is None else f"(-{db})"
            return da if db is None else f"({da} {op} {db})"
        if op == "*":       # one factor is free of v
            if da is None:
                a = self.expr(e[2], scope, line)
                return a if db == "1.0" else f"({a} * {db})"
            b = self.expr(e[3], scope, line)
            return b if da == "1.0" else f"({da} * {b})"
        return f"({da} / {self.expr(e[3], scope, line)})"        # "/": denominator free of v

    def cur_src(self, numerical: bool = False) -> list[str]:
        """The BREAKPOINT's currents and conductance.  Currents linear in ``v``
        (:meth:`linear_current`): one evaluation at ``v``, ``g = ∂i/∂v`` from the syntax
        tree; otherwise (or ``numerical``) NEURON's two evaluations, at ``v + 0.001`` and
        ``v``, and ``g = (i(v + 0.001) − i(v))/0.001``.  The linear case is a few products
        per instance, so it is one loop reading and adding to the nodes directly (no
        scratch rows: the traffic would cost more than vectorising saves); the numerical
        one, vectorised (see :attr:`vectorised_state`), is a gather loop, the loop of the
        evaluations writing the node current, conductance and ion currents into scratch
        rows, and a loop adding these to the nodes."""
        m = self.m
        body = self.breakpoint_body()
        scope = self.locals_of(body)
        ind = "        "
        linear = None if numerical else self.linear_current()
        vec = self.vectorised_state and linear is None
        written_i = self.written_currents()
        na, ng = len(m.assigned), len(self.gathered())
        lines = ["", "", f"@njit(cache=True, error_model='numpy'{_VEC_FLAGS if vec else ''})",
                 self.signature("cur")]
        if not m.currents:      # e.g. a concentration pool: nothing to add to the nodes
            return lines + ["    return"]
        lines += self.head()
        gather = []
        if vec:
            gather = [f"        A[{na + r}, j] = {src}"
                      for r, (n, src) in enumerate(self.gathered())]
        loads = self.load(ind, False, scratch=vec)
        code = [f"{ind}l_{n} = 0.0" for n in sorted(scope)]
        total = " + ".join(f"x_{c}" for c in m.currents) or "0.0"
        so = self.second_order
        nw = len(written_i)
        if linear is not None:
            deg = {"v": 1}
            for w, e, dg, line in linear:
                code.append(f"{ind}{self.target(w, scope, line)} = {self.expr(e, scope, line)}")
                if dg:
                    code.append(f"{ind}_dv_{w} = {self.dv_expr(e, deg, scope, line)}")
                deg[w] = dg
            slope = {c: f"_dv_{c}" if deg.get(c, 0) else "0.0" for c in m.currents}
            code.append(f"{ind}_i = {total}")
            code.append(f"{ind}_g = {' + '.join(slope[c] for c in m.currents) or '0.0'}")
        else:
            code.append(f"{ind}_v0 = x_v")
            code.append(f"{ind}x_v = _v0 + 0.001")
            code += self.stmts(body, scope, ind)
            code.append(f"{ind}_g = {total}")
            if so:        # NEURON's _ion_di<ion>dv: (i(v + 0.001) − i(v)) / 0.001
                code += [f"{ind}_d_{c} = x_{c}" for c in written_i]
            code.append(f"{ind}x_v = _v0")
            code += [f"{ind}x_{c} = 0.0" for c in written_i]
            code += self.stmts(body, scope, ind)
            code.append(f"{ind}_i = {total}")
            code.append(f"{ind}_g = (_g - _i) / 0.001")
            slope = {c: f"(_d_{c} - x_{c}) / 0.001" for c in written_i}
        if vec:
            code.append(f"{ind}A[{na + ng}, j] = _i * fac[j]")
            code.append(f"{ind}A[{na + ng + 1}, j] = _g * fac[j]")
            for q, c in enumerate(written_i):
                code.append(f"{ind}A[{na + ng + 2 + q}, j] = x_{c}")
                if so:
                    code.append(f"{ind}A[{na + ng + 2 + nw + q}, j] = {slope[c]}")
        else:
            code.append(f"{ind}rhs[kk] -= _i * fac[j]")
            code.append(f"{ind}d[kk] += _g * fac[j]")
            for c in written_i:
                code.append(f"{ind}ion_{c[1:]}[{ION_I}, kk] += x_{c}")
                if so:
                    code.append(f"{ind}ion_{c[1:]}[{ION_DIDV}, kk] += {slope[c]}")
        loads, stores = _prune(loads, code, self.store(ind, temporaries=False))
        if vec:
            used = set(_X_RE.findall("\n".join(loads)))
            gather = [g for g, (n, _) in zip(gather, self.gathered()) if f"x_{n}" in used]
            if gather:
                lines += ["    for j in range(k.size):", "        kk = k[j]"] + gather
        lines += ["    for j in range(k.size):"] + loads + code + stores
        if vec:
            lines += ["    for j in range(k.size):", "        kk = k[j]",
                      f"        rhs[kk] -= A[{na + ng}, j]", f"        d[kk] += A[{na + ng + 1}, j]"]
            for q, c in enumerate(written_i):
                lines.append(f"        ion_{c[1:]}[{ION_I}, kk] += A[{na + ng + 2 + q}, j]")
                if so:
                    lines.append(f"        ion_{c[1:]}[{ION_DIDV}, kk] += A[{na + ng + 2 + nw + q}, j]")
        return lines

    def state_src(self) -> list[str]:
        ind = "        "
        vec = self.vectorised_state
        lines = ["", "", f"@njit(cache=True, error_model='numpy'{_VEC_FLAGS if vec else ''})",
                 self.signature("state")] + self.head()
        na = len(self.m.assigned)
        loads = self.load(ind, False, scratch=vec)
        code = []
        for st in self.mod.breakpoint:
            if st[0] != "solve":
                continue
            _, block, method, line = st
            if block not in self.callables:
                raise self.fail(f"SOLVE {block}: no such block", line)
            c = self.callables[block]
            if c.kind == "PROCEDURE" and not method:
                code += self.call_stmt(("call", block, [], line), set(), ind)
            elif c.kind == "DERIVATIVE" and method == "cnexp":
                code += self.cnexp(c, ind)
            elif c.kind == "DERIVATIVE" and method == "derivimplicit":
                code += self.derivimplicit(c, ind)
            else:
                raise self.fail(f"SOLVE {block} METHOD {method or '(none)'} is not supported "
                                "(cnexp and derivimplicit are)", line)
        conc = self.conc_writes(ind)
        scatter = []
        if vec and conc:        # written concentrations: to their scratch rows, then the nodes
            rows = {n: na + r for r, (n, _) in enumerate(self.gathered())}
            written = [(ion, n, row) for ion in self.ions
                       for n, row in ((f"{ion}i", ION_CI), (f"{ion}o", ION_CO))
                       if n in self.m.ions[ion]["write"]]
            conc = [f"{ind}A[{rows[n]}, j] = x_{n}" for _, n, _ in written]
            scatter = ["    for j in range(k.size):", "        kk = k[j]"] + [
                f"        ion_{ion}[{row}, kk] = A[{rows[n]}, j]" for ion, n, row in written]
        loads, stores = _prune(loads, code, self.store(ind, temporaries=False), keep_stores=conc)
        if vec:
            used = set(_X_RE.findall("\n".join(loads)))
            gather = [f"        A[{na + r}, j] = {src}"
                      for r, (n, src) in enumerate(self.gathered()) if f"x_{n}" in used]
            if gather:
                lines += ["    for j in range(k.size):", "        kk = k[j]"] + gather
        lines += ["    for j in range(k.size):"] + loads + code + stores + conc + scatter
        return lines

    def deriv_states(self, c) -> list[str]:
        out = []
        for st in self._flat(c.body):
            if st[0] == "deriv":
                s = st[1]
                if s not in self.m.states and self.m.ion_var(s) is None:
                    raise self.fail(f"{s}' = …: {s} is not a STATE", st[-1])
                if s in out:
                    raise self.fail(f"{s}' given twice", st[-1])
                out.append(s)
        return out

    def _flat(self, body):
        for st in body:
            yield st
            if st[0] == "if":
                yield from self._flat(st[2])
                yield from self._flat(st[3])

    def cnexp(self, c, ind):
        scope = self.locals_of(c.body)
        lines = [f"{ind}l_{n} = 0.0" for n in sorted(scope)]

        def deriv(st, scope, ind2):
            s, e, line = st[1], st[2], st[3]
            if _degree(e, s, self.touches) > 1:
                raise self.fail(f"METHOD cnexp needs {s}' linear in {s}; use derivimplicit", line)
            x = self.target(s, scope, line)
            relax = _relaxation(e, s, self.touches)
            if relax is not None:      # x' = (x∞ − x)/τ: x += (x∞ − x)(1 − e^{−dt/τ})
                inf, tau = (self.expr(q, scope, line) for q in relax)
                return [f"{ind2}{x} = {x} + ({inf} - {x}) * (1.0 - fexp(-dt / {tau}))"]
            a = self.expr(e, scope, line, {s: "0.0"})
            b = self.expr(e, scope, line, {s: "1.0"})
            return [f"{ind2}_a = {a}", f"{ind2}_b = {b} - _a",
                    f"{ind2}{x} = cnexp_step({x}, _a, _b, dt)"]
        self.deriv_states(c)
        lines += self.stmts(c.body, scope, ind, deriv)
        return lines

    def derivimplicit(self, c, ind):
        states = self.deriv_states(c)
        n = len(states)
        # the derivative function: states are its first arguments
        reads, writes, calls, loc = set(), set(), set(), set()
        _walk(c.body, reads, writes, calls, loc)
        inst = self.instance_names()
        touched, written = set(), set()
        for callee in calls:
            if callee in self._touch:
                t, w = self._touch[callee]
                touched |= t
                written |= w
        touched |= {x for x in reads | writes if x in inst and x not in loc}
        written |= {x for x in writes if x in inst and x not in loc}
        written -= set(states)
        others = sorted(touched - set(states))
        fname = f"d_{self.tag}_{c.name}"
        scope = loc

        def deriv(st, scope, ind2):
            return [f"{ind2}_f{states.index(st[1])} = {self.expr(st[2], scope, st[3])}"]
        fn = ["", "", "@njit(cache=True, error_model='numpy')",
              f"def {fname}({', '.join([f'x_{s}' for s in states] + [f'x_{o}' for o in others])}):"]
        fn += [f"    l_{x} = 0.0" for x in sorted(scope)]
        fn += [f"    _f{i} = 0.0" for i in range(n)]
        fn += self.stmts(c.body, scope, "    ", deriv)
        outs = [f"_f{i}" for i in range(n)] + [f"x_{w}" for w in sorted(written)]
        fn.append(f"    return ({', '.join(outs)},)")
        self.extra_functions.extend(fn)
        st_args = [f"x_{s}" for s in states]
        oth = [f"x_{o}" for o in others]
        w_lhs = [f"x_{w}" for w in sorted(written)]
        junk = [f"_w{i}" for i in range(len(written))]

        def call(args, lhs_f):
            return f"{', '.join(lhs_f + junk)}, = {fname}({', '.join(args + oth)})"
        L = [f"{ind}_y{i} = x_{s}" for i, s in enumerate(states)]
        L.append(f"{ind}for _it in range({NEWTON_MAX_ITER}):")
        I = ind + "    "
        L.append(I + call(st_args, [f"_f{i}" for i in range(n)]))
        for i, s in enumerate(states):
            L.append(f"{I}_r{i} = x_{s} - _y{i} - dt * _f{i}")
        for j, s in enumerate(states):
            L.append(f"{I}_h = 1e-7 * max(abs(x_{s}), 1e-9)")
            args = [f"x_{q}" if q != s else f"(x_{q} + _h)" for q in states]
            L.append(I + call(args, [f"_g{i}" for i in range(n)]))
            for i in range(n):
                L.append(f"{I}_J{i}_{j} = {1.0 if i == j else 0.0} - dt * (_g{i} - _f{i}) / _h")
        # Gaussian elimination (no pivoting: J = I - dt·∂f/∂y is near the identity)
        for p in range(n):
            for i in range(p + 1, n):
                L.append(f"{I}_m = _J{i}_{p} / _J{p}_{p}")
                for j in range(p + 1, n):
                    L.append(f"{I}_J{i}_{j} -= _m * _J{p}_{j}")
                L.append(f"{I}_r{i} -= _m * _r{p}")
        for i in reversed(range(n)):
            acc = " - ".join([f"_r{i}"] + [f"_J{i}_{j} * _x{j}" for j in range(i + 1, n)])
            L.append(f"{I}_x{i} = ({acc}) / _J{i}_{i}")
        L.append(f"{I}_conv = True")
        for i, s in enumerate(states):
            L.append(f"{I}x_{s} -= _x{i}")
            L.append(f"{I}if abs(_x{i}) > {NEWTON_TOL} * abs(x_{s}) + 1e-300:")
            L.append(f"{I}    _conv = False")
        L.append(f"{I}if _conv:")
        L.append(f"{I}    break")
        if written:
            L.append(f"{ind}{', '.join([f'_f{i}' for i in range(n)] + w_lhs)}, = "
                     f"{fname}({', '.join(st_args + oth)})")
        return L

    def net_receive_src(self) -> list[str]:
        """``net_<m>(j, w, …)``: the NET_RECEIVE block for instance ``j`` and the summed
        weight ``w`` of one step's events (refused unless every statement is
        ``x = x ± (an amount proportional to the weight)``, for which summing is exact)."""
        c = self.mod.net_receive
        w = c.args[0]
        targets = set()
        for st in c.body:
            if st[0] != "assign":
                raise self.fail("NET_RECEIVE may only contain statements x = x + (weight·…): "
                                "cosim sums the events of one step at a synapse", st[-1])
            targets.add(st[1])
        for st in c.body:
            _, x, e, line = st
            ok = (e[0] == "bin" and e[1] in ("+", "-") and e[2] == ("name", x)
                  and _homogeneous(e[3], w)) or (
                e[0] == "bin" and e[1] == "+" and e[3] == ("name", x) and _homogeneous(e[2], w))
            names, calls = set(), set()
            _walk_expr(e, names, calls)
            if not ok or (names & targets) - {x} or any(x in self.touches(f) for f in calls):
                raise self.fail(f"NET_RECEIVE: {x} = … must add an amount proportional to "
                                f"{w} (x = x + {w}·…); cosim sums the events of one step at a "
                                "synapse, which is exact only then", line)
        scope = {w}
        ions = [f"ion_{i}" for i in self.ions]
        lines = ["", "", "@njit(cache=True, error_model='numpy')",
                 f"def net_{self.tag}({', '.join(['j', 'l_' + w, 'v', 'k', 'P', 'S', 'A'] + ions + ['celsius', 'dt', 't'])}):"]
        lines += self.load("    ", False, hoist=False)
        lines += self.stmts(c.body, scope, "    ")
        lines += self.store("    ")
        return lines

    def source(self) -> list[str]:
        self.extra_functions: list[str] = []
        out = []
        for c in self.callables.values():
            if c.kind != "DERIVATIVE":
                out += self.callable_src(c)
        kern = self.init_src() + self.cur_src(self.numerical_didv) + self.state_src()
        if self.mod.net_receive is not None:
            kern += self.net_receive_src()
        return out + self.extra_functions + kern


def conductance_method(mech: Mechanism) -> str:
    """How the kernels get a mechanism's conductance: ``"symbolic"`` (currents linear in
    ``v``, ``g = ∂i/∂v`` from the syntax tree, one evaluation) or ``"numerical"`` (NEURON's
    ``(i(v + 0.001) − i(v))/0.001``, two evaluations; e.g. a GHK current)."""
    return "numerical" if _MechGen(mech).linear_current() is None else "symbolic"


def check_mechanism(mech: Mechanism) -> None:
    """Generate the kernels' source once, so that every error shows before a run."""
    _MechGen(mech).source()


# -- the module of a mechanism set ------------------------------------------------------

def _template() -> str:
    from . import cable
    src = inspect.getsource(cable.run_window)
    head = "stims, rec):"
    if head not in src or "# @mechanisms: currents" not in src or "# @mechanisms: states" not in src:
        raise RuntimeError("cable.run_window lost its mechanism hooks")
    if "# @mechanisms: events" not in src or "# @mechanisms: second order" not in src:
        raise RuntimeError("cable.run_window lost its mechanism hooks")
    return src.replace(head, "stims, rec, celsius, mechs, ions, pp):", 1)


def module_source(mechs: list[Mechanism], ions: list[str], second_order: bool = False,
                  numerical_didv: bool = False) -> str:
    """The kernel module of ``mechs`` (in this order) over the ions ``ions``;
    ``second_order``: for Crank–Nicolson, with the ion currents moved to the half step;
    ``numerical_didv``: every conductance by NEURON's two evaluations (for comparisons)."""
    from .mechanism import ION_DEFAULTS
    lines = ['"""Generated by cosim.multicompartment.codegen — do not edit."""', "",
             "import math", "from numba import njit",
             "from cosim.multicompartment.fastexp import fexp, flog, fpow, cnexp_step",
             "from cosim.multicompartment import cable as _cable",
             "globals().update({k: getattr(_cable, k) for k in dir(_cable) if not k.startswith('__')})"]
    for m in mechs:
        lines += _MechGen(m, second_order, numerical_didv).source()
    valence = {}
    for m in mechs:
        for ion, u in m.ions.items():
            valence[ion] = u["valence"]
    # ion restart at each step: currents to 0; where a mechanism writes a concentration,
    # e by Nernst (libm's log at the flagged nodes only: measured 3× faster than a
    # branch-free loop computing flog at every node); an ion whose concentrations nobody
    # writes only restarts its currents
    from .nmodl import FARADAY, GAS_CONSTANT
    zero = [f"        ion[{ION_I}, q] = 0.0"] + ([f"        ion[{ION_DIDV}, q] = 0.0"]
                                                   if second_order else [])
    lines += ["", "", "@njit(cache=True, error_model='numpy')",
              "def ion_zero(ion, z, celsius):",
              "    for q in range(ion.shape[1]):"] + zero
    lines += ["", "", "@njit(cache=True, error_model='numpy')",
              "def ion_start(ion, z, celsius):",
              "    ktf = 1000.0 * %r * (celsius + 273.15) / %r / z" % (GAS_CONSTANT, FARADAY),
              "    for q in range(ion.shape[1]):"] + zero + [
              f"        if ion[{ION_NERNST}, q] != 0.0:",
              f"            ci = ion[{ION_CI}, q]",
              f"            co = ion[{ION_CO}, q]",
              "            if ci <= 0.0:",
              f"                ion[{ION_E}, q] = 1e6",
              "            elif co <= 0.0:",
              f"                ion[{ION_E}, q] = -1e6",
              "            else:",
              f"                ion[{ION_E}, q] = ktf * math.log(co / ci)"]
    nernst_ions = {ion for m in mechs for ion in m.writes_concentration}
    start = ["ion_start" if x in nernst_ions else "ion_zero" for x in ions]

    def calls(kind, ind, v="v"):
        out = []
        for i, m in enumerate(mechs):
            if kind == "net":
                if m.mod.net_receive is not None:
                    ia = [f"ions[{ions.index(x)}]" for x in sorted(m.ions)]
                    out += [f"if pp[0][j] == {i}:", f"    net_{m.name}(" + ", ".join(
                        ["pp[1][j]", "w", "v"] + [f"mechs[{i}][{r}]" for r in (0, 2, 3, 4)]
                        + ia + ["celsius", "dt", "step * dt"]) + ")"]
                continue
            a = [f"mechs[{i}][{r}]" for r in range(5)]
            if kind != "cur":
                a = [a[0]] + a[2:]
            ia = [f"ions[{ions.index(x)}]" for x in sorted(m.ions)]
            head = [v, "d", "rhs"] if kind == "cur" else [v]
            tt = "(step + 0.5) * dt" if kind == "cur" else ("(step + 1.0) * dt" if kind == "state" else "0.0")
            out.append(f"{ind}{kind}_{m.name}({', '.join(head + a + ia + ['celsius', 'dt', tt])})")
        return out
    z = [valence.get(x, ION_DEFAULTS.get(x, {}).get("z", 1.0)) for x in ions]
    cur = [f"{start[q]}(ions[{q}], {z[q]!r}, celsius)" for q in range(len(ions))]
    cur += calls("cur", "")
    state = calls("state", "")
    events = calls("net", "")
    lines += ["", "", "@njit(cache=True, error_model='numpy')",
              "def init_mechanisms(v, celsius, dt, mechs, ions):"]
    lines += [f"    {start[q]}(ions[{q}], {z[q]!r}, celsius)" for q in range(len(ions))]
    lines += calls("init", "    ") or ["    pass"]
    tmpl = _template()
    out_t = []
    # Crank–Nicolson (NEURON's secondorder = 2): ion currents at t + dt/2, i += (di/dv)·Δv
    half = [f"ion_half_step(ions[{q}], rhs)" for q in range(len(ions))] if second_order else []
    if second_order:
        lines += ["", "", "@njit(cache=True, error_model='numpy')",
                  "def ion_half_step(ion, dv):",
                  "    for q in range(ion.shape[1]):",
                  f"        ion[{ION_I}, q] += ion[{ION_DIDV}, q] * dv[q]"]
    hooks = {"# @mechanisms: currents": cur, "# @mechanisms: states": state,
             "# @mechanisms: events": events, "# @mechanisms: second order": half}
    for ln in tmpl.splitlines():
        s = ln.strip()
        if s in hooks:
            ind = ln[:len(ln) - len(ln.lstrip())]
            out_t += [ind + x for x in hooks[s]]
        else:
            out_t.append(ln)
    lines += ["", ""] + out_t
    return "\n".join(lines) + "\n"


_LOADED: dict[str, object] = {}


def _dependency_hash() -> bytes:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _DEPENDENCIES + ("codegen", "nmodl"):
        h.update((here / f"{name}.py").read_bytes())
    return h.digest()


def kernel_module(mechs: list[Mechanism], ions: list[str], second_order: bool = False,
                  numerical_didv: bool = False):
    """The imported kernel module of ``mechs`` over ``ions`` (written and cached on first use)."""
    src = module_source(mechs, ions, second_order, numerical_didv)
    key = hashlib.sha256(src.encode() + _dependency_hash()).hexdigest()[:20]
    if key in _LOADED:
        return _LOADED[key]
    folder = cache_dir() / key
    path = folder / f"mechset_{key}.py"
    if not path.exists() or path.read_text() != src:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(src)
        os.replace(tmp, path)
    name = f"cosim_mechset_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    _LOADED[key] = mod
    return mod
