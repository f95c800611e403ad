"""Counter-based random streams keyed by stable ids: cosim's one random-key scheme.

Every random number in cosim comes from a Philox-4x64-10 counter-based generator whose
128-bit key is a pure function of ``(seed, domain, *ids)``: the master seed of the run, a
*domain* string naming what the numbers are for, and the stable ids of the thing they
belong to (a region index, an engine and projection name, a cell gid…).  A stream therefore
does not depend on which other streams exist, in which order they are created, or how the
work is split over processes — the property the layout-independence invariant needs.  No
global seeding anywhere.

Key derivation (:func:`stream_key`), stable across Python versions, platforms and
processes::

    message = field(seed) ‖ field(domain) ‖ field(id_1) ‖ … ‖ field(id_n)
    field(int x) = b"i" ‖ x as 8 bytes, little-endian two's complement (−2**63 ≤ x < 2**63)
    field(str s) = b"s" ‖ len(utf8(s)) as 4 bytes, little-endian unsigned ‖ utf8(s)
    digest       = SHA-256(message)
    key          = (uint64 LE of digest[0:8], uint64 LE of digest[8:16])

The type tag and the length prefix make every field self-delimiting, so two different
tuples never give the same message (``("a", "bc")`` ≠ ``("ab", "c")``, ``1`` ≠ ``"1"``).
``bool`` is rejected (it would silently be the int 0/1); numpy integers are accepted.

The key is used in two ways, with the same Philox block function:

* **numpy streams** (:meth:`Streams.generator`, :class:`NodeStreams`):
  ``numpy.random.Generator(numpy.random.Philox(key=key))``, counter starting at zero,
  consumed sequentially (drawing a window of ``k`` steps at once gives the numbers of ``k``
  single steps; a checkpoint stores the generator state, :meth:`NodeStreams.pack_state`);
* **numba kernels** (:mod:`cosim.philox`): ``philox4x64(counter, key)`` with a counter the
  kernel chooses, ``(index, item, 0, 0)`` — random numbers as pure functions of what they
  are for.  ``philox4x64`` is bit-identical to numpy's ``Philox`` (numpy's n-th block is
  ``philox4x64((n+1, 0, 0, 0), key)``; tested).

Key domains — every stream in cosim (a new stream adds a row here and to :data:`DOMAINS`):

=============================  =============================  ===================================
domain                         ids after ``(seed, domain)``   used by, and what is drawn
=============================  =============================  ===================================
``neural_mass.noise``          region index (connectome)      ``NeuralMassEngine`` noise: numpy
                                                              stream, one N(0,1) block per step
``neural_mass.initial``        region index (connectome)      ``NeuralMassEngine`` with
                                                              ``initial.random``: numpy stream,
                                                              one U(lo, hi) per state variable
                                                              (seed: ``initial.seed`` or master)
``multicompartment.connect``   engine name, projection        ``MulticompartmentEngine``
                               name, target gid               connectivity: numpy stream,
                                                              ``choice`` of sources, U delays
``nest.kernel``                engine name                    ``NestEngine``: NEST's
                                                              ``rng_seed`` = key word 0
                                                              mod (2**31 − 2) + 1 (NEST draws
                                                              its own numbers from it)
``neuron.model``               engine name, ids the model     ``NeuronEngine`` model code
                               code chooses                   (``ctx.generator(*ids)``): numpy
                                                              stream, drawn as the model likes
``rate_to_poisson``            engine name, adapter name      ``RateToPoisson`` independent
                                                              trains: numba, counter
                                                              ``(k, line, 0, 0)`` → k-th Exp(1)
``rate_to_poisson.mother``     engine name, adapter name      ``RateToPoisson`` correlated: the
                                                              mother train, counter
                                                              ``(k, 0, 0, 0)`` → k-th Exp(1)
``rate_to_poisson.copy``       engine name, adapter name      ``RateToPoisson`` correlated: does
                                                              ``line`` copy mother event ``m``?
                                                              counter ``(m, line, 0, 0)`` → U(0,1)
``stimulus.poisson``           engine name, stimulus name     a ``[stimuli.<name>]`` with
                                                              ``target = "poisson"``:
                                                              ``RateToPoisson`` independent
                                                              trains, counter ``(k, line, 0, 0)``
``neural_field.initial``       engine name                    ``NeuralFieldEngine``: numpy
                                                              stream, the white perturbation
                                                              N(0, noise²) of the initial sheet
``neural_surface.initial``     engine name                    ``NeuralSurfaceEngine``: numpy
                                                              stream, one U(lo, hi) per vertex
                                                              and state variable
=============================  =============================  ===================================

(``NeuralMassEngine``: :mod:`cosim.engines.neural_mass`; ``MulticompartmentEngine``:
:mod:`cosim.engines.multicompartment`; ``NestEngine``: :mod:`cosim.engines.nest`;
``NeuronEngine``: :mod:`cosim.engines.neuron_engine`; ``RateToPoisson``:
:mod:`adapters.rate_to_poisson`, built by the spiking part for each
``rate_to_poisson`` adapter of the scenario.)

Whether an engine's *name* is in the key is decided by which ids are stable and unique:

* neural masses key by the **region index** only.  A region belongs to exactly one engine,
  and its index is global, so a region's noise is the same whichever engine — or part of a
  split engine — simulates it (a split neural-mass run is bitwise equal to one engine), and
  renaming the engine changes nothing.
* spiking engines and their Poisson adapters key by **engine name** (and projection /
  adapter name).  Their gids and input lines are local to the engine (0 … n−1 in every
  engine), so without the name two spiking regions built from the same template would get
  identical connectivity and identical input trains.  Renaming such an engine (or a
  projection, or an adapter) changes its streams; that is the documented price.
  Input line / cell ids go into the Philox *counter* of the numba kernels, not into the key,
  so one key serves all lines of an adapter — the stream of a line still does not depend on
  which other lines a rank holds.

Not part of the scheme: :mod:`cosim.analysis.stability` (starting points of an equilibrium
search, ``numpy.random.default_rng(seed)`` of its own) and ``bench/`` / test data.

The seed reaches engines and adapters as one :class:`Streams` object (seed + this scheme):
:class:`cosim.engines.base.BuildContext` carries it as ``ctx.rng``.
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass
from typing import Iterable

import numpy as np

_STATE_WORDS = 13   # counter 4 + key 2 + buffer 4 + buffer_pos, has_uint32, uinteger
_INT64 = (-(2 ** 63), 2 ** 63)

#: Built-in key domains: domain → ids after ``(seed, domain)`` (the table above).
DOMAINS: dict[str, tuple[str, ...]] = {
    "neural_mass.noise": ("region index",),
    "neural_mass.initial": ("region index",),
    "multicompartment.connect": ("engine name", "projection name", "target gid"),
    "nest.kernel": ("engine name",),
    "neuron.model": ("engine name", "ids chosen by the model code"),
    "rate_to_poisson": ("engine name", "adapter name"),
    "rate_to_poisson.mother": ("engine name", "adapter name"),
    "rate_to_poisson.copy": ("engine name", "adapter name"),
    "stimulus.poisson": ("engine name", "stimulus name"),
    "neural_field.initial": ("engine name",),
    "neural_surface.initial": ("engine name",),
}


def _field(x: int | str) -> bytes:
    if isinstance(x, str):
        b = x.encode("utf-8")
        return b"s" + len(b).to_bytes(4, "little") + b
    if isinstance(x, (bool, np.bool_)):
        raise TypeError("a random-stream id cannot be a bool")
    try:
        v = operator.index(x)
    except TypeError:
        raise TypeError(f"a random-stream id must be int or str, got {type(x).__name__}") from None
    if not _INT64[0] <= v < _INT64[1]:
        raise ValueError(f"a random-stream id must fit in int64, got {v}")
    return b"i" + v.to_bytes(8, "little", signed=True)


def encode(seed: int, domain: str, *ids: int | str) -> bytes:
    """The canonical byte encoding of ``(seed, domain, *ids)`` (module docstring)."""
    if not isinstance(domain, str) or not domain:
        raise TypeError(f"a random-stream domain must be a non-empty str, got {domain!r}")
    return b"".join(_field(x) for x in (seed, domain, *ids))


def stream_key(seed: int, domain: str, *ids: int | str) -> np.ndarray:
    """Philox-4x64 key (2 × uint64) of the stream ``(seed, domain, *ids)``:
    the first 16 bytes of SHA-256(:func:`encode`) as two little-endian words."""
    digest = hashlib.sha256(encode(seed, domain, *ids)).digest()
    return np.frombuffer(digest[:16], dtype="<u8").astype(np.uint64)


def stream(seed: int, domain: str, *ids: int | str) -> np.random.Generator:
    """A fresh numpy generator (Philox, counter 0) for the stream ``(seed, domain, *ids)``."""
    return np.random.Generator(np.random.Philox(key=stream_key(seed, domain, *ids)))


@dataclass(frozen=True)
class Streams:
    """The random streams of one run: the master seed plus the key scheme of this module.

    Engines and adapters receive one ``Streams`` (``BuildContext.rng``) and derive every
    stream from it by domain and ids; nothing else about randomness is passed around.
    """

    seed: int

    def __post_init__(self):
        if isinstance(self.seed, (bool, np.bool_)):
            raise TypeError("seed must be an integer, got a bool")
        seed = operator.index(self.seed)
        if not 0 <= seed < _INT64[1]:
            raise ValueError(f"seed must be within [0, 2**63), got {seed}")
        object.__setattr__(self, "seed", seed)

    @classmethod
    def of(cls, seed: "int | Streams") -> "Streams":
        """``seed`` itself if it is a :class:`Streams`, else ``Streams(seed)``."""
        return seed if isinstance(seed, Streams) else cls(seed)

    def key(self, domain: str, *ids: int | str) -> np.ndarray:
        """Philox key (2 × uint64) of ``(seed, domain, *ids)``, e.g. for a numba kernel."""
        return stream_key(self.seed, domain, *ids)

    def generator(self, domain: str, *ids: int | str) -> np.random.Generator:
        """A fresh numpy generator for ``(seed, domain, *ids)``."""
        return stream(self.seed, domain, *ids)

    def nodes(self, domain: str, node_ids: Iterable[int]) -> "NodeStreams":
        """One stream per node: ``(seed, domain, node_id)``."""
        return NodeStreams(self, domain, node_ids)


class NodeStreams:
    """One independent numpy stream per node: ``(seed, domain, node_id)``.

    Parameters
    ----------
    streams : Streams or int
        The run's streams (or its master seed).
    domain : str
        Key domain shared by all nodes, e.g. ``"neural_mass.noise"``.
    node_ids : iterable of int
        Stable node ids (connectome region indices), in the engine's node order.
    """

    def __init__(self, streams: Streams | int, domain: str, node_ids: Iterable[int]):
        streams = Streams.of(streams)
        self.node_ids = tuple(int(n) for n in node_ids)
        self.generators = [streams.generator(domain, n) for n in self.node_ids]

    def standard_normal(self, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (n_nodes, …) with N(0, 1) draws; row ``j`` from node ``j``'s stream."""
        for g, row in zip(self.generators, out):
            g.standard_normal(out=row)
        return out

    def uniform(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """One uniform draw per node and component: (n_nodes, len(low))."""
        return np.stack([g.uniform(low, high) for g in self.generators])

    def pack_state(self) -> np.ndarray:
        """Generator states as a uint64 array (n_nodes, 13), for checkpoints."""
        rows = []
        for g in self.generators:
            st = g.bit_generator.state
            rows.append(np.concatenate([
                st["state"]["counter"], st["state"]["key"], st["buffer"],
                np.array([st["buffer_pos"], st["has_uint32"], st["uinteger"]], dtype=np.uint64),
            ]).astype(np.uint64))
        return np.array(rows, dtype=np.uint64).reshape(len(self.generators), _STATE_WORDS)

    def unpack_state(self, packed: np.ndarray) -> None:
        """Restore generator states saved by :meth:`pack_state`."""
        packed = np.asarray(packed, dtype=np.uint64)
        if packed.shape != (len(self.generators), _STATE_WORDS):
            raise ValueError(f"rng state has shape {packed.shape}, expected "
                             f"{(len(self.generators), _STATE_WORDS)}")
        for g, row in zip(self.generators, packed):
            g.bit_generator.state = {
                "bit_generator": "Philox",
                "state": {"counter": row[0:4].copy(), "key": row[4:6].copy()},
                "buffer": row[6:10].copy(),
                "buffer_pos": int(row[10]),
                "has_uint32": int(row[11]),
                "uinteger": int(row[12]),
            }
