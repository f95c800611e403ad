"""The output file: one HDF5 file per run.

Layout (all times in ms)::

    /                       attrs: format="cosim", format_version, status ("running" |
                            "completed" | "failed"), seed, duration_ms, sync_interval_ms,
                            windows_completed, t_completed_ms, created, message
    /scenario               the scenario file's text (UTF-8 string)
    /provenance             attrs: python, platform and versions of cosim, numpy, numba, …
    /connectome/            weights (target, source), tract_lengths_mm, region_labels
                            (UTF-8; h5py: ``.asstr()``), centres_mm; attrs: source,
                            region_labels (the same labels, read as str)
    /engines/<engine>/<dataset>           float64 (time, variable, region); attrs:
                            axes, variables, units, regions, period_ms, time_unit
    /engines/<engine>/<dataset>_time_ms   float64 (time,), the dimension scale of axis 0
    /engines/<engine>/<dataset>_bin_start_ms  rate and average monitors: the start of each
                            sample's bin (a second scale of axis 0; the bin is (start, t])
    /spikes/<engine>.<group>/             one SONATA population per cell group; attrs:
                            sorting (SONATA enum none | by_id | by_time: by_id when the
                            run completed — ordered by (node_id, time) —, by_time while
                            it runs and after a one-process failure, none after a
                            multi-process failure),
                            engine, group, first_gid, n_nodes, resolution_ms (the
                            engine's time step: spike times are multiples of it)
    /spikes/<engine>.<group>/timestamps   float64 ms, ascending; attrs: units = "ms"
    /spikes/<engine>.<group>/node_ids     uint64, the cell's index in its group (gid −
                            first_gid, from 0)
    /stimuli/<name>/        values, time_ms (time,) and weights (target,): each stimulus
                            as applied (layout and attrs: :mod:`cosim.stimuli`)
    /timing/window_seconds  float64 (window, rank, phase) with phase = compute,
                            communicate, wait; attrs: phases, ranks

Under MPI every rank writes what it produced into ``<output>.d/rank-<r>.h5`` and the
datasets above that come from the ranks (the series and spikes of engines without
monitors, the timing table) are HDF5 virtual datasets into those files, joined at the end
(:mod:`cosim.rank_output`; the attribute ``rank_files`` of ``/`` says so).  Keep the
``.d`` folder next to the output; ``cosim join OUTPUT`` rebuilds the join of a run whose
coordinator died.

Spikes: one SONATA population per cell group, written by :mod:`cosim.sonata`.

Data are buffered in memory and written every ``flush_every`` windows (and at the end), each
write followed by an HDF5 flush, so a crash loses at most the last ``flush_every`` windows and
leaves a readable file whose ``windows_completed`` attribute says how far it got.  In one
process the periodic writes go behind the run, on a thread of the recorder's own, while the
next windows compute (:class:`_Behind`; a write takes a few ms, so a crash then may cost
the windows it was writing as well); a checkpoint, a failure and the close wait for them.  The
coordinator's record pipeline may hand the windows up to the next flush or checkpoint over
together (:meth:`Recorder.write_windows`, :class:`cosim.pipeline.RecordPipeline`); the file
is the same.

Output safety (:mod:`cosim.output_guard`): the recorder locks ``<output>.lock`` first, so a
second run on the same output is refused and touches nothing; it writes the new file under a
temporary name and renames it over the old one (never truncating it); it checks free space
before the run and before every flush.  A disk that fills anyway (another process) makes a
write fail cleanly: the datasets are cut back to the last flushed window, the file is closed
with status ``failed`` and the run ends with ``disk full while writing …`` (exit 2).  A write
that fails for any other reason is cut back the same way before its error ends the run (an
I/O error: ``cannot write the output (…)``, exit 2; a fault of cosim's: that error).  The
raw-data chunk cache is off (``rdcc_nbytes=0``), so data reach the disk at the write and a
failed write raises there, before the metadata that describe it are flushed — with the
cache on, HDF5 fails inside its metadata flush and leaves a file no reader can open.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import functools
import os
import platform
import queue
import shutil
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np

from . import h5fast
from . import output_guard as guard
from .engines.base import RecordSpec
from .errors import CosimError
from .output_guard import (FLUSH_MARGIN_BYTES, OutputLock, check_free_space,  # noqa: F401
                           check_output_path, chunked_bytes, estimate_output_bytes,
                           format_size, input_files, is_disk_full, series_chunk_rows)
from .sonata import SpikeBuffers, create_population, cut_population, sort_population
from .stimulus_output import StimulusWriter

FORMAT_VERSION = 2          # 2: one SONATA population per cell group
PHASES = ("compute", "communicate", "wait")
#: the errors of a failed write to the file (the disk's, the OS's, HDF5's); any other is
#: a fault of cosim's, raised as it is once the file is cut back (:meth:`Recorder._abandon`)
IO_ERRORS = (OSError, RuntimeError)
#: how a full disk ends the run (the hint to free space follows it alone)
DISK_FULL = "disk full while writing the output"
def package_versions() -> dict[str, str]:
    """Versions of cosim and the libraries whose behaviour shapes the numbers."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    # looked up once per process: a fit runs hundreds of scenarios in one process, and
    # reading the distributions' metadata took ~0.1 s per output file
    from . import __version__

    out = {"python": sys.version.split()[0], "platform": platform.platform(),
           "cosim": __version__}
    for dist in ("numpy", "scipy", "numba", "llvmlite", "h5py", "mpi4py", "pyzmq",
                 "tvb-data"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class _Series:
    spec: RecordSpec
    data: "h5py.Dataset"
    time: "h5py.Dataset"
    chunks: list = field(default_factory=list)
    n_written: int = 0
    bin_start: "h5py.Dataset | None" = None


def series_attrs(spec: RecordSpec) -> dict:
    """The attributes of a region series dataset."""
    out = dict(axes="time, variable, region", variables=list(spec.variables),
               units=list(spec.units), regions=list(spec.regions),
               period_ms=spec.period_ms, start_ms=spec.start_ms, time_unit="ms", **spec.attrs)
    return out


def is_binned(spec: RecordSpec) -> bool:
    """Samples that are means over a bin (rate and average monitors): stamped at the bin's
    end, with a second time scale ``<dataset>_bin_start_ms`` at its start."""
    return spec.attrs.get("monitor") in ("rate", "average")


class Recorder:
    """Writes one run's outputs into one HDF5 file (see module docstring).

    Parameters
    ----------
    path : Path
        Output file.  Parent folders are created.
    scenario : cosim.scenario.Scenario
        For the scenario text, seed, connectome and provenance.
    specs : dict engine name → list of RecordSpec
        What each engine will record.
    n_ranks : int
        Number of ranks whose timing is stored per window.
    flush_every : int
        Windows between writes to disk.
    """

    def __init__(self, path: Path, scenario, specs: dict[str, list[RecordSpec]], *,
                 n_ranks: int = 1, flush_every: int = 100, overwrite: bool = False,
                 resume_lengths: dict[str, int] | None = None, parallel=None,
                 background: bool = False):
        self.path = Path(path)
        #: the periodic flushes write behind (on a thread of their own, :class:`_Behind`)
        #: while the run goes on; :meth:`flush` and :meth:`close` wait for them
        self.background = bool(background)
        self._behind: _Behind | None = None
        self._writer: _Writer | None = None
        #: :class:`cosim.rank_output.OutputLayout` of a multi-process run, else None
        self.parallel = parallel if parallel is not None and parallel.world_size > 1 else None
        self._own = None            # this rank's (the coordinator's) rank file
        new = resume_lengths is None
        if new:
            check_output_path(self.path, overwrite, input_files(scenario))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CosimError(f"cannot create the output folder ({exc.strerror})",
                             file=str(self.path)) from None
        self.flush_every = int(flush_every)
        self.n_ranks = int(n_ranks)
        self._series: dict[tuple[str, str], _Series] = {}
        self._spikes = SpikeBuffers()
        self._t_end: float | None = None
        self._timing: list[np.ndarray] = []
        self._windows_buffered = 0
        self.windows_completed = 0
        self.f = None
        self._attrs: h5fast.Attrs | None = None     # in-place writes of the progress attrs
        self._stimulus_records = getattr(scenario, "stimuli", {})
        self._lock = OutputLock(self.path)
        try:
            if new:
                check_free_space(self.path, specs, scenario, n_ranks=n_ranks)
            self._open(scenario, specs, resume_lengths)
            from .rank_output import RankWriter, rank_dir

            if new:             # the rank files of an older run on this output
                shutil.rmtree(rank_dir(self.path), ignore_errors=True)
            if self.parallel is not None:
                self._own = RankWriter(self.parallel, 0, 1 << 62, resume_window=None if new
                                       else int(resume_lengths.get("@windows_completed", 0)))
        except BaseException:
            if self.f is not None:
                self.f.close()
                self.f = None
            self._lock.release()
            raise
        self._growing = [d for d in self._datasets() if d.maxshape[0] is None]
        self._good = self._extents()                # extents after the last good flush
        self._t_good = self.f.attrs.get("t_completed_ms", 0.0)

    def _open(self, scenario, specs, resume_lengths) -> None:
        """Create the file under a temporary name and rename it over ``path`` once its
        header is written, or reopen ``path`` to resume.  ``rdcc_nbytes=0``: raw data go to
        disk at the write (see module docstring)."""
        new = resume_lengths is None
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.f = h5py.File(tmp if new else self.path, "w" if new else "r+", rdcc_nbytes=0)
            if new:
                self._write_header(scenario, specs)
                os.replace(tmp, self.path)          # only now is the old file replaced
            else:
                self._reopen(specs, resume_lengths)
        except BaseException as exc:
            if self.f is not None:
                try:
                    self.f.close()
                except Exception:
                    pass
                self.f = None
            if new:
                tmp.unlink(missing_ok=True)
            if not isinstance(exc, IO_ERRORS):
                raise
            what = "create" if new else "reopen (to resume)"
            why = "disk full" if is_disk_full(exc) else str(exc).split(" (")[0]
            raise CosimError(f"cannot {what} output file ({why})", file=str(self.path)) from None

    def _datasets(self) -> list:
        out = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.maxshape and not obj.is_virtual:
                out.append(obj)
        self.f.visititems(visit)
        return out

    def _extents(self) -> list[int]:
        return [h5fast.length(d) for d in self._growing]

    def lengths(self) -> dict[str, int]:
        """Length (axis 0) of every growing dataset, after a :meth:`flush`."""
        out = {d.name[1:]: d.shape[0] for d in self._growing}
        out["@windows_completed"] = self.windows_completed
        if self._own is not None:
            out.update(self._own.lengths())
        return out

    def _reopen(self, specs, lengths: dict[str, int]) -> None:
        """Bind the datasets of an existing file and cut them back to ``lengths``."""
        f = self.f
        if f.attrs.get("format") != "cosim":
            raise CosimError("not a cosim output file; cannot resume into it", file=str(self.path))
        cut = set()
        for name, n in lengths.items():
            if name.startswith("@"):
                continue
            if name not in f:
                raise CosimError(f"dataset {name} of the checkpoint is missing; cannot resume",
                                 file=str(self.path))
            pop, _, leaf = name.rpartition("/")
            if pop.startswith("spikes/") and leaf in ("timestamps", "node_ids"):
                if pop not in cut:          # a completed run's population is sorted by_id:
                    cut.add(pop)            # the first n spikes in time order
                    cut_population(f[pop], n)
                continue
            f[name].resize(n, axis=0)
        for engine, engine_specs in specs.items():
            if self.parallel is not None and engine in self.parallel.engines:
                continue                    # written by its parts (cosim.rank_output)
            for spec in engine_specs:
                if spec.attrs.get("kind") == "spikes":
                    self._spikes.route(engine, spec)
                else:
                    d = f[f"engines/{engine}/{spec.dataset}"]
                    t = f[f"engines/{engine}/{spec.dataset}_time_ms"]
                    b = f.get(f"engines/{engine}/{spec.dataset}_bin_start_ms")
                    self._series[(engine, spec.dataset)] = _Series(spec, d, t, n_written=d.shape[0],
                                                                   bin_start=b)
        self._stimuli = StimulusWriter(f, self._stimulus_records, create=False)
        self._timing_ds = f["timing/window_seconds"]
        if self.parallel is None and self._timing_ds.shape[1] < self.n_ranks:  # more processes
            self._timing_ds.resize(self.n_ranks, axis=1)
        if self.parallel is not None:         # unlimited mappings again until the join
            from .rank_output import create_virtual

            create_virtual(f, self.parallel, series_attrs)
        self.windows_completed = int(lengths.get("@windows_completed", 0))
        f.attrs.update(status="running", message="", windows_completed=self.windows_completed)
        f.flush()

    def extend(self, scenario) -> None:
        """A resumed run whose duration grew: the file's ``duration_ms`` and ``/scenario``
        become the new scenario's."""
        self.f.attrs["duration_ms"] = scenario.simulation.duration_ms
        del self.f["scenario"]
        self.f.create_dataset("scenario", data=scenario.text, dtype=h5py.string_dtype("utf-8"))
        self.f.flush()

    # -- header --------------------------------------------------------------------------
    def _write_header(self, scenario, specs) -> None:
        f = self.f
        sim = scenario.simulation
        f.attrs.update(format="cosim", format_version=FORMAT_VERSION, status="running",
                       seed=sim.seed, duration_ms=sim.duration_ms,
                       sync_interval_ms=sim.sync_interval_ms, windows_completed=0,
                       t_completed_ms=0.0, message="",
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       scenario_file=str(scenario.path))
        f.create_dataset("scenario", data=scenario.text, dtype=h5py.string_dtype("utf-8"))
        prov = f.create_group("provenance")
        prov.attrs.update(package_versions())
        c = scenario.connectome
        g = f.create_group("connectome")
        g.attrs["source"] = c.source
        g.attrs["weights_axes"] = "target, source"
        g.create_dataset("weights", data=c.weights)
        g.create_dataset("tract_lengths_mm", data=c.tract_lengths_mm)
        g.create_dataset("region_labels", data=list(c.region_labels),
                         dtype=h5py.string_dtype("utf-8"))
        # h5py reads string datasets as bytes (``.asstr()`` gives str); the attribute reads
        # as str, like the ``regions`` attribute of every series
        g.attrs["region_labels"] = list(c.region_labels)
        if c.centres_mm is not None:
            g.create_dataset("centres_mm", data=c.centres_mm)
        for engine, engine_specs in specs.items():
            eg = f.require_group(f"engines/{engine}")
            eg.attrs["type"] = scenario.engine_types.get(engine, "")
            if self.parallel is not None and engine in self.parallel.engines:
                continue                    # written by its parts (cosim.rank_output)
            for spec in engine_specs:
                if spec.attrs.get("kind") == "spikes":
                    for pop in self._spikes.route(engine, spec):
                        create_population(f, pop, resolution_ms=spec.period_ms)
                else:
                    self._create_series(eg, engine, spec)
        self._stimuli = StimulusWriter(f, getattr(scenario, "stimuli", {}), create=True)
        if self.parallel is not None:
            from .rank_output import create_virtual

            create_virtual(f, self.parallel, series_attrs)
            self._timing_ds = None
            f.flush()
            return
        tg = f.create_group("timing")
        # axis 1 may grow: a run resumed on more processes than it started with
        tg.create_dataset("window_seconds", shape=(0, self.n_ranks, len(PHASES)),
                          maxshape=(None, None, len(PHASES)), dtype="f8",
                          chunks=(256, self.n_ranks, len(PHASES)), fillvalue=np.nan)
        self._timing_ds = tg["window_seconds"]
        tg["window_seconds"].attrs.update(axes="window, rank, phase", phases=list(PHASES),
                                          unit="s")
        f.flush()

    def _create_series(self, group, engine: str, spec: RecordSpec) -> None:
        nv, nr = len(spec.variables), len(spec.regions)
        rows = series_chunk_rows(nv, nr)
        d = group.create_dataset(spec.dataset, shape=(0, nv, nr), maxshape=(None, nv, nr),
                                 dtype="f8", chunks=(rows, nv, nr))
        d.attrs.update(series_attrs(spec))
        t = group.create_dataset(f"{spec.dataset}_time_ms", shape=(0,), maxshape=(None,),
                                 dtype="f8", chunks=(max(rows, 256),))
        t.attrs["unit"] = "ms"
        t.make_scale("time_ms")
        d.dims[0].attach_scale(t)
        b = None
        if is_binned(spec):
            # sample k is the mean over the bin (t_k − period, t_k]: a histogram that
            # stamps bins at their left edge (Elephant's time_histogram) lines up with these
            b = group.create_dataset(f"{spec.dataset}_bin_start_ms", shape=(0,), maxshape=(None,),
                                     dtype="f8", chunks=(max(rows, 256),))
            b.attrs.update(unit="ms", bin_ms=spec.period_ms)
            b.make_scale("bin_start_ms")
            d.dims[0].attach_scale(b)
            d.attrs.update(time_stamps="end of each bin (the bin is (t - period_ms, t])",
                           bin_ms=spec.period_ms)
        d.dims[0].label = "time"
        d.dims[1].label = "variable"
        d.dims[2].label = "region"
        self._series[(engine, spec.dataset)] = _Series(spec, d, t, bin_start=b)

    # -- per window ----------------------------------------------------------------------
    def write_window(self, outputs: dict, timing: np.ndarray | None = None,
                     t_end_ms: float | None = None, t_start_ms: float | None = None) -> None:
        """Buffer one window: ``outputs[engine].records[dataset]`` arrays and timing
        ``(n_ranks, 3)`` seconds; writes to disk every ``flush_every`` windows.  With
        ``t_start_ms`` and ``t_end_ms`` the stimuli of the window are recorded too."""
        spans = [(t_start_ms, t_end_ms)] if t_start_ms is not None and t_end_ms is not None else []
        self._buffer(outputs, [] if timing is None else [timing], spans, 1, t_end_ms)

    def write_windows(self, outputs: dict, timings: list, spans: list[tuple[float, float]]) -> None:
        """Buffer ``len(spans)`` consecutive windows at once (``spans``: each window's
        ``(t_start_ms, t_end_ms)``): ``outputs`` hold their records joined in time order,
        ``timings`` their timing rows, one per window.  The same file as
        :meth:`write_window` called per window, as long as no flush falls inside the span."""
        self._buffer(outputs, timings, spans, len(spans), spans[-1][1])

    def _buffer(self, outputs: dict, timings: list, spans: list, n_windows: int,
                t_end_ms: float | None) -> None:
        for t0, t1 in spans:
            self._stimuli.add_window(t0, t1)
        self._buffer_records(outputs)
        if len(timings) > 1 and self._own is None:
            self._buffer_timings(timings)
        else:
            for timing in timings:
                self._buffer_timing(timing)
        self._windows_buffered += n_windows
        if t_end_ms is not None:
            self._t_end = t_end_ms
        if self._windows_buffered >= self.flush_every:
            self._flush(behind=self.background)

    @property
    def windows_buffered(self) -> int:
        """Windows given to :meth:`write_window` since the last flush."""
        return self._windows_buffered

    def _buffer_records(self, outputs: dict) -> None:
        for engine, out in outputs.items():
            for dataset, value in out.records.items():
                key = (engine, dataset)
                if key in self._series:
                    arr = np.asarray(value, dtype=np.float64)
                    if arr.size:
                        self._series[key].chunks.append(arr)
                elif key in self._spikes:
                    self._spikes.add(key, value)
                else:
                    raise KeyError(f"engine {engine!r} recorded undeclared dataset {dataset!r}")

    def _buffer_timings(self, timings: list) -> None:
        """:meth:`_buffer_timing` of each, made one array at once when they are alike."""
        try:
            block = np.array(timings, dtype=np.float64)
        except ValueError:                          # (rows of different shapes)
            block = None
        if block is None or block.size != len(timings) * self.n_ranks * len(PHASES):
            for timing in timings:
                self._buffer_timing(timing)
            return
        self._timing.extend(block.reshape(len(timings), self.n_ranks, len(PHASES)))

    def _buffer_timing(self, timing) -> None:
        if self._own is not None:
            self._own.end_window(-1, np.asarray(timing, dtype=np.float64).reshape(
                -1, len(PHASES))[0])                # the coordinator's row (rank 0)
        else:
            self._timing.append(np.array(timing, dtype=np.float64).reshape(self.n_ranks, len(PHASES)))

    def flush(self) -> None:
        """Write buffered windows to disk and flush the HDF5 file; on return every window
        buffered is on disk (a flush still writing behind is waited for first).

        Out of disk space (checked first, or a failed write): the file is cut back to the
        last flushed window and closed, and :class:`CosimError` ``disk full …`` is raised.
        """
        self._flush(behind=False)

    def _flush(self, behind: bool) -> None:
        """:meth:`flush`; ``behind`` (:attr:`background`): the HDF5 writes go on a thread
        of their own while the run goes on (:class:`_Behind`)."""
        if self.f is None:
            return
        self._catch_up()
        need = self._bytes_to_write()
        free = guard.free_bytes(self.path)
        if need + FLUSH_MARGIN_BYTES > free:
            self._abandon(f"{DISK_FULL} ({format_size(need)} to write, "
                          f"{format_size(free)} free)")
        try:
            if self._own is not None:
                self._own.flush()
            writes = self._take_writes()
        except CosimError as exc:           # the coordinator's rank file
            self._abandon(exc.reason)
        except Exception as exc:            # (the buffers part taken: cut back as well)
            self._abandon(_why(exc), exc)
        n, t_end = self._windows_buffered, self._t_end
        self._windows_buffered = 0
        if behind:
            if self._writer is None:
                self._writer = _Writer()
            self._behind = self._writer.submit(_Behind(self._write, writes, n, t_end))
            return
        try:
            self._done(self._write(writes, n, t_end), n, t_end)
        except Exception as exc:            # (any failed write: the file is cut back)
            self._abandon(_why(exc), exc)

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    def _catch_up(self) -> None:
        """Wait for the flush writing behind, if any; its failure ends the run here as a
        failed write of :meth:`flush` does."""
        exc = self._collect()
        if exc is not None:
            self._abandon(_why(exc), exc)

    def _collect(self) -> Exception | None:
        """Wait for the flush writing behind, if any: count it if it succeeded, else
        return its exception.  (Interrupted, it stays to be waited for again.)"""
        behind = self._behind
        if behind is None:
            return None
        try:
            extents = behind.wait()
        except Exception as exc:
            self._behind = None
            return exc
        self._behind = None
        self._done(extents, behind.n, behind.t_end)
        return None

    def _done(self, extents: list[int], n: int, t_end: float | None) -> None:
        """A flush of ``n`` windows (up to ``t_end`` ms) is on disk."""
        self.windows_completed += n
        self._good = extents
        if t_end is not None:
            self._t_good = t_end

    def _bytes_to_write(self) -> int:
        """Bytes the buffered windows add to the file (whole new chunks)."""
        need = 0
        for s in self._series.values():
            if s.chunks:
                nv, nr = len(s.spec.variables), len(s.spec.regions)
                rows = series_chunk_rows(nv, nr)
                n0, n1 = s.n_written, s.n_written + sum(c.shape[0] for c in s.chunks)
                scales = 2 if s.bin_start is not None else 1
                need += (chunked_bytes(n1, rows, 8 * nv * nr) - chunked_bytes(n0, rows, 8 * nv * nr)
                         + scales * (chunked_bytes(n1, max(rows, 256), 8)
                                     - chunked_bytes(n0, max(rows, 256), 8)))
        need += self._spikes.bytes_to_write(self.f)
        need += self._stimuli.bytes_to_write()
        if self._timing and self._timing_ds is not None:
            n0 = h5fast.length(self._timing_ds)
            row = 24 * self.n_ranks
            need += chunked_bytes(n0 + len(self._timing), 256, row) - chunked_bytes(n0, 256, row)
        return need

    def _abandon(self, why: str, exc: BaseException | None = None) -> None:
        """Stop writing: cut every dataset back to the last flushed window, close the file
        with status ``failed``, release the lock and raise :class:`CosimError` — or, when
        the write failed with ``exc`` that is no I/O error (a fault of cosim's, not of the
        disk), ``exc`` itself, once the file is cut back: the rows of the failed write are
        never left half-written or as fill values under a later flush."""
        self._collect()             # a write behind: counted, or its failure is this one
        kept = self.windows_completed
        msg = (f"{why}: the file keeps the {kept} windows ({self._t_good:g} ms) flushed before"
               + ("; free some space and run again" if why.startswith(DISK_FULL) else ""))
        for s in self._series.values():
            s.chunks.clear()
        self._spikes.clear()
        self._stimuli.clear()
        self._timing.clear()
        self._windows_buffered = 0
        self._attrs = None          # (its handles closed: the attributes are rewritten below)
        try:
            for d, n in zip(self._growing, self._good):
                if d.shape[0] != n:
                    d.resize(n, axis=0)
            self.f.attrs.update(windows_completed=kept, t_completed_ms=self._t_good,
                                status="failed", message=msg)
            self._close_own("failed")
            self.f.close()
        except Exception:           # nothing more can be done for this file
            try:
                self.f.close()
            except Exception:
                pass
        self.f = None
        self._stop_writer()
        self._lock.release()
        if exc is not None and not isinstance(exc, IO_ERRORS):
            raise exc
        raise CosimError(msg, file=str(self.path))

    def _take_writes(self) -> list[tuple]:
        """The buffered windows as appends ``(dataset, rows, first row)``, the buffers
        emptied: every array made here, so the writes may go on another thread."""
        writes = []
        for (engine, dataset), s in self._series.items():
            if not s.chunks:
                continue
            block = np.concatenate(s.chunks, axis=0)
            s.chunks.clear()
            n0, n1 = s.n_written, s.n_written + block.shape[0]
            writes += [(s.data, block, n0),
                       (s.time, s.spec.start_ms + s.spec.period_ms * np.arange(n0 + 1, n1 + 1), n0)]
            if s.bin_start is not None:
                writes.append((s.bin_start, s.spec.start_ms + s.spec.period_ms * np.arange(n0, n1),
                               n0))
            s.n_written = n1
        writes += self._spikes.writes(self.f)
        writes += self._stimuli.writes()
        if self._timing and self._timing_ds is not None:
            block = np.stack(self._timing)
            self._timing.clear()
            # (ranks a resumed run lacks stay NaN)
            writes.append((self._timing_ds, block, h5fast.length(self._timing_ds)))
        return writes

    def _write(self, writes: list[tuple], n: int, t_end: float | None) -> list[int]:
        """Make ``writes`` (a flush of ``n`` windows, up to ``t_end`` ms), set the progress
        attributes, flush the file; returns the extents it leaves.  Low-level appends
        (cosim.h5fast): one extent change and one write per dataset, no file flush in
        between — the file is flushed once, after them all."""
        for d, block, n0 in writes:
            h5fast.append(d, block, n0)
        if self._attrs is None:
            self._attrs = h5fast.Attrs(self.f)
        self._attrs.set("windows_completed", self.windows_completed + n)
        if t_end is not None:
            self._attrs.set("t_completed_ms", t_end)
        self.f.flush()
        return self._extents()

    def close(self, status: str = "completed", message: str = "") -> None:
        """Flush what is buffered, set the status attribute and close the file.

        After a failure (``status != "completed"``) a disk too full to flush the last
        windows does not hide the failure: the file keeps what was flushed before."""
        if self.f is None:
            return
        try:
            self.flush()
        except CosimError:
            if status == "completed":
                raise
            return
        if status == "completed":      # the populations this file holds itself
            for name in self._spikes.names():
                sort_population(self.f[f"spikes/{name}"])
        self._attrs = None
        self.f.attrs["status"] = status
        self.f.attrs["message"] = message
        self._close_own(status)
        self.f.close()
        self.f = None
        self._stop_writer()
        self._lock.release()

    def _close_own(self, status: str) -> None:
        """Close the coordinator's rank file and join every rank file into the output
        (:func:`cosim.rank_output.join`) as of the windows flushed."""
        if self._own is None:
            return
        from .rank_output import join

        try:
            self._own.close(status)
        except CosimError:
            pass
        self._own = None
        try:
            join(self.f, self.parallel, self.windows_completed, series_attrs)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            self.f.attrs["message"] = (f"{self.f.attrs.get('message', '')}; the rank files "
                                       f"could not be joined ({exc}): run cosim join")


def _why(exc: BaseException) -> str:
    """A failed write of the output, as the line that ends the run says it (and, for an
    error that is no I/O error, the file's message: its type named)."""
    if not isinstance(exc, IO_ERRORS):
        return f"cannot write the output ({type(exc).__name__}: {exc})"
    return (DISK_FULL if is_disk_full(exc) else
            f"cannot write the output ({str(exc).split(' (')[0]})")


class _Behind:
    """One flush's HDF5 writes, made by the recorder's writer thread (:class:`_Writer`)
    while the run goes on (:attr:`Recorder.background`).

    The engines' window kernels release the GIL (numba ``nogil``), and h5py releases it
    inside its dataset calls, so the writes overlap the next windows' compute instead of
    stopping the loop.  Nothing else touches the file meanwhile: the recorder waits for
    them (:meth:`wait`) before its next flush, a checkpoint's commit, a failure's cut-back
    and the close — so a failed write ends the run at the next of those, with the file
    cut back to the flush before."""

    __slots__ = ("write", "writes", "n", "t_end", "result", "error", "done")

    def __init__(self, write, writes: list, n: int, t_end: float | None):
        """``write(writes, n, t_end)`` (:meth:`Recorder._write`): a flush of ``n``
        windows, up to ``t_end`` ms."""
        self.write, self.writes, self.n, self.t_end = write, writes, n, t_end
        self.result = self.error = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.result = self.write(self.writes, self.n, self.t_end)
        except BaseException as exc:            # (raised again by wait, on the run's thread)
            self.error = exc
        finally:
            self.writes = None
            self.done.set()

    def wait(self) -> list[int]:
        """The extents the writes left; their exception, if they failed."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class _Writer:
    """The thread that makes a recorder's :class:`_Behind` writes, one at a time (started
    at the first; a thread per flush would cost its start-up every flush).  A daemon that
    an exiting interpreter waits for (``atexit``) while it writes; :meth:`stop` ends it."""

    def __init__(self):
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="cosim-flush", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def _loop(self) -> None:
        while (job := self._q.get()) is not None:
            job.run()

    def submit(self, job: _Behind) -> _Behind:
        self._q.put(job)
        return job

    def stop(self) -> None:
        """Let the write in hand finish, end the thread."""
        atexit.unregister(self.stop)
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()


def default_output_path(scenario) -> Path:
    """``results/<scenario stem>.h5`` when the scenario names no output."""
    return Path("results") / f"{Path(scenario.path).stem}.h5"
