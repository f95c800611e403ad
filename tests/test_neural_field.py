"""The neural-field sheet against linear theory and the reaction–diffusion limit.

Independent sources: the dispersion relation ``τλ = −1 + g ŵ(k) e^{−λd}`` (solved here by
Newton's method on the relation itself, and by cosim.analysis.dispersion with the Lambert
W function), the closed-form Hopf condition ``tan ωd = −ωτ``, and a reaction–diffusion
equation integrated by finite differences and scipy's adaptive RK45.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.analysis import dispersion as dz
from cosim.engines.neural_field import NeuralFieldEngine
from cosim.fields.firing import Firing
from cosim.fields.kernels import (DifferenceOfGaussians, Exponential, Gaussian,
                                  RadialProfile)
from cosim.fields.sheet import Sheet

TAU = 10.0
MEXICAN_HAT = DifferenceOfGaussians(3.0, 1.0, 2.0, 2.0)


def _newton_root(G, tau, d, lam0):
    """A root of ``τλ + 1 − G e^{−λd}`` by complex Newton iteration (independent of W)."""
    lam = complex(lam0)
    for _ in range(100):
        f = tau * lam + 1 - G * np.exp(-lam * d)
        df = tau + G * d * np.exp(-lam * d)
        step = f / df
        lam -= step
        if abs(step) < 1e-15 * max(1.0, abs(lam)):
            break
    return lam


def _sheet_at_threshold(kernel, dims, n, h, slope, delay_steps, dt, firing="logistic"):
    """A sheet whose homogeneous fixed point is u0 = θ = 0 (I0 = −ŵ(0) S(0))."""
    F = Firing(firing, slope, 0.0)
    I0 = -float(kernel.hat(0.0, dims)) * float(F.value(0.0))
    return Sheet((n,) * dims, h, TAU, kernel, F, delay_steps, dt, "heun", I0), F


# -- the analysis module ---------------------------------------------------------------------

@pytest.mark.parametrize("d", [0.0, 1.0, 5.0])
@pytest.mark.parametrize("G", [-3.0, -0.2, 0.5, 1.4])
def test_lambert_root_solves_the_relation_and_is_rightmost(G, d):
    lam = complex(dz.growth_rate(G, 1.0, TAU, d))
    assert abs(dz.residual(lam, G, 1.0, TAU, d)) < 1e-12
    # Newton from many starting points finds no root to the right of the principal branch
    for start in (0.5, -0.5 + 2j, 0.1 + 0.5j, -2 + 5j, 1j):
        r = _newton_root(G, TAU, d, start)
        if abs(TAU * r + 1 - G * np.exp(-r * d)) < 1e-10:
            assert r.real <= lam.real + 1e-12


def test_onsets_of_closed_forms():
    on = dz.turing_onset(Gaussian(2.0, 1.0), 2)
    assert on.kind == "bulk" and on.k == 0 and on.gain == pytest.approx(0.5, rel=1e-12)
    on = dz.turing_onset(MEXICAN_HAT, 1)
    # ŵ'(k) = 0: 3 σe² e^{−σe²k²/2} = 2 σi² e^{−σi²k²/2}  →  k² = 2 ln(8/3) / (σi² − σe²)
    k_star = math.sqrt(2 * math.log(8 / 3) / 3)
    assert on.kind == "turing" and on.k == pytest.approx(k_star, rel=1e-8)
    assert on.gain == pytest.approx(1 / float(MEXICAN_HAT.hat(k_star, 1)), rel=1e-10)
    # the Hopf frequency solves tan ωd = −ωτ; at the onset gain, λ = iω is a root
    hop = dz.hopf_onset(Gaussian(-2.0, 1.0), 1, TAU, 4.0)
    assert math.tan(hop.omega * 4.0) == pytest.approx(-hop.omega * TAU, rel=1e-9)
    lam = complex(dz.growth_rate(-2.0, hop.gain, TAU, 4.0))
    assert abs(lam.real) < 1e-10 and lam.imag == pytest.approx(hop.omega, rel=1e-9)
    # profile kernel: the quadrature transform of a sampled Gaussian is the Gaussian's
    r = np.linspace(0, 8, 801)        # the linear interpolant is within ~4e-6 of it
    for D in (1, 2):
        prof = RadialProfile(tuple(r), tuple(Gaussian(1.0, 1.0).value(r, D)))
        k = np.array([0.0, 0.7, 2.0])
        assert np.allclose(prof.hat(k, D), np.exp(-k * k / 2), atol=2e-5)
        assert prof.second_moment(D) == pytest.approx(1.0, rel=1e-4)
    assert Exponential(1.0, 2.0).second_moment(2) == pytest.approx(
        -2 * (float(Exponential(1.0, 2.0).hat(1e-4, 2)) - 1) / 1e-8, rel=1e-5)


# -- linear theory ---------------------------------------------------------------------------

@pytest.mark.parametrize("delay_ms", [0.0, 2.0])
def test_perturbations_grow_at_the_dispersion_rates(delay_ms):
    """Random 1e-7 perturbations of u0: each Fourier mode grows or decays at Re λ(k)."""
    L, n, dt = 80.0, 320, 0.05
    on = dz.turing_onset(MEXICAN_HAT, 1)
    slope = 4 * on.gain * 1.1                    # g = S'(0) = slope/4, 10 % above onset
    sheet, F = _sheet_at_threshold(MEXICAN_HAT, 1, n, L / n, slope, round(delay_ms / dt), dt)
    sheet.build(1e-7 * np.random.default_rng(3).standard_normal(n))
    sheet.advance(1000)                          # transients of the other branches decay
    c1 = np.fft.rfft(sheet.u)
    sheet.advance(2000)
    c2 = np.fft.rfft(sheet.u)
    measured = np.log(np.abs(c2 / c1)) / (2000 * dt)
    k = 2 * np.pi * np.fft.rfftfreq(n, L / n)
    for m in (1, 4, 8, 10, 12, 16, 24):
        lam = _newton_root(slope / 4 * float(MEXICAN_HAT.hat(k[m], 1)), TAU, delay_ms, 0.0)
        theory = complex(dz.dispersion(MEXICAN_HAT, 1, k[m], slope / 4, TAU, delay_ms))
        assert abs(theory - lam) < 1e-12 and abs(lam.imag) < 1e-12
        assert measured[m] == pytest.approx(lam.real, rel=0.02), (m, k[m])
    # the fastest-growing mode is the lattice mode nearest k*, and it grows
    assert abs(k[int(np.argmax(measured))] - on.k) <= k[1] / 2 and measured.max() > 0


def test_turing_pattern_wavelength_is_2pi_over_k_star():
    """From noise, a saturated pattern of wavelength 2π/k* forms (L holds 10 of them)."""
    on = dz.turing_onset(MEXICAN_HAT, 1)
    L = 10 * on.wavelength_mm
    n = 400
    eng = NeuralFieldEngine("ring", size=[L], spacing_mm=L / n, kernel=MEXICAN_HAT,
                            firing=Firing("logistic", 4 * on.gain * 1.2, 0.0), dt_ms=0.1,
                            tau_ms=TAU, I0=-0.5, initial_u="fixed_point", initial_noise=1e-4,
                            seed=5)
    assert eng.initial_u == pytest.approx(0.0, abs=1e-12)
    eng.build()
    for t in range(0, 600, 50):
        eng.advance(t, t + 50)
    u = eng.field()
    power = np.abs(np.fft.rfft(u - u.mean())) ** 2
    assert u.std() > 0.1                               # nonlinear saturation, not noise
    assert int(np.argmax(power)) == 10                 # 10 wavelengths of 2π/k* in L
    # most of the pattern's power is in k* and its harmonics (the side bands still relax)
    assert power[10::10].sum() > 0.85 * power.sum()


def test_delayed_inhibition_oscillates_at_the_hopf_frequency():
    """d > 0, inhibitory kernel, gain 5 % above the Hopf onset: the homogeneous mode
    oscillates at Im λ (Lambert W) and grows at Re λ; 5 % below onset it decays."""
    kern, d, dt, n = Gaussian(-2.0, 1.0), 4.0, 0.02, 32
    hop = dz.hopf_onset(kern, 1, TAU, d)
    assert hop.k == 0.0
    for factor in (1.05, 0.95):
        g = hop.gain * factor
        sheet, _ = _sheet_at_threshold(kern, 1, n, 1.0, 4 * g, round(d / dt), dt)
        sheet.build(np.full(n, 1e-6))
        steps = 30000                                  # 600 ms
        trace = np.empty(steps)
        sheet.advance(steps, on_step=lambda m: trace.__setitem__(m, sheet.u_mean()))
        lam = complex(dz.growth_rate(float(kern.hat(0.0, 1)), g, TAU, d))
        t = dt * np.arange(1, steps + 1)
        late = t > 200
        x, tl = trace[late], t[late]
        i = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
        t0 = tl[i] - x[i] * (tl[i + 1] - tl[i]) / (x[i + 1] - x[i])
        omega = 2 * np.pi / np.mean(np.diff(t0))
        assert omega == pytest.approx(lam.imag, rel=0.005)
        assert omega == pytest.approx(hop.omega, rel=0.02)      # near onset: the Hopf ω
        peaks = [np.abs(x[(tl > a) & (tl <= a + 100)]).max() for a in (200, 450)]
        rate = math.log(peaks[1] / peaks[0]) / 250
        assert rate == pytest.approx(lam.real, rel=0.05, abs=2e-5)
        assert (rate > 0) == (factor > 1)


def test_long_wavelength_limit_is_reaction_diffusion():
    """Gaussian kernel, small k: the field equals τu_t = −u + a S + (M₂/2) ∂²S + I0 with
    M₂ = aσ² (the kernel's second moment), to O((kσ)⁴); without the diffusion term the
    error is O((kσ)²)."""
    from scipy.integrate import solve_ivp
    a, sigma, L, n, dt, T = 1.5, 1.0, 200.0, 400, 0.005, 40.0
    kern = Gaussian(a, sigma)
    F = Firing("logistic", 4.0, 0.0)
    h = L / n
    x = h * np.arange(n)
    errors = {}
    for m in (1, 2):
        u0 = 0.4 * np.cos(2 * np.pi * m * x / L)
        sheet = Sheet((n,), h, TAU, kern, F, 0, dt, "heun", -0.2)
        sheet.build(u0)
        sheet.advance(round(T / dt))
        for diffusion in (kern.second_moment(1) / 2, 0.0):
            def rhs(_, u):
                s = F.value(u)
                lap = (np.roll(s, 1) - 2 * s + np.roll(s, -1)) / h ** 2
                return (-u + a * s + diffusion * lap - 0.2) / TAU
            ref = solve_ivp(rhs, (0, T), u0, rtol=1e-11, atol=1e-13).y[:, -1]
            dev = ref - ref.mean()
            errors[m, diffusion > 0] = np.abs(sheet.u - ref).max() / np.abs(dev).max()
    assert errors[1, True] < 2e-5 and errors[2, True] < 3e-4
    assert 10 < errors[2, True] / errors[1, True] < 20          # fourth order in k
    assert errors[1, False] > 100 * errors[1, True]


# -- the engine ------------------------------------------------------------------------------

def _engine(**kw):
    args = dict(size=[16.0, 16.0], spacing_mm=0.5, kernel=MEXICAN_HAT,
                firing=Firing("erf", 2.0, 0.0), dt_ms=0.1, tau_ms=TAU, delay_ms=0.3, I0=-0.5,
                initial_u=0.0, initial_noise=0.01, seed=11, snapshot_period_ms=1.0,
                snapshot_stride=2, record_period_ms=0.5)
    args.update(kw)
    return NeuralFieldEngine("sheet", **args)


def test_checkpoint_resume_is_bitwise():
    one = _engine()
    one.build()
    rec_one = [one.advance(t, t + 2.0).records for t in np.arange(0.0, 20.0, 2.0)]
    first = _engine()
    first.build()
    rec_two = [first.advance(t, t + 2.0).records for t in np.arange(0.0, 10.0, 2.0)]
    second = _engine()
    second.restore({k: v.copy() for k, v in first.state().items()})
    rec_two += [second.advance(t, t + 2.0).records for t in np.arange(10.0, 20.0, 2.0)]
    for a, b in zip(rec_one, rec_two):
        for ds in a:
            assert np.array_equal(a[ds], b[ds]), ds
    assert np.array_equal(one.field(), second.field())
    # windows of other lengths give the same bits (chunked = one-shot)
    other = _engine()
    other.build()
    for t in np.arange(0.0, 20.0, 5.0):
        other.advance(t, t + 5.0)
    assert np.array_equal(other.field(), one.field())
    assert one.max_parts() == 1


def test_records_exports_and_stimulus_hook():
    eng = _engine(kernel=Gaussian(0.0, 1.0), delay_ms=0.0, I0=0.25, initial_noise=0.0)
    pulse = lambda t, x: np.where(x[:, 0] < 8.0, 1.0, 0.0)   # half the sheet, every step
    eng.set_stimulus(pulse)
    eng.build()
    out = eng.advance(0.0, 2.0, {"drive": np.full((20, 1), 0.5)})
    assert out.records["mean"].shape == (4, 2, 1) and out.records["field"].shape == (2, 1, 256)
    assert out.exports["afferent"].shape == (20, 1, 1)
    # w = 0: every point is τu' = −u + I, I = 0.25 + 0.5 (+ 1 where stimulated), held per
    # step; Heun's amplification per step is 1 − a + a²/2 (a = dt/τ), within O(a³) of e^{−a}
    u = eng.field()
    a = 0.1 / TAU
    for value, where in ((1.75, u[:16]), (0.75, u[16:])):
        assert np.allclose(where, value * (1 - (1 - a + a * a / 2) ** 20), rtol=1e-13)
        assert np.allclose(where, value * (1 - math.exp(-2.0 / TAU)), rtol=2e-5)
    assert out.exports["afferent"][-1, 0, 0] == pytest.approx(
        np.mean(Firing("erf", 2.0, 0.0).value(u)), rel=1e-14)


def test_perturbations_grow_at_the_dispersion_rates_on_a_torus():
    """2-D: the modes (m₀, m₁) of a 32 mm torus grow at Re λ(|k|) — isotropy included."""
    L, n, dt = 32.0, 64, 0.05
    on = dz.turing_onset(MEXICAN_HAT, 2)
    slope = 4 * on.gain * 1.1
    sheet, _ = _sheet_at_threshold(MEXICAN_HAT, 2, n, L / n, slope, 0, dt)
    sheet.build(1e-7 * np.random.default_rng(4).standard_normal(n * n))
    c1 = np.fft.fft2(sheet.u.reshape(n, n))
    sheet.advance(1000)
    c2 = np.fft.fft2(sheet.u.reshape(n, n))
    measured = np.log(np.abs(c2 / c1)) / (1000 * dt)
    for m0, m1 in ((1, 0), (4, 0), (3, 3), (0, 5), (2, 5), (8, 1)):
        k = 2 * np.pi / L * math.hypot(m0, m1)
        lam = complex(dz.dispersion(MEXICAN_HAT, 2, k, slope / 4, TAU))
        assert measured[m0, m1] == pytest.approx(lam.real, rel=0.02), (m0, m1)


@pytest.mark.parametrize("delay_steps,integrator", [(3, "heun"), (0, "heun"), (2, "euler")])
def test_block_stepping_equals_step_by_step(delay_steps, integrator):
    """:meth:`Sheet.run` (blocks of up to D steps in one kernel, per-window stimulus
    amplitudes) gives the bits of :meth:`Sheet.advance` one step at a time with the
    stimulus summed per step — rates, means, snapshots and the final field."""
    shape, n = (12, 10), 120
    rng = np.random.default_rng(7)
    prof = rng.standard_normal((2, n))
    amps = rng.standard_normal((23, 2))
    drive = np.linspace(0.0, 0.3, 23)
    pts = np.array([0, 17, 119])

    def sheet():
        s = Sheet(shape, 0.5, TAU, MEXICAN_HAT, Firing("erf", 2.0, 0.1), delay_steps, 0.1,
                  integrator, -0.4)
        s.build(0.05 * np.random.default_rng(1).standard_normal(n))
        s.advance(4)                          # not at step 0: the block phase is arbitrary
        return s
    a, b = sheet(), sheet()
    rate, umean, snaps = a.run(23, drive, (prof, amps), 5, pts)
    ref_rate, ref_mean, ref_snaps = [], [], []

    def on_step(m):
        ref_rate.append(b.rate_mean)
        ref_mean.append(b.u_mean())
        if b.step % 5 == 0:
            ref_snaps.append(b.u[pts].copy())
    b.advance(23, drive, lambda k: 0.0 + amps[k - 4, 0] * prof[0] + amps[k - 4, 1] * prof[1],
              on_step)
    np.testing.assert_array_equal(a.u, b.u)
    np.testing.assert_array_equal(rate, ref_rate)
    np.testing.assert_array_equal(umean, ref_mean)
    np.testing.assert_array_equal(snaps, np.array(ref_snaps))
    assert snaps.shape == (5, 3) and np.ptp(a.u) > 0.01
