"""Units of the run path on stub engines: the coupling layout reads declarations only (bus
resolution, afferent channels, causality), a part turns bus messages into an engine's
inputs and its outputs into bus messages, checkpoint fingerprints and damaged files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cosim.checkpoint import Checkpointer, check_fingerprint
from cosim.connectome import make_connectome
from cosim.coupling_layout import coupling_layout
from cosim.engines.base import Engine, Export, Take, WindowOutput
from cosim.errors import CosimError
from cosim.parts import Part
from cosim.plan import make_plan


class Stub(Engine):
    type_name = "stub"

    def __init__(self, name, regions, dt=0.1, exports=Export.AFFERENT, takes=Take.SOURCES,
                 n_aff=1, read_ahead=0):
        self.name, self.dt_ms = name, dt
        self.region_indices = np.asarray(regions, dtype=np.int64)
        self.exports, self.takes = exports, takes
        self.n_afferent, self.bus_read_ahead_steps = n_aff, read_ahead
        self.seen = []

    @classmethod
    def from_config(cls, name, reader, ctx):  # pragma: no cover
        raise NotImplementedError

    def record_specs(self):
        return []

    def build(self):
        self.built = True

    def populations(self):
        return {"a": range(0, 3), "b": range(3, 5)}

    def input_groups(self):
        return ("bg",)

    def local_input_lines(self, group):
        return np.arange(4, dtype=np.int64)

    def advance(self, t0, t1, inputs):
        self.seen.append(inputs)
        n = int(round((t1 - t0) / self.dt_ms))
        if self.exports is Export.AFFERENT:
            return WindowOutput(exports={"afferent": np.full((n, 1, len(self.region_indices)), t1)})
        # spikes of gid 1 (a) and 4 (b) at the end of the window, gid 3 (b) in the first step
        return WindowOutput(exports={"spikes": (np.array([3, 1, 4]), np.array([t0 + self.dt_ms, t1, t1]))})

    def state(self):
        return {"x": np.array(1.0)}

    def restore(self, state):
        self.restored = state


def _scenario(*engines, lengths=6.0):
    w = np.ones((3, 3)) - np.eye(3)
    c = make_connectome(w, lengths * (w != 0), ["A", "B", "C"])
    return SimpleNamespace(path=Path("s.toml"), connectome=c, engines={e.name: e for e in engines},
                           adapters={}, speed_mm_per_ms=3.0,
                           simulation=SimpleNamespace(sync_interval_ms=1.0, seed=1))


def test_layout_from_declarations():
    sc = _scenario(Stub("nm", [0, 1]), Stub("sp", [2], dt=0.025, exports=Export.SPIKE_COUNTS,
                                            takes=Take.DRIVE))
    lay = coupling_layout(sc)
    assert lay.uses_bus and lay.coupled == ("nm", "sp")
    assert lay.bus_dt_ms == 0.1 and lay.window_steps == 10      # the afferent exporter's dt
    assert lay.populations == {"sp": ("a", "b")}
    assert lay.initial_length(sc.connectome) == 20 + 1          # 6 mm at 3 mm/ms = 20 steps
    assert lay.active(make_plan(sc, 1))


def test_layout_errors_name_the_key():
    with pytest.raises(CosimError, match="engines.b.dt: neural-mass engines coupled through the bus must share one dt"):
        coupling_layout(_scenario(Stub("a", [0]), Stub("b", [1, 2], dt=0.05)))
    with pytest.raises(CosimError, match="engines.sp.dt: must divide the bus resolution"):
        coupling_layout(_scenario(Stub("a", [0, 1]), Stub("sp", [2], dt=0.03,
                                                          exports=Export.SPIKE_COUNTS, takes=Take.DRIVE)))
    with pytest.raises(CosimError, match="simulation.sync_interval: 1 ms is longer than the delay of the connection B → A .* crosses from engine b to engine a"):
        coupling_layout(_scenario(Stub("a", [0]), Stub("b", [1, 2]), lengths=2.0))   # 0.67 ms < 1 ms


def test_one_engine_alone_uses_the_bus_only_when_split():
    e = Stub("nm", [0, 1, 2])
    e.max_parts = lambda: 3
    sc = _scenario(e)
    lay = coupling_layout(sc)
    assert not lay.uses_bus
    assert not lay.active(make_plan(sc, 1)) and lay.active(make_plan(sc, 4))


def test_part_passes_sources_and_exports_afferents():
    e = Stub("nm", [0, 1])
    part = Part(e, ("nm", 0), coupled=True, bus_dt_ms=0.1, initial_length=5)
    part.build()
    src = np.ones((10, 1, 1))
    exports, _, _ = part.step(0, 0.0, 1.0, {"sources": src})
    assert e.seen[-1]["sources"] is src and exports["afferent"].shape == (10, 1, 2)
    part.step(1, 1.0, 2.0, {"sources": np.zeros((0, 1, 1))})
    assert e.seen[-1] == {}                                     # nothing new: no input


def test_part_counts_spikes_per_bin_and_population():
    e = Stub("sp", [2], dt=0.025, exports=Export.SPIKE_COUNTS, takes=Take.DRIVE)
    part = Part(e, ("sp", 0), coupled=True, bus_dt_ms=0.1, populations=e.populations())
    exports, _, _ = part.step(0, 0.0, 1.0, {"drive": np.zeros((10, 1))})
    c = exports["counts"]
    assert c.shape == (10, 2) and c.sum() == 3
    assert c[0, 1] == 1 and c[9, 0] == 1 and c[9, 1] == 1      # (t0, t0+bin] … (t1−bin, t1]


def test_part_makes_poisson_events_from_the_drive():
    e = Stub("sp", [2], dt=0.025, exports=Export.SPIKE_COUNTS, takes=Take.DRIVE)
    spec = SimpleNamespace(name="in", input="bg", gain=0.0, offset=2000.0, correlation=0.0)
    part = Part(e, ("sp", 0), coupled=True, seed=3, bus_dt_ms=0.1, rate_inputs=[spec],
                populations=e.populations())
    part.step(0, 0.0, 100.0, {"drive": np.zeros((1000, 1))})
    lines, times = e.seen[-1]["events"]
    assert set(np.unique(lines)) <= set(range(4)) and ((times >= 0) & (times < 100.0)).all()
    # 4 lines × 2000 Hz × 0.1 s = 800 events expected, Poisson: within 4 σ
    assert abs(lines.size - 800) < 4 * np.sqrt(800)
    st = part.state()
    assert "engine/x" in st and any(k.startswith("poisson/in/") for k in st)


def test_fingerprint_differences_are_named():
    with pytest.raises(CosimError, match="engines.a.dt is 0.2 now but was 0.1"):
        check_fingerprint({"engines.a.dt": "0.1"}, {"engines.a.dt": "0.2"}, "c.npz")
    with pytest.raises(CosimError, match="engine 'a' in 1 part.*splits it into 2"):
        check_fingerprint({"@parts.a": "1"}, {"@parts.a": "2"}, "c.npz")
    with pytest.raises(CosimError, match="the connectome data changed"):
        check_fingerprint({"@connectome": "x"}, {"@connectome": "y"}, "c.npz")
    check_fingerprint({"k": "1"}, {"k": "1"}, "c.npz")


def test_damaged_checkpoint_is_one_line(tmp_path):
    ck = Checkpointer(tmp_path / "o.h5", 10)
    ck.save_coordinator(3, {"bus:hist": np.zeros(4)}, {"@windows_completed": 3}, {"a": "1"}, 30.0)
    k, state, lengths, meta = ck.load_commit()
    assert k == 3 and meta == {"fingerprint": {"a": "1"}, "duration_ms": 30.0}
    p = ck.dir / "coordinator.npz"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(CosimError, match="damaged checkpoint file"):
        ck.load_commit()
