"""The messages of the window protocol: their kinds and their encoding.

Control is separate from data (as in Arbor's co-simulation API and MUSIC):

============  =========================  ==============================================
kind          direction                  payload
============  =========================  ==============================================
``HELLO``     part → bus, once           its pid and host (the bus writes the rank table)
``WATCH``     bus → part, once           the watchdog's notes folder (sent before the rank
                                         table is written: from then on a part that ends
                                         the job can say so, :mod:`cosim.watchdog`)
``START``     bus → part, once           the first window (``k_start``; −1: do not start)
``HISTORY``   owner → reader, once       initial afferent history of the columns it reads
``AFFERENT``  owner → reader, window k   window k's afferent samples of those columns
``COUNTS``    part → region head, k      spike counts of a part of a split spiking region
``OUTPUT``    part → bus, window k       records, the part's timing (and live rate)
``ERROR``     any → bus                  a failed rank's one-line message and exit code
``DONE``      part → bus, on a stop      the part's final checkpoint is saved;
              bus → part, at the end     the output file is closed; the part may exit
============  =========================  ==============================================

``HISTORY``, ``AFFERENT`` and ``COUNTS`` are the distributed bus (:mod:`cosim.exchange`):
parts exchange them directly, over a pattern every rank computes from the connectome and
the plan.  Stopping is agreed by a vote of every rank (:meth:`cosim.transport.Transport.vote_start`),
not by a message.

A message is a flat ``dict[str, numpy.ndarray]`` (what :mod:`cosim.transport` moves).  An
``OUTPUT`` is encoded by :func:`encode_output`: exports (now only a spiking region's live
rate) as ``x:<name>``, array records as
``r:<dataset>``, spike records ``(gids, times)`` as ``r:<dataset>:g`` / ``r:<dataset>:t``,
timing as ``timing`` ``(compute, communicate, wait)`` seconds; :func:`decode_output`
inverts it.  Spike exports ``(gids, times)`` travel the same way under ``x``.
"""

from __future__ import annotations

import enum

import numpy as np


class Kind(enum.IntEnum):
    """Message kinds (their values are the MPI tags)."""

    HELLO = 15
    START = 14
    INIT = 10           # (the star bus's; unused by the runtime)
    INPUT = 11          # (the star bus's; unused by the runtime)
    OUTPUT = 12
    DONE = 13
    COUNTS = 16
    HISTORY = 17
    AFFERENT = 18
    WATCH = 19
    ERROR = 99


def _put(msg: dict, prefix: str, name: str, value) -> None:
    if isinstance(value, tuple):
        msg[f"{prefix}:{name}:g"] = np.asarray(value[0], dtype=np.int64)
        msg[f"{prefix}:{name}:t"] = np.asarray(value[1], dtype=np.float64)
    else:
        msg[f"{prefix}:{name}"] = np.asarray(value)


def encode_output(exports: dict, records: dict, timing) -> dict:
    """An ``OUTPUT`` message from a part's window (see the module docstring)."""
    msg: dict = {}
    for name, value in exports.items():
        _put(msg, "x", name, value)
    for name, value in records.items():
        _put(msg, "r", name, value)
    msg["timing"] = np.asarray(timing, dtype=np.float64)
    return msg


def decode_output(msg: dict) -> tuple[dict, dict, np.ndarray]:
    """``(exports, records, timing)`` of an ``OUTPUT`` message."""
    keys = tuple(msg)
    plan = _PLANS.get(keys)
    if plan is None:
        if len(_PLANS) >= 1024:        # (a part's messages have the same keys every window)
            _PLANS.clear()
        plan = _PLANS[keys] = _decode_plan(keys)
    exports: dict = {}
    records: dict = {}
    for is_x, name, key, key_t in plan:
        target = exports if is_x else records
        target[name] = msg[key] if key_t is None else (msg[key], msg[key_t])
    return exports, records, np.asarray(msg["timing"])


class Output:
    """An ``OUTPUT`` handed over in one process (:class:`cosim.transport.InProcessTransport`
    gives the receiver the sender's object): the part's ``(exports, records, timing)`` as
    they are — not encoded into a flat message and decoded again.  :attr:`nbytes` is the
    payload of the message :func:`encode_output` makes of them (what the traffic counters
    count for it), ``"@stop"`` is never in it (a stop travels as a plain message)."""

    __slots__ = ("exports", "records", "timing")

    def __init__(self, exports: dict, records: dict, timing: tuple):
        self.exports, self.records, self.timing = exports, records, timing

    def __contains__(self, key) -> bool:
        return False

    @property
    def nbytes(self) -> int:
        n = 8 * len(self.timing)
        for part in (self.exports, self.records):
            for value in part.values():
                if type(value) is np.ndarray:
                    n += value.nbytes
                elif isinstance(value, tuple):          # (gids, times): int64, float64
                    for a in value[:2]:
                        n += 8 * (a.size if type(a) is np.ndarray else np.size(a))
                elif type(value) is float:          # a 0-d float64 array once encoded
                    n += 8
                else:
                    nb = getattr(value, "nbytes", None)
                    n += np.asarray(value).nbytes if nb is None else nb
        return n


#: message keys → how :func:`decode_output` files them (worked out once per key set)
_PLANS: dict = {}


def _decode_plan(keys: tuple) -> list:
    """``[(export?, name, key, key of the times or None)]`` in the message's order."""
    present = set(keys)
    plan = []
    for key in keys:
        kind, _, rest = key.partition(":")
        if kind not in ("x", "r"):
            continue
        if rest.endswith(":g"):
            name = rest[:-2]
            plan.append((kind == "x", name, key, f"{kind}:{name}:t"))
        elif rest.endswith(":t") and f"{kind}:{rest[:-2]}:g" in present:
            continue
        else:
            plan.append((kind == "x", rest, key, None))
    return plan
