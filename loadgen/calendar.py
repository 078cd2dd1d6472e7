"""Simulated time: local hours, weekdays, business days, paydays and spikes. Pure functions."""

from __future__ import annotations

import calendar as cal
import datetime as dt
import math
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from scenarios.model import PaySchedule, Scenario

HOUR = 3600.0
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def start_epoch(scenario: Scenario) -> float:
    """The simulated start as UTC epoch seconds (a naive start is local to the time zone)."""
    start = scenario.time.start
    if start.tzinfo is None:
        start = start.replace(tzinfo=ZoneInfo(scenario.time.timezone))
    return start.timestamp()


def easter(year: int) -> dt.date:
    """Easter Sunday (Gregorian; the anonymous algorithm of Meeus / Jones / Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return dt.date(year, month, day + 1)


@lru_cache(maxsize=512)
def national_holidays(year: int) -> frozenset[dt.date]:
    """Brazil's national holidays (Lei 662/1949, 6.802/1980, 10.607/2002, 14.759/2023: Black
    Consciousness Day from 2024) and Good Friday."""
    fixed = [(1, 1), (4, 21), (5, 1), (9, 7), (10, 12), (11, 2), (11, 15), (12, 25)]
    if year >= 2024:
        fixed.append((11, 20))
    days = {dt.date(year, m, d) for m, d in fixed}
    days.add(easter(year) - dt.timedelta(days=2))
    return frozenset(days)


@lru_cache(maxsize=512)
def bank_closures(year: int) -> frozenset[dt.date]:
    """Days banks do not open on weekdays: the national holidays, Carnival Monday and Tuesday
    and Corpus Christi (FEBRABAN's calendar)."""
    sunday = easter(year)
    extra = {sunday - dt.timedelta(days=48), sunday - dt.timedelta(days=47)}
    extra.add(sunday + dt.timedelta(days=60))
    return national_holidays(year) | extra


def is_bank_day(day: dt.date) -> bool:
    """Banks open (TED settles, branches work): Monday to Friday, not a bank closure."""
    return day.weekday() < 5 and day not in bank_closures(day.year)


def nth_business_day(year: int, month: int, n: int) -> dt.date:
    """The day a salary due by the n-th business day of the month is paid. Business days count
    Monday to Saturday but not holidays (CLT art. 459 with MTE IN 01/1989); when that day is no
    bank day (a Saturday), the money goes out on the bank day before it. A month with fewer
    business days gives its last one."""
    holidays = national_holidays(year)
    days = [
        dt.date(year, month, d)
        for d in range(1, cal.monthrange(year, month)[1] + 1)
        if dt.date(year, month, d).weekday() < 6 and dt.date(year, month, d) not in holidays
    ]
    day = days[min(n, len(days)) - 1]
    while not is_bank_day(day):
        day -= dt.timedelta(days=1)
    return day


def clamp_day(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, min(day, cal.monthrange(year, month)[1]))


ScheduleKey = tuple[str, int, bool, str, tuple[int, ...]]


def schedule_key(schedule: PaySchedule) -> ScheduleKey:
    return (
        schedule.kind,
        schedule.day,
        schedule.business_days,
        schedule.weekday,
        tuple(schedule.days),
    )


@lru_cache(maxsize=4096)
def _month_paydays(key: ScheduleKey, year: int, month: int, anchor: dt.date) -> tuple[dt.date, ...]:
    kind, day_of_month, business_days, weekday, days = key
    if kind == "monthly":
        if business_days:
            return (nth_business_day(year, month, day_of_month),)
        return (clamp_day(year, month, day_of_month),)
    if kind == "days":
        return tuple(sorted({clamp_day(year, month, d) for d in days}))
    # biweekly: every other `weekday`, counted from the first one on or after the anchor
    target = WEEKDAYS.index(weekday)
    first = anchor + dt.timedelta(days=(target - anchor.weekday()) % 7)
    out = []
    for d in range(1, cal.monthrange(year, month)[1] + 1):
        day = dt.date(year, month, d)
        if day >= first and (day - first).days % 14 == 0:
            out.append(day)
    return tuple(out)


def is_payday(schedule: PaySchedule, day: dt.date, anchor: dt.date) -> bool:
    return day in _month_paydays(schedule_key(schedule), day.year, day.month, anchor)


def pays_per_month(schedule: PaySchedule) -> float:
    if schedule.kind == "monthly":
        return 1.0
    if schedule.kind == "days":
        return float(len(schedule.days))
    return 26.0 / 12.0


class Clock:
    """Local calendar facts for each simulated slot ``k``: slots of ``slot`` seconds (an hour, or
    a fraction of one for dense streams), on a grid aligned to the local hour the run starts in.
    (A zone that changes its offset by a fraction of an hour, like Lord Howe Island's half-hour
    summer time, shifts the grid against its local hours after the change.)"""

    def __init__(self, scenario: Scenario, slots_per_hour: int = 1) -> None:
        self.zone = ZoneInfo(scenario.time.timezone)
        self.start = start_epoch(scenario)
        self.slots_per_hour = slots_per_hour
        self.slot = HOUR / slots_per_hour
        # slot 0 begins on the local hour the run starts in (a zone may be off UTC by a
        # fraction of an hour, e.g. +05:30): each slot then lies within one local hour
        offset = dt.datetime.fromtimestamp(self.start, self.zone).utcoffset()
        shift = offset.total_seconds() if offset is not None else 0.0
        self.origin = math.floor((self.start + shift) / HOUR) * HOUR - shift
        self.anchor = dt.datetime.fromtimestamp(self.start, self.zone).date()
        hw = np.asarray(scenario.time.hour_weights, dtype=np.float64)
        ww = np.asarray(scenario.time.weekday_weights, dtype=np.float64)
        self.hour_factor = hw / hw.sum() * 24.0  # averages 1 over a day
        self.weekday_factor = ww / ww.sum() * 7.0  # averages 1 over a week
        self._cache: dict[int, tuple[int, int, dt.date]] = {}
        # the last span asked for: a chunk asks for the same hours several times
        self._span: (
            tuple[tuple[int, int], tuple[NDArray[np.int64], NDArray[np.int64], list[dt.date]]]
            | None
        ) = None

    def local(self, k: int) -> tuple[int, int, dt.date]:
        """(local hour, weekday, local date) at the middle of simulated slot ``k``."""
        hit = self._cache.get(k)
        if hit is None:
            moment = dt.datetime.fromtimestamp(self.origin + (k + 0.5) * self.slot, self.zone)
            hit = (moment.hour, moment.weekday(), moment.date())
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[k] = hit
        return hit

    def hours(self, k0: int, k1: int) -> tuple[NDArray[np.int64], NDArray[np.int64], list[dt.date]]:
        """(local hours, weekdays, local dates) of simulated slots [k0, k1)."""
        if self._span is not None and self._span[0] == (k0, k1):
            return self._span[1]
        facts = [self.local(k) for k in range(k0, k1)]
        hours = np.fromiter((f[0] for f in facts), dtype=np.int64, count=len(facts))
        weekdays = np.fromiter((f[1] for f in facts), dtype=np.int64, count=len(facts))
        result = (hours, weekdays, [f[2] for f in facts])
        self._span = ((k0, k1), result)
        return result

    def base_intensity(self, k0: int, k1: int) -> NDArray[np.float64]:
        """Relative activity of each hour: hour-of-day x weekday curves (mean 1)."""
        hours, weekdays, _ = self.hours(k0, k1)
        factor: NDArray[np.float64] = self.hour_factor[hours] * self.weekday_factor[weekdays]
        return factor

    def base_intensity_at(self, hour: int) -> float:
        """Relative activity of simulated hour ``hour`` from the origin (mean 1)."""
        local_hour, weekday, _ = self.local(hour * self.slots_per_hour)
        return float(self.hour_factor[local_hour] * self.weekday_factor[weekday])

    def local_time(self, epoch: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(epoch, self.zone)

    def epoch(self, day: dt.date, seconds_into_day: float) -> float:
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return midnight.timestamp() + seconds_into_day
