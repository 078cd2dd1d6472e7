"""Fraud typologies planned into a cell's stream, each event labelled with typology and instance.

The share of fraud events follows the scenario's rates: a running budget plans instances until
their mean sizes reach ``rate x all events`` so far. Instances last a while (a structuring
spree two days, a mule ring most of a day), so the stream starts as if fraud had been going on
before it: instances are planned over a pre-roll as long as a typology's longest instance, and
only their events from the start on are kept. In-flight instances then carry over at both ends
of any window, so the realised rate matches the configured one at any run length, not only in
long runs. ``overlap`` decides how often fraud borrows normal amounts and normal hours instead
of its tell-tale ones.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from numpy.typing import NDArray

from loadgen.calendar import HOUR, Clock
from loadgen.draw import CP_ACCOUNT, CP_CASH, CP_EXTERNAL, CP_MERCHANT, CellDraws, Rows
from loadgen.model import (
    CARD,
    CARD_RAIL,
    DEPOSIT,
    MERCHANT_RANKS,
    TRANSFER,
    WITHDRAWAL,
    EngineModel,
)
from scenarios.anomalies import AccountTakeover, CardTesting, MuleRing, Range, Structuring

MOBILE, WEB, ATM, POS, BRANCH = range(5)
PIX = 0


class FraudPlanner:
    def __init__(
        self, model: EngineModel, draws: CellDraws, clock: Clock, scale: float = 1.0
    ) -> None:
        self.model = model
        self.scale = scale
        self.draws = draws
        self.clock = clock
        anomalies = model.scenario.anomalies
        self.typologies = anomalies.typologies
        self.overlap = anomalies.overlap
        self.blocked_share = anomalies.blocked_share
        total = anomalies.total_rate
        self.factor = total / (1.0 - total) if total < 1 else 0.0
        self.planned = [0.0] * len(self.typologies)  # instances planned x their mean size
        self.offset = [0.0] * len(self.typologies)  # the budget of the pre-roll
        self.started = False
        self.mean_size = [self._mean_size(t) for t in self.typologies]
        self.thresholds: list[float] = []
        self.instances = 0
        size = draws.state.size
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
        """Instances starting in simulated slots [k0, k1); their events may run later.

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
            parts.append(self._preroll(rng))
        step = self.clock.slots_per_hour
        starts = np.arange(k0, k1, step)
        ends = np.minimum(starts + step, k1)
        normal = normal_before + np.searchsorted(
            normal_times, self.clock.origin + ends * self.clock.slot
        )
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
            parts.append(self._labelled(rng, i, start))
        return parts

    def _labelled(self, rng: np.random.Generator, i: int, start: float) -> Rows:
        """An instance of typology ``i`` from ``start``: its events, labelled."""
        self.instances += 1
        rows = self._instance(rng, self.typologies[i], start)
        rows.fraud[:] = 1 + i
        rows.instance[:] = self.instances
        debits = rows.direction < 0
        rows.blocked = debits & (rng.random(len(rows)) < self.blocked_share)
        return rows

    def _preroll(self, rng: np.random.Generator) -> Rows:
        """Instances that began before the stream, as if it had been running all along: over
        each typology's longest instance (and the wait for the small hours) before the start,
        with the normal events the population would have had then (expected, by hour of day
        and weekday). Budgeted like the run's instances, but in one go: when they start is
        drawn for all of them, and only those that may still have events at the start are
        made, keeping their events from the start on. (A dense stream has a great many of them
        in the days before its start, and few reach into it.)"""
        clock = self.clock
        step = clock.slots_per_hour  # budgeted hour by hour, however fine the slots
        # expected normal events per hour at mean activity: the rows drawn, plus the credit leg
        # of each transfer inside the bank
        per_hour = 0.0
        for seg, (_, cum) in zip(self.model.segments, self.draws.segments, strict=True):
            if len(cum):
                legs = float(seg.mix[TRANSFER]) * self.draws.internal_share
                per_hour += float(cum[-1]) / 24.0 * (1.0 + legs)
        per_hour *= self.scale
        parts: list[Rows] = []
        for i, typology in enumerate(self.typologies):
            longest = self._longest(typology)
            # an instance budgeted in an hour may start up to the next day's small hours
            back = int(math.ceil((longest + 30 * HOUR) / HOUR)) + 1
            begin = clock.origin + np.arange(-back, 0, dtype=np.int64) * step * clock.slot
            facts = [clock.local(k) for k in range(-back * step, 0, step)]
            weights = np.array(
                [clock.hour_factor[h] * clock.weekday_factor[w] for h, w, _ in facts]
            )
            # the small hours an instance of each hour waits for: 01:00 that night
            small = np.array(
                [
                    clock.epoch(day if hour < 5 else day + dt.timedelta(days=1), HOUR)
                    for hour, _, day in facts
                ]
            )
            targets = self.share(i) * np.cumsum(per_hour * weights)
            # instance k is planned once the budget reaches (k + U) x the mean size, as in the
            # run (the budget per instance is its mean size)
            mean = self.mean_size[i]
            count = int(targets[-1] / mean) + 1
            u = rng.random(count)
            hour = np.searchsorted(targets, mean * (np.arange(count) + u))
            fired = int(np.count_nonzero(hour < back))  # the first ones
            hour = hour[:fired]
            self.planned[i] = mean * fired
            # the next instance keeps its place in the sequence: the run carries on from it
            self.thresholds[i] = mean * (float(u[fired]) if fired < count else rng.random())
            self.offset[i] = float(targets[-1])  # the run's budget carries on from here
            start = begin[hour] + rng.random(len(hour)) * HOUR
            waits = rng.random(len(hour)) >= self.overlap.time
            at_night = np.maximum(begin[hour], small[hour] + 4 * HOUR * rng.random(len(hour)))
            start = np.where(waits, at_night, start)
            for moment in start[start + longest >= clock.start].tolist():
                rows = self._labelled(rng, i, moment)
                parts.append(rows.take(rows.time >= clock.start))
        return Rows.concat(parts)

    def _longest(self, typology: object) -> float:
        """The longest an instance lasts, seconds from its start to its last event."""
        if isinstance(typology, AccountTakeover):
            return typology.transfers.max * 600.0 + 3600.0
        if isinstance(typology, CardTesting | Structuring):
            return float(typology.window)
        assert isinstance(typology, MuleRing)
        return 4 * HOUR + float(typology.hold)

    def _mean_size(self, typology: object) -> float:
        """Expected number of events of one instance."""

        def mean(r: Range) -> float:
            return (r.min + r.max) / 2

        if isinstance(typology, AccountTakeover):
            inside = typology.mule_inside_share
            return (
                mean(typology.transfers) * (1 + inside * (1 - self.blocked_share))
                + inside * typology.cash_out
            )
        if isinstance(typology, CardTesting):
            return mean(typology.burst)
        if isinstance(typology, Structuring):
            return mean(typology.deposits)
        assert isinstance(typology, MuleRing)
        return mean(typology.fan_in) + mean(typology.fan_out)

    def _start(self, rng: np.random.Generator, w0: int, w1: int) -> float:
        """When an instance budgeted in slots [w0, w1) starts: in that hour, like everyone
        else (``overlap.time`` of the time), or else in the next small hours (01:00-05:00);
        not before the stream's start."""
        begin = self.clock.origin + w0 * self.clock.slot
        moment = begin + rng.random() * (w1 - w0) * self.clock.slot
        if rng.random() >= self.overlap.time:
            local = self.clock.local_time(begin)
            day = local.date() if local.hour < 5 else local.date() + dt.timedelta(days=1)
            small = self.clock.epoch(day, (1 + 4 * rng.random()) * HOUR)
            moment = max(begin, small)
        return max(self.clock.start, moment)

    def _account(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, self.size))

    def _other(self, rng: np.random.Generator, account: int) -> int:
        other = int(rng.integers(0, self.size - 1))
        return other + (other >= account)

    def _normal_amounts(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        return self.model.rail_amounts[PIX].draw(rng, n)

    def _instance(self, rng: np.random.Generator, typology: object, start: float) -> Rows:
        if isinstance(typology, AccountTakeover):
            return self._takeover(rng, typology, start)
        if isinstance(typology, CardTesting):
            return self._card_testing(rng, typology, start)
        if isinstance(typology, Structuring):
            return self._structuring(rng, typology, start)
        assert isinstance(typology, MuleRing)
        return self._mule_ring(rng, typology, start)

    def _takeover(self, rng: np.random.Generator, t: AccountTakeover, start: float) -> Rows:
        victim = self._account(rng)
        n = int(rng.integers(t.transfers.min, t.transfers.max + 1))
        inside = rng.random() < t.mule_inside_share
        mule = self._other(rng, victim) if inside else -1
        cash_out = inside and rng.random() < t.cash_out
        rows = Rows.of_size(n + (1 if cash_out else 0))
        gaps = np.cumsum(rng.uniform(60, 600, n))
        rows.time[:n] = start + gaps
        rows.acc[:n] = victim
        rows.typ[:n] = TRANSFER
        rows.direction[:n] = -1
        rows.rail[:n] = PIX
        rows.channel[:n] = MOBILE
        rows.new_device[:n] = t.new_device
        if rng.random() < self.overlap.amount:
            rows.amount[:n] = self._normal_amounts(rng, n)
        else:
            rows.drain[:n] = 1.0 - (1.0 - t.drain_share) ** (1.0 / n)
        rows.cp_kind[:n] = CP_ACCOUNT if inside else CP_EXTERNAL
        rows.cp_id[:n] = mule if inside else int(rng.integers(0, 2**32))
        if cash_out:
            rows.time[n] = rows.time[n - 1] + rng.uniform(600, 3600)
            rows.acc[n] = mule
            rows.typ[n] = WITHDRAWAL
            rows.direction[n] = -1
            rows.channel[n] = ATM
            rows.drain[n] = 0.9
            rows.cp_kind[n] = CP_CASH
        return rows

    def _card_testing(self, rng: np.random.Generator, t: CardTesting, start: float) -> Rows:
        victim = self._account(rng)
        n = int(rng.integers(t.burst.min, t.burst.max + 1))
        rows = Rows.of_size(n)
        rows.time[:] = start + np.sort(rng.random(n)) * t.window
        rows.acc[:] = victim
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

    def _structuring(self, rng: np.random.Generator, t: Structuring, start: float) -> Rows:
        n = int(rng.integers(t.deposits.min, t.deposits.max + 1))
        times = start + np.sort(rng.random(n)) * t.window
        if times[-1] < self.clock.start:  # a spree of the pre-roll, over before the stream
            return Rows.empty()
        rows = Rows.of_size(n)
        rows.time[:] = times
        rows.acc[:] = self._account(rng)
        rows.typ[:] = DEPOSIT
        rows.direction[:] = 1
        rows.channel[:] = np.where(rng.random(n) < 0.5, BRANCH, ATM)
        low = max(1, int(t.threshold * (1.0 - t.margin)))
        rows.amount[:] = rng.integers(low, max(low + 1, t.threshold), n)
        rows.cp_kind[:] = CP_CASH
        return rows

    def _mule_ring(self, rng: np.random.Generator, t: MuleRing, start: float) -> Rows:
        size = min(int(rng.integers(t.ring_size.min, t.ring_size.max + 1)), self.size)
        ring = rng.choice(self.size, size=size, replace=False)
        fan_in = int(rng.integers(t.fan_in.min, t.fan_in.max + 1))
        fan_out = int(rng.integers(t.fan_out.min, t.fan_out.max + 1))
        n = fan_in + fan_out
        rows = Rows.of_size(n)
        rows.time[:fan_in] = start + np.sort(rng.random(fan_in)) * rng.uniform(1, 3) * HOUR
        later = start + 3 * HOUR + t.hold
        rows.time[fan_in:] = later + np.sort(rng.random(fan_out)) * HOUR
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
