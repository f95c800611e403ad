"""The kernels' shortcuts against the definitions they replace (:mod:`.codegen`):

* a current linear in ``v`` gets its conductance ``∂i/∂v`` from the syntax tree in one
  evaluation, where NEURON evaluates the BREAKPOINT twice (``(i(v + 0.001) − i(v))/0.001``):
  both give the same conductance to rounding, and both equal ``g`` computed here with
  numpy from the published form ``i = g·(v − e)``; a current not linear in ``v`` (a GHK
  calcium current) is detected and keeps NEURON's two evaluations — its conductance is
  the finite difference (numpy), not the exact derivative;
* ``cnexp`` of ``x' = (x∞ − x)/τ`` is ``x += (x∞ − x)(1 − e^{−dt/τ})``: the exact
  solution over one step at fixed ``v`` (numpy), as is the general linear form
  ``x' = a + b·x``;
* the vectorisable ``log`` and ``pow`` of NMODL code against numpy's.

The kernels are called directly on arrays (only the kernels called are compiled); the
NEURON comparisons of every shipped mechanism with these kernels are tests/test_mc_nmodl.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosim.multicompartment import codegen
from cosim.multicompartment.mechanism import (ION_CI, ION_CO, ION_DEFAULTS, ION_E, ION_I,
                                              ION_ROWS, Catalogue, load_mechanism,
                                              shipped_mod_dir)
from cosim.multicompartment.nmodl import FARADAY, GAS_CONSTANT

SHIPPED = ("na_pos", "kdr_pos", "im_pos", "ih", "ca_hva", "ca_lva", "sk", "cadecay")
CELSIUS, DT = 34.0, 0.025

GHK = """
COMMENT
Test mechanism: a calcium current by the Goldman-Hodgkin-Katz flux equation, not linear in v.
ENDCOMMENT
NEURON {
    SUFFIX cat_ghk
    USEION ca READ cai, cao WRITE ica
    RANGE pbar
}
UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (mM) = (milli/liter)
    FARADAY = (faraday) (coulomb)
    R = (k-mole) (joule/degC)
}
PARAMETER { pbar = 2e-4 (cm/s) }
ASSIGNED { v (mV) ica (mA/cm2) cai (mM) cao (mM) celsius (degC) }
STATE { m }
INITIAL { m = 0.3 }
BREAKPOINT {
    SOLVE states METHOD cnexp
    ica = pbar * m * m * ghk(v, cai, cao)
}
DERIVATIVE states { m' = (0.3 - m) / 5 }
FUNCTION ghk(v (mV), ci (mM), co (mM)) (mV) {
    LOCAL z
    z = (0.001) * 2 * FARADAY * v / (R * (celsius + 273.15))
    ghk = (0.001) * 2 * FARADAY * (ci - co * exp(-z)) * z / (1 - exp(-z))
}
"""

#: ``(conductance density parameter, gate exponents, reversal)`` of the shipped channels
#: (the published forms in their .mod docstrings): g = gbar · Π gate^power.
CHANNELS = {"na_pos": ("gnabar", {"m": 3, "h": 1}, ("na", ION_E)),
            "kdr_pos": ("gkbar", {"n": 4}, ("k", ION_E)),
            "im_pos": ("gkbar", {"p": 1}, ("k", ION_E)),
            "ih": ("gbar", {"m": 1}, "ehcn"),
            "ca_hva": ("gbar", {"m": 2, "h": 1}, ("ca", ION_E)),
            "ca_lva": ("gbar", {"m": 2, "h": 1}, ("ca", ION_E)),
            "sk": ("gbar", {"z": 1}, ("k", ION_E))}


@pytest.fixture(scope="module")
def cat():
    return Catalogue.from_paths([shipped_mod_dir()])


@pytest.fixture(scope="module")
def ghk(tmp_path_factory):
    p = tmp_path_factory.mktemp("ghk") / "cat_ghk.mod"
    p.write_text(GHK)
    return load_mechanism(p)


def _arrays(mech, n, rng):
    """Instance arrays of ``n`` instances on ``n`` nodes (instance j on node n − 1 − j)."""
    k = np.arange(n)[::-1].copy()
    fac = rng.uniform(0.5, 2.0, n)
    P = np.array([[mech.defaults[p]] * n for p in mech.param_names]).reshape(len(mech.params), n)
    for i, p in enumerate(mech.param_names):
        if p.startswith("g") or p == "pbar":
            P[i] *= rng.uniform(0.5, 2.0, n)
    S = rng.uniform(0.05, 0.95, (len(mech.states), n))
    A = np.zeros((len(mech.assigned) + codegen.n_scratch(mech), n))
    v = rng.uniform(-95.0, 45.0, n)
    ions = {}
    for ion in mech.ions:
        arr = np.zeros((ION_ROWS, n))
        arr[ION_E] = ION_DEFAULTS[ion]["e"] + rng.uniform(-5, 5, n)
        arr[ION_CI] = ION_DEFAULTS[ion]["ci"] * rng.uniform(0.5, 20.0, n)
        arr[ION_CO] = ION_DEFAULTS[ion]["co"]
        ions[ion] = arr
    return v, k, fac, P, S, A, ions


def _cur(mech, numerical, v, k, fac, P, S, A, ions):
    mod = codegen.kernel_module([mech], sorted(mech.ions), numerical_didv=numerical)
    d, rhs = np.zeros(v.size), np.zeros(v.size)
    ion_arrs = [ions[x].copy() for x in sorted(mech.ions)]
    getattr(mod, f"cur_{mech.name}")(v, d, rhs, k, fac, P.copy(), S.copy(), A.copy(), *ion_arrs,
                                     CELSIUS, DT, 0.0)
    return d, rhs, dict(zip(sorted(mech.ions), ion_arrs))


def test_which_currents_are_linear(cat, ghk):
    """Every shipped channel's current is g·(v − e) with g free of v: symbolic; the GHK
    current (v inside exp and in a FUNCTION's argument) is not: numerical."""
    for name in SHIPPED:
        assert codegen.conductance_method(cat.mechanisms[name]) == "symbolic", name
    assert codegen.conductance_method(ghk) == "numerical"


@pytest.mark.parametrize("name", ["na_pos", "ih", "sk"])
def test_symbolic_conductance_equals_the_numerical_one_and_the_published_form(cat, name):
    mech = cat.mechanisms[name]
    rng = np.random.default_rng(7)
    v, k, fac, P, S, A, ions = _arrays(mech, 37, rng)
    d_sym, rhs_sym, ion_sym = _cur(mech, False, v, k, fac, P, S, A, ions)
    d_num, rhs_num, ion_num = _cur(mech, True, v, k, fac, P, S, A, ions)
    # the two paths: the same current, the conductance to rounding (the finite difference
    # of a linear function loses ~ε·|v − e|/0.001 ≈ 1e-11 relative)
    np.testing.assert_allclose(rhs_sym, rhs_num, rtol=1e-14, atol=0)
    np.testing.assert_allclose(d_sym, d_num, rtol=1e-9, atol=0)
    assert not np.array_equal(d_sym, d_num)       # two computations, not one
    # the published form, evaluated here: g = gbar·Π gate^p, i = g·(v − e)
    gname, gates, rev = CHANNELS[name]
    g = P[mech.param_names.index(gname)].copy()
    for s, p in gates.items():
        g *= S[mech.states.index(s)] ** p
    e = ions[rev[0]][rev[1]][k] if isinstance(rev, tuple) else P[mech.param_names.index(rev)]
    np.testing.assert_allclose(d_sym[k], g * fac, rtol=1e-14)
    np.testing.assert_allclose(-rhs_sym[k], g * (v[k] - e) * fac, rtol=1e-12)
    for c in mech.currents:         # a written ion current goes to the node's ion
        if c[1:] in mech.ions:
            np.testing.assert_allclose(ion_sym[c[1:]][ION_I, k], g * (v[k] - e), rtol=1e-12)
            np.testing.assert_allclose(ion_sym[c[1:]][ION_I], ion_num[c[1:]][ION_I], rtol=1e-14)


def test_ghk_current_takes_neurons_finite_difference(ghk):
    mech = ghk
    rng = np.random.default_rng(3)
    v, k, fac, P, S, A, ions = _arrays(mech, 29, rng)
    v[:2] = (-60.0, 20.0)
    d, rhs, ion = _cur(mech, False, v, k, fac, P, S, A, ions)
    ci, co = ions["ca"][ION_CI][k], ions["ca"][ION_CO][k]
    pbar, m = P[0], S[0]

    def ica(vv):
        z = 1e-3 * 2 * FARADAY * vv / (GAS_CONSTANT * (CELSIUS + 273.15))
        return pbar * m * m * 1e-3 * 2 * FARADAY * (ci - co * np.exp(-z)) * z / (1 - np.exp(-z))
    vk = v[k]
    fd = (ica(vk + 0.001) - ica(vk)) / 0.001
    np.testing.assert_allclose(-rhs[k], ica(vk) * fac, rtol=1e-11)
    np.testing.assert_allclose(d[k], fd * fac, rtol=1e-8)
    h = 1e-4        # the exact derivative differs from the finite difference by O(0.001)
    exact = (ica(vk + h) - ica(vk - h)) / (2 * h)
    assert np.median(np.abs(fd / exact - 1)) > 1e-6
    d_num, rhs_num, _ = _cur(mech, True, v, k, fac, P, S, A, ions)
    assert np.array_equal(d, d_num) and np.array_equal(rhs, rhs_num)


@pytest.mark.parametrize("name", ["na_pos", "cadecay"])
def test_cnexp_is_the_exact_step_at_fixed_v(cat, name):
    """na_pos's gates (x' = (x∞ − x)/τ): x_{n+1} = x∞ + (x_n − x∞)e^{−dt/τ} with x∞, τ
    from the published rate functions (numpy); cadecay (cai' = a + b·cai, not of that form): the
    exact solution of the linear equation, a and b evaluated here."""
    mech = cat.mechanisms[name]
    rng = np.random.default_rng(11)
    v, k, fac, P, S, A, ions = _arrays(mech, 23, rng)
    mod = codegen.kernel_module([mech], sorted(mech.ions))
    ion_arrs = [ions[x].copy() for x in sorted(mech.ions)]
    if name == "cadecay":
        ion_arrs[0][ION_I] = rng.uniform(-1e-3, 0.0, v.size)
        ion_arrs[0][ION_CI] = rng.uniform(5e-5, 5e-3, v.size)
    S0, ion0 = S.copy(), [a.copy() for a in ion_arrs]
    getattr(mod, f"state_{name}")(v, k, P, S, A, *ion_arrs, CELSIUS, DT, 0.0)
    if name == "na_pos":        # Pospischil et al. 2008 eqs. (2)-(3), as in na_pos.mod
        u = v[k] - P[mech.param_names.index("vt")]
        tadj = 3.0 ** ((CELSIUS - 36.0) / 10.0)
        am = 0.32 * -(u - 13) / np.expm1(-(u - 13) / 4)
        bm = 0.28 * (u - 40) / np.expm1((u - 40) / 5)
        ah = 0.128 * np.exp(-(u - 17) / 18)
        bh = 4 / (1 + np.exp(-(u - 40) / 5))
        rates = {"m": (am / (am + bm), 1 / ((am + bm) * tadj)),
                 "h": (ah / (ah + bh), 1 / ((ah + bh) * tadj))}
        for s in ("m", "h"):
            inf, tau = rates[s]
            x0 = S0[mech.states.index(s)]
            want = inf + (x0 - inf) * np.exp(-DT / tau)
            np.testing.assert_allclose(S[mech.states.index(s)], want, rtol=1e-12)
            assert np.all(np.abs(S[mech.states.index(s)] - x0) > 0)
    else:
        gamma, decay, depth, minc = (P[mech.param_names.index(p)] for p in
                                     ("gamma", "decay", "depth", "minCai"))
        ica, c0 = ion0[0][ION_I][k], ion0[0][ION_CI][k]
        a = -10000.0 * ica * gamma / (2 * FARADAY * depth) + minc / decay
        b = -1.0 / decay
        want = -a / b + (c0 + a / b) * np.exp(b * DT)
        np.testing.assert_allclose(ion_arrs[0][ION_CI][k], want, rtol=1e-12)


def test_vectorisable_log_and_pow_against_numpy():
    """:func:`.fastexp.flog` within 2 ulp of numpy's log over the normal range, its special
    values; :func:`.fastexp.fpow` (NMODL ``pow`` and ``^``) within 4e-15 of ``a ** b`` for
    positive bases, and numpy's values at zero and negative bases."""
    from numba import njit

    from cosim.multicompartment.fastexp import flog, fpow

    @njit
    def logs(x, out):
        for i in range(x.size):
            out[i] = flog(x[i])

    @njit
    def pows(a, b, out):
        for i in range(a.size):
            out[i] = fpow(a[i], b[i])
    rng = np.random.default_rng(5)
    x = np.concatenate([np.exp(rng.uniform(-705, 705, 20000)), rng.uniform(0.5, 2.0, 20000),
                        1.0 + rng.uniform(-1e-6, 1e-6, 2000), [1.0, 2.0, np.finfo(float).tiny]])
    out = np.empty_like(x)
    logs(x, out)
    ulps = np.abs(out - np.log(x)) / np.spacing(np.abs(np.log(x)))
    assert ulps.max() <= 2.0 and out[-3] == 0.0
    special = np.array([0.0, -1.0, np.inf, np.nan])
    out = np.empty_like(special)
    logs(special, out)
    assert out[0] == -np.inf and np.isnan(out[1]) and out[2] == np.inf and np.isnan(out[3])
    a, b = rng.uniform(1e-4, 50.0, 20000), rng.uniform(-6.0, 6.0, 20000)
    out = np.empty_like(a)
    pows(a, b, out)
    np.testing.assert_allclose(out, a ** b, rtol=4e-15)
    a = np.array([-2.0, -2.0, -2.0, 0.0, 0.0, 0.0, 3.0, 0.1, 1e3])
    b = np.array([2.0, 3.0, 0.5, 2.0, 0.0, -1.0, 0.0, 800.0, 200.0])
    out = np.empty_like(a)
    pows(a, b, out)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(out, a ** b, rtol=1e-15)


def test_vectorisable_exp_within_one_ulp_of_numpy():
    """:func:`.fastexp.fexp` (NMODL ``exp``, every HH and NMODL rate): within 1 ulp of
    numpy's exp over the normal range (the reduced argument's whole range |r| ≤ ln2/2
    included, and the integers where ``k`` changes); exact at 0; clamped to the normal
    range outside [-708, 709]; and it vectorises (the kernels' reason to exist)."""
    from numba import njit

    from cosim.multicompartment.fastexp import fexp

    @njit(fastmath={"contract"})
    def exps(x, out):
        for i in range(x.size):
            out[i] = fexp(x[i])
    rng = np.random.default_rng(11)
    half = np.log(2.0) / 2
    k = np.arange(-1000, 1001) * np.log(2.0)
    x = np.concatenate([rng.uniform(-708, 709, 200000), rng.uniform(-10, 10, 200000),
                        rng.uniform(-half, half, 100000), k[np.abs(k) < 708],
                        k[np.abs(k) < 708] + half * (1 - 1e-15), [0.0, -708.0, 709.0]])
    out = np.empty_like(x)
    exps(x, out)
    ulps = np.abs(out - np.exp(x)) / np.spacing(np.exp(x))
    assert ulps.max() <= 1.0, (ulps.max(), x[np.argmax(ulps)])
    assert out[-3] == 1.0
    edge = np.array([-800.0, 800.0])
    exps(edge, out[:2])
    np.testing.assert_allclose(out[:2], np.exp([-708.0, 709.0]), rtol=3e-16)
    asm = next(iter(exps.inspect_asm().values()))
    assert "ymm" in asm or "zmm" in asm, "fexp's loop did not vectorise"
