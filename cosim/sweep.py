"""Parameter sweeps: one scenario × a grid of parameter values → scenario variants.

``--param KEY=SPEC`` sets the dotted scenario key ``KEY`` (``engines.cortex.coupling.G``)
to each value of ``SPEC``:

* ``start:stop:count`` — ``count`` evenly spaced values from ``start`` to ``stop``, both
  included (``numpy.linspace``), rounded to 12 significant digits so that 0.1 is written
  as 0.1; whole numbers stay integers when ``start`` and ``stop`` are written as integers;
* ``a,b,c`` — a list; each item is read as a TOML value (``0.5``, ``3``, ``true``,
  ``"text"``), anything else as a bare string (``jansen_rit``);
* a single value.

Several ``--param`` make the Cartesian grid (the last one varies fastest).  Each variant
is written as a TOML file into the sweep folder, named by its index and values
(``003_G=0.2_speed=5.toml``), with ``[simulation] output`` set to the matching ``.h5``
beside it; input paths of the scenario (connectome files, morphologies) are made absolute
so the variant finds them from its new folder.  ``sweep.json`` lists the variants.  Every
variant is validated with :func:`cosim.scenario.load_scenario` before anything runs.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TextIO

import numpy as np

from .errors import CosimError
from .scenario import read_toml
from .toml_writer import dumps, value

MANIFEST = "sweep.json"
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass(frozen=True)
class Param:
    """One ``--param``: a dotted key and the values it takes."""

    key: str
    values: tuple

    @property
    def segments(self) -> list[str]:
        return self.key.split(".")


@dataclass(frozen=True)
class Variant:
    index: int
    name: str
    values: dict            # key → value
    scenario: Path          # the variant's TOML file
    output: Path            # its HDF5 output


def _scalar(text: str) -> Any:
    """A TOML value if ``text`` is one (numbers, booleans, quoted strings), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _round(x: float) -> float:
    return float(f"{x:.12g}")


def parse_param(spec: str) -> Param:
    """``KEY=start:stop:count`` / ``KEY=a,b,c`` / ``KEY=v`` → :class:`Param`."""
    if "=" not in spec:
        raise CosimError(f"expected KEY=start:stop:count or KEY=a,b,c, got {spec!r}",
                         key="--param")
    key, text = (s.strip() for s in spec.split("=", 1))
    segments = key.split(".")
    if not key or not all(_SEGMENT.match(s) for s in segments):
        raise CosimError(f"{key!r} is not a dotted scenario key such as "
                         "engines.cortex.coupling.G", key="--param")
    if key == "simulation.output":
        raise CosimError("each variant's output is set by the sweep (in the sweep folder)",
                         key=f"--param {key}")
    if not text:
        raise CosimError("no values given", key=f"--param {key}")
    parts = text.split(":")
    if len(parts) == 3 and not text.startswith(('"', "'")):
        return Param(key, _linspace(key, *parts))
    values = tuple(_scalar(v.strip()) for v in text.split(","))
    if any(v == "" for v in values):
        raise CosimError(f"empty value in {text!r}", key=f"--param {key}")
    return Param(key, values)


def _linspace(key: str, start: str, stop: str, count: str) -> tuple:
    where = f"--param {key}"
    try:
        a, b = float(start), float(stop)
    except ValueError:
        raise CosimError(f"start:stop:count needs numbers, got {start!r}:{stop!r}",
                         key=where) from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise CosimError("start and stop must be finite", key=where)
    try:
        n = int(count)
    except ValueError:
        raise CosimError(f"count must be a whole number ≥ 1, got {count!r}", key=where) from None
    if n < 1:
        raise CosimError(f"count must be ≥ 1, got {n}", key=where)
    if n == 1 and a != b:
        raise CosimError(f"count 1 with start {a:g} ≠ stop {b:g}; give one value instead",
                         key=where)
    xs = [_round(x) for x in np.linspace(a, b, n)]
    ints = _is_int(start) and _is_int(stop) and all(x == int(x) for x in xs)
    return tuple(int(x) for x in xs) if ints else tuple(xs)


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text.strip()) is not None


def grid(params: Sequence[Param]) -> list[dict]:
    """The Cartesian product: one ``{key: value}`` per variant, last key fastest."""
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise CosimError("given twice", key=f"--param {dup}")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(p.values for p in params))]


def set_key(data: dict, key: str, value: Any) -> None:
    """``data[a][b][c] = value`` for ``key = "a.b.c"``; missing tables are created."""
    node = data
    segments = key.split(".")
    for i, seg in enumerate(segments[:-1]):
        nxt = node.get(seg)
        if nxt is None:
            nxt = node[seg] = {}
        elif not isinstance(nxt, dict):
            where = ".".join(segments[:i + 1])
            kind = {str: "string", int: "integer", float: "number", bool: "boolean",
                    list: "array"}.get(type(nxt), type(nxt).__name__)
            raise CosimError(f"{where} is a {kind} in the scenario, not a table",
                             key=f"--param {key}")
        node = nxt
    if isinstance(node.get(segments[-1]), dict):
        raise CosimError(f"{key} is a table in the scenario; sweep a value inside it",
                         key=f"--param {key}")
    node[segments[-1]] = value


def absolutize_paths(data: Any, base: Path) -> Any:
    """Strings that name an existing file or folder relative to ``base`` (and look like
    paths: contain ``/`` or ``.``) become absolute, so a copy of the scenario elsewhere
    still finds its inputs."""
    if isinstance(data, dict):
        return {k: absolutize_paths(v, base) for k, v in data.items()}
    if isinstance(data, list):
        return [absolutize_paths(v, base) for v in data]
    if isinstance(data, str) and ("/" in data or "." in data) and ":" not in data:
        p = Path(data)
        if not p.is_absolute() and (base / p).exists():
            return str((base / p).resolve())
    return data


def _format(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return _UNSAFE.sub("_", str(v))


def variant_name(index: int, n: int, values: dict) -> str:
    """``007_G=0.35_speed=4``: zero-padded index, then the values by short key (the last
    segment of the key, or the whole key when two parameters share a last segment)."""
    last = [k.split(".")[-1] for k in values]
    names = [s if last.count(s) == 1 else k.replace(".", "-") for s, k in zip(last, values)]
    width = max(3, len(str(n - 1)))
    return f"{index:0{width}d}_" + "_".join(f"{s}={_format(v)}" for s, v in zip(names, values.values()))


def _locate(err: CosimError, params: Sequence[Param]) -> Param | None:
    if not err.key:
        return None
    for p in params:
        if err.key == p.key or err.key.startswith(p.key + ".") or p.key.startswith(err.key + "."):
            return p
    return None


def make_variants(scenario: str | Path, params: Sequence[Param], folder: str | Path, *,
                  overwrite: bool = False, validate: bool = True) -> list[Variant]:
    """Write every variant of ``scenario`` over the grid of ``params`` into ``folder``,
    validate each (CosimError naming the ``--param`` at fault) and write ``sweep.json``.
    On an error, the variant files written so far are removed again."""
    src = Path(scenario)
    _, base = read_toml(src)
    if not params:
        raise CosimError("give at least one --param KEY=start:stop:count", key="--param")
    folder = Path(folder).resolve()
    manifest = folder / MANIFEST
    if manifest.exists() and not overwrite:
        raise CosimError("already holds a sweep; pass --overwrite to replace its variants, "
                         "or choose another --out", file=str(folder))
    combos = grid(params)
    # Every key is checked on the base before any file is written.
    for p in params:
        try:
            set_key(copy.deepcopy(base), p.key, p.values[0])
        except CosimError as exc:
            raise exc.at(file=str(src)) from None
    created_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    base = absolutize_paths(base, src.resolve().parent)
    variants: list[Variant] = []
    try:
        for i, values in enumerate(combos):
            variants.append(_write_variant(src, base, folder, i, values, len(combos)))
            if validate:
                _validate(variants[-1], src, params)
    except BaseException:
        # leave no half-written sweep behind
        for v in variants:
            v.scenario.unlink(missing_ok=True)
        if created_folder:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    manifest.write_text(json.dumps({
        "scenario": str(src.resolve()),
        "params": [{"key": p.key, "values": list(p.values)} for p in params],
        "variants": [{"index": v.index, "name": v.name, "values": v.values,
                      "scenario": str(v.scenario), "output": str(v.output)} for v in variants],
    }, indent=1) + "\n", encoding="utf-8")
    return variants


def _write_variant(src: Path, base: dict, folder: Path, index: int, values: dict,
                   n: int) -> Variant:
    name = variant_name(index, n, values)
    data = copy.deepcopy(base)
    for k, v in values.items():
        set_key(data, k, v)
    out = folder / f"{name}.h5"
    data.setdefault("simulation", {})["output"] = str(out)
    path = folder / f"{name}.toml"
    header = (f"Variant {index} of a sweep over {src.resolve()}\n"
              + "\n".join(f"{k} = {value(v)}" for k, v in values.items())
              + "\nWritten by `cosim sweep`; comments of the original are not copied.")
    path.write_text(dumps(data, header=header), encoding="utf-8")
    return Variant(index, name, values, path, out)


def _validate(v: Variant, src: Path, params: Sequence[Param]) -> None:
    from .scenario import load_scenario

    try:
        load_scenario(v.scenario)
    except CosimError as exc:
        p = _locate(exc, params)
        shown = ", ".join(f"{k}={_format(x)}" for k, x in v.values.items())
        if p is not None and exc.key == p.key:
            reason = f"{exc.reason} (variant {shown})"
        else:
            reason = f"{exc.key + ': ' if exc.key else ''}{exc.reason} (variant {shown})"
        raise CosimError(reason, file=str(src), key=f"--param {p.key}" if p else None) from None


def load_manifest(path: str | Path) -> list[Variant]:
    """The variants listed in a sweep folder's ``sweep.json`` (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return [Variant(int(v["index"]), v["name"], dict(v["values"]), Path(v["scenario"]),
                        Path(v["output"])) for v in data["variants"]]
    except FileNotFoundError:
        raise CosimError("no such sweep manifest", file=str(p)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CosimError(f"not a cosim sweep manifest ({exc})", file=str(p)) from None


@dataclass
class VariantResult:
    index: int
    ok: bool
    message: str
    exit_code: int = 0


def run_variants(variants: Sequence[Variant], *, overwrite: bool = False,
                 stream: TextIO | None = None, progress: TextIO | None = None,
                 prefix: str = "") -> list[VariantResult]:
    """Run variants one after another in this process (the single-process runner).

    One line per variant goes to ``stream`` (default: standard output); ``progress`` gets
    each run's progress lines (default: none).  A variant that fails (bad input or an exception) is reported and the next one runs;
    the results say which failed (``exit_code`` 2 for a CosimError, 1 otherwise).
    """
    from .runtime import run_scenario
    from .scenario import load_scenario

    stream = sys.stdout if stream is None else stream
    results = []
    n = len(variants)
    for j, v in enumerate(variants):
        tic = time.perf_counter()
        try:
            sc = load_scenario(v.scenario)
            summary = run_scenario(sc, output=v.output, overwrite=overwrite,
                                   progress_stream=progress)
            msg = f"wrote {summary.output} in {time.perf_counter() - tic:.1f} s"
            res = VariantResult(v.index, True, msg)
        except CosimError as exc:
            res = VariantResult(v.index, False, exc.message(), 2)
        except Exception as exc:  # one broken variant must not stop the others
            res = VariantResult(v.index, False, f"{type(exc).__name__}: {exc}", 1)
        results.append(res)
        state = "" if res.ok else "FAILED: "
        print(f"{prefix}[{j + 1}/{n}] variant {v.name}: {state}{res.message}", file=stream,
              flush=True)
    return results


def array_script(variants: Sequence[Variant], opts, *, overwrite: bool = False,
                 script_name: str = "SCRIPT", max_parallel: int | None = None) -> str:
    """A SLURM job-array script: task ``$SLURM_ARRAY_TASK_ID`` runs that variant."""
    import shlex

    from .plan import make_plan
    from .scenario import load_scenario
    from .slurm import render, run_command

    if not variants:
        raise CosimError("no variants to run")
    if max_parallel is not None and max_parallel < 1:
        raise CosimError(f"must be ≥ 1, got {max_parallel}", key="--max-parallel")
    opts.array = f"0-{len(variants) - 1}" + (f"%{max_parallel}" if max_parallel else "")
    plan = make_plan(load_scenario(variants[0].scenario), opts.ntasks)
    lines = [f"variants: {variants[0].scenario.parent}/{MANIFEST}"] + list(plan.describe())
    entries = "\n".join(f"  {shlex.quote(str(v.scenario))}" for v in variants)
    extra = ["--overwrite"] if overwrite else []
    body = (f"VARIANTS=(\n{entries}\n)\n"
            'SCENARIO="${VARIANTS[$SLURM_ARRAY_TASK_ID]}"\n'
            'echo "cosim sweep: task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID} on '
            '${SLURM_JOB_NODELIST}: ${SCENARIO}, started $(date -Is)"\n'
            + run_command(opts, '"$SCENARIO"', extra) + "\n")
    return render(opts, title=f"cosim sweep over {len(variants)} variants",
                  plan_lines=lines, body=body, script_name=script_name, command="sweep --slurm",
                  plan_title=f"Job array of {len(variants)} tasks, one variant each; plan of a "
                             f"task ({opts.ntasks} process{'es' if opts.ntasks > 1 else ''}):")
