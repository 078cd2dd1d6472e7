"""What the engine needs from a scenario, computed once: probabilities, amount parameters,
merchant tables and the pre-encoded JSON fragments events are assembled from."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from bankstream.events import (
    CARD_KINDS,
    CHANNELS,
    EVENT_VERSION,
    MIX_TYPES,
    RAILS,
    TRANSFER_RAILS,
    TX_TYPES,
)
from loadgen.calendar import Clock, is_bank_day
from scenarios.model import (
    Amount,
    Anomalies,
    CreditCards,
    Limits,
    Opening,
    Population,
    PrepaidCards,
    Scenario,
    Spike,
)

# Integer codes of the engine: positions in the contract's vocabularies. The first seven types
# are drawn from a segment's mix, in this order.
TYPES = TX_TYPES
DEPOSIT, WITHDRAWAL, TRANSFER, BILL, CARD, REFUND, FEE, SALARY = (
    TYPES.index(name)
    for name in (
        "deposit",
        "withdrawal",
        "transfer",
        "bill_payment",
        "card_purchase",
        "refund",
        "fee",
        "salary",
    )
)
assert TYPES[: len(MIX_TYPES)] == MIX_TYPES
RAIL_NAMES = RAILS  # transfer rails (drawn by weight) first, then boleto and card
assert RAIL_NAMES[: len(TRANSFER_RAILS)] == TRANSFER_RAILS
NO_RAIL, BOLETO, CARD_RAIL = -1, RAILS.index("boleto"), RAILS.index("card")
PIX, TED, INTERNAL = RAILS.index("pix"), RAILS.index("ted"), RAILS.index("internal")
CREDIT, DEBIT, PREPAID = (CARD_KINDS.index(k) for k in ("credit", "debit", "prepaid"))
DEFAULT_CELLS = 256
CUSTOMERS_PER_CELL = 64  # a small bank gets fewer cells, so customers can still meet in one
MERCHANT_RANKS = 100_000_000  # merchant id = category * this + rank
TABLE_TYPES = (DEPOSIT, WITHDRAWAL, BILL, FEE)  # the types with an amount of their own
CHUNK_EVENTS = 2048  # a cell's events are made this many at a time (about)
T = TypeVar("T")


_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def events_digest(scenario: Scenario) -> str:
    """A digest of what decides a scenario's events (its bank, time, fraud, seed, name and the
    delivery markers), not of how they are sent (load, time mode, topic, sink, thresholds):
    transaction ids derive from it, so `generate` and `produce` at any rate share them."""
    data = scenario.model_dump(mode="json", exclude={"load", "sink", "thresholds", "description"})
    data["time"] = {k: v for k, v in data["time"].items() if k not in ("mode", "acceleration")}
    delivery = data["delivery"]
    data["delivery"] = {k: delivery[k] for k in ("duplicates", "out_of_order")}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def q(value: str | None) -> str:
    """A value as JSON text, ASCII only (anything else as a \\uXXXX escape): event text stays
    one byte per character, for speed and memory, and decodes to the same value."""
    if value is None:
        return "null"
    if _PLAIN.issuperset(value):  # nothing to escape
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=True)


def lookup(mapping: Mapping[Any, T], names: Iterable[str], default: T) -> list[T]:
    """The values of ``names`` in ``mapping``, ``default`` for those it lacks."""
    return [mapping.get(name, default) for name in names]


def cumulative(weights: list[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Cumulative probabilities for sampling with searchsorted (last one exactly 1)."""
    w = np.asarray(weights, dtype=np.float64)
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return c


@dataclass(frozen=True)
class AmountModel:
    """Lognormal amount in cents, clipped: the parameters numpy needs."""

    mu: float
    sigma: float
    low: int
    high: int

    @classmethod
    def of(cls, amount: Amount) -> AmountModel:
        high = amount.max if amount.max is not None else 10**15
        return cls(math.log(amount.median), amount.sigma, amount.min, high)

    def draw(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        values = np.exp(self.mu + self.sigma * rng.standard_normal(n))
        out: NDArray[np.int64] = np.clip(np.rint(values), self.low, self.high).astype(np.int64)
        return out

    def mean(self) -> float:
        """The mean of the clipped lognormal, cents."""
        mu, sigma, low, high = self.mu, self.sigma, float(self.low), float(self.high)
        if sigma == 0:
            return min(max(math.exp(mu), low), high)

        def below(x: float) -> float:  # P(X < x)
            return 0.5 * (1.0 + math.erf((math.log(x) - mu) / (sigma * math.sqrt(2.0))))

        def partial(x: float) -> float:  # E[X; X < x]
            z = (math.log(x) - mu - sigma * sigma) / (sigma * math.sqrt(2.0))
            return math.exp(mu + sigma * sigma / 2.0) * 0.5 * (1.0 + math.erf(z))

        return low * below(low) + high * (1.0 - below(high)) + partial(high) - partial(low)


@dataclass(frozen=True)
class AmountTable:
    """Several amount distributions side by side: one draw for rows of mixed kinds."""

    mu: NDArray[np.float64]
    sigma: NDArray[np.float64]
    low: NDArray[np.int64]
    high: NDArray[np.int64]

    @classmethod
    def of(cls, models: list[AmountModel]) -> AmountTable:
        return cls(
            np.array([m.mu for m in models]),
            np.array([m.sigma for m in models]),
            np.array([m.low for m in models], dtype=np.int64),
            np.array([m.high for m in models], dtype=np.int64),
        )

    def draw(self, rng: np.random.Generator, which: NDArray[np.int64]) -> NDArray[np.int64]:
        """An amount for each row, from distribution ``which[row]``."""
        values = np.exp(self.mu[which] + self.sigma[which] * rng.standard_normal(len(which)))
        out: NDArray[np.int64] = np.clip(np.rint(values), self.low[which], self.high[which]).astype(
            np.int64
        )
        return out


@dataclass
class SegmentModel:
    index: int
    name: str
    mix: NDArray[np.float64]  # probabilities over MIX_TYPES
    channels: NDArray[np.float64]  # cumulative over CHANNELS


# hour facts columns: TED open, branch open, ATM open, weekend (0/1), next TED hour, next ATM hour
TED_OPEN, BRANCH_OPEN, ATM_OPEN, WEEKEND, TED_NEXT, ATM_NEXT = range(6)
_FACTS = 6
_LOOKAHEAD = 24 * 14  # no window is closed for longer than this (Carnival and a weekend: 4 days)


@dataclass
class EngineModel:
    """A scenario turned into arrays and text fragments; shared by every cell."""

    scenario: Scenario
    run_id: str
    cells: int
    tag: str  # transaction id prefix, from the scenario digest (seed included)
    segments: list[SegmentModel] = field(default_factory=list)
    # cumulative channel weights by (segment, type code), for the types with channels of their own
    type_channels: dict[tuple[int, int], NDArray[np.float64]] = field(default_factory=dict)
    rails: NDArray[np.float64] = field(default_factory=lambda: np.ones(1))
    rail_amounts: list[AmountModel] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    category_cum: NDArray[np.float64] = field(default_factory=lambda: np.ones(1))
    # every category's cumulative popularity, category c shifted to [c, c + 1): one searchsorted
    merchant_cum_all: NDArray[np.float64] = field(default_factory=lambda: np.ones(1))
    merchant_first: NDArray[np.int64] = field(default_factory=lambda: np.zeros(1, np.int64))
    merchant_count: NDArray[np.int64] = field(default_factory=lambda: np.ones(1, np.int64))
    type_amounts: AmountTable = field(default_factory=lambda: AmountTable.of([]))  # TABLE_TYPES
    rail_table: AmountTable = field(default_factory=lambda: AmountTable.of([]))
    category_table: AmountTable = field(default_factory=lambda: AmountTable.of([]))
    merchant_frag: list[str] = field(default_factory=list)  # per category
    city_cum: NDArray[np.float64] = field(default_factory=lambda: np.ones(1))
    place_frag: list[list[str]] = field(default_factory=list)  # [segment][city]
    type_frag: dict[tuple[int, int, int], str] = field(default_factory=dict)
    channel_frag: list[str] = field(default_factory=list)
    tail: str = ""
    # card purchases by kind of card (CREDIT, DEBIT, PREPAID): weights, cumulative, the factor
    # the category amounts are scaled by, and the mean ticket that gives
    card_kinds: NDArray[np.float64] = field(default_factory=lambda: np.ones(3))
    card_kind_cum: NDArray[np.float64] = field(default_factory=lambda: np.ones(3))
    card_factor: NDArray[np.float64] = field(default_factory=lambda: np.ones(3))
    card_ticket: NDArray[np.float64] = field(default_factory=lambda: np.ones(3))
    slots_per_hour: int = 1
    native: bool = True  # the ledger's C loop when built (False: the Python reference)
    _activity: list[float] | None = None
    _clock: Clock | None = None
    # what every cell would otherwise work out again: tables of the fraud pre-roll, counterparty
    # texts that are not accounts of a cell (merchants, billers, employers)
    cache: dict[Any, Any] = field(default_factory=dict)
    # What the engine reads of the scenario, taken out of it once (``__post_init__``): plain
    # attributes, cheap to read anywhere. A section the engine reads whole is one attribute.
    scenario_name: str = field(init=False)
    seed: int = field(init=False)
    population: Population = field(init=False)  # segments, cities, named customers, accounts
    customers: int = field(init=False)
    new_device_share: float = field(init=False)
    spikes: list[Spike] = field(init=False)
    time_mode: str = field(init=False)  # "accelerated" or "by_rate"
    acceleration: float = field(init=False)
    opening: Opening = field(init=False)
    # transfers: counterparty in this bank, credits received, Pix to a business, weekend tickets
    internal_share: float = field(init=False)
    incoming_share: float = field(init=False)
    business_share: float = field(init=False)
    weekend_ticket: float = field(init=False)
    refund_max_age: float = field(init=False)
    refund_partial_share: float = field(init=False)
    credit: CreditCards = field(init=False)
    prepaid: PrepaidCards = field(init=False)
    limits: Limits = field(init=False)
    anomalies: Anomalies = field(init=False)
    duplicates: float = field(init=False)  # delivery markers
    out_of_order: float = field(init=False)

    def __post_init__(self) -> None:
        scenario = self.scenario
        pop, types = scenario.population, scenario.transaction_types
        self.scenario_name = scenario.name
        self.seed = scenario.seed
        self.population = pop
        self.customers = pop.customers
        self.new_device_share = pop.new_device_share
        self.spikes = scenario.time.spikes
        self.time_mode = scenario.time.mode
        self.acceleration = scenario.time.acceleration
        self.opening = scenario.time.opening
        transfer = types.transfer
        self.internal_share = transfer.internal_share
        self.incoming_share = transfer.incoming_share
        self.business_share = transfer.business_share
        self.weekend_ticket = transfer.weekend_ticket
        self.refund_max_age = types.refund.max_age
        self.refund_partial_share = types.refund.partial_share
        self.credit = types.card_purchase.credit
        self.prepaid = types.card_purchase.prepaid
        self.limits = scenario.limits
        self.anomalies = scenario.anomalies
        self.duplicates = scenario.delivery.duplicates
        self.out_of_order = scenario.delivery.out_of_order

    @property
    def clock(self) -> Clock:
        """Simulated time, shared by every cell: its slots depend on the scenario alone."""
        if self._clock is None:
            self._clock = Clock(self.scenario, self.slots_per_hour)
        return self._clock

    @property
    def inside_share(self) -> float:
        """The share of transfers with a counterparty in this bank, each with a credit leg:
        ``internal_share``, less the Pix that pay a business (drawn from all the Pix sent, and
        never inside the bank)."""
        pix = float(np.diff(self.rails, prepend=0.0)[PIX]) if len(self.rails) > PIX else 0.0
        return self.internal_share * (1.0 - pix * self.business_share)

    def cell_activity(self, of: Callable[[EngineModel, int], float]) -> list[float]:
        """Expected events per day of every cell (``of(model, cell)``), worked out once."""
        if self._activity is None:
            self._activity = [of(self, cell) for cell in range(self.cells)]
        return self._activity

    def hour_facts(self, times: NDArray[np.float64], column: int | None = None) -> NDArray[Any]:
        """The facts' row (or one column of it: TED_OPEN, ... ATM_NEXT) of each moment's simulated
        hour, looked up in a table of consecutive hours that grows as the run goes on (a draw's
        moments lie within a few days of each other: no sorting, no per-hour Python)."""
        clock = self.clock
        hour = np.floor((times - clock.origin) / 3600.0).astype(np.int64)
        if not len(hour):
            return np.zeros((0, _FACTS) if column is None else 0, dtype=np.int64)
        base, table = self._facts_table(int(hour.min()), int(hour.max()))
        if column is None:
            out: NDArray[Any] = table[hour - base]
        else:
            out = table[:, column][hour - base]
        return out

    def _facts_table(self, low: int, high: int) -> tuple[int, NDArray[np.int64]]:
        """(first hour, facts of hours first..) covering ``low``..``high``: grown a week ahead at
        a time as the run goes on (at most a year of hours kept behind), made afresh for a
        moment before it."""
        hit: tuple[int, NDArray[np.int64]] | None = self.cache.get("facts table")
        if hit is not None:
            base, table = hit
            end = base + len(table)
            if base <= low and high < end:
                return hit
            if base <= low <= end:
                table = np.concatenate([table, self._facts_rows(end, high + 24 * 7 + 1)])
                cut = min(max(0, len(table) - 24 * 366), low - base)
                made = (base + cut, table[cut:])
                self.cache["facts table"] = made
                return made
        made = (low, self._facts_rows(low, high + 24 * 7 + 1))
        self.cache["facts table"] = made
        return made

    def _facts_rows(self, first: int, stop: int) -> NDArray[np.int64]:
        rows = [self._hour_facts(h) for h in range(first, stop)]
        return np.array(rows, dtype=np.int64).reshape(stop - first, _FACTS)

    def _hour_facts(self, h: int) -> tuple[int, ...]:
        """(TED open, branch open, ATM open, weekend, next TED hour, next ATM hour) of simulated
        hour ``h`` from the origin (a window that never opens: two weeks on)."""
        cache: dict[int, tuple[int, ...]] = self.cache.setdefault("hour facts", {})
        hit = cache.get(h)
        if hit is None:
            if len(cache) > 500_000:
                cache.clear()
            ted, branch, atm, weekend = self._open(h)
            ahead = range(h + 1, h + _LOOKAHEAD)
            next_ted = h if ted else next((k for k in ahead if self._open(k)[0]), ahead.stop)
            next_atm = h if atm else next((k for k in ahead if self._open(k)[2]), ahead.stop)
            hit = cache[h] = (ted, branch, atm, weekend, next_ted, next_atm)
        return hit

    def _open(self, h: int) -> tuple[int, int, int, int]:
        """(TED open, branch open, ATM open, weekend) in simulated hour ``h`` from the origin."""
        cache: dict[int, tuple[int, int, int, int]] = self.cache.setdefault("open", {})
        hit = cache.get(h)
        if hit is None:
            if len(cache) > 500_000:
                cache.clear()
            opening = self.opening
            local, weekday, day = self.clock.local(h * self.slots_per_hour)
            bank = is_bank_day(day)
            hit = cache[h] = (
                int(bank and opening.ted[0] <= local < opening.ted[1]),
                int(bank and opening.branch[0] <= local < opening.branch[1]),
                int(opening.atm[0] <= local < opening.atm[1]),
                int(weekday >= 5),
            )
        return hit

    def merchant_ranks(
        self, rng: np.random.Generator, category: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """A merchant of each row's category, by popularity (Zipf) within the category."""
        found = np.searchsorted(
            self.merchant_cum_all, category + rng.random(len(category)), side="right"
        )
        ranks: NDArray[np.int64] = np.minimum(
            found - self.merchant_first[category], self.merchant_count[category] - 1
        )
        return ranks

    @classmethod
    def build(cls, scenario: Scenario, digest: str, run_id: str | None = None) -> EngineModel:
        tag = hashlib.sha256(f"{events_digest(scenario)}:{scenario.seed}".encode()).hexdigest()[:8]
        cells = max(1, min(DEFAULT_CELLS, scenario.population.customers // CUSTOMERS_PER_CELL))
        model = cls(scenario, run_id or f"gen-{tag}", cells, tag)
        pop = scenario.population
        # hours are cut into slots when a cell would make far more than a chunk in one hour
        per_day = sum(s.share * s.activity.mean_per_day for s in pop.segments)
        per_hour_of_a_cell = pop.customers / cells * per_day / 24.0
        model.slots_per_hour = int(min(3600, max(1, math.ceil(per_hour_of_a_cell / CHUNK_EVENTS))))
        types = scenario.transaction_types
        for i, seg in enumerate(pop.segments):
            mix = np.array(lookup(seg.mix, MIX_TYPES, 0.0))
            cum = cumulative(lookup(seg.channels, CHANNELS, 0.0))
            model.segments.append(SegmentModel(i, seg.name, mix / mix.sum(), cum))
        overrides = {
            DEPOSIT: types.deposit.channels,
            WITHDRAWAL: types.withdrawal.channels,
            TRANSFER: types.transfer.channels,
            BILL: types.bill_payment.channels,
            FEE: types.fee.channels,
            CARD: types.card_purchase.channels,
        }
        # a type's channel weights, tilted by how much more or less than the average customer a
        # segment uses each channel: a segment on the web twice as often does twice as much of
        # every type that can be done on the web (a POS purchase stays at a POS)
        preference = [np.array(lookup(seg.channels, CHANNELS, 0.0)) for seg in pop.segments]
        preference = [p / p.sum() for p in preference]
        weight = [seg.share * seg.activity.mean_per_day for seg in pop.segments]
        average = sum(w * p for w, p in zip(weight, preference, strict=True)) / sum(weight)
        for i, p in enumerate(preference):
            tilt = np.divide(p, average, out=np.ones_like(p), where=average > 0)
            for code, override in overrides.items():
                if override:
                    base = np.array(lookup(override, CHANNELS, 0.0))
                    tilted = base * tilt
                    model.type_channels[(i, code)] = cumulative(
                        tilted if tilted.sum() > 0 else base
                    )
        amounts = {
            DEPOSIT: AmountModel.of(types.deposit.amount),
            WITHDRAWAL: AmountModel.of(types.withdrawal.amount),
            BILL: AmountModel.of(types.bill_payment.amount),
            FEE: AmountModel.of(types.fee.amount),
        }
        model.rails = cumulative(lookup(types.transfer.rails, TRANSFER_RAILS, 0.0))
        model.rail_amounts = [
            AmountModel.of(a)
            for a in lookup(types.transfer.rail_amounts, TRANSFER_RAILS, types.transfer.amount)
        ]
        merchants = scenario.merchants
        model.categories = list(merchants.categories)
        weights = [c.weight for c in merchants.categories.values()]
        model.category_cum = cumulative(weights)
        total = sum(weights)
        popularity = []
        for name, w in zip(model.categories, weights, strict=True):
            count = max(1, round(merchants.count * w / total))
            ranks = np.arange(1, count + 1, dtype=np.float64)
            popularity.append(cumulative(ranks**-merchants.zipf_exponent))
            model.merchant_frag.append(f'"merchant_category":{q(name)},"mcc":{merchants.mcc(name)}')
        model.merchant_cum_all = np.concatenate([c + cum for c, cum in enumerate(popularity)])
        counts = np.array([len(cum) for cum in popularity], dtype=np.int64)
        model.merchant_count = counts
        model.merchant_first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        model.type_amounts = AmountTable.of([amounts[t] for t in TABLE_TYPES])
        model.rail_table = AmountTable.of(model.rail_amounts)
        model.category_table = AmountTable.of(
            [AmountModel.of(c.amount) for c in merchants.categories.values()]
        )
        card = types.card_purchase
        model.card_kinds = np.array(lookup(card.kinds, CARD_KINDS, 0.0))
        model.card_kind_cum = cumulative(model.card_kinds)
        cat_weights = np.asarray(weights) / total
        category_mean = sum(
            w * AmountModel.of(c.amount).mean()
            for w, c in zip(cat_weights, merchants.categories.values(), strict=True)
        )
        if card.tickets is None:
            model.card_ticket = np.full(len(CARD_KINDS), category_mean)
        else:
            model.card_ticket = np.array(lookup(card.tickets, CARD_KINDS, category_mean), float)
        model.card_factor = model.card_ticket / category_mean
        model.city_cum = cumulative([c.weight for c in pop.cities])
        model.place_frag = [
            [
                f'"segment":{q(seg.name)},"city":{q(c.name)},"state":{q(c.state)},'
                f'"region":{q(c.region)}'
                for c in pop.cities
            ]
            for seg in pop.segments
        ]
        labels = {t: getattr(types, t).label for t in TYPES}
        for code, name in enumerate(TYPES):
            for rail in range(-1, len(RAIL_NAMES)):
                for direction in (-1, 1):
                    rail_text = q(RAIL_NAMES[rail]) if rail >= 0 else "null"
                    way = q("debit" if direction < 0 else "credit")
                    model.type_frag[(code, rail, direction)] = (
                        f'"type":{q(name)},"label":{q(labels[name] or name)},'
                        f'"rail":{rail_text},"direction":{way}'
                    )
        model.channel_frag = [q(c) for c in CHANNELS]
        model.tail = (
            f'"currency":{q(scenario.currency)},"event_version":{EVENT_VERSION},'
            f'"run_id":{q(model.run_id)},"scenario":{q(scenario.name)}'
        )
        return model
