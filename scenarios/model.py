"""The scenario model: a bank's customers, merchants, transaction mix, time, fraud, load, delivery,
sink and pass/fail thresholds. Validated with pydantic v2; unknown keys are errors.

Money is integer cents in Python and currency units (at most 2 decimals) in YAML; durations are
seconds in Python and ``30s`` / ``10m`` / ``1h`` in YAML. Defaults are realistic for Brazilian
retail banking (``shared/REALISM.md``); each bundled scenario says where its figures come from.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)

from bankstream.events import TOPIC_PATTERN
from scenarios.anomalies import Anomalies
from scenarios.reference import DEFAULT_CITIES, MCC, REGIONS, CardKind, Channel, MixType, Rail
from scenarios.types import (
    CONDITION_RE,
    NonNegativeDuration,
    NonNegativeMoney,
    PositiveDuration,
    PositiveMoney,
    Share,
    Weight,
    check_shares,
    check_weights,
    format_condition,
    format_money,
    format_scope,
    parse_abort,
    parse_scoped_condition,
)

SCHEMA_VERSION = 1
NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TOPIC_RE = TOPIC_PATTERN
COLLECTION_RE = r"^[A-Za-z_][A-Za-z0-9_.-]{0,119}$"
CURRENCY_RE = r"^[A-Z]{3}$"


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


def _weighs(what: str) -> AfterValidator:
    """Relative weights of ``what``: not empty, not all zero."""

    def check(value: dict[Any, float]) -> dict[Any, float]:
        check_weights(value, what)
        return value

    return AfterValidator(check)


def _curve(length: int, what: str) -> AfterValidator:
    """``length`` relative weights (24 hours, 7 weekdays)."""

    def check(value: list[float]) -> list[float]:
        if len(value) != length:
            msg = f"{what}_weights needs {length} weights (got {len(value)})"
            raise ValueError(msg)
        check_weights(value, what)
        return value

    return AfterValidator(check)


ChannelWeights = Annotated[dict[Channel, Weight], _weighs("channel")]
MixWeights = Annotated[dict[MixType, Weight], _weighs("mix")]
RailWeights = Annotated[dict[Rail, Weight], _weighs("rail")]


class Strict(BaseModel):
    """Base of every scenario model: unknown keys are errors, values are validated on creation."""

    # strict: a boolean or a quoted number is not a number, as in the JSON Schema
    model_config = ConfigDict(
        extra="forbid", validate_default=True, strict=True, allow_inf_nan=False
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


# ============================================================================ transaction types


def _rails() -> dict[Rail, float]:
    return {"pix": 98.8, "ted": 1.2}


def _card_channels() -> dict[Channel, float]:
    # POS 13% of the operations customers make (FEBRABAN 2024), card purchases about 38% of
    # them in retail-day; in-app, wallet and e-commerce purchases on a phone count as mobile
    # (assumption)
    return {"pos": 34, "mobile": 56, "web": 10}


class SimpleType(Strict):
    """A transaction type with its own amount distribution."""

    label: str | None = Field(None, description="display name (e.g. 'deposito')")
    amount: Amount
    channels: ChannelWeights | None = Field(
        None,
        description="channel weights for this type, tilted per segment by the segment's "
        "channels against the average customer's (default: the segment's channels)",
    )


class TransferType(SimpleType):
    """Transfers by rail (PIX, TED, DOC), inside the bank or to/from other banks."""

    rails: RailWeights = Field(
        default_factory=_rails,
        description="rail weights (BCB 2024: Pix 63.8 bn vs TED 0.82 bn; DOC closed Feb 2024)",
    )
    rail_amounts: dict[Rail, Amount] = Field(
        default_factory=dict, description="amount per rail (default: amount)"
    )
    internal_share: Share = Field(0.25, description="share with a counterparty in this bank")
    weekend_ticket: float = Field(
        0.34,
        gt=0,
        le=1,
        description="Pix amounts on Saturdays and Sundays as a share of weekday ones (BCB: "
        "weekend tickets are about a third of weekday ones)",
    )
    incoming_share: Share = Field(
        0.45, description="share of external transfers that are credits (received)"
    )
    business_share: Share = Field(
        0.34,
        description="share of the Pix customers send that pays a business (person-to-business, "
        "at a merchant's ticket; BCB: about 34% of Pix in 2023); the rest goes to people",
    )


def _card_kinds() -> dict[CardKind, float]:
    # 2024 payments by count (BCB, ABECS): credit 19.8 bn, debit 16.7 bn, prepaid 9.2 bn
    return {"credit": 17.3, "debit": 14.6, "prepaid": 8.0}


def _card_tickets() -> dict[CardKind, Any]:
    # average tickets (ABECS 2024)
    return {"credit": 137, "debit": 60, "prepaid": 41}


class CreditCards(Strict):
    """Credit cards: an account of their own with a limit, a monthly statement and its payment."""

    holders: Share = Field(
        0.6,
        description="share of customers with a credit card (assumption: about 60% of Brazilian "
        "adults hold one; the card purchases drawn as credit go to holders)",
    )
    limit_multiple: float = Field(
        2.0,
        gt=0,
        le=100,
        description="the card's limit as a multiple of monthly income (assumption)",
    )
    limit_min: PositiveMoney = Field(500, description="smallest limit")
    limit_max: PositiveMoney = Field(50000, description="largest limit")
    due_days: list[Annotated[int, Field(ge=1, le=28)]] = Field(
        default_factory=lambda: list(range(1, 29)),
        min_length=1,
        description="days of the month a statement can be due on, one drawn per card (Brazilian "
        "issuers let the holder choose the day: assumption, any of 1-28)",
    )
    closing_days: int = Field(
        7,
        ge=1,
        le=20,
        description="the statement closes this many days before its due date (issuers close "
        "7-10 days before: assumption)",
    )
    pay_in_full: Share = Field(
        0.7,
        description="share of card holders who pay the whole statement on its due date; the "
        "others pay a part of it (between minimum and all) and carry the rest (assumption)",
    )
    minimum: Share = Field(
        0.15,
        description="the least a partial payer pays, as a share of the statement (assumption: "
        "issuers' usual minimum, 15%)",
    )


class PrepaidCards(Strict):
    """Prepaid cards: an account of their own, topped up from checking at a regular interval."""

    holders: Share = Field(
        0.35,
        description="share of customers with a prepaid card (assumption: the card purchases "
        "drawn as prepaid go to holders)",
    )
    top_up_every: Annotated[PositiveDuration, Field(ge=86400)] = Field(
        30 * 86400,
        description="how often a holder tops the card up from checking, in whole days (at "
        "least 1d; assumption: monthly, as a month's budget)",
    )
    top_up_margin: float = Field(
        1.25,
        ge=0.1,
        le=10,
        description="a top-up as a multiple of what the holder is expected to spend by card "
        "until the next (assumption: a quarter more, so that a card runs dry now and then)",
    )

    @field_validator("top_up_every")
    @classmethod
    def _whole_days(cls, every: float) -> float:
        if every % 86400:
            msg = f"top_up_every is in whole days (e.g. 30d); {every / 86400:g} days is not"
            raise ValueError(msg)
        return every


class CardPurchaseType(Strict):
    """Card purchases at merchants, by credit, debit or prepaid card; amounts come from the
    merchant's category, scaled so that each kind of card averages its own ticket."""

    label: str | None = None
    channels: ChannelWeights = Field(
        default_factory=_card_channels,
        description="POS in person, web / mobile for e-commerce",
    )
    kinds: Annotated[dict[CardKind, Weight], _weighs("card kind")] = Field(
        default_factory=_card_kinds,
        description="weights of the cards purchases are paid with (2024 by count: credit "
        "17.3%, debit 14.6%, prepaid 8.0% of all payments)",
    )
    tickets: dict[CardKind, PositiveMoney] | None = Field(
        default_factory=_card_tickets,
        description="average purchase by kind of card (ABECS 2024: credit R$ 137, debit R$ 60, "
        "prepaid R$ 41): the merchants' category amounts are scaled to these means; none keeps "
        "the category amounts for every card",
    )
    credit: CreditCards = Field(default_factory=CreditCards)
    prepaid: PrepaidCards = Field(default_factory=PrepaidCards)

    @model_validator(mode="after")
    def _tickets_of_every_kind(self) -> Self:
        if self.tickets is not None:
            missing = [k for k in self.kinds if self.kinds[k] > 0 and k not in self.tickets]
            if missing:
                msg = f"tickets: give a ticket for every kind of card used ({', '.join(missing)})"
                raise ValueError(msg)
        if self.credit.limit_max < self.credit.limit_min:
            msg = "credit: limit_max is below limit_min"
            raise ValueError(msg)
        return self


class RefundType(Strict):
    """Refund (estorno) of an earlier approved card purchase or bill payment of the same account."""

    label: str | None = None
    partial_share: Share = Field(0.3, description="share of refunds for part of the amount")
    max_age: PositiveDuration = Field(30 * 86400, description="oldest refundable transaction")


class SalaryType(Strict):
    label: str | None = None


class TransactionTypes(Strict):
    deposit: SimpleType = Field(
        default_factory=lambda: SimpleType(
            # cash, at ATMs and branches (assumption: a few hundred reais, with a long tail of
            # business owners' and affluent customers' large deposits, up to R$ 100,000)
            amount=Amount(median=300, sigma=1.3, min=10, max=100000),
            channels={"branch": 40, "atm": 60},
        )
    )
    withdrawal: SimpleType = Field(
        default_factory=lambda: SimpleType(
            # ATM average about R$ 417 in a 13th-salary week (likely above normal); Pix Saque
            # is capped at R$ 3,000 a day
            amount=Amount(median=200, sigma=0.7, min=20, max=3000),
            channels={"atm": 85, "branch": 15},
        )
    )
    transfer: TransferType = Field(
        default_factory=lambda: TransferType(
            # with cards, bills and cash: mobile 75%, digital 82%, POS 13% (FEBRABAN 2024)
            channels={"mobile": 90, "web": 7, "branch": 1, "atm": 2},
            # Pix between people (payments to businesses are at a merchant's ticket, see
            # business_share): 93% of individuals' Pix are under R$ 200 (BCB), median R$ 50-80
            # inferred. Median R$ 60 and sigma 0.75 put 94.6% of a weekday's Pix to people
            # under R$ 200, and with those to businesses about 92% of all a weekday's Pix
            # customers send (more on weekends: tickets a third)
            amount=Amount(median=60, sigma=0.75, max=20000),
            rail_amounts={
                "ted": Amount(median=2500, sigma=1.0, min=100, max=200000),
                # DOC was capped at R$ 4,999.99
                "doc": Amount.model_validate(
                    {"median": 800, "sigma": 0.8, "min": 10, "max": "4999.99"}
                ),
            },
        )
    )
    bill_payment: SimpleType = Field(
        default_factory=lambda: SimpleType(
            # boleto: R$ 1,380 on average including companies; a few hundred for individuals
            amount=Amount(median=250, sigma=0.9, min=5, max=20000),
            channels={"mobile": 80, "web": 14, "branch": 3, "atm": 3},
        )
    )
    card_purchase: CardPurchaseType = Field(default_factory=CardPurchaseType)
    refund: RefundType = Field(default_factory=RefundType)
    salary: SalaryType = Field(default_factory=SalaryType)
    fee: SimpleType = Field(
        default_factory=lambda: SimpleType(
            amount=Amount(median=12, sigma=0.5, min=1, max=100), channels={"mobile": 80, "web": 20}
        )
    )

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        """A type given in part keeps the defaults of what it leaves out (e.g. its amount)."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, given in data.items():
            field = cls.model_fields.get(name)
            if isinstance(given, dict) and field is not None and field.default_factory:
                default = field.default_factory()  # type: ignore[call-arg]
                base = default.model_dump(exclude_none=True)
                merged[name] = {**base, **given}
        return merged


# ============================================================================ limits


class NightLimit(Strict):
    """Since Oct 2021: at most R$ 1,000 in total between 20h and 6h by Pix, TED, same-bank
    transfer, boleto and debit card."""

    enabled: bool = True
    start_hour: int = Field(20, ge=0, le=23)
    end_hour: int = Field(6, ge=0, le=23)
    max_total: NonNegativeMoney = 1000

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.start_hour == self.end_hour:
            msg = "start_hour and end_hour are equal: the night would last no time (or all day)"
            raise ValueError(msg)
        return self


class NewDeviceLimit(Strict):
    """Since Nov 2024 (BCB): a device never used before may send at most R$ 200 per Pix and
    R$ 1,000 a day by Pix. Binds everyone, fraudsters included (a decline is the result)."""

    enabled: bool = True
    per_pix: NonNegativeMoney = 200
    daily: NonNegativeMoney = 1000


class CashLimit(Strict):
    """Cash taken out (ATM, Pix Saque / Pix Troco): at most R$ 3,000 an operation by day and
    R$ 1,000 in the night window of ``limits.night`` (BCB rules of Pix Saque; the same caps
    are assumed for ATM withdrawals)."""

    enabled: bool = True
    day: NonNegativeMoney = 3000
    night: NonNegativeMoney = 1000


class Limits(Strict):
    night: NightLimit = Field(default_factory=NightLimit)
    new_device: NewDeviceLimit = Field(default_factory=NewDeviceLimit)
    cash: CashLimit = Field(default_factory=CashLimit)
    daily_outgoing: NonNegativeMoney | None = Field(
        None,
        description="cap on an account's transfers, bill payments and card purchases per day "
        "(none = no cap)",
    )


# ============================================================================ time


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
