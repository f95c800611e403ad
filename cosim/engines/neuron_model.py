"""What a NEURON model's code sees, and how cosim talks to NEURON in bulk.

:class:`NeuronContext` is the ``ctx`` of a model's ``build(ctx, **args)`` /
``connect(ctx, cells, **args)``; its ``pc`` is a :class:`Connector`, NEURON's
``ParallelContext`` whose ``gid_connect`` makes connections from a *relay* of the source
gid, so that cosim delivers every spike in every layout the same way (see
:mod:`cosim.engines.neuron_engine`).  :func:`queue_events` queues many ``NetCon`` events
in one hoc loop; :func:`model_line` finds the model file's line in a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CosimError
from ..rng import Streams


@dataclass
class NeuronContext:
    """What a model's ``build`` / ``connect`` get besides their ``args``.

    ``name``: engine name; ``gids``: the gids to build on this partition (int64, ascending);
    ``populations``: population → global gid range; ``h``, ``pc``: NEURON's ``h`` and the
    ``ParallelContext``; ``dt_ms``; ``rng``: the run's :class:`~cosim.rng.Streams`;
    ``model_dir``: the folder of the model file.
    """

    name: str
    gids: np.ndarray
    populations: dict[str, range]
    h: Any
    pc: Any
    dt_ms: float
    rng: Streams
    model_dir: str
    part: int = 0
    n_parts: int = 1

    def population_of(self, gid: int) -> str:
        for name, r in self.populations.items():
            if gid in r:
                return name
        raise KeyError(f"no cell with gid {gid}")

    def generator(self, *ids: int | str) -> np.random.Generator:
        """A numpy stream ``(seed, "neuron.model", engine name, *ids)``."""
        return self.rng.generator("neuron.model", self.name, *ids)



_EVENTS_PROC = ("proc cosim_neuron_events() { local k\n"
                "  for k = 0, $o2.size() - 1 { $o1.o($o2.x[k]).event($o3.x[k]) }\n}")

#: ``cosim_queue_events(list, index, times)``: the hoc loop of :func:`queue_events` in C,
#: compiled with a model's own ``.mod`` files (``mod_dir``).  Each event is queued by
#: ``nrn_netcon_event``, the call behind ``NetCon.event(t)`` (NEURON's ``nc_event``: the
#: same queue insertion, in the same order), ≈ 0.1 µs per event instead of ≈ 1–3 µs.
EVENTS_MOD = """COMMENT
cosim's bulk event queue (cosim.engines.neuron_model.EVENTS_MOD): cosim_queue_events(list,
index, times) does list.o(index[k]).event(times[k]) for every k, in order.
ENDCOMMENT

NEURON {
    SUFFIX nothing
}

VERBATIM
class NetCon;
extern void nrn_netcon_event(NetCon*, double);
extern Object* ivoc_list_item(Object*, int);
extern int ivoc_list_count(Object*);
ENDVERBATIM

PROCEDURE cosim_queue_events() {
VERBATIM
    Object* list = *hoc_objgetarg(1);
    IvocVect* index = vector_arg(2);
    IvocVect* times = vector_arg(3);
    int n = vector_capacity(index);
    int count = ivoc_list_count(list);
    double* ix = vector_vec(index);
    double* tx = vector_vec(times);
    if (vector_capacity(times) != n) {
        hoc_execerror("cosim_queue_events: index and times differ in length", 0);
    }
    for (int k = 0; k < n; ++k) {
        int j = (int) ix[k];
        if (j < 0 || j >= count) {
            hoc_execerror("cosim_queue_events: index outside the list", 0);
        }
        nrn_netcon_event((NetCon*) ivoc_list_item(list, j)->u.this_pointer, tx[k]);
    }
ENDVERBATIM
}
"""


def queue_events(h, netcons, index: np.ndarray, times_ms: np.ndarray) -> None:
    """``netcons.o(index[k]).event(times_ms[k])`` for every k, in order: in C when
    :data:`EVENTS_MOD` is loaded, else one hoc loop (NEURON's Python-to-hoc call per event
    costs more than the event itself)."""
    if not index.size:
        return
    bulk = getattr(h, "cosim_queue_events", None)
    if bulk is None:
        if not hasattr(h, "cosim_neuron_events"):
            h(_EVENTS_PROC)
        bulk = h.cosim_neuron_events
    bulk(netcons, h.Vector(index.astype(np.float64)), h.Vector(times_ms))


#: One window of a single-partition engine in one hoc call: NEURON's ``psolve`` in
#: sub-intervals of at most ``mds`` steps, after each the interval's spikes on the dt grid
#: (NEURON's late reports of the last window's final step dropped into ``late``), in the
#: last interval those found by comparing every source's v before and after the final step
#: (NEURON's rule), and their delivery: ``trig.o(trig_of[gid]).event(max(t + d_min, t_now))``
#: in (time, gid) order.  Python would do the same arithmetic in the same order
#: (``NeuronEngine._run_interval`` and ``_deliver``, the path of several partitions); in
#: hoc, Python is not re-entered after every ``psolve`` (where its first steps cost ≈ 0.1 ms
#: each on caches NEURON just swept).  ``par``: step, end, mds (0: none), dt, d_min,
#: threshold, [out] seconds inside psolve, n_cells, deliver (0/1).  (hoc takes a proc's
#: ``local`` and ``localobj`` declarations on its first line only: one long line.)
_WINDOW_PROC = """
proc cosim_neuron_window() { local step, end, mds, dt, dmin, thr, nn, k, ta, tb, i, j, tk, first, tic, last  localobj pc, st, sg, trig, trigof, outt, outg, late, aend, dv, vp, vn, dgid, par, it, ig, key, ord, hit
  pc = $o1  st = $o2  sg = $o3  trig = $o4  trigof = $o5  outt = $o6  outg = $o7
  late = $o8  aend = $o9  dv = $o10  vp = $o11  vn = $o12  dgid = $o13  par = $o14
  step = par.x[0]  end = par.x[1]  mds = par.x[2]  dt = par.x[3]  dmin = par.x[4]
  thr = par.x[5]  nn = par.x[7]
  it = new Vector()  ig = new Vector()  key = new Vector()  hit = new Vector()
  first = 1
  while (step < end) {
    k = end - step
    if (mds > 0 && mds < k) { k = mds }
    ta = step * dt
    step = step + k
    tb = step * dt
    last = (step == end)
    tic = startsw()
    if (last) {
      pc.psolve(tb - dt)
      dv.gather(vp)
    }
    pc.psolve(tb)
    if (last) { dv.gather(vn) }
    par.x[6] += startsw() - tic
    it.resize(0)  ig.resize(0)  key.resize(0)
    for i = 0, st.size() - 1 {
      tk = int(st.x[i] / dt + 0.5)
      if (first && tk * dt <= ta + 1e-6 * dt) {
        late.append(sg.x[i])
      } else {
        it.append(tk * dt)  ig.append(sg.x[i])  key.append(tk * nn + sg.x[i])
      }
    }
    st.resize(0)  sg.resize(0)
    first = 0
    if (last) {
      hit.indvwhere(vn, ">", thr)
      for i = 0, hit.size() - 1 {
        if (vp.x[hit.x[i]] <= thr) {
          aend.append(dgid.x[hit.x[i]])
          it.append(tb)  ig.append(dgid.x[hit.x[i]])  key.append(step * nn + dgid.x[hit.x[i]])
        }
      }
    }
    outt.append(it)  outg.append(ig)
    if (par.x[8] && it.size()) {
      ord = key.sortindex()
      for i = 0, ord.size() - 1 {
        j = trigof.x[ig.x[ord.x[i]]]
        if (j >= 0) {
          tk = it.x[ord.x[i]] + dmin
          if (tk < t) { tk = t }
          trig.o(j).event(tk)
        }
      }
    }
  }
}
"""


def window_proc(h):
    """NEURON's ``h.cosim_neuron_window`` (defined at the first call)."""
    if not hasattr(h, "cosim_neuron_window"):
        h(_WINDOW_PROC)
    return h.cosim_neuron_window


class Connector:
    """``ctx.pc`` of the model's code: NEURON's ``ParallelContext``, except ``gid_connect``.

    ``gid_connect(source_gid, target)`` returns a ``NetCon(None, target)`` (set its
    ``weight`` and ``delay`` as usual) and cosim delivers the source's spikes to it at
    spike time + delay, after each exchange — whether the source is on this rank or
    another, so one process and several ranks run the same arithmetic.  (NEURON's own
    spike exchange runs on MPI_COMM_WORLD, which cosim shares with the bus and the other
    engines; NEURON cannot be given the engine's sub-communicator.)
    """

    def __init__(self, h, pc, conns: list, relays: dict):
        self._h, self._pc, self._conns, self._relays = h, pc, conns, relays

    def gid_connect(self, source_gid, target, *_):
        src = int(source_gid)
        relay = self._relays.get(src)
        if relay is None:
            relay = self._relays[src] = _relay(self._h)
        nc = self._h.NetCon(relay, target)
        self._conns.append((src, nc))
        return nc

    def __getattr__(self, name):
        return getattr(self._pc, name)


def _relay(h):
    """A ``NetStim`` that emits one spike at the time of every event it receives
    (``number = 1``, no start of its own, no noise): the source end of a gid's connections."""
    r = h.NetStim()
    r.number, r.start, r.noise, r.interval = 1, -1, 0, 1.0
    return r


class ModelError(CosimError):
    """An exception raised by the model's own code (build, connect, import)."""


def model_line(exc: BaseException, path: str) -> str:
    """`` (rv1.py line 12)``: the innermost frame of the model file in the traceback."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" ({os.path.basename(path)} line {line})" if line is not None else ""

