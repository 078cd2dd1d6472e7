"""The Kafka side of a producer process: its client's settings, and a sender that counts every
message until the broker acknowledges it or the client gives up on it.

Settings, from weakest to strongest: our defaults < ``BANKSTREAM_KAFKA_CONFIG`` < the scenario's
``delivery`` (compression, acks, then ``kafka_config``) < command-line flags. Any librdkafka
producer setting passes through; librdkafka validates what it does not know.

The way confluent-kafka's examples show it: ``produce`` with a delivery callback, ``poll(0)`` as
we go, on ``BufferError`` (the client's queue is full: the broker is slow or away) poll and try
the same message again, ``flush`` at the end. Nothing is dropped on our side: a message is either
acknowledged or reported failed by the client (after ``message.timeout.ms``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, Message, Producer

from bankstream.events import TX_TYPES
from scenarios.model import Delivery

log = logging.getLogger(__name__)

# Chosen by measurement on this kind of machine (benchmarks/test_producer_bench.py): batches of
# up to 1 MB filled for at most 20 ms, lz4; a queue deep enough for a few seconds at 100k/s.
DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "message.timeout.ms": 300_000,  # a broker may be away for minutes before a message fails
}


def producer_config(
    env_config: Mapping[str, Any], delivery: Delivery, flags: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The producer's librdkafka settings, with their precedence (see the module's text)."""
    config: dict[str, Any] = {**DEFAULTS, **env_config}
    config["compression.type"] = delivery.compression
    config["acks"] = delivery.acks
    config.update(delivery.kafka_config)
    config.update(flags or {})
    if str(config.get("acks")) not in ("all", "-1") and config.get("enable.idempotence"):
        # an idempotent producer needs acks=all: the scenario asked for fewer acknowledgements
        log.info("acks=%s: the producer is not idempotent", config["acks"])
        config["enable.idempotence"] = False
    return config


class Outcome:
    """Delivery reports of one transaction type: acknowledged (with their intended send times,
    the messages' timestamps) and failed."""

    __slots__ = ("acked", "errors", "failed", "stamps")

    def __init__(self) -> None:
        self.stamps: list[int] = []  # intended send times (ms) of acknowledged messages
        self.acked = 0
        self.failed = 0
        self.errors: dict[str, int] = {}

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.stamps.append(msg.timestamp()[1])
            return
        self.failed += 1
        reason = err.name() if hasattr(err, "name") else str(err)
        self.errors[reason] = self.errors.get(reason, 0) + 1


class Sender:
    """One Kafka client: produces events, keeps the delivery reports apart by type, and counts
    the time it could not make progress (a full queue, or events in flight and no report)."""

    STALL_AFTER = 1.0  # seconds without a report, with events in flight, before it is a stall
    START_GRACE = 10.0  # ... before the first report (an idempotent client may take seconds)

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.outcomes = [Outcome() for _ in TX_TYPES]
        self.produced = np.zeros(len(TX_TYPES), dtype=np.int64)
        self.bytes = 0
        self.blocked = 0.0  # seconds waiting for room in the client's queue
        self.quiet = 0.0  # seconds with events in flight and no delivery report (past 1 s)
        self._reported = 0
        self._last_report = self._counted_to = time.monotonic()
        self._latencies: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        self._acked_now = [0] * len(TX_TYPES)

    def send(
        self,
        keys: list[str],
        values: list[bytes],
        stamps: list[int],
        types: list[int],
        deadline: float | None = None,
    ) -> int:
        """Hand these events to the client, in order; on a full queue wait for room (polling),
        until ``deadline`` (monotonic seconds) if one is given. Returns how many were handed
        over (fewer only when the deadline passed)."""
        produce, poll, topic, outcomes = (
            self.producer.produce,
            self.producer.poll,
            self.topic,
            self.outcomes,
        )
        for i, (key, value, stamp, kind) in enumerate(
            zip(keys, values, stamps, types, strict=True)
        ):
            while True:
                try:
                    produce(topic, value, key, timestamp=stamp, on_delivery=outcomes[kind])
                    break
                except BufferError:
                    began = time.monotonic()
                    poll(0.05)
                    self.blocked += time.monotonic() - began
                    self.collect()
                    if deadline is not None and time.monotonic() > deadline:
                        self._count(types[:i], values[:i])
                        return i
        self._count(types, values)
        return len(values)

    def _count(self, types: list[int], values: list[bytes]) -> None:
        if len(types) > 32:
            self.produced += np.bincount(types, minlength=len(TX_TYPES))
        else:  # a paced quantum's few events: cheaper one by one than through numpy
            produced = self.produced
            for t in types:
                produced[t] += 1
        self.bytes += sum(map(len, values))

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (waiting up to ``timeout``), and time the acknowledgements
        that just came in."""
        self.producer.poll(timeout)
        self.collect()

    def collect(self) -> None:
        """Acknowledgements reported since the last call: their latencies (now, minus the
        intended send time each message carries as its timestamp) and counts by type."""
        now_ms = time.time() * 1000.0
        for t, outcome in enumerate(self.outcomes):
            n = len(outcome.stamps)
            if n:
                stamps = np.asarray(outcome.stamps, dtype=np.float64)
                outcome.stamps = []
                outcome.acked += n
                self._acked_now[t] += n
                self._latencies.append(np.maximum(0.0, (now_ms - stamps) / 1000.0))
        self.account()

    def account(self) -> None:
        """Note whether reports keep coming while events are in flight: a silence of more than
        STALL_AFTER seconds counts as a stall, all of it, once (before the first report, while
        the client starts, of more than START_GRACE)."""
        now = time.monotonic()
        done = self.acked + self.failed
        if done != self._reported or done == int(self.produced.sum()):  # reports, or none due
            self._reported = done
            self._last_report = self._counted_to = now
            return
        quiet_for = now - self._last_report
        if quiet_for > (self.STALL_AFTER if done else self.START_GRACE):
            if self._counted_to <= self._last_report:
                log.info("no delivery report for %.1f s, %d in flight", quiet_for, self.in_flight)
            self.quiet += now - max(self._counted_to, self._last_report)
            self._counted_to = now

    @property
    def acked(self) -> int:
        return sum(o.acked + len(o.stamps) for o in self.outcomes)

    @property
    def failed(self) -> int:
        return sum(o.failed for o in self.outcomes)

    @property
    def in_flight(self) -> int:
        return int(self.produced.sum()) - self.acked - self.failed

    @property
    def stall(self) -> float:
        return self.blocked + self.quiet

    def take_acks(self) -> tuple[np.ndarray[Any, np.dtype[np.float64]], list[int]]:
        """Latencies (seconds) of the messages acknowledged since the last call, and how many
        of each type."""
        self.collect()
        latencies = np.concatenate(self._latencies) if self._latencies else np.empty(0)
        counts = self._acked_now
        self._latencies, self._acked_now = [], [0] * len(TX_TYPES)
        return latencies, counts

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every event in flight; what is left is purged
        from the queue (reported failed) and counted. Returns how many were still in flight."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            self.producer.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            self.collect()
        left = self.in_flight
        if left:
            self.producer.purge(in_queue=True, in_flight=False)
            self.producer.poll(0)
        return left
