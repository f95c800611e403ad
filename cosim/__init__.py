"""cosim — distributed hybrid multiscale brain co-simulation.

Neural-mass regions on a delayed structural connectome, coupled to biophysically detailed
spiking regions, each engine on its own MPI rank(s), described by one scenario file.
"""

from .errors import CosimError

__version__ = "0.1.0"
__all__ = ["CosimError", "__version__"]
