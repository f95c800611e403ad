"""Streaming monitors: what is computed from an engine's samples *during* the run.

Each window an engine returns its sampled region time series ``(n, variable, region)``
(sample ``k`` at ``start + k·period``, see :class:`~cosim.engines.base.RecordSpec`).  A
monitor turns those samples into another series, keeping its own state across windows,
so that feeding a run window by window gives exactly what one call on the whole series
gives (the chunked-equals-one-shot invariant; tested).  Every monitor has

- ``spec`` — the :class:`RecordSpec` of its output dataset (``/engines/<engine>/<name>``);
- ``update(samples) -> (m, variable', region')`` — the output samples completed so far;
- ``state()`` / ``restore(saved)`` — checkpoints.

Monitors here: :class:`AverageMonitor` (temporal average or subsampling),
:class:`BoldMonitor` (Balloon–Windkessel BOLD at a TR), :class:`EegMonitor` (Jansen–Rit
pyramidal potential y1 − y2, optionally through a lead field), :class:`RateMonitor`
(a neural mass's firing rate through its transfer function) and :class:`SpikeRateMonitor`
(population rate of a spiking region from its spikes).  :mod:`cosim.monitor_config` reads
them from a scenario's ``[record.<engine>.<monitor>]`` tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from adapters.spikes_to_rate import bin_group

from .analysis.hemodynamics import BalloonIntegrator, BalloonParams, bold_signal
from .engines.base import RecordSpec
from .models import jansen_rit as _jr
from .monitor_params import BOLD_STEP, BOLD_TR

_RTOL = 1e-9
_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_TIMES = np.zeros(0)
_JR_E0, _JR_V0, _JR_R = _jr.RATE.parameters


def whole_ratio(big: float, small: float) -> int | None:
    """``big / small`` if it is a whole number ≥ 1 (relative 1e-9), else ``None``."""
    q = big / small
    k = round(q)
    return int(k) if k >= 1 and abs(q - k) <= _RTOL * max(1.0, q) else None


class BlockMean:
    """Streaming mean over consecutive blocks of ``k`` samples along axis 0.

    ``push(x)`` returns the means of the blocks completed by ``x`` (possibly none); the
    samples of a partial block wait for the next call.  Each block is summed sample by
    sample in time order, so the result does not depend on how the series was chunked
    (bitwise).
    """

    def __init__(self, k: int):
        self.k = int(k)
        self._pending: np.ndarray | None = None     # (< k, ...) samples of a partial block

    def push(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.k == 1:
            return x
        if self._pending is not None and self._pending.shape[0]:
            x = np.concatenate([self._pending, x])
        full = x.shape[0] // self.k
        self._pending = x[full * self.k:].copy()
        blocks = x[:full * self.k].reshape((full, self.k) + x.shape[1:])
        total = blocks[:, 0].copy()
        for j in range(1, self.k):
            total += blocks[:, j]
        return total / self.k

    def state(self) -> dict[str, np.ndarray]:
        return {"pending": np.zeros(0) if self._pending is None else self._pending.copy()}

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        pending = np.asarray(saved["pending"])
        self._pending = pending.copy() if pending.size else None


class Monitor:
    """Base class: a streaming transform of one engine dataset (see module docstring).

    A monitor emits one output sample per ``k`` source samples.  :meth:`update` only
    buffers samples until the next output sample is complete, then hands the buffered
    block to the subclass's ``_process`` — so per-window cost stays small when windows are
    short, and (because ``_process`` gives the same result however the series is cut)
    the output does not depend on the window length.
    """

    kind = "monitor"
    spec: RecordSpec
    #: whether the output is the same, bit for bit, however the input is split in time
    #: (one window's samples at a time, or several windows' at once): per-sample
    #: arithmetic only — the record pipeline then hands it several windows at once
    #: (:class:`cosim.pipeline.RecordPipeline`); ``tests/test_monitor_batches.py`` checks
    #: every monitor that says so
    chunk_invariant = False

    def __init__(self, k: int):
        self.k = int(k)
        self._buffer: list[np.ndarray] = []
        self._pending = 0            # samples since the last output sample

    def record_spec(self) -> RecordSpec:
        """The output dataset's :class:`RecordSpec`."""
        return self.spec

    def update(self, samples: np.ndarray) -> np.ndarray:
        """Take samples ``(n, variable, region)``; return the completed output samples
        ``(m, variable', region')`` (``m`` may be 0)."""
        x = np.asarray(samples, dtype=np.float64)
        if x.shape[0]:
            self._buffer.append(x)
            self._pending += x.shape[0]
        if self._pending < self.k:
            return np.empty((0, len(self.spec.variables), len(self.spec.regions)))
        block = self._buffer[0] if len(self._buffer) == 1 else np.concatenate(self._buffer)
        self._buffer = []
        self._pending %= self.k
        return self._process(block)

    def _process(self, samples: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, saved: dict[str, np.ndarray]) -> None:
        pass

    def state(self) -> dict[str, np.ndarray]:
        """Checkpoint: the subclass state plus the samples not yet processed."""
        buf = np.concatenate(self._buffer) if self._buffer else np.zeros(0)
        # reserved names: a subclass state may use "buffer"/"pending" for its own parts
        return {**self._state(), "@buffer": buf, "@samples_waiting": np.array(self._pending)}

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        buf = np.asarray(saved["@buffer"])
        self._buffer = [buf.copy()] if buf.size else []
        self._pending = int(saved["@samples_waiting"])
        self._restore({k: v for k, v in saved.items() if not k.startswith("@")})


def _var_index(source: RecordSpec, name: str) -> int:
    try:
        return source.variables.index(name)
    except ValueError:
        raise KeyError(f"variable {name!r} is not recorded (recorded: "
                       f"{', '.join(source.variables)})") from None


class Signal:
    """A per-region signal computed sample by sample from an engine's samples.

    ``signal(samples (n, variable, region)) -> (n, region)``; ``description`` is stored in
    the output attributes, ``unit`` is the signal's unit.
    """

    def __init__(self, fn, description: str, unit: str):
        self.fn = fn
        self.description = description
        self.unit = unit

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        return self.fn(np.asarray(samples, dtype=np.float64))


def variable_signal(source: RecordSpec, name: str, scale: float = 1.0,
                    unit: str | None = None) -> Signal:
    """``scale · <name>``; unit ``unit`` or the variable's own."""
    i = _var_index(source, name)
    desc = name if scale == 1.0 else f"{scale:g} * {name}"
    return Signal(lambda x: scale * x[:, i, :], desc, unit or source.units[i])


def difference_signal(source: RecordSpec, plus: str, minus: str) -> Signal:
    """``<plus> − <minus>`` (e.g. Jansen–Rit y1 − y2, the pyramidal membrane potential)."""
    i, j = _var_index(source, plus), _var_index(source, minus)
    return Signal(lambda x: x[:, i, :] - x[:, j, :], f"{plus} - {minus}", source.units[i])


def jansen_rit_rate(y1: np.ndarray, y2: np.ndarray, e0_hz=_JR_E0.default,
                    v0_mv=_JR_V0.default, r_per_mv=_JR_R.default) -> np.ndarray:
    """Jansen & Rit (1995) sigmoid ``2 e0 / (1 + exp(r (v0 − (y1 − y2))))`` in Hz: the
    firing rate of the pyramidal population from its membrane potential y1 − y2 (mV).
    Defaults: the model's declared rate transfer (:data:`cosim.models.jansen_rit.RATE`,
    TVB's ν_max = 2.5 Hz, v0 = 5.52 mV, r = 0.56 /mV; Jansen & Rit used v0 = 6 mV).
    Parameters may be per-region arrays."""
    return _jr.rate_hz(y1, y2, e0_hz, v0_mv, r_per_mv)


def _show(value) -> str:
    v = np.asarray(value, dtype=np.float64)
    return f"{float(v.flat[0]):g}" if v.size and np.all(v == v.flat[0]) else "<per region>"


def observable_signal(source: RecordSpec, obs, values: dict | None = None) -> Signal:
    """The model observable ``obs`` (:class:`cosim.models.Observable`) of the recorded
    variables; ``values``: its parameters (scalars or arrays ``(region,)``; missing ones
    take the declared defaults)."""
    idx = [_var_index(source, v) for v in obs.variables]
    if obs.fn is None:
        return variable_signal(source, obs.variables[0])
    given = dict(values or {})
    kw = {p.name: np.asarray(given.get(p.name, p.default), dtype=np.float64)
          for p in obs.parameters}
    for a in kw.values():
        if a.ndim and a.shape != (len(source.regions),):
            raise ValueError(f"per-region parameter of shape {a.shape} for "
                             f"{len(source.regions)} regions")
    fn = obs.fn
    desc = obs.formula.format(**{k: _show(v) for k, v in kw.items()}) if obs.formula else obs.name
    return Signal(lambda x: fn(*(x[:, i, :] for i in idx), **kw), desc,
                  obs.unit or source.units[idx[0]])


def jansen_rit_rate_signal(source: RecordSpec, e0_hz=_JR_E0.default, v0_mv=_JR_V0.default,
                           r_per_mv=_JR_R.default) -> Signal:
    """:func:`jansen_rit_rate` of the recorded ``y1`` and ``y2`` (Hz); parameters are
    scalars or arrays ``(region,)``."""
    return observable_signal(source, _jr.RATE, {"e0": e0_hz, "v0": v0_mv, "r": r_per_mv})


class AverageMonitor(Monitor):
    """Temporal average (``mode="average"``) or subsampling (``mode="subsample"``).

    Output sample ``j`` (at ``start + j·period_ms``) is the mean of the source samples in
    ``(start + (j−1)·period_ms, start + j·period_ms]``, or the source sample at that time.
    ``period_ms`` must be a whole multiple of the source period.
    """

    chunk_invariant = True

    def __init__(self, source: RecordSpec, period_ms: float, *, mode: str = "average",
                 variables: list[str] | None = None, dataset: str | None = None):
        k = whole_ratio(period_ms, source.period_ms)
        if k is None:
            raise ValueError(f"period {period_ms:g} ms is not a whole multiple of the record "
                             f"period {source.period_ms:g} ms")
        if mode not in ("average", "subsample"):
            raise ValueError(f"mode must be 'average' or 'subsample', got {mode!r}")
        super().__init__(k)
        self.kind = mode
        names = list(source.variables) if variables is None else list(variables)
        self.index = [_var_index(source, v) for v in names]
        self.mode = mode
        self._mean = BlockMean(k)
        self._phase = 0                              # samples seen modulo k (subsample)
        self.spec = replace(source, dataset=dataset or mode, variables=tuple(names),
                            units=tuple(source.units[i] for i in self.index),
                            period_ms=k * source.period_ms,
                            attrs={"monitor": mode, "source": source.dataset,
                                   "source_period_ms": source.period_ms})

    def _process(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64)[:, self.index, :]
        if self.mode == "average":
            return self._mean.push(x)
        first = (self.k - 1 - self._phase) % self.k   # index of the next k-th sample
        self._phase = (self._phase + x.shape[0]) % self.k
        return x[first::self.k]

    def _state(self):
        return {**self._mean.state(), "phase": np.array(self._phase)}

    def _restore(self, saved):
        self._mean.restore(saved)
        self._phase = int(saved["phase"])


class BoldMonitor(Monitor):
    """BOLD signal (% change) of each region, sampled every ``tr_ms``.

    Input ``z = scale · (x − offset)`` (1/s) where ``x`` is the :class:`Signal` ``signal``
    (a variable, a firing rate…).  The input is averaged over blocks of ``m`` samples —
    the most that fit in ``step_ms`` and divide the TR — and the Balloon–Windkessel ODE
    (:mod:`cosim.analysis.hemodynamics`: RK4, input linear between block means) is
    integrated at that step ``m·period`` from rest at ``source.start_ms``.  Block means are
    placed at the block ends, a lag of ``(m − 1)/2`` sample periods (4.5 ms for 1-ms
    samples and the default 10-ms step), negligible against hemodynamic time scales (s);
    ``step_ms = 0`` integrates every sample.  Output sample ``j`` is the BOLD signal at
    ``start + j·tr_ms`` (point value).  ``tr_ms`` must be a whole multiple of the source
    period.
    """

    kind = "bold"
    chunk_invariant = True

    def __init__(self, source: RecordSpec, signal: Signal, *, tr_ms: float = BOLD_TR.default,
                 params: BalloonParams = BalloonParams(), scale: float = 1.0,
                 offset: float = 0.0, step_ms: float = BOLD_STEP.default, dataset: str = "bold"):
        k = whole_ratio(tr_ms, source.period_ms)
        if k is None:
            raise ValueError(f"tr {tr_ms:g} ms is not a whole multiple of the record period "
                             f"{source.period_ms:g} ms")
        super().__init__(k)
        m = max(1, int(step_ms / source.period_ms + 1e-9))
        while k % m:
            m -= 1
        self.m = m
        self.signal = signal
        self.scale, self.offset = float(scale), float(offset)
        self.params = params
        self._mean = BlockMean(m)
        self.integrator = BalloonIntegrator(len(source.regions), m * source.period_ms, params)
        self._phase = 0                               # integration steps modulo k/m
        self.spec = replace(source, dataset=dataset, variables=("bold",), units=("%",),
                            period_ms=k * source.period_ms,
                            attrs={"monitor": "bold", "source": source.dataset,
                                   "input": f"{self.scale:g} * ({signal.description} - {self.offset:g})",
                                   "model": "Balloon-Windkessel (Friston et al. 2000 "
                                            "equations; signal per `coefficients`)",
                                   "integration": f"RK4, step {m * source.period_ms:g} ms, input "
                                                  f"= means of {m} samples, linear between them",
                                   "parameters": json.dumps(asdict(params))})

    def _process(self, samples: np.ndarray) -> np.ndarray:
        z = self._mean.push(self.scale * (self.signal(samples) - self.offset))
        v, q = self.integrator.step(z)
        per = self.k // self.m                         # integration steps per TR
        first = (per - 1 - self._phase) % per
        self._phase = (self._phase + z.shape[0]) % per
        y = bold_signal(v[first::per], q[first::per], self.params)
        return y[:, None, :]

    def _state(self):
        return {**self.integrator.get_state(), "phase": np.array(self._phase),
                "block": self._mean.state()["pending"]}

    def _restore(self, saved):
        self.integrator.set_state(saved)
        self._phase = int(saved["phase"])
        self._mean.restore({"pending": saved["block"]})


def _block(source: RecordSpec, period_ms: float | None) -> int:
    k = 1 if period_ms is None else whole_ratio(period_ms, source.period_ms)
    if k is None:
        raise ValueError(f"period {period_ms:g} ms is not a whole multiple of the record "
                         f"period {source.period_ms:g} ms")
    return k


class EegMonitor(Monitor):
    """EEG-like signal of each region (default :func:`difference_signal` y1 − y2, the
    Jansen–Rit pyramidal membrane potential in mV), optionally averaged over ``period_ms``
    blocks and projected through a lead field ``(sensor, region)`` to sensors.

    Without a lead field the output regions are the source regions; with one they are the
    sensor names and the unit is ``unit`` (default "a.u.").
    """

    kind = "eeg"

    def __init__(self, source: RecordSpec, signal: Signal | None = None, *,
                 leadfield: np.ndarray | None = None, sensors: list[str] | None = None,
                 period_ms: float | None = None, unit: str | None = None,
                 dataset: str = "eeg"):
        self.signal = signal if signal is not None else difference_signal(source, "y1", "y2")
        k = _block(source, period_ms)
        super().__init__(k)
        self._mean = BlockMean(k)
        regions = source.regions
        self.leadfield = None
        if leadfield is not None:
            lf = np.asarray(leadfield, dtype=np.float64)
            if lf.ndim != 2 or lf.shape[1] != len(source.regions):
                raise ValueError(f"lead field must be (sensor, region) with {len(source.regions)} "
                                 f"columns, got shape {lf.shape}")
            self.leadfield = lf
            if sensors is None:
                sensors = [f"sensor{i}" for i in range(lf.shape[0])]
            if len(sensors) != lf.shape[0]:
                raise ValueError(f"{len(sensors)} sensor names for a lead field of "
                                 f"{lf.shape[0]} rows")
            regions = tuple(sensors)
        #: a lead field is a matrix product over the samples at hand (BLAS may sum a row
        #: in another order for another number of rows)
        self.chunk_invariant = self.leadfield is None
        self.spec = replace(source, dataset=dataset, variables=("eeg",),
                            units=(unit or (self.signal.unit if self.leadfield is None else "a.u."),),
                            regions=tuple(regions), period_ms=k * source.period_ms,
                            attrs={"monitor": "eeg", "source": source.dataset,
                                   "signal": self.signal.description,
                                   "channels": "regions" if self.leadfield is None else "sensors"})

    def _process(self, samples: np.ndarray) -> np.ndarray:
        sig = self._mean.push(self.signal(samples))
        if self.leadfield is not None:
            sig = sig @ self.leadfield.T
        return sig[:, None, :]

    def _state(self):
        return self._mean.state()

    def _restore(self, saved):
        self._mean.restore(saved)


class RateMonitor(Monitor):
    """Firing rate of each neural-mass region: a :class:`Signal` through the model's
    transfer function (e.g. :func:`jansen_rit_rate_signal`; Wilson–Cowan ``E`` times a
    maximal rate), optionally averaged over ``period_ms`` blocks."""

    kind = "rate"
    chunk_invariant = True

    def __init__(self, source: RecordSpec, signal: Signal, *, period_ms: float | None = None,
                 dataset: str = "rate"):
        self.signal = signal
        k = _block(source, period_ms)
        super().__init__(k)
        self._mean = BlockMean(k)
        self.spec = replace(source, dataset=dataset, variables=("rate",), units=(signal.unit,),
                            period_ms=k * source.period_ms,
                            attrs={"monitor": "rate", "source": source.dataset,
                                   "transfer": signal.description})

    def _process(self, samples: np.ndarray) -> np.ndarray:
        return self._mean.push(self.signal(samples))[:, None, :]

    def _state(self):
        return self._mean.state()

    def _restore(self, saved):
        self._mean.restore(saved)


@dataclass(frozen=True)
class SpikeGroup:
    """Neurons whose spikes make one rate: node ids ``first_id … stop_id − 1`` (all ids
    when ``stop_id`` is None) of spike population ``population``; ``n_neurons`` of them."""

    name: str
    population: str
    n_neurons: int
    first_id: int = 0
    stop_id: int | None = None


class SpikeRateMonitor(Monitor):
    """Population firing rates (Hz per neuron) of a spiking region from its spikes.

    One output variable per :class:`SpikeGroup` (e.g. the excitatory and inhibitory cells
    of a multicompartment engine).  Spikes arrive per population as
    ``(node_ids, times_ms)``.  Output sample ``j`` (at ``start + j·bin_ms``) is
    ``count / (n_neurons · bin_ms / 1000)`` over the group's spikes with
    ``start + (j−1)·bin_ms < t ≤ start + j·bin_ms`` — the binning rule of the bus
    (:func:`adapters.spikes_to_rate.spike_bins`: a spike is stamped at the end of the step
    that produced it); a bin is emitted once the window end has reached its end.  Output
    shape ``(m, group, 1)``.
    """

    kind = "rate"
    chunk_invariant = True

    def __init__(self, groups: list[SpikeGroup], bin_ms: float, *, region: str = "spiking",
                 start_ms: float = 0.0, dataset: str = "rate"):
        if bin_ms <= 0:
            raise ValueError(f"bin must be > 0 ms, got {bin_ms:g}")
        for g in groups:
            if g.n_neurons <= 0:
                raise ValueError(f"group {g.name!r} has {g.n_neurons} neurons")
        super().__init__(1)
        self.groups = list(groups)
        self.bin_ms = float(bin_ms)
        self.start_ms = float(start_ms)
        #: each group's spike times not yet in an emitted bin
        self._pending: list[np.ndarray] = [_NO_TIMES for _ in self.groups]
        self._emitted = 0                      # bins already returned
        names = tuple(g.name for g in self.groups)
        self.spec = RecordSpec(dataset, names, ("Hz",) * len(names), (region,), self.bin_ms,
                               self.start_ms,
                               {"monitor": "rate", "source": "spikes",
                                "n_neurons": [g.n_neurons for g in self.groups]})

    def update_spikes(self, spikes: dict[str, tuple], t_end_ms: float) -> np.ndarray:
        """Add this window's spikes (population → ``(node_ids, times_ms)``) and return the
        rates of the bins that end at or before ``t_end_ms``: ``(m, group, 1)``."""
        n_done = int(math.floor((t_end_ms - self.start_ms) / self.bin_ms * (1 + _RTOL) + _RTOL))
        m = max(n_done - self._emitted, 0)
        out = np.zeros((m, len(self.groups), 1))
        counts = np.zeros(m, dtype=np.int64)
        for k, g in enumerate(self.groups):
            ids, times = spikes.get(g.population, (_NO_IDS, _NO_TIMES))
            counts[:] = 0
            self._pending[k] = bin_group(
                self._pending[k], np.ascontiguousarray(ids, dtype=np.int64).ravel(),
                np.ascontiguousarray(times, dtype=np.float64).ravel(), g.first_id,
                -1 if g.stop_id is None else g.stop_id, self.start_ms, self.bin_ms,
                self._emitted, counts)
            if m:
                out[:, k, 0] = counts / (g.n_neurons * self.bin_ms / 1000.0)
        if m:
            self._emitted = n_done
        return out

    def update(self, samples):  # pragma: no cover - spikes use update_spikes
        raise TypeError("SpikeRateMonitor takes spikes: use update_spikes()")

    def state(self):
        out = {"emitted": np.array(self._emitted)}
        for k, g in enumerate(self.groups):
            out[f"pending/{g.name}"] = self._pending[k].copy()
        return out

    def restore(self, saved):
        self._emitted = int(saved["emitted"])
        self._pending = [np.array(saved[f"pending/{g.name}"], dtype=np.float64).ravel()
                         for g in self.groups]
