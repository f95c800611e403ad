"""Reading the monitors TVB users expect from ``[record.<engine>.<monitor>]`` tables::

    [record.cortex.meg]             # MEG (tvb-data's 276-channel CTF system by default)
    variable = "y1"                 # source signal: the model's EEG observable by default
    subtract = "y2"                 #   (jansen_rit: y1 - y2); "" for none
    period = 1.0                    # ms, optional block average
    sensors = "tvb:meg_brainstorm_276.txt"
    projection = "tvb:projection_meg_276_surface_16k.npy"   # (sensor, vertex)
    region_mapping = "tvb:regionMapping_16k_76.txt"         # default for connectivity_76

    [record.cortex.seeg]            # SEEG: tvb-data's 588 contacts, analytic lead field
    sensors = "tvb:seeg_588.txt"    #   of the surface "tvb:cortex_16384.zip" (sigma = 1),
                                    #   or projection = "…" (sensor, vertex)

    [record.cortex.global_average]  # mean over the engine's regions
    [record.cortex.spatial_average]
    groups = {left = ["lA1", "lA2"], right = ["rA1", "rA2"]}  # or mapping = [0, 0, 1, …]
    period = 1.0                    # ms: sample every period (TVB subsamples)

    [record.cortex.expression]
    expression = "y1 - y2"          # or {pyr = "y1 - y2", drive = "exp(-y0)"}

    [record.cortex.afferent_coupling]   # the coupling input each region receives
    period = 1.0                    # ms, optional block average

    [record.cortex.bold]
    hrf = "first_order_volterra"    # TVB's Bold monitor (also gamma, double_exponential,
    input = "y0"                    #   mixture_of_gammas); default "balloon"

Paths are relative to the scenario file's folder; ``tvb:<file>`` is a file of the installed
tvb-data package.  Declarations: :mod:`cosim.monitor_params`.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import monitor_params as mp
from . import sensors as sn
from .engines.base import RecordSpec
from .errors import CosimError
from .expression import Expression, ExpressionError
from .monitors import EegMonitor, Monitor, Signal, difference_signal, variable_signal
from .monitors_tvb import (ExpressionMonitor, SpatialAverageMonitor, VolterraBoldMonitor)
from .schema import Reader


def _base_dir(r: Reader) -> Path:
    return Path(r.file).parent if r.file else Path(".")


def _guard(r: Reader, key: str | None, fn):
    try:
        return fn()
    except ExpressionError as exc:
        raise r.error(key, str(exc)) from None
    except (ValueError, KeyError) as exc:
        raise r.error(key, exc.args[0] if exc.args else str(exc)) from None


def source_signal(r: Reader, source: RecordSpec, eeg_observable) -> Signal:
    """The source signal of a projection monitor: ``variable − subtract`` with the model's
    EEG observable as default (Jansen–Rit y1 − y2)."""
    obs = eeg_observable
    plus = r.param(mp.SOURCE_VARIABLE.with_(default=obs.variables[0]) if obs
                   else mp.SOURCE_VARIABLE)
    if plus is None:
        raise r.error("variable", "missing required key (the model declares no EEG "
                                  "observable)")
    minus = r.param(mp.SOURCE_SUBTRACT.with_(
        default=obs.variables[1] if obs and len(obs.variables) > 1 else ""))
    return _guard(r, "variable", lambda: (difference_signal(source, plus, minus) if minus
                                         else variable_signal(source, plus)))


@lru_cache(maxsize=2)     # (588, 16384) float64 = 77 MB each
def _seeg_vertex_gain(sensors_path: str, surface_path: str, sigma: float):
    sens = sn.read_sensors(Path(sensors_path))
    verts, normals = sn.read_surface(Path(surface_path))
    return sens, sn.dipole_gain(sens.locations, verts, normals, sigma)


def projection_monitor(table: str, r: Reader, source: RecordSpec, eeg_observable,
                       region_labels) -> Monitor:
    """``[record.<engine>.meg]`` / ``[record.<engine>.seeg]``."""
    decl = mp.MONITORS[table]
    sig = source_signal(r, source, eeg_observable)
    period = r.param(decl["period"])
    unit = r.param(decl["unit"])
    base, file = _base_dir(r), r.file
    labels = list(region_labels) if region_labels is not None else list(source.regions)
    sens_name = r.param(decl["sensors"])
    sens_path = sn.resolve(sens_name, base, file, r.key("sensors"))
    proj_name = r.param(decl["projection"])
    if table == "seeg" and proj_name is None:
        surf_name = r.param(mp.SEEG_SURFACE)
        sigma = r.param(mp.SEEG_SIGMA)
        surf_path = sn.resolve(surf_name, base, file, r.key("surface"))
        try:
            sens, vgain = _seeg_vertex_gain(str(sens_path), str(surf_path), float(sigma))
        except CosimError as exc:
            raise r.error("surface" if Path(exc.file or "") == surf_path else "sensors",
                          exc.reason) from None
        how = f"point dipoles of {surf_name} (sigma = {sigma:g}), {sens_name}"
    else:
        if table == "seeg":
            r.param(mp.SEEG_SURFACE)            # read (unused with a projection file)
            r.param(mp.SEEG_SIGMA)
        sens = sn.read_sensors(sens_path, file, r.key("sensors"))
        vgain = sn.read_projection(sn.resolve(proj_name, base, file, r.key("projection")),
                                   file, r.key("projection"))
        how = f"{proj_name}, {sens_name}"
    rm_name = r.param(mp.PROJ_REGION_MAPPING) or sn.default_region_mapping(labels)
    if rm_name is None:
        raise r.error("region_mapping", "missing: the connectome is not tvb-data's "
                                        "connectivity_76 or _192; give the vertex -> region "
                                        "file of its regions")
    rmap = sn.read_region_mapping(sn.resolve(rm_name, base, file, r.key("region_mapping")),
                                  file, r.key("region_mapping"))
    lf = sn.region_leadfield(vgain, sens, rmap, labels, source.regions,
                             source=f"{how}, {rm_name}",
                             fail=lambda key, reason: r.error(key, reason))
    mon = _guard(r, "period", lambda: EegMonitor(source, sig, leadfield=lf.gain,
                                                 sensors=list(lf.sensors), period_ms=period,
                                                 unit=unit or "a.u.", dataset=table))
    mon.kind = table
    mon.spec = replace(mon.spec, variables=(table,), attrs={
        **mon.spec.attrs, "monitor": table, "leadfield": lf.source,
        "leadfield_rule": "sum of the vertex columns of each region (TVB)"})
    return mon


def _mapping_groups(r: Reader, source: RecordSpec, region_labels) -> list:
    value = r.param(mp.SPATIAL_MAPPING)
    if isinstance(value, str):
        p = sn.resolve(value, _base_dir(r), r.file, r.key("mapping"))
        try:
            value = np.loadtxt(p, ndmin=1).tolist()
        except (OSError, ValueError) as exc:
            raise r.error("mapping", f"cannot read {value}: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not
                                              isinstance(v, bool) for v in value):
        raise r.error("mapping", "must be an array of group indices (one per region) or a "
                                 "file of them")
    m = np.asarray(value, dtype=np.float64)
    if not np.all(m == np.rint(m)) or (m.size and m.min() < 0):
        raise r.error("mapping", "group indices must be integers >= 0")
    m = m.astype(np.int64)
    n = len(source.regions)
    if m.size == n:
        mine = m
    elif region_labels is not None and m.size == len(region_labels):
        labels = list(region_labels)
        mine = m[[labels.index(g) for g in source.regions]]
    else:
        total = f" or {len(region_labels)} (all connectome regions)" if region_labels else ""
        raise r.error("mapping", f"has {m.size} entries; expected {n} (the engine's "
                                 f"regions){total}")
    present = np.unique(mine)
    if m.size == n and not np.array_equal(present, np.arange(present.size)):
        raise r.error("mapping", "group indices must be contiguous from 0 (TVB's "
                                 "spatial_mask)")
    names = r.param(mp.SPATIAL_NAMES)
    n_groups = int(m.max()) + 1
    if names is not None and len(names) != n_groups:
        raise r.error("names", f"{len(names)} names for {n_groups} groups")
    names = names or [f"group{g}" for g in range(n_groups)]
    return [(names[g], np.flatnonzero(mine == g)) for g in present.tolist()]


def _named_groups(r: Reader, source: RecordSpec) -> list:
    groups = r.param(mp.SPATIAL_GROUPS).raw
    out = []
    for name, members in groups.items():
        key = f"groups.{name}"
        if isinstance(members, str):
            members = [members]
        if not isinstance(members, list) or not members or not all(
                isinstance(m, str) for m in members):
            raise r.error(key, "must be a non-empty array of region labels")
        idx = []
        for m in members:
            if m not in source.regions:
                raise r.error(key, f"region {m!r} is not a region of this engine")
            idx.append(source.regions.index(m))
        out.append((str(name), idx))
    if not out:
        raise r.error("groups", "no group")
    return out


def tvb_monitor(table: str, r: Reader, source: RecordSpec, model_eeg, region_labels,
                coupling_spec: RecordSpec | None = None) -> Monitor:
    """The monitor of table ``table`` (one of meg, seeg, global_average, spatial_average,
    expression, afferent_coupling); ``source``: the dataset it reads."""
    if table in ("meg", "seeg"):
        return projection_monitor(table, r, source, model_eeg, region_labels)
    if table == "global_average":
        variables = r.param(mp.VARIABLES)
        period = r.param(mp.SAMPLE_PERIOD)
        return _guard(r, "period", lambda: SpatialAverageMonitor.global_average(
            source, variables=variables, period_ms=period))
    if table == "spatial_average":
        if r.has("groups") == r.has("mapping"):
            raise r.error(None, "give either groups = {name = [labels]} or mapping = [...]")
        groups = (_named_groups(r, source) if r.has("groups")
                  else _mapping_groups(r, source, region_labels))
        variables = r.param(mp.VARIABLES)
        period = r.param(mp.SAMPLE_PERIOD)
        return _guard(r, "period", lambda: SpatialAverageMonitor(
            source, groups, variables=variables, period_ms=period))
    if table == "expression":
        value = r.param(mp.EXPRESSION)
        name = r.param(mp.EXPRESSION_NAME)
        unit = r.param(mp.EXPRESSION_UNIT)
        period = r.param(mp.EXPRESSION_SECTION["period"])
        if isinstance(value, str):
            exprs = {name or value.strip(): value}
        elif isinstance(value, dict) and value and all(isinstance(v, str)
                                                       for v in value.values()):
            if name is not None:
                raise r.error("name", "names a single expression; the table names its own")
            exprs = dict(value)
        else:
            raise r.error("expression", "must be an expression string or a table "
                                        "{name = \"expression\"}")
        for n, text in exprs.items():
            try:
                Expression(text, source.variables)
            except ExpressionError as exc:
                key = "expression" if isinstance(value, str) else f"expression.{n}"
                raise r.error(key, str(exc)) from None
        units = {n: unit for n in exprs} if unit else None
        return _guard(r, "period", lambda: ExpressionMonitor(source, exprs, units=units,
                                                             period_ms=period))
    if table == "afferent_coupling":
        from .monitors import AverageMonitor
        variables = r.param(mp.AFFERENT_VARIABLES)
        period = r.param(mp.AFFERENT_PERIOD)
        spec = coupling_spec
        return _guard(r, "variables" if period is None else "period", lambda: AverageMonitor(
            spec, period if period is not None else spec.period_ms, mode="average",
            variables=variables, dataset="afferent_coupling"))
    raise KeyError(table)  # pragma: no cover


def kernel_bold(r: Reader, source: RecordSpec, sig: Signal, hrf: str, tr: float, scale: float,
                offset: float) -> Monitor:
    """``[record.<engine>.bold] hrf = "<kernel>"``: :class:`VolterraBoldMonitor`."""
    step = r.param(mp.BOLD_STEP.with_(default=None))
    step = mp.BOLD_KERNEL_STEP if step is None else step
    if step <= 0:
        raise r.error("step", "must be > 0 with a kernel")
    length = r.param(mp.BOLD_LENGTH)
    from .analysis.hrf import KERNELS
    kernel = KERNELS[hrf]
    values = {}
    for p in mp.BOLD_KERNEL_PARAMS:
        v = r.param(p)
        if v is None:
            continue
        if p.name not in [q.name for q in kernel.parameters]:
            raise r.error(p.name, f"is not a parameter of hrf = {hrf!r} (its parameters: "
                                  f"{', '.join(q.name for q in kernel.parameters)})")
        q = next(q for q in kernel.parameters if q.name == p.name)
        bad = q.violation(v)
        if bad:
            raise r.error(p.name, bad)
        values[p.name] = v
    from .monitors import whole_ratio
    if whole_ratio(step, source.period_ms) is None:
        raise r.error("step", f"{step:g} ms is not a whole multiple of the record period "
                              f"{source.period_ms:g} ms")
    return _guard(r, "tr", lambda: VolterraBoldMonitor(
        source, sig, kernel=hrf, kernel_parameters=values, tr_ms=tr, step_ms=step,
        length_ms=length, scale=scale, offset=offset))
