"""What a NEURON model's code sees, and how cosim talks to NEURON in bulk.

:class:`NeuronContext` is the ``ctx`` of a model's ``build(ctx, **args)`` /
``connect(ctx, cells, **args)``; its ``pc`` is a :class:`Connector`, NEURON's
``ParallelContext`` whose ``gid_connect`` makes connections from a *relay* of the source
gid, so that cosim delivers every spike in every layout the same way (see
:mod:`cosim.engines.neuron_engine`).  :func:`queue_events` queues many ``NetCon`` events
in one hoc loop; :func:`model_line` finds the model file's line in a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CosimError
from ..rng import Streams


@dataclass
class NeuronContext:
    """What a model's ``build`` / ``connect`` get besides their ``args``.

    ``name``: engine name; ``gids``: the gids to build on this partition (int64, ascending);
    ``populations``: population → global gid range; ``h``, ``pc``: NEURON's ``h`` and the
    ``ParallelContext``; ``dt_ms``; ``rng``: the run's :class:`~cosim.rng.Streams`;
    ``model_dir``: the folder of the model file.
    """

    name: str
    gids: np.ndarray
    populations: dict[str, range]
    h: Any
    pc: Any
    dt_ms: float
    rng: Streams
    model_dir: str
    part: int = 0
    n_parts: int = 1

    def population_of(self, gid: int) -> str:
        for name, r in self.populations.items():
            if gid in r:
                return name
        raise KeyError(f"no cell with gid {gid}")

    def generator(self, *ids: int | str) -> np.random.Generator:
        """A numpy stream ``(seed, "neuron.model", engine name, *ids)``."""
        return self.rng.generator("neuron.model", self.name, *ids)



_EVENTS_PROC = ("proc cosim_neuron_events() { local k\n"
                "  for k = 0, $o2.size() - 1 { $o1.o($o2.x[k]).event($o3.x[k]) }\n}")


def queue_events(h, netcons, index: np.ndarray, times_ms: np.ndarray) -> None:
    """``netcons.o(index[k]).event(times_ms[k])`` for every k, in order — one hoc loop
    (NEURON's Python-to-hoc call per event costs more than the event itself)."""
    if not index.size:
        return
    if not hasattr(h, "cosim_neuron_events"):
        h(_EVENTS_PROC)
    h.cosim_neuron_events(netcons, h.Vector(index.astype(np.float64)), h.Vector(times_ms))


class Connector:
    """``ctx.pc`` of the model's code: NEURON's ``ParallelContext``, except ``gid_connect``.

    ``gid_connect(source_gid, target)`` returns a ``NetCon(None, target)`` (set its
    ``weight`` and ``delay`` as usual) and cosim delivers the source's spikes to it at
    spike time + delay, after each exchange — whether the source is on this rank or
    another, so one process and several ranks run the same arithmetic.  (NEURON's own
    spike exchange runs on MPI_COMM_WORLD, which cosim shares with the bus and the other
    engines; NEURON cannot be given the engine's sub-communicator.)
    """

    def __init__(self, h, pc, conns: list, relays: dict):
        self._h, self._pc, self._conns, self._relays = h, pc, conns, relays

    def gid_connect(self, source_gid, target, *_):
        src = int(source_gid)
        relay = self._relays.get(src)
        if relay is None:
            relay = self._relays[src] = _relay(self._h)
        nc = self._h.NetCon(relay, target)
        self._conns.append((src, nc))
        return nc

    def __getattr__(self, name):
        return getattr(self._pc, name)


def _relay(h):
    """A ``NetStim`` that emits one spike at the time of every event it receives
    (``number = 1``, no start of its own, no noise): the source end of a gid's connections."""
    r = h.NetStim()
    r.number, r.start, r.noise, r.interval = 1, -1, 0, 1.0
    return r


class ModelError(CosimError):
    """An exception raised by the model's own code (build, connect, import)."""


def model_line(exc: BaseException, path: str) -> str:
    """`` (rv1.py line 12)``: the innermost frame of the model file in the traceback."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" ({os.path.basename(path)} line {line})" if line is not None else ""

