"""Fraud typologies a scenario injects, each event labelled with its typology and instance.

Rates are the share of all events that belong to the typology (BCB: Pix fraud about 7 per
100,000 transactions, card fraud about 30 per 100,000). A scenario may oversample fraud for
training data; the run's record states the rate used.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bankstream.events import TYPOLOGIES as TYPOLOGIES  # the contract names them
from scenarios.types import PositiveDuration, PositiveMoney, Share


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_default=True, strict=True, allow_inf_nan=False
    )


class Range(_Strict):
    """A whole number drawn uniformly from [min, max]."""

    min: int = Field(ge=1, le=100_000)
    max: int = Field(ge=1, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max < self.min:
            msg = f"max ({self.max}) is below min ({self.min})"
            raise ValueError(msg)
        return self


Rate = Annotated[float, Field(gt=0, le=0.5, description="share of all events")]


class AccountTakeover(_Strict):
    """A stolen account is drained by transfers to a new beneficiary, then cashed out."""

    kind: Literal["account_takeover"]
    rate: Rate
    transfers: Range = Field(default_factory=lambda: Range(min=1, max=4))
    drain_share: Share = Field(0.8, description="share of the available balance taken")
    new_device: bool = Field(True, description="the transfers come from a device never seen")
    cash_out: Share = Field(
        0.6, description="share of instances ending with a withdrawal by the beneficiary"
    )
    mule_inside_share: Share = Field(
        0.27,
        description="share whose beneficiary is a mule account of this bank (BCB 2024: "
        "rented mule accounts 27%)",
    )


class CardTesting(_Strict):
    """Bursts of tiny card purchases checking stolen card numbers, mostly online."""

    kind: Literal["card_testing"]
    rate: Rate
    burst: Range = Field(default_factory=lambda: Range(min=5, max=30))
    max_amount: PositiveMoney = Field(5, description="largest test purchase")
    window: PositiveDuration = Field(600, description="a burst spreads over this long")


class Structuring(_Strict):
    """Cash deposits kept under a reporting threshold (smurfing, "fracionamento"). In Brazil cash
    operations of R$ 50,000 or more are reported to COAF (BCB Circular 3.839/2017, carried into
    Circular 3.978/2020); a published case split money into deposits of R$ 9,900 at several
    ATMs, so the amounts spread well below the line, where large legitimate cash deposits are."""

    kind: Literal["structuring"]
    rate: Rate
    threshold: PositiveMoney = Field(50000, description="the reporting threshold avoided")
    margin: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.85, description="amounts fall in [threshold x (1 - margin), threshold)"
    )
    deposits: Range = Field(default_factory=lambda: Range(min=3, max=10))
    window: PositiveDuration = Field(2 * 86400, description="the deposits spread over this long")


class MuleRing(_Strict):
    """Money fans in to a ring of mule accounts, is held briefly, then fans out."""

    kind: Literal["mule_ring"]
    rate: Rate
    ring_size: Range = Field(default_factory=lambda: Range(min=3, max=8))
    fan_in: Range = Field(default_factory=lambda: Range(min=5, max=20))
    fan_out: Range = Field(default_factory=lambda: Range(min=2, max=6))
    hold: PositiveDuration = Field(6 * 3600, description="time between fan-in and fan-out")


Typology = Annotated[
    AccountTakeover | CardTesting | Structuring | MuleRing, Field(discriminator="kind")
]


class Overlap(_Strict):
    """How much fraud looks like normal traffic: 0 = easy to tell apart, 1 = same distributions."""

    amount: Share = Field(0.5, description="fraud amounts drawn from normal amounts this often")
    time: Share = Field(0.5, description="fraud times follow the normal hour curve this often")


class Anomalies(_Strict):
    typologies: list[Typology] = Field(default_factory=list)
    overlap: Overlap = Field(default_factory=Overlap)
    blocked_share: Share = Field(
        0.2, description="share of fraudulent debits the bank's controls decline (blocked_fraud)"
    )

    @model_validator(mode="after")
    def _total(self) -> Self:
        total = sum(t.rate for t in self.typologies)
        if total > 0.5:
            msg = f"typology rates add up to {total:g}; at most 0.5 of all events can be fraud"
            raise ValueError(msg)
        return self

    @property
    def total_rate(self) -> float:
        return sum(t.rate for t in self.typologies)
