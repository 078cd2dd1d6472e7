"""One run end to end: the run's topic, `bankstream sink` processes, then `bankstream produce`,
live progress of both, the drain, and what they reported.

The sink and the producer run as the commands users run (child processes with ``--json``), in
sessions of their own: Ctrl-C reaches the harness only, which asks the producer to stop (it
flushes and writes its manifest), lets the sink drain what was acknowledged, then stops the
sink. Every second the harness takes one timeline row: target and achieved rates, the sink's
rate, consumer lag, this second's latency percentiles, CPU and memory of each side.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bankstream import progress
from bankstream.histogram import LogHistogram
from bankstream.progress import Printer
from bankstream.supervisor import Command, Signals

log = logging.getLogger(__name__)
TICK = 1.0  # seconds between timeline rows


@dataclass
class Row:
    t: float  # seconds since the producer started
    target_rate: float | None
    produce_rate: float
    sink_rate: float
    acked: int
    sunk: int
    lag: int
    lag_seconds: float
    delivery_p50: float | None
    delivery_p99: float | None
    e2e_p50: float | None
    e2e_p99: float | None
    producer_cpu: float  # share of one core over the tick
    sink_cpu: float
    producer_rss: int
    sink_rss: int
    stalled_partitions: int = 0  # with messages to read, their committed offset still (Kafka's)

    def as_list(self) -> list[Any]:
        return [_round(v) for v in self.__dict__.values()]


ROW_FIELDS = list(Row.__dataclass_fields__)


def row_record(row: Row) -> progress.RunTick:
    """The row as `run --json` prints it (a ``tick`` record of the progress protocol)."""
    fields = dict(zip(ROW_FIELDS, row.as_list(), strict=True))
    return cast(progress.RunTick, {"record": "tick", "v": progress.PROGRESS_VERSION, **fields})


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if abs(value) < 10 else round(value, 2)
    return value


@dataclass
class Observed:
    """What the run did, as the harness saw it."""

    timeline: list[Row] = field(default_factory=list)
    delivery: LogHistogram = field(default_factory=LogHistogram)  # after the warm-up
    e2e: LogHistogram = field(default_factory=LogHistogram)
    delivery_all: LogHistogram = field(default_factory=LogHistogram)  # warm-up included
    e2e_all: LogHistogram = field(default_factory=LogHistogram)
    producer_summary: progress.ProducerSummary | None = None
    sink_summary: progress.SinkSummary | progress.WatchSummary | None = None
    producer_exit: int | None = None
    sink_exit: int | None = None
    produce_started: float | None = None  # epoch seconds
    produce_ended: float | None = None
    drained_at: float | None = None
    drained: bool = False
    interrupted: bool = False
    max_lag_seconds: float = 0.0
    max_lag: int = 0
    resources: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    killed: int | None = None  # a second signal's number: everything ended at once
    faults: list[dict[str, Any]] = field(default_factory=list)  # what each fault did, when
    # each second's latency histograms (t, delivery, end to end), kept when faults are planned:
    # the thresholds can then be judged outside the fault windows
    ticks: list[tuple[float, LogHistogram, LogHistogram]] = field(default_factory=list)
    # a catch-up run (Plan.backlog): when the sink started, how many events were waiting then,
    # and when it first caught up (its lag within a second of the newest event)
    sink_started: float | None = None
    backlog_waiting: int | None = None
    caught_up_at: float | None = None
    caught_up_sunk: int | None = None
    aborted: str | None = None  # why the run was stopped early (an aborting threshold)
    aborted_at: float | None = None  # seconds from the producer's start


@dataclass
class Plan:
    sink_argv: list[str]
    producer_argv: list[str]
    folder: Path
    warmup: float
    target_at: Callable[[float], float | None]  # target rate at t seconds
    expected_acked: Callable[[progress.ProducerSummary], int | None] | None = None
    drain_timeout: float = 300.0
    output: progress.Output = "live"
    sink_is_bankstream: bool = True  # else a `bankstream watch` follows the pipeline
    injector: Any = None  # harness.inject.Injector: the run's faults
    # the sink's consumer group, as Kafka sees it: each partition's (end, committed) offsets
    # (None: unknown). Drained means nothing left to commit; a partition whose consumer died
    # counts here, not in the live consumers' reports
    group_offsets: Callable[[], dict[int, tuple[int, int]] | None] | None = None
    keep_ticks: bool = False  # each second's histograms (faults, windowed and stage thresholds)
    ready_timeout: float = 120.0  # seconds the sink (or watch) may take to say it runs
    # a catch-up run: the sink starts once this many events are acknowledged (0: first)
    backlog: int = 0
    # called once the sink process has started (a watch: when it has read where things stand),
    # before it is ready: it starts the pipeline a watch follows (a connector)
    on_sink_started: Callable[[], None] | None = None
    abort: Any = None  # harness.abort.AbortWatch: conditions that stop a doomed run
    # processes of the pipeline under test that the harness did not start (a Connect worker):
    # their CPU and memory count as the sink's
    sink_pids: list[int] = field(default_factory=list)
    stop_grace: float = 30.0  # seconds a stopped sink may take before it is killed
    silent_after: float = 30.0  # seconds without a line from the sink: a problem named


class GroupWatch:
    """The sink's consumer group as Kafka sees it, asked once a second in a thread of its own
    (a broker away makes each answer take seconds; the run's loop never waits for one):
    ``uncommitted`` messages (None until Kafka answered, or while it does not), and
    ``stalled`` partitions: messages to read, and no commit for ``STALL`` seconds."""

    STALL = 3.0

    def __init__(self, ask: Callable[[], dict[int, tuple[int, int]] | None]) -> None:
        self.ask = ask
        self.uncommitted: int | None = None
        self.stalled = 0
        self._moved: dict[int, tuple[int, float]] = {}  # partition -> (committed, since when)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="group-watch")
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(1.0):
            offsets = self.ask()
            if offsets is None:
                self.uncommitted = None
                continue
            now = time.monotonic()
            stalled = 0
            for partition, (end, committed) in offsets.items():
                last, since = self._moved.get(partition, (-1, now))
                if committed != last:
                    self._moved[partition] = (committed, now)
                elif end > committed and now - since > self.STALL:
                    stalled += 1
            self.stalled = stalled
            self.uncommitted = sum(max(0, end - done) for end, done in offsets.values())

    def stop(self) -> None:
        self._done.set()
        self._thread.join(15)


class Orchestra:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.observed = Observed()
        self.signals = Signals(self._stop, self._kill)
        self.children: list[Command] = []
        self._silent = False  # the sink has been silent too long (said once)
        self._producer_last: progress.ProducerTick | None = None
        self._sink_last: progress.SinkTick | progress.WatchTick | None = None
        self._tick_delivery = LogHistogram()
        self._tick_e2e = LogHistogram()
        self._filled_acked, self._filled_cpu = 0, 0.0  # a backlog run's last row while filling
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)  # the live rows
        self.say = Printer(plan.output).say

    # ------------------------------------------------------------------ output

    @property
    def signalled(self) -> bool:
        return self.signals.count > 0

    def _stop(self, name: str) -> None:
        self.say(
            f"{name}: stopping the producer; the sink writes what was acknowledged (again to "
            "stop everything at once)"
        )

    def _kill(self, signum: int) -> None:
        """A second signal: every process of the run, at once (their process groups)."""
        self.observed.killed = signum
        for child in self.children:
            child.signal(signal.SIGKILL)

    def _acked(self, default: int = 0) -> int:
        """What the producer said it had acknowledged last."""
        return self._producer_last["acked"] if self._producer_last is not None else default

    # ------------------------------------------------------------------ the run

    def run(self) -> Observed:
        plan, obs = self.plan, self.observed
        sink = producer = None
        sink_source: progress.Source = "sink" if plan.sink_is_bankstream else "watch"
        self.signals.__enter__()
        try:
            if plan.backlog:  # the producer first, the sink once the backlog waits
                producer = Command("producer", plan.producer_argv, plan.folder / "producer.log")
                self.children.append(producer)
                if not self._fill(producer):
                    return obs
            sink = Command(
                "sink", plan.sink_argv, plan.folder / "sink.log", plan.sink_pids, sink_source
            )
            self.children.append(sink)
            if plan.injector is not None:
                plan.injector.sink_workers = sink.workers
            # (else the sink's own error is the run's problem)
            if self._wait_sink_ready(sink, producer):
                if producer is None:
                    producer = Command("producer", plan.producer_argv, plan.folder / "producer.log")
                    self.children.append(producer)
                else:
                    obs.sink_started = time.time()
                    obs.backlog_waiting = self._acked()
                    # the backlog is the run's lag, warm-up or not: what it was made to measure
                    obs.max_lag = max(obs.max_lag, obs.backlog_waiting)
                    if obs.produce_started is not None:
                        waited = obs.sink_started - obs.produce_started
                        obs.max_lag_seconds = max(obs.max_lag_seconds, waited)
                    self.say(f"backlog: {obs.backlog_waiting:,} events wait; the pipeline starts")
                self._loop(sink, producer)
        finally:
            if obs.killed:
                obs.problems.append("stopped at once by a second signal")
            if plan.injector is not None:  # no fault outlives the run (a paused broker goes on)
                plan.injector.stop()
                obs.faults = plan.injector.records
            for child in (producer, sink):
                if child is not None and not child.done():
                    child.signal(signal.SIGTERM)
            if producer is not None:
                obs.producer_exit = producer.finish(60)
                self._take(producer)
            if sink is not None:
                obs.sink_exit = sink.finish(60)
                self._take(sink)
            self.signals.__exit__(None, None, None)
        for child, code in ((producer, obs.producer_exit), (sink, obs.sink_exit)):
            if obs.killed:
                break
            if child is not None and code not in (0, 130, None) and not self._summary_of(child):
                obs.problems.append(
                    f"{child.name} exited with {code}: {child.last_error() or 'no message'} "
                    f"(log: {child.log_file})"
                )
        for child in (producer, sink):
            if child is not None:
                obs.resources[child.name] = {
                    "cpu_seconds": round(child.cpu_seconds, 2),
                    "peak_rss_bytes": child.peak_rss,
                }
        return obs

    def _summary_of(self, child: Command) -> Mapping[str, Any] | None:
        return (
            self.observed.producer_summary
            if child.name == "producer"
            else (self.observed.sink_summary)
        )

    def _fill(self, producer: Command) -> bool:
        """Until the producer has ``backlog`` events acknowledged (or has ended); False when the
        run was stopped meanwhile."""
        obs, plan = self.observed, self.plan
        last, last_acked, cpu_before = time.monotonic(), 0, 0.0
        while not self.signalled:
            time.sleep(0.1)
            self._take(producer)
            acked = self._acked()
            if acked >= plan.backlog or producer.done():
                return True
            now = time.monotonic()
            if now - last < TICK or obs.produce_started is None:
                continue
            # a row a second meanwhile: everything acknowledged waits (nothing reads yet)
            dt, last = now - last, now
            seconds, rss = producer.sample()
            t = time.time() - obs.produce_started
            row = Row(
                t=t,
                target_rate=plan.target_at(t),
                produce_rate=max(0, acked - last_acked) / dt,
                sink_rate=0.0,
                acked=acked,
                sunk=0,
                lag=acked,
                lag_seconds=t,
                delivery_p50=self._tick_delivery.percentile(0.5),
                delivery_p99=self._tick_delivery.percentile(0.99),
                e2e_p50=None,
                e2e_p99=None,
                producer_cpu=max(0.0, seconds - cpu_before) / dt,
                sink_cpu=0.0,
                producer_rss=rss,
                sink_rss=0,
            )
            last_acked, cpu_before = acked, seconds
            self._filled_acked, self._filled_cpu = acked, seconds
            if plan.keep_ticks:
                obs.ticks.append((t, self._tick_delivery, self._tick_e2e))
            self._tick_delivery, self._tick_e2e = LogHistogram(), LogHistogram()
            obs.timeline.append(row)
            if t >= plan.warmup:
                obs.max_lag, obs.max_lag_seconds = (
                    max(obs.max_lag, acked),
                    max(obs.max_lag_seconds, t),
                )
            self._show(row, None, False)
        self.observed.interrupted = True
        producer.signal(signal.SIGINT)
        return False

    def _wait_sink_ready(self, sink: Command, producer: Command | None = None) -> bool:
        """Until the sink says it runs (its consumers are starting); False when it failed."""
        deadline = time.monotonic() + self.plan.ready_timeout
        started = False
        while time.monotonic() < deadline and not self.signalled:
            if producer is not None:  # (a backlog run: the producer goes on meanwhile)
                self._take(producer)
            try:
                _, data = sink.lines.get(timeout=0.2)
            except queue.Empty:
                if sink.done():
                    break
                continue
            if data["record"] == "started" and not started and self.plan.on_sink_started:
                started = True
                try:
                    self.plan.on_sink_started()
                except Exception as exc:  # the pipeline could not start: the run's problem
                    self.observed.problems.append(f"the pipeline did not start: {exc}")
                    break
            if data["record"] == "message":
                self.say(f"sink: {data['message'].removeprefix('sink: ')}")
                return True
        if not sink.done():
            if not self.signalled and time.monotonic() >= deadline:
                self.observed.problems.append(
                    f"the sink did not say it runs within {self.plan.ready_timeout:g} s"
                    + (f": {sink.last_error()}" if sink.last_error() else "")
                )
            sink.signal(signal.SIGTERM)
        return False

    def _take(self, child: Command) -> None:
        """Handle every line that arrived from ``child``."""
        obs = self.observed
        while True:
            try:
                stamp, data = child.lines.get_nowait()
            except queue.Empty:
                return
            if data["record"] == "message":
                text = data["message"]
                if child.name == "producer" and text.endswith(": producing"):
                    obs.produce_started = stamp
                if not text.startswith(("SIGINT", "SIGTERM")):  # the harness stopped it
                    self.say(f"{child.name}: {text.removeprefix(child.name + ': ')}")
                continue
            if data["record"] in ("started", "message"):
                continue
            if child.source == "producer":
                if data["record"] == "summary":
                    obs.producer_summary = cast(progress.ProducerSummary, data)
                    obs.produce_ended = stamp
                    continue
                tick = cast(progress.ProducerTick, data)
                self._producer_last = tick
                hist = LogHistogram.from_dict(tick["latency_histogram"])
                self._tick_delivery.merge(hist)
                obs.delivery_all.merge(hist)
                if tick["elapsed"] >= self.plan.warmup:
                    obs.delivery.merge(hist)
            elif data["record"] == "summary":
                obs.sink_summary = cast(progress.SinkSummary | progress.WatchSummary, data)
            else:
                seen = cast(progress.SinkTick | progress.WatchTick, data)
                self._sink_last = seen
                hist = LogHistogram.from_dict(seen["latency_histogram"])
                self._tick_e2e.merge(hist)
                obs.e2e_all.merge(hist)
                if self._past_warmup(stamp):
                    obs.e2e.merge(hist)
                    obs.max_lag_seconds = max(obs.max_lag_seconds, seen["lag_seconds"])
                    obs.max_lag = max(obs.max_lag, seen["lag"])

    def _watch_silence(self, sink: Command) -> None:
        """A sink that neither reports nor exits is named (once), not waited on in silence:
        the drain timeout then ends the run."""
        quiet = time.time() - sink.last_line
        if quiet > self.plan.silent_after and not sink.done() and not self._silent:
            self._silent = True
            t = time.time() - self.observed.produce_started if self.observed.produce_started else 0
            text = f"the sink said nothing for {quiet:.0f} s (from t={t - quiet:.0f} s)"
            self.observed.problems.append(text)
            self.say(f"sink: {text}")
        elif quiet <= self.plan.silent_after:
            self._silent = False

    def _past_warmup(self, stamp: float) -> bool:
        started = self.observed.produce_started
        return started is not None and stamp - started >= self.plan.warmup

    @staticmethod
    def _sunk(data: progress.SinkTick | progress.WatchTick) -> int:
        return data["inserted"] + data["duplicates"] + data["dead_lettered"]

    def _loop(self, sink: Command, producer: Command) -> None:
        obs, plan = self.observed, self.plan
        last = time.monotonic()
        # (a backlog run: from where the filling left them)
        last_acked, last_sunk = self._filled_acked, 0
        cpu_before = {"producer": self._filled_cpu, "sink": 0.0}
        stop_sent = sink_stopped = False
        settled_since: float | None = None
        done_at: float | None = None  # (monotonic) when the producer ended
        stopped_at = 0.0  # (monotonic) when the sink was asked to stop
        sink_killed = False
        watch = GroupWatch(plan.group_offsets) if plan.group_offsets is not None else None
        injecting = False
        live = None
        if plan.output == "live" and self.console.is_terminal:
            from rich.live import Live

            live = Live(console=self.console, refresh_per_second=2, transient=True)
            live.start()
        try:
            while True:
                time.sleep(0.1)
                self._take(producer)
                self._take(sink)
                if self.signalled and not stop_sent:
                    stop_sent = True
                    obs.interrupted = True
                    producer.signal(signal.SIGINT)
                if obs.killed:
                    break
                if plan.injector is not None and obs.produce_started and not injecting:
                    injecting = True
                    plan.injector.start(obs.produce_started)
                self._watch_silence(sink)
                if sink.done() and not producer.done() and not stop_sent:
                    obs.problems.append(
                        f"the sink stopped during the run: {sink.last_error() or 'no message'}"
                    )
                    stop_sent = True
                    producer.signal(signal.SIGINT)
                now = time.monotonic()
                if now - last >= TICK:
                    dt, last = now - last, now
                    acked = self._acked(last_acked)
                    sunk = self._sunk(self._sink_last) if self._sink_last else last_sunk
                    cpu = {}
                    rss = {}
                    for child in (producer, sink):
                        seconds, rss[child.name] = child.sample()
                        cpu[child.name] = max(0.0, seconds - cpu_before[child.name]) / dt
                        cpu_before[child.name] = seconds
                    t = time.time() - obs.produce_started if obs.produce_started else 0.0
                    row = Row(
                        t=t,
                        target_rate=plan.target_at(t) if obs.produce_started else None,
                        produce_rate=max(0, acked - last_acked) / dt,
                        sink_rate=max(0, sunk - last_sunk) / dt,
                        acked=acked,
                        sunk=sunk,
                        lag=self._sink_last["lag"] if self._sink_last else 0,
                        lag_seconds=self._sink_last["lag_seconds"] if self._sink_last else 0.0,
                        delivery_p50=self._tick_delivery.percentile(0.5),
                        delivery_p99=self._tick_delivery.percentile(0.99),
                        e2e_p50=self._tick_e2e.percentile(0.5),
                        e2e_p99=self._tick_e2e.percentile(0.99),
                        producer_cpu=cpu["producer"],
                        sink_cpu=cpu["sink"],
                        producer_rss=rss["producer"],
                        sink_rss=rss["sink"],
                        stalled_partitions=watch.stalled if watch is not None else 0,
                    )
                    last_acked, last_sunk = acked, sunk
                    if (plan.injector is not None or plan.keep_ticks) and obs.produce_started:
                        obs.ticks.append((t, self._tick_delivery, self._tick_e2e))
                    producing = obs.produce_started and not producer.done()
                    if plan.abort and producing and obs.aborted is None:
                        reason = plan.abort.second(
                            t, self._tick_delivery, self._tick_e2e, row.lag_seconds
                        )
                        if reason is not None:  # stop now: no drain for a doomed run
                            obs.aborted, obs.aborted_at = reason, t
                            self.say(f"aborted at t={t:.0f} s: {reason}")
                            if not stop_sent:
                                stop_sent = True
                                producer.signal(signal.SIGINT)
                            if not sink_stopped:
                                sink_stopped, stopped_at = True, now
                                sink.signal(signal.SIGTERM)
                    self._tick_delivery, self._tick_e2e = LogHistogram(), LogHistogram()
                    if obs.produce_started:
                        obs.timeline.append(row)
                        self._show(row, live, producer.done())
                    if (
                        obs.sink_started is not None
                        and obs.caught_up_at is None
                        and self._sink_last
                        and row.lag_seconds <= 1.0
                        and sunk > 0
                    ):
                        obs.caught_up_at, obs.caught_up_sunk = time.time(), sunk
                if producer.done():
                    if done_at is None:
                        done_at = now
                        obs.producer_exit = producer.finish(5)
                        self._take(producer)
                        if obs.produce_ended is None:
                            obs.produce_ended = time.time()
                        self.say("producer: done; the sink writes what is left ...")
                    if sink.done():
                        break
                    # drained: every acknowledged event handled and no lag, twice in a row
                    expected = (
                        plan.expected_acked(obs.producer_summary)
                        if plan.expected_acked and obs.producer_summary
                        else None
                    )
                    handled = self._sunk(self._sink_last) if self._sink_last else 0
                    seen = self._sink_last
                    if seen is not None and sink.source == "watch":  # a watched pipeline
                        quiet = cast(progress.WatchTick, seen)["quiet"]
                        settled = quiet or (
                            expected is not None and handled >= expected and seen["lag"] == 0
                        )
                    elif watch is not None:  # Kafka's word: every message written (unknown: no)
                        settled = watch.uncommitted == 0
                    else:  # the sink's own (a process that died may leave its count short)
                        settled = (
                            seen is not None
                            and seen["lag"] == 0
                            and (expected is None or handled >= expected)
                        )
                    if settled and settled_since is None:
                        settled_since = now
                    elif not settled:
                        settled_since = None
                    need = 3.0 if expected is None else 1.0
                    timed_out = now - done_at > plan.drain_timeout
                    if (settled_since is not None and now - settled_since >= need) or (
                        timed_out and not sink_stopped
                    ):
                        if timed_out and settled_since is None:
                            obs.problems.append(
                                f"the sink did not drain within {plan.drain_timeout:g} s"
                            )
                        else:
                            obs.drained = True
                            obs.drained_at = time.time()
                        if not sink_stopped:
                            sink_stopped = True
                            stopped_at = now
                            sink.signal(signal.SIGTERM)
                late = sink_stopped and now - stopped_at > plan.stop_grace
                if late and not sink.done() and not sink_killed:
                    sink_killed = True
                    obs.problems.append(
                        f"the sink did not stop within {plan.stop_grace:g} s of SIGTERM: killed"
                    )
                    sink.signal(signal.SIGKILL)
                if sink.done() and producer.done():
                    break
        finally:
            if watch is not None:
                watch.stop()
            if live is not None:
                live.stop()

    def _show(self, row: Row, live: Any, producing_done: bool) -> None:
        if self.plan.output == "json":
            print(json.dumps(row_record(row)), flush=True)
            return
        if self.plan.output != "live":
            return
        target = f" (target {row.target_rate:,.0f}/s)" if row.target_rate else ""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:,.0f} ms"

        text = (
            f"{row.t:6.0f} s  produced {row.produce_rate:9,.0f}/s{target}  "
            f"sunk {row.sink_rate:9,.0f}/s  lag {row.lag:,} ({row.lag_seconds:.1f} s)  "
            f"delivery p99 {ms(row.delivery_p99)}  end-to-end p99 {ms(row.e2e_p99)}  "
            f"{row.acked:,} acked, {row.sunk:,} written"
            + ("  (draining)" if producing_done else "")
        )
        if live is not None:
            live.update(text)
        elif int(row.t) % 5 == 0:
            self.console.print(text)
