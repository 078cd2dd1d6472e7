"""One sink process: a consumer of the group, batches, writes, offsets after the write.

The way confluent-kafka's examples show it: ``enable.auto.offset.store=false``, and
``store_offsets`` only once a batch is written (and its dead letters acknowledged); stored offsets
are committed every second and on revoke, never for lost partitions. On assignment, batch records
left by a process that died are finished before the partitions are read (``Writer.recover``).

When MongoDB does not answer, the partitions are paused, the consumer keeps polling (so it stays
in the group), and the write is retried with backoff until it succeeds; then they resume.

A consumer that does not get back into its group (librdkafka can stay in a rebalance for good
when the group's coordinator moves while it joins, as when a paused broker comes back) is a
failure: past ``rejoin_timeout`` the process ends with that error, and the sink's supervisor
starts a new one (``bankstream.supervisor``), which finishes the batch through its record.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
import traceback
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from bankstream import logs
from bankstream.histogram import LogHistogram
from sink.decode import Bad, Good, decode
from sink.dlq import DeadLetters
from sink.fast import contract as fast_contract
from sink.writer import Writer, Written

log = logging.getLogger(__name__)
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between write attempts while the store is away
MEMBERSHIP_EVERY = 10.0  # seconds: while nothing comes, ask whether the group still knows us


class Batch:
    """Messages read together, their events and the messages that are not events."""

    __slots__ = ("bad", "good", "messages", "partitions")

    def __init__(self, messages: list[Any], good: list[Good], bad: list[Bad]) -> None:
        self.messages = messages
        self.good = good
        self.bad = bad
        self.partitions = {(m.topic(), m.partition()) for m in messages}


@dataclass(frozen=True)
class SinkSpec:
    """What one sink process does (sent to it when it starts)."""

    index: int
    kafka: dict[str, Any]  # librdkafka settings, bootstrap included
    group: str
    topic: str
    dead_letter_topic: str
    mongo_uri: str
    database: str
    collections: dict[str, str]
    batch_size: int
    flush_interval: float  # seconds a batch waits to fill
    until_idle: float | None  # stop after this long without a message
    projections: bool
    metrics_dir: str | None
    connect_timeout: float
    store_timeout: float = 30.0  # seconds a store operation may take before it is retried
    lease: float = 20.0  # seconds a half-written batch waits before another sink takes it over
    write_concern: dict[str, Any] | None = None  # w, j, wtimeout (seconds); None: the server's
    verbose: int = 0
    fault: str | None = None  # tests: where to die (see Writer._die)
    report_every: float = 0.5
    rejoin_timeout: float = 60.0  # seconds out of the group (in a rebalance) before giving up


class ConsumerStuck(Exception):
    """The consumer has been out of its group longer than the rejoin timeout."""


class Stopped(Exception):
    """Asked to stop while waiting for a server, with nothing to finish."""


def main(spec: SinkSpec, stop: Any, reports: Any) -> None:
    """The process's entry point (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.configure(spec.verbose)
    try:
        SinkWorker(spec, stop, reports).run()
    except Exception as exc:  # one line for a person, the details in the log
        log.debug("sink %d failed:\n%s", spec.index, traceback.format_exc())
        reports.put({"kind": "error", "worker": spec.index, "message": f"sink {spec.index}: {exc}"})
        logging.shutdown()
        os._exit(1)  # at once: librdkafka may not close a consumer out of its group; restarted


class SinkWorker:
    def __init__(self, spec: SinkSpec, stop: Any, reports: Any) -> None:
        from confluent_kafka import Consumer, Producer
        from pymongo import MongoClient

        self.spec = spec
        self.stop = stop
        self.reports = reports
        self.metrics = None
        if spec.metrics_dir:
            from bankstream.metrics import use_directory

            use_directory(spec.metrics_dir)
            from sink.metrics import Metrics

            self.metrics = Metrics()
        wait_ms = int(spec.connect_timeout * 1000)
        self.mongo: Any = MongoClient(
            spec.mongo_uri,
            serverSelectionTimeoutMS=wait_ms,
            connectTimeoutMS=wait_ms,
            socketTimeoutMS=int(spec.store_timeout * 1000),  # a store that hangs is away too
            appname="bankstream-sink",
        )
        db = self.mongo[spec.database]
        if spec.write_concern:
            from pymongo import WriteConcern

            concern = dict(spec.write_concern)
            if concern.get("wtimeout") is not None:
                concern["wtimeout"] = int(concern["wtimeout"] * 1000)
            db = db.with_options(write_concern=WriteConcern(**concern))
        names = spec.collections
        self.writer = Writer(
            db,
            names["transactions"],
            names["accounts"],
            names["rollups"],
            projections=spec.projections,
            writer_id=uuid.uuid4().hex[:12],
            lease=spec.lease,
        )
        self.writer.fault = spec.fault
        # transactions only: events as the engine writes them go to the store as BSON made in C
        # (the projections need the events' dicts)
        self.fast = None
        if not spec.projections:
            try:
                self.fast = fast_contract()
            except ValueError as exc:  # a contract the C check does not know: the slow path
                log.warning("sink %d: no fast path (%s); decoding in Python", spec.index, exc)
        logger = logging.getLogger(logs.LIBRDKAFKA_LOGGER)
        self.consumer = Consumer(
            {
                # a sink that dies hands its partitions over within 10 s (librdkafka: 45 s)
                "session.timeout.ms": 10_000,
                "statistics.interval.ms": 1000,  # the group's state, for the rejoin watchdog
                **spec.kafka,
                "group.id": spec.group,
                "enable.auto.offset.store": False,
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "on_commit": self._committed,
                "logger": logger,
                "stats_cb": self._stats,
            }
        )
        producer_config = {
            k: v for k, v in spec.kafka.items() if not k.startswith(("group.", "auto."))
        }
        self.dead = DeadLetters(
            Producer({**producer_config, "enable.idempotence": True, "logger": logger}),
            spec.dead_letter_topic,
        )
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({k: v for k, v in spec.kafka.items() if k != "logger"})
        self.owned: set[tuple[str, int]] = set()
        self.last_seen: dict[int, int] = {}  # partition -> timestamp (ms) of the last message
        self.latency = LogHistogram()
        self.interval = LogHistogram()  # since the last progress report (for latency over time)
        self.counts = {"consumed": 0, "inserted": 0, "duplicates": 0, "dead": 0, "recovered": 0}
        self.paused_for = 0.0
        self.rebalances = 0
        self.started = self.last_rebalance = time.monotonic()
        self.assigned_once = False
        self.last_message = time.monotonic()
        self._last_report = 0.0
        # one write in flight while the next batch is read and decoded
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-write")
        self.in_flight: tuple[Batch, Future[tuple[Written, float]]] | None = None
        self.failed: Batch | None = None  # a batch whose write failed, to retry (paused)
        self.first_read: float | None = None  # epoch s: the first message read
        self.last_written: float | None = None  # epoch s: the last write acknowledged
        self.group_state = ("init", "init")  # the group's (state, join state), from librdkafka
        self.out_since: float | None = None  # monotonic: since when out of the group
        self.unknown_since: float | None = None  # since when the coordinator does not know it
        self.membership_checked = time.monotonic()
        self.abandoning = False  # failing: nothing more is waited for
        self.cluster_checked = (0.0, False)  # (when, whether Kafka answered)

    # ------------------------------------------------------------------ rebalances

    def _committed(self, error: Any, partitions: list[Any]) -> None:
        """Offsets committed (every second, on revoke, at the end): the time, for the metric."""
        if error is None and self.metrics:
            self.metrics.commit.set(time.time())

    def _stats(self, text: str) -> None:
        """librdkafka's statistics (every second): the group's state, for ``_check_group``."""
        try:
            group = orjson.loads(text).get("cgrp") or {}
        except ValueError:
            return
        state = (str(group.get("state", "")), str(group.get("join_state", "")))
        if state != self.group_state:
            log.info("sink %d: consumer group state %s, join state %s", self.spec.index, *state)
        self.group_state = state
        if state == ("up", "steady"):
            self.out_since = None
        elif self.out_since is None:
            self.out_since = time.monotonic()

    def _check_group(self) -> None:
        """Out of the group past the rejoin timeout, with no rebalance callback of ours running
        meanwhile: a consumer that will not come back. Out of the group is librdkafka's own
        state (a rebalance that does not end), or, while nothing comes, the group's coordinator
        not knowing this consumer (librdkafka believing itself a member of a group that has
        forgotten it: seen after the coordinator moved mid-join)."""
        now = time.monotonic()
        if self.out_since is None and self._idle() > MEMBERSHIP_EVERY:
            if now - self.membership_checked > MEMBERSHIP_EVERY:
                self.membership_checked = now
                if self._known_to_coordinator() is False:
                    self.unknown_since = self.unknown_since or now
                else:
                    self.unknown_since = None
            if self.unknown_since is not None:
                since = max(self.unknown_since, self.last_rebalance)
                if now - since > self.spec.rejoin_timeout and self._cluster_answers():
                    msg = (
                        f"consumer group {self.spec.group}: its coordinator has not known this "
                        f"consumer for {now - since:.0f} s: a new consumer takes over"
                    )
                    raise ConsumerStuck(msg)
            return
        if self.out_since is None:
            return
        since = max(self.out_since, self.last_rebalance)
        if now - since > self.spec.rejoin_timeout and self._cluster_answers():
            state, join = self.group_state
            msg = (
                f"out of consumer group {self.spec.group} for {now - since:.0f} s (group state "
                f"{state}, join state {join}): a new consumer takes over"
            )
            raise ConsumerStuck(msg)

    def _cluster_answers(self) -> bool:
        """Kafka answers a metadata request now: out of the group while it does not is waiting
        for the cluster, which no new consumer would do better (nor should every process of the
        sink be restarted at once for it)."""
        now = time.monotonic()
        if now - self.cluster_checked[0] < MEMBERSHIP_EVERY:  # asked lately: that answer
            return self.cluster_checked[1]
        try:
            self.admin.list_topics(self.spec.topic, timeout=5)
            answers = True
        except Exception:
            answers = False
        self.cluster_checked = (time.monotonic(), answers)
        return answers

    def _known_to_coordinator(self) -> bool | None:
        """Whether the group's coordinator lists this consumer among the group's members (None:
        it did not answer, or this consumer has no member id yet)."""
        member = self.consumer.memberid()
        if not member:
            return None
        try:
            future = self.admin.describe_consumer_groups([self.spec.group], request_timeout=5)
            group = future[self.spec.group].result(timeout=5)
        except Exception:
            return None
        return any(m.member_id == member for m in group.members)

    def _moved(self, change: str, partitions: list[Any]) -> list[tuple[str, int]]:
        """Counts a change of partitions (assigned, revoked, lost); what this writer knew of
        accounts' last seq may be stale after it. Returns the partitions as (topic, number)."""
        self.rebalances += 1
        self.last_rebalance = time.monotonic()
        if self.metrics:
            self.metrics.rebalances.labels(change=change).inc(len(partitions))
        self.writer.forget_accounts()
        return [(p.topic, p.partition) for p in partitions]

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        """Before new partitions are read: finish the batch records a dead process left."""
        self._drain()  # the writer is this thread's alone from here
        self.assigned_once = True
        mine = self._moved("assigned", partitions)
        self.owned |= set(mine)
        while True:
            try:
                found = self.writer.recover(mine)
                break
            except Exception as exc:  # the store is away: wait, keep the group alive
                if self.stop.is_set():  # asked to stop meanwhile: nothing read, nothing lost
                    msg = f"stopped before the store came back ({exc})"
                    raise Stopped(msg) from None
                log.warning("sink %d: cannot recover yet (%s); retrying", self.spec.index, exc)
                time.sleep(1.0)
        self.counts["recovered"] += found
        if found and self.metrics:
            self.metrics.recovered.inc(found)
        self.last_rebalance = time.monotonic()  # the callback's end (recovering can take long)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions leaving: the write in flight is awaited and its offsets stored, then the
        stored offsets are committed. (A write that failed keeps only its messages of the
        partitions that stay; the others are read again by their next owner.)"""
        self._drain()
        self.owned -= set(self._moved("revoked", partitions))
        try:
            consumer.commit(asynchronous=False)
        except Exception as exc:  # nothing stored to commit, or the group moved on
            log.info("sink %d: commit on revoke: %s", self.spec.index, exc)

    def _lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions taken away without a revoke (this process was out of the group): no
        commit, and no offsets stored for them."""
        self.owned -= {(p.topic, p.partition) for p in partitions}
        self._drain()
        self._moved("lost", partitions)

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        spec = self.spec
        self.writer.ensure_indexes()
        self.consumer.subscribe(
            [spec.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )
        if self.metrics:
            self.metrics.processes.inc()
        self.reports.put({"kind": "ready", "worker": spec.index})
        try:
            while not self.stop.is_set():
                messages = self._gather()
                if messages:
                    self.last_message = time.monotonic()
                    if self.first_read is None:
                        self.first_read = time.time()
                    self._handle(messages)
                else:
                    self._settle()
                    if spec.until_idle is not None and self._idle_done(spec.until_idle):
                        break
                self._check_group()
                self._report()
        except BaseException:
            self._abandon()
            raise
        self._close()

    def _abandon(self) -> None:
        """Failing: the write in flight ends (its offsets stored if it was written), the counts
        so far are reported, and nothing more: no commit, no last report, no goodbye to the
        group (a consumer that cannot rejoin may not close either). Whoever takes the
        partitions over reads them again from the last commit: already written, nothing lost."""
        self.abandoning = True  # no waiting on dead letters either
        with contextlib.suppress(Exception):
            self._drain()
        self.pool.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self._report(force=True)

    def _gather(self) -> list[Any]:
        """The next batch: up to ``batch_size`` messages, gathered until the flush interval is
        over, or sooner once the writer is free (group commit: a slow stream is written at
        once, a fast one in batches as large as the time a write takes lets them grow)."""
        spec = self.spec
        deadline = time.monotonic() + spec.flush_interval
        messages: list[Any] = []
        while len(messages) < spec.batch_size and not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = self.consumer.consume(spec.batch_size - len(messages), timeout=min(left, 0.01))
            messages += [m for m in got if m.error() is None]
            if messages and (self.in_flight is None or self.in_flight[1].done()):
                break
        return messages

    def _idle(self) -> float:
        return time.monotonic() - self.last_message

    def _idle_done(self, quiet: float) -> bool:
        """Nothing came for ``quiet`` seconds, the group has not changed for as long, and this
        process has read its partitions to the end (before its first assignment it waits
        three times as long: the group may still be forming)."""
        now = time.monotonic()
        if self._idle() < quiet or now - self.last_rebalance < quiet:
            return False
        if not self.assigned_once and now - self.started < 3 * quiet:
            return False
        return all(behind == 0 for behind, _ in self._lags(exact=True).values())

    def _handle(self, messages: list[Any]) -> None:
        """Decode this batch while the previous one is being written; then wait for that write
        (its offsets stored) and start this one's."""
        metrics = self.metrics
        self.counts["consumed"] += len(messages)
        if metrics:
            metrics.consumed.inc(len(messages))
            metrics.batch.observe(len(messages))
        for m in messages:
            self.last_seen[m.partition()] = m.timestamp()[1]
        good, bad = decode(messages, self.fast)
        if bad:
            self.dead.send(bad)
        self._settle()
        batch = Batch(messages, good, bad)
        self.in_flight = (batch, self.pool.submit(self._timed_write, batch))

    def _timed_write(self, batch: Batch) -> tuple[Written, float]:
        """In the writing thread: one attempt."""
        began = time.monotonic()
        written = self.writer.write(self._mine(batch.good), batch.partitions & self.owned)
        return written, time.monotonic() - began

    def _mine(self, good: list[Good]) -> list[Good]:
        return [g for g in good if (self.spec.topic, g.partition) in self.owned]

    def _drain(self) -> None:
        """Wait for the write in flight: done, its offsets are stored; failed, it is kept for
        the main loop to retry (paused)."""
        if self.in_flight is None:
            return
        batch, future = self.in_flight
        self.in_flight = None
        try:
            written, seconds = future.result()
        except Exception as exc:
            log.warning("sink %d: write failed (%s); retrying", self.spec.index, exc)
            self.failed = batch
            return
        self._done(batch, written, seconds)

    def _settle(self) -> None:
        """No write in flight and none failed: what was read before is written."""
        self._drain()
        if self.failed is not None:
            batch, self.failed = self.failed, None
            result = self._write(batch)
            if result is not None:
                self._done(batch, *result)

    def _done(self, batch: Batch, written: Written, seconds: float) -> None:
        """A batch written: count it, acknowledge its dead letters, store its offsets."""
        self._count(written, seconds)
        if batch.bad:
            while not self.dead.flush(5.0):  # dead letters acknowledged before the offsets
                if self.stop.is_set() or self.abandoning:
                    # its offsets not stored: the batch is read again (the events already
                    # stored, the bad messages dead-lettered again), never lost
                    log.warning("sink %d: dead letters not acknowledged", self.spec.index)
                    return
                log.warning("sink %d: dead-letter topic not answering; retrying", self.spec.index)
            self.counts["dead"] += len(batch.bad)
            if self.metrics:
                self.metrics.dead.inc(len(batch.bad))
        self.writer._die("after_write")  # tests: written, offsets not stored
        # offsets after the write: the next message of each partition still this process's
        from confluent_kafka import TopicPartition

        ends: dict[tuple[str, int], int] = {}
        for m in batch.messages:
            key = (m.topic(), m.partition())
            ends[key] = max(ends.get(key, -1), m.offset())
        offsets = [
            TopicPartition(t, p, o + 1) for (t, p), o in ends.items() if (t, p) in self.owned
        ]
        if offsets:
            self.consumer.store_offsets(offsets=offsets)
        # its counts at once: a process killed before its next report would take them along
        # (a successor does not read again what this one committed)
        self._report(force=True)

    def _write(self, batch: Batch) -> tuple[Written, float] | None:
        """Write with retries: while the store is away, pause and keep polling. None: stopped
        before the batch could be written (its offsets are not stored)."""
        attempt = 0
        paused_at = time.monotonic()
        self.consumer.pause(self.consumer.assignment())
        if self.metrics:
            self.metrics.paused.set(1)
        log.warning("sink %d: store not writable; paused", self.spec.index)
        while True:
            wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                message = self.consumer.poll(0.1)  # stays in the group; rebalances happen here
                if message is not None and message.error() is None:
                    self._put_back(message)
                self._check_group()
                self._report()
            if self.stop.is_set() and attempt > 3:
                log.warning("sink %d: stopping with a batch not written", self.spec.index)
                return None
            try:
                result = self._timed_write(batch)
                break
            except Exception as exc:
                log.warning("sink %d: store not writable (%s)", self.spec.index, exc)
        self.paused_for += time.monotonic() - paused_at
        self.consumer.resume(self.consumer.assignment())
        if self.metrics:
            self.metrics.paused.set(0)
        log.warning(
            "sink %d: store back after %.1f s; resumed",
            self.spec.index,
            time.monotonic() - paused_at,
        )
        return result

    def _put_back(self, message: Any) -> None:
        """A message of a partition assigned while paused: read again later (seek back), and
        its partition paused too."""
        from confluent_kafka import TopicPartition

        here = TopicPartition(message.topic(), message.partition(), message.offset())
        self.consumer.pause([TopicPartition(message.topic(), message.partition())])
        self.consumer.seek(here)

    def _count(self, written: Written, seconds: float) -> None:
        self.last_written = time.time()
        self.counts["inserted"] += written.inserted
        self.counts["duplicates"] += written.duplicates
        now_ms = time.time() * 1000.0
        sent = np.array([t for t in written.sent if t is not None], dtype=np.float64)
        latencies = np.maximum(0.0, (now_ms - sent) / 1000.0)
        self.latency.add(latencies)
        self.interval.add(latencies)
        metrics = self.metrics
        if metrics:
            metrics.inserted.inc(written.inserted)
            metrics.duplicates.inc(written.duplicates)
            metrics.write_seconds.observe(seconds)
            metrics.observe_latencies(latencies)

    # ------------------------------------------------------------------ reports

    def _lags(self, exact: bool = False) -> dict[int, tuple[int, float]]:
        """Per partition: messages behind its end, and the age (s) of the last message read
        while there are more. The ends are those the last fetches saw, unless ``exact``: then
        the broker is asked, for every partition in one request."""
        from confluent_kafka import TopicPartition

        out: dict[int, tuple[int, float]] = {}
        try:
            assigned = self.consumer.assignment()
            positions = self.consumer.position(assigned) if assigned else []
            unread = [tp for tp in positions if tp.offset < 0] if exact else []
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in (self.consumer.committed(unread, timeout=5) if unread else [])
            }
            ends = self._ends(positions) if exact else {}
        except Exception:
            return out
        now_ms = time.time() * 1000.0
        for tp in positions:
            key = (tp.topic, tp.partition)
            if exact:
                low, high = 0, ends.get(key, -1)
            else:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), cached=True
                )
            # nothing read yet: from the committed offset (or the start)
            position = tp.offset if tp.offset >= 0 else committed.get(key, -1)
            position = position if position >= 0 else max(low, 0)
            behind = max(0, high - position) if high >= 0 else 0
            seen = self.last_seen.get(tp.partition)
            age = (now_ms - seen) / 1000.0 if behind and seen else 0.0
            out[tp.partition] = (behind, max(0.0, age))
        return out

    def _ends(self, partitions: list[Any]) -> dict[tuple[str, int], int]:
        """The end offset of each partition, asked of the broker in one request."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        if not partitions:
            return {}
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        wanted = {TopicPartition(tp.topic, tp.partition): latest for tp in partitions}
        futures = self.admin.list_offsets(wanted, request_timeout=10)
        return {
            (tp.topic, tp.partition): future.result(timeout=10).offset
            for tp, future in futures.items()
        }

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < self.spec.report_every:
            return
        self._last_report = now
        lags = self._lags()
        if self.metrics:
            for partition, (behind, age) in lags.items():
                self.metrics.lag.labels(partition=str(partition)).set(behind)
                self.metrics.lag_seconds.labels(partition=str(partition)).set(age)
        self.reports.put(
            {
                "kind": "progress",
                "worker": self.spec.index,
                **self.counts,
                "lag": sum(b for b, _ in lags.values()),
                "lag_seconds": max((a for _, a in lags.values()), default=0.0),
                "partitions": len(self.owned),
                "latency_p99": self.latency.percentile(0.99),
                "latency_delta": self.interval.to_dict(),
                "paused": self.paused_for,
                "first_read": self.first_read,
                "last_written": self.last_written,
            }
        )
        self.interval = LogHistogram()

    def _close(self) -> None:
        self._settle()
        self.pool.shutdown()
        try:
            self.consumer.commit(asynchronous=False)
        except Exception as exc:
            log.info("sink %d: final commit: %s", self.spec.index, exc)
        self._report(force=True)
        self.consumer.close()
        self.dead.flush(10.0)
        if self.metrics:
            self.metrics.processes.dec()
        self.reports.put(
            {
                "kind": "final",
                "worker": self.spec.index,
                **self.counts,
                "latency": self.latency.to_dict(),
                "paused_seconds": self.paused_for,
                "first_read": self.first_read,
                "last_written": self.last_written,
                "rebalances": self.rebalances,
                "idle": math.isfinite(self._idle()),
            }
        )
        self.mongo.close()
