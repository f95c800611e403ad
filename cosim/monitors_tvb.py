"""The further monitors a TVB user reaches for: spatial and global averages, expressions of
the state variables, and the convolution ("Volterra kernel") BOLD.

Like every monitor of :mod:`cosim.monitors` they are streaming transforms of an engine's
merged records (so their output does not depend on how the run was split over ranks or
cut into windows; tested), with ``state()``/``restore()`` for checkpoints.  MEG and SEEG
are :class:`cosim.monitors.EegMonitor` with a lead field from :mod:`cosim.sensors`; the
afferent coupling is recorded by the neural-mass engine and averaged like any series.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Sequence

import numpy as np

from .analysis.hrf import KERNELS, kernel_samples
from .engines.base import RecordSpec
from .expression import Expression
from .monitors import BlockMean, Monitor, Signal, _var_index, whole_ratio


def _every(source: RecordSpec, period_ms: float | None, what: str = "period") -> int:
    if period_ms is None:
        return 1
    k = whole_ratio(period_ms, source.period_ms)
    if k is None:
        raise ValueError(f"{what} {period_ms:g} ms is not a whole multiple of the record "
                         f"period {source.period_ms:g} ms")
    return k


class SpatialAverageMonitor(Monitor):
    """Mean of the recorded variables over groups of regions (TVB's ``SpatialAverage``;
    :meth:`global_average` is TVB's ``GlobalAverage``).

    ``groups``: ``(name, region indices into source.regions)``, each non-empty; output
    ``(n, variable, group)``.  Like TVB's, the monitor samples every ``period_ms`` (point
    values; default every sample).  Each group mean is the sum over its regions in the
    given order divided by their number.
    """

    kind = "spatial_average"
    chunk_invariant = True

    def __init__(self, source: RecordSpec, groups: Sequence[tuple[str, Sequence[int]]], *,
                 variables: Sequence[str] | None = None, period_ms: float | None = None,
                 dataset: str = "spatial_average"):
        k = _every(source, period_ms)
        super().__init__(k)
        names = list(source.variables) if variables is None else list(variables)
        self.index = [_var_index(source, v) for v in names]
        if not groups:
            raise ValueError("no region groups")
        self.groups = [(str(g), np.asarray(ix, dtype=np.int64)) for g, ix in groups]
        for g, ix in self.groups:
            if ix.size == 0:
                raise ValueError(f"group {g!r} has no region")
        self._phase = 0
        self.spec = replace(source, dataset=dataset, variables=tuple(names),
                            units=tuple(source.units[i] for i in self.index),
                            regions=tuple(g for g, _ in self.groups),
                            period_ms=k * source.period_ms,
                            attrs={"monitor": dataset, "source": source.dataset,
                                   "groups": json.dumps({g: [source.regions[i] for i in ix]
                                                         for g, ix in self.groups})})

    @classmethod
    def global_average(cls, source: RecordSpec, **kw) -> "SpatialAverageMonitor":
        kw.setdefault("dataset", "global_average")
        return cls(source, [("all", range(len(source.regions)))], **kw)

    def _process(self, samples: np.ndarray) -> np.ndarray:
        first = (self.k - 1 - self._phase) % self.k
        self._phase = (self._phase + samples.shape[0]) % self.k
        x = samples[first::self.k][:, self.index, :]
        out = np.empty((x.shape[0], x.shape[1], len(self.groups)))
        for j, (_, ix) in enumerate(self.groups):
            out[:, :, j] = x[:, :, ix].sum(axis=2) / ix.size
        return out

    def _state(self):
        return {"phase": np.array(self._phase)}

    def _restore(self, saved):
        self._phase = int(saved["phase"])


def expression_signal(source: RecordSpec, text: str, unit: str | None = None) -> Signal:
    """A :class:`Signal` computing the safe expression ``text`` (:mod:`cosim.expression`)
    of the recorded variables, per sample and region."""
    expr = Expression(text, source.variables)
    idx = {n: source.variables.index(n) for n in expr.names}
    shape_of = lambda x: x.shape[:1] + x.shape[2:]       # noqa: E731 (n, region)

    def fn(x):
        out = expr({n: x[:, i, :] for n, i in idx.items()})
        return np.broadcast_to(out, shape_of(x)).copy() if out.shape != shape_of(x) else out
    return Signal(fn, expr.text, unit or "a.u.")


class ExpressionMonitor(Monitor):
    """Expressions of the recorded variables (``"y1 - y2"``), one output variable each,
    optionally block-averaged over ``period_ms``."""

    kind = "expression"
    chunk_invariant = True

    def __init__(self, source: RecordSpec, expressions: dict[str, str], *,
                 units: dict[str, str] | None = None, period_ms: float | None = None,
                 dataset: str = "expression"):
        k = _every(source, period_ms)
        super().__init__(k)
        if not expressions:
            raise ValueError("no expression")
        units = units or {}
        self.signals = [expression_signal(source, t, units.get(n)) for n, t in expressions.items()]
        self._mean = BlockMean(k)
        self.spec = replace(source, dataset=dataset, variables=tuple(expressions),
                            units=tuple(s.unit for s in self.signals),
                            period_ms=k * source.period_ms,
                            attrs={"monitor": "expression", "source": source.dataset,
                                   "expressions": json.dumps(dict(expressions))})

    def _process(self, samples: np.ndarray) -> np.ndarray:
        y = np.stack([s(samples) for s in self.signals], axis=1)      # (n, expr, region)
        return self._mean.push(y)

    def _state(self):
        return self._mean.state()

    def _restore(self, saved):
        self._mean.restore(saved)


class VolterraBoldMonitor(Monitor):
    """BOLD by convolution with a haemodynamic kernel (:mod:`cosim.analysis.hrf`), TVB's
    ``Bold`` monitor.

    The input ``z = scale · (x − offset)`` (``x``: the :class:`Signal`) is averaged over
    blocks of ``step_ms`` (TVB: 4 ms); the last ``N = length_ms / step_ms`` block means are
    kept (zeros before the start).  At ``t = j·tr_ms`` (after block ``m = t / step``) the
    output is ``Σ_i w_i z_i`` with TVB's alignment: the block ending at ``t − i·step``
    (``i = 1 … N − 1``) has the kernel value ``G((i − 1)·step)``, and the newest block
    (ending at ``t``) has ``G((N − 1)·step)`` — TVB 2.x's ``numpy.roll`` of the reversed
    kernel, which lags the response by one block (4 ms, immaterial at haemodynamic time
    scales) and gives the newest block the kernel's tail (≈ 0).  First-order Volterra:
    ``BOLD = k_1 V_0 (Σ w z − 1)``.  ``tr_ms`` must be a whole multiple of ``step_ms``,
    and ``step_ms`` of the record period (with a record period of one ``dt`` the block
    means are TVB's).
    """

    kind = "bold"
    chunk_invariant = True

    def __init__(self, source: RecordSpec, signal: Signal, *, kernel: str = "first_order_volterra",
                 kernel_parameters: dict | None = None, tr_ms: float = 2000.0,
                 step_ms: float = 4.0, length_ms: float = 20000.0, scale: float = 1.0,
                 offset: float = 0.0, dataset: str = "bold"):
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; one of {', '.join(KERNELS)}")
        mb = _every(source, step_ms, "step")
        per = whole_ratio(tr_ms, step_ms)
        if per is None:
            raise ValueError(f"tr {tr_ms:g} ms is not a whole multiple of the step "
                             f"{step_ms:g} ms")
        if length_ms < step_ms:
            raise ValueError(f"length {length_ms:g} ms is shorter than the step {step_ms:g} ms")
        super().__init__(mb * per)
        self.kernel = KERNELS[kernel]
        self.values = self.kernel.values(kernel_parameters)
        g = self.kernel.evaluate(kernel_samples(length_ms, step_ms), self.values)
        self.n = g.size
        self.weights = g[::-1].copy()         # TVB's reversed kernel, rolled at each output
        self.signal = signal
        self.scale, self.offset = float(scale), float(offset)
        self.per = per
        self._mean = BlockMean(mb)
        self._stock = np.zeros((self.n, len(source.regions)))
        self._blocks = 0
        attrs = {"monitor": "bold", "source": source.dataset, "model": f"convolution with "
                 f"the {kernel} kernel (TVB Bold)", "kernel": kernel,
                 "parameters": json.dumps(self.values),
                 "input": f"{self.scale:g} * ({signal.description} - {self.offset:g})",
                 "integration": f"means of {step_ms:g} ms blocks, kernel over {length_ms:g} ms "
                                f"({self.n} samples)"}
        self.spec = replace(source, dataset=dataset, variables=("bold",), units=("a.u.",),
                            period_ms=tr_ms, attrs=attrs)

    def _process(self, samples: np.ndarray) -> np.ndarray:
        z = self._mean.push(self.scale * (self.signal(samples) - self.offset))
        out = []
        for row in z:
            self._blocks += 1
            m = self._blocks
            self._stock[(m - 1) % self.n] = row
            if m % self.per == 0:
                w = np.roll(self.weights, (m % self.n) - 1)
                y = w @ self._stock
                if self.kernel.offset:
                    y = (y - 1.0) * self.values["k_1"] * self.values["V_0"]
                out.append(y)
        if not out:
            return np.empty((0, 1, self._stock.shape[1]))
        return np.asarray(out)[:, None, :]

    def _state(self):
        return {"stock": self._stock.copy(), "blocks": np.array(self._blocks),
                "block": self._mean.state()["pending"]}

    def _restore(self, saved):
        self._stock[...] = np.asarray(saved["stock"])
        self._blocks = int(saved["blocks"])
        self._mean.restore({"pending": saved["block"]})
