"""For TVB users: The Virtual Brain's class and parameter names, and cosim's.

The tables are read from the declarations (each model's ``extra["tvb"]``, each coupling's
``tvb``) plus the integrator and noise names below; ``python -m cosim.tvb --markdown``
prints ``docs/tvb.md`` from them (a test checks the file is fresh).  :func:`from_tvb`
turns TVB parameter values of a model into cosim's, :func:`hint` gives the
"did you mean 'w_ee' (TVB: c_ee)?" of a scenario error.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Mapping

import numpy as np

from .coupling import COUPLINGS
from .models import MODELS

#: TVB integrator class → cosim ``integrator``.
INTEGRATORS = {
    "HeunDeterministic": "heun",
    "HeunStochastic": "stochastic_heun",
    "EulerDeterministic": "euler",
    "EulerStochastic": "euler_maruyama",
    "RungeKutta4thOrderDeterministic": "rk4",
    "Dopri5": "dopri5",
}

#: TVB class name → cosim model name.
MODEL_CLASSES = {m.extra["tvb"]["class"]: m.name for m in MODELS.values() if "tvb" in m.extra}
#: TVB class name → cosim coupling type.
COUPLING_CLASSES = {c.tvb[0]: c.name for c in COUPLINGS.values() if c.tvb}

#: TVB's ``WilsonCowan`` defaults (tvb-library 2.x), for :func:`wilson_cowan_from_tvb`.
TVB_WILSON_COWAN = dict(c_ee=12.0, c_ei=4.0, c_ie=13.0, c_ii=11.0, tau_e=10.0, tau_i=10.0,
                        a_e=1.2, b_e=2.8, c_e=1.0, theta_e=0.0, a_i=1.0, b_i=4.0, theta_i=0.0,
                        c_i=1.0, r_e=1.0, r_i=1.0, k_e=1.0, k_i=1.0, P=0.0, Q=0.0,
                        alpha_e=1.0, alpha_i=1.0, shift_sigmoid=True)

#: TVB coupling defaults that differ from cosim's (cosim's ``G`` is 1 for every coupling).
TVB_COUPLING_DEFAULTS = {"linear": {"G": 0.00390625}, "scaling": {"G": 0.00390625},
                         "difference": {"G": 0.1}}


def _value(v):
    a = np.asarray(v, dtype=float)
    return float(a) if a.ndim == 0 or a.size == 1 else a.ravel().tolist()


def wilson_cowan_from_tvb(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cosim ``wilson_cowan`` parameters equal to TVB's ``WilsonCowan`` with ``params``
    (TVB names; TVB's defaults for the others): ``x_e = α_e (c_ee E − c_ei I + P − θ_e + c)``
    and ``S = c_e / (1 + exp(−a_e (x_e − b_e)))`` are cosim's logistic transfer with
    ``θ = b_e / α_e``, ``σ = 1 / (a_e α_e)``, ``P_e = P − θ_e``; the shift ``S(x_e = 0)``
    ``= 1 / (1 + exp(a_e b_e))`` is cosim's ``F(0)``, so ``shift_sigmoid`` carries over."""
    q = dict(TVB_WILSON_COWAN)
    for k, v in (params or {}).items():
        if k not in q:
            raise KeyError(f"not a TVB WilsonCowan parameter: {k!r}")
        q[k] = v
    a = {k: np.asarray(v, dtype=float) for k, v in q.items()}
    out = dict(w_ee=a["c_ee"], w_ei=a["c_ei"], w_ie=a["c_ie"], w_ii=a["c_ii"],
               tau_e=a["tau_e"], tau_i=a["tau_i"],
               P_e=a["P"] - a["theta_e"], P_i=a["Q"] - a["theta_i"],
               theta_e=a["b_e"] / a["alpha_e"], sigma_e=1.0 / (a["a_e"] * a["alpha_e"]),
               theta_i=a["b_i"] / a["alpha_i"], sigma_i=1.0 / (a["a_i"] * a["alpha_i"]),
               r_e=a["r_e"], r_i=a["r_i"], c_e=a["c_e"], c_i=a["c_i"], k_e=a["k_e"],
               k_i=a["k_i"], shift_sigmoid=np.where(a["shift_sigmoid"], 1.0, 0.0))
    return {k: _value(v) for k, v in out.items()}


def from_tvb(model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """cosim parameters of ``model`` (cosim or TVB name) from TVB parameter values."""
    name = MODEL_CLASSES.get(model, model)
    m = MODELS[name]
    info = m.extra.get("tvb", {})
    if name == "wilson_cowan":
        return wilson_cowan_from_tvb(params)
    back = {theirs: ours for ours, theirs in info.get("rename", {}).items()}
    out = {}
    for k, v in params.items():
        if k in info.get("drop", ()):
            continue
        if k in info.get("arrays", {}):
            for j, vj in enumerate(np.ravel(v)):
                out[f"{info['arrays'][k]}{j}"] = float(vj)
            continue
        key = back.get(k, k)
        if key not in m.parameter_names:
            raise KeyError(f"{model}: no cosim parameter for TVB's {k!r}")
        out[key] = _value(v)
    return out


def hint(word: str, tvb_names: Mapping[str, str], notes: Mapping[str, str] | None = None) -> str:
    """``; did you mean 'x' (TVB: word)?`` when ``word`` is TVB's spelling of cosim's ``x``
    (``tvb_names``: cosim name → TVB name), a note on a TVB name cosim places elsewhere,
    else ``''``."""
    for ours, theirs in tvb_names.items():
        if word == theirs:
            return f"; did you mean {ours!r} (TVB: {theirs})?"
    if notes and word in notes:
        return f"; {notes[word]}"
    return ""


def model_hints(model) -> tuple[dict[str, str], dict[str, str]]:
    """(cosim → TVB parameter names, notes on TVB names) of a model declaration."""
    info = model.extra.get("tvb", {})
    return dict(info.get("rename", {})), dict(info.get("notes", {}))


# -- docs/tvb.md -------------------------------------------------------------------------

_INTRO = """\
# cosim for TVB users

Generated from the declarations by `python -m cosim.tvb --markdown > docs/tvb.md`
(a test checks it is fresh). Parameter values and units are as declared (`cosim describe
model NAME`); TVB's names are those of `tvb.simulator` (tvb-library 2.x).

## Conventions that differ from TVB

- **Delayed coupling inside a step.** cosim's default `coupling_evaluation = "stage"`
  evaluates the delayed input at every stage's own time (Heun second order, RK4 fourth
  order also with delays). TVB computes the coupling once per step and holds it:
  set `coupling_evaluation = "step"` in `[engines.NAME]` to get TVB's numbers (the
  difference is 7e-4 relative for Jansen–Rit, 1.5e-2 for Stuart–Landau with RK4).
- **Coupling strength.** cosim's `G` defaults to 1 for every coupling; TVB's `Linear.a`
  and `Scaling.a` default to 0.00390625, `Difference.a` to 0.1. Set `G` explicitly.
- **Noise.** TVB's `Additive(nsig = D)` has the increment `sqrt(2 D) sqrt(dt) xi`; cosim's
  `[engines.NAME.noise] VAR = sigma` has `sigma sqrt(dt) xi`: **sigma = sqrt(2 nsig)**, per
  state variable (TVB's `nsig` array is per state variable too). TVB's
  `Multiplicative(nsig)` with its default `b = Linear(a=1, b=0)` is
  `[engines.NAME.noise] type = "multiplicative"`, `VAR = sqrt(2 nsig)` (diffusion
  `sigma x`; Itô with `euler_maruyama`, Stratonovich with `stochastic_heun`). `ntau = τ`
  (ms) makes cosim's additive noise coloured: an Ornstein–Uhlenbeck force with
  `<η(t) η(s)> = sigma² / (2τ) exp(−|t − s| / τ)` (not compared with TVB's coloured noise).
- **Initial history from a file.** `[engines.NAME.initial] history = "h.npy"` (TVB's
  `initial_conditions` without the mode axis) or an earlier cosim output (`"run1.h5"`).
- **History.** TVB's `initial_conditions` (time, state, region, mode) without the mode axis
  is cosim's `initial_history` (time, state, region): chronological, last sample at t = 0.
  TVB's own default history is random in the state ranges; cosim's is the declared
  initial value held constant (`[engines.NAME.initial] random = true` for random).
  TVB keeps the history and forms the coupling sum in float32; cosim in float64 (agreement
  is about 1e-8 relative, not bitwise).
- **Raw monitor.** TVB's `Raw` time axis starts at `horizon * dt`; cosim's samples start
  at `dt` (sample k of both is the state after step k + 1).
- **Parameters per region** are one value, an array in engine region order, or a table
  `{default = v, LABEL = v}` (models and couplings alike).
"""


def _fmt(v) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:g}"
    return str(v)


def markdown() -> str:
    out = [_INTRO, "## Models\n"]
    out.append("| TVB class | cosim `model` | parameters named differently | TVB defaults that differ |")
    out.append("|---|---|---|---|")
    for cls, name in sorted(MODEL_CLASSES.items()):
        info = MODELS[name].extra["tvb"]
        ren = ", ".join(f"`{t}` → `{o}`" for o, t in info.get("rename", {}).items())
        if info.get("drop"):
            ren = "; ".join(filter(None, [ren, ", ".join(f"`{d}`: see notes" for d in info["drop"])]))
        if "convert" in info:
            ren = f"see below (`{info['convert']}`)"
        dd = ", ".join(f"`{k}` = {_fmt(v)} (cosim {_fmt(MODELS[name].parameters[MODELS[name].parameter_names.index(k)].default)})"
                       for k, v in info.get("defaults", {}).items())
        out.append(f"| `{cls}` | `{name}` | {ren or 'none'} | {dd or 'none'} |")
    notes = [(name, k, v) for cls, name in sorted(MODEL_CLASSES.items())
             for k, v in MODELS[name].extra["tvb"].get("notes", {}).items()]
    if notes:
        out.append("\nNotes on TVB parameters placed elsewhere in cosim:\n")
        out.extend(f"- `{name}`: TVB's `{k}` — {v}" for name, k, v in notes)
    out.append("\n### Wilson–Cowan\n")
    out.append("cosim's `wilson_cowan` is the textbook form with neurolib's defaults; TVB's "
               "`WilsonCowan` is the same equations in other parameters. "
               "`cosim.tvb.wilson_cowan_from_tvb(tvb_params)` converts (tested against TVB):\n")
    out.append("| cosim | from TVB |\n|---|---|")
    for ours, theirs in (("w_ee, w_ei, w_ie, w_ii", "c_ee, c_ei, c_ie, c_ii"),
                         ("P_e, P_i", "P − theta_e, Q − theta_i"),
                         ("theta_e, theta_i", "b_e / alpha_e, b_i / alpha_i"),
                         ("sigma_e, sigma_i", "1 / (a_e alpha_e), 1 / (a_i alpha_i)"),
                         ("c_e, c_i, k_e, k_i, r_e, r_i, tau_e, tau_i", "the same names"),
                         ("shift_sigmoid (0 or 1)", "shift_sigmoid (False or True; TVB default True)")):
        out.append(f"| `{ours}` | {theirs} |")
    out.append("\n## Couplings\n")
    out.append("| TVB class | cosim `[coupling] type` | parameters (cosim ← TVB) | TVB defaults that differ |")
    out.append("|---|---|---|---|")
    for cls, name in sorted(COUPLING_CLASSES.items()):
        c = COUPLINGS[name]
        ren = c.tvb[1]
        params = ", ".join(f"`{p.name}` ← `{ren[p.name]}`" if p.name in ren else
                           (f"`{p.name}` (TVB: none, keep 1)" if p.name == "G" else f"`{p.name}`")
                           for p in c.parameters)
        dd = ", ".join(f"`{ren.get(k, k)}` = {_fmt(v)}"
                       for k, v in TVB_COUPLING_DEFAULTS.get(name, {}).items())
        out.append(f"| `{cls}` | `{name}` | {params} | {dd or 'none'} |")
    out.append("\n## Integrators\n")
    out.append("| TVB class | cosim `integrator` |\n|---|---|")
    for cls, name in INTEGRATORS.items():
        out.append(f"| `{cls}` | `{name}` |")
    out.append("| `noise = Additive(nsig = D)` | `[engines.NAME.noise] VAR = sqrt(2 D)` |")
    out.append("| `noise = Multiplicative(nsig = D)` | `[engines.NAME.noise] type = \"multiplicative\"`, "
               "`VAR = sqrt(2 D)` |")
    out.append("| `Dop853`, `VODE` (scipy) | not available: `dopri5` (delay-free systems; `rtol`, "
               "`atol`) or `rk4` with a small `dt` |")
    from .monitor_params import tvb_markdown
    out.extend(tvb_markdown())
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":        # pragma: no cover
    if "--markdown" in sys.argv[1:]:
        sys.stdout.write(markdown())
    else:
        sys.stderr.write("usage: python -m cosim.tvb --markdown\n")
        sys.exit(2)
