"""The bank: its customers (segments with their balances, income, pay schedules, overdrafts and
activity; cities; named customers) and its merchants, with the amount distribution they share
with the transaction types."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from scenarios.base import NAME_RE, ChannelWeights, MixWeights, Strict
from scenarios.reference import DEFAULT_CITIES, MCC, REGIONS, Channel, MixType
from scenarios.types import (
    NonNegativeDuration,
    NonNegativeMoney,
    PositiveMoney,
    Share,
    Weight,
    check_shares,
    check_weights,
    format_money,
)

# ============================================================================ distributions


class Amount(Strict):
    """A right-skewed amount: lognormal with this median and sigma, clipped to [min, max]."""

    median: PositiveMoney = Field(description="median amount (currency units)")
    sigma: float = Field(0.8, ge=0, le=4, description="lognormal shape; 0 = always the median")
    # written like the YAML: "0.01" is validated into 1 cent
    min: PositiveMoney = Field(default="0.01", description="smallest amount")  # type: ignore[assignment]
    max: PositiveMoney | None = Field(None, description="largest amount; none = unbounded")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max is not None and self.max < self.min:
            msg = "max is below min"
            raise ValueError(msg)
        if not self.min <= self.median <= (self.max if self.max is not None else self.median):
            top = f"{format_money(self.max)}" if self.max is not None else "unbounded"
            msg = (
                f"median ({format_money(self.median)}) must lie between min "
                f"({format_money(self.min)}) and max ({top})"
            )
            raise ValueError(msg)
        return self


class BalanceBin(Strict):
    """One row of an empirical table: a share of accounts with a balance in [min, max)."""

    min: NonNegativeMoney
    max: NonNegativeMoney
    share: Share

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max <= self.min:
            msg = "max must be above min"
            raise ValueError(msg)
        return self


class InitialBalance(Strict):
    """Opening balances: zero-inflated lognormal (some empty accounts), or an empirical table."""

    kind: Literal["zero_inflated_lognormal", "empirical"] = "zero_inflated_lognormal"
    zero_share: Share = Field(0.1, description="share of accounts opening at zero")
    median: PositiveMoney | None = Field(1500, description="median of the non-zero balances")
    sigma: float = Field(1.4, ge=0, le=5, description="lognormal shape of non-zero balances")
    table: list[BalanceBin] | None = Field(None, description="empirical bins (kind: empirical)")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind == "empirical":
            if not self.table:
                msg = "kind empirical needs a table of {min, max, share} bins"
                raise ValueError(msg)
            check_shares([b.share for b in self.table], "table")
        elif self.table is not None:
            msg = "table is only used with kind: empirical"
            raise ValueError(msg)
        elif self.median is None:
            msg = "kind zero_inflated_lognormal needs a median"
            raise ValueError(msg)
        return self


class Income(Strict):
    """Monthly income: lognormal. Defaults match IBGE 2024 (mean habitual income R$ 3,225; Gini
    0.506, i.e. sigma about 0.97 for a single lognormal)."""

    median: PositiveMoney = Field(2000, description="median monthly income")
    sigma: float = Field(0.95, ge=0, le=4, description="lognormal shape")


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class PaySchedule(Strict):
    """When salaries are credited: monthly on a day, every other week on a weekday, or on days."""

    kind: Literal["monthly", "biweekly", "days"] = "monthly"
    day: int = Field(
        5, ge=1, le=31, description="monthly: day of the month (CLT: by the 5th business day)"
    )
    business_days: bool = Field(
        True,
        description="count `day` in business days: Monday to Saturday without national "
        "holidays (CLT art. 459, MTE IN 01/1989); paid on the bank day before when that day is "
        "a Saturday",
    )
    weekday: Weekday = Field("friday", description="biweekly: pay weekday")
    days: list[Annotated[int, Field(ge=1, le=31)]] = Field(
        default_factory=lambda: [5, 20], description="days: days of the month"
    )
    jitter: NonNegativeDuration = Field(
        4 * 3600, le=12 * 3600, description="spread of the credit time around 08:00 of pay day"
    )
    share_paid: Share = Field(0.85, description="share of customers who receive a salary")

    @model_validator(mode="after")
    def _business(self) -> Self:
        if self.kind == "monthly" and self.business_days and self.day > 23:
            msg = f"no month has {self.day} business days (at most 23)"
            raise ValueError(msg)
        return self

    @field_validator("days")
    @classmethod
    def _distinct(cls, days: list[int]) -> list[int]:
        if not days:
            msg = "days needs at least one day of the month"
            raise ValueError(msg)
        if len(set(days)) != len(days):
            msg = "days repeats a day"
            raise ValueError(msg)
        return days


class Overdraft(Strict):
    """How far an account may go below zero (cheque especial)."""

    kind: Literal["none", "fixed", "income_multiple"] = "income_multiple"
    amount: NonNegativeMoney = Field(0, description="fixed: the limit")
    multiple: float = Field(0.5, ge=0, le=20, description="income_multiple: limit = income x this")
    max: NonNegativeMoney | None = Field(None, description="cap on the limit (none = no cap)")


class Activity(Strict):
    """Transactions per customer per day: gamma-distributed between customers (heterogeneous)."""

    mean_per_day: float = Field(2.0, gt=0, le=10000, description="population mean")
    shape: float = Field(
        0.8, gt=0, le=1000, description="gamma shape: low = few very active customers, high = even"
    )


def _segment_channels() -> dict[Channel, float]:
    return {"mobile": 75, "web": 7, "pos": 13, "atm": 3, "branch": 2}


def _segment_mix() -> dict[MixType, float]:
    return {
        "transfer": 52,
        "card_purchase": 38,
        "bill_payment": 4,
        "withdrawal": 2,
        "deposit": 2,
        "refund": 1,
        "fee": 1,
    }


class Segment(Strict):
    """A group of customers that behave alike."""

    name: Annotated[str, Field(pattern=NAME_RE)]
    share: Annotated[float, Field(gt=0, le=1)] = Field(description="share of all customers")
    initial_balance: InitialBalance = Field(default_factory=InitialBalance)
    income: Income = Field(default_factory=Income)
    pay_schedule: PaySchedule = Field(default_factory=PaySchedule)
    overdraft: Overdraft = Field(default_factory=Overdraft)
    activity: Activity = Field(default_factory=Activity)
    channels: ChannelWeights = Field(
        default_factory=_segment_channels,
        description="how much the segment uses each channel (FEBRABAN 2024: mobile 75%, "
        "digital 82%, POS 13%, physical 5%): against the average customer's, it tilts every "
        "type's own channel weights; the channels of types without their own (refunds)",
    )
    mix: MixWeights = Field(
        default_factory=_segment_mix,
        description="transaction type weights by count (salary follows the pay schedule)",
    )


class City(Strict):
    name: Annotated[str, Field(min_length=1)]
    state: str = Field(description="two-letter state (UF), e.g. SP")
    weight: Weight = 1.0

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        if value not in REGIONS:
            msg = (
                f"unknown state {value!r} (expected a UF such as {', '.join(list(REGIONS)[:5])}...)"
            )
            raise ValueError(msg)
        return value

    @property
    def region(self) -> str:
        return REGIONS[self.state]


class NamedCustomer(Strict):
    """A customer with a name (the demo's familiar faces); the rest are numbered."""

    name: Annotated[str, Field(min_length=1)]
    city: str | None = Field(None, description="one of population.cities (default: drawn)")
    segment: str | None = Field(None, description="one of the segments (default: drawn)")


class Population(Strict):
    customers: int = Field(gt=0, le=1_000_000_000, description="number of customers")
    accounts_per_customer: list[Weight] = Field(
        default_factory=lambda: [1.0],
        description="weights of having 1, 2, 3, ... accounts",
    )
    segments: list[Segment] = Field(
        default_factory=lambda: [Segment(name="retail", share=1.0)], min_length=1
    )
    cities: list[City] = Field(
        default_factory=lambda: [City(name=n, state=s, weight=w) for n, s, w in DEFAULT_CITIES],
        min_length=1,
    )
    named_customers: list[NamedCustomer] = Field(default_factory=list)
    new_device_share: Share = Field(
        0.004,
        description="share of legitimate customers' own mobile and web operations made from a "
        "device the bank has not seen before (a new or added phone or computer), so a new device "
        "is a risk signal, not a label. Assumption: a phone replaced or added about every two "
        "years, its first few operations marked new (nothing published)",
    )

    @field_validator("accounts_per_customer")
    @classmethod
    def _accounts(cls, value: list[float]) -> list[float]:
        if not value:
            msg = "accounts_per_customer needs at least one weight"
            raise ValueError(msg)
        check_weights(value, "accounts_per_customer")
        return value

    @field_validator("segments")
    @classmethod
    def _segments(cls, segments: list[Segment]) -> list[Segment]:
        names = [s.name for s in segments]
        if len(set(names)) != len(names):
            msg = f"segment names must be unique (got {names})"
            raise ValueError(msg)
        check_shares([s.share for s in segments], "segment")
        return segments

    @field_validator("cities")
    @classmethod
    def _cities(cls, cities: list[City]) -> list[City]:
        check_weights([c.weight for c in cities], "city")
        return cities

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [s.name for s in self.segments]
        if len(self.named_customers) > self.customers:
            msg = f"{len(self.named_customers)} named customers but only {self.customers} customers"
            raise ValueError(msg)
        cities = {c.name for c in self.cities}
        for named in self.named_customers:
            if named.city is not None and named.city not in cities:
                msg = f"named customer {named.name!r}: city {named.city!r} is not in cities"
                raise ValueError(msg)
            if named.segment is not None and named.segment not in names:
                msg = f"named customer {named.name!r}: segment {named.segment!r} is not a segment"
                raise ValueError(msg)
        return self


# ============================================================================ merchants


class Category(Strict):
    weight: Weight = Field(description="share of card purchases (relative)")
    mcc: int | None = Field(
        None, ge=1, le=9999, description="ISO 18245 code; default from the category name"
    )
    amount: Amount


class Merchants(Strict):
    count: int = Field(5000, gt=0, le=10_000_000)
    zipf_exponent: float = Field(1.1, gt=0, le=5, description="popularity: rank r gets r^-s")
    categories: dict[Annotated[str, Field(pattern=NAME_RE)], Category] = Field(
        default_factory=lambda: {
            # ABECS 2024 average tickets: credit R$ 137, debit R$ 60, prepaid R$ 41
            "grocery": Category(weight=30, amount=Amount(median=55, sigma=0.9, max=3000)),
            "restaurants": Category(weight=14, amount=Amount(median=45, sigma=0.7, max=2000)),
            "fuel": Category(weight=10, amount=Amount(median=120, sigma=0.6, max=1500)),
            "pharmacy": Category(weight=9, amount=Amount(median=40, sigma=0.8, max=2000)),
            "marketplace": Category(weight=12, amount=Amount(median=90, sigma=1.1, max=10000)),
            "clothing": Category(weight=7, amount=Amount(median=120, sigma=0.9, max=5000)),
            "rideshare": Category(weight=8, amount=Amount(median=22, sigma=0.6, max=500)),
            "digital_goods": Category(weight=6, amount=Amount(median=30, sigma=0.8, max=1000)),
            "electronics": Category(weight=4, amount=Amount(median=400, sigma=1.0, max=20000)),
        },
        min_length=1,
    )

    @model_validator(mode="after")
    def _codes(self) -> Self:
        check_weights([c.weight for c in self.categories.values()], "category")
        unknown = [n for n, c in self.categories.items() if c.mcc is None and n not in MCC]
        if unknown:
            msg = (
                f"category {unknown[0]!r} has no built-in MCC: give mcc (ISO 18245), or use "
                f"one of {', '.join(sorted(MCC))}"
            )
            raise ValueError(msg)
        return self

    def mcc(self, category: str) -> int:
        code = self.categories[category].mcc
        return code if code is not None else MCC[category]
