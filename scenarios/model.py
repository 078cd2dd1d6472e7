"""The scenario model: a bank's customers, merchants, transaction mix, time, fraud, load, delivery,
sink and pass/fail thresholds. Validated with pydantic v2; unknown keys are errors.

Money is integer cents in Python and currency units (at most 2 decimals) in YAML; durations are
seconds in Python and ``30s`` / ``10m`` / ``1h`` in YAML. Defaults are realistic for Brazilian
retail banking (``shared/REALISM.md``); each bundled scenario says where its figures come from.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_serializer, model_validator

from scenarios.anomalies import Anomalies
from scenarios.bank import (
    Activity,
    Amount,
    BalanceBin,
    Category,
    City,
    Income,
    InitialBalance,
    Merchants,
    NamedCustomer,
    Overdraft,
    PaySchedule,
    Population,
    Segment,
    Weekday,
)
from scenarios.base import (
    COLLECTION_RE,
    CURRENCY_RE,
    NAME_RE,
    SCHEMA_VERSION,
    TOPIC_RE,
    ChannelWeights,
    MixWeights,
    RailWeights,
    Strict,
)
from scenarios.pipeline import (
    ABORT_METRIC_RE,
    LATENCY_METRIC,
    LATENCY_METRIC_RE,
    METRIC_RE,
    SCOPED_METRIC_RE,
    THRESHOLD_METRICS,
    Collection,
    Collections,
    Condition,
    Conditions,
    Delivery,
    Sink,
    Topic,
    WriteConcern,
    default_thresholds,
)
from scenarios.timing import HourWindow, Load, Opening, Spike, Stage, Time
from scenarios.transactions import (
    CardPurchaseType,
    CashLimit,
    CreditCards,
    Limits,
    NewDeviceLimit,
    NightLimit,
    PrepaidCards,
    RefundType,
    SalaryType,
    SimpleType,
    TransactionTypes,
    TransferType,
)

# the sections live in modules of their own (base, bank, transactions, timing, pipeline); every
# name of the model is also here, where it has always been
__all__ = [
    "ABORT_METRIC_RE",
    "COLLECTION_RE",
    "CURRENCY_RE",
    "LATENCY_METRIC",
    "LATENCY_METRIC_RE",
    "METRIC_RE",
    "NAME_RE",
    "SCHEMA_VERSION",
    "SCOPED_METRIC_RE",
    "THRESHOLD_METRICS",
    "TOPIC_RE",
    "Activity",
    "Amount",
    "Anomalies",
    "BalanceBin",
    "CardPurchaseType",
    "CashLimit",
    "Category",
    "ChannelWeights",
    "City",
    "Collection",
    "Collections",
    "Condition",
    "Conditions",
    "CreditCards",
    "Delivery",
    "HourWindow",
    "Income",
    "InitialBalance",
    "Limits",
    "Load",
    "Merchants",
    "MixWeights",
    "NamedCustomer",
    "NewDeviceLimit",
    "NightLimit",
    "Opening",
    "Overdraft",
    "PaySchedule",
    "Population",
    "PrepaidCards",
    "RailWeights",
    "RefundType",
    "SalaryType",
    "Scenario",
    "Segment",
    "SimpleType",
    "Sink",
    "Spike",
    "Stage",
    "Strict",
    "Time",
    "Topic",
    "TransactionTypes",
    "TransferType",
    "Weekday",
    "WriteConcern",
    "default_thresholds",
]


# ============================================================================ the scenario


class Scenario(Strict):
    """A named, shareable description of a bank and a load test against its pipeline."""

    schema_version: Literal[1] = Field(1, description="version of this file format")
    name: Annotated[str, Field(pattern=NAME_RE)] = Field(description="lower-case slug")
    description: str = Field("", description="one line first, details after")
    extends: str | None = Field(
        None, description="parent scenario (bundled name or path) to deep-merge over"
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="same scenario + seed = same events")
    currency: Annotated[str, Field(pattern=CURRENCY_RE)] = "BRL"
    population: Population
    merchants: Merchants = Field(default_factory=Merchants)
    transaction_types: TransactionTypes = Field(default_factory=TransactionTypes)
    limits: Limits = Field(default_factory=Limits)
    time: Time = Field(default_factory=Time)
    anomalies: Anomalies = Field(default_factory=Anomalies)
    load: Load
    delivery: Delivery = Field(default_factory=Delivery)
    sink: Sink = Field(default_factory=Sink)
    thresholds: dict[Annotated[str, Field(pattern=METRIC_RE)], Conditions] = Field(
        default_factory=default_thresholds,
        description="metric -> conditions that must hold for the run to pass",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_thresholds(cls, data: Any) -> Any:
        """With rate: max there is no target rate, so the default thresholds leave it out."""
        if isinstance(data, dict) and "thresholds" not in data:
            load = data.get("load")
            if isinstance(load, dict) and load.get("rate") == "max":
                defaults = default_thresholds()
                del defaults["produce_rate_ratio"]
                return {**data, "thresholds": defaults}
        return data

    @model_validator(mode="after")
    def _thresholds_fit_load(self) -> Self:
        if self.load.rate == "max" and "produce_rate_ratio" in self.thresholds:
            msg = (
                "thresholds.produce_rate_ratio has no target rate with load.rate: max (remove "
                "it, e.g. produce_rate_ratio: null in a scenario that extends another)"
            )
            raise ValueError(msg)
        stages = len(self.load.stages or [])
        for metric, conditions in self.thresholds.items():
            for c in conditions:
                if c.scope and not SCOPED_METRIC_RE.match(metric):
                    msg = (
                        f"thresholds.{metric}: '{c.text(metric)}': only latency metrics, "
                        "max_lag_seconds, produce_rate_ratio and sink_rate_ratio can be judged "
                        "over a window or in a stage"
                    )
                    raise ValueError(msg)
                if c.abort and not (ABORT_METRIC_RE.match(metric) and c.op in ("<", "<=")):
                    msg = (
                        f"thresholds.{metric}: '{c.text(metric)}': only an upper limit ('<', "
                        "'<=') of a latency metric or max_lag_seconds can abort a run (its "
                        "other figures are known at the end)"
                    )
                    raise ValueError(msg)
                if c.stage is not None and c.stage > stages:
                    has = f"{stages} stage{'s' if stages != 1 else ''}" if stages else "no stages"
                    msg = f"thresholds.{metric}: '{c.text(metric)}': the load has {has}"
                    raise ValueError(msg)
        return self

    @field_serializer("thresholds")
    def _write_thresholds(self, value: dict[str, list[Condition]]) -> dict[str, list[str]]:
        return {
            metric: [c.text(metric) for c in conditions] for metric, conditions in value.items()
        }

    @property
    def first_line(self) -> str:
        return self.description.strip().splitlines()[0] if self.description.strip() else ""
