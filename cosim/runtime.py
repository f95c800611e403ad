"""The main loop: engine parts advance over sync windows and exchange data directly.

One loop (:func:`window_loop`), two transports (:mod:`cosim.transport`).  A run is a set
of *nodes* — the **coordinator** (:class:`Hub` with the record pipeline,
:mod:`cosim.pipeline`; rank 0 under MPI) and one **part** per engine partition
(:mod:`cosim.parts`; one per rank under MPI) — and every process runs the same loop over
the nodes it hosts: all of them in one process (:func:`run_scenario`), one under MPI
(:func:`run_mpi`).  The bus is distributed (:mod:`cosim.exchange`): every process computes
the same pattern from the connectome and the plan — who sends which region columns to
whom — and each part keeps the history it reads.  Window ``k`` covers ``[kΔ, (k+1)Δ)`` ms
(times are computed as ``k·Δ``, never accumulated):

1. every part takes its input of window k from what it keeps (the new samples of its
   sources, or its region's delayed weighted drive), advances its engine and sends its
   afferent columns to their readers (``AFFERENT``) — a part of a split spiking region
   its spike counts to the region's first part (``COUNTS``);
2. the first part of each spiking region sums its parts' counts (integers, exact), turns
   them into the region's afferent with its spikes → rate adapter and sends it on;
3. every part receives window k's columns from their owners, saves its checkpoint when
   one is due, and sends its ``OUTPUT`` (records, timing) to the coordinator, which merges
   the records (each engine's own merge), applies the monitors and hands the window to
   the recorder.

Every number is computed by the same code in the same order whatever the number of
processes, so one process and any ``mpiexec -n K`` give identical bits.  Because every
connection between parts is delayed by at least Δ, the inputs of window k + 1 need only
window k's exports (the MUSIC / NEST min-delay argument); a part whose inputs are all
delayed by at least 2Δ runs ahead — it advances window k + 1 before window k's columns
have arrived (:mod:`cosim.exchange`, run-ahead).  A part's messages per window
depend on its neighbourhood in the connectome, not on the number of processes; the
coordinator receives one ``OUTPUT`` per part (records and timing, not bus data).
Messages: :mod:`cosim.messages`.

**Stopping on a signal.**  SIGTERM (what SLURM sends at the time limit and on ``scancel``)
or SIGINT on any rank sets a flag.  After each window ``k`` every process joins a vote on
it (:meth:`~cosim.transport.Transport.vote_start`: a non-blocking ``Iallreduce(MAX)`` of
the signal number under MPI, O(log P) messages per rank); the parts complete it after
window k + 1, while window k + 1 computed, so a signal voted after window k stops every
part after the same window, k + 1.  Every part then saves a final checkpoint (when
``checkpoint_every`` is set) and sends the coordinator an ``OUTPUT`` holding ``@stop``
instead of window k + 2's; the coordinator commits the checkpoint, closes the output with
status ``terminated`` and every window written, and sends ``DONE``.  The coordinator joins
every vote but never waits for one (it learns of a stop from the parts), so it always
waits for a part's message, with the shortest timeout, and names a part that stopped
responding; a part whose vote does not complete names the coordinator.  A second signal
ends the process at once (the failure path).  A failing rank reports its error to the
coordinator (:meth:`~cosim.transport.MPITransport.send_error`), which closes the output and
ends the job.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from . import numba_threads
from .checkpoint import Checkpointer, fingerprint
from .coupling_layout import coupling_layout
from .exchange import exchange_pattern
from .errors import CosimError
from .messages import Kind, Output, decode_output, encode_output
from .monitoring import timing_payload
from .parts import Part, make_part
from .pipeline import RecordPipeline, record_specs
from .plan import BUS_RANK, Plan, make_plan
from .progress import Progress, RunSummary
from .recording import Recorder, default_output_path
from .transport import BUS, InProcessTransport, MPITransport, PartnerLost, RemoteError, Stalled

__all__ = ["RunSummary", "Terminated", "run_scenario", "run_mpi", "window_loop"]


class Terminated(Exception):
    """The run was stopped by a signal at a window boundary; the output is closed with
    status ``terminated`` (exit code ``128 + signum``)."""

    def __init__(self, signum: int, summary: RunSummary | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.summary = summary


class StopFlag:
    """SIGTERM / SIGINT → a flag read at window boundaries; a second signal aborts.

    Entered once per process (the command line enters it before anything else, so that a
    signal during start-up is held until the first window boundary rather than killing one
    rank of an MPI job); nested entries share the outer flag."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    _active: "StopFlag | None" = None

    def __init__(self):
        self.signum = 0
        self._old = {}
        self._outer = None

    def __enter__(self):
        if StopFlag._active is not None:
            self._outer = StopFlag._active
            return self._outer
        StopFlag._active = self
        try:
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        except ValueError:          # not the main thread: leave signals alone
            self._old.clear()
        return self

    def _handle(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt(f"second signal ({signal.Signals(signum).name})")
        self.signum = signum

    def __exit__(self, *exc):
        if self._outer is not None:
            return False
        StopFlag._active = None
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


# --------------------------------------------------------------------------------------
# The bus side of a run: bus node, record pipeline, recorder, checkpoints, progress
# --------------------------------------------------------------------------------------

@dataclass
class Reporting:
    """How the parts tell the coordinator of their windows.  Loud (one process, or
    one-file output): an ``OUTPUT`` per part per window (records, timing, live rate).
    Quiet (MPI with parallel output): a part whose records its rank file holds sends none;
    the coordinator learns that a window is done from the stop vote, and the parts' timing
    once at the end — so its per-window messages do not grow with the number of parts.  With
    a live monitor the quiet parts send their timing and live rate every ``status_every``
    windows (the output's ``flush_every``)."""

    quiet: bool = False
    status_every: int = 0
    timing: list = field(default_factory=list)  # a quiet part's (compute, communicate, wait)

    @classmethod
    def of(cls, scenario, recorder, on_window) -> "Reporting":
        if getattr(recorder, "parallel", None) is None:
            return cls()
        return cls(True, int(scenario.record.flush_every) if on_window is not None else 0)

    def status_due(self, k: int) -> bool:
        return bool(self.status_every) and (k + 1) % self.status_every == 0


class Hub:
    """What the coordinator does per window (rank 0, or the one process): the parts'
    records and timing into the record pipeline, checkpoints' commit, progress.  It is not
    on the bus (:mod:`cosim.exchange`)."""

    def __init__(self, scenario, plan: Plan, layout, transport, recorder: Recorder,
                 ck: Checkpointer, progress: Progress, on_window, stop: StopFlag):
        self.sc = scenario
        self.plan = plan
        self.transport = transport
        self.recorder = recorder
        self.ck = ck
        self.progress = progress
        self.on_window = on_window
        self.stop = stop
        # without a live monitor, windows reach the monitors and the recorder in batches
        # (each flush, checkpoint and the end): the same file, less Python per window
        self.pipeline = RecordPipeline(scenario, plan, recorder, batch=on_window is None)
        self.keys = [(g.name, p) for g in plan.groups for p in range(g.n_parts)]
        self.rank = {(g.name, p): r for g in plan.groups for p, r in enumerate(g.ranks)}
        #: parallel output: the parts of an engine its parts write send the coordinator no
        #: per-window output; it follows them through the stop vote (:meth:`follow_vote`)
        self.reporting = Reporting.of(scenario, recorder, on_window)
        written = recorder.parallel.engines if self.reporting.quiet else ()
        self.quiet = [key for key in self.keys if key[0] in written]
        self.loud = [key for key in self.keys if key[0] not in written]
        #: the ranks a window with quiet parts hears from (the coordinator's and the loud
        #: parts'): such a window's timing rows are these ranks' only, so the coordinator's
        #: per-window work does not grow with the number of ranks; :meth:`adopt` fills
        #: the quiet parts' rows in at the end
        self._heard = sorted({BUS_RANK} | {self.rank[key] for key in self.loud})
        self._row_of = {r: i for i, r in enumerate(self._heard)}
        self._dt_sync = scenario.simulation.sync_interval_ms
        self._lanes = {key: transport.lane(key, BUS, Kind.OUTPUT) for key in self.keys}
        self.stop_at: int | None = None      # quiet: the window the parts' @stop comes at
        self._commit_at_end: int | None = None
        #: each window's timing rows, ``(ranks heard, 3)`` seconds (lists of floats)
        self.all_timing: list[list] = []
        self.engine_compute = {g.name: 0.0 for g in plan.groups}
        self.stop_after: int | None = None
        self.signum = 0
        self._fingerprint = None
        labels = scenario.connectome.region_labels
        #: latest spiking-region rates for live monitoring: engine → {region: Hz}
        self.live_rates: dict[str, dict[str, float]] = {}
        self._rate_label = {name: labels[int(scenario.engines[name].region_indices[0])]
                            for name in (layout.outputs_of if layout.active(plan) else ())}

    def begin(self, resume_state: dict | None) -> None:
        """Restore the record pipeline from the coordinator checkpoint."""
        if resume_state is not None:
            self.pipeline.restore(resume_state)

    def window(self, k: int, n_windows: int) -> bool:
        """Collect window ``k``'s records and timing, write window ``k``.  Returns True
        when the parts stopped instead (a signal: they saved their final checkpoints)."""
        tr = self.transport
        c0, w0 = tr.comm_s, tr.wait_s
        tic = time.perf_counter()
        keys = (self.keys if not self.quiet or k == self.stop_at
                or self.reporting.status_due(k) else self.loud)
        lanes = self._lanes
        msgs = [lanes[key].get() for key in keys]
        stops = [int(m["@stop"]) for m in msgs if type(m) is not Output and "@stop" in m]
        if stops:
            if len(stops) != len(msgs):
                raise RuntimeError(f"protocol error: {len(stops)} of {len(msgs)} parts stopped "
                                   f"before window {k}")
            self.stop_after, self.signum = k, max(stops)
            return True
        # one row per rank, or per rank heard from (_heard) in a window with quiet parts;
        # Python floats: the same sums, without numpy calls
        row_of = None if keys is self.keys else self._row_of
        rows = [[0.0, 0.0, 0.0] for _ in range(self.plan.world_size if row_of is None
                                                else len(self._heard))]
        compute = self.engine_compute
        for key, msg in zip(keys, msgs):
            if type(msg) is Output:                 # in one process: handed over as is
                live, records, t = msg.exports, msg.records, msg.timing
                c, m, w = t[0], t[1], t[2]
            else:
                live, records, t = decode_output(msg)
                c, m, w = t.tolist()[:3]
            r = self.rank[key]
            row = rows[r if row_of is None else row_of[r]]
            row[0] += c
            row[1] += m
            row[2] += w
            compute[key[0]] += c
            if "live_rate_hz" in live:
                self.live_rates[key[0]] = {self._rate_label[key[0]]: float(live["live_rate_hz"])}
            self.pipeline.take(key, records)
        t1 = (k + 1) * self._dt_sync
        spent = time.perf_counter() - tic - (tr.comm_s - c0) - (tr.wait_s - w0)
        row = rows[BUS_RANK if row_of is None else row_of[BUS_RANK]]
        row[0] += spent
        row[1] += tr.comm_s - c0
        row[2] += tr.wait_s - w0
        # the timing rows as they are, (world_size, 3) or (len(_heard), 3) in a window with
        # quiet parts (the recorder takes row 0, the coordinator's, which both begin with);
        # an array is made of them once, in the recorder's batch and at the end
        timing = rows
        due = self.ck.due(k)
        self.pipeline.finish(k, t1, timing, hold=not due and k + 1 < n_windows)
        if due:
            if self.quiet and k + 1 == n_windows:   # no vote after the last window: the
                self._commit_at_end = k + 1          # parts' DONE says their states are saved
            else:
                self.commit(k + 1)
        self.all_timing.append(timing)
        tr.flush_sends()
        self.progress.update(t1)
        if self.on_window is not None:
            self.on_window(k, t1, lambda: self.live_payload(self._full(timing)))
        return False

    def follow_vote(self, k: int, vote) -> None:
        """Quiet parts: wait for window ``k``'s stop vote, which the coordinator joined —
        complete, it says every part finished window ``k`` (its records in its rank file, its
        checkpoint saved).  A signal in it stops the parts after window ``k + 1``; their
        ``@stop`` comes at window ``k + 2``."""
        signum = self.transport.vote_wait(vote, self._unanswered)
        if signum and self.stop_at is None and k + 2 < self.sc.simulation.n_windows:
            self.stop_at = k + 2

    def votes_at(self, k: int) -> bool:
        """Whether the parts start a stop vote after window ``k`` (every window but the last,
        and not after they stopped)."""
        return k + 1 < self.sc.simulation.n_windows and k != self.stop_at

    def _unanswered(self, guess: int | None = None) -> int:
        """A vote did not complete within the timeout: ping every part; one that does not
        answer within 2 s (a part that waits answers from its transport's idle hook) is the
        silent one — ``guess`` (where the parts' waiting notices lead) if it is among
        them, else the first.  A part waiting in the vote says only that (it waits for no
        one rank), so the notices may lead to a part that answers."""
        tr = self.transport
        for key in self.keys:
            tr.send(key, Kind.INPUT, {"@ping": np.array(1)}, BUS)
        tr.flush_sends()
        pending = list(self.keys)
        t_end = time.perf_counter() + 2.0
        while pending and time.perf_counter() < t_end:
            pending = [key for key in pending if tr.poll(key, Kind.OUTPUT, BUS) is None]
            time.sleep(1e-3)
        silent = [self.rank[key] for key in pending]
        if guess in silent or (not silent and guess is not None):
            return guess
        return silent[0] if silent else BUS_RANK

    def _full(self, timing) -> np.ndarray:
        """A window's timing rows as ``(world_size, 3)`` (zeros where nothing was heard)."""
        timing = np.asarray(timing, dtype=np.float64)
        if timing.shape[0] == self.plan.world_size:
            return timing
        full = np.zeros((self.plan.world_size, timing.shape[1]))
        full[self._heard] = timing
        return full

    def adopt(self, reports: list[dict]) -> None:
        """The quiet parts' timing, gathered once at the end of the run (one report per
        rank): their rows of the summary's timing table and their engines' compute."""
        if not self.quiet or not self.all_timing:
            return
        table = np.array([self._full(t) for t in self.all_timing])
        for g in {key[0] for key in self.quiet}:
            self.engine_compute[g] = 0.0
        for key in self.quiet:
            rows = np.asarray(reports[self.rank[key]].get("timing", np.zeros((0, 3))))
            m = min(len(rows), len(table))
            table[:m, self.rank[key]] = rows[:m]
            self.engine_compute[key[0]] += float(rows[:, 0].sum()) if len(rows) else 0.0
        self.all_timing = list(table)

    def commit(self, window: int) -> None:
        """Flush the output and write the coordinator checkpoint (the commit point)."""
        self.pipeline.drain()
        self.recorder.flush()
        state = self.pipeline.state()
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.sc, self.plan)
        self.ck.save_coordinator(window, state, self.recorder.lengths(), self._fingerprint,
                                 self.sc.simulation.duration_ms)

    def end(self, stopped: bool) -> None:
        """After the last window: on a stop, wait for the parts' final checkpoints and
        commit them; close the output; tell every part it may exit."""
        if not stopped and self.recorder.parallel is not None:
            # parallel output: every part closed its rank file before its DONE (after a
            # stop, before its @stop output)
            for key in self.keys:
                self.transport.recv(key, Kind.DONE, BUS)
            if self._commit_at_end is not None:
                self.commit(self._commit_at_end)
        self.pipeline.drain()
        if stopped:                  # the parts' final checkpoints are saved (window())
            if self.ck.every:
                self.commit(self.stop_after)
            self.recorder.close("terminated", f"stopped by {signal.Signals(self.signum).name}")
        else:
            self.recorder.close("completed")
        for key in self.keys:
            self.transport.send(key, Kind.DONE, {}, BUS)
        self.transport.flush_sends()

    def live_payload(self, timing) -> dict:
        rates = dict(self.pipeline.live_rates)
        rates.update(self.live_rates)
        return {**timing_payload(timing, self.plan.groups), "rates_hz": rates}


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------

def window_loop(scenario, transport, parts: dict[tuple[str, int], Part], hub: Hub | None,
                ck: Checkpointer, k_start: int, stop: StopFlag, writer=None,
                reporting: Reporting | None = None) -> int:
    """Run windows ``k_start … n − 1`` for the nodes of this process (``parts`` and, on the
    coordinator's process, ``hub``).  Returns the number of the signal that stopped the run
    early (0: it ran to the end).  ``writer``: this part's rank file (parallel output);
    ``reporting``: whether its windows' outputs go to the coordinator (:class:`Reporting`)."""
    reporting = reporting or Reporting()
    sim = scenario.simulation
    n = sim.n_windows
    dt_sync = sim.sync_interval_ms
    items = list(parts.items())
    links = [part.link for _, part in items if part.link is not None]
    done: list = [None] * len(items)
    hands_over = transport.hands_over   # in one process an OUTPUT goes unencoded (Output)
    # the live rate is for a live monitor: in one process without one, nobody reads it
    live_rates = not hands_over or (hub is not None and hub.on_window is not None)
    out_lanes = [transport.lane(key, BUS, Kind.OUTPUT) for key, _ in items]
    vote = None                 # the parts' vote of the previous window
    open_votes: list = []       # the coordinator alone: votes it joined, not yet complete
    stopped = 0
    if writer is not None and items:
        key0 = items[0][0]

        def abort_check():        # also while waiting for a partner that failed
            msg = transport.poll(BUS, Kind.INPUT, key0)
            if msg is None:
                return
            if "@ping" in msg:    # the coordinator looks for a silent part: not this one
                transport.send(BUS, Kind.OUTPUT, {"@pong": np.array(1)}, key0)
                transport.flush_sends()
                return
            transport.idle = None                                        # "@abort"
            _flush_on_abort(transport, key0, writer)
        transport.idle = abort_check
    for k in range(k_start, n):
        if stopped:
            # the vote stopped the parts after window k − 1: final checkpoints, then the
            # coordinator hears of the stop instead of window k's output
            for link in links:
                link.catch_up(transport)
            if writer is not None:          # parallel output: this rank's file first
                writer.close("terminated")
            for key, part in items:
                _final_checkpoint(transport, ck, key, part, k, stopped)
            if hub is not None:
                hub.window(k, n)
            break
        t0, t1 = k * dt_sync, (k + 1) * dt_sync
        c0, w0 = transport.comm_s, transport.wait_s
        # 1. inputs from what each part keeps → advance → exports to their readers
        for i, (key, part) in enumerate(items):
            link = part.link
            exports, records, spent = part.step(k, t0, t1, link.input(k) if link is not None else {})
            if link is not None:
                link.send(k, exports, transport)
            done[i] = (records, spent)
        # 2. spiking regions: the heads sum their region's counts and send its afferent
        for link in links:
            link.combine(k, transport)
        # 3. window k's columns in (a run-ahead part: window k − 1's, unless it saves a
        # checkpoint now or this is the last window); checkpoint; records and timing out
        due = ck.due(k)
        for i, (key, part) in enumerate(items):
            link = part.link
            if link is not None:
                link.arrive(k, transport, hold=not due and k + 1 < n)
            if due:      # before the output leaves: complete when the coordinator hears of it
                ck.save_part(key, k + 1, part.state())
            records, spent = done[i]
            timing = (spent, transport.comm_s - c0, transport.wait_s - w0, stop.signum)
            live = ({"live_rate_hz": link.live_rate_hz if hands_over   # (a float, in process)
                     else np.array(link.live_rate_hz)}
                    if live_rates and link is not None and link.rate is not None else {})
            if writer is not None:          # parallel output: the part writes its records
                records = writer.take(key[0], records)
                writer.end_window(k, timing, flush=due)
                transport.idle()
            if not reporting.quiet:
                if hands_over:
                    out = Output(live, records, timing)
                    out_lanes[i].put(out, out.nbytes)
                else:
                    transport.send(BUS, Kind.OUTPUT, encode_output(live, records, timing), key)
                continue
            reporting.timing.append(timing[:3])
            if reporting.status_due(k):       # a live monitor: timing and live rate
                transport.send(BUS, Kind.OUTPUT, encode_output(live, {}, timing), key)
        if hub is not None and hub.quiet and hub.votes_at(k):
            # quiet parts: the coordinator joins window k's vote and waits for it
            hub.follow_vote(k, transport.vote_start(stop.signum))
        if hub is not None and hub.window(k, n):
            break                                   # the parts stopped (a signal)
        # the stop vote: every process joins one per window; the parts complete the
        # previous window's now, so they all stop after the same window, whoever caught
        # the signal.  The coordinator alone never waits for a vote (it learns of a stop
        # from the parts), so it can name a silent part.
        if items:
            if vote is not None:
                signum = transport.vote_finish(vote)
                if signum and k + 1 < n:
                    stopped = signum
            vote = transport.vote_start(stop.signum) if k + 1 < n else None
            if stopped and vote is not None:
                transport.vote_finish(vote)         # the coordinator joins it, then hears
                vote = None
        elif k + 1 < n and not hub.quiet:
            open_votes.append(transport.vote_start(stop.signum))
            open_votes = [v for v in open_votes if not transport.vote_ready(v)]
        transport.flush_sends()
        transport.window_done(k)
        if k == k_start + 1:    # every rank has done a window: start-up (compilation) is over
            transport.steady()
    for link in links:
        link.catch_up(transport)
    for v in open_votes:
        transport.vote_finish(v)
    if hub is not None and hub.stop_after is not None:
        return hub.signum
    return stopped


def _flush_on_abort(transport, key, writer) -> None:
    """The coordinator is closing a failed run: flush this rank's file (every window
    done), acknowledge, and wait to be ended with the job."""
    if writer is not None:
        try:
            writer.close("failed")
        except CosimError:
            pass
    transport.send(BUS, Kind.DONE, {}, key)
    transport.flush_sends()
    transport.recv(BUS, Kind.DONE, key)
    raise _Quiet()


def _drain(hub) -> None:
    """After a failure, before the output closes: the windows the record pipeline still
    holds are complete, so they are written as well (best effort: the failure may be the
    pipeline's own)."""
    if hub is not None:
        try:
            hub.pipeline.drain()
        except BaseException:
            pass


def _collect_flushes(transport, plan: Plan, recorder, exc) -> None:
    """A failed multi-process run with parallel output: every part but the failed one
    flushes its rank file (``@abort``) before the coordinator joins them, so the output
    keeps every window done, as a one-file run does.  A part that does not answer within
    a few seconds (stuck in its engine's exchange with a failed partner) keeps what it
    flushed before."""
    if getattr(recorder, "parallel", None) is None or isinstance(exc, (Stalled, PartnerLost)):
        return
    failed = exc.rank if isinstance(exc, RemoteError) else None
    keys = [(g.name, p) for g in plan.groups for p, r in enumerate(g.ranks) if r != failed]
    saved = transport.timeout_s
    transport.timeout_s = 5.0
    try:
        for key in keys:
            transport.send(key, Kind.INPUT, {"@abort": np.array(1)}, BUS)
        transport.flush_sends()
        for key in keys:
            transport.recv(key, Kind.DONE, BUS)
    except Exception:
        pass
    finally:
        transport.timeout_s = saved


def _final_checkpoint(transport, ck: Checkpointer, key, part: Part, window: int,
                      signum: int) -> None:
    """On a stop: save the part's state after window ``window − 1`` (when checkpoints
    are on) and tell the coordinator (an ``OUTPUT`` holding ``@stop``)."""
    if ck.every:
        ck.save_part(key, window, part.state())
    transport.send(BUS, Kind.OUTPUT, {"@stop": np.array(signum)}, key)


# --------------------------------------------------------------------------------------
# Running in one process
# --------------------------------------------------------------------------------------

def out_path_of(scenario, output) -> Path:
    sim = scenario.simulation
    return Path(output) if output is not None else (sim.output or default_output_path(scenario))


def _build(scenario, layout, plan: Plan, keys, ck: Checkpointer, k_start: int, resume: bool,
           transport, exchange_of=None) -> dict[tuple[str, int], Part]:
    """Describe → partition → build the parts ``keys`` of this process, on the distributed
    bus (:mod:`cosim.exchange`); a new run exchanges the initial history, a resumed one
    restores what each part keeps."""
    pattern = exchange_pattern(scenario, layout, plan)
    numba_threads.choose({scenario.engines[key[0]].type_name for key in keys})
    parts = {}
    for key in keys:
        part = make_part(scenario, layout, plan, key,
                         exchange_of(key) if exchange_of is not None else None, pattern)
        part.build()
        if resume:
            part.restore(ck.load_part(key, k_start))
        parts[key] = part
    if not resume:
        for key, part in parts.items():
            if part.link is not None:
                part.link.send_initial(transport, part.initial())
        for part in parts.values():
            if part.link is not None:
                part.link.recv_initial(transport)
    return parts


def run_scenario(scenario, *, output: Path | None = None, overwrite: bool = False,
                 progress_stream: TextIO | None = sys.stderr, resume: bool = False,
                 on_window: Callable[[int, float, Callable], None] | None = None) -> RunSummary:
    """Run ``scenario`` in this process (every engine and the bus) and write its output.

    ``resume``: continue from the last checkpoint of this output (see :mod:`cosim.checkpoint`).
    ``on_window(k, t_ms, payload)`` is called after every window (``payload()`` gives the
    window's timing and rates as a dict, for live monitoring).  Raises :class:`Terminated`
    when SIGTERM/SIGINT stopped the run (the output is closed, status ``terminated``).
    """
    sim = scenario.simulation
    layout = coupling_layout(scenario)
    plan = make_plan(scenario, 1)
    out_path = out_path_of(scenario, output)
    ck = Checkpointer(out_path, sim.checkpoint_every_windows)
    transport = InProcessTransport()
    hub = None
    with StopFlag() as stop:
        k_start, cstate, recorder = _open_output(scenario, plan, ck, out_path, overwrite, resume)
        try:
            progress = Progress(sim.duration_ms, progress_stream, start_ms=k_start * sim.sync_interval_ms)
            hub = Hub(scenario, plan, layout, transport, recorder, ck, progress, on_window, stop)
            t_build = time.perf_counter()
            parts = _build(scenario, layout, plan, hub.keys, ck, k_start, resume, transport)
            hub.begin(cstate)
            build_s = time.perf_counter() - t_build
            t_loop = time.perf_counter()
            stopped = window_loop(scenario, transport, parts, hub, ck, k_start, stop)
            wall = time.perf_counter() - t_loop
            if not stopped:
                progress.update(sim.duration_ms, force=True)
            hub.end(stopped)
        except BaseException as exc:
            _drain(hub)
            recorder.close("terminated" if stop.signum else "failed", f"{type(exc).__name__}: {exc}")
            raise
    return _summary(hub, out_path, k_start, wall, build_s, stopped, [transport.traffic()])


def _open_output(scenario, plan: Plan, ck: Checkpointer, out_path, overwrite: bool,
                 resume: bool):
    """``(k_start, coordinator state, recorder)``: a new output (old checkpoint files
    cleared), or the output and checkpoint of the run being resumed (checked first)."""
    from .rank_output import OutputLayout, resume_layout

    k_start, cstate, lengths, grew = ck.resume(scenario, plan) if resume else (0, None, None, False)
    specs = record_specs(scenario)
    parallel = OutputLayout.of(scenario, plan, out_path, specs)
    if resume:          # rank files only if the checkpoint's run wrote the same ones
        parallel = resume_layout(out_path, parallel, k_start)
    recorder = Recorder(out_path, scenario, specs, n_ranks=plan.world_size,
                        flush_every=scenario.record.flush_every, overwrite=overwrite,
                        resume_lengths=lengths, parallel=parallel,
                        background=plan.world_size == 1)    # (one process: behind the compute)
    if grew:
        recorder.extend(scenario)
    if not resume:
        ck.clear()
    return k_start, cstate, recorder


def _summary(hub: Hub, out_path, k_start, wall, build_s, stopped, traffic=None) -> RunSummary:
    sim = hub.sc.simulation
    k_end = hub.stop_after if stopped else sim.n_windows
    summary = RunSummary(out_path, (k_end - k_start) * sim.sync_interval_ms, wall, build_s,
                         dict(hub.engine_compute), np.array(hub.all_timing), hub.plan.world_size,
                         "terminated" if stopped else "completed", hub.signum,
                         k_end * sim.sync_interval_ms, traffic)
    if stopped:
        raise Terminated(hub.signum or signal.SIGTERM, summary)
    return summary


# --------------------------------------------------------------------------------------
# Running under MPI
# --------------------------------------------------------------------------------------

def run_mpi(scenario, comm, *, output: Path | None = None, overwrite: bool = False,
            progress_stream: TextIO | None = sys.stderr, resume: bool = False,
            on_window: Callable | None = None) -> RunSummary | None:
    """Run ``scenario`` over the ranks of ``comm`` (rank 0: bus and output file).

    Returns the summary on rank 0, ``None`` elsewhere (raises :class:`Terminated` on every
    rank after a signal).  Any exception on any rank, from the first line to the last,
    aborts the whole job (``MPI_Abort``) after a one-line message naming engine and rank,
    so no rank is left waiting.
    """
    rank = comm.Get_rank()
    writer = None
    labels = {BUS_RANK: "the bus"}
    who = "bus" if rank == BUS_RANK else "engine"
    transport = None
    try:
        sim = scenario.simulation
        plan = make_plan(scenario, comm.Get_size())
        role, name, part_idx = plan.role(rank)
        labels.update({r: f"engine {g.name}" for g in plan.groups for r in g.ranks})
        who = "bus" if role == "bus" else f"engine {name}"
        # one communicator per engine (for the spike exchange of split regions)
        colour = 0 if role == "bus" else 1 + [g.name for g in plan.groups].index(name)
        ecomm = comm.Split(colour, rank)
        rank_of = {BUS: BUS_RANK}
        rank_of.update({(g.name, p): r for g in plan.groups for p, r in enumerate(g.ranks)})
        # the bus gives up on a silent part first and names it; parts wait longer for the
        # bus, staggered by rank, so that one line names the rank that stopped
        grace = 0.0 if rank == BUS_RANK else 5.0 + rank
        transport = MPITransport(comm, rank_of, timeout_s=sim.exchange_timeout_s + grace,
                                 labels=labels, startup_s=sim.startup_timeout_s + grace)
        layout = coupling_layout(scenario)
        out_path = out_path_of(scenario, output)
        _announce_ranks(transport, plan, rank, out_path, progress_stream)
        ck = Checkpointer(out_path, sim.checkpoint_every_windows)
        with StopFlag() as stop:
            if role == "bus":
                return _run_bus(scenario, layout, plan, transport, out_path, overwrite,
                                progress_stream, ck, resume, on_window, stop, comm)
            key = (name, part_idx)
            start = transport.recv(BUS, Kind.START, key)
            from . import watchdog

            k_start = int(start["k_start"])
            if k_start < 0:                # the bus could not start (it reports why)
                raise _Quiet()
            exchange = (_allgather_exchange(ecomm, transport, [r for r in plan.group(name).ranks
                                                               if r != rank])
                        if plan.group(name).n_parts > 1 else None)
            parts = _build(scenario, layout, plan, [key], ck, k_start, resume, transport,
                           lambda _k: exchange)
            writer = (_rank_writer(scenario, plan, out_path, rank, k_start if resume else None)
                      if int(start["rank_files"]) else None)
            reporting = Reporting(writer is not None and name in writer.layout.engines,
                                  int(start["status_every"]))
            stopped = window_loop(scenario, transport, parts, None, ck, k_start, stop, writer,
                                  reporting)
            if not stopped and writer is not None:
                writer.close("completed")
                transport.send(BUS, Kind.DONE, {}, key)
                transport.flush_sends()
            transport.recv(BUS, Kind.DONE, key)
            transport.close()
            # once per run (see _run_bus): traffic, and a quiet part's timing
            comm.gather({"traffic": transport.traffic(), "timing": np.array(reporting.timing)},
                        root=BUS_RANK)
            if stopped:
                raise Terminated(stopped)
            return None
    except Terminated:
        raise
    except Stalled as exc:        # a partner stopped answering: name it (the bus closed the file)
        _die(comm, f"cosim: {exc}; ending the job", 1)
    except PartnerLost as exc:    # a partner died: the watchdog names who died first
        from . import watchdog

        _die(comm, None if watchdog.active() else f"cosim: {exc}", 1)
    except RemoteError as exc:    # an engine reported its error: the bus closed the file
        _die(comm, f"cosim: {labels.get(exc.rank, 'rank')} (rank {exc.rank}) failed: {exc}", exc.code)
    except _Quiet:
        time.sleep(2.5)           # the bus prints the reason and ends the job
        _die(comm, None, 2)
    except BaseException as exc:  # one line, then take every rank down: never a hang
        text = _error_text(exc)
        code = 2 if isinstance(exc, CosimError) else 1
        if writer is not None:    # parallel output: every window done reaches the disk
            try:
                writer.close("failed")
            except BaseException:
                pass
        if rank != BUS_RANK and transport is not None:
            # hand the error to the bus, which closes the output file (every completed
            # window kept, status "failed") and ends the job; abort ourselves if it cannot
            try:
                transport.send_error(BUS, text, code)
                transport.linger(5.0)   # the bus ends the job; if it cannot, say it ourselves
            finally:
                _die(comm, f"cosim: {who} (rank {rank}) failed: {text}", code)
        _die(comm, f"cosim: {who} (rank {rank}) failed: {text}", code)


def _rank_writer(scenario, plan, out_path, rank: int, resume_window):
    """This part's rank file (parallel output, :mod:`cosim.rank_output`)."""
    from .rank_output import OutputLayout, RankWriter

    out = OutputLayout.of(scenario, plan, out_path, record_specs(scenario))
    return RankWriter(out, rank, scenario.record.flush_every, resume_window=resume_window)


class _Quiet(Exception):
    """A rank ends because another rank already reported the reason."""


def _die(comm, line: str | None, code: int):
    from . import watchdog

    # a rank that said why announces the abort: every exit from now on is its doing; one
    # that ends quietly (a partner died: the watchdog names it) does not
    watchdog.ending_on_purpose(comm.Get_rank(), aborting=line is not None)
    if line:
        print(line, file=sys.stderr, flush=True)
    time.sleep(0.5)           # let the launcher forward the line before it kills us
    try:                      # MPI_Abort adds a line of its own ("Abort(2) on node 0 (rank 0
        sys.stderr.flush()    # in comm 0): application called MPI_Abort…"): the one line
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)      # above says it all
    except (OSError, ValueError):
        pass
    comm.Abort(code)
    os._exit(code)


def _error_text(exc: BaseException) -> str:
    return exc.message() if isinstance(exc, CosimError) else f"{type(exc).__name__}: {exc}"


def _run_bus(scenario, layout, plan, transport, out_path, overwrite, progress_stream, ck, resume,
             on_window, stop, comm) -> RunSummary:
    sim = scenario.simulation
    try:
        k_start, cstate, recorder = _open_output(scenario, plan, ck, out_path, overwrite, resume)
    except BaseException:
        _start_parts(transport, plan, -1)    # the parts stop quietly; this rank reports
        raise
    reporting = Reporting.of(scenario, recorder, on_window)
    _start_parts(transport, plan, k_start, recorder.parallel is not None, reporting.status_every)
    hub = None
    try:
        progress = Progress(sim.duration_ms, progress_stream, start_ms=k_start * sim.sync_interval_ms)
        hub = Hub(scenario, plan, layout, transport, recorder, ck, progress, on_window, stop)
        t_build = time.perf_counter()
        hub.begin(cstate)
        build_s = time.perf_counter() - t_build
        t_loop = time.perf_counter()
        stopped = window_loop(scenario, transport, {}, hub, ck, k_start, stop)
        wall = time.perf_counter() - t_loop
        if not stopped:
            progress.update(sim.duration_ms, force=True)
        hub.end(stopped)
        transport.close()
    except BaseException as exc:
        _collect_flushes(transport, plan, recorder, exc)
        _drain(hub)
        recorder.close("terminated" if stop.signum else "failed", f"{type(exc).__name__}: {exc}")
        raise
    reports = comm.gather({"traffic": transport.traffic()}, root=BUS_RANK)  # once per run
    hub.adopt(reports)
    return _summary(hub, out_path, k_start, wall, build_s, stopped,
                    [r["traffic"] for r in reports])


def _start_parts(transport, plan: Plan, k_start: int, rank_files: bool = False,
                 status_every: int = 0) -> None:
    msg = {"k_start": np.array(k_start), "rank_files": np.array(int(rank_files)),
           "status_every": np.array(status_every)}
    for g in plan.groups:
        for p in range(g.n_parts):
            transport.send((g.name, p), Kind.START, msg, BUS)
    transport.flush_sends()


def ranks_file(output: Path) -> Path:
    """``<output>.ranks.json``: rank → pid, host, role of a multi-process run."""
    return Path(str(output) + ".ranks.json")


def _text(a) -> str:
    return np.asarray(a, dtype=np.uint8).tobytes().decode()


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8).copy()


def _announce_ranks(transport, plan: Plan, rank: int, output: Path, stream) -> None:
    """Every part sends its pid and host (``HELLO``); the bus starts the watchdog
    (:mod:`cosim.watchdog`), tells every part its notes folder (``WATCH``), then writes
    ``<output>.ranks.json`` and prints one line per rank (so that a launcher's report of a
    PID names its engine).  Point-to-point with the exchange timeout, so a rank stopped at
    start-up is named, not waited for.  Once the table exists every part knows the notes
    folder (or will: the message is on its way), so a part that ends the job for a rank
    stopped after it can say so before any rank's exit."""
    import json
    import socket

    from . import watchdog

    me = {"pid": os.getpid(), "host": socket.gethostname()}
    if rank != BUS_RANK:
        key = next((g.name, p) for g in plan.groups for p, r in enumerate(g.ranks) if r == rank)
        transport.send(BUS, Kind.HELLO, {"pid": np.array(me["pid"]), "host": _bytes(me["host"])}, key)
        transport.flush_sends()
        watchdog.attach(_text(transport.recv(BUS, Kind.WATCH, key)["notes"]) or None)
        return
    table = {str(BUS_RANK): {**me, "role": "bus"}}
    for g in plan.groups:
        for p, r in enumerate(g.ranks):
            msg = transport.recv((g.name, p), Kind.HELLO, BUS)
            role = f"engine {g.name}" + (f" part {p + 1}/{g.n_parts}" if g.n_parts > 1 else "")
            table[str(r)] = {"pid": int(msg["pid"]), "host": _text(msg["host"]), "role": role}
    table = dict(sorted(table.items(), key=lambda kv: int(kv[0])))
    watchdog.attach(watchdog.start(table, output))
    notes = {"notes": _bytes(watchdog.notes() or "")}
    for g in plan.groups:
        for p in range(g.n_parts):
            transport.send((g.name, p), Kind.WATCH, notes, BUS)
    transport.flush_sends()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = ranks_file(output).with_name(ranks_file(output).name + ".tmp")
        tmp.write_text(json.dumps(table, indent=1))
        os.replace(tmp, ranks_file(output))           # readers never see half a table
    except OSError:
        pass
    if stream is not None:
        for r, e in table.items():
            print(f"[cosim] rank {r} (pid {e['pid']} on {e['host']}): {e['role']}", file=stream,
                  flush=True)


def _allgather_exchange(ecomm, transport=None, partners=()):
    """``exchange(gids, times)`` for a split spiking region: Allgatherv over ``ecomm``.
    Counted on ``transport`` (kind ``"allgather"``) as the point-to-point messages it
    stands for: the count, the gids and the times to and from each of the other members.
    With ``transport`` the collectives are non-blocking and waited for by
    :meth:`~cosim.transport.MPITransport.wait_collective` (``partners``: the other
    members' world ranks): a member waiting for a stopped partner still answers the
    coordinator's ping and times out, instead of blocking inside MPI."""
    from mpi4py import MPI

    others = ecomm.Get_size() - 1
    partner = partners[0] if len(partners) else 0

    def wait(req):
        if transport is None:
            req.Wait()
        else:
            transport.wait_collective(req, partner)

    sizes = np.empty(ecomm.Get_size(), dtype=np.int64)

    def exchange(gids, times):
        gids = np.ascontiguousarray(gids, dtype=np.int64)
        times = np.ascontiguousarray(times, dtype=np.float64)
        wait(ecomm.Iallgather(np.array([gids.size], dtype=np.int64), sizes))
        counts = sizes.copy()
        displ = np.concatenate([[0], np.cumsum(counts)[:-1]])
        all_g = np.empty(counts.sum(), dtype=np.int64)
        all_t = np.empty(counts.sum(), dtype=np.float64)
        wait(ecomm.Iallgatherv(gids, [all_g, counts, displ, MPI.INT64_T]))
        wait(ecomm.Iallgatherv(times, [all_t, counts, displ, MPI.DOUBLE]))
        if transport is not None:
            mine = 8 + 16 * gids.size
            transport.count("allgather", 3 * others, others * mine)
            transport.count("allgather", 3 * others, 8 * others + 16 * (all_g.size - gids.size),
                            received=True)
        return all_g, all_t

    return exchange
