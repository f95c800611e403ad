"""Loading a run's output into the objects analysis libraries use.

``spiketrains(file)``
    one ``neo.SpikeTrain`` per cell of every SONATA population (ms; ``t_stop`` the run's
    simulated time), annotated ``population`` (``<engine>.<group>``), ``engine``,
    ``group``, ``node_id`` — ready for Elephant.  Needs ``neo`` (``pip install neo``).
``timeseries(file, engine, dataset=None)``
    a region time series ``(time, variable, region)`` with its coordinates: an
    ``xarray.DataArray`` when xarray is installed, else a :class:`Labelled` numpy view.
    Rates and averages are means over a bin stamped at its end; their ``bin_start_ms``
    coordinate is the bin's start (where Elephant's ``time_histogram`` stamps a bin).

Both raise :class:`~cosim.errors.CosimError` for a file that is not a cosim output, a missing
engine or dataset, or a missing optional package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis.io import Output
from .errors import CosimError


def spiketrains(path: str | Path, population: str | None = None) -> list:
    """``neo.SpikeTrain`` per cell (silent cells included: empty trains), in population and
    node-id order; ``population`` selects one ``<engine>.<group>``."""
    try:
        import neo
        import quantities as pq
    except ImportError:
        raise CosimError("cosim.io.spiketrains needs neo; pip install neo") from None
    out_trains = []
    with Output(path) as out:
        t_stop = float(out.attrs.get("t_completed_ms", out.attrs.get("duration_ms", 0.0)))
        pops = out.spikes()
        if population is not None:
            pops = [p for p in pops if p.population == population]
            if not pops:
                have = ", ".join(p.population for p in out.spikes()) or "none"
                raise CosimError(f"no spike population {population!r} (have: {have})",
                                 file=str(path))
        for sp in pops:
            n = sp.n_cells
            order = np.argsort(sp.node_ids, kind="stable")
            ids, ts = sp.node_ids[order], sp.timestamps_ms[order]
            cuts = np.searchsorted(ids, np.arange(n + 1))
            stop = max(t_stop, float(ts.max(initial=0.0)))
            for k in range(n):
                st = neo.SpikeTrain(np.sort(ts[cuts[k]:cuts[k + 1]]) * pq.ms, t_start=0.0 * pq.ms,
                                    t_stop=stop * pq.ms, name=f"{sp.population}[{k}]")
                st.annotate(population=sp.population, engine=sp.engine, group=sp.group,
                            node_id=k, gid=sp.first_gid + k)
                out_trains.append(st)
    return out_trains


@dataclass
class Labelled:
    """A small labelled array (xarray's ``DataArray`` when that is not installed):
    ``values`` with ``dims`` and a coordinate array per dim in ``coords``."""

    values: np.ndarray
    dims: tuple[str, ...]
    coords: dict[str, np.ndarray]
    attrs: dict = field(default_factory=dict)

    def sel(self, **which) -> "Labelled":
        """Select by coordinate label: ``sel(variable="y1", region="lM1")`` (drops the dim)."""
        values, dims, coords = self.values, list(self.dims), dict(self.coords)
        for dim, label in which.items():
            if dim not in dims:
                raise KeyError(f"no dimension {dim!r}; have {dims}")
            axis = dims.index(dim)
            hits = np.flatnonzero(np.asarray(coords[dim]) == label)
            if not hits.size:
                raise KeyError(f"{dim} {label!r} not found")
            values = np.take(values, hits[0], axis=axis)
            dims.pop(axis)
            coords.pop(dim)
        return Labelled(values, tuple(dims), coords, self.attrs)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape


def timeseries(path: str | Path, engine: str, dataset: str | None = None):
    """The region time series ``dataset`` (default: the engine's own samples, else its first
    monitor) of ``engine`` with
    dims ``("time", "variable", "region")``; time in ms; attrs ``units`` (per variable),
    ``period_ms``, ``engine``, ``dataset``."""
    with Output(path) as out:
        if engine not in out.engines():
            raise CosimError(f"no engine {engine!r} (have: {', '.join(out.engines())})",
                             file=str(path))
        names = out.datasets(engine)
        if dataset is None:
            if not names:
                raise CosimError(f"engine {engine!r} recorded no region time series",
                                 file=str(path))
            own = [n for n in names if "monitor" not in out.f[f"engines/{engine}/{n}"].attrs]
            dataset = (own or names)[0]
        elif dataset not in names:
            raise CosimError(f"engine {engine!r} has no dataset {dataset!r} (have: "
                             f"{', '.join(names)})", file=str(path))
        s = out.series(engine, dataset)
        b_key = f"engines/{engine}/{dataset}_bin_start_ms"
        bin_start = out.f[b_key][()] if b_key in out.f else None
    coords = {"time": s.time_ms, "variable": np.array(s.variables), "region": np.array(s.regions)}
    attrs = {"units": list(s.units), "period_ms": s.period_ms, "engine": engine,
             "dataset": dataset, "time_unit": "ms"}
    if bin_start is not None:             # binned samples: time = bin end, bin_start = start
        attrs["time_stamps"] = "end of each bin (the bin is (bin_start_ms, time])"
        coords["bin_start_ms"] = bin_start
    try:
        import xarray
    except ImportError:
        return Labelled(s.data, ("time", "variable", "region"), coords, attrs)
    if bin_start is not None:
        coords["bin_start_ms"] = ("time", bin_start)
    return xarray.DataArray(s.data, dims=("time", "variable", "region"), coords=coords,
                            attrs=attrs, name=f"{engine}/{dataset}")
