"""Suggestions for a misspelt region name: ``M1_left`` → ``lM1``.

A name is normalised to ``(hemisphere, core)``: the hemisphere from a ``left``/``right``,
``l``/``r``, ``lh``/``rh`` token (``M1_left``, ``L-M1``, ``m1 lh``) or from TVB's prefix
(a lower-case ``l``/``r`` before an upper-case letter or digit: ``lM1``, ``rV1``); the core is the rest,
lower-cased, without separators.  Labels with the same normalised form are the answer;
otherwise :func:`difflib.get_close_matches` on the normalised forms (hemisphere first) picks
the closest, so ``V1_right`` suggests ``rV1`` rather than ``lV1``.
"""

from __future__ import annotations

import difflib
import re
from typing import Sequence

_HEMI = {"l": "l", "left": "l", "lh": "l", "r": "r", "right": "r", "rh": "r"}


def normalise(name: str) -> tuple[str, str]:
    """``(hemisphere "l" | "r" | "", core)`` of a region name (see the module docstring)."""
    hemi = ""
    m = re.match(r"^([lr])(?=[A-Z0-9])", name)
    if m:
        hemi, name = m.group(1), name[1:]
    core = []
    for tok in re.split(r"[^A-Za-z0-9]+", name):
        low = tok.lower()
        if low in _HEMI and not hemi:
            hemi = _HEMI[low]
        elif tok:
            core.append(low)
    return hemi, "".join(core)


def closest(name: str, labels: Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` labels closest to ``name`` (same normalised form first)."""
    labels = list(labels)
    forms = {lab: normalise(lab) for lab in labels}
    key = normalise(name)
    same = [lab for lab, f in forms.items() if f == key]
    if same:
        return same[:n]
    if not key[0] and name[:1].lower() in "lr" and len(name) > 1:   # "lm1": l + m1
        guess = (name[0].lower(), normalise(name[1:])[1])
        same = [lab for lab, f in forms.items() if f == guess]
        if same:
            return same[:n]
    if not key[0]:                             # no hemisphere given: both are as close
        same = [lab for lab, f in forms.items() if f[1] == key[1]]
        if same:
            return same[:n]
    flat = {f"{f[0]}|{f[1]}": lab for lab, f in forms.items()}
    hits = difflib.get_close_matches(f"{key[0]}|{key[1]}", list(flat), n=n, cutoff=0.5)
    if not hits:
        hits = difflib.get_close_matches(name, labels, n=n, cutoff=0.5)
        return hits
    return [flat[h] for h in hits]


def suggestion(name: str, labels: Sequence[str]) -> str:
    """``; did you mean 'lM1'?`` (or ``'a' or 'b'``), or a pointer to ``cosim regions``."""
    hits = closest(name, labels)
    if hits:
        return "; did you mean " + " or ".join(repr(h) for h in hits) + "?"
    return "; `cosim regions CONNECTOME` lists the labels"
