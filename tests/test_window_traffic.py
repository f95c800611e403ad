"""The per-window traffic figures (steady windows, each node's largest and smallest
window) against their definition, recomputed from every window's snapshot: random
counters, a node that appears after the start, figures read part-way."""

import numpy as np
import pytest

from cosim.transport import _WindowTraffic


def _reference(snapshots: list[list[int]], nodes: dict) -> tuple[dict, dict, int]:
    """Steady windows 1 … N − 2: each node's counter differences, window by window."""
    hi, lo, n = {}, {}, 0
    for w in range(1, len(snapshots) - 1):
        a, b = snapshots[w - 1], snapshots[w]
        n += 1
        for node, j in nodes.items():
            if j >= len(b):
                continue
            d = [b[j + i] - (a[j + i] if j < len(a) else 0) for i in range(4)]
            if node not in hi:
                hi[node], lo[node] = d, list(d)
            else:
                hi[node] = [max(x, y) for x, y in zip(hi[node], d)]
                lo[node] = [min(x, y) for x, y in zip(lo[node], d)]
    return hi, lo, n


@pytest.mark.parametrize("windows", [1, 2, 3, 7, 130, 389])
def test_window_figures_equal_their_definition(windows):
    rng = np.random.default_rng(windows)
    flat = [0] * 8                      # two nodes' totals at 0 and 4
    nodes = {"bus": 0, "a/0": 4}
    late_at = windows // 2              # a node whose counters begin half-way
    w = _WindowTraffic()
    snaps = []
    for k in range(windows):
        if k == late_at:
            nodes["b/0"] = len(flat)
            flat.extend([0, 0, 0, 0])
        for j in nodes.values():
            for i in range(4):
                flat[j + i] += int(rng.integers(0, 3 if i % 2 == 0 else 10_000))
        snap = list(flat)
        snaps.append(snap)
        w.done(snap, dict(nodes))
        if k == windows // 3:
            _ = w.max                   # read part-way: the figures settle, then go on
    hi, lo, n = _reference(snaps, nodes)
    assert w.n == n == max(0, windows - 2)
    assert w.max == hi
    assert w.min == lo
    if n:
        assert w.prev == snaps[-2]      # the end of the last steady window
