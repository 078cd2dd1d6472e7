"""Fraud typologies planned into a cell's stream, each event labelled with typology and instance.

The share of fraud events follows the scenario's rates: a running budget plans instances until
their mean sizes reach ``rate x all events`` so far. Instances last a while (a structuring
spree two days, a mule ring most of a day), so the stream starts as if fraud had been going on
before it: instances are planned over a pre-roll as long as a typology's longest instance, and
only their events from the start on are kept. In-flight instances then carry over at both ends
of any window, so the realised rate matches the configured one over whole days, not only in
long runs. When each instance's events happen is drawn first, for many instances at once; the
rest of an instance is made only when the stream reaches its first event, so a dense stream
that lasts minutes does not pay for days of fraud in flight. ``overlap`` decides how often
fraud borrows normal amounts and normal hours instead of its tell-tale ones.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bankstream.events import CHANNELS, TRANSFER_RAILS
from loadgen.calendar import HOUR, Clock
from loadgen.draw import CP_ACCOUNT, CP_CASH, CP_EXTERNAL, CP_MERCHANT, CellDraws, Rows
from loadgen.model import (
    CARD,
    CARD_RAIL,
    DEPOSIT,
    MERCHANT_RANKS,
    NO_RAIL,
    TABLE_TYPES,
    TRANSFER,
    WITHDRAWAL,
    EngineModel,
)
from scenarios.anomalies import AccountTakeover, CardTesting, MuleRing, Range, Structuring

MOBILE, WEB, ATM, POS, BRANCH = (
    CHANNELS.index(c) for c in ("mobile", "web", "atm", "pos", "branch")
)
PIX = TRANSFER_RAILS.index("pix")
# the most fraud instances a cell may have in flight at the start of its stream (their timing
# is drawn up front): a dense accelerated stream past this is refused, not left to eat memory
MAX_IN_FLIGHT = 50_000


@dataclass
class Timing:
    """When the events of some instances of one typology happen, drawn before anything else:
    instance j has the events ``times[offsets[j]:offsets[j + 1]]`` (in order)."""

    offsets: NDArray[np.int64]
    times: NDArray[np.float64]
    extra: NDArray[np.float64]  # per typology: a takeover's transfers, a ring's fan-in

    def take(self, keep: NDArray[np.int64]) -> Timing:
        """The instances ``keep`` only."""
        sizes = np.diff(self.offsets)[keep]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        where = np.repeat(self.offsets[:-1][keep] - offsets[:-1], sizes) + np.arange(offsets[-1])
        return Timing(offsets, self.times[where], self.extra[keep])

    def first_from(self, moment: float) -> NDArray[np.float64]:
        """Each instance's first event at or after ``moment`` (inf when none)."""
        later = np.where(self.times >= moment, self.times, np.inf)
        return np.minimum.reduceat(later, self.offsets[:-1]) if len(later) else later


def _ragged(
    rng: np.random.Generator, sizes: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """(offsets, owner of each draw, uniforms sorted within each instance) for ``sizes``."""
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    key = owner + rng.random(int(offsets[-1]))  # sorted: by instance, then by the draw
    key.sort()
    return offsets, owner, key - owner


def longest_instance(typology: object) -> float:
    """The longest an instance lasts, seconds from its start to its last event."""
    if isinstance(typology, AccountTakeover):
        return typology.transfers.max * 600.0 + 3600.0
    if isinstance(typology, CardTesting | Structuring):
        return float(typology.window)
    assert isinstance(typology, MuleRing)
    return 4 * HOUR + float(typology.hold)


def mean_size(typology: object, blocked_share: float) -> float:
    """Expected number of events of one instance."""

    def mean(r: Range) -> float:
        return (r.min + r.max) / 2

    if isinstance(typology, AccountTakeover):
        inside = typology.mule_inside_share
        return (
            mean(typology.transfers) * (1 + inside * (1 - blocked_share))
            + inside * typology.cash_out
        )
    if isinstance(typology, CardTesting):
        return mean(typology.burst)
    if isinstance(typology, Structuring):
        return mean(typology.deposits)
    assert isinstance(typology, MuleRing)
    return mean(typology.fan_in) + mean(typology.fan_out)


def in_flight(model: EngineModel, per_hour: float) -> float:
    """About how many fraud instances a cell that makes ``per_hour`` normal events an hour has in
    flight when its stream starts (their timing is drawn up front, see ``_preroll``)."""
    anomalies = model.anomalies
    total = anomalies.total_rate
    if not anomalies.typologies or total <= 0:
        return 0.0
    factor = total / (1.0 - total) if total < 1 else 0.0
    return sum(
        t.rate
        / total
        * factor
        * per_hour
        * (longest_instance(t) / HOUR + 31)
        / mean_size(t, anomalies.blocked_share)
        for t in anomalies.typologies
    )


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
SPREAD = 2**31  # a spawn key no cell has: draws made once for every cell of a model


class FraudPlanner:
    def __init__(self, model: EngineModel, draws: CellDraws, clock: Clock) -> None:
        self.model = model
        self.draws = draws
        self.clock = clock
        anomalies = model.anomalies
        self.typologies = anomalies.typologies
        self.overlap = anomalies.overlap
        self.blocked_share = anomalies.blocked_share
        total = anomalies.total_rate
        self.factor = total / (1.0 - total) if total < 1 else 0.0
        self.planned = [0.0] * len(self.typologies)  # instances planned x their mean size
        self.offset = [0.0] * len(self.typologies)  # the budget of the pre-roll
        self.started = False
        self.mean_size = [mean_size(t, self.blocked_share) for t in self.typologies]
        self.thresholds: list[float] = []
        self.instances = 0
        # instances of the pre-roll still to be made, by their first event from the start on:
        # that time, the typology and the instance's index in the typology's timing
        self.timings: list[Timing] = []
        self.backlog_first: NDArray[np.float64] = np.empty(0)
        self.backlog_typology: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.backlog_index: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.backlog_done = 0
        size = draws.state.n_bank  # checking accounts: cards are not drawn as victims
        self.size = size
        self.preferred = [
            i for i, name in enumerate(model.categories) if name in ("digital_goods", "marketplace")
        ] or list(range(len(model.categories)))

    def plan(
        self,
        rng: np.random.Generator,
        k0: int,
        k1: int,
        normal_before: int,
        normal_times: NDArray[np.float64],
    ) -> Rows:
        """Instances starting in simulated slots [k0, k1), and those of the pre-roll whose
        first event from the start on falls in them; their events may run later.

        Hour by hour, the budget of a typology is ``rate / (1 - total rate) x normal events up to
        the end of that hour`` (``normal_before`` emitted before the chunk, plus those of
        ``normal_times``, sorted, up to then), on top of the pre-roll's budget. An instance is
        planned when the budget left over (instances planned so far x their mean size) reaches
        U x the mean size, U uniform: the expected number of instances is then exactly the
        budget / mean size at any budget, so the expected fraud events are the budget, however
        short the run. (Counting each instance's own size instead biases short runs upwards.)
        """
        if not self.typologies or self.size < 2:
            return Rows.empty()
        parts: list[Rows] = []
        if not self.started:
            self.started = True
            self.thresholds = [rng.random() * m for m in self.mean_size]
            self._preroll(rng)
        clock = self.clock
        end = clock.origin + k1 * clock.slot
        due = int(np.searchsorted(self.backlog_first, end))
        for i, j in zip(
            self.backlog_typology[self.backlog_done : due].tolist(),
            self.backlog_index[self.backlog_done : due].tolist(),
            strict=True,
        ):
            rows = self._labelled(rng, i, self.timings[i], j)
            parts.append(rows.take(rows.time >= clock.start))
        self.backlog_done = max(due, self.backlog_done)
        step = clock.slots_per_hour
        starts = np.arange(k0, k1, step)
        ends = np.minimum(starts + step, k1)
        normal = normal_before + np.searchsorted(normal_times, clock.origin + ends * clock.slot)
        for i in range(len(self.typologies)):
            targets = self.offset[i] + self.share(i) * normal.astype(np.float64)  # by hour
            parts.extend(self._plan_typology(rng, i, targets, starts, ends))
        return Rows.concat(parts)

    def share(self, i: int) -> float:
        """Fraud events of typology ``i`` per normal event."""
        total_rate = sum(t.rate for t in self.typologies)
        return self.typologies[i].rate / total_rate * self.factor

    def _plan_typology(
        self,
        rng: np.random.Generator,
        i: int,
        targets: NDArray[np.float64],
        starts: NDArray[np.int64],
        ends: NDArray[np.int64],
    ) -> list[Rows]:
        """Instances of typology ``i`` while the budget (``targets``, cumulative, by window
        [starts, ends) of slots) is ahead of what was planned."""
        parts = []
        while True:
            w = int(np.searchsorted(targets, self.planned[i] + self.thresholds[i]))
            if w >= len(targets):
                break
            self.thresholds[i] = rng.random() * self.mean_size[i]
            start = self._start(rng, int(starts[w]), int(ends[w]))
            self.planned[i] += self.mean_size[i]
            timing = self._timing(rng, i, np.array([start]))
            parts.append(self._labelled(rng, i, timing, 0))
        return parts

    def _labelled(self, rng: np.random.Generator, i: int, timing: Timing, j: int) -> Rows:
        """Instance ``j`` of ``timing`` (typology ``i``): its events, labelled."""
        self.instances += 1
        typology = self.typologies[i]
        times = timing.times[timing.offsets[j] : timing.offsets[j + 1]]
        extra = int(timing.extra[j])
        if isinstance(typology, AccountTakeover):
            rows = self._takeover(rng, typology, times, extra)
        elif isinstance(typology, CardTesting):
            rows = self._card_testing(rng, typology, times)
        elif isinstance(typology, Structuring):
            rows = self._structuring(rng, typology, times)
        else:
            assert isinstance(typology, MuleRing)
            rows = self._mule_ring(rng, typology, times, extra)
        rows.fraud[:] = 1 + i
        rows.instance[:] = self.instances
        debits = rows.direction < 0
        rows.blocked = debits & (rng.random(len(rows)) < self.blocked_share)
        return rows

    def _preroll(self, rng: np.random.Generator) -> None:
        """Instances that began before the stream, as if it had been running all along: over
        each typology's longest instance (and the wait for the small hours) before the start,
        with the normal events the population would have had then (expected, by hour of day
        and weekday). Budgeted like the run's instances, but in one go; when their events
        happen is drawn for all of them, and those with events from the start on wait in the
        backlog until the stream reaches the first of them."""
        clock = self.clock
        # expected normal events per hour at mean activity: the rows drawn, plus the credit leg
        # of each transfer inside the bank
        per_hour = 0.0
        for seg, (_, cum) in zip(self.model.segments, self.draws.segments, strict=True):
            if len(cum):
                inside = self.model.inside_share if self.draws.internal_share > 0 else 0.0
                legs = float(seg.mix[TRANSFER]) * inside
                per_hour += float(cum[-1]) / 24.0 * (1.0 + legs)
        # the hour the run starts in counts up to the start (its slots begin on the hour)
        part = (clock.start - clock.origin) / HOUR
        firsts, typologies, indices = [], [], []
        for i, typology in enumerate(self.typologies):
            longest = longest_instance(typology)
            # an instance budgeted in an hour may start up to the next day's small hours
            back = int(math.ceil((longest + 30 * HOUR) / HOUR)) + 1
            begin, length, weights, small = self._preroll_hours(back, part)
            targets = self.share(i) * np.cumsum(per_hour * weights * length)
            # instance k is planned once the budget reaches (k + U) x the mean size, as in the
            # run (the budget per instance is its mean size)
            mean = self.mean_size[i]
            count = int(targets[-1] / mean) + 1
            u = rng.random(count)
            u[0] = self._first_share(i)
            w = np.searchsorted(targets, mean * (np.arange(count) + u))
            fired = int(np.count_nonzero(w < len(begin)))  # the first ones
            w = w[:fired]
            self.planned[i] = mean * fired
            # the next instance keeps its place in the sequence: the run carries on from it
            self.thresholds[i] = mean * (float(u[fired]) if fired < count else rng.random())
            self.offset[i] = float(targets[-1])  # the run's budget carries on from here
            start = begin[w] + rng.random(fired) * length[w] * HOUR
            waits = rng.random(fired) >= self.overlap.time
            at_night = np.maximum(begin[w], small[w] + 4 * HOUR * rng.random(fired))
            start = np.where(waits, at_night, start)
            start = start[start + longest >= clock.start]
            timing = self._timing(rng, i, start)
            first = timing.first_from(clock.start)
            reach = np.flatnonzero(np.isfinite(first))
            self.timings.append(timing.take(reach))  # only those that reach the stream
            firsts.append(first[reach])
            typologies.append(np.full(len(reach), i, dtype=np.int64))
            indices.append(np.arange(len(reach)))
        first = np.concatenate(firsts)
        order = np.argsort(first, kind="stable")  # ties: in typology order, then instance
        self.backlog_first = first[order]
        self.backlog_typology = np.concatenate(typologies)[order]
        self.backlog_index = np.concatenate(indices)[order]

    def _first_share(self, i: int) -> float:
        """Where, as a share of its mean size, the budget of typology ``i`` starts its first
        instance in this cell. A cell's budget is often a small part of an instance (card
        testing: bursts of 5 to 30 at 10 per 100,000), so the instances of a run are the cells
        whose budget reached that point. Drawn apart in each cell, their number was a binomial
        draw (card testing per 100,000 swung from 3.5 to 16.3 between seeds on 1M events of
        retail-day). Here the points are spread evenly over the cells: a share drawn from the
        seed, plus the cell's number times the golden ratio. Each cell's point is still uniform
        over the seeds, so every cell's expected count is its budget / mean size, as before;
        what changes is that the cells no longer all draw theirs apart."""
        key = ("first share", i)
        base = self.model.cache.get(key)
        if base is None:
            seed = np.random.SeedSequence(entropy=self.model.seed, spawn_key=(SPREAD, i))
            base = float(np.random.default_rng(seed).random())
            self.model.cache[key] = base
        return (float(base) + self.draws.state.cell * _GOLDEN) % 1.0

    def _preroll_hours(
        self, back: int, part: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """The ``back`` hours before the start (and the part of the hour the run starts in):
        when each begins, how much of it counts, its hour x weekday weight, and the small hours
        an instance of it waits for (01:00 that night). The same for every cell: worked out
        once per model."""
        key = ("preroll", back)
        hit = self.model.cache.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        clock = self.clock
        step = clock.slots_per_hour  # budgeted hour by hour, however fine the slots
        hours = np.arange(-back, 1 if part > 0 else 0, dtype=np.int64)
        length = np.ones(len(hours))
        if part > 0:
            length[-1] = part
        begin = (clock.origin + hours * HOUR).astype(np.float64)
        facts = [clock.local(int(h) * step) for h in hours.tolist()]
        weights = np.array(
            [clock.hour_factor[h] * clock.weekday_factor[w] for h, w, _ in facts], dtype=np.float64
        )
        small = np.array(
            [self._small_hours(hour, day, HOUR) for hour, _, day in facts], dtype=np.float64
        )
        table = (begin, length, weights, small)
        self.model.cache[key] = table
        return table

    def _timing(self, rng: np.random.Generator, i: int, starts: NDArray[np.float64]) -> Timing:
        """When the events of instances of typology ``i`` starting at ``starts`` happen."""
        t: Any = self.typologies[i]
        k = len(starts)
        if isinstance(t, AccountTakeover):
            # transfers 1 to 10 minutes apart; a mule inside the bank may cash out later
            n = rng.integers(t.transfers.min, t.transfers.max + 1, k)
            inside = rng.random(k) < t.mule_inside_share
            cash = inside & (rng.random(k) < t.cash_out)
            delay = rng.uniform(600, 3600, k)
            n_offsets = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
            owner = np.repeat(np.arange(k), n)
            gaps = np.cumsum(rng.uniform(60, 600, int(n_offsets[-1])))
            before = np.concatenate([[0.0], gaps])[n_offsets[:-1]]
            transfers = starts[owner] + gaps - before[owner]
            sizes = n + cash
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            times = np.empty(int(offsets[-1]))
            times[offsets[owner] + np.arange(len(owner)) - n_offsets[owner]] = transfers
            last = transfers[n_offsets[1:] - 1] if k else transfers
            times[offsets[1:][cash] - 1] = last[cash] + delay[cash]
            # extra: twice the transfers, one more when the mule is inside the bank
            return Timing(offsets, times, (2 * n + inside).astype(np.float64))
        if isinstance(t, MuleRing):
            # money comes in over 1 to 3 hours, is held, then leaves within an hour
            fan_in = rng.integers(t.fan_in.min, t.fan_in.max + 1, k)
            fan_out = rng.integers(t.fan_out.min, t.fan_out.max + 1, k)
            spread = rng.uniform(1, 3, k) * HOUR
            in_offsets, in_owner, u_in = _ragged(rng, fan_in)
            out_offsets, out_owner, u_out = _ragged(rng, fan_out)
            offsets = np.concatenate([[0], np.cumsum(fan_in + fan_out)]).astype(np.int64)
            times = np.empty(int(offsets[-1]))
            slot_in = offsets[in_owner] + np.arange(len(in_owner)) - in_offsets[in_owner]
            times[slot_in] = starts[in_owner] + u_in * spread[in_owner]
            slot_out = (
                offsets[out_owner]
                + fan_in[out_owner]
                + np.arange(len(out_owner))
                - out_offsets[out_owner]
            )
            times[slot_out] = starts[out_owner] + 3 * HOUR + t.hold + u_out * HOUR
            return Timing(offsets, times, fan_in.astype(np.float64))
        # card testing bursts and structuring sprees: events spread over a window
        r, window = (t.burst, t.window) if isinstance(t, CardTesting) else (t.deposits, t.window)
        n = rng.integers(r.min, r.max + 1, k)
        offsets, owner, u = _ragged(rng, n)
        return Timing(offsets, starts[owner] + u * window, n.astype(np.float64))

    def _start(self, rng: np.random.Generator, w0: int, w1: int) -> float:
        """When an instance budgeted in slots [w0, w1) starts: in that hour, like everyone
        else (``overlap.time`` of the time), or else in the next small hours (01:00-05:00);
        not before the stream's start."""
        begin = self.clock.origin + w0 * self.clock.slot
        moment = begin + rng.random() * (w1 - w0) * self.clock.slot
        if rng.random() >= self.overlap.time:
            local = self.clock.local_time(begin)
            small = self._small_hours(local.hour, local.date(), (1 + 4 * rng.random()) * HOUR)
            moment = max(begin, small)
        return max(self.clock.start, moment)

    def _small_hours(self, hour: int, day: dt.date, into: float) -> float:
        """``into`` seconds after the midnight that ends a local ``hour`` of ``day`` (or
        begins it, in the small hours themselves): when fraud that waits for the night starts."""
        night = day if hour < 5 else day + dt.timedelta(days=1)
        return self.clock.epoch(night, into)

    def _account(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, self.size))

    def _other(self, rng: np.random.Generator, account: int) -> int:
        other = int(rng.integers(0, self.size - 1))
        return other + (other >= account)

    def _normal_amounts(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        return self.model.rail_amounts[PIX].draw(rng, n)

    def _takeover(
        self, rng: np.random.Generator, t: AccountTakeover, times: NDArray[np.float64], extra: int
    ) -> Rows:
        """``extra // 2`` transfers out of a victim's account, to a mule inside the bank (odd
        ``extra``) or outside it; an inside mule may cash out at an ATM (the last time, when
        there is one more time than transfers)."""
        n, inside = divmod(extra, 2)
        cash_out = len(times) > n
        victim = self._account(rng)
        mule = self._other(rng, victim) if inside else -1
        rows = Rows.of_size(len(times))
        rows.time[:] = times
        rows.acc[:n] = victim
        rows.typ[:n] = TRANSFER
        rows.direction[:n] = -1
        rows.rail[:n] = PIX
        rows.channel[:n] = MOBILE
        rows.new_device[:n] = t.new_device
        drain = 1.0 - (1.0 - t.drain_share) ** (1.0 / n)
        if rng.random() < self.overlap.amount or drain <= 0.0:  # (nothing to drain: normal)
            rows.amount[:n] = self._normal_amounts(rng, n)
        else:
            rows.drain[:n] = drain
        rows.cp_kind[:n] = CP_ACCOUNT if inside else CP_EXTERNAL
        rows.cp_id[:n] = mule if inside else int(rng.integers(0, 2**32))
        if cash_out:
            rows.acc[n] = mule
            rows.typ[n] = WITHDRAWAL
            rows.direction[n] = -1
            rows.rail[n] = NO_RAIL  # cash at an ATM: no payment rail
            rows.channel[n] = ATM
            rows.drain[n] = 0.9
            rows.cp_kind[n] = CP_CASH
        return rows

    def _card_testing(
        self, rng: np.random.Generator, t: CardTesting, times: NDArray[np.float64]
    ) -> Rows:
        """A burst of small online purchases on a victim's card."""
        n = len(times)
        rows = Rows.of_size(n)
        rows.time[:] = times
        rows.acc[:] = self._account(rng)
        rows.typ[:] = CARD
        rows.direction[:] = -1
        rows.rail[:] = CARD_RAIL
        rows.channel[:] = WEB
        rows.new_device[:] = True
        category = np.array(self.preferred)[rng.integers(0, len(self.preferred), n)]
        if rng.random() < self.overlap.amount:
            rows.amount[:] = self.model.category_table.draw(rng, category)
        else:
            low = min(100, t.max_amount)  # from R$ 1.00, or less when the maximum is below it
            rows.amount[:] = rng.integers(low, t.max_amount + 1, n)
        rows.cp_kind[:] = CP_MERCHANT
        rows.cp_id[:] = category * MERCHANT_RANKS + self.model.merchant_ranks(rng, category)
        return rows

    def _structuring(
        self, rng: np.random.Generator, t: Structuring, times: NDArray[np.float64]
    ) -> Rows:
        """Cash deposits kept under the reporting threshold (at ATMs and branches, no rail),
        or, ``overlap.amount`` of the time, of the sizes of everyone's cash deposits."""
        n = len(times)
        rows = Rows.of_size(n)
        rows.time[:] = times
        rows.acc[:] = self._account(rng)
        rows.typ[:] = DEPOSIT
        rows.direction[:] = 1
        rows.rail[:] = NO_RAIL
        rows.channel[:] = np.where(rng.random(n) < 0.5, BRANCH, ATM)
        if rng.random() < self.overlap.amount:
            deposits = np.full(n, TABLE_TYPES.index(DEPOSIT), dtype=np.int64)
            rows.amount[:] = self.model.type_amounts.draw(rng, deposits)
        else:
            low = max(1, int(t.threshold * (1.0 - t.margin)))
            rows.amount[:] = rng.integers(low, max(low + 1, t.threshold), n)
        rows.cp_kind[:] = CP_CASH
        return rows

    def _mule_ring(
        self, rng: np.random.Generator, t: MuleRing, times: NDArray[np.float64], fan_in: int
    ) -> Rows:
        """Money from outside comes into a ring of accounts (``fan_in`` transfers), is held,
        then drained out again."""
        size = min(int(rng.integers(t.ring_size.min, t.ring_size.max + 1)), self.size)
        ring = rng.choice(self.size, size=size, replace=False)
        n = len(times)
        fan_out = n - fan_in
        rows = Rows.of_size(n)
        rows.time[:] = times
        rows.acc[:] = ring[rng.integers(0, size, n)]
        rows.typ[:] = TRANSFER
        rows.rail[:] = PIX
        rows.channel[:] = MOBILE
        rows.direction[:fan_in] = 1
        rows.direction[fan_in:] = -1
        if rng.random() < self.overlap.amount:
            rows.amount[:fan_in] = self._normal_amounts(rng, fan_in)
        else:
            rows.amount[:fan_in] = rng.integers(500, 3000, fan_in) * 100
        rows.drain[fan_in:] = rng.uniform(0.5, 0.9, fan_out)
        rows.cp_kind[:] = CP_EXTERNAL
        rows.cp_id[:] = rng.integers(0, 2**32, n)
        return rows
