"""A cell of the population: its customers and accounts, drawn from the cell's own random stream.

Customer ``g`` (0-based, global) lives in cell ``g % cells``; its accounts stay in that cell, so a
transfer between two customers of a cell never leaves it. Nothing here depends on how many
processes or hosts share the cells.
"""

from __future__ import annotations

import datetime as dt
from array import array
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loadgen.calendar import is_bank_day
from loadgen.model import CARD, CREDIT, PREPAID, EngineModel, q

# streams of a cell, each from SeedSequence(seed, spawn_key=(cell, purpose))
INIT, DRAW, FRAUD = 0, 1, 2


def cell_rng(seed: int, cell: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(cell, purpose)))


def customers_of(cell: int, cells: int, customers: int) -> NDArray[np.int64]:
    return np.arange(cell, customers, cells, dtype=np.int64)


@dataclass
class CellState:
    """Accounts of one cell and their ledger (balances in cents, sequence numbers)."""

    cell: int
    customer: NDArray[np.int64]  # global customer index, per account
    primary: NDArray[np.bool_]  # the customer's first account
    segment: NDArray[np.int64]
    city: NDArray[np.int64]
    activity: NDArray[np.float64]  # expected events per day
    income: NDArray[np.int64]  # monthly, cents
    paid: NDArray[np.bool_]  # receives a salary
    opening: NDArray[np.int64]  # opening balances, cents
    # the ledger, as Python lists: the sequential loop reads and writes them one by one
    balance: list[int]
    floor: array[int]  # -overdraft limit: the lowest an approved debit may leave (read only)
    seq: list[int]
    key: list[str]  # account id (the Kafka key)
    # the event's fields about who: "account":...,"customer":...,"customer_name":..., segment,
    # city, state, region and "device": the customer's usual device
    who: list[str]
    # the checking accounts come first (0 .. n_bank - 1), then the credit cards, then the
    # prepaid cards: accounts of their own, with no activity of their own
    n_bank: int = 0
    cards: Cards | None = None

    @property
    def size(self) -> int:
        return len(self.balance)

    def checksum(self) -> tuple[int, str]:
        """Sum of balances and a digest of every (account, balance, seq)."""
        import hashlib

        digest = hashlib.sha256()
        for key, bal, seq in zip(self.key, self.balance, self.seq, strict=True):
            digest.update(f"{key}:{bal}:{seq};".encode())
        return sum(self.balance), digest.hexdigest()


@dataclass
class Cards:
    """The cell's credit and prepaid card accounts, and which card each checking account's
    customer holds (-1: none)."""

    credit_of: NDArray[np.int64]  # per checking account: its customer's credit card, or -1
    prepaid_of: NDArray[np.int64]  # per checking account: its customer's prepaid card, or -1
    credit: NDArray[np.int64]  # the credit card accounts
    prepaid: NDArray[np.int64]  # the prepaid card accounts
    pays_from: NDArray[np.int64]  # per card account (in credit, then prepaid order): checking
    due_day: NDArray[np.int64]  # per credit card: the day of the month its statement is due
    pay_share: NDArray[np.float64]  # per credit card: the share of a statement it pays
    top_up: NDArray[np.int64]  # per prepaid card: what each top-up moves, cents
    pay_time: NDArray[np.float64]  # per credit card: when in the run of automatic debits, 0-1
    phase_day: NDArray[np.int64]  # per prepaid card: its top-up days are ordinal + this
    top_up_time: NDArray[np.float64]  # per prepaid card: when in the day it tops up, 0-1
    activity: NDArray[np.float64]  # per card account: its customer's expected events a day
    statement: NDArray[np.int64]  # per credit card: what it owed at the statement before the run


@dataclass
class Customers:
    """The customers of a cell as first drawn (the rest of a cell follows from them)."""

    rng: np.random.Generator  # the cell's INIT stream, positioned after these draws
    g: NDArray[np.int64]
    segment: NDArray[np.int64]
    city: NDArray[np.int64]
    names: list[str | None]
    n_accounts: NDArray[np.int64]
    activity: NDArray[np.float64]
    income: NDArray[np.int64]


def draw_customers(model: EngineModel, cell: int) -> Customers:
    """Segment, city, name, number of accounts, activity and income of each customer."""
    pop = model.population
    rng = cell_rng(model.seed, cell, INIT)
    g = customers_of(cell, model.cells, pop.customers)
    n = len(g)
    shares = np.array([s.share for s in pop.segments])
    segment = np.searchsorted(np.cumsum(shares / shares.sum()), rng.random(n), side="right")
    segment = np.minimum(segment, len(shares) - 1)
    city = np.minimum(
        np.searchsorted(model.city_cum, rng.random(n), side="right"), len(pop.cities) - 1
    )
    names: list[str | None] = [None] * n
    city_index = {c.name: i for i, c in enumerate(pop.cities)}
    segment_index = {s.name: i for i, s in enumerate(pop.segments)}
    for j, named in enumerate(pop.named_customers):
        if j % model.cells == cell and j < pop.customers:
            local = j // model.cells
            names[local] = named.name
            if named.city is not None:
                city[local] = city_index[named.city]
            if named.segment is not None:
                segment[local] = segment_index[named.segment]
    per = np.asarray(pop.accounts_per_customer, dtype=np.float64)
    n_accounts = 1 + np.minimum(
        np.searchsorted(np.cumsum(per / per.sum()), rng.random(n), side="right"), len(per) - 1
    )
    activity = np.empty(n)
    income = np.empty(n, dtype=np.int64)
    for s, seg in enumerate(pop.segments):
        mask = segment == s
        k = int(mask.sum())
        shape = seg.activity.shape
        activity[mask] = rng.gamma(shape, seg.activity.mean_per_day / shape, k)
        income[mask] = np.maximum(
            1,
            np.rint(np.exp(np.log(seg.income.median) + seg.income.sigma * rng.standard_normal(k))),
        ).astype(np.int64)
    return Customers(rng, g, segment, city, names, n_accounts, activity, income)


def cell_activity(model: EngineModel, cell: int) -> float:
    """Expected events per day of a cell's customers (cheap: no accounts are built). The
    customers drawn are kept for ``build_cell``, which would draw them again."""
    customers = draw_customers(model, cell)
    model.cache[("customers", cell)] = customers
    return float(customers.activity.sum())


def build_cell(model: EngineModel, cell: int) -> CellState:
    pop = model.population
    first = model.cache.pop(("customers", cell), None) or draw_customers(model, cell)
    rng, g, segment, city, names = first.rng, first.g, first.segment, first.city, first.names
    n_accounts, activity, income = first.n_accounts, first.activity, first.income
    n = len(g)
    owner = np.repeat(np.arange(n), n_accounts)  # local customer index, per account
    starts = np.cumsum(n_accounts) - n_accounts
    number = np.arange(len(owner)) - np.repeat(starts, n_accounts)  # 0 = primary
    weights = 0.5 ** number.astype(np.float64)
    weights /= np.bincount(owner, weights)[owner]
    acc_activity = activity[owner] * weights
    acc_segment = segment[owner]
    acc_income = income[owner]
    m = len(owner)

    opening = np.zeros(m, dtype=np.int64)
    floor = np.zeros(m, dtype=np.int64)
    paid = np.zeros(m, dtype=bool)
    for s, seg in enumerate(pop.segments):
        mask = acc_segment == s
        k = int(mask.sum())
        ib = seg.initial_balance
        if ib.kind == "empirical" and ib.table:
            bins = np.minimum(
                np.searchsorted(
                    np.cumsum([b.share for b in ib.table]), rng.random(k), side="right"
                ),
                len(ib.table) - 1,
            )
            lows = np.array([b.min for b in ib.table])[bins]
            highs = np.array([b.max for b in ib.table])[bins]
            opening[mask] = lows + np.floor(rng.random(k) * (highs - lows)).astype(np.int64)
        else:
            median = ib.median or 1
            values = np.rint(np.exp(np.log(median) + ib.sigma * rng.standard_normal(k)))
            zero = rng.random(k) < ib.zero_share
            opening[mask] = np.where(zero, 0, values).astype(np.int64)
        od = seg.overdraft
        if od.kind == "fixed":
            limit = np.full(k, od.amount, dtype=np.int64)
        elif od.kind == "income_multiple":
            limit = np.rint(acc_income[mask] * od.multiple).astype(np.int64)
        else:
            limit = np.zeros(k, dtype=np.int64)
        if od.max is not None:
            limit = np.minimum(limit, od.max)
        floor[mask] = -limit
        paid[mask] = (number[mask] == 0) & (rng.random(k) < seg.pay_schedule.share_paid)

    # the cards: after every draw above, so the checking accounts do not depend on them
    card_owner, card_kind, cards, card_opening, card_floor = _cards(
        model, rng, starts, owner, activity, segment, income
    )
    owner = np.concatenate([owner, card_owner])
    customer = g[owner]
    # the accounts' texts: what belongs to the customer made once a customer
    digits = [f"{c:09d}" for c in g.tolist()]
    place = model.place_frag
    theirs = [
        f'"customer":"C{d}","customer_name":{"null" if name is None else q(name)},'
        f'{place[s][c]},"device":"D{d}"'
        for d, name, s, c in zip(digits, names, segment.tolist(), city.tolist(), strict=True)
    ]
    owners = owner.tolist()
    suffix = [*map(str, number.tolist()), *(CARD_SUFFIX[k] for k in card_kind.tolist())]
    key = [f"A{digits[o]}-{k}" for o, k in zip(owners, suffix, strict=True)]
    who = [f'"account":"{k}",{theirs[o]}' for k, o in zip(key, owners, strict=True)]
    n_cards = len(card_owner)
    opening = np.concatenate([opening, card_opening])
    floor = np.concatenate([floor, card_floor])
    return CellState(
        cell=cell,
        customer=customer,
        primary=np.concatenate([number == 0, np.zeros(n_cards, dtype=bool)]),
        segment=segment[owner],
        city=city[owner],
        activity=np.concatenate([acc_activity, np.zeros(n_cards)]),
        income=income[owner],
        paid=np.concatenate([paid, np.zeros(n_cards, dtype=bool)]),
        opening=opening,
        balance=opening.tolist(),
        floor=array("q", floor.astype(np.int64).tobytes()),
        seq=[0] * (m + n_cards),
        key=key,
        who=who,
        n_bank=m,
        cards=cards,
    )


CARD_SUFFIX = {1: "credit", 2: "prepaid"}


def _cards(
    model: EngineModel,
    rng: np.random.Generator,
    starts: NDArray[np.int64],
    owner: NDArray[np.int64],
    activity: NDArray[np.float64],
    segment: NDArray[np.int64],
    income: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], Cards, NDArray[np.int64], NDArray[np.int64]]:
    """The customers' credit and prepaid cards: (owner of each card account, its kind (1 credit,
    2 prepaid), the cards, opening balances, floors). A card's account is paid or topped up from
    its customer's first checking account."""
    credit_cards, prepaid_cards = model.credit, model.prepaid
    n, m = len(starts), len(owner)
    used = model.card_kinds
    credit_holder = (rng.random(n) < credit_cards.holders) & (used[CREDIT] > 0)
    prepaid_holder = (rng.random(n) < prepaid_cards.holders) & (used[PREPAID] > 0)
    due_pick = rng.integers(0, len(credit_cards.due_days), n)
    due_day_of = np.asarray(credit_cards.due_days, dtype=np.int64)[due_pick]
    full = rng.random(n) < credit_cards.pay_in_full
    part = credit_cards.minimum + (1.0 - credit_cards.minimum) * rng.random(n)
    phase = rng.random(n) * prepaid_cards.top_up_every
    credit_owner = np.flatnonzero(credit_holder)
    prepaid_owner = np.flatnonzero(prepaid_holder)
    n_credit, n_prepaid = len(credit_owner), len(prepaid_owner)
    credit = m + np.arange(n_credit, dtype=np.int64)
    prepaid = m + n_credit + np.arange(n_prepaid, dtype=np.int64)
    by_customer = np.full(n, -1, dtype=np.int64)
    by_customer[credit_owner] = credit
    credit_of = by_customer[owner]
    by_customer = np.full(n, -1, dtype=np.int64)
    by_customer[prepaid_owner] = prepaid
    prepaid_of = by_customer[owner]
    # a card's limit: a multiple of income, or two months of the customer's expected spending
    # with it if more (issuers raise the limits of customers who use and pay the card)
    month = _spending(model, CREDIT, credit_owner, activity, segment) * 30.0
    limit = np.clip(
        np.maximum(np.rint(income[credit_owner] * credit_cards.limit_multiple), 2 * month),
        credit_cards.limit_min,
        credit_cards.limit_max,
    ).astype(np.int64)
    # a top-up brings what the holder is expected to spend on the card until the next one
    days = max(1, round(prepaid_cards.top_up_every / 86_400.0))
    spend = _spending(model, PREPAID, prepaid_owner, activity, segment) * days
    spend *= prepaid_cards.top_up_margin
    top_up = np.maximum(1000, np.ceil(spend / 1000.0) * 1000).astype(np.int64)
    # credit cards in use before the run: the last statement (a month's expected spending,
    # half to one and a half of it) and what was spent since it closed, within the limit
    statement = np.minimum(limit, np.rint(month * (0.5 + rng.random(n_credit)))).astype(np.int64)
    since = _days_since_close(model)[due_day_of[credit_owner]]
    # a statement whose payment (on its due date or the next bank day, 06-08h) came before the
    # run's start is paid: what is still owed of it is the part a partial payer carries; one
    # paid at or after the start is paid in the run
    pay_time = (np.arange(n_credit, dtype=np.float64) * 0.6180339887498949) % 1.0
    paid_at = _last_pay_day(model)[due_day_of[credit_owner]] + (6 + 2 * pay_time) * 3600.0
    paid = paid_at < model.clock.start
    share = np.where(full, 1.0, part)[credit_owner]
    carried = np.where(paid, np.rint(statement * (1.0 - share)), statement).astype(np.int64)
    spent = np.minimum(limit - carried, np.rint(month * since / 30.0)).astype(np.int64)
    cards = Cards(
        credit_of=credit_of,
        prepaid_of=prepaid_of,
        credit=credit,
        prepaid=prepaid,
        pays_from=starts[np.concatenate([credit_owner, prepaid_owner])].astype(np.int64),
        due_day=due_day_of[credit_owner],
        pay_share=share,
        top_up=top_up,
        pay_time=pay_time,
        phase_day=(phase[prepaid_owner] // 86_400.0).astype(np.int64),
        top_up_time=(phase[prepaid_owner] % 86_400.0) / 86_400.0,
        activity=activity[np.concatenate([credit_owner, prepaid_owner])],
        statement=statement,
    )
    card_owner = np.concatenate([credit_owner, prepaid_owner]).astype(np.int64)
    kind = np.concatenate([np.ones(n_credit, np.int64), np.full(n_prepaid, 2, np.int64)])
    opening = np.concatenate([-(carried + spent), top_up])
    floor = np.concatenate([-limit, np.zeros(n_prepaid, np.int64)])
    return card_owner, kind, cards, opening, floor


def _days_since_close(model: EngineModel) -> NDArray[np.float64]:
    """Days from the last statement close before the run to its first day, by due day (1-28):
    the same for every cell."""
    hit: NDArray[np.float64] | None = model.cache.get("days since close")
    if hit is None:
        credit = model.credit
        start, closing = model.clock.anchor, dt.timedelta(days=credit.closing_days)
        hit = np.zeros(32)  # by day of the month (due days are 1-28)
        for back in range(31, -1, -1):  # the nearest close wins
            hit[(start - dt.timedelta(days=back) + closing).day] = back
        model.cache["days since close"] = hit
    return hit


def _last_pay_day(model: EngineModel) -> NDArray[np.float64]:
    """When the payment of the last statement closed by the run's first day is made, by due day
    (1-28): the epoch of the local midnight of its due date or the next bank day after it."""
    hit: NDArray[np.float64] | None = model.cache.get("last pay day")
    if hit is None:
        closing = model.credit.closing_days
        clock = model.clock
        back = _days_since_close(model)
        hit = np.zeros(32)
        for due_day in range(1, 32):
            day = clock.anchor - dt.timedelta(days=int(back[due_day])) + dt.timedelta(closing)
            while not is_bank_day(day):
                day += dt.timedelta(days=1)
            hit[due_day] = clock.epoch(day, 0.0)
        model.cache["last pay day"] = hit
    return hit


def _spending(
    model: EngineModel,
    kind: int,
    owners: NDArray[np.int64],
    activity: NDArray[np.float64],
    segment: NDArray[np.int64],
) -> NDArray[np.float64]:
    """What each of ``owners`` (customers holding a card of ``kind``) is expected to spend with
    it a day, cents: their segment's card purchases drawn as that kind, shared by its holders
    by activity, at the kind's ticket."""
    used = model.card_kinds
    share = used[kind] / used.sum()
    out = np.zeros(len(owners))
    for s, seg in enumerate(model.segments):
        holders = segment[owners] == s
        held = activity[owners][holders]
        if not len(held) or held.sum() <= 0:
            continue
        purchases = float(activity[segment == s].sum()) * seg.mix[CARD] * share
        out[holders] = purchases * held / held.sum() * model.card_ticket[kind]
    return out
