"""The ``zerlaut_second_order`` model (moment closure: rates, covariances, adaptation)
against independent sources: TVB's ``ZerlautAdaptationSecondOrder`` run side by side on
connectivity_76 (the set-up of ``tests/test_neural_mass_tvb.py``), the first-order model it
reduces to when the covariances vanish, and the stationary state solved directly — the
adaptation and the covariances eliminated in closed form, the rates by ``scipy.optimize``
with a transfer function written here in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special

from cosim.connectome import make_connectome
from cosim.engines.neural_mass import NeuralMassEngine
from cosim.models import MODELS

M2 = MODELS["zerlaut_second_order"]
M1 = MODELS["zerlaut_first_order"]
NAMES = ("E", "I", "C_ee", "C_ei", "C_ii", "W_e", "W_i", "ou_drift")


def _params(model, n, **values):
    p = np.tile(model.default_parameters(), (n, 1))
    for k, v in values.items():
        p[:, model.parameter_names.index(k)] = v
    return p


def _dfun(model, x, c, p):
    dx = np.zeros_like(x)
    f = model.dfun(())
    for i in range(x.shape[0]):
        f(x, c, p, i, dx)
    return dx


# -- TVB --------------------------------------------------------------------------------

def _lab():
    import test_neural_mass_tvb as base
    return base, base.lab


def test_dfun_equals_tvb_at_random_states():
    """cosim's dfun against TVB's at 500 random states, inputs and non-default parameters
    (through ``cosim.tvb.from_tvb``).  Agreement 1.5e-11 of each derivative's largest
    magnitude: TVB's second derivatives are central differences with a 1e-7 step, which
    amplify the last-bit difference of scipy's and libm's erfc (the first-order model, with
    no differences taken, agrees to 1e-15)."""
    from cosim.tvb import from_tvb

    _, lab = _lab()
    tvb_params = {"b_e": 20.0, "tau_w_i": 20.0, "external_input_ex_ex": 0.001, "S_i": 0.8,
                  "external_input_in_in": 0.0002, "a_i": 1.0, "b_i": 5.0}
    theirs = lab.models.ZerlautAdaptationSecondOrder(
        **{k: np.array([v]) for k, v in tvb_params.items()})
    theirs.configure()
    assert tuple(theirs.state_variables) == M2.state_names
    n = 500
    rng = np.random.default_rng(21)
    lo = np.array([theirs.state_variable_range[v][0] for v in NAMES])
    hi = np.array([theirs.state_variable_range[v][1] for v in NAMES])
    hi[6:] = 1e-3                                    # TVB's [0, 0] for W_i, ou_drift
    x = lo + (hi - lo) * rng.random((n, lo.size))
    c_tvb = rng.normal(0.0, 0.005, (1, n))           # negative drives exercise the clipping
    dx_tvb = np.asarray(theirs.dfun(x.T[..., None], c_tvb[..., None]))[..., 0].T
    dx = _dfun(M2, x, np.ascontiguousarray(c_tvb.T),
               _params(M2, n, **from_tvb("zerlaut_second_order", tvb_params)))
    scale = np.abs(dx_tvb).max(axis=0)
    assert (scale > 0).all()
    np.testing.assert_allclose(dx / scale, dx_tvb / scale, rtol=0, atol=1e-10)


def test_defaults_equal_tvb():
    _, lab = _lab()
    theirs = lab.models.ZerlautAdaptationSecondOrder()
    for p in M2.parameters:
        name, k = (p.name[:3], int(p.name[4:])) if p.name[:4] in ("P_e_", "P_i_") else (p.name, 0)
        assert float(np.ravel(getattr(theirs, name))[k]) == p.default, p.name


def test_linear_coupling_on_connectivity_76_matches_tvb(monkeypatch):
    """150 ms on connectivity_76 (delays up to 513 steps), linear coupling, deterministic
    Heun at dt = 0.1 ms, the same random history: every variable within 1e-7 of its largest
    magnitude (measured: see ``pytest -s``)."""
    base, lab = _lab()
    conn76 = base.load_connectome("tvb:connectivity_76")
    monkeypatch.setattr(base, "DURATION", 150.0)
    lo = np.array([0.001, 0.001, 0.0, -1e-4, 0.0, 0.0, 0.0, 0.0])
    hi = np.array([0.02, 0.03, 1e-4, 1e-4, 1e-4, 50.0, 0.0, 0.0])
    rng = np.random.default_rng(23)
    H = base._horizon(conn76)
    hist = lo[None, :, None] + (hi - lo)[None, :, None] * rng.random((H, lo.size, conn76.n_regions))
    tvb_m = lab.models.ZerlautAdaptationSecondOrder(
        external_input_ex_ex=np.array([0.0005]), S_i=np.array([0.5]), variables_of_interest=NAMES)
    _, theirs = base._tvb_run(tvb_m, lab.coupling.Linear(a=np.array([0.2])), conn76, hist)
    ours = base._ours("zerlaut_second_order", "linear", {"G": 0.2}, conn76, hist,
                      parameters={"external_input_ex_ex": 0.0005, "S_i": 0.5})
    for k in range(5):                               # E, I and the covariances move
        assert np.ptp(ours[:, k]) > 1e-2 * np.abs(ours[:, k]).max(), NAMES[k]
    assert ours.shape == theirs.shape
    for k, name in enumerate(NAMES[:6]):
        scale = np.abs(theirs[:, k]).max()
        err = np.abs(ours[:, k] - theirs[:, k]).max() / scale
        print(f"agreement {name}: {err:.1e}")
        assert err <= 1e-7, f"{name}: max |cosim − TVB| / max |TVB| = {err:.2e}"
    assert np.abs(ours[:, 6:]).max() == 0.0 and np.abs(theirs[:, 6:]).max() == 0.0


# -- the first-order model --------------------------------------------------------------

def test_zero_covariances_give_the_first_order_equations_exactly():
    """With C = 0 the rate and adaptation derivatives are bitwise those of
    ``zerlaut_first_order`` (the same transfer function; the drives summed alike), at 300
    random states with long-range input and external drives; with C ≠ 0 they differ (but
    where F is flat in the rates)."""
    n = 300
    rng = np.random.default_rng(4)
    x2 = np.zeros((n, 8))
    x2[:, 0:2] = rng.uniform(0.001, 0.1, (n, 2))
    x2[:, 5] = rng.uniform(0.0, 100.0, n)
    x2[:, 6] = rng.uniform(0.0, 10.0, n)
    c = rng.uniform(0.0, 0.01, (n, 1))
    common = dict(external_input_ex_ex=0.001, external_input_in_ex=0.0004,
                  external_input_ex_in=0.0003, external_input_in_in=0.0002,
                  a_i=2.0, b_i=10.0, tau_w_i=50.0)
    p2 = _params(M2, n, **common)
    p1 = _params(M1, n, **common)
    x1 = x2[:, [0, 1, 5, 6, 7]].copy()
    dx2 = _dfun(M2, x2, c, p2)
    dx1 = _dfun(M1, x1, c, p1)
    assert np.array_equal(dx2[:, [0, 1, 5, 6, 7]], dx1)
    assert (np.abs(dx1[:, :2]) > 1e-6).all()
    x2[:, 2:5] = [1e-2, 5e-3, 1e-2]
    dx2c = _dfun(M2, x2, c, p2)
    assert (dx2c[:, :2] != dx1[:, :2]).mean() > 0.9


# -- the stationary state, solved directly ----------------------------------------------

P = {p.name: p.default for p in M2.parameters}
#: A single node with a drive, faster adaptation (the run settles in 3 s).
FIXED = dict(external_input_ex_ex=0.002, external_input_in_ex=0.001, b_e=20.0,
             tau_w_e=100.0, a_i=1.0, b_i=2.0, tau_w_i=50.0, N_tot=2000.0)


def _transfer_np(fe, fi, fe_ext, fi_ext, W, E_L, poly, q):
    """Zerlaut's transfer function (kHz) and μ_V, written here from the 2018 paper."""
    nu_e = (fe + 1e-6) * (1 - q["g"]) * q["p_connect_e"] * q["N_tot"] + fe_ext * q["K_ext_e"]
    nu_i = (fi + 1e-6) * q["g"] * q["p_connect_i"] * q["N_tot"] + fi_ext * q["K_ext_i"]
    ge, gi = q["Q_e"] * q["tau_e"] * nu_e, q["Q_i"] * q["tau_i"] * nu_i
    gtot = q["g_L"] + ge + gi
    tm = q["C_m"] / gtot
    mu = (ge * q["E_e"] + gi * q["E_i"] + q["g_L"] * E_L - W) / gtot
    se = nu_e * (q["Q_e"] / gtot * (q["E_e"] - mu) * q["tau_e"]) ** 2
    si = nu_i * (q["Q_i"] / gtot * (q["E_i"] - mu) * q["tau_i"]) ** 2
    sv = np.sqrt(se / (2 * (q["tau_e"] + tm)) + si / (2 * (q["tau_i"] + tm)))
    tv = (se + si) / (se / (q["tau_e"] + tm) + si / (q["tau_i"] + tm))
    z = np.array([1.0, (mu + 60) / 10, (sv - 4) / 6, tv * q["g_L"] / q["C_m"] - 0.5])
    quad = [(0, 0), (1, 0), (2, 0), (3, 0), (1, 1), (2, 2), (3, 3), (1, 2), (1, 3), (2, 3)]
    vthr = 1e3 * sum(c * z[a] * z[b] for c, (a, b) in zip(poly, quad))
    return special.erfc((vthr - mu) / (math.sqrt(2) * sv)) / (2 * tv)


def _stationary(q):
    """(E, I, C_ee, C_ei, C_ii, W_e, W_i) solving the stationary equations: W in closed form
    (μ_V is linear in W), C from the three linear covariance equations, the rates by a root
    find."""
    pe = [q[f"P_e_{k}"] for k in range(10)]
    pi = [q[f"P_i_{k}"] for k in range(10)]
    T, h = q["T"], 1e-7
    drives = {"e": (q["external_input_ex_ex"], q["external_input_ex_in"], q["E_L_e"], pe,
                    q["a_e"], q["b_e"], q["tau_w_e"]),
              "i": (q["external_input_in_ex"], q["external_input_in_in"], q["E_L_i"], pi,
                    q["a_i"], q["b_i"], q["tau_w_i"])}

    def adaptation(E, I, pop, nu):
        ex, ix, E_L, _, a, b, tw = drives[pop]
        mu0 = _transfer_mu(E, I, ex, ix, 0.0, E_L, q)
        gtot = _gtot(E, I, ex, ix, q)
        # W = τ_w b ν + a (μ_V(W) − E_L),  μ_V(W) = μ_V(0) − W / μ_G
        return (tw * b * nu + a * (mu0 - E_L)) / (1 + a / gtot)

    def parts(E, I):
        W = {"e": adaptation(E, I, "e", E), "i": adaptation(E, I, "i", I)}
        out = {}
        for pop in "ei":
            ex, ix, E_L, poly, *_ = drives[pop]
            F = lambda a, b: _transfer_np(a, b, ex, ix, W[pop], E_L, poly, q)   # noqa: E731
            # TVB's differences: steps in kHz, divided by the step in Hz
            d = lambda a, b, da, db: (F(a + da, b + db) - F(a - da, b - db)) / (2 * h * 1e3)  # noqa: E731
            F0 = F(E, I)
            out[pop] = dict(
                F=F0, e=d(E, I, h, 0), i=d(E, I, 0, h),
                ee=(F(E + h, I) - 2 * F0 + F(E - h, I)) / (h * 1e3) ** 2,
                ii=(F(E, I + h) - 2 * F0 + F(E, I - h)) / (h * 1e3) ** 2,
                ei=(d(E, I + h, h, 0) - d(E, I - h, h, 0)) / (2 * h * 1e3),
                ie=(d(E + h, I, 0, h) - d(E - h, I, 0, h)) / (2 * h * 1e3))
        return W, out

    def covariances(E, I, fe, fi):
        Ne, Ni = q["N_tot"] * (1 - q["g"]), q["N_tot"] * q["g"]
        A = np.array([[2 * fe["e"] - 2, 2 * fe["i"], 0.0],
                      [fe["e"], fi["e"] + fe["i"] - 2, fi["i"]],
                      [0.0, 2 * fi["e"], 2 * fi["i"] - 2]])
        b = -np.array([fe["F"] * (1 / T - fe["F"]) / Ne + (fe["F"] - E) ** 2,
                       (fe["F"] - E) * (fi["F"] - I),
                       fi["F"] * (1 / T - fi["F"]) / Ni + (fi["F"] - I) ** 2])
        return np.linalg.solve(A, b)

    def residual(z):
        E, I = z * 1e-3
        _, f = parts(E, I)
        C = covariances(E, I, f["e"], f["i"])
        return [1e3 * (f[p]["F"] - nu + 0.5 * (C[0] * f[p]["ee"] + C[1] * (f[p]["ei"] + f[p]["ie"])
                                               + C[2] * f[p]["ii"]))
                for p, nu in (("e", E), ("i", I))]

    sol = optimize.root(residual, [10.0, 20.0], method="hybr", tol=1e-12)
    assert np.abs(residual(sol.x)).max() < 1e-9, sol      # Hz; success may be False at
    #                                                       the differences' noise floor
    E, I = sol.x * 1e-3
    W, f = parts(E, I)
    C = covariances(E, I, f["e"], f["i"])
    return np.array([E, I, *C, W["e"], W["i"]])


def _gtot(E, I, ex, ix, q):
    nu_e = (E + 1e-6) * (1 - q["g"]) * q["p_connect_e"] * q["N_tot"] + ex * q["K_ext_e"]
    nu_i = (I + 1e-6) * q["g"] * q["p_connect_i"] * q["N_tot"] + ix * q["K_ext_i"]
    return q["g_L"] + q["Q_e"] * q["tau_e"] * nu_e + q["Q_i"] * q["tau_i"] * nu_i


def _transfer_mu(E, I, ex, ix, W, E_L, q):
    nu_e = (E + 1e-6) * (1 - q["g"]) * q["p_connect_e"] * q["N_tot"] + ex * q["K_ext_e"]
    nu_i = (I + 1e-6) * q["g"] * q["p_connect_i"] * q["N_tot"] + ix * q["K_ext_i"]
    ge, gi = q["Q_e"] * q["tau_e"] * nu_e, q["Q_i"] * q["tau_i"] * nu_i
    return (ge * q["E_e"] + gi * q["E_i"] + q["g_L"] * E_L - W) / _gtot(E, I, ex, ix, q)


def test_relaxes_to_the_directly_solved_stationary_state():
    """A single node run 3 s by the neural-mass engine (Heun, dt = 0.05 ms: its fixed points
    are the model's) settles on the stationary state solved directly (above): rates and
    adaptation within 1e-6 relative, the covariances within 1e-4.  (C_ii < 0 here:
    TVB's A_ii = F_i (1/T − F_i) / N_i is negative for F_i > 1/T, as at this point.)"""
    q = {**P, **FIXED}
    want = _stationary(q)
    conn = make_connectome([[0.0]], [[0.0]], ["n"])
    eng = NeuralMassEngine("mf", "zerlaut_second_order", conn, dt_ms=0.05, integrator="heun",
                           coupling_evaluation="step", coupling="linear",
                           coupling_parameters={"G": 0.2}, parameters=FIXED,
                           initial={"E": 0.01, "I": 0.02}, record_period_ms=10.0)
    got = eng.advance(0.0, 3000.0, {}).records["timeseries"][-1, :7, 0]
    late = eng.advance(3000.0, 3100.0, {}).records["timeseries"][-1, :7, 0]
    assert np.abs(late - got).max() <= 1e-9 * np.abs(got).max()     # settled
    print("stationary", want, "\nrun", got)
    np.testing.assert_allclose(got[[0, 1, 5, 6]], want[[0, 1, 5, 6]], rtol=1e-6)
    np.testing.assert_allclose(got[2:5], want[2:5], rtol=1e-4)
    assert want[2] > 0 and want[4] < 0 and want[1] > 1 / q["T"]
