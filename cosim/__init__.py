"""cosim — distributed hybrid multiscale brain co-simulation.

Neural-mass regions on a delayed structural connectome, coupled to biophysically detailed
spiking regions, each engine on its own MPI rank(s), described by one scenario file.
"""

from .errors import CosimError

#: the one version number (pyproject.toml reads it; the distribution is ``brain-cosim``)
__version__ = "0.1.0"
DISTRIBUTION = "brain-cosim"
__all__ = ["CosimError", "__version__"]
