"""The producer's Prometheus metrics, ``bankstream_loadgen_*``, in base units.

Every worker process writes its own values (prometheus-client's multiprocess mode: files in
one directory per run); the coordinator serves them as one ``/metrics``. Counters are by
transaction type at most: no account or transaction ids as labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from bankstream.events import TX_TYPES
from bankstream.metrics import BatchHistogram

# delivery latency, from the intended send time to the broker's acknowledgement
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)


class Metrics:
    """One worker's metrics (created after ``use_directory``)."""

    def __init__(self, run_id: str, scenario: str) -> None:
        from prometheus_client import Counter, Gauge

        def by_type(name: str, text: str) -> Any:
            counter = Counter(name, text, ["type"])
            return [counter.labels(type=t) for t in TX_TYPES]

        self.produced = by_type(
            "bankstream_loadgen_events_produced", "events handed to the Kafka client, by type"
        )
        self.acked = by_type(
            "bankstream_loadgen_events_acked", "events the broker acknowledged, by type"
        )
        self.failed = by_type(
            "bankstream_loadgen_events_failed",
            "events the Kafka client finally failed to deliver, by type",
        )
        self.bytes = Counter("bankstream_loadgen_produced_bytes", "message values produced")
        self.target = Gauge(
            "bankstream_loadgen_target_events_per_second",
            "the schedule's rate now (the run's, summed over processes)",
            multiprocess_mode="livesum",
        )
        self.achieved = Gauge(
            "bankstream_loadgen_achieved_events_per_second",
            "events acknowledged per second over the last second",
            multiprocess_mode="livesum",
        )
        self.latency = BatchHistogram(
            "bankstream_loadgen_delivery_latency_seconds",
            "intended send time to acknowledgement by the broker",
            LATENCY_BUCKETS,
        )
        self.queue = Gauge(
            "bankstream_loadgen_queue_messages",
            "messages waiting in the Kafka clients' queues",
            multiprocess_mode="livesum",
        )
        self.lag = Gauge(
            "bankstream_loadgen_schedule_lag_seconds",
            "how far behind its schedule the slowest process is",
            multiprocess_mode="max",
        )
        self.stall = Counter(
            "bankstream_loadgen_stall_seconds",
            "time spent unable to hand events to the Kafka client, or with events in flight and "
            "no acknowledgement",
        )
        self.workers = Gauge(
            "bankstream_loadgen_workers", "producer processes running", multiprocess_mode="livesum"
        )
        self.info = Gauge(
            "bankstream_loadgen_run_info",
            "the run being produced",
            ["run_id", "scenario"],
            multiprocess_mode="max",
        )
        self.info.labels(run_id=run_id, scenario=scenario).set(1)

    def observe_latencies(self, seconds: NDArray[np.float64]) -> None:
        """Many latencies at once, into the histogram's buckets."""
        self.latency.observe_many(seconds)
