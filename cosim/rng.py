"""Counter-based random streams keyed by stable ids.

Every random number in cosim comes from a stream identified by ``(seed, *ids)`` — for the
neural-mass engine ``(seed, engine name, purpose, region index)``.  The ids are hashed
(SHA-256) into the 128-bit key of a Philox-4x64 counter-based generator (numpy's
``Philox``) whose counter starts at zero.  A region's stream therefore does not depend on
which other regions exist, how they are ordered, or how they are split over processes —
the property the layout-independence invariant needs.  No global seeding anywhere.

A stream is consumed strictly sequentially (one block of normals per step), so drawing a
window of ``k`` steps at once gives the same numbers as ``k`` single steps, and a
checkpoint only needs each generator's state (:func:`pack_state`).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np

_STATE_WORDS = 13   # counter 4 + key 2 + buffer 4 + buffer_pos, has_uint32, uinteger


def stream_key(seed: int, *ids: int | str) -> np.ndarray:
    """128-bit Philox key (2 × uint64) for the stream ``(seed, *ids)``."""
    text = repr((int(seed),) + tuple(i if isinstance(i, str) else int(i) for i in ids))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.frombuffer(digest[:16], dtype="<u8").astype(np.uint64)


def stream(seed: int, *ids: int | str) -> np.random.Generator:
    """A fresh generator for the stream ``(seed, *ids)``."""
    return np.random.Generator(np.random.Philox(key=stream_key(seed, *ids)))


class NodeStreams:
    """One independent stream per node: ``stream(seed, *prefix, node_id)``.

    Parameters
    ----------
    seed : int
        Master seed of the run.
    prefix : sequence of str/int
        Ids shared by all nodes (e.g. ``("neural_mass", "cortex", "noise")``).
    node_ids : iterable of int
        Stable node ids (connectome region indices), in the engine's node order.
    """

    def __init__(self, seed: int, prefix: Sequence[int | str], node_ids: Iterable[int]):
        self.node_ids = tuple(int(n) for n in node_ids)
        self.generators = [stream(seed, *prefix, n) for n in self.node_ids]

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
