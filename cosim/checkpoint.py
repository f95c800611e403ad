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
(one process and ``-n 3`` of the default scenario split nothing; ``-n 4`` splits the spiking
region in two).

**What is resumed is checked.**  ``coordinator.npz`` holds a *fingerprint* of everything
that determines the result (:func:`fingerprint`): every scenario value except those that
cannot change a number (output path, flush cadence, checkpoint cadence, exchange timeout,
duration), the content of the connectome (weights, tract lengths, labels) and of every
file the scenario names, and the number of parts of every engine.  ``--resume`` with a
different one is a one-line error naming the first key that differs and both values.
Only the duration may change, and only grow: the output's ``duration_ms`` and ``/scenario``
then become the new scenario's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from .errors import CosimError

#: Scenario keys that cannot change a number of the result (not fingerprinted).
NEUTRAL_KEYS = ("simulation.output", "simulation.duration", "simulation.checkpoint_every",
                "simulation.exchange_timeout", "simulation.startup_timeout", "record.flush_every")


def _flatten(value, prefix: str, out: dict) -> None:
    if isinstance(value, dict):
        for k in sorted(value):
            _flatten(value[k], f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = json.dumps(value, sort_keys=True, default=str)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
    return h.hexdigest()[:16]


def fingerprint(scenario, plan) -> dict[str, str]:
    """Flat ``key → value`` of what determines ``scenario``'s result in ``plan`` (see the
    module docstring): scenario keys (``engines.cortex.coupling.G``), ``@connectome``,
    ``@file:<path>`` for every existing file a string value names, ``@parts.<engine>``."""
    import tomllib

    data = tomllib.loads(scenario.text)
    flat: dict[str, str] = {}
    _flatten(data, "", flat)
    for key in NEUTRAL_KEYS:
        flat.pop(key, None)
    base = Path(scenario.path).parent
    for key, value in list(flat.items()):
        text = json.loads(value)
        if isinstance(text, str) and text and not text.startswith("tvb:"):
            p = base / text
            if p.is_file():
                flat[f"@file:{text}"] = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            elif p.is_dir() and text not in (".", ".."):     # e.g. a folder of .mod files
                h = hashlib.sha256()
                for q in sorted(x for x in p.iterdir() if x.is_file()):
                    h.update(q.name.encode() + b"\0" + q.read_bytes())
                flat[f"@file:{text}"] = h.hexdigest()[:16]
    c = scenario.connectome
    flat["@connectome"] = _digest(c.weights, c.tract_lengths_mm, np.array(c.region_labels, dtype=object))
    for g in plan.groups:
        flat[f"@parts.{g.name}"] = str(g.n_parts)
    return flat


def check_fingerprint(saved: dict[str, str], now: dict[str, str], file: str) -> None:
    """Raise :class:`CosimError` naming the first difference between two fingerprints."""
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if a == b:
            continue
        if key.startswith("@parts."):
            raise CosimError(f"the checkpoint was written with engine {key[7:]!r} in {a} part(s), "
                             f"this run splits it into {b}; resume with the process layout that "
                             f"wrote it", file=file)
        what = {"@connectome": "the connectome data"}.get(key, key[6:] if key.startswith("@file:")
                                                           else key)
        if key.startswith("@") or a is None or b is None:
            change = ("changed" if a and b else "was added" if b else "was removed")
            raise CosimError(f"cannot resume: {what} {change} since the checkpoint", file=file)
        raise CosimError(f"cannot resume: {key} is {b} now but was {a} when the checkpoint was "
                         f"written; only simulation.duration may change", file=file)


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

    def clear(self) -> None:
        """A fresh run: remove the checkpoint files an earlier run of this output left."""
        for p in list(self.dir.glob("part-*-w*.npz")) + [self.dir / "coordinator.npz"]:
            p.unlink(missing_ok=True)

    def due(self, k: int) -> bool:
        """Whether the state after window ``k`` is to be saved."""
        return self.every > 0 and (k + 1) % self.every == 0

    def part_path(self, key, window: int) -> Path:
        return self.dir / f"part-{key[0]}-{key[1]}-w{window}.npz"

    def save_part(self, key, window: int, state: dict[str, np.ndarray]) -> None:
        """Save a part's flat state dict (keys are kept verbatim)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _save_atomic(self.part_path(key, window), state)

    def save_coordinator(self, window: int, state: dict, lengths: dict[str, int],
                         fingerprint: dict[str, str] | None = None, duration_ms: float = 0.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = {"@window": np.array(window), "@duration_ms": np.array(duration_ms),
                   "@fingerprint": np.array(json.dumps(fingerprint or {}, sort_keys=True))}
        payload.update({f"@len:{k}": np.array(v) for k, v in lengths.items()})
        payload.update(state)
        _save_atomic(self.dir / "coordinator.npz", payload)
        # older part files are no longer needed once this commit point is written
        for p in self.dir.glob("part-*-w*.npz"):
            m = re.search(r"-w(\d+)\.npz$", p.name)
            if m and int(m.group(1)) < window:
                p.unlink(missing_ok=True)

    def load_coordinator(self) -> tuple[int, dict, dict[str, int]]:
        k, state, lengths, _ = self.load_commit()
        return k, state, lengths

    def load_commit(self) -> tuple[int, dict, dict[str, int], dict]:
        """``(window, state, lengths, meta)`` of the commit point; ``meta``: the saved
        ``fingerprint`` and ``duration_ms``.  A damaged file is a one-line error."""
        path = self.dir / "coordinator.npz"
        if not path.is_file():
            raise CosimError("no checkpoint to resume from (run with [simulation] "
                             "checkpoint_every first)", file=str(path))
        flat = _load_npz(path)
        try:
            window = int(flat["@window"])
            meta = {"fingerprint": json.loads(str(flat.get("@fingerprint", "{}"))),
                    "duration_ms": float(flat.get("@duration_ms", 0.0))}
        except (KeyError, ValueError, TypeError) as exc:
            raise CosimError(f"not a cosim checkpoint ({exc})", file=str(path)) from None
        lengths = {k[5:]: int(v) for k, v in flat.items() if k.startswith("@len:")}
        state = {k: v for k, v in flat.items() if not k.startswith("@")}
        return window, state, lengths, meta

    def resume(self, scenario, plan) -> tuple[int, dict, dict[str, int], bool]:
        """``(window, state, lengths, duration_grew)`` to resume ``scenario`` in ``plan``,
        after checking that the checkpoint is of the same model (module docstring)."""
        window, state, lengths, meta = self.load_commit()
        grew = self.check(scenario, plan, meta, window, scenario.simulation.sync_interval_ms)
        return window, state, lengths, grew

    def check(self, scenario, plan, meta: dict, window: int, sync_interval_ms: float) -> bool:
        """Refuse to resume a different model; returns True when the duration grew."""
        file = str(self.dir / "coordinator.npz")
        check_fingerprint(meta["fingerprint"], fingerprint(scenario, plan), file)
        old, new = meta["duration_ms"], scenario.simulation.duration_ms
        done = window * sync_interval_ms
        if new < old:
            raise CosimError(f"cannot resume: simulation.duration is {new:g} ms now but was "
                             f"{old:g} ms; it may only grow", file=file)
        if new <= done and new != old:
            raise CosimError(f"cannot resume: the checkpoint is at {done:g} ms, beyond "
                             f"simulation.duration = {new:g} ms", file=file)
        return new > old

    def load_part(self, key, window: int) -> dict:
        path = self.part_path(key, window)
        if not path.is_file():
            raise CosimError(f"checkpoint of window {window} has no state for engine {key[0]!r} "
                             f"partition {key[1]}; resume with the process layout that wrote it",
                             file=str(path))
        return _load_npz(path)


def _load_npz(path: Path) -> dict:
    """The arrays of a checkpoint file; a truncated or damaged file is a one-line error."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CosimError(f"damaged checkpoint file ({type(exc).__name__}: {exc}); delete the "
                         f"checkpoint folder and run again without --resume", file=str(path)) from None
