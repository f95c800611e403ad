"""``cosim export OUTPUT.h5``: a run's output in the formats other tools read.

NWB (:func:`export_nwb`, needs ``pynwb``: ``pip install pynwb``, or the ``export`` extra)
    * spikes → the ``units`` table: one row per cell of every SONATA population, columns
      ``population`` (``<engine>.<group>``), ``engine``, ``group``, ``node_id`` (index in the
      group) and ``spike_times`` in **seconds** (NWB's time unit; cosim stores ms); the
      table's ``resolution`` is the engines' time step (s);
    * region time series of the engines → ``acquisition``, monitor outputs (rate, EEG,
      BOLD, averages) → the processing module ``misc``; one ``TimeSeries`` per
      (engine, dataset, variable) named ``<engine>_<dataset>_<variable>``, data ``(time,
      region)`` in the recorded unit, ``starting_time`` (s) and ``rate`` (Hz), the region
      names in ``comments`` and in a ``regions`` table of ``misc``;
    * stimuli (``/stimuli/<name>``) → ``stimulus/<name>``: the temporal pattern as applied,
      a regular ``TimeSeries`` (start and rate from the engine's stimulus times); the
      spatial pattern → the table ``misc/stimulus_<name>_targets`` (target, weight);
    * the scenario text → ``source_script`` (file name ``source_script_file_name``), seed,
      status and versions → ``notes`` (JSON); session start = the run's creation time.

TVB H5 (:func:`export_tvb`, plain h5py; tvb-library reads the result)
    * ``Connectivity.h5``: ``weights``, ``tract_lengths`` (mm), ``region_labels``,
      ``centres`` (mm), ``hemispheres`` (bool, True = right: from the labels' l/r prefix or
      the centre's x > 0), ``cortical``, ``areas``, the run's conduction speed — the fields ``tvb.datatypes.connectivity.Connectivity
      .from_file`` reads;
    * ``TimeSeriesRegion_<engine>_<dataset>.h5`` per region time series whose regions are
      connectome regions: ``data`` ``(time, state variable, region, mode = 1)``, ``time``
      (ms), and TVB's ``TVB_*`` metadata attributes (sample period in ms, labels ordering,
      labels dimensions, the connectivity's gid).

Problems (not a cosim file, missing optional package) raise :class:`CosimError`.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from pathlib import Path

import h5py
import numpy as np

from .analysis.io import Output, Series
from .errors import CosimError

def _is_monitor(s: Series) -> bool:
    return "monitor" in s.attrs


def _require(module: str, extra: str = "export"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise CosimError(f"{module} is not installed: pip install {module} (or the "
                         f"{extra!r} extra of cosim)") from None


def _start_time(out: Output) -> _dt.datetime:
    created = out.attrs.get("created")
    try:
        t = _dt.datetime.fromisoformat(str(created))
    except (TypeError, ValueError):
        t = _dt.datetime(1970, 1, 1)
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _text(out: Output) -> str:
    if "scenario" not in out.f:
        return ""
    v = out.f["scenario"][()]
    return v.decode() if isinstance(v, bytes) else str(v)


def _check_target(source: str | Path, target: Path, overwrite: bool) -> None:
    """Refuse to write over the output being exported, or over an existing file unless
    ``overwrite``."""
    target = Path(target)
    if target.exists() and Path(source).exists() and target.resolve() == Path(source).resolve():
        raise CosimError("is the file being exported; choose another output", file=str(target))
    if target.exists() and not overwrite:
        raise CosimError(f"exists; pass --overwrite to replace it (it is {target.absolute()})",
                         file=str(target))


def export_nwb(path: str | Path, nwb_path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``path`` (a cosim output) as an NWB file at ``nwb_path`` (see module docstring)."""
    pynwb = _require("pynwb")
    from hdmf.common import DynamicTable, VectorData

    nwb_path = Path(nwb_path)
    _check_target(path, nwb_path, overwrite)
    with Output(path) as out:
        a = out.attrs
        meta = {"seed": int(a.get("seed", 0)), "status": str(a.get("status", "")),
                "duration_ms": float(a.get("duration_ms", np.nan)),
                "sync_interval_ms": float(a.get("sync_interval_ms", np.nan)),
                "versions": {k: str(v) for k, v in out.f["provenance"].attrs.items()}
                if "provenance" in out.f else {}}
        scen_file = str(a.get("scenario_file", "scenario.toml"))
        nwb = pynwb.NWBFile(
            session_description=f"cosim simulation of {Path(scen_file).name}",
            identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"cosim:{Path(path).resolve()}:"
                                                          f"{a.get('created', '')}")),
            session_start_time=_start_time(out),
            source_script=_text(out), source_script_file_name=Path(scen_file).name,
            notes=json.dumps(meta), experiment_description="simulated data (cosim)",
            keywords=["simulation", "co-simulation", "cosim"])
        nwb.subject = pynwb.file.Subject(subject_id="model", sex="U",
                                         description="a simulated brain (cosim scenario "
                                                     f"{Path(scen_file).name})")
        spikes = out.spikes()
        if spikes:
            res = [sp.resolution_ms for sp in spikes if sp.resolution_ms]
            nwb.units = pynwb.misc.Units(name="units", description="cells of the spiking engines",
                                         resolution=min(res) / 1000.0 if res else -1.0)
            nwb.add_unit_column("population", "SONATA population <engine>.<group>")
            nwb.add_unit_column("engine", "cosim engine")
            nwb.add_unit_column("group", "cell group of the engine")
            nwb.add_unit_column("node_id", "index of the cell in its group (SONATA node id)")
            for sp in spikes:
                n = sp.n_cells
                order = np.argsort(sp.node_ids, kind="stable")
                ids, ts = sp.node_ids[order], sp.timestamps_ms[order] / 1000.0
                cuts = np.searchsorted(ids, np.arange(n + 1))
                for k in range(n):
                    nwb.add_unit(spike_times=np.sort(ts[cuts[k]:cuts[k + 1]]),
                                 population=sp.population, engine=sp.engine, group=sp.group,
                                 node_id=k)
        labels = out.region_labels()
        mod = nwb.create_processing_module("misc", "cosim: connectome region table and "
                                                   "monitor outputs (rates, EEG, BOLD, averages)")
        if labels:
            mod.add(DynamicTable(name="regions", description="connectome regions (row = index)",
                                 columns=[VectorData(name="label", description="region label",
                                                     data=list(labels))]))
        for s in out.all_series():
            if s.data.shape[0] == 0:
                continue
            for i, (var, unit) in enumerate(zip(s.variables, s.units)):
                ts = pynwb.TimeSeries(
                    name=f"{s.engine}_{s.dataset}_{var}", data=np.ascontiguousarray(s.data[:, i, :]),
                    unit=unit or "n.a.", starting_time=float(s.time_ms[0]) / 1000.0,
                    rate=1000.0 / s.period_ms,
                    description=f"cosim engine {s.engine}, dataset {s.dataset}, variable {var}; "
                                f"axes (time, region)",
                    comments="regions: " + ", ".join(s.regions))
                if _is_monitor(s):
                    mod.add(ts)
                else:
                    nwb.add_acquisition(ts)
        _nwb_stimuli(out.f, nwb, mod, pynwb, DynamicTable, VectorData)
    nwb_path.parent.mkdir(parents=True, exist_ok=True)
    with pynwb.NWBHDF5IO(str(nwb_path), "w") as io:
        io.write(nwb)
    return nwb_path


def _nwb_stimuli(f, nwb, mod, pynwb, DynamicTable, VectorData) -> None:
    """``/stimuli/<name>`` → ``stimulus/<name>``: the temporal pattern as applied (a regular
    ``TimeSeries``) and its spatial pattern as the table ``misc/stimulus_<name>_targets``
    (target label, weight); target j received ``weight_j · data``."""
    if "stimuli" not in f:
        return
    for name, g in f["stimuli"].items():
        a = dict(g.attrs)
        values, t = g["values"][()], g["time_ms"][()]
        if values.size == 0:
            continue
        targets = [str(x) for x in a.get("targets", [])]
        weights = g["weights"][()]
        dt = float(a.get("dt_ms", np.nan))
        params = ", ".join(f"{k[len('pattern_'):]} = {a[k]}" for k in sorted(a)
                           if k.startswith("pattern_"))
        nwb.add_stimulus(pynwb.TimeSeries(
            name=name, data=values, unit=str(a.get("unit", "")) or "n.a.",
            starting_time=float(t[0]) / 1000.0, rate=1000.0 / dt,
            description=(f"cosim stimulus {name}: {a.get('pattern', '')} ({params}) on engine "
                         f"{a.get('engine', '')}, target {a.get('target', '')}; target j "
                         f"receives weight_j * data (table misc/stimulus_{name}_targets); "
                         f"{a.get('time_rule', '')}"),
            comments="targets: " + ", ".join(targets)))
        mod.add(DynamicTable(
            name=f"stimulus_{name}_targets",
            description=f"spatial pattern of stimulus {name} (row = target)",
            columns=[VectorData(name="target", description="region, cell or input group",
                                data=targets),
                     VectorData(name="weight", description="factor on the stimulus",
                                data=np.asarray(weights, dtype=np.float64))]))


# -- TVB -----------------------------------------------------------------------------------

def _hemispheres(labels, centres) -> np.ndarray:
    """Right hemisphere (TVB's convention: True = right) from the label
    (:func:`cosim.region_names.normalise`: ``rV1``, ``V1_right``, ``rh-V1``…), else the
    centre's x > 0, else False."""
    from .region_names import normalise

    out = np.zeros(len(labels), dtype=bool)
    for i, lab in enumerate(labels):
        hemi = normalise(lab)[0]
        if hemi:
            out[i] = hemi == "r"
        elif centres is not None:
            out[i] = centres[i, 0] > 0
    return out


def _tvb_attrs(target, type_name: str, h5_class: str, gid: str, extra: dict) -> None:
    target.attrs.update({"TVB_gid": gid, "TVB_written_by": h5_class,
                         "TVB_type": type_name,
                         "TVB_create_date": _dt.datetime.now().strftime("%m-%d-%Y %H:%M:%S.%f"),
                         "TVB_invalid": False, "TVB_is_nan": False, "TVB_visible": True,
                         "TVB_subject": "simulated (cosim)", "TVB_state": "RAW_DATA",
                         **{f"TVB_{k}": v for k, v in extra.items()}})


def export_tvb(path: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``Connectivity.h5`` and one ``TimeSeriesRegion_*.h5`` per region time series
    of ``path`` into ``out_dir``; return the paths (see module docstring)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CosimError("exists and is not a folder", file=str(out_dir))
    written = []
    with Output(path) as out:
        targets = [out_dir / "Connectivity.h5"] + [
            out_dir / f"TimeSeriesRegion_{s.engine}_{s.dataset}.h5" for s in out.all_series()]
        for t in targets:
            _check_target(path, t, overwrite)
        out_dir.mkdir(parents=True, exist_ok=True)
        labels = out.region_labels()
        if not labels or out.weights() is None:
            raise CosimError("the file has no connectome to export", file=str(path))
        g = out.f["connectome"]
        centres = g["centres_mm"][()] if "centres_mm" in g else None
        n = len(labels)
        conn_gid = uuid.uuid4().urn
        # conduction speed (mm/ms) the run used, as its engines recorded it
        speed = next((float(s.attrs["speed_mm_per_ms"]) for s in out.all_series()
                      if "speed_mm_per_ms" in s.attrs), None)
        cp = out_dir / "Connectivity.h5"
        with h5py.File(cp, "w") as f:
            f.create_dataset("weights", data=g["weights"][()])
            f.create_dataset("tract_lengths", data=g["tract_lengths_mm"][()])
            f.create_dataset("region_labels", data=np.array([s.encode() for s in labels]))
            f.create_dataset("centres", data=centres if centres is not None else np.zeros((n, 3)))
            f.create_dataset("hemispheres", data=_hemispheres(labels, centres))
            f.create_dataset("cortical", data=np.ones(n, dtype=bool))
            f.create_dataset("areas", data=np.zeros(n))
            _tvb_attrs(f, "tvb.datatypes.connectivity.Connectivity",
                       "tvb.adapters.datatypes.h5.connectivity_h5.ConnectivityH5", conn_gid,
                       {"number_of_regions": n, "number_of_connections":
                        int(np.count_nonzero(g["weights"][()])), "undirected": False,
                        **({"speed": speed} if speed is not None else {})})
        written.append(cp)
        for s in out.all_series():
            if s.attrs.get("channels") == "sensors" or not s.regions or \
                    not all(r in labels for r in s.regions) or s.data.shape[0] == 0:
                continue
            tp = out_dir / f"TimeSeriesRegion_{s.engine}_{s.dataset}.h5"
            with h5py.File(tp, "w") as f:
                f.create_dataset("data", data=s.data[:, :, :, None])
                f.create_dataset("time", data=s.time_ms)
                f.create_dataset("region_indices",
                                 data=np.array([labels.index(r) for r in s.regions]))
                dims = {"State Variable": list(s.variables), "Region": list(s.regions)}
                _tvb_attrs(f, "tvb.datatypes.time_series.TimeSeriesRegion",
                           "tvb.adapters.datatypes.h5.time_series_h5.TimeSeriesRegionH5",
                           uuid.uuid4().urn,
                           {"title": f"cosim {s.engine}/{s.dataset}", "sample_period": s.period_ms,
                            "sample_period_unit": "ms", "sample_rate": 1000.0 / s.period_ms,
                            "start_time": float(s.time_ms[0]), "nr_dimensions": 4,
                            "labels_ordering": json.dumps(["Time", "State Variable", "Region",
                                                           "Mode"]),
                            "labels_dimensions": json.dumps(dims), "connectivity": conn_gid,
                            "units": json.dumps(list(s.units))})
            written.append(tp)
    return written
