"""The main loop: engines advance over sync windows and exchange data through the bus.

One protocol, two transports.  Window ``k`` covers ``[kΔ, (k+1)Δ)`` ms (times are
computed as ``k·Δ``, never accumulated):

1. the **coordinator** (the bus; rank 0 under MPI) sends every engine part its input for
   window k (:mod:`cosim.bus`: delayed afferent samples for neural masses, the delayed
   weighted drive for spiking regions);
2. every **part** (:mod:`cosim.parts`) advances its engine over the window and sends back
   its exports (afferents, spike counts), records and timing;
3. the coordinator stores the exports in the bus history (spike counts of all parts of a
   region are summed — integers, exact — and turned into the region's rate by the
   spikes → rate adapter), merges the parts' records into the single-process layout,
   applies the monitors and hands the window to the recorder.

Every number is computed by the same code in the same order whatever the number of
processes, so one process, ``mpiexec -n 3`` and ``mpiexec -n 4`` give identical bits.
Because every connection between parts is delayed by at least Δ, step 1 of window k+1
needs only window k's exports (the MUSIC / NEST min-delay argument).

Sends are non-blocking (``Isend``); a part posts its window-k output and immediately
waits for its window-(k+1) input, so its message travels while the other parts finish.
Each rank times *compute* (its engine or the bus), *communicate* (packing, posting,
receiving, unpacking) and *wait* (blocked until a slower partner's message arrives).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from .bus import Bus, BusPart
from .checkpoint import Checkpointer
from .errors import CosimError
from .coupling_layout import CouplingLayout, coupling_layout
from .monitoring import timing_payload
from .parts import NeuralMassPart, PlainPart, SpikingPart
from .plan import BUS_RANK, Plan, make_plan
from .recording import Recorder, default_output_path
from .transport import MPITransport, RemoteError

TAG_INIT, TAG_INPUT, TAG_OUTPUT = 10, 11, 12


@dataclass
class RunSummary:
    """What a finished run reports (wall-clock seconds)."""

    output: Path
    simulated_ms: float
    wall_s: float
    build_s: float
    compute_s: dict[str, float] = field(default_factory=dict)
    timing: np.ndarray | None = None            # (window, rank, phase) seconds
    n_ranks: int = 1

    @property
    def wall_per_simulated_s(self) -> float:
        return self.wall_s / (self.simulated_ms / 1000.0) if self.simulated_ms else float("nan")

    def timing_lines(self) -> list[str]:
        """Per-rank totals of compute / communicate / wait and the communication share."""
        if self.timing is None or not len(self.timing):
            return []
        tot = self.timing.sum(axis=0)          # (rank, phase)
        lines = []
        for r in range(tot.shape[0]):
            c, m, w = tot[r]
            lines.append(f"rank {r}: compute {c:.2f} s, communicate {m:.3f} s, wait {w:.2f} s")
        share = tot[:, 1].sum() / max(self.wall_s * tot.shape[0], 1e-12)
        lines.append(f"communication: {100 * share:.2f} % of wall time (all ranks)")
        return lines


class Progress:
    """Prints simulated time, wall time and speed to ``stream`` at most every ``every_s``."""

    def __init__(self, total_ms: float, stream: TextIO | None = sys.stderr, every_s: float = 2.0,
                 start_ms: float = 0.0):
        self.total_ms = total_ms
        self.start_ms = start_ms
        self.stream = stream
        self.every_s = every_s
        self.t_start = time.perf_counter()
        self._last = self.t_start

    def update(self, t_ms: float, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        wall = now - self.t_start
        done = t_ms - self.start_ms
        speed = wall / (done / 1000.0) if done > 0 else float("nan")
        eta = speed * (self.total_ms - t_ms) / 1000.0 if done > 0 else float("nan")
        print(f"[cosim] t = {t_ms:.1f} / {self.total_ms:.1f} ms ({100.0 * t_ms / self.total_ms:5.1f} %)"
              f"  wall {wall:.1f} s  {speed:.3f} s wall per simulated s"
              f"  (real-time factor {1.0 / speed if speed > 0 else float('inf'):.2f})"
              f"  ETA {eta:.1f} s", file=self.stream, flush=True)


# --------------------------------------------------------------------------------------
# Building parts (every rank does this the same way)
# --------------------------------------------------------------------------------------

def make_part(scenario, layout: CouplingLayout, name: str, part: int, n_parts: int,
              exchange=None):
    """The part object for partition ``part`` of engine ``name``."""
    engine = scenario.engines[name]
    if n_parts > 1:
        engine = engine.partition(part, n_parts, exchange)
    if not layout.uses_bus or name not in layout.coupled:
        return PlainPart(engine)
    if scenario.engine_types[name] == "neural_mass":
        return NeuralMassPart(engine)
    return SpikingPart(engine, layout.inputs_of.get(name, ()), scenario.simulation.seed,
                       layout.bus_dt_ms, layout.populations[name])


# --------------------------------------------------------------------------------------
# The coordinator: bus, spikes→rate adapters, record merging, monitors, recorder
# --------------------------------------------------------------------------------------

class Coordinator:
    """Everything rank 0 (or the only process) does besides running engines."""

    def __init__(self, scenario, layout: CouplingLayout, plan: Plan, recorder: Recorder | None):
        self.sc = scenario
        self.layout = layout
        self.plan = plan
        self.recorder = recorder
        self.keys = [(g.name, p) for g in plan.groups for p in range(g.n_parts)]
        self.monitors = getattr(scenario, "monitors", None) or {}
        self.bus = None
        if layout.uses_bus:
            self.bus = Bus(scenario.connectome, layout.steps, layout.window_steps, layout.n_afferent,
                           layout.read_ahead)
            self._bus_parts = {}
            for name in layout.coupled:
                eng = scenario.engines[name]
                kind = "neural_mass" if scenario.engine_types[name] == "neural_mass" else "spiking"
                self._bus_parts[name] = self.bus.add_part(
                    BusPart(name, 0, kind, np.asarray(eng.region_indices, dtype=np.int64)))
            self.bus.finalise()
            self.rates = layout.make_rate_adapters(scenario)
        # probe columns of every part of split spiking engines (for merging records)
        self._probe_ids = {}
        for g in plan.groups:
            if g.n_parts > 1:
                for p in range(g.n_parts):
                    self._probe_ids[(g.name, p)] = scenario.engines[g.name].partition(p, g.n_parts).probe_ids
        self._records: dict = {}
        self._counts: dict = {}
        #: latest firing rates for live monitoring: engine → {region or group: Hz}
        self.live_rates: dict[str, dict[str, float]] = {}

    # -- set-up ---------------------------------------------------------------------
    def initial(self, key, msg: dict) -> None:
        """Initial afferent history exported by a part (neural masses): its last
        ``bus.initial_length()`` samples (an engine may keep more than the bus needs)."""
        if self.bus is None or "afferent" not in msg:
            return
        name = key[0]
        regions = self._bus_parts[name].regions
        aff = msg["afferent"]
        L = self.bus.initial_length()
        if aff.shape[0] < L:
            raise RuntimeError(f"engine {name!r} exported {aff.shape[0]} initial samples, "
                               f"the bus needs {L}")
        self.bus.put_initial(regions, aff[aff.shape[0] - L:])

    def begin(self, resume_state: dict | None) -> None:
        """After every part's initial history: restore a checkpoint, or give the spiking
        regions their initial afferent (the map of 0 Hz)."""
        if resume_state is not None:
            self.restore(resume_state)
        else:
            self.initial_spiking()

    def initial_spiking(self) -> None:
        if self.bus is None:
            return
        for name, adapter in self.rates.items():
            regions = self._bus_parts[name].regions
            L = self.bus.initial_length()
            value = adapter.initial_afferent()
            self.bus.put_initial(regions, np.full((L, self.bus.n_aff, 1), value))

    # -- per window -----------------------------------------------------------------
    def needs_input(self, key) -> bool:
        """Whether the part ``key`` takes bus input (parts not coupled run ahead freely)."""
        return self.bus is not None and key[0] in self._bus_parts

    def inputs(self, k: int, key) -> dict:
        if self.bus is None:
            return {}
        part = self._bus_parts.get(key[0])
        if part is None:
            return {}
        if part.kind == "neural_mass":
            return {"sources": self.bus.neural_mass_input(k, part)}
        return {"drive": self.bus.spiking_input(k, part)}

    def take(self, k: int, key, exports: dict, records: dict) -> None:
        name = key[0]
        self._records.setdefault(name, {})[key[1]] = records
        if self.bus is None:
            return
        if "afferent" in exports:
            self.bus.put_window(k, self._bus_parts[name].regions, exports["afferent"])
        elif "counts" in exports:
            c = self._counts.get(name)
            self._counts[name] = exports["counts"] if c is None else c + exports["counts"]

    def finish(self, k: int, t1: float, timing: np.ndarray) -> None:
        """Close window ``k``: :meth:`finish_bus` then :meth:`finish_records`."""
        self.finish_bus(k)
        self.finish_records(k, t1, timing)

    def finish_bus(self, k: int) -> None:
        """Spiking regions' rates of window ``k`` into the bus history (after every part's
        :meth:`take`); from here on the inputs of window ``k + 1`` can be sent."""
        if self.bus is not None:
            for name, counts in self._counts.items():
                if name in self.rates:
                    aff = self.rates[name].afferent(counts)          # (S,)
                    self.live_rates[name] = {
                        self.sc.connectome.region_labels[int(self._bus_parts[name].regions[0])]:
                            self.rates[name].last_rate_hz}
                    self.bus.put_window(k, self._bus_parts[name].regions,
                                        aff.reshape(-1, 1, 1) * np.ones((1, self.bus.n_aff, 1)))
            self._counts.clear()

    def finish_records(self, k: int, t1: float, timing: np.ndarray) -> None:
        """Merge the parts' records of window ``k``, apply monitors, hand to the recorder."""
        outputs = {}
        for g in self.plan.groups:
            recs = self._merge(g, self._records.pop(g.name, {}))
            if g.name in self.monitors:
                recs = self.monitors[g.name].apply(recs, t1)
                self._note_rates(g.name, recs)
            outputs[g.name] = _Out(recs)
        if self.recorder is not None:
            self.recorder.write_window(outputs, timing, t_end_ms=t1)

    def _note_rates(self, engine: str, records: dict) -> None:
        """Remember the last sample of a rate monitor (``[record.<engine>.rate]``)."""
        for spec in self.monitors[engine].record_specs():
            if spec.attrs.get("monitor") == "rate" and spec.dataset in records:
                x = records[spec.dataset]
                if getattr(x, "shape", (0,))[0]:
                    self.live_rates[engine] = {str(r): float(v)
                                               for r, v in zip(spec.regions, x[-1, 0])}

    def live_payload(self, timing, groups, engine_compute: dict | None = None) -> dict:
        """What the live monitor publishes after a window: timing and region rates.
        ``engine_compute``: per-engine compute seconds of the window (one process, where
        every engine shares rank 0)."""
        payload = {**timing_payload(timing, groups), "rates_hz": self.live_rates}
        if engine_compute is not None:
            payload["engines"] = {n: {"compute_s": v} for n, v in engine_compute.items()}
        return payload

    def _merge(self, g, by_part: dict) -> dict:
        if g.n_parts == 1:
            return by_part.get(0, {})
        merged = {}
        first = by_part[0]
        for ds, value in first.items():
            if isinstance(value, tuple):                       # spikes (gids, times)
                gids = np.concatenate([np.asarray(by_part[p][ds][0]) for p in range(g.n_parts)])
                ts = np.concatenate([np.asarray(by_part[p][ds][1]) for p in range(g.n_parts)])
                order = np.lexsort((gids, ts))
                merged[ds] = (gids[order], ts[order])
            else:                                              # (time, 1, probe) columns
                n_probe = sum(by_part[p][ds].shape[2] for p in range(g.n_parts))
                out = np.empty(first[ds].shape[:2] + (n_probe,))
                for p in range(g.n_parts):
                    out[:, :, self._probe_ids[(g.name, p)]] = by_part[p][ds]
                merged[ds] = out
        return merged

    def state(self) -> dict[str, np.ndarray]:
        """Bus history, spike→rate filters and monitors, as one flat dict (checkpoints)."""
        st = {}
        for n, m in self.monitors.items():
            st.update({f"monitor:{n}:{k}": v for k, v in m.state().items()})
        if self.bus is not None:
            st.update({f"bus:{k}": v for k, v in self.bus.state().items()})
            for name, a in self.rates.items():
                st.update({f"rate:{name}:{k}": v for k, v in a.state().items()})
        return st

    def restore(self, st: dict[str, np.ndarray]) -> None:
        def sub(prefix):
            return {k[len(prefix):]: v for k, v in st.items() if k.startswith(prefix)}
        for n, m in self.monitors.items():
            m.restore(sub(f"monitor:{n}:"))
        if self.bus is not None:
            self.bus.restore(sub("bus:"))
            for name, a in self.rates.items():
                a.restore(sub(f"rate:{name}:"))


@dataclass
class _Out:
    records: dict


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------

def run_scenario(scenario, *, output: Path | None = None, overwrite: bool = False,
                 progress_stream: TextIO | None = sys.stderr, resume: bool = False,
                 on_window: Callable[[int, float, Callable], None] | None = None) -> RunSummary:
    """Run ``scenario`` in this process (every engine and the bus) and write its output.

    ``resume``: continue from the last checkpoint of this output (see :mod:`cosim.checkpoint`).
    ``on_window(k, t_ms, payload)`` is called after every window (``payload()`` gives the
    window's timing as a dict, for live monitoring).
    """
    sim = scenario.simulation
    layout = coupling_layout(scenario)
    plan = make_plan(scenario, 1)
    out_path = out_path_of(scenario, output)
    ck = Checkpointer(out_path, sim.checkpoint_every_windows)
    k_start, cstate, lengths = ck.load_coordinator() if resume else (0, None, None)
    recorder = Recorder(out_path, scenario, _record_specs(scenario), n_ranks=1,
                        flush_every=scenario.record.flush_every, overwrite=overwrite,
                        resume_lengths=lengths)
    try:
        coord = Coordinator(scenario, layout, plan, recorder)
        t_build = time.perf_counter()
        parts = {key: make_part(scenario, layout, key[0], 0, 1) for key in coord.keys}
        for key, part in parts.items():
            part.build()
            if resume:
                part.restore(ck.load_part(key, k_start))
            else:
                coord.initial(key, part.initial())
        coord.begin(cstate if resume else None)
        build_s = time.perf_counter() - t_build
        progress = Progress(sim.duration_ms, progress_stream, start_ms=k_start * sim.sync_interval_ms)
        compute = {key[0]: 0.0 for key in parts}
        timing = np.zeros((1, 3))
        t_loop = time.perf_counter()
        dt_sync = sim.sync_interval_ms
        window_compute = {key[0]: 0.0 for key in parts}
        for k in range(k_start, sim.n_windows):
            t0, t1 = k * dt_sync, (k + 1) * dt_sync
            timing[:] = 0.0
            for key, part in parts.items():
                exports, records, spent = part.step(k, t0, t1, coord.inputs(k, key))
                compute[key[0]] += spent
                window_compute[key[0]] = spent
                timing[0, 0] += spent
                if ck.due(k):
                    ck.save_part(key, k + 1, part.state())
                coord.take(k, key, exports, records)
            coord.finish(k, t1, timing)
            if ck.due(k):
                recorder.flush()
                ck.save_coordinator(k + 1, coord.state(), recorder.lengths())
            progress.update(t1)
            if on_window is not None:
                on_window(k, t1, lambda: coord.live_payload(timing, plan.groups, window_compute))
        wall = time.perf_counter() - t_loop
        progress.update(sim.duration_ms, force=True)
    except BaseException as exc:
        recorder.close("failed", f"{type(exc).__name__}: {exc}")
        raise
    recorder.close("completed")
    return RunSummary(out_path, sim.duration_ms - k_start * sim.sync_interval_ms, wall, build_s,
                      compute)


def _record_specs(scenario) -> dict:
    monitors = getattr(scenario, "monitors", None) or {}
    return {name: (monitors[name].record_specs() if name in monitors else e.record_specs())
            for name, e in scenario.engines.items()}


def run_mpi(scenario, comm, *, output: Path | None = None, overwrite: bool = False,
            progress_stream: TextIO | None = sys.stderr, resume: bool = False,
            on_window: Callable | None = None) -> RunSummary | None:
    """Run ``scenario`` over the ranks of ``comm`` (rank 0: bus and output file).

    Returns the summary on rank 0, ``None`` elsewhere.  Any exception on any rank aborts
    the whole job (``MPI_Abort``) after a one-line message naming engine and rank, so no
    rank is left waiting.
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    sim = scenario.simulation
    layout = coupling_layout(scenario)
    plan = make_plan(scenario, size)
    role, name, part_idx = plan.role(rank)
    # one communicator per engine (for the spike exchange of split regions)
    colour = 0 if role == "bus" else 1 + [g.name for g in plan.groups].index(name)
    ecomm = comm.Split(colour, rank)
    labels = {BUS_RANK: "the bus"}
    labels.update({r: f"engine {g.name}" for g in plan.groups for r in g.ranks})
    transport = MPITransport(comm, timeout_s=sim.exchange_timeout_s, labels=labels)
    who = "bus" if role == "bus" else f"engine {name}"
    _announce_ranks(comm, plan, out_path_of(scenario, output), progress_stream)
    out_path = out_path_of(scenario, output)
    ck = Checkpointer(out_path, sim.checkpoint_every_windows)
    k_start = 0
    if resume:   # every rank reads the commit point; the same window everywhere
        k_start = ck.load_coordinator()[0] if rank == BUS_RANK else None
        k_start = comm.bcast(k_start, root=BUS_RANK)
    try:
        if role == "bus":
            return _run_bus(scenario, layout, plan, transport, out_path, overwrite,
                            progress_stream, ck, resume, on_window)
        _run_part(scenario, layout, plan, transport, name, part_idx, ecomm, ck, k_start, resume)
        return None
    except RemoteError as exc:    # an engine reported its error: the bus closed the file
        print(f"cosim: {labels.get(exc.rank, 'rank')} (rank {exc.rank}) failed: {exc}",
              file=sys.stderr, flush=True)
        time.sleep(0.5)           # let the launcher forward the line before it kills us
        comm.Abort(exc.code)
        os._exit(exc.code)
    except BaseException as exc:  # one line, then take every rank down: never a hang
        text = _error_text(exc)
        code = 2 if isinstance(exc, CosimError) else 1
        if role != "bus":
            # hand the error to the bus, which closes the output file (every completed
            # window kept, status "failed") and ends the job; abort ourselves if it cannot
            try:
                transport.send_error(BUS_RANK, text, code)
                time.sleep(5.0)   # the bus ends the job; if it cannot, say it ourselves
                print(f"cosim: {who} (rank {rank}) failed: {text}", file=sys.stderr, flush=True)
                time.sleep(0.5)
            finally:
                comm.Abort(code)
                os._exit(code)
        print(f"cosim: {who} (rank {rank}) failed: {text}", file=sys.stderr, flush=True)
        time.sleep(0.5)           # let the launcher forward the line before it kills us
        comm.Abort(code)
        os._exit(code)


def _error_text(exc: BaseException) -> str:
    return exc.message() if isinstance(exc, CosimError) else f"{type(exc).__name__}: {exc}"


def out_path_of(scenario, output) -> Path:
    sim = scenario.simulation
    return Path(output) if output is not None else (sim.output or default_output_path(scenario))


def ranks_file(output: Path) -> Path:
    """``<output>.ranks.json``: rank → pid, host, role of a multi-process run."""
    return Path(str(output) + ".ranks.json")


def _announce_ranks(comm, plan: Plan, output: Path, stream) -> None:
    """Gather every rank's pid and host on rank 0; write ``<output>.ranks.json`` and print
    one line per rank, so that a launcher's report of a dead PID names its engine."""
    import json
    import os
    import socket

    from .launch import start_death_sentinel

    start_death_sentinel(comm.Get_rank())
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    everyone = comm.gather(me, root=BUS_RANK)
    if comm.Get_rank() != BUS_RANK:
        return
    roles = {BUS_RANK: "bus"}
    for g in plan.groups:
        for p, r in enumerate(g.ranks):
            roles[r] = f"engine {g.name}" + (f" part {p + 1}/{g.n_parts}" if g.n_parts > 1 else "")
    table = {str(r): {**everyone[r], "role": roles[r]} for r in range(comm.Get_size())}
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        ranks_file(output).write_text(json.dumps(table, indent=1))
    except OSError:
        pass
    if stream is not None:
        for r in range(comm.Get_size()):
            e = table[str(r)]
            print(f"[cosim] rank {r} (pid {e['pid']} on {e['host']}): {e['role']}", file=stream,
                  flush=True)


def _allgather_exchange(ecomm):
    """``exchange(gids, times)`` for a split spiking region: Allgatherv over ``ecomm``."""
    from mpi4py import MPI

    def exchange(gids, times):
        gids = np.ascontiguousarray(gids, dtype=np.int64)
        times = np.ascontiguousarray(times, dtype=np.float64)
        counts = np.array(ecomm.allgather(gids.size), dtype=np.int64)
        displ = np.concatenate([[0], np.cumsum(counts)[:-1]])
        all_g = np.empty(counts.sum(), dtype=np.int64)
        all_t = np.empty(counts.sum(), dtype=np.float64)
        ecomm.Allgatherv(gids, [all_g, counts, displ, MPI.INT64_T])
        ecomm.Allgatherv(times, [all_t, counts, displ, MPI.DOUBLE])
        return all_g, all_t

    return exchange


def _run_part(scenario, layout, plan, transport, name, part_idx, ecomm, ck, k_start, resume):
    g = plan.group(name)
    exchange = _allgather_exchange(ecomm) if g.n_parts > 1 else None
    part = make_part(scenario, layout, name, part_idx, g.n_parts, exchange)
    part.build()
    key = (name, part_idx)
    if resume:
        part.restore(ck.load_part(key, k_start))
    transport.send(None, BUS_RANK, TAG_INIT, {} if resume else part.initial())
    sim = scenario.simulation
    dt_sync = sim.sync_interval_ms
    needs_input = type(part) is not PlainPart      # same rule as Coordinator.needs_input
    for k in range(k_start, sim.n_windows):
        c0, w0 = transport.comm_s, transport.wait_s
        inputs = transport.recv(BUS_RANK, None, TAG_INPUT) if needs_input else {}
        t0, t1 = k * dt_sync, (k + 1) * dt_sync
        exports, records, spent = part.step(k, t0, t1, inputs)
        if ck.due(k):      # before the output leaves: complete when the bus hears of it
            ck.save_part(key, k + 1, part.state())
        msg = {f"x:{k2}": v for k2, v in exports.items()}
        for ds, value in records.items():
            if isinstance(value, tuple):
                msg[f"s:{ds}:g"] = np.asarray(value[0], dtype=np.int64)
                msg[f"s:{ds}:t"] = np.asarray(value[1], dtype=np.float64)
            else:
                msg[f"r:{ds}"] = np.asarray(value)
        msg["timing"] = np.array([spent, transport.comm_s - c0, transport.wait_s - w0])
        transport.send(None, BUS_RANK, TAG_OUTPUT, msg)
        transport.flush_sends()
    transport.close()


def _split_message(msg):
    exports, records = {}, {}
    for key, v in msg.items():
        kind, _, rest = key.partition(":")
        if kind == "x":
            exports[rest] = v
        elif kind == "r":
            records[rest] = v
        elif kind == "s" and rest.endswith(":g"):
            ds = rest[:-2]
            records[ds] = (v, msg[f"s:{ds}:t"])
    return exports, records, msg["timing"]


def _run_bus(scenario, layout, plan, transport, out_path, overwrite, progress_stream, ck, resume,
             on_window=None):
    sim = scenario.simulation
    k_start, cstate, lengths = ck.load_coordinator() if resume else (0, None, None)
    recorder = Recorder(out_path, scenario, _record_specs(scenario), n_ranks=plan.world_size,
                        flush_every=scenario.record.flush_every, overwrite=overwrite,
                        resume_lengths=lengths)
    try:
        coord = Coordinator(scenario, layout, plan, recorder)
        t_build = time.perf_counter()
        ranks = {(g.name, p): r for g in plan.groups for p, r in enumerate(g.ranks)}
        for key in coord.keys:
            coord.initial(key, transport.recv(ranks[key], None, TAG_INIT))
        coord.begin(cstate if resume else None)
        build_s = time.perf_counter() - t_build
        progress = Progress(sim.duration_ms, progress_stream, start_ms=k_start * sim.sync_interval_ms)
        timing = np.zeros((plan.world_size, 3))
        all_timing = []
        t_loop = time.perf_counter()
        dt_sync = sim.sync_interval_ms
        def send_inputs(k):
            for key in coord.keys:
                if coord.needs_input(key):
                    transport.send(None, ranks[key], TAG_INPUT, coord.inputs(k, key))

        # Window k's inputs leave as soon as window k−1's outputs are in the bus; the
        # records of window k−1 are merged, monitored and written while the parts compute.
        send_inputs(k_start)
        for k in range(k_start, sim.n_windows):
            c0, w0 = transport.comm_s, transport.wait_s
            tic = time.perf_counter()
            for key in coord.keys:
                exports, records, t = _split_message(transport.recv(ranks[key], None, TAG_OUTPUT))
                timing[ranks[key]] = t
                coord.take(k, key, exports, records)
            coord.finish_bus(k)
            if k + 1 < sim.n_windows:
                send_inputs(k + 1)
            t1 = (k + 1) * dt_sync
            coord_spent = time.perf_counter() - tic - (transport.comm_s - c0) - (transport.wait_s - w0)
            timing[BUS_RANK] = (coord_spent, transport.comm_s - c0, transport.wait_s - w0)
            coord.finish_records(k, t1, timing)
            if ck.due(k):
                recorder.flush()
                ck.save_coordinator(k + 1, coord.state(), recorder.lengths())
            all_timing.append(timing.copy())
            transport.flush_sends()
            progress.update(t1)
            if on_window is not None:
                on_window(k, t1, lambda: coord.live_payload(timing, plan.groups))
        wall = time.perf_counter() - t_loop
        progress.update(sim.duration_ms, force=True)
        transport.close()
    except BaseException as exc:
        recorder.close("failed", f"{type(exc).__name__}: {exc}")
        raise
    recorder.close("completed")
    tarr = np.array(all_timing)
    compute = {g.name: float(tarr[:, list(g.ranks), 0].sum()) for g in plan.groups}
    return RunSummary(out_path, sim.duration_ms - k_start * sim.sync_interval_ms, wall, build_s,
                      compute, tarr, plan.world_size)
