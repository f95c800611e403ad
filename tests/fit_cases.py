"""Small fit problems for the tests of ``cosim fit`` / ``cosim identify`` (importable as
``from fit_cases import …``).

The model is the six-node linear (Ornstein–Uhlenbeck) network of
``scenarios/fits/linear_net.toml``: ``dx_i/dt = γ x_i + c_i + σ ξ_i``, Euler–Maruyama,
dt 1 ms, sampled every 10 ms; each run of 10 s takes ~0.1 s once compiled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _util import REPO
from cosim.toml_writer import dumps

DATA = REPO / "scenarios" / "fits" / "data"


def linear_net(duration_ms: float = 10000.0, seed: int = 7, G: float = 0.02,
               coupling: dict | None = None, output: str = "truth.h5") -> dict:
    """The six-node linear network as a scenario dict (coupling: linear, ``G``)."""
    return {
        "simulation": {"duration": duration_ms, "sync_interval": 100.0, "seed": seed,
                       "output": output},
        "connectome": {"source": {"weights": str(DATA / "six_weights.csv"),
                                  "tract_lengths": str(DATA / "six_lengths.csv")},
                       "speed": 5.0},
        "engines": {"net": {"type": "neural_mass", "model": "linear", "dt": 1.0,
                            "integrator": "euler_maruyama",
                            "parameters": {"gamma": -0.1},
                            "coupling": coupling or {"type": "linear", "G": G},
                            "noise": {"x": 0.1}}},
        "record": {"period": 10.0},
    }


def write_toml(path: Path, data: dict) -> Path:
    path.write_text(dumps(data), encoding="utf-8")
    return path


def truth_series(tmp: Path, duration_ms: float, *, seed: int = 7, noise: float = 0.0,
                 noise_seed: int = 0, coupling: dict | None = None, G: float = 0.02,
                 discard_ms: float = 0.0) -> np.ndarray:
    """``(time, region)`` of a cosim run at the true parameters, plus observation noise of
    ``noise`` × each region's standard deviation (independent Gaussian per sample)."""
    from cosim.runtime import run_scenario
    from cosim.scenario import load_scenario

    out = tmp / f"truth_{int(duration_ms)}_{seed}.h5"
    sc = write_toml(tmp / f"truth_{int(duration_ms)}_{seed}.toml",
                    linear_net(duration_ms, seed, G, coupling, str(out)))
    run_scenario(load_scenario(sc), output=out, overwrite=True, progress_stream=None)
    import h5py

    with h5py.File(out) as f:
        t = f["engines/net/timeseries_time_ms"][:]
        x = f["engines/net/timeseries"][:, 0, :]
    x = x[t > discard_ms]
    if noise:
        rng = np.random.default_rng(noise_seed)
        x = x + noise * x.std(axis=0) * rng.standard_normal(x.shape)
    return x


def fit_text(scenario: Path | str, target: dict, params: dict, *, budget: int = 8,
             loss: dict | None = None, optimizer: dict | None = None, sets: dict | None = None,
             identify: dict | None = None, out: str | None = None, seed: int = 0,
             connectome: dict | None = None) -> str:
    """A fit description as TOML text."""
    data: dict = {"fit": {"scenario": str(scenario), "budget": budget, "seed": seed}}
    if out:
        data["fit"]["out"] = out
    if sets:
        data["set"] = sets
    if connectome:
        data["connectome"] = connectome
    data["parameters"] = params
    data["target"] = target
    data["loss"] = loss or {"fc": 1.0}
    data["optimizer"] = optimizer or {"method": "cmaes", "population": 4}
    if identify:
        data["identify"] = identify
    return dumps(data)
