"""Adapters at the scale boundary between a spiking region and the neural-mass network.

- :class:`~adapters.spikes_to_rate.SpikesToRate`: spikes of a population → population
  rate in Hz per bus bin (optionally smoothed by a causal exponential or alpha kernel), then a
  declared map into the receiving coupling variable.
- :class:`~adapters.rate_to_poisson.RateToPoisson`: a rate time course → independent (or
  partly shared) Poisson spike trains on N synapses, with counter-based random streams keyed
  by (seed, engine, synapse id), so results do not depend on how cells are split over ranks.

Both keep their state between windows (``state()`` / ``restore()``) and never look ahead:
the output for a bin depends only on input up to the end of that bin.
"""

from .maps import RateMap, map_from_config
from .rate_to_poisson import RateToPoisson
from .spikes_to_rate import SpikesToRate

__all__ = ["RateMap", "RateToPoisson", "SpikesToRate", "map_from_config"]
