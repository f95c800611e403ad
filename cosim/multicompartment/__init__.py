"""Multicompartment spiking region: morphologies, cable solver, channels, synapses, network.

Modules: :mod:`.morphology` (sections, templates, d_lambda), :mod:`.swc` (SWC loader),
:mod:`.compartments` (discretisation), :mod:`.channels` (HH, pas), :mod:`.synapses`
(AMPA, GABA_A, NMDA), :mod:`.stp` (Tsodyks–Markram), :mod:`.cable` (the numba kernel),
:mod:`.network` (population API).  The scenario-facing engine is
:class:`cosim.engines.multicompartment.MulticompartmentEngine`.
"""

from .compartments import CellTemplate, discretise
from .morphology import Morphology, Section, apply_d_lambda, ball_and_stick, y_shaped
from .network import Network

__all__ = ["CellTemplate", "discretise", "Morphology", "Section", "apply_d_lambda",
           "ball_and_stick", "y_shaped", "Network"]
