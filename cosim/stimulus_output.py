"""The stimuli in the output file: ``/stimuli/<name>/`` (layout in :mod:`cosim.stimuli`).

The bus node evaluates each stimulus for the steps of every window from the same
function its engine applies (:meth:`cosim.stimuli.StimulusRecord.values`), so the file
holds what was applied whatever the layout, and a resumed run appends the same numbers.
The ``values`` and ``time_ms`` datasets grow per window and are flushed with the rest (a
resume cuts them back with every other growing dataset).
"""

from __future__ import annotations

import h5py
import numpy as np

from . import h5fast
from .output_guard import chunked_bytes

GROUP = "stimuli"
CHUNK = 4096


class StimulusWriter:
    """Buffers and writes the ``/stimuli`` datasets of one output file."""

    def __init__(self, f: "h5py.File", records: dict, create: bool):
        self.records = dict(records)
        self._values: dict[str, h5py.Dataset] = {}
        self._times: dict[str, h5py.Dataset] = {}
        self._chunks: dict[str, list] = {n: [] for n in self.records}
        for name, rec in self.records.items():
            path = f"{GROUP}/{name}"
            if create:
                g = f.require_group(path)
                g.attrs.update(rec.attrs())
                g.create_dataset("weights", data=np.asarray(rec.weights, dtype=np.float64))
                v = g.create_dataset("values", shape=(0,), maxshape=(None,), dtype="f8",
                                     chunks=(CHUNK,))
                v.attrs["unit"] = rec.unit
                t = g.create_dataset("time_ms", shape=(0,), maxshape=(None,), dtype="f8",
                                     chunks=(CHUNK,))
                t.attrs["unit"] = "ms"
                t.make_scale("time_ms")
                v.dims[0].attach_scale(t)
                v.dims[0].label = "time"
            self._values[name] = f[f"{path}/values"]
            self._times[name] = f[f"{path}/time_ms"]

    def add_window(self, t0_ms: float, t1_ms: float) -> None:
        for name, rec in self.records.items():
            self._chunks[name].append(rec.times(t0_ms, t1_ms))

    def clear(self) -> None:
        for c in self._chunks.values():
            c.clear()

    def bytes_to_write(self) -> int:
        need = 0
        for name, chunks in self._chunks.items():
            n0 = h5fast.length(self._values[name])
            n1 = n0 + sum(c.size for c in chunks)
            need += 2 * (chunked_bytes(n1, CHUNK, 8) - chunked_bytes(n0, CHUNK, 8))
        return need

    def writes(self) -> list[tuple]:
        """The buffered stimulus times and values as appends ``(dataset, rows, first row)``
        (the recorder makes them, with no file flush in between); the buffers emptied."""
        out = []
        for name, chunks in self._chunks.items():
            if not chunks:
                continue
            t = np.concatenate(chunks)
            chunks.clear()
            u = self.records[name].pattern(t)
            v, ts = self._values[name], self._times[name]
            n0 = h5fast.length(v)
            out += [(v, np.broadcast_to(np.asarray(u, dtype=np.float64), t.shape), n0),
                    (ts, np.asarray(t, dtype=np.float64), n0)]
        return out
