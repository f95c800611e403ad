"""The delayed connectome bus: every region's afferent history, delivered with delays.

This module holds the definitions and the central form of the bus — one history of every
region — which the runtime no longer uses as such: runs use the distributed bus
(:mod:`cosim.exchange`), where each part keeps the columns it reads and computes its input
with this module's kernel (:func:`_delayed_weighted_sum`); :class:`Bus` is the reference it
is tested against (``tests/test_exchange.py``).

Each region ``j`` exports one *afferent* signal ``a_j(t)`` per bus step (``bus_dt``): for a
neural mass the value its coupling function sends along its fibres (see
:mod:`cosim.coupling`: e.g. the Jansen–Rit sigmoid of y1 − y2), for a spiking region its
population rate mapped into the same units by an adapter.  The bus keeps the history of all
of them in a ring buffer ``(slot, afferent, region)`` long enough for the largest delay, and
each sync window ``k`` (``S`` bus steps, ``[kSΔt, (k+1)SΔt)``) it sends

* to a part that takes **sources** (``Take.SOURCES``, e.g. a neural mass): the new samples ``a_j(t)``, ``t ∈ ((k−1)SΔt, kSΔt]``, of every
  source ``j`` outside the part that projects into it (the whole initial history for
  ``k = 0``).  The part keeps them in its own delay ring next to its own regions, so its
  kernel reads an external source exactly as it would read an internal one: same stage
  times (Heun/RK4 order is kept across engines), same summation order (a run split into
  engines gives the same bits as one engine).
* to a part that takes **drive** (``Take.DRIVE``, e.g. a spiking region): the delayed, weighted input of its region ``R`` at the start of each
  bus step of the window, ``s_R(t) = Σ_j w_Rj a_j(t − d_Rj)`` (sum over ``j`` in index
  order), which the rate → Poisson adapter turns into input spike trains.

Delays are ``d_ij = rint(L_ij / speed / bus_dt)`` bus steps.  Every connection between
different parts must have ``d_ij ≥ S`` (``Δ ≤ delay``), so the data a window needs were
complete at the end of the previous window; :func:`check_cross_delays` enforces it at load
time, naming the offending connection.  The same holds for a drive part's own region: its
self-connection must be delayed by ``≥ S`` too (:func:`check_driven_self_delays`; the
scenario key ``[connectome] driven_self_connections = "drop"`` leaves it out instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .engines.base import Take
from .errors import CosimError


@njit(cache=True)
def _delayed_weighted_sum(hist, t_first, srcs, delays, w, out):
    """``out[m, a] = Σ_e w_e hist[(t_first + m − d_e) mod H, a, src_e]``, summed over the
    edges ``e`` in the given (fixed) order."""
    H = hist.shape[0]
    for m in range(out.shape[0]):
        for a in range(out.shape[1]):
            acc = 0.0
            for e in range(srcs.size):
                acc += w[e] * hist[(t_first + m - delays[e]) % H, a, srcs[e]]
            out[m, a] = acc


@dataclass
class BusPart:
    """What the bus knows of one engine part.

    ``takes``: what the part receives (:class:`~cosim.engines.base.Take`); ``regions``:
    global indices of the regions it stands for (exports afferents of); ``sources``: global
    indices of outside regions whose samples it receives (``Take.SOURCES``), computed by
    :meth:`Bus.finalise`.
    """

    engine: str
    part: int
    takes: Take
    regions: np.ndarray
    sources: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    extra_lag: int = 0


def max_delay_steps(weights: np.ndarray, steps: np.ndarray) -> int:
    """The longest delay (bus steps) of any connection; the bus keeps that much history,
    and every afferent exporter gives ``max_delay_steps + 1 + read_ahead`` initial samples."""
    nz = np.asarray(weights) != 0
    return int(np.asarray(steps)[nz].max()) if nz.any() else 0


def delay_steps(connectome, speed_mm_per_ms: float, bus_dt_ms: float) -> np.ndarray:
    """Delays in bus steps, ``rint(L / speed / dt)`` (TVB's rule), int64 (n, n)."""
    return connectome.delay_steps(speed_mm_per_ms, bus_dt_ms)


def check_cross_delays(connectome, owner: np.ndarray, names: list[str], steps: np.ndarray,
                       window_steps: int, bus_dt_ms: float, speed: float, file: str | None,
                       extra_lag: dict[int, int] | None = None) -> None:
    """Raise :class:`CosimError` if a connection between different parts is shorter than
    the sync interval.  ``owner[r]``: index into ``names`` of the part simulating region
    ``r`` (−1: nobody); ``extra_lag[p]``: additional steps part ``p`` reads ahead (RK4)."""
    w = connectome.weights
    tgt, src = np.nonzero(w)
    cross = (owner[tgt] >= 0) & (owner[src] >= 0) & (owner[tgt] != owner[src])
    need = window_steps + np.array([(extra_lag or {}).get(int(owner[t]), 0) for t in tgt],
                                   dtype=np.int64)
    short = cross & (steps[tgt, src] < need)
    if not short.any():
        return
    # report the shortest offending connection
    k = np.flatnonzero(short)
    k = k[np.argmin(steps[tgt[k], src[k]])]
    i, j = int(tgt[k]), int(src[k])
    labels = connectome.region_labels
    raise CosimError(
        f"{window_steps * bus_dt_ms:g} ms is longer than the delay of the connection "
        f"{labels[j]} → {labels[i]} ({steps[i, j] * bus_dt_ms:g} ms: "
        f"{connectome.tract_lengths_mm[i, j]:g} mm at {speed:g} mm/ms), which crosses from "
        f"engine {names[owner[j]]} to engine {names[owner[i]]}; shorten the sync interval "
        f"to at most {max(steps[i, j] - (need[k] - window_steps), 0) * bus_dt_ms:g} ms",
        file=file, key="simulation.sync_interval")


def check_driven_self_delays(weights: np.ndarray, steps: np.ndarray, driven: dict[int, str],
                             window_steps: int, bus_dt_ms: float | None = None, labels=None,
                             extra_lag: dict[int, int] | None = None,
                             file: str | None = None) -> None:
    """Raise :class:`CosimError` if a region whose engine takes **drive** (``driven``:
    region → engine name) has a self-connection delayed by less than the sync interval
    (plus the engine's read-ahead, ``extra_lag[region]``), the rule every connection
    between engines obeys (:func:`check_cross_delays`).

    A drive is summed before its window runs, from samples of earlier windows; the
    region's own afferent of the same window does not exist yet, so no bus — the central
    one or the distributed one — can serve such a connection (the ring would hand out the
    sample one ring length old).  The key is ``connectome.driven_self_connections``
    (``"drop"`` leaves these self-connections out).  ``bus_dt_ms=None``: durations are
    given in bus steps."""
    def span(n: int) -> str:
        return f"{n} bus steps" if bus_dt_ms is None else f"{n * bus_dt_ms:g} ms"

    for r in sorted(driven):
        if weights[r, r] == 0:
            continue
        lag = int((extra_lag or {}).get(r, 0))
        d = int(steps[r, r])
        if d >= int(window_steps) + lag:
            continue
        label = labels[r] if labels is not None else f"region {r}"
        shorter = (f" or shorten the sync interval to at most {span(d - lag)}"
                   if d > lag else "")
        raise CosimError(
            f"the self-connection of {label} is delayed by {span(d)}, less than the sync "
            f"interval ({span(int(window_steps))}), but engine {driven[r]} takes its drive "
            f"from the bus before each window, so it cannot read its own output of the same "
            f"window; set driven_self_connections = \"drop\" (the engine's network stands "
            f"for the region's recurrence){shorter}",
            file=file, key="connectome.driven_self_connections")


class Bus:
    """History and delivery of afferents (see module docstring).

    Parameters
    ----------
    connectome : Connectome
    steps : int ndarray (n, n)
        Delays in bus steps.
    window_steps : int
        Bus steps per sync window (S).
    n_afferent : int
        Afferent channels per region.
    """

    def __init__(self, connectome, steps: np.ndarray, window_steps: int, n_afferent: int,
                 read_ahead: int = 0):
        self.connectome = connectome
        self.weights = np.asarray(connectome.weights, dtype=np.float64)
        self.steps = np.asarray(steps, dtype=np.int64)
        self.S = int(window_steps)
        self.n_aff = int(n_afferent)
        self.n_regions = self.weights.shape[0]
        self.max_delay = max_delay_steps(self.weights, self.steps)
        #: steps a receiver's integrator reads beyond the delayed sample (RK4 stage: 1)
        self.read_ahead = int(read_ahead)
        # slots for steps t − max_delay … t + S (one window ahead is written before it is read)
        self.H = self.max_delay + self.read_ahead + 2 * self.S + 1
        self.hist = np.zeros((self.H, self.n_aff, self.n_regions))
        self.parts: list[BusPart] = []
        self._owner = np.full(self.n_regions, -1, dtype=np.int64)

    # -- set-up ----------------------------------------------------------------------
    def add_part(self, part: BusPart) -> BusPart:
        """Register a part; its ``sources`` are filled in by :meth:`finalise`."""
        self.parts.append(part)
        return part

    def finalise(self) -> None:
        """Compute each part's external sources once all parts are known."""
        for p, part in enumerate(self.parts):
            self._owner[part.regions] = p
        for p, part in enumerate(self.parts):
            rows = self.weights[part.regions] != 0
            srcs = np.flatnonzero(rows.any(axis=0))
            part.sources = srcs[self._owner[srcs] != p].astype(np.int64)
        for part in self.parts:
            if part.takes is Take.DRIVE and part.regions.size != 1:
                raise ValueError(f"engine {part.engine!r} takes the drive of one region, "
                                 f"but stands for {part.regions.size}")
        driven = {int(p.regions[0]): p.engine for p in self.parts if p.takes is Take.DRIVE}
        check_driven_self_delays(self.weights, self.steps, driven, self.S,
                                 labels=getattr(self.connectome, "region_labels", None))

    def initial_length(self) -> int:
        """Samples of initial history (t ≤ 0) every exporter provides:
        ``max_delay + 1 + read_ahead`` (also :meth:`CouplingLayout.initial_length`)."""
        return self.max_delay + 1 + self.read_ahead

    def put_initial(self, regions: np.ndarray, afferent: np.ndarray) -> None:
        """Initial history ``(L, n_aff, len(regions))`` for steps ``−(L−1) … 0``."""
        L = afferent.shape[0]
        for k in range(L):
            self.hist[(k - (L - 1)) % self.H][:, regions] = afferent[k]

    # -- per window --------------------------------------------------------------------
    def put_window(self, k: int, regions: np.ndarray, afferent: np.ndarray) -> None:
        """Afferents ``(S, n_aff, len(regions))`` of window ``k`` (steps ``kS+1 … (k+1)S``)."""
        slots = (k * self.S + 1 + np.arange(self.S)) % self.H
        self.hist[np.ix_(slots, np.arange(self.n_aff), regions)] = afferent

    def input(self, k: int, part: BusPart) -> dict[str, np.ndarray]:
        """The ``INPUT`` payload of window ``k`` for ``part``, by what it takes."""
        if part.takes is Take.SOURCES:
            return {"sources": self.sources_input(k, part)}
        if part.takes is Take.DRIVE:
            return {"drive": self.drive_input(k, part)}
        return {}

    def sources_input(self, k: int, part: BusPart) -> np.ndarray:
        """Samples of ``part``'s external sources the part needs before window ``k``:
        ``(L, n_aff, n_sources)`` for ``k = 0`` (initial history), else ``(S, …)``."""
        if k == 0:
            L = self.initial_length()
            first = -(L - 1)
        else:
            L = self.S
            first = (k - 1) * self.S + 1
        slots = (np.arange(first, first + L)) % self.H
        return np.ascontiguousarray(self.hist[slots][:, :, part.sources])

    def drive_input(self, k: int, part: BusPart) -> np.ndarray:
        """``s_R`` at the start of each bus step of window ``k``: ``(S, n_aff)``."""
        R = int(part.regions[0])
        srcs = np.flatnonzero(self.weights[R])               # fixed order: increasing index
        out = np.empty((self.S, self.n_aff))
        _delayed_weighted_sum(self.hist, k * self.S, srcs.astype(np.int64),
                              self.steps[R, srcs].astype(np.int64), self.weights[R, srcs].copy(), out)
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"hist": self.hist.copy()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.hist[...] = state["hist"]
