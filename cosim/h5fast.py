"""Appending to growing HDF5 datasets with few library calls (the output's flush path).

h5py's high-level calls are costly on the flush path: ``Dataset.resize`` flushes the whole
file after extending (``h5f.flush``), and ``dataset[a:b] = x`` builds its selection in
Python.  :func:`append` extends axis 0 with ``H5Dset_extent`` and writes the new rows with
one ``H5Dwrite`` of a hyperslab — the same data, dtype conversion and extents, without the
intermediate file flushes (the recorder flushes the file once, after every dataset is
written: :meth:`cosim.recording.Recorder.flush`).  :class:`Attrs` rewrites existing scalar
attributes in place (``H5Awrite`` on a handle opened once) instead of h5py's delete and
re-create.
"""

from __future__ import annotations

import h5py
import numpy as np
from h5py import h5a, h5s, h5t


def length(d: h5py.Dataset) -> int:
    """``d.shape[0]`` through the low-level id (no high-level property)."""
    return d.id.shape[0]


def append(d: h5py.Dataset, block: np.ndarray, n0: int | None = None) -> int:
    """Write ``block`` as rows ``n0 …`` of ``d`` (default: after its last row), extending
    axis 0 to ``n0 + len(block)``; the other axes keep their extent (``block`` may be
    narrower: it fills the leading part, as ``d[n0:, :w] = block``).  Returns the new
    length."""
    did = d.id
    shape = did.shape
    if n0 is None:
        n0 = shape[0]
    block = np.ascontiguousarray(block)
    if block.ndim != len(shape) or any(b > s for b, s in zip(block.shape[1:], shape[1:])):
        raise ValueError(f"{d.name}: rows of shape {block.shape[1:]} do not fit {shape[1:]}")
    n1 = n0 + block.shape[0]
    if block.shape[0] == 0:
        return n0
    if n1 != shape[0]:
        did.set_extent((n1,) + tuple(shape[1:]))
        shape = (n1,) + tuple(shape[1:])
    # the file's dataspace: the dataset's extent, made here rather than fetched (H5Dget_space
    # costs as much again); the memory space and the memory type once per shape and dtype —
    # the type is the one h5py makes when none is given (h5t.py_create), so the same write
    fs = h5s.create_simple(shape)
    fs.select_hyperslab((n0,) + (0,) * (block.ndim - 1), block.shape)
    ms = _MSPACES.get(block.shape)
    if ms is None:
        if len(_MSPACES) >= 64:          # (spike blocks differ in length every flush)
            _MSPACES.clear()
        ms = _MSPACES[block.shape] = h5s.create_simple(block.shape)
    mt = _MTYPES.get(block.dtype)
    if mt is None:
        mt = _MTYPES[block.dtype] = h5t.py_create(block.dtype)
    did.write(ms, fs, block, mtype=mt)
    return n1


#: memory dataspaces by block shape (at most 64 kept), memory types by dtype
_MSPACES: dict = {}
_MTYPES: dict = {}


class Attrs:
    """Existing attributes of one HDF5 object, rewritten in place (their stored type kept).
    Handles are opened at first use and closed with the file (h5py closes what is open)."""

    def __init__(self, obj):
        self._obj = obj
        self._ids: dict[str, h5a.AttrID] = {}

    def set(self, name: str, value) -> None:
        aid = self._ids.get(name)
        if aid is None or not aid.valid:
            if name not in self._obj.attrs:          # (a file without it: create it)
                self._obj.attrs[name] = value
                return
            aid = self._ids[name] = h5a.open(self._obj.id, name.encode())
        aid.write(np.asarray(value, dtype=aid.dtype))
