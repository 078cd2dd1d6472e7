"""What customers do: the transaction types (deposits, withdrawals, transfers, bills, card
purchases with their credit and prepaid cards, refunds, salaries, fees) and the limits that
bind them."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator

from scenarios.bank import Amount
from scenarios.base import ChannelWeights, RailWeights, Strict, weighs
from scenarios.reference import CardKind, Channel, Rail
from scenarios.types import NonNegativeMoney, PositiveDuration, PositiveMoney, Share, Weight

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
    kinds: Annotated[dict[CardKind, Weight], weighs("card kind")] = Field(
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
