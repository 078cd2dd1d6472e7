"""Simulated time and wall time, defined once.

Every event has two times: ``event_time``, when it happens in the simulated bank, and its
intended send time, when the producer's schedule means to send it (wall clock).

- The engine never multiplies anyone's activity: the events of a scenario are what its
  population does at its own pace (segments' ``activity``, hour and weekday curves, spikes), and
  simulated time advances as those events happen. A run of N events is the first N of them
  (split between cells by their expected activity), whatever the mode and the load.
- The load (``rate`` or ``stages``) decides when they are sent: event i at the moment the
  schedule has called for i events (``loadgen.pacing``).
- ``time.mode: by_rate``: simulated time runs as fast as the load sends events. A day of
  retail-day (about 255,000 events) passes in 51 s at 5,000 events/s.
- ``time.mode: accelerated``: the scenario also says how fast simulated time should run:
  ``acceleration`` simulated seconds per wall second. The load must then ask for about what the
  population does at that speed. A load that asks for more events per simulated hour (its peak
  rate x 3600 / acceleration) than :data:`FIT` times the population's busiest hour in the run's
  window is refused before anything is written or sent, in one line naming the acceleration or
  the population that would fit. Within that bound simulated time follows the events: a load a
  little above the population's pace runs the simulated clock a little fast, and the producer
  reports the clock it achieved.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from loadgen.calendar import HOUR, is_payday
from loadgen.draw import day_multipliers
from loadgen.errors import LoadgenUsageError
from loadgen.model import TRANSFER, EngineModel
from loadgen.pacing import Schedule

FIT = 3.0  # a load may ask for up to this many times the population's busiest hour
LONGEST_WINDOW = 24 * 62  # hours looked at for the busiest one


def natural_per_hour(model: EngineModel, hours: int) -> NDArray[np.float64]:
    """Expected events of the whole population in each of the first ``hours`` simulated hours
    from the start (everyday events with their credit legs, and salaries on paydays)."""
    clock = model.clock
    pop = model.population
    internal = model.inside_share
    step = clock.slots_per_hour
    facts = [clock.local(h * step) for h in range(hours)]
    base = np.array([clock.hour_factor[h] * clock.weekday_factor[w] for h, w, _ in facts])
    out = np.zeros(hours)
    for s, (seg, spec) in enumerate(zip(model.segments, pop.segments, strict=True)):
        customers = pop.customers * spec.share
        per_hour = customers * spec.activity.mean_per_day / 24.0
        weights = seg.mix.copy()
        weights[TRANSFER] *= 1.0 + internal  # the credit leg of a transfer inside the bank
        days = {}
        for _, _, day in facts:
            if day not in days:
                days[day] = float(np.dot(weights, day_multipliers(model, s, day)))
        out += per_hour * base * np.array([days[day] for _, _, day in facts])
        # salaries: spread evenly over 08:00 +- jitter / 2 of each payday
        paid = customers * spec.pay_schedule.share_paid
        jitter = spec.pay_schedule.jitter
        for day in days:
            if not is_payday(spec.pay_schedule, day, clock.anchor):
                continue
            low = clock.epoch(day, 8 * HOUR - jitter / 2)
            high = clock.epoch(day, 8 * HOUR + jitter / 2)
            first = max(0, int((low - clock.origin) // HOUR))
            for h in range(first, min(hours, int((high - clock.origin) // HOUR) + 1)):
                begin = clock.origin + h * HOUR
                overlap = min(high, begin + HOUR) - max(low, begin)
                if jitter == 0 and begin <= low < begin + HOUR:
                    out[h] += paid
                elif jitter > 0 and overlap > 0:
                    out[h] += paid * overlap / jitter
    return out


def intensity(model: EngineModel, hours: int) -> NDArray[np.float64]:
    """Cumulative relative activity of the population by simulated hour from the start (the
    hour and weekday curves, spikes and salaries; 1 an hour on average over the first week),
    for at least ``hours`` hours: ``out[h]`` is the activity of hours [0, h). Worked out once
    per model, a longer stretch when needed."""
    cached: NDArray[np.float64] | None = model.cache.get("intensity")
    if cached is not None and len(cached) > hours:
        return cached
    length = max(24 * 28, 2 * hours, len(cached) * 2 if cached is not None else 0)
    natural = natural_per_hour(model, length)
    mean = float(natural[: 24 * 7].mean()) or 1.0
    out = np.concatenate([[0.0], np.cumsum(natural / mean)])
    model.cache["intensity"] = out
    return out


def span(model: EngineModel, k0: int, per_hour: float, target: float) -> int:
    """Slots from slot ``k0`` in which a cell that makes ``per_hour`` events an hour on average
    is expected to make ``target`` events: a chunk's worth, busy hours and paydays included."""
    step = model.clock.slots_per_hour
    longest = LONGEST_WINDOW * step
    hour = k0 // step
    cum = intensity(model, hour + LONGEST_WINDOW + 2)
    # activity within slot k0's hour is spread evenly over its slots
    at = cum[hour] + (cum[hour + 1] - cum[hour]) * (k0 - hour * step) / step
    want = at + target / max(per_hour, 1e-9)
    end = int(np.searchsorted(cum, want, side="left"))  # the hour in which it is reached
    if end > hour + LONGEST_WINDOW:
        return longest
    if end <= hour:
        return 1
    within = cum[end] - cum[end - 1]
    fraction = (want - cum[end - 1]) / within if within > 0 else 1.0
    k1 = (end - 1) * step + math.ceil(fraction * step)
    return int(min(longest, max(1, k1 - k0)))


def window_hours(model: EngineModel, schedule: Schedule) -> int:
    """Simulated hours an accelerated run of ``schedule`` spans (at most LONGEST_WINDOW)."""
    duration = schedule.duration
    acceleration = model.acceleration
    if duration is None or not math.isfinite(duration):
        return LONGEST_WINDOW
    return int(min(LONGEST_WINDOW, max(1, math.ceil(duration * acceleration / HOUR))))


def check_fit(model: EngineModel, schedule: Schedule) -> None:
    """Refuse an accelerated scenario whose load asks for more than FIT x the population's
    busiest hour (see the module's text), naming the least acceleration that fits (a faster
    clock also lengthens the window, and so may take in a busier hour) and the population."""
    if model.time_mode != "accelerated" or not schedule.paced:
        return
    acceleration = model.acceleration
    hours = window_hours(model, schedule)
    natural = natural_per_hour(model, LONGEST_WINDOW)
    busiest_by = np.maximum.accumulate(natural)  # the busiest hour of the first h + 1 hours

    def fits(a: float) -> bool:
        window = int(min(LONGEST_WINDOW, max(1, math.ceil(hours * a / acceleration))))
        return schedule.peak_rate * HOUR / a <= FIT * float(busiest_by[window - 1])

    if fits(acceleration):
        return
    busiest = float(busiest_by[hours - 1])
    asked = schedule.peak_rate * HOUR / acceleration
    low, high = acceleration, acceleration * 2
    while not fits(high) and high < 1e7:
        low, high = high, high * 2
    for _ in range(60):  # the least acceleration that fits, to a part in a thousand
        if high - low <= high * 1e-3:
            break
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    customers = model.customers
    more = customers * asked / (FIT * busiest)
    by_population = (
        f"population.customers to at least {_round_up(more)}"
        if more <= 1e9
        else "a population far above the largest (1,000,000,000)"
    )
    faster = (
        f"raise time.acceleration to at least {_round_up(high)}"
        if high <= 1e7
        else "no time.acceleration up to 10,000,000 fits"
    )
    msg = (
        f"{model.scenario_name}: the load asks for up to {asked:,.0f} events per simulated hour "
        f"({schedule.peak_rate:,.0f}/s at time.acceleration {acceleration:g}), more than "
        f"{FIT:g}x what its {customers:,} customers do in their busiest hour ({busiest:,.0f}); "
        f"{faster}, or {by_population}, or lower the rate (or use time.mode: by_rate)"
    )
    raise LoadgenUsageError(msg)


def clock_speed(model: EngineModel, schedule: Schedule) -> float | None:
    """Simulated seconds per wall second the run should see at the load's mean rate (events
    follow the population's pace, so simulated time runs as fast as events are sent)."""
    duration, total = schedule.duration, schedule.total
    if not schedule.paced or duration is None or not total:
        return None
    hours = window_hours(model, schedule)
    per_second = float(natural_per_hour(model, min(hours, 24 * 7)).mean()) / HOUR
    return (total / duration) / per_second if per_second > 0 else None


def _round_up(value: float) -> str:
    """A figure rounded up to two significant digits, e.g. 4,123 -> 4,200."""
    if value <= 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = 10 ** max(0, math.floor(math.log10(value)) - 1)
    rounded = math.ceil(value / digits) * digits
    return f"{rounded:,.0f}" if rounded >= 10 else f"{rounded:g}"
