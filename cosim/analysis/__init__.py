"""What a whole-brain modeller looks at: FC, FCD, spectra, BOLD, stability and modes.

- :mod:`.hemodynamics` — Balloon–Windkessel model (neural activity → BOLD);
- :mod:`.fc` — static FC, sliding-window FC, FCD, agreement with an empirical FC;
- :mod:`.spectra` — Welch power spectra and peak frequencies;
- :mod:`.stability` — fixed points, Jacobian eigenvalues, Hopf bifurcations;
- :mod:`.dispersion` — neural-field sheets: λ(k), Turing and Hopf onsets;
- :mod:`.modes` — connectome eigenmodes and the linearised network's mode growth rates;
- :mod:`.lif_transfer` — the LIF transfer function Φ(μ, σ) and self-consistent network rates;
- :mod:`.io`, :mod:`.report`, :mod:`.figures`, :mod:`.cli` — reading output files,
  ``cosim analyze`` and ``cosim plot``.
"""

import importlib

_EXPORTS = {
    "fc": ("functional_connectivity", "sliding_window_fc", "fcd_matrix", "fcd_values",
           "fcd_ks_distance", "fc_agreement", "matrix_correlation", "upper_triangle"),
    "hemodynamics": ("BalloonParams", "balloon_windkessel", "impulse_response"),
    "spectra": ("power_spectra", "peak_frequencies", "band_power"),
    "stability": ("jacobian", "fixed_points", "analyse_point", "find_hopf", "FixedPoint",
                  "HopfPoint", "node_rhs", "input_jacobian"),
    "dispersion": ("dispersion", "growth_rate", "turing_onset", "hopf_onset", "critical",
                   "hopf_frequency", "Onset"),
    "modes": ("connectome_modes", "laplacian", "mode_growth_rates", "linear_network_modes",
              "network_jacobian", "ModeSpectrum"),
    "lif_transfer": ("siegert", "siegert_derivatives", "LIF", "Network", "self_consistent_rates",
                "input_moments"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    # Submodules are imported on first use, so `cosim analyze --help` and the scenario
    # loader do not pay for scipy.stats and numba.
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
