"""A small NEURON model for tests/test_neuron_engine.py: HH ball-and-stick cells in a ring.

Built-in mechanisms only (hh, pas, Exp2Syn), so no .mod file is compiled.  Cell ``g``
excites cell ``g + 1`` (mod n) through ``syn`` with weight ``w_ring`` µS after ``delay``
ms; ``syn`` is also where cosim's input lines land.  ``Cell`` and ``wire`` are shared by
the engine's ``build`` / ``connect`` and by the plain NEURON script of the test.
"""


class Cell:
    def __init__(self, h, gid):
        self.soma = h.Section(name=f"soma_{gid}", cell=self)
        self.dend = [h.Section(name=f"dend_{gid}_{k}", cell=self) for k in range(2)]
        self.soma.L = self.soma.diam = 18.0
        self.soma.insert("hh")
        for k, d in enumerate(self.dend):
            d.L, d.diam, d.nseg = 150.0 + 50.0 * k, 1.0 + 0.5 * k, 5
            d.insert("pas")
            for seg in d:
                seg.pas.g, seg.pas.e = 0.0002, -65.0
            d.connect(self.soma(1.0 if k == 0 else 0.0), 0.0)
        self.syn = h.Exp2Syn(self.dend[0](0.7))
        self.syn.tau1, self.syn.tau2, self.syn.e = 0.3, 3.0, 0.0
        self.inh = [h.Exp2Syn(self.soma(0.5)) for _ in range(2)]
        for s in self.inh:
            s.tau1, s.tau2, s.e = 0.5, 6.0, -75.0


def wire(pc, cells, n, w_ring, delay):
    ncs = []
    for g in cells:
        nc = pc.gid_connect((g - 1) % n, cells[g].syn)
        nc.weight[0], nc.delay = w_ring, delay
        ncs.append(nc)
    return ncs


def build(ctx, w_ring=0.01, delay=2.0, fail=False, cvode=False):
    if fail:
        raise ValueError("the model refuses to build")
    if cvode:
        ctx.h.CVode().active(1)
    return {int(g): Cell(ctx.h, int(g)) for g in ctx.gids}


def connect(ctx, cells, w_ring=0.01, delay=2.0, fail=False, cvode=False):
    n = sum(len(r) for r in ctx.populations.values())
    cells[min(cells)].netcons = wire(ctx.pc, cells, n, w_ring, delay)
