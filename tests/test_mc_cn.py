"""Crank–Nicolson for the cable (``integrator = "crank_nicolson"``, NEURON's
``secondorder = 2``) on the built-in hh/pas path:

* convergence in dt against a fine reference: order ≈ 2 (Crank–Nicolson), ≈ 1 (backward
  Euler), on a spiking cell;
* against NEURON with ``h.secondorder = 2`` on a Y-shaped cell with active dendrites:
  max |ΔV| ≤ 1e-3 mV (observed ≈ 4e-6 mV), the same spike times;
* the scenario key: read, used, one-line error for an unknown value; two partitions give
  the single-process bits.

With NMODL mechanisms (ion currents at the half step) see
``tests/test_mc_nmodl.py::test_crank_nicolson_with_a_calcium_pool_matches_neuron``.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from cosim.engines.base import BuildContext
from cosim.engines.multicompartment import MulticompartmentEngine
from cosim.errors import CosimError
from cosim.multicompartment import Network, ball_and_stick, discretise, y_shaped
from cosim.schema import Reader

TOL_MV = 1e-3


def _spiking(dt, integrator, t_end=10.0, grid=0.2):
    morph = ball_and_stick(dend_nseg=9, dend_L_um=400.0, dend_diam_um=2.0,
                           soma_mechanisms={"hh": {}}, dend_mechanisms={"pas": {"g": 1e-4, "e": -65.0}})
    net = Network(dt, max_window_ms=t_end, record_every_steps=int(round(grid / dt)),
                  integrator=integrator)
    net.add_cells(discretise(morph), 1)
    net.add_current_clamp(0, ("soma", 0.5), 0.0, 1e9, 0.3)
    net.add_probe(0, ("soma", 0.5))
    net.add_probe(0, ("dend", 1.0))
    (_, sp), v = net.run(t_end)
    return v, sp


@pytest.mark.parametrize("integrator, lo, hi", [("crank_nicolson", 1.85, 2.2),
                                                ("backward_euler", 0.85, 1.2)])
def test_convergence_order_in_dt(integrator, lo, hi):
    """Max |v − v_ref| over a 0.2 ms grid, 10 ms with an action potential, dt
    0.1 … 0.0125 ms against dt = 0.2/256 ms of the same integrator."""
    ref, sp = _spiking(0.2 / 256, integrator)
    assert len(sp) >= 1                        # through a spike, not only subthreshold
    errs = np.array([np.abs(_spiking(dt, integrator)[0] - ref).max()
                     for dt in (0.1, 0.05, 0.025, 0.0125)])
    orders = np.log2(errs[:-1] / errs[1:])
    assert np.all((orders > lo) & (orders < hi)), (errs, orders)
    assert errs[0] > 1.0                       # far from round-off: the orders are measured


def _y_cell():
    m = y_shaped(nseg=7)
    m.set("dend", mechanisms={"hh": {"gnabar": 0.03, "gkbar": 0.01}})
    return m


def test_matches_neuron_secondorder_2():
    pytest.importorskip("neuron")
    from mc_reference import build_neuron, neuron_h, run_neuron, spike_recorder
    m = _y_cell()
    out = {}
    for integ in ("crank_nicolson", "backward_euler"):
        net = Network(0.025, integrator=integ)
        net.add_cells(discretise(m), 1)
        net.add_current_clamp(0, ("soma", 0.5), 2.0, 30.0, 0.6)
        net.add_probe(0, ("soma", 0.5))
        net.add_probe(0, ("branch_a", 0.9))
        (_, sp), v = net.run(40.0)
        out[integ] = v, sp
    h = neuron_h()
    secs = build_neuron(h, m)
    ic = h.IClamp(secs[0](0.5))
    ic.delay, ic.dur, ic.amp = 2.0, 30.0, 0.6
    vecs = [h.Vector().record(secs[0](0.5)._ref_v), h.Vector().record(secs[2](0.9)._ref_v)]
    nc, spn = spike_recorder(h, secs[0](0.5))
    h.secondorder = 2
    try:
        run_neuron(h, 40.0, 0.025)
    finally:
        h.secondorder = 0
    vn = np.array([np.array(x)[1:] for x in vecs]).T
    spn = np.array(spn)
    del nc, ic
    for sec in secs:
        h.delete_section(sec=sec)
    v, sp = out["crank_nicolson"]
    assert v.shape == vn.shape
    assert np.abs(v - vn).max() <= TOL_MV, np.abs(v - vn).max()
    assert len(sp) == len(spn) >= 3 and np.all(np.abs(sp - spn) <= 0.025 + 1e-9), (sp, spn)
    assert np.abs(out["backward_euler"][0] - vn).max() > 1.0     # the comparison discriminates


NET = """
dt = 0.025
integrator = "crank_nicolson"
[cells.exc]
n = 6
morphology = "ball_and_stick"
nseg = 5
[projections.ee]
source = "exc"
target = "exc"
indegree = 3
receptors = ["AMPA", "NMDA"]
weights = [0.004, 0.001]
delay = [1.0, 2.0]
[clamps.step]
target = "exc"
cells = [0, 1]
delay = 1.0
duration = 30.0
amplitude = 0.4
[probes]
cells = [0, 3, 5]
sections = ["soma", "dend"]
"""


def _engine(text, sync=1.0):
    ctx = BuildContext(file="net.toml", connectome=None, seed=3, duration_ms=20.0,
                       sync_interval_ms=sync, record_period_ms=0.25, record_variables=None)
    return MulticompartmentEngine.from_config(
        "ctx", Reader(tomllib.loads(text), "net.toml", "engines.ctx"), ctx)


def test_scenario_key_and_layouts():
    from cosim.multicompartment.partition import advance_in_lockstep, merge_outputs
    eng = _engine(NET)
    eng.build()
    assert eng.net.integrator == "crank_nicolson" and eng.net.vfac == 2.0
    v = np.concatenate([eng.advance(float(w), w + 1.0, {}).records["v"] for w in range(20)])
    be = _engine(NET.replace('integrator = "crank_nicolson"\n', ""))
    be.build()
    assert be.net.integrator == "backward_euler"
    vb = np.concatenate([be.advance(float(w), w + 1.0, {}).records["v"] for w in range(20)])
    assert 0.0 < np.abs(vb - v).max()
    parts = [_engine(NET, 2.0).partition(p, 2) for p in range(2)]
    for p in parts:
        p.build()
    vs = [merge_outputs(parts, advance_in_lockstep(parts, 2.0 * w, 2.0 * w + 2.0, {})).records["v"]
          for w in range(10)]
    assert np.array_equal(np.concatenate(vs), v)
    with pytest.raises(CosimError, match=r"^net.toml: engines\.ctx\.integrator: must be one of "
                                         r"'backward_euler', 'crank_nicolson', got 'cn'"):
        _engine(NET.replace('"crank_nicolson"', '"cn"'))
