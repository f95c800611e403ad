"""The Virtual Brain's surface simulation as the surface tests run it
(``tests/test_neural_surface_tvb.py``, ``tests/test_neural_surface_bold.py``): tvb-data's
connectivity_76 at 3 mm/ms and its 16 384-vertex cortex with the shipped local
connectivity, a Generic2dOscillator at every vertex with Linear long-range coupling,
deterministic Heun, and one state at every vertex held as the history for t ≤ 0.

Callers import tvb first with ``pytest.importorskip`` (tvb-library is optional)."""

from __future__ import annotations

import warnings

import numpy as np


def _lab():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tvb.simulator import lab
    return lab


def tvb_cortex(coupling_strength: float, speed: float = 3.0):
    """``(connectivity, cortex)``: connectivity_76 at ``speed`` mm/ms, the 16k cortex with
    its region mapping and local connectivity, local coupling strength as given."""
    lab = _lab()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tc = lab.connectivity.Connectivity.from_file("connectivity_76.zip")
        tc.speed = np.array([speed])
        ctx = lab.cortex.Cortex.from_file(source_file="cortex_16384.zip",
                                          region_mapping_file="regionMapping_16k_76.txt",
                                          local_connectivity_file="local_connectivity_16384.mat")
        ctx.region_mapping_data.connectivity = tc
        ctx.coupling_strength = np.array([coupling_strength])
    return tc, ctx


def tvb_surface_simulator(tc, ctx, x0: np.ndarray, G: float, T: float, monitor,
                          variables=("V", "W"), dt: float = 0.1):
    """A configured TVB surface ``Simulator`` of ``T`` ms with ``monitor``, its whole
    history the vertex state ``x0`` ``(vertex, variable)``."""
    lab = _lab()

    def make(ic=None):
        sim = lab.simulator.Simulator(
            model=lab.models.Generic2dOscillator(variables_of_interest=tuple(variables)),
            connectivity=tc, coupling=lab.coupling.Linear(a=np.array([G])),
            integrator=lab.integrators.HeunDeterministic(dt=dt), monitors=(monitor,),
            surface=ctx, simulation_length=T, initial_conditions=ic)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sim.configure()
    return make(np.repeat(x0.T[None, :, :, None], make().connectivity.horizon, axis=0))
