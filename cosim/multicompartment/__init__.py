"""Multicompartment spiking region: morphologies, cable solver, channels, synapses, network.

Modules: :mod:`.morphology` (sections, templates, d_lambda), :mod:`.swc` (SWC loader),
:mod:`.compartments` (discretisation), :mod:`.channels` (HH, pas — the built-in fast
path), :mod:`.mechanism` / :mod:`.nmodl` / :mod:`.codegen` (any mechanism, read from
NMODL, compiled into generated numba kernels; shipped set in ``mod/``),
:mod:`.distribution` (densities as functions of path distance), :mod:`.sites` (synapse
sites at given path distances), :mod:`.cells`
(a layer-5 pyramidal-like cell), :mod:`.synapses`
(AMPA, GABA_A, NMDA), :mod:`.stp` (Tsodyks–Markram), :mod:`.cable` (the numba kernel),
:mod:`.network` (population API).  The scenario-facing engine is
:class:`cosim.engines.multicompartment.MulticompartmentEngine`.
"""

from .compartments import CellTemplate, discretise
from .morphology import Morphology, Section, apply_d_lambda, ball_and_stick, y_shaped
from .network import Network

__all__ = ["CellTemplate", "discretise", "Morphology", "Section", "apply_d_lambda",
           "ball_and_stick", "y_shaped", "Network"]
