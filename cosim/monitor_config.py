"""Monitors chosen in a scenario's ``[record]`` section, applied to an engine's outputs.

Keys read from the ``[record.<engine>]`` table (besides ``variables``, which the scenario
loader reads)::

    [record.cortex]
    variables = ["y0", "y1", "y2"]   # what the engine samples every [record] period
    raw = true                  # store those samples too (false: store only monitors)
    source = "state"            # dataset the monitors read (default: the engine's first)

    [record.cortex.average]     # temporal average …
    period = 10.0               # ms, whole multiple of [record] period
    variables = ["y0"]          # optional subset
    [record.cortex.subsample]   # … or every k-th sample (same keys)
    period = 10.0

    [record.cortex.bold]        # Balloon–Windkessel BOLD (cosim.analysis.hemodynamics)
    tr = 2000.0                 # ms
    input = "rate"              # "rate": the region firing rate ([record.cortex.rate]'s
                                #   transfer, else the model's default) or a recorded variable
    scale = 1.0                 # z = scale * (input - offset), in 1/s
    offset = 0.0
    preset = "stephan2007"      # or "friston2000"
    step = 10.0                 # ms, integration step (input averaged over it; 0: every sample)

    [record.cortex.eeg]         # the model's EEG observable (Jansen–Rit: y1 - y2, mV)
    variable = "y1"             # defaults: the observable's; subtract = "" for no subtraction
    subtract = "y2"
    period = 4.0                # ms, optional block average (250 Hz here)
    leadfield = "leadfield.npy" # optional (sensor, region) matrix: .npy, .npz, .csv, .txt;
                                #   columns = the engine's regions or all connectome regions
    sensors = ["Fz", "Cz"]      # optional names (or a .txt file, one per line)
    unit = "uV"                 # optional unit of the projected signal

    [record.cortex.rate]        # neural mass: the model's transfer function
    transfer = "jansen_rit"     # sigmoid of y1 - y2 with the engine's nu_max, v0, r (or set
                                #   e0 [Hz], v0 [mV], r [1/mV]); or "variable" (+ variable =
                                #   "E", scale = 1.0, unit = "Hz").  Default: the model's
                                #   rate observable (jansen_rit: "jansen_rit"; wilson_cowan: E)
    period = 10.0               # ms, optional block average
    [record.hippocampus.rate]   # spiking engine: population rates from the spikes, one
    bin = 5.0                   #   variable per cell group of the engine (ms)
    neurons = {exc = 800}       # population sizes, when the engine does not declare them
    [record.hippocampus.bold]   # spiking engine: BOLD driven by the population rate (Hz) of
    tr = 2000.0                 #   all its cells (needs the rate table; tr a multiple of bin)

The monitors TVB users expect — ``meg``, ``seeg``, ``global_average``, ``spatial_average``,
``expression``, ``afferent_coupling`` and ``bold`` with ``hrf = "<kernel>"`` — are read by
:mod:`cosim.monitor_tvb_config` (its docstring shows their keys).

Paths are relative to the scenario file's folder.  :func:`monitors_from_config` validates
all of it and returns an :class:`EngineMonitors` that the runtime applies to every window.
Every key is declared once in :mod:`cosim.monitor_params` (defaults, units, bounds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .analysis.hemodynamics import BalloonParams
from .analysis.io import load_matrix
from .engines.base import RecordSpec
from . import monitor_params as mp
from .models import MODELS
from .monitors import (AverageMonitor, BoldMonitor, EegMonitor, Monitor, RateMonitor, Signal,
                       SpikeGroup, SpikeRateMonitor, difference_signal, observable_signal,
                       variable_signal)
from .monitor_tvb_config import kernel_bold, tvb_monitor
from .params import REQUIRED
from .schema import Reader

#: Tables read by :mod:`cosim.monitor_tvb_config` from the engine's region time series.
TVB_TABLES = ("meg", "seeg", "global_average", "spatial_average", "expression")

MONITOR_TABLES = tuple(mp.MONITORS)


def model_observable(model: str | None, name: str):
    """The observable ``name`` ("rate", "eeg") the model called ``model`` declares, or None."""
    m = MODELS.get(model or "")
    return None if m is None else m.observables.get(name)


def _is_spikes(spec: RecordSpec) -> bool:
    return spec.attrs.get("kind") == "spikes"


def _is_internal(spec: RecordSpec) -> bool:
    """A dataset an engine records only for a monitor (the coupling input): never stored
    as it is."""
    return spec.attrs.get("kind") == "coupling"


class EngineMonitors:
    """The monitors of one engine, applied to its :class:`WindowOutput` records.

    ``record_specs()`` is what the recorder must create for this engine (the engine's own
    datasets unless ``raw`` is false — spikes are always kept — plus one per monitor);
    ``apply(records, t_end_ms)`` maps one window's records to the records to write.
    """

    def __init__(self, engine: str, engine_specs: Sequence[RecordSpec],
                 series: Sequence[tuple[str, Monitor]] = (),
                 spike_rate: SpikeRateMonitor | None = None, raw: bool = True):
        self.engine = engine
        self.engine_specs = list(engine_specs)
        self.series = list(series)
        self.spike_rate = spike_rate
        self.raw = raw
        self._spike_pop = {s.dataset: s.attrs.get("population", s.dataset)
                           for s in self.engine_specs if _is_spikes(s)}
        self._internal = {s.dataset for s in self.engine_specs if _is_internal(s)}
        names = [m.spec.dataset for _, m in self.series]
        if spike_rate is not None:
            names.append(spike_rate.spec.dataset)
        own = {s.dataset for s in self.engine_specs}
        for n in names:
            if names.count(n) > 1 or n in own:
                raise ValueError(f"monitor dataset {n!r} of engine {engine!r} is not unique")

    @property
    def chunk_invariant(self) -> bool:
        """Whether :meth:`apply` gives the same numbers for any split of the records in
        time (several windows' records at once, or one by one): every monitor's own
        declaration (:attr:`cosim.monitors.Monitor.chunk_invariant`)."""
        mons = [m for _, m in self.series] + ([self.spike_rate] if self.spike_rate else [])
        return all(m.chunk_invariant for m in mons)

    @property
    def passthrough(self) -> bool:
        """True when nothing is changed (no monitors, raw samples kept)."""
        return self.raw and not self.series and self.spike_rate is None

    def record_specs(self) -> list[RecordSpec]:
        out = [s for s in self.engine_specs
               if (self.raw or _is_spikes(s)) and not _is_internal(s)]
        if self.spike_rate is not None:
            out.append(self.spike_rate.spec)
        return out + [m.spec for _, m in self.series]

    def apply(self, records: dict, t_end_ms: float) -> dict:
        """Records to write for one window ending at ``t_end_ms`` (ms)."""
        if self.passthrough:
            return records
        out = {k: v for k, v in records.items()
               if (self.raw or k in self._spike_pop) and k not in self._internal}
        inputs = records
        if self.spike_rate is not None:
            spikes = {self._spike_pop[k]: v for k, v in records.items() if k in self._spike_pop}
            rates = self.spike_rate.update_spikes(spikes, t_end_ms)
            out[self.spike_rate.spec.dataset] = rates
            inputs = {**records, self.spike_rate.spec.dataset: rates}   # feeds e.g. BOLD
        for source, mon in self.series:
            if source in inputs:
                out[mon.spec.dataset] = mon.update(inputs[source])
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Checkpoint of every monitor: ``"<dataset>/<key>" → array``."""
        out = {}
        mons = [m for _, m in self.series] + ([self.spike_rate] if self.spike_rate else [])
        for m in mons:
            out.update({f"{m.spec.dataset}/{k}": v for k, v in m.state().items()})
        return out

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        mons = [m for _, m in self.series] + ([self.spike_rate] if self.spike_rate else [])
        for m in mons:
            prefix = m.spec.dataset + "/"
            m.restore({k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)})


def monitors_from_config(reader: Reader | None, engine: str, engine_specs: Sequence[RecordSpec],
                         *, model: str | None = None,
                         region_labels: Sequence[str] | None = None,
                         engine_object=None) -> EngineMonitors:
    """Read the monitors of ``engine`` from its ``[record.<engine>]`` table.

    ``reader``: that table (``None`` when absent); ``engine_specs``: the engine's
    ``record_specs()``; ``model``: the neural-mass model name for the default rate
    transfer (default: the ``model`` attribute of the engine's record spec);
    ``region_labels``: all connectome region labels (lead fields with one column per
    connectome region); ``engine_object``: the engine, whose per-region model parameters
    (``model.parameter_names``, ``params``) the Jansen–Rit rate transfer uses.  Reads only
    the keys in the module docstring besides ``variables``; the caller calls
    ``reader.done()`` afterwards.  Problems raise :class:`~cosim.errors.CosimError` naming the key.
    """
    if reader is None:
        return EngineMonitors(engine, engine_specs)
    raw = reader.param(mp.RAW)
    coupling_spec = None
    if reader.has("afferent_coupling"):
        coupling_spec = _coupling_record(reader, engine, engine_object)
        engine_specs = engine_object.record_specs()
    series_specs = [s for s in engine_specs if not _is_spikes(s) and not _is_internal(s)]
    spike_specs = [s for s in engine_specs if _is_spikes(s)]
    wanted = [t for t in MONITOR_TABLES if reader.has(t)]
    source = None
    src_name = reader.param(mp.SOURCE.with_(choices=tuple(s.dataset for s in series_specs) or None))
    if series_specs:
        source = next(s for s in series_specs if src_name in (None, s.dataset))
        model = model or source.attrs.get("model")
    params = engine_parameters(engine_object)
    series: list[tuple[str, Monitor]] = []
    spike_rate = None
    readers = {t: reader.table(t) for t in wanted}
    rate_signal = None          # the region firing rate, shared by `rate` and `bold`
    if "rate" in readers and spike_specs:
        spike_rate = _spike_rate(readers["rate"], spike_specs, engine_object, region_labels)
    elif "rate" in readers and source is not None:
        rate_signal = _rate_signal(readers["rate"], source, model, params)
    for table, r in readers.items():
        if table == "bold" and spike_specs and r.any("input", mp.BOLD_INPUT.default) == "rate":
            # spiking region: BOLD driven by its population rate (all cells)
            if spike_rate is None:
                raise r.error("input", f"BOLD of spiking engine {engine!r} is driven by its "
                                       f"population rate: add [record.{engine}.rate] bin = …")
            src, sig = spike_rate.spec, _spike_rate_signal(spike_rate)
            series.append((src.dataset, _series_monitor(table, r, src, model, region_labels,
                                                        sig, params)))
        elif table == "afferent_coupling":
            series.append((coupling_spec.dataset,
                           tvb_monitor(table, r, source, None, region_labels, coupling_spec)))
        elif not (table == "rate" and spike_specs):
            if source is None:
                raise r.error(None, f"engine {engine!r} records no region time series")
            series.append((source.dataset, _series_monitor(table, r, source, model,
                                                           region_labels, rate_signal, params)))
        r.done()
    try:
        return EngineMonitors(engine, engine_specs, series, spike_rate, raw)
    except ValueError as exc:
        raise reader.error(None, str(exc)) from None


def _coupling_record(reader: Reader, engine: str, engine_object) -> RecordSpec:
    """Ask the engine to record its coupling input (a capability: ``record_coupling()``)."""
    fn = getattr(engine_object, "record_coupling", None)
    if fn is None:
        raise reader.error("afferent_coupling", f"engine {engine!r} does not record a "
                                                "coupling input (neural-mass engines do)")
    return fn()


def _guard(r: Reader, key: str | None, fn):
    """Run ``fn()``; a ValueError/KeyError becomes a CosimError at ``key`` of ``r``."""
    try:
        return fn()
    except (ValueError, KeyError) as exc:
        raise r.error(key, exc.args[0] if exc.args else str(exc)) from None


def engine_parameters(engine) -> dict[str, np.ndarray]:
    """Model parameters of a neural-mass engine by name, each ``(region,)`` (empty for
    engines without ``model.parameter_names`` and ``params (region, parameter)``)."""
    model, params = getattr(engine, "model", None), getattr(engine, "params", None)
    names = getattr(model, "parameter_names", None)
    if names is None or params is None:
        return {}
    params = np.asarray(params, dtype=np.float64)
    return {n: params[:, j] for j, n in enumerate(names)}


def _rate_signal(r: Reader, source: RecordSpec, model: str | None, params: dict) -> Signal:
    """The firing-rate signal described by a ``[record.<engine>.rate]`` table."""
    own = model_observable(model, "rate")
    default = None if own is None else own.transfer
    transfer = r.param(mp.RATE_TRANSFER) or default
    if transfer is None:
        raise r.error("transfer", f"missing: no default firing-rate transfer for "
                                  f"model {model!r}; set one of "
                                  f"{', '.join(map(repr, mp.TRANSFER_NAMES))}")
    if transfer != "variable":
        obs = mp.TRANSFERS[transfer]
        values = obs.values(params if obs is own else None)
        for p in obs.parameters:                  # the scenario's values override
            v = r.param(p.with_(default=None))
            if v is not None:
                values[p.name] = v
        return _guard(r, "transfer", lambda: observable_signal(source, obs, values))
    default_var = own.variables[0] if own is not None and own.fn is None else None
    var = r.param(mp.RATE_VARIABLE) or default_var
    if var is None:
        raise r.error("variable", "missing required key (transfer = \"variable\")")
    scale = r.param(mp.RATE_SCALE)
    unit = r.param(mp.RATE_UNIT)
    return _guard(r, "variable", lambda: variable_signal(source, var, scale, unit))


def _default_rate_signal(r: Reader, key: str, source: RecordSpec, model: str | None,
                         params: dict) -> Signal:
    obs = model_observable(model, "rate")
    if obs is None:
        raise r.error(key, f"\"rate\" needs a [record.<engine>.rate] table with a transfer "
                           f"(no default for model {model!r}), or name a recorded variable")
    return _guard(r, key, lambda: observable_signal(source, obs, obs.values(params)))


def _series_monitor(table: str, r: Reader, source: RecordSpec, model, region_labels,
                    rate_signal: Signal | None, params: dict) -> Monitor:
    if table in ("average", "subsample"):
        decl = mp.MONITORS[table]
        period = r.param(decl["period"])
        variables = r.param(decl["variables"])
        return _guard(r, "period", lambda: AverageMonitor(source, period, mode=table,
                                                          variables=variables))
    if table in TVB_TABLES:
        return tvb_monitor(table, r, source, model_observable(model or "jansen_rit", "eeg"),
                           region_labels)
    if table == "bold":
        tr = r.param(mp.BOLD_TR)
        inp = r.param(mp.BOLD_INPUT)
        scale = r.param(mp.BOLD_SCALE)
        offset = r.param(mp.BOLD_OFFSET)
        hrf = r.param(mp.BOLD_HRF)
        if inp == "rate":
            sig = rate_signal or _default_rate_signal(r, "input", source, model, params)
        else:
            sig = _guard(r, "input", lambda: variable_signal(source, inp))
        if hrf != "balloon":
            if r.has("preset"):
                raise r.error("preset", "Balloon-Windkessel constants: not with hrf = "
                                        f"{hrf!r}")
            return kernel_bold(r, source, sig, hrf, tr, scale, offset)
        for p in (mp.BOLD_LENGTH, *mp.BOLD_KERNEL_PARAMS):
            if r.has(p.name):
                raise r.error(p.name, "a kernel parameter: only with hrf = \"<kernel>\" "
                                      "(the default hrf is \"balloon\")")
        preset = r.param(mp.BOLD_PRESET)
        step = r.param(mp.BOLD_STEP)
        return _guard(r, "tr", lambda: BoldMonitor(source, sig, tr_ms=tr, scale=scale,
                                                   offset=offset, step_ms=step,
                                                   params=BalloonParams.preset(preset)))
    if table == "eeg":
        # an engine that names no model: the EEG source of Jansen–Rit, the EEG model
        eeg = model_observable(model or "jansen_rit", "eeg")
        plus = r.param(mp.EEG_VARIABLE.with_(default=eeg.variables[0]) if eeg else mp.EEG_VARIABLE)
        if plus is None:
            raise r.error("variable", f"missing required key (model {model!r} declares no "
                                      "EEG observable)")
        minus = r.param(mp.EEG_SUBTRACT.with_(
            default=eeg.variables[1] if eeg and len(eeg.variables) > 1 else ""))
        period = r.param(mp.EEG_PERIOD)
        unit = r.param(mp.EEG_UNIT)
        sig = _guard(r, "variable", lambda: (difference_signal(source, plus, minus) if minus
                                            else variable_signal(source, plus)))
        lf, sensors = None, None
        if r.has("leadfield"):
            lf = _leadfield(r, source, region_labels)
            sensors = _sensors(r)
        elif r.has("sensors"):
            raise r.error("sensors", "names the rows of a lead field: add leadfield = \"…\"")
        return _guard(r, "leadfield" if lf is not None else "period",
                      lambda: EegMonitor(source, sig, leadfield=lf, sensors=sensors,
                                         period_ms=period, unit=unit))
    # rate of a neural mass (its signal was read first, see monitors_from_config)
    period = r.param(mp.RATE_PERIOD)
    return _guard(r, "period", lambda: RateMonitor(source, rate_signal, period_ms=period))


def _base_dir(r: Reader) -> Path:
    return Path(r.file).parent if r.file else Path(".")


def _leadfield(r: Reader, source: RecordSpec, region_labels) -> np.ndarray:
    name = r.param(mp.EEG_LEADFIELD.with_(default=REQUIRED))
    lf = load_matrix(_base_dir(r) / name, file=r.file, key=r.key("leadfield"))
    n = len(source.regions)
    if lf.shape[1] == n:
        return lf
    if region_labels is not None and lf.shape[1] == len(region_labels):
        labels = list(region_labels)
        return lf[:, [labels.index(g) for g in source.regions]]
    total = f" or {len(region_labels)} (all connectome regions)" if region_labels else ""
    raise r.error("leadfield", f"{name}: has {lf.shape[1]} columns; expected {n} (the "
                               f"engine's regions){total}")


def _sensors(r: Reader) -> list[str] | None:
    value = r.param(mp.EEG_SENSORS)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return [ln.strip() for ln in (_base_dir(r) / value).read_text().splitlines()
                    if ln.strip()]
        except OSError as exc:
            raise r.error("sensors", f"cannot read {value}: {exc.strerror}") from None
    return r.string_list("sensors")


def _spike_rate_signal(mon: SpikeRateMonitor) -> Signal:
    """Rate of all neurons of a :class:`SpikeRateMonitor` output: the group rates
    weighted by group size (Hz)."""
    n = np.array([g.n_neurons for g in mon.groups], dtype=np.float64)
    w = n / n.sum()
    names = "+".join(g.name for g in mon.groups)
    return Signal(lambda x: np.tensordot(x, w, axes=([1], [0])),
                  f"population rate ({names})", "Hz")


def _spike_rate(r: Reader, spike_specs: list[RecordSpec], engine_object,
                region_labels) -> SpikeRateMonitor:
    """Groups: the engine's cell groups (``engine.groups``: name → range of node ids) when
    it has them, else one group per spike population; sizes from the engine, the spike
    spec's ``n_nodes`` attribute, or the ``neurons`` key."""
    bin_ms = r.param(mp.RATE_BIN)
    sizes_cfg = r.param(mp.RATE_NEURONS)
    if sizes_cfg is not None and (isinstance(sizes_cfg, bool)
                                  or not isinstance(sizes_cfg, (int, dict))):
        raise r.error("neurons", "must be an integer (one population) or a table "
                                 "population = size")
    pops = [s.attrs.get("population", s.dataset) for s in spike_specs]
    cell_groups = getattr(engine_object, "groups", None)
    groups: list[SpikeGroup] = []
    if isinstance(cell_groups, dict) and cell_groups and len(pops) == 1:
        for name, ids in cell_groups.items():
            groups.append(SpikeGroup(str(name), pops[0], len(ids), ids.start, ids.stop))
    else:
        for s, pop in zip(spike_specs, pops):
            n = s.attrs.get("n_nodes", s.attrs.get("n_neurons"))
            if isinstance(sizes_cfg, int) and len(pops) == 1:
                n = sizes_cfg
            elif isinstance(sizes_cfg, dict) and pop in sizes_cfg:
                n = sizes_cfg[pop]
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
                raise r.error("neurons", f"size of population {pop!r} unknown or invalid "
                                         f"({n!r}); set neurons = {{{pop} = N}}")
            groups.append(SpikeGroup(pop, pop, int(n)))
    region = spike_specs[0].regions[0] if spike_specs[0].regions else "spiking"
    idx = getattr(engine_object, "region_indices", None)
    if region_labels is not None and idx is not None and len(idx) == 1:
        region = region_labels[idx[0]]
    return _guard(r, "bin", lambda: SpikeRateMonitor(groups, bin_ms, region=region,
                                                     start_ms=spike_specs[0].start_ms))
