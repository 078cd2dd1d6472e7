"""One producer process: its cells' events, sent on its share of the schedule.

Open-model pacing: event i goes out when the schedule calls for it (``loadgen.pacing``); its
intended send time is written into the event (``send_time``) and is the Kafka message's
timestamp. A process that falls behind sends what is due as fast as it can and says how far
behind it is; it never moves the schedule, so a stall shows as latency, not as a slower load.

The coordinator owns the run: it tells the process when to start and when to stop (the process
ignores SIGINT and SIGTERM itself), and reads its reports from its pipe (bankstream.supervisor).
On stop, the batches made are sent at once (a batch holds about a second of the schedule; a paced
process makes up to two ahead, in a thread of its own), then the client is flushed for at most
``flush_timeout`` seconds: the events made are the events handed to Kafka.
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import sys
import threading
import time
import traceback
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bankstream import logs
from bankstream.errors import BankstreamError
from bankstream.events import TX_TYPES
from bankstream.histogram import LogHistogram
from loadgen.pacing import Schedule
from loadgen.stream import BATCH, Batch, RunStream, plan
from scenarios import LoadedScenario

GROUP = 2000  # events handed to the client between two polls, at most
QUANTUM = 0.001  # seconds: a paced process sends what fell due this often, at most
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """What one producer process does (sent to it when it starts)."""

    index: int
    loaded: LoadedScenario
    events: int | None  # the whole run's events (None: until stopped, for rate: max)
    cells: range
    run_id: str
    schedule: Schedule  # the whole run's
    topic: str
    kafka: dict[str, Any]  # librdkafka settings, bootstrap included
    metrics_dir: str | None
    duration: float | None  # stop after this long (rate: max with a duration)
    flush_timeout: float
    verbose: int = 0
    report_every: float = 0.5


class Context:
    """What a worker has in hand: its spec, the signals from the coordinator, its reports
    (locust's Environment spirit: no module globals)."""

    def __init__(self, spec: WorkerSpec, stop: Any, start_at: Any, reports: Any) -> None:
        self.spec = spec
        self.stop = stop  # bankstream.supervisor.StopFlag: stop producing
        self.start_at = start_at  # a shared double: epoch seconds to start at; 0 = wait
        self.reports = reports  # bankstream.supervisor.Reports: dicts to the coordinator

    def report(self, kind: str, **fields: Any) -> None:
        self.reports.put({"kind": kind, "worker": self.spec.index, **fields})


def main(spec: WorkerSpec, stop: Any, reports: Any, start_at: Any) -> None:
    """The process's entry point (bankstream.supervisor, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.configure(spec.verbose)
    context = Context(spec, stop, start_at, reports)
    try:
        Worker(context).run()
    except BankstreamError as exc:
        context.report("error", message=exc.message, exit_code=exc.exit_code)
    except Exception as exc:  # one line for a person, the details in the log
        log.debug("worker %d failed:\n%s", spec.index, traceback.format_exc())
        context.report(
            "error", message=f"producer process {spec.index} failed: {exc!r}", exit_code=1
        )


NOT_READY = object()  # Ahead.get without waiting: the next batch is still being made
_END = object()


class Ahead:
    """A paced process's batches, made in a thread of its own a few batches ahead of the
    sending. Made in line, a batch held up the events due meanwhile for as long as it took: a
    window in which every cell draws its next rows (~0.4 s for 128 cells of retail-day) showed
    as a schedule lag of that size at any rate. The sending thread gets the interpreter back
    within the switch interval (set to 1 ms beside it) however long a batch takes to make."""

    def __init__(self, batches: Iterator[Batch], depth: int = 2) -> None:
        self._batches = batches
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._halt = threading.Event()
        self._held: list[Batch] = []  # made when the halt came: still to be sent
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._make, name="bankstream-ahead", daemon=True)
        self._thread.start()

    def _make(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    self._held.append(batch)
                    return
                if self._halt.is_set():
                    return
        except BaseException as exc:  # raised again in the sending thread
            self.error = exc
        self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self, wait: bool) -> Any:
        """The next batch; None at the end of the stream; NOT_READY when not waiting and it
        is still being made."""
        try:
            item = self._queue.get() if wait else self._queue.get_nowait()
        except queue.Empty:
            return NOT_READY
        if item is _END:
            if self.error is not None:
                raise self.error
            return None
        return item

    def rest(self) -> list[Batch]:
        """Stop making batches: those made and not taken yet, in order (the one being made is
        finished first: what was made is counted in the stream's figures, so it is sent too)."""
        self._halt.set()
        self._thread.join()
        made = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _END:
                made.append(item)
        held, self._held = self._held, []
        return made + held


class Worker:
    def __init__(self, context: Context) -> None:
        from confluent_kafka import Producer

        from loadgen.producer.client import Sender

        self.context = context
        spec = self.spec = context.spec
        self.metrics = None
        if spec.metrics_dir:
            from bankstream.metrics import use_directory

            use_directory(spec.metrics_dir)
            from loadgen.producer.metrics import Metrics

            self.metrics = Metrics(spec.run_id, spec.loaded.scenario.name)
        self.plan = plan(
            spec.loaded,
            events=spec.events,
            cells=spec.cells,
            run_id=spec.run_id,
            schedule=spec.schedule,
        )
        self.own = self.plan.own_schedule
        self.stream = RunStream(self.plan)
        config = {**spec.kafka, "error_cb": self._kafka_error}
        config["logger"] = logging.getLogger(logs.LIBRDKAFKA_LOGGER)
        self.sender = Sender(Producer(config), spec.topic)
        self.latency = LogHistogram()  # intended send -> acknowledged
        self.lag = LogHistogram()  # intended send -> handed to the client
        self._lags: list[Any] = []  # lags observed since the last tick (added to ``lag`` then)
        self.kafka_errors: dict[str, int] = {}
        self.stages = spec.schedule.stages
        self.stage_counts = [0] * max(1, len(self.stages))
        # after the load's warm-up: events handed to the client, and when the last one was
        self.warmup = float(spec.loaded.scenario.load.warmup)
        self.measured = 0
        self.last_send = 0.0
        self.first_time: int | None = None
        self.last_time: int | None = None
        self.unsent = 0
        self.exhausted = False  # the stream has no batch left
        self.ahead: Ahead | None = None  # paced: the batches being made meanwhile
        self.now_lag = 0.0
        self.t0 = 0.0
        self._last_time = 0.0
        self._last_acked = 0
        self._last_bytes = 0
        self._last_produced = np.zeros(len(TX_TYPES), np.int64)
        self._failed = [0] * len(TX_TYPES)
        self._stall = 0.0

    def _kafka_error(self, err: Any) -> None:
        name = err.name() if hasattr(err, "name") else str(err)
        self.kafka_errors[name] = self.kafka_errors.get(name, 0) + 1
        log.info("Kafka: %s", err)

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        spec, context = self.spec, self.context
        self.stream.build()  # every cell, and the first batch, before "ready": no pause at start
        self.batches = iter(self.stream.batches(self._batch_size))
        self.upcoming: Batch | None = next(self.batches, None)
        # paced: the next batches are made meanwhile in a thread (unpaced, making them in line
        # costs nothing: every event is due at once anyway)
        self.ahead = Ahead(self.batches) if self.own.paced and self.upcoming else None
        if self.ahead is not None:
            # the sending thread waits at most this long for the interpreter (default 5 ms)
            sys.setswitchinterval(0.001)
        context.report(
            "ready", events=self.plan.own_events, cells=[spec.cells.start, spec.cells.stop]
        )
        if self.metrics:
            self.metrics.workers.inc()
        while not context.start_at.value and not context.stop.is_set():
            time.sleep(0.01)
        self.t0 = context.start_at.value or time.time()
        time.sleep(max(0.0, self.t0 - time.time()))
        self._last_time = time.monotonic()
        deadline = None  # once stopping: when to give up handing events over
        ended = "complete"
        while self.upcoming is not None:
            batch, self.upcoming = self.upcoming, None
            if self.first_time is None and len(batch):
                self.first_time = int(batch.times[0])
            self.last_time = int(batch.times[-1])
            deadline = self._send(batch, deadline)
            if deadline is not None:
                ended = "stopped"
                # made already (their events are in the stream's counts and checksums): send
                # them too, so that what was made is what was sent
                for rest in self._made_rest():
                    if len(rest):
                        self.last_time = int(rest.times[-1])
                    self._send(rest, deadline)
                break
            if spec.duration is not None and time.time() - self.t0 >= spec.duration:
                # made, past the end: never sent
                self.unsent += sum(len(rest) for rest in self._made_rest())
                break
            if self.upcoming is None and not self.exhausted:
                self.upcoming = self._next(wait=True)
                self.exhausted = self.upcoming is None
        self._made_rest()  # the thread that makes batches is done before the figures are read
        if deadline is None and context.stop.is_set():
            ended = "stopped"
        flush_for = (
            spec.flush_timeout if deadline is None else max(0.5, deadline - time.monotonic())
        )
        left = self.sender.flush(flush_for)
        self.sender.poll(0)
        self._tick(force=True)
        if self.metrics:
            self.metrics.workers.dec()
        context.report("final", ended=ended, purged=left, **self._final())

    def _next(self, wait: bool) -> Any:
        """The stream's next batch (None at its end; NOT_READY: being made, when not waiting)."""
        if self.ahead is None:
            return next(self.batches, None)
        return self.ahead.get(wait)

    def _made_rest(self) -> list[Batch]:
        """Every batch made and not sent yet, in order; no more are made."""
        made = [] if self.upcoming is None else [self.upcoming]
        self.upcoming = None
        if self.ahead is not None:
            made += self.ahead.rest()
        self.exhausted = True
        return made

    def _batch_size(self) -> int:
        """About a second of this process's schedule (so that a stop sends at most that much
        at once), at most BATCH."""
        if not self.own.paced:
            return BATCH
        rate = self.own.rate_at(max(0.0, time.time() - self.t0)) or self.own.peak_rate
        return int(min(BATCH, max(1, math.ceil(rate))))

    def _send(self, batch: Batch, deadline: float | None) -> float | None:
        """Send ``batch`` on schedule (all at once when stopping); returns the stop deadline
        once a stop was asked for."""
        n = len(batch)
        paced = self.own.paced
        keys, types = batch.keys, batch.types.tolist()
        if paced:
            due_array = self.t0 + self.own.send_times(batch.first, n)  # epoch seconds
            stamps_ms = np.floor(due_array * 1000.0).astype(np.int64)
            values = batch.values(stamps_ms)
            stamps = stamps_ms.tolist()
            due = due_array.tolist()  # read one at a time below: a list is cheaper than numpy
        i = 0
        sender = self.sender
        stop = self.context.stop
        while i < n:
            if deadline is None and stop.is_set():
                deadline = time.monotonic() + self.spec.flush_timeout
            now = time.time()
            if paced and deadline is None:
                ready = bisect_right(due, now, i)
                first = due[i]
                # events go out a quantum at a time: once the first due is QUANTUM late, with
                # all those due by then (sent one by one as each fell due, the loop's own cost
                # per event kept a process's core busy at any rate)
                gathering = i < ready < n and now < first + QUANTUM and due[ready] < first + QUANTUM
                if ready <= i or gathering:  # take the next batch if made, serve reports, wait
                    if self.upcoming is None and not self.exhausted:
                        made = self._next(wait=False)
                        if made is not NOT_READY:
                            self.upcoming = made
                            self.exhausted = made is None
                    sender.poll(0)
                    self._tick()
                    pause = (first if ready <= i else first + QUANTUM) - time.time()
                    if pause > 0:
                        time.sleep(min(pause, 0.005))
                    continue
                j = min(ready, i + GROUP)
            else:
                j = min(n, i + GROUP)
            late: Any  # each event's lag: a list for a quantum's few, numpy for many
            if paced:
                group_values, group_stamps = values[i:j], stamps[i:j]
                if j - i > 32:
                    late = np.maximum(0.0, now - due_array[i:j])
                else:
                    late = [now - d if now > d else 0.0 for d in due[i:j]]
                self.now_lag = float(late[0])
            else:
                now_ms = int(now * 1000)
                group_stamps = [now_ms] * (j - i)
                group_values = batch.values(np.full(j - i, now_ms, np.int64), i, j)
                late = np.zeros(j - i)
                self.now_lag = 0.0
            sent = sender.send(keys[i:j], group_values, group_stamps, types[i:j], deadline)
            self._lags.append(late[:sent])
            self._count_stage(now, sent)
            if sent < j - i:  # stopping, and the client had no room before the deadline
                self.unsent += n - (i + sent)
                return deadline
            sender.poll(0)
            i = j
            self._tick()
        return deadline

    def _count_stage(self, now: float, count: int) -> None:
        elapsed = now - self.t0
        index = 0
        for k, stage in enumerate(self.stages):
            if elapsed >= stage.start:
                index = k
        self.stage_counts[index] += count
        if count and elapsed >= self.warmup:
            self.measured += count
            self.last_send = now

    # ------------------------------------------------------------------ reports and metrics

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_time < self.spec.report_every:
            return
        if self._lags:
            self.lag.add(np.concatenate([np.asarray(x, dtype=np.float64) for x in self._lags]))
            self._lags = []
        sender = self.sender
        latencies, acked_by_type = sender.take_acks()
        self.latency.add(latencies)
        interval = LogHistogram()
        interval.add(latencies)
        acked = sender.acked
        produced = sender.produced.copy()
        elapsed = max(now - self._last_time, 1e-6)
        achieved = (acked - self._last_acked) / elapsed
        failed = [o.failed for o in sender.outcomes]
        stall = sender.stall
        metrics = self.metrics
        if metrics:
            for t, n in enumerate((produced - self._last_produced).tolist()):
                if n:
                    metrics.produced[t].inc(n)
            for t, n in enumerate(acked_by_type):
                if n:
                    metrics.acked[t].inc(n)
            for t, (now_failed, before) in enumerate(zip(failed, self._failed, strict=True)):
                if now_failed > before:
                    metrics.failed[t].inc(now_failed - before)
            metrics.observe_latencies(latencies)
            metrics.bytes.inc(sender.bytes - self._last_bytes)
            metrics.queue.set(len(sender.producer))
            metrics.lag.set(self.now_lag)
            if stall > self._stall:
                metrics.stall.inc(stall - self._stall)
            metrics.achieved.set(achieved)
            metrics.target.set(self.own.rate_at(max(0.0, time.time() - self.t0)))
        self._failed = failed
        self._stall = stall
        self._last_time, self._last_acked = now, acked
        self._last_produced, self._last_bytes = produced, sender.bytes
        self.context.report(
            "progress",
            produced=int(produced.sum()),
            acked=acked,
            failed=sum(failed),
            bytes=sender.bytes,
            queue=len(sender.producer),
            lag=self.now_lag,
            stall=stall,
            rate=achieved,
            latency_p99=self.latency.percentile(0.99),
            latency_delta=interval.to_dict(),
        )

    def _final(self) -> dict[str, Any]:
        sender = self.sender
        errors: dict[str, int] = {}
        for outcome in sender.outcomes:
            for name, n in outcome.errors.items():
                errors[name] = errors.get(name, 0) + n
        return {
            "cells": [self.spec.cells.start, self.spec.cells.stop],
            "produced_by_type": sender.produced.tolist(),
            "acked_by_type": [o.acked for o in sender.outcomes],
            "failed_by_type": [o.failed for o in sender.outcomes],
            "failed_errors": errors,
            "kafka_errors": self.kafka_errors,
            "unsent": self.unsent,
            "bytes": sender.bytes,
            "stall_seconds": sender.stall,
            "latency": self.latency.to_dict(),
            "schedule_lag": self.lag.to_dict(),
            "stage_counts": self.stage_counts,
            "measured_events": self.measured,
            "last_send": self.last_send,
            "first_event_time": self.first_time,
            "last_event_time": self.last_time,
            "events_made": self.stream.sent,
            "started": self.t0,
            "finished": time.time(),
            "stream": self.stream.summary(),
        }
