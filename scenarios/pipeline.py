"""The pipeline under test: delivery to Kafka, the MongoDB sink, and the thresholds a run is
judged by (the metrics, their conditions and what each can be judged over)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from scenarios.base import COLLECTION_RE, TOPIC_RE, Strict
from scenarios.types import (
    CONDITION_RE,
    NonNegativeDuration,
    PositiveDuration,
    Share,
    format_condition,
    format_scope,
    parse_abort,
    parse_scoped_condition,
)


def _topic(value: str) -> str:
    if value in (".", ".."):
        msg = f"{value!r} is not a valid Kafka topic name"
        raise ValueError(msg)
    return value


def _collection(value: str) -> str:
    if value.startswith("system."):
        msg = f"{value!r}: system.* collections are MongoDB's own"
        raise ValueError(msg)
    return value


Topic = Annotated[str, Field(pattern=TOPIC_RE), AfterValidator(_topic)]
Collection = Annotated[str, Field(pattern=COLLECTION_RE), AfterValidator(_collection)]


# ============================================================================ delivery and sink


class Delivery(Strict):
    topic: Topic = "bankstream.transactions"
    partitions: int = Field(12, ge=1, le=10000)
    replication_factor: int = Field(1, ge=1, le=32)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    acks: Annotated[Literal["all", "1", "0"], PlainSerializer(str)] = "all"
    kafka_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="any librdkafka producer setting, passed through"
    )
    duplicates: Share = Field(0.0, le=0.5, description="share of events sent twice (marked)")
    out_of_order: Share = Field(
        0.0, le=0.5, description="share of events delayed behind later ones (marked)"
    )

    @field_validator("acks", mode="before")
    @classmethod
    def _acks(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class WriteConcern(Strict):
    w: Annotated[int, Field(ge=0)] | Literal["majority"] = 1
    j: bool = False
    wtimeout: NonNegativeDuration | None = None


class Collections(Strict):
    transactions: Collection = "transactions"
    accounts: Collection = "accounts"
    rollups: Collection = "rollups"
    runs: Collection = "runs"

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        names = list(self.model_dump().values())
        if len(set(names)) != len(names):
            msg = f"collection names must differ (got {names})"
            raise ValueError(msg)
        return self


class Sink(Strict):
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: PositiveDuration = 0.2
    workers: int = Field(1, ge=1, le=256, description="consumers in the group")
    write_concern: WriteConcern = Field(default_factory=WriteConcern)
    collections: Collections = Field(default_factory=Collections)
    dead_letter_topic: Topic | None = Field(None, description="default: <delivery.topic>.dlq")
    connect: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="run --sink connect: settings passed to the MongoDB sink connector as they "
        "are (tasks.max, max.batch.size, writemodel.strategy, any it takes); they win over "
        "bankstream's own, except the topic, the target collection and the connection",
    )


# ============================================================================ thresholds

# What a run can be judged on; the suffix says the unit (base units, as in the metrics).
THRESHOLD_METRICS: dict[str, str] = {
    "produce_rate_ratio": "achieved / target produce rate",
    "sink_rate_ratio": "sink write rate / produce rate",
    "delivery_latency_p50_seconds": "send latency from the intended send time, median",
    "delivery_latency_p99_seconds": "send latency from the intended send time, 99th percentile",
    "e2e_latency_p50_seconds": "intended send time to written in MongoDB, median",
    "e2e_latency_p95_seconds": "intended send time to written in MongoDB, 95th percentile",
    "e2e_latency_p99_seconds": "intended send time to written in MongoDB, 99th percentile",
    "e2e_latency_max_seconds": "intended send time to written in MongoDB, maximum",
    "max_lag_seconds": "largest consumer lag, in seconds",
    "recovery_seconds": "longest time from a fault's end until the sink caught up (run --fault)",
    "lost": "events acknowledged by Kafka but missing in MongoDB",
    "duplicates": "events stored more than once",
    "dead_lettered": "messages sent to the dead-letter topic",
    "failed": "events the producer could not deliver",
}
# any percentile, the maximum or the mean of delivery or end-to-end latency: p50, p99, p99_9
# (99.9), p99_99 (99.99), max, mean
LATENCY_METRIC = r"(delivery|e2e)_latency_(p[1-9][0-9]?(?:_[0-9]{1,3})?|max|mean)_seconds"
LATENCY_METRIC_RE = re.compile(f"^{LATENCY_METRIC}$")
METRIC_RE = re.compile("^(" + "|".join(THRESHOLD_METRICS) + "|" + LATENCY_METRIC + ")$")


class Condition(BaseModel):
    """One pass/fail condition, written ``"< 2s"``, ``">= 0.98"``, ``"== 0"``."""

    model_config = ConfigDict(frozen=True)

    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float
    over: float | None = None  # every window of this many seconds must hold
    stage: int | None = None  # only this stage of the load (1 = the first)
    abort: bool = False  # stop the run as soon as it can no longer pass
    abort_after: float = 0.0  # seconds after the warm-up before it may stop the run

    @property
    def scope(self) -> str:
        """``over 1m``, ``in stage 2`` or "" (the whole run after the warm-up)."""
        return format_scope(self.over, self.stage).strip()

    def holds(self, measured: float) -> bool:
        return {
            "<": measured < self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            ">=": measured >= self.value,
            "==": measured == self.value,
            "!=": measured != self.value,
        }[self.op]

    def __str__(self) -> str:
        return format_condition(
            self.op,
            self.value,
            over=self.over,
            stage=self.stage,
            abort=self.abort,
            abort_after=self.abort_after,
        )

    def text(self, metric: str) -> str:
        """As written in a scenario, in ``metric``'s unit."""
        unit = "s" if metric.endswith("_seconds") else ""
        return format_condition(
            self.op, self.value, unit, self.over, self.stage, self.abort, self.abort_after
        )


# what can be judged over each window of a run, or in one stage: what the per-second record of
# a run holds (its latency histograms, its consumer lag)
SCOPED_METRIC_RE = re.compile(
    f"^({LATENCY_METRIC}|max_lag_seconds|produce_rate_ratio|sink_rate_ratio)$"
)
# what each second decides for good (see harness/abort.py): latency, and the lag
ABORT_METRIC_RE = re.compile(f"^({LATENCY_METRIC}|max_lag_seconds)$")


def _conditions(value: Any) -> Any:
    items = value if isinstance(value, list) else [value]
    parsed = []
    for item in items:
        if isinstance(item, Condition):
            parsed.append(item)
        else:
            op, number, over, stage = parse_scoped_condition(item)
            abort, after = parse_abort(item)
            fields = {
                "op": op,
                "value": number,
                "over": over,
                "stage": stage,
                "abort": abort,
                "abort_after": after,
            }
            parsed.append(Condition.model_validate(fields))
    return parsed


Conditions = Annotated[
    list[Condition],
    BeforeValidator(_conditions),
    Field(min_length=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": CONDITION_RE.pattern},
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": CONDITION_RE.pattern},
                    "minItems": 1,
                },
            ],
            "description": "condition(s) such as '< 2s', '>= 0.98', '== 0', '< 1s over 60s', "
            "'< 500ms in stage 2', '< 2s over 30s, abort after 1m'",
        }
    ),
]


def default_thresholds() -> dict[str, list[Condition]]:
    return {
        "produce_rate_ratio": _conditions(">= 0.98"),
        "e2e_latency_p99_seconds": _conditions("< 2s"),
        "max_lag_seconds": _conditions("< 5s"),
        "lost": _conditions("== 0"),
        "duplicates": _conditions("== 0"),
    }
