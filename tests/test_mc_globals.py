"""GLOBAL parameters of NMODL mechanisms have one value for all instances (NEURON's
meaning; cosim's kernels read it once per call, so that temperature factors built from it
are computed once): setting one to different values in different sections is refused."""

from __future__ import annotations

import pytest

from cosim.errors import CosimError
from cosim.multicompartment import Network, ball_and_stick, discretise
from cosim.multicompartment.mechanism import Catalogue, shipped_mod_dir


def _net(q10_soma, q10_dend):
    cat = Catalogue.from_paths([shipped_mod_dir()])
    morph = ball_and_stick(dend_nseg=3)
    for sec in morph.sections:
        sec.mechanisms.clear()
    morph.set("soma", mechanisms={"na_pos": {"q10": q10_soma}}, catalogue=cat)
    morph.set("dend", mechanisms={"na_pos": {"q10": q10_dend}}, catalogue=cat)
    net = Network(0.025, celsius=34.0)
    net.add_cells(discretise(morph, cat), 1)
    return net


def test_global_parameter_set_to_two_values_is_one_line_error():
    with pytest.raises(CosimError) as e:
        _net(3.0, 2.0).build()
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == ("mechanism na_pos: q10 is GLOBAL (one value for all sections) but is set "
                   "to 2 and 3; declare it RANGE in the .mod file")
