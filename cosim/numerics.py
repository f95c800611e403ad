"""Numerical blow-up: a NaN or Inf in an engine's state stops the run.

Engines call :func:`check_finite` on their state at the end of every sync window.  The
common case costs one vectorised ``np.isfinite(x).all()``; only when it fails is the first
bad entry located and named, so the user reads::

    engine cortex: region rA1: variable y3 is nan at t = 123.4 ms (dt 0.1 ms; check the
    parameters or try a smaller dt)

Because the check runs before the window's records leave the engine, the output file holds
every window before the blow-up and none after it (the runtime closes it with status
``"failed"``); the error is a :class:`~cosim.errors.NumericalError`, a
:class:`~cosim.errors.CosimError`, so ``cosim run`` exits with code 2 and that one line.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np

from .errors import NumericalError

#: Names along one axis: a sequence (``labels[i]``) or a function of the index.
Labels = Union[Sequence, Callable[[int], str]]


def first_non_finite(values: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/Inf of ``values`` in C order, or ``None`` if all are finite."""
    values = np.asarray(values)
    if np.isfinite(values).all():
        return None
    return tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])


def check_finite(engine: str, values: np.ndarray, axes: Sequence[tuple[str, Labels]],
                 t_ms: float, *, dt_ms: float | None = None, variable: str | None = None,
                 hint: str = "check the parameters or try a smaller dt") -> None:
    """Raise :class:`NumericalError` if ``values`` holds a NaN or an Inf.

    Parameters
    ----------
    engine : str
        Engine name.
    values : ndarray
        State to check, any shape.
    axes : sequence of (name, labels)
        One entry per axis of ``values``, e.g. ``[("region", labels), ("variable",
        state_names)]``; ``labels`` is a sequence or a function ``index -> str``.
    t_ms : float
        Simulated time of ``values`` (ms).
    dt_ms : float, optional
        The engine's step, quoted in the message.
    variable : str, optional
        Name of the variable when it is not one of the axes (``"v"`` for voltages).
    hint : str
        Advice appended to the message.
    """
    idx = first_non_finite(values)
    if idx is None:
        return
    if len(axes) != len(idx):
        raise ValueError(f"{len(axes)} axis names for an array of {len(idx)} dimensions")
    location = {name: _label(labels, i) for (name, labels), i in zip(axes, idx)}
    if variable is not None:
        location["variable"] = variable
    value = np.asarray(values)[idx]
    *where, last = [f"{name} {label}" for name, label in location.items()]
    advice = "; ".join(s for s in (f"dt {dt_ms:g} ms" if dt_ms else "", hint) if s)
    reason = ": ".join([f"engine {engine}", *where, f"{last} is {value} at t = {t_ms:.6g} ms"])
    raise NumericalError(reason + (f" ({advice})" if advice else ""), engine=engine,
                         location=location, t_ms=float(t_ms))


def _label(labels: Labels, i: int) -> str:
    return str(labels(i) if callable(labels) else labels[i])
