"""The sink's Prometheus metrics, ``bankstream_sink_*``, in base units.

Every sink process writes its own values (prometheus-client's multiprocess mode); the sink's
coordinator serves them as one ``/metrics``. Labels are a result, a reason or a partition at
most: no account or transaction ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from bankstream.metrics import BatchHistogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.consumed = Counter("bankstream_sink_consumed", "messages read from Kafka")
        written = Counter(
            "bankstream_sink_written",
            "events written to transactions, by result (inserted, or duplicate: already there)",
            ["result"],
        )
        self.inserted = written.labels(result="inserted")
        self.duplicates = written.labels(result="duplicate")
        self.dead = Counter(
            "bankstream_sink_dead_lettered", "messages sent to the dead-letter topic"
        )
        self.write_seconds = Histogram(
            "bankstream_sink_bulk_write_seconds",
            "time to write a batch (transactions and projections)",
            buckets=WRITE_BUCKETS,
        )
        self.batch = Histogram(
            "bankstream_sink_batch_size_messages", "messages per batch", buckets=BATCH_BUCKETS
        )
        self.latency = BatchHistogram(
            "bankstream_sink_end_to_end_latency_seconds",
            "intended send time of an event to its write acknowledged by MongoDB",
            LATENCY_BUCKETS,
        )
        self.lag = Gauge(
            "bankstream_sink_consumer_lag_messages",
            "messages behind the end of each partition",
            ["partition"],
            multiprocess_mode="livemax",
        )
        self.lag_seconds = Gauge(
            "bankstream_sink_consumer_lag_seconds",
            "age of the last message read, while a partition has more to read",
            ["partition"],
            multiprocess_mode="livemax",
        )
        self.rebalances = Counter(
            "bankstream_sink_rebalances", "partitions assigned, revoked or lost", ["change"]
        )
        self.commit = Gauge(
            "bankstream_sink_last_commit_timestamp_seconds",
            "when offsets were last committed (epoch seconds)",
            multiprocess_mode="max",
        )
        self.paused = Gauge(
            "bankstream_sink_store_paused",
            "1 while the store does not answer and the partitions are paused",
            multiprocess_mode="livemax",
        )
        self.recovered = Counter(
            "bankstream_sink_batches_recovered",
            "batch records of a process that died, finished by another",
        )
        self.processes = Gauge(
            "bankstream_sink_processes", "sink processes running", multiprocess_mode="livesum"
        )

    def observe_latencies(self, seconds: NDArray[np.float64]) -> None:
        """Many latencies at once, into the histogram's buckets."""
        self.latency.observe_many(seconds)


def restarts() -> Any:
    """The counter of sink processes restarted (the supervising process's own)."""
    from prometheus_client import Counter

    return Counter("bankstream_sink_restarts", "sink processes restarted after they died")


def process_dead(pid: int, directory: str) -> None:
    """A sink process died: its live gauges (lag, paused, processes) go with it."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
