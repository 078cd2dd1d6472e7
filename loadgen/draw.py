"""Vectorised draws for one cell over a span of simulated hours: who does what, when, how much.

Everything here is numpy and depends only on the cell's random stream; the sequential ledger
(``ledger.py``) then decides approvals and balances in time order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bankstream.events import CARD_KINDS, CHANNELS, COUNTERPARTY_KINDS, MIX_TYPES
from loadgen.calendar import HOUR, Clock, is_bank_day, is_payday, pays_per_month
from loadgen.model import (
    ATM_NEXT,
    ATM_OPEN,
    BILL,
    BOLETO,
    BRANCH_OPEN,
    CARD,
    CARD_RAIL,
    CREDIT,
    DEPOSIT,
    FEE,
    INTERNAL,
    MERCHANT_RANKS,
    NO_RAIL,
    PIX,
    PREPAID,
    REFUND,
    SALARY,
    TABLE_TYPES,
    TED,
    TED_NEXT,
    TED_OPEN,
    TRANSFER,
    TYPES,
    WEEKEND,
    WITHDRAWAL,
    EngineModel,
)
from loadgen.population import CellState

MOBILE, WEB, ATM, BRANCH = (CHANNELS.index(c) for c in ("mobile", "web", "atm", "branch"))
# a row that makes no event: a credit card's statement closes (what is owed is noted)
CLOSE = -1
N_CARD_KINDS = len(CARD_KINDS)

# counterparty kinds: 0 for none yet, else 1 + the position in the contract's vocabulary
CP_KINDS = ("none", *COUNTERPARTY_KINDS)
CP_NONE, CP_ACCOUNT, CP_MERCHANT, CP_EXTERNAL, CP_EMPLOYER, CP_CASH, CP_BILLER, CP_BANK = (
    CP_KINDS.index(kind)
    for kind in ("none", "account", "merchant", "external", "employer", "cash", "biller", "bank")
)

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


@dataclass
class Rows:
    """Planned events, one array per column; the ledger turns them into events."""

    time: F64  # epoch seconds
    acc: I64  # account index in the cell
    typ: I64
    direction: I64  # -1 debit, +1 credit
    amount: I64  # cents; 0 = decided by the ledger (refunds, drains)
    rail: I64
    channel: I64
    cp_kind: I64
    cp_id: I64  # account index, merchant id, external id, ...
    u: F64  # a uniform draw: a refund's choice, or whether the refund pool samples a purchase
    fraud: I64  # 0 = none, else 1 + typology index
    instance: I64
    drain: F64  # > 0: amount = this share of what the account can spend
    new_device: NDArray[np.bool_]
    blocked: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def empty(cls) -> Rows:
        return cls.of_size(0)

    @classmethod
    def of_size(cls, n: int, **given: NDArray[Any]) -> Rows:
        """``n`` rows: the columns ``given`` (of that length), zeros in the others."""
        made: dict[str, NDArray[Any]] = {
            name: given[name] if name in given else np.zeros(n, dtype=kind)
            for name, kind in _COLUMNS
        }
        return cls(**made)

    def take(self, index: NDArray[np.int64] | NDArray[np.bool_]) -> Rows:
        return Rows(**{name: getattr(self, name)[index] for name, _ in _COLUMNS})

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Rows.empty()
        if len(parts) == 1:
            return parts[0]
        return Rows(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name, _ in _COLUMNS}
        )


def _dtype(annotation: str) -> Any:
    return np.float64 if "F64" in annotation else bool if "bool" in annotation else np.int64


# (column, dtype) of Rows, worked out once
_COLUMNS: list[tuple[str, Any]] = [(f.name, _dtype(str(f.type))) for f in fields(Rows)]


def pick(cum: F64, rng: np.random.Generator, n: int) -> I64:
    """Indices drawn with the cumulative probabilities ``cum``."""
    out: I64 = np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)
    return out


def day_multipliers(model: EngineModel, segment: int, day: dt.date) -> tuple[float, ...]:
    """Spike multipliers of one segment's mix types on one local day (paydays, month ends,
    dates): the same for every cell, worked out once per model."""
    cache: dict[tuple[int, dt.date], tuple[float, ...]] = model.cache.setdefault("spikes", {})
    key = (segment, day)
    hit = cache.get(key)
    if hit is not None:
        return hit
    schedule = model.population.segments[segment].pay_schedule
    row = np.ones(len(MIX_TYPES))
    for spike in model.spikes:
        if spike.kind == "payday":
            applies = is_payday(schedule, day, model.clock.anchor)
        elif spike.kind == "month_end":
            applies = (day + dt.timedelta(days=1)).month != day.month
        else:
            applies = day == spike.date
        if applies:
            columns = [MIX_TYPES.index(t) for t in spike.types] if spike.types else slice(None)
            row[columns] *= spike.multiplier
    if len(cache) > 100_000:
        cache.clear()
    result = tuple(row.tolist())
    cache[key] = result
    return result


class CellDraws:
    """The vectorised half of a cell's generator."""

    def __init__(self, model: EngineModel, state: CellState, clock: Clock) -> None:
        self.model = model
        self.state = state
        self.clock = clock
        self.segments = []
        n_bank = state.n_bank
        for seg in model.segments:
            members = np.flatnonzero(state.segment[:n_bank] == seg.index)
            cum = np.cumsum(state.activity[members])
            self.segments.append((members, cum))
        # the card accounts of each kind (CREDIT, PREPAID) a segment's purchases of that kind go
        # to, by their customer's activity
        self.card_holders: dict[tuple[int, int], tuple[I64, F64]] = {}
        cards = state.cards
        if cards is not None:
            for kind, accounts in ((CREDIT, cards.credit), (PREPAID, cards.prepaid)):
                offset = 0 if kind == CREDIT else len(cards.credit)
                weight = cards.activity[offset : offset + len(accounts)]
                for seg in model.segments:
                    mine = np.flatnonzero(state.segment[accounts] == seg.index)
                    if len(mine) and weight[mine].sum() > 0:
                        held = (accounts[mine], np.cumsum(weight[mine]))
                        self.card_holders[(seg.index, kind)] = held
        # each holder group's code (segment, kind) and the next one: where its purchases begin
        # and end among a draw's purchases sorted by code
        self.card_holder_codes = np.array(
            [[s * N_CARD_KINDS + k, s * N_CARD_KINDS + k + 1] for s, k in self.card_holders],
            dtype=np.int64,
        ).reshape(-1)
        self.salary_amount = np.zeros(state.size, dtype=np.int64)
        for s, segment in enumerate(model.population.segments):
            mask = state.segment == s
            per = pays_per_month(segment.pay_schedule)
            self.salary_amount[mask] = np.rint(state.income[mask] / per).astype(np.int64)
        self.internal_share = model.internal_share if n_bank > 1 else 0.0
        self.incoming_share = model.incoming_share
        self.business_share = model.business_share

    def expected_per_hour(self) -> float:
        return float(self.state.activity.sum()) / 24.0

    def _type_multipliers(self, segment: int, dates: list[dt.date]) -> F64:
        """(hours, 7) spike multipliers per hour and mix type for one segment."""
        days = list(dict.fromkeys(dates))  # a chunk spans a few days: one row per day
        table = np.asarray([day_multipliers(self.model, segment, day) for day in days])
        index = {day: i for i, day in enumerate(days)}
        out: F64 = table[[index[day] for day in dates]]
        return out

    def hours(self, rng: np.random.Generator, k0: int, k1: int) -> Rows:
        """The everyday events of simulated slots [k0, k1), in no particular order."""
        base = self.clock.base_intensity(k0, k1)
        _, _, dates = self.clock.hours(k0, k1)
        span = k1 - k0
        columns: list[tuple[I64, F64, I64, I64]] = []  # (type, time, account, channel) a segment
        for seg, (members, cum) in zip(self.model.segments, self.segments, strict=True):
            if len(members) == 0:
                continue
            per_slot = float(cum[-1]) / 24.0 / self.clock.slots_per_hour
            intensity = per_slot * base[:, None] * seg.mix[None, :]
            intensity = intensity * self._type_multipliers(seg.index, dates)
            counts = rng.poisson(intensity).ravel()
            n = int(counts.sum())
            if n == 0:
                continue
            cell_index = np.repeat(np.arange(span * len(MIX_TYPES)), counts)
            typ = cell_index % len(MIX_TYPES)
            hour = cell_index // len(MIX_TYPES)
            time = self.clock.origin + (k0 + hour + rng.random(n)) * self.clock.slot
            draws = rng.random(n) * float(cum[-1])
            acc = members[np.minimum(np.searchsorted(cum, draws, side="right"), len(members) - 1)]
            channel = pick(seg.channels, rng, n)
            for code in range(len(MIX_TYPES)):
                own = self.model.type_channels.get((seg.index, code))
                if own is not None:
                    mask = typ == code
                    k = int(mask.sum())
                    if k:
                        channel[mask] = pick(own, rng, k)
            columns.append((typ, time, acc, channel))
        if not columns:
            rows = Rows.empty()
        else:
            joined: list[NDArray[Any]] = [
                columns[0][i] if len(columns) == 1 else np.concatenate([c[i] for c in columns])
                for i in range(4)
            ]
            given = dict(zip(("typ", "time", "acc", "channel"), joined, strict=True))
            rows = Rows.of_size(len(joined[0]), **given)
        self._details(rng, rows)
        self._weekend_tickets(rows)
        self.opening_hours(rng, rows)
        if k0 == 0:  # the grid starts on the hour: nothing before the run's start
            rows = rows.take(rows.time >= self.clock.start)
        return rows

    def _weekend_tickets(self, rows: Rows) -> None:
        """Pix on Saturdays and Sundays: the scenario's share of a weekday amount."""
        factor = self.model.weekend_ticket
        pix = np.flatnonzero((rows.typ == TRANSFER) & (rows.rail == PIX))
        if factor >= 1.0 or not len(pix):
            return
        weekend = self.model.hour_facts(rows.time[pix], WEEKEND) == 1
        low = self.model.rail_amounts[PIX].low
        scaled = np.maximum(low, np.rint(rows.amount[pix] * factor).astype(np.int64))
        rows.amount[pix] = np.where(weekend, scaled, rows.amount[pix])

    def opening_hours(self, rng: np.random.Generator, rows: Rows) -> None:
        """What happens while a place is closed (``time.opening``): a TED waits for the next
        settlement window, cash for the ATMs to open (within the first hour of the opening);
        anything else at a closed branch or ATM is done on the phone. Times only move later."""
        if not len(rows):
            return
        model = self.model
        origin = model.clock.origin
        ted = np.flatnonzero(rows.rail == TED)
        if len(ted):
            facts = model.hour_facts(rows.time[ted])
            late = np.flatnonzero(facts[:, TED_OPEN] == 0)
            rows.time[ted[late]] = (
                origin + facts[late, TED_NEXT] * HOUR + rng.random(len(late)) * HOUR
            )
        cash = (rows.typ == DEPOSIT) | (rows.typ == WITHDRAWAL)
        branch = np.flatnonzero(rows.channel == BRANCH)
        if len(branch):
            closed = branch[model.hour_facts(rows.time[branch], BRANCH_OPEN) == 0]
            rows.channel[closed] = np.where(cash[closed], ATM, MOBILE)
        atm = np.flatnonzero(rows.channel == ATM)
        if len(atm):
            facts = model.hour_facts(rows.time[atm])
            shut = facts[:, ATM_OPEN] == 0
            rows.channel[atm[shut & ~cash[atm]]] = MOBILE
            waits = np.flatnonzero(shut & cash[atm])
            rows.time[atm[waits]] = (
                origin + facts[waits, ATM_NEXT] * HOUR + rng.random(len(waits)) * HOUR
            )

    def _details(self, rng: np.random.Generator, rows: Rows) -> None:
        """Amounts, directions, rails, channels and counterparties by type."""
        model = self.model
        n = len(rows)
        rows.u = rng.random(n)
        rows.direction = np.full(n, -1, dtype=np.int64)
        rows.rail = np.full(n, NO_RAIL, dtype=np.int64)
        table_of_type = np.full(len(TYPES), -1, dtype=np.int64)
        table_of_type[list(TABLE_TYPES)] = np.arange(len(TABLE_TYPES))
        which = table_of_type[rows.typ]
        own = np.flatnonzero(which >= 0)
        if len(own):
            rows.amount[own] = model.type_amounts.draw(rng, which[own])
        rows.direction[rows.typ == DEPOSIT] = 1
        rows.cp_kind[(rows.typ == DEPOSIT) | (rows.typ == WITHDRAWAL)] = CP_CASH
        rows.cp_kind[rows.typ == FEE] = CP_BANK
        bills = rows.typ == BILL
        rows.cp_kind[bills] = CP_BILLER
        rows.rail[bills] = BOLETO
        rows.cp_id[bills] = rng.integers(0, 50_000, int(bills.sum()))
        # transfers: rail, amount by rail, inside the bank or not, received or sent
        transfers = np.flatnonzero(rows.typ == TRANSFER)
        k = len(transfers)
        if k:
            rail = pick(model.rails, rng, k)
            rows.rail[transfers] = rail
            rows.amount[transfers] = model.rail_table.draw(rng, rail)
            internal = rng.random(k) < self.internal_share
            incoming = ~internal & (rng.random(k) < self.incoming_share)
            # a share of the Pix customers send pays a business (person-to-business), at a
            # merchant's ticket; the rest goes to people, in this bank or another
            business = np.flatnonzero(
                ~incoming & (rail == PIX) & (rng.random(k) < self.business_share)
            )
            internal[business] = False
            # TED and DOC are interbank: between two accounts of the bank they are book transfers
            rows.rail[transfers[internal & (rail != PIX)]] = INTERNAL
            rows.direction[transfers[incoming]] = 1
            rows.cp_kind[transfers] = np.where(internal, CP_ACCOUNT, CP_EXTERNAL)
            other = rng.integers(0, max(1, self.state.n_bank - 1), k)
            own = rows.acc[transfers]
            other = other + (other >= own)  # anyone but the sender
            rows.cp_id[transfers] = np.where(internal, other, rng.integers(0, 2**32, k))
            if len(business):
                paid = transfers[business]
                category = pick(model.category_cum, rng, len(paid))
                rows.cp_kind[paid] = CP_MERCHANT
                rows.amount[paid] = model.category_table.draw(rng, category)
                rows.cp_id[paid] = category * MERCHANT_RANKS + model.merchant_ranks(rng, category)
        # card purchases: category by weight, merchant by popularity within it
        cards = np.flatnonzero(rows.typ == CARD)
        k = len(cards)
        if k:
            category = pick(model.category_cum, rng, k)
            rows.rail[cards] = CARD_RAIL
            rows.cp_kind[cards] = CP_MERCHANT
            amount = model.category_table.draw(rng, category)
            ranks = model.merchant_ranks(rng, category)
            rows.cp_id[cards] = category * MERCHANT_RANKS + ranks
            # the card it is paid with: a debit card takes from the checking account, a credit
            # or prepaid card is an account of its own, of a customer of the segment who holds
            # one (by activity); a segment of the cell without holders pays by debit card
            kind = pick(model.card_kind_cum, rng, k)
            rows.amount[cards] = np.maximum(1, np.rint(amount * model.card_factor[kind]))
            segment = self.state.segment[rows.acc[cards]]
            u = rng.random(k)
            if self.card_holders:
                # the purchases by (segment, kind), each group in row order
                code = segment * N_CARD_KINDS + kind
                order = np.argsort(code, kind="stable")
                bounds = np.searchsorted(code[order], self.card_holder_codes)
                for (lo, hi), (accounts, cum) in zip(
                    bounds.reshape(-1, 2).tolist(), self.card_holders.values(), strict=True
                ):
                    if hi > lo:
                        mine = order[lo:hi]
                        at = np.searchsorted(cum, u[mine] * cum[-1], side="right")
                        rows.acc[cards[mine]] = accounts[np.minimum(at, len(accounts) - 1)]
        rows.direction[rows.typ == REFUND] = 1
        # customers change or add phones and computers too: some of their own digital operations
        # come from a device never seen before (the new-device limits bind them as anyone)
        share = self.model.new_device_share
        if share > 0:
            own = np.flatnonzero(
                (rows.direction < 0) & ((rows.channel == MOBILE) | (rows.channel == WEB))
            )
            rows.new_device[own[rng.random(len(own)) < share]] = True

    def salaries(self, rng: np.random.Generator, k0: int, k1: int) -> Rows:
        """Salary credits of the paydays that begin in [k0, k1) (times may run past k1)."""
        _, _, dates = self.clock.hours(k0, k1)
        # the days that begin in these hours (by date change: a local midnight may be skipped
        # or repeated by a clock change), and the first day of the run
        before = self.clock.local(k0 - 1)[2] if k0 > 0 else None
        days = [d for d, prev in zip(dates, [before, *dates[:-1]], strict=True) if d != prev]
        parts = []
        for day in dict.fromkeys(days):
            for s, seg in enumerate(self.model.population.segments):
                if not is_payday(seg.pay_schedule, day, self.clock.anchor):
                    continue
                members = np.flatnonzero((self.state.segment == s) & self.state.paid)
                n = len(members)
                if n == 0:
                    continue
                jitter = seg.pay_schedule.jitter
                rows = Rows.of_size(n)
                offsets = 8 * HOUR + (rng.random(n) - 0.5) * jitter
                rows.time = self.clock.epoch(day, 0.0) + offsets
                rows.acc = members
                rows.typ = np.full(n, SALARY, dtype=np.int64)
                rows.direction = np.ones(n, dtype=np.int64)
                rows.amount = self.salary_amount[members]
                rows.rail = np.full(n, NO_RAIL, dtype=np.int64)
                rows.channel = np.full(n, CHANNELS.index("web"), dtype=np.int64)  # a payroll credit
                rows.cp_kind = np.full(n, CP_EMPLOYER, dtype=np.int64)
                rows.cp_id = (self.state.customer[members] * 7919) % 200_003
                parts.append(rows.take(rows.time >= self.clock.start))  # none before the run
        return Rows.concat(parts)

    def card_cycle(self, k0: int, k1: int) -> Rows:
        """The card accounts' own rows on the days that begin in [k0, k1): credit card
        statements closing (rows of type CLOSE, no event) and their payments from checking on
        the due date (a bill payment inside the bank, automatic: channel none), prepaid cards
        topped up from checking (a transfer inside the bank, in the app). No random draws: what
        a card does follows from the card (its due day, share paid, interval and phase)."""
        cards = self.state.cards
        if cards is None or not (len(cards.credit) or len(cards.prepaid)):
            return Rows.empty()
        days = self._days(k0, k1)
        if not days:
            return Rows.empty()
        closing = dt.timedelta(days=self.model.credit.closing_days)
        period = max(1, round(self.model.prepaid.top_up_every / 86_400.0))
        n_credit = len(cards.credit)
        # which cards close, pay and top up on each day, then their rows in one go
        close_at: list[NDArray[np.int64]] = []
        pay_at: list[NDArray[np.int64]] = []
        top_at: list[NDArray[np.int64]] = []
        starts: list[tuple[float, int, int, int]] = []
        for day in days:
            closes = np.flatnonzero(cards.due_day == (day + closing).day)
            pays = np.flatnonzero(self._paying(day)[cards.due_day])
            tops = np.flatnonzero((day.toordinal() + cards.phase_day) % period == 0)
            if len(closes) or len(pays) or len(tops):
                close_at.append(closes)
                pay_at.append(pays)
                top_at.append(tops)
                starts.append((self.clock.epoch(day, 0.0), len(closes), len(pays), len(tops)))
        if not starts:
            return Rows.empty()
        day_start = np.array([s[0] for s in starts])
        closes, pays, tops = (np.concatenate(at) for at in (close_at, pay_at, top_at))
        n_close, n_pay = len(closes), len(pays)
        rows = Rows.of_size(n_close + n_pay + len(tops))
        close, pay, top = (
            slice(0, n_close),
            slice(n_close, n_close + n_pay),
            slice(n_close + n_pay, None),
        )
        rows.direction[:] = -1
        rows.rail[:] = INTERNAL
        rows.channel[:] = MOBILE  # a statement paid is automatic (none), MOBILE if by Pix
        rows.cp_kind[:] = CP_ACCOUNT
        rows.u[:] = 1.0  # (never sampled for refunds)
        # statements close at midnight: what the card owes then is noted, no event
        rows.time[close] = np.repeat(day_start, [s[1] for s in starts])
        rows.acc[close] = cards.credit[closes]
        rows.typ[close] = CLOSE
        rows.rail[close] = NO_RAIL
        rows.cp_kind[close] = CP_NONE
        # statements paid by automatic debit early in the morning: the card's share of it
        pay_start = np.repeat(day_start, [s[2] for s in starts])
        rows.time[pay] = pay_start + 6 * HOUR + cards.pay_time[pays] * 2 * HOUR
        rows.acc[pay] = cards.pays_from[pays]
        rows.typ[pay] = BILL
        rows.cp_id[pay] = cards.credit[pays]
        rows.drain[pay] = -cards.pay_share[pays]
        # prepaid cards topped up in the app, between 8h and 20h (before the night limit's hours,
        # which a top-up larger than the night's total would meet every time)
        top_start = np.repeat(day_start, [s[3] for s in starts])
        rows.time[top] = top_start + 8 * HOUR + cards.top_up_time[tops] * 12 * HOUR
        rows.acc[top] = cards.pays_from[n_credit + tops]
        rows.typ[top] = TRANSFER
        rows.amount[top] = cards.top_up[tops]
        rows.cp_id[top] = cards.prepaid[tops]
        if k0 > 0:  # every day here begins after the run's start
            return rows
        return rows.take(rows.time >= self.clock.start)

    def _paying(self, day: dt.date) -> NDArray[np.bool_]:
        """Whether a statement due on each day of the month (0-31) is paid on ``day``: due on
        it, or due on a weekend or holiday since the last bank day (this month's or last
        month's due date)."""
        cache: dict[dt.date, NDArray[np.bool_]] = self.model.cache.setdefault("paying", {})
        hit = cache.get(day)
        if hit is None:
            if len(cache) > 10_000:
                cache.clear()
            due_days = self.model.credit.due_days
            hit = cache[day] = np.zeros(32, dtype=bool)
            for d in set(due_days):
                hit[d] = day in (_pay_date(day, d), _pay_date(_last_month(day), d))
        return hit

    def _days(self, k0: int, k1: int) -> list[dt.date]:
        """The local days that begin in slots [k0, k1) (by date change: a local midnight may be
        skipped or repeated by a clock change), and the run's first day."""
        _, _, dates = self.clock.hours(k0, k1)
        before = self.clock.local(k0 - 1)[2] if k0 > 0 else None
        days = [d for d, prev in zip(dates, [before, *dates[:-1]], strict=True) if d != prev]
        return list(dict.fromkeys(days))


def _due_date(day: dt.date, due_day: int) -> dt.date:
    """The due date on ``due_day`` of ``day``'s month."""
    return day.replace(day=due_day)


def _last_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def _pay_date(month: dt.date, due_day: int) -> dt.date:
    """When a statement due on ``due_day`` of ``month``'s month is paid: on its due date, or
    the next bank day when that is a weekend or holiday."""
    day = _due_date(month, due_day)
    while not is_bank_day(day):
        day += dt.timedelta(days=1)
    return day
