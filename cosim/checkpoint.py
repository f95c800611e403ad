"""Checkpoints: everything needed to continue a run bit for bit.

With ``[simulation] checkpoint_every = T`` (ms, a whole multiple of the sync interval),
after every window that ends at a multiple of ``T`` the run saves, in the folder
``<output>.checkpoint/``:

``part-<engine>-<p>-w<W>.npz``
    the state of every engine part after window ``W − 1`` (written by the part's own rank
    *before* it sends that window's output, so it is complete when the coordinator hears
    from the part): engine state (neural masses: state, delay ring with external sources,
    noise streams; multicompartment: voltages, gates, synapses, STP, spikes in flight),
    adapter state (Poisson streams);
``coordinator.npz``
    the bus history, the spike→rate filters, the monitors, the number of completed windows
    ``W`` and the length of every output dataset at that moment — written last, atomically
    (write + rename), after the output file was flushed.  It is the commit point: a crash
    before it leaves the previous checkpoint valid.

``cosim run FILE --resume`` reads ``coordinator.npz``, truncates the output datasets to the
saved lengths (dropping windows written after the checkpoint), restores every part from its
``w<W>`` file and continues with window ``W``.  Parts are identified by (engine, partition),
so a checkpoint can be resumed by any process layout that splits the engines the same way
(one process and ``-n 3`` split nothing; ``-n 4`` splits the spiking region in two).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import CosimError


def checkpoint_dir(output: Path) -> Path:
    return Path(str(output) + ".checkpoint")


def _save_atomic(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in state.items()})
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Checkpointer:
    """Saves and loads checkpoints of one run (see module docstring)."""

    def __init__(self, output: Path, every_windows: int):
        self.dir = checkpoint_dir(Path(output))
        self.every = int(every_windows)

    def due(self, k: int) -> bool:
        """Whether the state after window ``k`` is to be saved."""
        return self.every > 0 and (k + 1) % self.every == 0

    def part_path(self, key, window: int) -> Path:
        return self.dir / f"part-{key[0]}-{key[1]}-w{window}.npz"

    def save_part(self, key, window: int, state: dict[str, np.ndarray]) -> None:
        """Save a part's flat state dict (keys are kept verbatim)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _save_atomic(self.part_path(key, window), state)

    def save_coordinator(self, window: int, state: dict, lengths: dict[str, int]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = {"@window": np.array(window)}
        payload.update({f"@len:{k}": np.array(v) for k, v in lengths.items()})
        payload.update(state)
        _save_atomic(self.dir / "coordinator.npz", payload)
        # older part files are no longer needed once this commit point is written
        for p in self.dir.glob("part-*-w*.npz"):
            m = re.search(r"-w(\d+)\.npz$", p.name)
            if m and int(m.group(1)) < window:
                p.unlink(missing_ok=True)

    def load_coordinator(self) -> tuple[int, dict, dict[str, int]]:
        path = self.dir / "coordinator.npz"
        if not path.is_file():
            raise CosimError("no checkpoint to resume from (run with [simulation] "
                             "checkpoint_every first)", file=str(path))
        with np.load(path) as z:
            flat = {k: z[k] for k in z.files}
        lengths = {k[5:]: int(v) for k, v in flat.items() if k.startswith("@len:")}
        state = {k: v for k, v in flat.items() if not k.startswith("@")}
        return int(flat["@window"]), state, lengths

    def load_part(self, key, window: int) -> dict:
        path = self.part_path(key, window)
        if not path.is_file():
            raise CosimError(f"checkpoint of window {window} has no state for engine {key[0]!r} "
                             f"partition {key[1]}; resume with the process layout that wrote it",
                             file=str(path))
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
