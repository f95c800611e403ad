"""Balloon–Windkessel hemodynamics: neural activity → BOLD signal.

Hemodynamic state per region (Friston et al. 2000, Eqs. 3–5; time in **seconds**)::

    ds/dt = z − κ s − γ (f − 1)                        vasodilatory signal s   (1/s)
    df/dt = s                                          blood inflow f          (rest = 1)
    τ dv/dt = f − v^(1/α)                              blood volume v          (rest = 1)
    τ dq/dt = f E(f)/E0 − v^(1/α) q / v                deoxyhemoglobin q       (rest = 1)
    E(f) = 1 − (1 − E0)^(1/f)                          oxygen extraction

and the BOLD signal (percent signal change)::

    y = 100 · V0 [k1 (1 − q) + k2 (1 − q/v) + k3 (1 − v)]

Default parameters (:class:`BalloonParams`, preset ``"stephan2007"``): the revised signal
equation of Stephan et al. (2007) *NeuroImage* 38:387, Eq. 12 (1.5 T: k1 = 4.3 ν0 E0 TE,
k2 = ε r0 E0 TE, k3 = 1 − ε with ν0 = 40.3 Hz, r0 = 25 Hz, TE = 40 ms, ε = 1) and the
hemodynamic constants used with it by SPM12's DCM (``spm_fx_fmri``/``spm_gx_fmri``):
κ = 0.64 /s, γ = 0.32 /s, τ = 2 s, α = 0.32, E0 = 0.4, V0 = 4 %.  Its impulse response
peaks ≈ 4.1 s after a brief pulse, with an undershoot around 12 s.

Preset ``"friston2000"`` (:meth:`BalloonParams.preset`): Friston, Mechelli, Turner & Price
(2000) *NeuroImage* 12:466 (κ = 0.65 /s, γ = 0.41 /s, τ = 0.98 s, α = 0.32, E0 = 0.34,
V0 = 2 %) with the classical coefficients k1 = 7 E0, k2 = 2, k3 = 2 E0 − 0.2, used by many
whole-brain FC-fitting studies (e.g. Deco et al. 2013); its response peaks earlier (≈ 2.9 s).
TVB's ``tvb.analyzers.fmri_balloon.BalloonModel`` integrates the same equations (its
``RBM=True`` coefficients are Stephan 2007 Eq. 12).

The input ``z`` is "neural activity" in 1/s; its scale is the user's choice (a rate in Hz,
a population activity fraction, a potential times a gain): the model is nonlinear, so
inputs of order 1 give physiological responses (≈ 1–5 % signal change).

**Integration.** Classical 4th-order Runge–Kutta.  The input is sampled every ``dt_ms``
(sample ``k`` at the end of step ``k``) and taken as piecewise linear between samples, so
RK4's midpoint stages see the mean of the two end samples; a sample period longer than
:data:`MAX_STEP_MS` is split into equal sub-steps.  This is the integration done by
:class:`cosim.monitors.BoldMonitor` during a run, window by window, with the same result as
one call on the whole series (the state and last input sample carry over).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

#: Largest RK4 step in ms (the fastest hemodynamic rate, 1/(α τ) ≈ 3 /s, makes 50 ms a
#: relative error below 1e-6 per step).
MAX_STEP_MS = 50.0

#: Order of the hemodynamic state variables in a state array ``(4, region)``.
STATE_VARIABLES = ("s", "f", "v", "q")


@dataclass(frozen=True)
class BalloonParams:
    """Balloon–Windkessel parameters (defaults: preset ``"stephan2007"``, see module doc).

    Rates in 1/s, times in s; ``coefficients`` is ``"stephan2007"`` (uses ``nu0_hz``,
    ``r0_hz``, ``te_s``, ``epsilon``) or ``"friston2000"`` (k1 = 7 E0, k2 = 2,
    k3 = 2 E0 − 0.2).
    """

    kappa_per_s: float = 0.64     # κ, rate of signal decay
    gamma_per_s: float = 0.32     # γ, rate of flow-dependent elimination
    tau_s: float = 2.0            # τ, hemodynamic transit time
    alpha: float = 0.32           # α, Grubb's vessel stiffness exponent
    e0: float = 0.4               # E0, resting oxygen extraction fraction
    v0: float = 0.04              # V0, resting blood volume fraction
    coefficients: str = "stephan2007"
    nu0_hz: float = 40.3          # ν0, frequency offset at the vessel surface (1.5 T)
    r0_hz: float = 25.0           # r0, slope of intravascular relaxation rate
    te_s: float = 0.04            # TE, echo time
    epsilon: float = 1.0          # ε, intra- to extravascular signal ratio

    @classmethod
    def preset(cls, name: str, **overrides) -> "BalloonParams":
        """Parameters of preset ``"stephan2007"`` or ``"friston2000"``, with overrides."""
        if name == "stephan2007":
            return cls(**overrides)
        if name == "friston2000":
            base = dict(kappa_per_s=0.65, gamma_per_s=0.41, tau_s=0.98, alpha=0.32, e0=0.34,
                        v0=0.02, coefficients="friston2000")
            return cls(**{**base, **overrides})
        raise ValueError(f"preset must be 'stephan2007' or 'friston2000', got {name!r}")

    def signal_coefficients(self) -> tuple[float, float, float]:
        """``(k1, k2, k3)`` of the BOLD signal equation."""
        if self.coefficients == "friston2000":
            return 7.0 * self.e0, 2.0, 2.0 * self.e0 - 0.2
        if self.coefficients == "stephan2007":
            return (4.3 * self.nu0_hz * self.e0 * self.te_s,
                    self.epsilon * self.r0_hz * self.e0 * self.te_s,
                    1.0 - self.epsilon)
        raise ValueError(f"coefficients must be 'friston2000' or 'stephan2007', "
                         f"got {self.coefficients!r}")


def resting_state(n_regions: int) -> np.ndarray:
    """The resting hemodynamic state ``(4, region)``: s = 0, f = v = q = 1."""
    x = np.ones((4, n_regions))
    x[0] = 0.0
    return x


@numba.njit(cache=True, inline="always")
def _rhs(s, f, v, q, z, kappa, gamma, inv_tau, inv_alpha, e0, log1m_e0):
    vpow = v ** inv_alpha
    extraction = 1.0 - math.exp(log1m_e0 / f)
    return (z - kappa * s - gamma * (f - 1.0),
            s,
            inv_tau * (f - vpow),
            inv_tau * (f * extraction / e0 - vpow * q / v))


@numba.njit(cache=True)
def _integrate(z, z_prev, state, h_s, n_sub, kappa, gamma, tau, alpha, e0, out_v, out_q):
    """RK4 over samples ``z (time, region)``; writes v, q after each sample into out_*;
    updates ``state (4, region)`` and ``z_prev (region,)`` in place."""
    inv_tau = 1.0 / tau
    inv_alpha = 1.0 / alpha
    log1m_e0 = math.log(1.0 - e0)
    hs = h_s / n_sub
    n_t, n_r = z.shape
    for r in range(n_r):
        s, f, v, q = state[0, r], state[1, r], state[2, r], state[3, r]
        za = z_prev[r]
        for k in range(n_t):
            zb = z[k, r]
            for j in range(n_sub):
                # input linear over the sample interval; stage times j/n, (j+.5)/n, (j+1)/n
                z0 = za + (zb - za) * (j / n_sub)
                zm = za + (zb - za) * ((j + 0.5) / n_sub)
                z1 = za + (zb - za) * ((j + 1.0) / n_sub)
                a = _rhs(s, f, v, q, z0, kappa, gamma, inv_tau, inv_alpha, e0, log1m_e0)
                b = _rhs(s + 0.5 * hs * a[0], f + 0.5 * hs * a[1], v + 0.5 * hs * a[2],
                         q + 0.5 * hs * a[3], zm, kappa, gamma, inv_tau, inv_alpha, e0, log1m_e0)
                c = _rhs(s + 0.5 * hs * b[0], f + 0.5 * hs * b[1], v + 0.5 * hs * b[2],
                         q + 0.5 * hs * b[3], zm, kappa, gamma, inv_tau, inv_alpha, e0, log1m_e0)
                d = _rhs(s + hs * c[0], f + hs * c[1], v + hs * c[2], q + hs * c[3], z1,
                         kappa, gamma, inv_tau, inv_alpha, e0, log1m_e0)
                s += hs / 6.0 * (a[0] + 2.0 * b[0] + 2.0 * c[0] + d[0])
                f += hs / 6.0 * (a[1] + 2.0 * b[1] + 2.0 * c[1] + d[1])
                v += hs / 6.0 * (a[2] + 2.0 * b[2] + 2.0 * c[2] + d[2])
                q += hs / 6.0 * (a[3] + 2.0 * b[3] + 2.0 * c[3] + d[3])
            out_v[k, r] = v
            out_q[k, r] = q
            za = zb
        state[0, r], state[1, r], state[2, r], state[3, r] = s, f, v, q
        z_prev[r] = za


def bold_signal(v: np.ndarray, q: np.ndarray, params: BalloonParams = BalloonParams()) -> np.ndarray:
    """BOLD percent signal change from volume ``v`` and deoxyhemoglobin ``q`` (same shape)."""
    k1, k2, k3 = params.signal_coefficients()
    return 100.0 * params.v0 * (k1 * (1.0 - q) + k2 * (1.0 - q / v) + k3 * (1.0 - v))


class BalloonIntegrator:
    """Integrates the Balloon–Windkessel ODE over successive chunks of input samples.

    Parameters
    ----------
    n_regions : int
    dt_ms : float
        Spacing of the input samples (ms).
    params : BalloonParams
    state : array (4, region), optional
        Initial ``(s, f, v, q)``; default the resting state.

    Calling :meth:`step` on consecutive chunks gives exactly the result of one call on
    their concatenation.  Before the first sample the input is taken as equal to it.
    """

    def __init__(self, n_regions: int, dt_ms: float, params: BalloonParams = BalloonParams(),
                 state: np.ndarray | None = None):
        params.signal_coefficients()  # validates the coefficient set
        self.params = params
        self.dt_ms = float(dt_ms)
        self.n_sub = max(1, math.ceil(self.dt_ms / MAX_STEP_MS - 1e-9))
        self.state = resting_state(n_regions) if state is None else np.array(state, dtype=float)
        self.z_prev: np.ndarray | None = None

    def step(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance over input samples ``z (time, region)`` (1/s); return ``(v, q)`` after
        each sample, both ``(time, region)``."""
        z = np.ascontiguousarray(z, dtype=np.float64)
        out_v = np.empty_like(z)
        out_q = np.empty_like(z)
        if z.shape[0] == 0:
            return out_v, out_q
        if self.z_prev is None:
            self.z_prev = z[0].copy()
        p = self.params
        _integrate(z, self.z_prev, self.state, self.dt_ms / 1000.0, self.n_sub,
                   p.kappa_per_s, p.gamma_per_s, p.tau_s, p.alpha, p.e0, out_v, out_q)
        return out_v, out_q

    def get_state(self) -> dict[str, np.ndarray]:
        """Checkpoint: hemodynamic state and the last input sample."""
        z_prev = np.full(self.state.shape[1], np.nan) if self.z_prev is None else self.z_prev
        return {"state": self.state.copy(), "z_prev": z_prev.copy()}

    def set_state(self, saved: dict[str, np.ndarray]) -> None:
        self.state = np.array(saved["state"], dtype=float)
        z_prev = np.array(saved["z_prev"], dtype=float)
        self.z_prev = None if np.isnan(z_prev).all() else z_prev


def balloon_windkessel(z: np.ndarray, dt_ms: float, params: BalloonParams = BalloonParams(),
                       state: np.ndarray | None = None) -> np.ndarray:
    """BOLD (% signal change) for neural input ``z (time, region)`` sampled every ``dt_ms``.

    Returns ``(time, region)``: the signal at the time of each input sample.  A 1-D ``z``
    is treated as one region and gives a 1-D result.
    """
    z = np.asarray(z, dtype=np.float64)
    one = z.ndim == 1
    z2 = z[:, None] if one else z
    integ = BalloonIntegrator(z2.shape[1], dt_ms, params, state)
    v, q = integ.step(z2)
    y = bold_signal(v, q, params)
    return y[:, 0] if one else y


def impulse_response(duration_s: float = 30.0, dt_ms: float = 10.0,
                     params: BalloonParams = BalloonParams(), pulse_ms: float = 100.0,
                     amplitude: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """BOLD response to a brief pulse of neural input from the resting state.

    The input is ``amplitude / (pulse_ms / 1000)`` (1/s) during the first ``pulse_ms``
    (unit integral for amplitude 1).  Returns ``(time_s, bold_percent)``.
    """
    n = int(round(duration_s * 1000.0 / dt_ms))
    t_ms = dt_ms * np.arange(1, n + 1)
    z = np.where(t_ms <= pulse_ms, amplitude * 1000.0 / pulse_ms, 0.0)
    # the sample before t = 0 is 0 (rest): prepend it so the pulse starts at t = 0
    y = balloon_windkessel(np.concatenate([[0.0], z]), dt_ms, params)[1:]
    return t_ms / 1000.0, y
