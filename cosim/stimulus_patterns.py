"""Temporal patterns of stimuli: pure functions of time, declared once.

A pattern ``u(t)`` is evaluated from ``t`` alone (no state), vectorised over an array of
times in ms, so a run cut into windows, split over processes or resumed from a checkpoint
applies the same numbers.  Types (``[stimuli.<name>.temporal] type = "..."``)::

    pulse_train   u = amplitude  if  t ≥ onset, (t − onset) mod period < width,
                                     pulse index ⌊(t − onset)/period⌋ < count (if given)
    pulse         u = amplitude  on  onset ≤ t < onset + width          (one pulse)
    sinusoid      u = offset + amplitude sin(2π frequency t / 1000 + phase)   for t ≥ onset
                  (t absolute, ms; frequency in Hz)
    ramp          u = amplitude (t − onset) / duration  on  onset ≤ t < onset + duration,
                  then amplitude
    file          samples (t_i, v_i) of a .npy / .csv file, × scale: linear interpolation
                  between samples ("linear") or sample i held over [t_i, t_{i+1})
                  ("previous", the last one for one more spacing); 0 outside

Every type takes ``stop``: ``u = 0`` for ``t ≥ stop``.  TVB's ``PulseTrain`` is
``where((t > onset) & ((t − onset) mod T < tau), amp, 0)``: the same as ``pulse_train``
with ``period = T``, ``width = tau`` except at ``t = onset`` itself (TVB: 0, here: on), so
an onset on the time grid starts one step earlier here; TVB's ``Sinusoid`` has frequency
in kHz (``amp sin(2π frequency t)``).

Files: ``.npy`` a 1-D array of values (``period`` required, first sample at ``start``)
or ``(n, 2)`` columns time (ms), value; ``.csv`` the same as one or two comma-separated
columns (a first line that is not numbers is a header).  Times strictly increasing,
values finite, at least two samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CosimError
from .params import REQUIRED, Param, section

PATTERN_TYPES = ("pulse_train", "pulse", "sinusoid", "ramp", "file")

TYPE = Param("type", REQUIRED, "", "temporal pattern", type="string", choices=PATTERN_TYPES)
AMPLITUDE = Param("amplitude", REQUIRED, "target unit", "value while on (a state variable: "
                  "added to its derivative, state unit/ms; coupling: coupling-input unit; "
                  "current: nA, NEST pA; Poisson input: Hz)")
ONSET = Param("onset", 0.0, "ms", "start of the first pulse / of the pattern", ge=0)
STOP = Param("stop", None, "ms", "the pattern is 0 from this time on", gt=0, derived="never")
PERIOD = Param("period", REQUIRED, "ms", "pulse repetition period", gt=0)
WIDTH = Param("width", REQUIRED, "ms", "pulse duration (< period for a train)", gt=0)
COUNT = Param("count", None, "", "number of pulses", type="integer", ge=1, derived="unlimited")
FREQUENCY = Param("frequency", REQUIRED, "Hz", "oscillation frequency", gt=0)
PHASE = Param("phase", 0.0, "rad", "phase at t = 0")
OFFSET = Param("offset", 0.0, "target unit", "constant added while on (t >= onset)")
RAMP_DURATION = Param("duration", REQUIRED, "ms", "rise time from 0 to amplitude", gt=0)
FILE = Param("file", REQUIRED, "", ".npy or .csv: values (with period) or columns time, "
             "value (relative to the scenario file)", type="string")
SAMPLE_PERIOD = Param("period", None, "ms", "spacing of the samples of a one-column file",
                      gt=0, derived="from the file's time column")
START = Param("start", 0.0, "ms", "time of the first sample of a one-column file")
INTERPOLATION = Param("interpolation", "linear", "", "between samples: linear, or hold the "
                      "previous sample", type="string", choices=("linear", "previous"))
SCALE = Param("scale", 1.0, "target unit", "factor on the file's values")

_KEY = "stimuli.<name>.temporal"
SECTIONS = {
    "pulse_train": section(_KEY, 'type = "pulse_train": rectangular pulses every period '
                           "(TVB's PulseTrain)", (TYPE, AMPLITUDE, PERIOD, WIDTH, ONSET, COUNT,
                                                  STOP)),
    "pulse": section(_KEY, 'type = "pulse": one rectangular pulse', (TYPE, AMPLITUDE, WIDTH,
                                                                     ONSET)),
    "sinusoid": section(_KEY, 'type = "sinusoid": offset + amplitude sin(2 pi frequency t + '
                        "phase) from onset on", (TYPE, AMPLITUDE, FREQUENCY, PHASE, OFFSET,
                                                 ONSET, STOP)),
    "ramp": section(_KEY, 'type = "ramp": linear rise from 0 at onset to amplitude at onset + '
                    "duration, then held", (TYPE, AMPLITUDE, RAMP_DURATION, ONSET, STOP)),
    "file": section(_KEY, 'type = "file": a sampled time series from a .npy or .csv file',
                    (TYPE, FILE, SAMPLE_PERIOD, START, INTERPOLATION, SCALE, STOP)),
}


@dataclass(frozen=True)
class Pattern:
    """A temporal pattern: ``kind`` (one of :data:`PATTERN_TYPES`) and its parameters
    (``params``: name → value as declared; ``samples``: ``(times_ms, values)`` of a file)."""

    kind: str
    params: dict
    samples: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, t_ms: np.ndarray) -> np.ndarray:
        """``u(t)`` for an array of times (ms), float64, same shape."""
        t = np.asarray(t_ms, dtype=np.float64)
        p = self.params
        if self.kind in ("pulse_train", "pulse"):
            rel = t - p["onset"]
            if self.kind == "pulse":
                on = (rel >= 0.0) & (rel < p["width"])
            else:
                on = (rel >= 0.0) & (np.mod(rel, p["period"]) < p["width"])
                if p["count"] is not None:
                    on &= np.floor(rel / p["period"]) < p["count"]
            u = np.where(on, p["amplitude"], 0.0)
        elif self.kind == "sinusoid":
            u = p["offset"] + p["amplitude"] * np.sin(2.0 * math.pi * p["frequency"] * t / 1000.0
                                                      + p["phase"])
            u = np.where(t >= p["onset"], u, 0.0)
        elif self.kind == "ramp":
            frac = np.clip((t - p["onset"]) / p["duration"], 0.0, 1.0)
            u = np.where(t >= p["onset"], p["amplitude"] * frac, 0.0)
        else:
            u = p["scale"] * _sampled(t, *self.samples, p["interpolation"])
        stop = p.get("stop")
        if stop is not None:
            u = np.where(t < stop, u, 0.0)
        return np.asarray(u, dtype=np.float64)


def _last_spacing(times: np.ndarray) -> float:
    return float(times[-1] - times[-2])


def _sampled(t, times, values, interpolation):
    if interpolation == "linear":
        return np.interp(t, times, values, left=0.0, right=0.0)
    i = np.searchsorted(times, t, side="right") - 1
    inside = (i >= 0) & (t < times[-1] + _last_spacing(times))
    return np.where(inside, values[np.clip(i, 0, values.size - 1)], 0.0)


def read_pattern(reader, base_dir: Path) -> Pattern:
    """The ``[stimuli.<name>.temporal]`` table (a :class:`cosim.schema.Reader`)."""
    kind = reader.param(TYPE)
    sec = SECTIONS[kind]
    params = {p.name: reader.param(p) for p in sec.params if p.name != "type"}
    reader.done()
    samples = None
    if kind == "pulse_train" and not params["width"] < params["period"]:
        raise reader.error("width", f"{params['width']:g} ms is not shorter than period = "
                                    f"{params['period']:g} ms (the pulses would merge)")
    if kind == "file":
        samples = read_samples(base_dir / params["file"], params["period"], params["start"],
                               reader.key("file"))
    return Pattern(kind, params, samples)


def read_samples(path: Path, period: float | None, start: float, key: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(times_ms, values)`` from a .npy or .csv file (module docstring); problems raise
    :class:`CosimError` naming the data file and ``key``."""

    def bad(reason):
        return CosimError(reason, file=str(path), key=key)

    if path.suffix not in (".npy", ".csv"):
        raise bad(f"unknown file type {path.suffix!r}; expected .npy or .csv")
    if not path.is_file():
        raise bad("no such file")
    try:
        if path.suffix == ".npy":
            a = np.load(path, allow_pickle=False)
        else:
            a = _read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise bad(f"cannot read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                  ) from None
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise bad(f"holds {a.dtype} values, expected real numbers")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 1:
        if period is None:
            raise bad("one column of values needs a sample period: set "
                      f"{key.rsplit('.', 1)[0]}.period (ms), or give two columns time, value")
        times = start + period * np.arange(a.size)
        values = a
    elif a.ndim == 2 and a.shape[1] == 2:
        if period is not None:
            raise bad("has a time column and period is set too; give one of them")
        times, values = a[:, 0].copy(), a[:, 1].copy()
    else:
        raise bad(f"has shape {a.shape}; expected (n,) values or (n, 2) columns time, value")
    if values.size < 2:
        raise bad(f"has {values.size} sample(s); at least 2 are needed")
    for what, arr in (("time", times), ("value", values)):
        nonfinite = np.flatnonzero(~np.isfinite(arr))
        if nonfinite.size:
            raise bad(f"{what} of sample {int(nonfinite[0])} is {float(arr[nonfinite[0]])!r}")
    steps = np.diff(times)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise bad(f"times must increase: sample {i} at {times[i]:g} ms follows "
                  f"{times[i - 1]:g} ms")
    return np.ascontiguousarray(times), np.ascontiguousarray(values)


def _read_csv(path: Path) -> np.ndarray:
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if rows:
        try:
            [float(x) for x in rows[0].split(",")]
        except ValueError:
            rows = rows[1:]                 # a header line
    if not rows:
        raise ValueError("no data rows")
    out = []
    width = None
    for i, ln in enumerate(rows):
        cells = ln.split(",")
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise ValueError(f"row {i + 1} has {len(cells)} columns, the first has {width}")
        try:
            out.append([float(x) for x in cells])
        except ValueError:
            raise ValueError(f"row {i + 1} is not numbers: {ln.strip()[:40]!r}") from None
    return np.array(out)

