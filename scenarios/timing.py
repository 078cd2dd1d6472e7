"""Time and load: the simulated clock (start, zone, mode, hour and weekday curves, spikes,
opening hours) and how many events are sent how fast (stages, rate, duration, events)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator, model_validator

from scenarios.base import Strict
from scenarios.reference import MixType
from scenarios.types import NonNegativeDuration, PositiveDuration, Weight, check_weights

# ============================================================================ time


def _curve(length: int, what: str) -> AfterValidator:
    """``length`` relative weights (24 hours, 7 weekdays)."""

    def check(value: list[float]) -> list[float]:
        if len(value) != length:
            msg = f"{what}_weights needs {length} weights (got {len(value)})"
            raise ValueError(msg)
        check_weights(value, what)
        return value

    return AfterValidator(check)


def _hour_curve() -> list[float]:
    # No hourly Pix curve is published: midday and early-evening peaks, thin night (assumption),
    # about 38% of weekday volume from 17h (BCB).
    return [
        0.6,
        0.35,
        0.25,
        0.2,
        0.2,
        0.35,
        0.9,
        2.0,
        3.6,
        4.8,
        5.5,
        5.9,
        6.3,
        6.0,
        5.7,
        5.6,
        5.6,
        5.9,
        6.3,
        6.2,
        5.4,
        4.3,
        3.0,
        1.6,
    ]


def _window(value: list[int]) -> list[int]:
    if len(value) != 2 or not 0 <= value[0] < value[1] <= 24:
        msg = f"expected [from, to] local hours with 0 <= from < to <= 24, got {value}"
        raise ValueError(msg)
    return value


HourWindow = Annotated[list[int], AfterValidator(_window)]


class Opening(Strict):
    """When places work, in local hours [from, to). Pix, cards and boletos run 24x7 (a boleto
    paid at night settles later). What a customer does while a place is closed: a TED waits for
    the next settlement window (scheduled), cash waits for the ATMs to open, anything else at a
    closed branch or ATM is done on the phone. Bank days are Monday to Friday without national
    holidays, Carnival and Corpus Christi (FEBRABAN)."""

    ted: HourWindow = Field(
        default_factory=lambda: [7, 17],
        description="TED settles on bank days in the STR window (about 06:30 to 17:00-17:30)",
    )
    branch: HourWindow = Field(
        default_factory=lambda: [10, 16],
        description="branches open on bank days (assumption: most open 10h-16h)",
    )
    atm: HourWindow = Field(
        default_factory=lambda: [6, 22],
        description="ATMs work every day in these hours (assumption: most networks 06h-22h)",
    )


class Spike(Strict):
    """More activity on some days: paydays, month end, or a given date."""

    kind: Literal["payday", "month_end", "date"]
    multiplier: float = Field(gt=0, le=100)
    date: dt.date | None = Field(None, strict=False, description="kind date: the day")
    name: str | None = None
    types: list[MixType] | None = Field(None, description="only these types (default: all)")

    @model_validator(mode="after")
    def _date(self) -> Self:
        if (self.kind == "date") != (self.date is not None):
            msg = "date is needed with kind: date, and only then"
            raise ValueError(msg)
        return self


class Time(Strict):
    start: dt.datetime = Field(
        dt.datetime(2025, 3, 10, 0, 0), strict=False, description="simulated start (local)"
    )
    timezone: str = "America/Sao_Paulo"
    mode: Literal["accelerated", "by_rate"] = Field(
        "by_rate",
        description="accelerated: simulated seconds = acceleration x wall seconds; by_rate: "
        "simulated time advances with the events, at the population's own pace",
    )
    acceleration: float = Field(1.0, gt=0, le=1e7, description="simulated seconds per wall second")
    hour_weights: Annotated[list[Weight], _curve(24, "hour")] = Field(
        default_factory=_hour_curve, description="24 weights, 0h..23h"
    )
    weekday_weights: Annotated[list[Weight], _curve(7, "weekday")] = Field(
        # Mon-Fri about 77% of Pix (BCB)
        default_factory=lambda: [1.0, 1.0, 1.0, 1.0, 1.05, 0.75, 0.7],
        description="7 weights, Monday..Sunday",
    )
    spikes: list[Spike] = Field(
        default_factory=lambda: [
            Spike(kind="payday", multiplier=1.8),
            Spike(kind="month_end", multiplier=1.2),
        ]
    )
    opening: Opening = Field(default_factory=Opening)

    @field_validator("start")
    @classmethod
    def _naive(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            msg = "give start without a UTC offset: it is local time in `timezone`"
            raise ValueError(msg)
        if not 1970 <= value.year <= 2200:
            msg = f"expected a start between 1970 and 2200, got {value.isoformat()}"
            raise ValueError(msg)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            msg = f"unknown time zone {value!r} (expected an IANA name such as America/Sao_Paulo)"
            raise ValueError(msg) from None
        return value


# ============================================================================ load


class Stage(Strict):
    duration: PositiveDuration
    rate: float = Field(gt=0, le=10_000_000, description="target events per second")
    ramp: Literal["step", "linear"] = Field(
        "step", description="linear: from the previous stage's rate (0 for the first) to rate"
    )


class Load(Strict):
    """How many events, how fast: stages, or a constant rate with a duration or an event count."""

    stages: list[Stage] | None = None
    rate: Annotated[float, Field(gt=0, le=10_000_000)] | Literal["max"] | None = Field(
        None, description="constant events per second, or max (as fast as possible)"
    )
    duration: PositiveDuration | None = None
    events: int | None = Field(None, gt=0, le=10**12, description="total number of events")
    warmup: NonNegativeDuration = Field(0, description="excluded from results")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.stages is not None:
            if not self.stages:
                msg = "stages needs at least one stage"
                raise ValueError(msg)
            if self.rate is not None or self.duration is not None:
                msg = "give either stages, or rate with duration/events, not both"
                raise ValueError(msg)
        elif self.rate is None:
            msg = "give stages, or a rate (events/s or max) with a duration or events"
            raise ValueError(msg)
        elif self.duration is None and self.events is None:
            msg = "a rate needs a duration or a number of events"
            raise ValueError(msg)
        elif self.duration is not None and self.events is not None:
            msg = "give a duration or a number of events, not both"
            raise ValueError(msg)
        if self.stages and self.events is not None:
            msg = "stages set the length of the run: leave out events"
            raise ValueError(msg)
        total = self.total_duration
        if total is not None and self.warmup >= total:
            msg = f"warmup ({self.warmup:g} s) must be shorter than the run ({total:g} s)"
            raise ValueError(msg)
        return self

    @property
    def total_duration(self) -> float | None:
        """Seconds the load lasts, when known in advance."""
        if self.stages:
            return sum(s.duration for s in self.stages)
        if self.duration is not None:
            return self.duration
        if isinstance(self.rate, float) and self.events is not None:
            return self.events / self.rate
        return None
