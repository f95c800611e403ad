"""Reading a run's HDF5 output (layout: :mod:`cosim.recording`) for analysis and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import CosimError


def _strs(values) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


@dataclass
class Series:
    """One region time series: ``data (time, variable, region)`` sampled at ``time_ms``."""

    engine: str
    dataset: str
    data: np.ndarray
    time_ms: np.ndarray
    variables: tuple[str, ...]
    units: tuple[str, ...]
    regions: tuple[str, ...]
    period_ms: float
    attrs: dict = field(default_factory=dict)

    def variable(self, name: str | None = None) -> np.ndarray:
        """``(time, region)`` of variable ``name`` (default: the first)."""
        i = 0 if name is None else self.variables.index(name)
        return self.data[:, i, :]

    def unit(self, name: str | None = None) -> str:
        return self.units[0 if name is None else self.variables.index(name)]

    def after(self, t_ms: float) -> "Series":
        """The samples at times > ``t_ms`` (discard a transient)."""
        keep = self.time_ms > t_ms
        return Series(self.engine, self.dataset, self.data[keep], self.time_ms[keep],
                      self.variables, self.units, self.regions, self.period_ms, self.attrs)


@dataclass
class Spikes:
    """Spikes of one SONATA population (``/spikes/<engine>.<group>``): times (ms) and node
    ids (0 … ``n_nodes`` − 1 within the group; the engine's gid is ``first_gid + node_id``)."""

    population: str
    timestamps_ms: np.ndarray
    node_ids: np.ndarray
    engine: str = ""
    group: str = ""
    first_gid: int = 0
    n_nodes: int | None = None
    resolution_ms: float = 0.0          # the engine's time step (0: unknown)

    @property
    def n_cells(self) -> int:
        """Cells of the population: ``n_nodes`` when the file declares it, else the
        largest node id + 1."""
        if self.n_nodes is not None:
            return self.n_nodes
        return int(self.node_ids.max()) + 1 if self.node_ids.size else 0

    @property
    def gids(self) -> np.ndarray:
        """Engine-wide cell ids (int64)."""
        return self.node_ids.astype(np.int64) + self.first_gid


class Output:
    """A cosim output file opened for reading (use as a context manager)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.f = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise CosimError("no such file", file=str(self.path)) from None
        except OSError as exc:
            raise CosimError(f"not a readable HDF5 file ({exc})", file=str(self.path)) from None
        if self.f.attrs.get("format") != "cosim":
            self.f.close()
            raise CosimError("not a cosim output file (no format = \"cosim\" attribute)",
                             file=str(self.path))

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.f.close()

    @property
    def attrs(self) -> dict:
        return dict(self.f.attrs)

    def engines(self) -> list[str]:
        return list(self.f["engines"].keys()) if "engines" in self.f else []

    def datasets(self, engine: str) -> list[str]:
        """Names of the region time series of ``engine`` (not their time scales)."""
        g = self.f[f"engines/{engine}"]
        return [k for k in g.keys() if isinstance(g[k], h5py.Dataset)
                and not k.endswith("_time_ms") and g[k].ndim == 3]

    def series(self, engine: str, dataset: str) -> Series:
        key = f"engines/{engine}/{dataset}"
        if key not in self.f:
            raise CosimError(f"no dataset {dataset!r} for engine {engine!r}", file=str(self.path))
        d = self.f[key]
        a = dict(d.attrs)
        t_key = f"engines/{engine}/{dataset}_time_ms"
        data = d[()]
        if t_key in self.f:
            t = self.f[t_key][()]
        else:
            t = a.get("start_ms", 0.0) + a["period_ms"] * np.arange(1, data.shape[0] + 1)
        return Series(engine, dataset, data, t, _strs(a.get("variables", ())),
                      _strs(a.get("units", ())), _strs(a.get("regions", ())),
                      float(a["period_ms"]), a)

    def all_series(self) -> list[Series]:
        return [self.series(e, d) for e in self.engines() for d in self.datasets(e)]

    def spikes(self) -> list[Spikes]:
        if "spikes" not in self.f:
            return []
        out = []
        for pop, g in self.f["spikes"].items():
            a = g.attrs
            engine = str(a.get("engine", pop.split(".", 1)[0]))
            group = str(a.get("group", pop.split(".", 1)[-1]))
            n = a.get("n_nodes")
            out.append(Spikes(pop, g["timestamps"][()], g["node_ids"][()], engine, group,
                              int(a.get("first_gid", 0)), None if n is None else int(n),
                              float(a.get("resolution_ms", 0.0))))
        return out

    def engine_spikes(self, engine: str) -> tuple[np.ndarray, np.ndarray]:
        """All spikes of ``engine``'s populations as engine-wide ``(gids int64, times ms)``,
        sorted by time (stable in population order, then gid)."""
        pops = sorted((s for s in self.spikes() if s.engine == engine), key=lambda s: s.first_gid)
        if not pops:
            return np.zeros(0, np.int64), np.zeros(0)
        g = np.concatenate([s.gids for s in pops])
        t = np.concatenate([s.timestamps_ms for s in pops])
        order = np.lexsort((g, t))
        return g[order], t[order]

    def weights(self) -> np.ndarray | None:
        return self.f["connectome/weights"][()] if "connectome/weights" in self.f else None

    def region_labels(self) -> tuple[str, ...]:
        if "connectome/region_labels" not in self.f:
            return ()
        return _strs(self.f["connectome/region_labels"][()])


def load_matrix(path: Path, *, file: str | None = None, key: str | None = None) -> np.ndarray:
    """A 2-D float matrix from .npy, .npz (its only array, or ``leadfield``/``fc``), or a
    text file (.csv: commas, otherwise whitespace).  Problems raise :class:`CosimError`
    located at ``file``/``key`` (a scenario key) or else at ``path`` itself."""
    path = Path(path)
    where = dict(file=file or str(path), key=key)
    name = f"{path.name}: " if file else ""          # the path is not in the location

    def fail(reason: str) -> CosimError:
        return CosimError(name + reason, **where)

    try:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            m = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = [n for n in ("leadfield", "fc") if n in z.files] or z.files
                if len(names) != 1:
                    raise fail(f".npz must hold one array (or one named 'leadfield' or 'fc'), "
                               f"has {z.files}")
                m = z[names[0]]
        else:
            m = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
    except FileNotFoundError:
        raise fail(f"no such file: {path}") from None
    except IsADirectoryError:
        raise fail("is a directory, expected a matrix file") from None
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read as a matrix ({exc})") from None
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise fail(f"expected a 2-D matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise fail("contains NaN or infinite values")
    return m
