"""A third-party engine type, defined outside cosim and registered through the
``cosim.engines`` entry-point group (``cosim_relay-0.1.dist-info/entry_points.txt``).

``type = "relay"`` stands for one connectome region: a leaky integrator of the region's
delayed weighted input ``s(t)`` (the bus drive), integrated exactly for input held over a
step, ``r_{n+1} = e r_n + (1 − e) s_n`` with ``e = exp(−dt/τ)``; it exports ``r`` as the
region's afferent and records ``drive`` (``s_n``) and ``r`` (``r_{n+1}``) every step.
It knows nothing of MPI, the bus or other engines — only the contract of
:mod:`cosim.engines.base`.

Scenario keys: ``region`` (label), ``dt`` (ms), ``tau`` (ms, > 0), ``r0`` (initial value).
"""

from __future__ import annotations

import math

import numpy as np

from cosim.engines.base import Engine, Export, RecordSpec, Take, WindowOutput


class RelayEngine(Engine):
    type_name = "relay"
    exports = Export.AFFERENT
    takes = Take.DRIVE

    def __init__(self, name, region_index, label, dt_ms, tau_ms, r0):
        self.name = name
        self.region_indices = np.array([region_index], dtype=np.int64)
        self.label = label
        self.dt_ms = float(dt_ms)
        self.tau_ms = float(tau_ms)
        self.r0 = float(r0)

    @classmethod
    def from_config(cls, name, reader, ctx):
        labels = list(ctx.connectome.region_labels)
        region = reader.string("region", choices=labels)
        eng = cls(name, labels.index(region), region, reader.number("dt", 0.1, gt=0, unit="ms"),
                  reader.number("tau", 5.0, gt=0, unit="ms"), reader.number("r0", 0.0))
        reader.done(allowed_extra=("type",))
        return eng

    def record_specs(self):
        return [RecordSpec(n, (n,), ("1",), (self.label,), self.dt_ms) for n in ("drive", "r")]

    def build(self):
        self.r = self.r0
        self.decay = math.exp(-self.dt_ms / self.tau_ms)

    def initial(self, n_samples):
        return {"afferent": np.full((n_samples, 1, 1), self.r0)}

    def advance(self, t0_ms, t1_ms, inputs):
        drive = inputs["drive"][:, 0]                       # (S,): s_n at each step start
        out = np.empty(drive.size)
        r, e = self.r, self.decay
        for n, s in enumerate(drive):
            r = e * r + (1.0 - e) * s
            out[n] = r
        self.r = r
        rec = {"drive": drive.reshape(-1, 1, 1).copy(), "r": out.reshape(-1, 1, 1)}
        return WindowOutput(records=rec, exports={"afferent": out.reshape(-1, 1, 1)})

    def state(self):
        return {"r": np.array(self.r)}

    def restore(self, state):
        self.r = float(state["r"])
