"""The pipeline's panels as PromQL: one list for the Grafana dashboard (``dashboard.grafana``
writes deploy/grafana/dashboards/bankstream.json from it) and the Streamlit pipeline page.

``$__rate_interval`` is Grafana's; :func:`resolve` gives the expression Prometheus itself runs.
"""

from __future__ import annotations

from dataclasses import dataclass

RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    legend: str  # Grafana's legend format: {{label}} is a label's value
    expr: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # Grafana's unit id
    queries: tuple[Query, ...]
    description: str = ""
    # Grafana only: the latest run's threshold on this figure, a dashed line (`run --push`
    # pushes the limits, grouped by scenario)
    limits: tuple[Query, ...] = ()


def _limit(metric: str) -> tuple[Query, ...]:
    return (
        Query(
            "limit {{condition}} ({{scenario}})",
            f'max by (scenario, condition) (bankstream_threshold_limit{{metric="{metric}"}})',
        ),
    )


def _quantiles(metric: str, by: str = "") -> tuple[Query, ...]:
    group = f"le{', ' + by if by else ''}"
    return tuple(
        Query(
            f"p{q}",
            f"histogram_quantile(0.{q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
        )
        for q in ("50", "95", "99")
    )


PANELS: tuple[Panel, ...] = (
    Panel(
        "Produced events/s by type",
        "ops",
        (
            Query(
                "{{type}}",
                f"sum by (type) (rate(bankstream_loadgen_events_acked_total[{RATE}]))",
            ),
        ),
        "events the broker acknowledged, per second, by transaction type",
    ),
    Panel(
        "Target vs produced vs sunk events/s",
        "ops",
        (
            Query("target", "sum(bankstream_loadgen_target_events_per_second)"),
            Query("produced", f"sum(rate(bankstream_loadgen_events_acked_total[{RATE}]))"),
            Query("sunk", f"sum(rate(bankstream_sink_consumed_total[{RATE}]))"),
        ),
        "the schedule's rate, the acknowledged rate and the rate the sink reads",
    ),
    Panel(
        "Sink writes/s by result",
        "ops",
        (
            Query(
                "{{result}}",
                f"sum by (result) (rate(bankstream_sink_written_total[{RATE}]))",
            ),
        ),
        "inserted, or duplicate (already there: a redelivery)",
    ),
    Panel(
        "Consumer lag (messages)",
        "short",
        (Query("lag", "sum(bankstream_sink_consumer_lag_messages)"),),
        "messages behind the end of the topic, over all partitions",
    ),
    Panel(
        "Consumer lag (seconds)",
        "s",
        (Query("lag", "max(bankstream_sink_consumer_lag_seconds)"),),
        "age of the last message read while a partition has more to read",
        _limit("max_lag_seconds"),
    ),
    Panel(
        "End-to-end latency",
        "s",
        _quantiles("bankstream_sink_end_to_end_latency_seconds"),
        "intended send time of an event to its write acknowledged by MongoDB",
        _limit("e2e_latency_p99_seconds"),
    ),
    Panel(
        "Delivery latency (producer)",
        "s",
        _quantiles("bankstream_loadgen_delivery_latency_seconds"),
        "intended send time to acknowledgement by the broker",
        _limit("delivery_latency_p99_seconds"),
    ),
    Panel(
        "Batch size (messages)",
        "short",
        (
            Query(
                "mean",
                f"sum(rate(bankstream_sink_batch_size_messages_sum[{RATE}])) / "
                f"sum(rate(bankstream_sink_batch_size_messages_count[{RATE}]))",
            ),
            *_quantiles("bankstream_sink_batch_size_messages")[2:],
        ),
    ),
    Panel(
        "Bulk write duration",
        "s",
        _quantiles("bankstream_sink_bulk_write_seconds"),
        "time to write a batch: transactions and projections",
    ),
    Panel(
        "Dead-lettered messages/s",
        "ops",
        (Query("dead-lettered", f"sum(rate(bankstream_sink_dead_lettered_total[{RATE}]))"),),
        "malformed messages sent to the dead-letter topic",
    ),
    Panel(
        "Errors and stalls",
        "short",
        (
            Query("failed/s", f"sum(rate(bankstream_loadgen_events_failed_total[{RATE}]))"),
            Query("stalled s/s", f"sum(rate(bankstream_loadgen_stall_seconds_total[{RATE}]))"),
            Query("store paused", "max(bankstream_sink_store_paused)"),
            Query("schedule lag (s)", "max(bankstream_loadgen_schedule_lag_seconds)"),
        ),
        "deliveries that finally failed, producer stalls, a paused store, a producer behind "
        "its schedule",
    ),
)


def resolve(expr: str, rate_interval: str = "30s") -> str:
    """The expression as Prometheus runs it (Grafana's ``$__rate_interval`` filled in)."""
    return expr.replace(RATE, rate_interval)
