"""Thresholds judged over every window of a run, or in one stage of its load: ``"< 1s over
60s"``, ``"< 500ms in stage 2"``.

A run keeps each second's latency histograms and consumer lag; a window's latency is that of its
seconds' histograms merged (exact to the histogram's buckets, not a mean of per-second
percentiles), its lag the largest of its seconds'. Windows slide a second at a time over the run
after its warm-up (outside the faults' windows when the run is judged there); a run shorter than
the window is one window. Each scoped condition's figure keeps its worst windows: the largest
value (what ``<`` and ``<=`` are judged on) and the smallest (``>`` and ``>=``), and when each
starts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from bankstream.histogram import LogHistogram

Tick = tuple[float, LogHistogram, LogHistogram]  # (second, delivery, end to end)


def key(metric: str, scope: str) -> str:
    """A scoped condition's figure: ``e2e_latency_p99_seconds over 1m``."""
    return f"{metric} {scope}"


def scoped_figures(
    ticks: Sequence[Tick],
    lags: Mapping[float, float],
    thresholds: Mapping[str, Sequence[Any]],
    warmup: float,
    stage_ends: Sequence[float],
    excluded: Callable[[float], bool] = lambda t: False,
    rates: Mapping[float, tuple[float, float | None, float]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each scoped condition's worst windows: ``{key: {max, max_at, min, min_at, windows}}``
    (max and min None when no window saw anything). ``lags``: each second's consumer lag in
    seconds; ``stage_ends``: when each stage of the load ends, seconds from the start;
    ``rates``: each second's (produced, target, sunk) events per second, for the rate ratios
    (a window's ratio is its seconds' sums divided: produced / target, sunk / produced)."""
    from harness.result import latency_metric, latency_value

    kept = [tick for tick in ticks if tick[0] >= warmup and not excluded(tick[0])]
    out: dict[str, dict[str, Any]] = {}
    for metric, conditions in thresholds.items():
        kind = latency_metric(metric)
        for condition in conditions:
            if not condition.scope or key(metric, condition.scope) in out:
                continue
            if condition.stage is not None:
                begin = stage_ends[condition.stage - 2] if condition.stage > 1 else 0.0
                end = stage_ends[condition.stage - 1]
                chosen = [tick for tick in kept if begin < tick[0] <= end]
                spans = [(begin, len(chosen))] if chosen else []
                over = math.inf  # the stage is one window
            else:
                chosen, over = kept, float(condition.over)
            if kind is not None:
                delivery = kind[0] == "delivery"
                series = [(t, d if delivery else e) for t, d, e in chosen]
                values = _latency_windows(series, over, kind[1], latency_value)
            elif metric in RATIOS:
                seconds = [(t, (rates or {}).get(t)) for t, _, _ in chosen]
                pairs = [(t, RATIOS[metric](r)) for t, r in seconds if r is not None]
                values = _ratio_windows([(t, p) for t, p in pairs if p is not None], over)
            else:  # max_lag_seconds
                values = _lag_windows([(t, lags[t]) for t, _, _ in chosen if t in lags], over)
            if condition.stage is not None and spans and values:
                values = [(spans[0][0], values[0][1])]  # a stage's window starts with it
            worst = max(values, key=lambda v: v[1], default=None)
            best = min(values, key=lambda v: v[1], default=None)
            out[key(metric, condition.scope)] = {
                "max": None if worst is None else worst[1],
                "max_at": None if worst is None else worst[0],
                "min": None if best is None else best[1],
                "min_at": None if best is None else best[0],
                "windows": len(values),
            }
    return out


# a second's (numerator, denominator) of each rate ratio, from (produced, target, sunk)
RATIOS: dict[str, Callable[[tuple[float, float | None, float]], tuple[float, float] | None]] = {
    "produce_rate_ratio": lambda r: (r[0], r[1]) if r[1] is not None else None,
    "sink_rate_ratio": lambda r: (r[2], r[0]),
}


def _ratio_windows(
    series: Sequence[tuple[float, tuple[float, float]]], over: float
) -> list[tuple[float, float]]:
    """Each window's ratio: the sum of its seconds' numerators over that of their denominators
    (a window without any denominator has none), by prefix sums."""
    times = [t for t, _ in series]
    top, bottom = [0.0], [0.0]
    for _, (num, den) in series:
        top.append(top[-1] + num)
        bottom.append(bottom[-1] + den)
    out = []
    for i, start, j in _starts(times, over):
        den = bottom[j] - bottom[i]
        if den > 0:
            out.append((start, (top[j] - top[i]) / den))
    return out


def _starts(times: Sequence[float], over: float) -> Iterator[tuple[int, float, int]]:
    """Each complete window: (its first second's index, its start, the index past its last
    second); a run shorter than ``over`` is one window."""
    if not times:
        return
    last = times[-1]
    if last - times[0] + 1 < over:
        yield 0, times[0], len(times)
        return
    j = 0
    for i, start in enumerate(times):
        if start + over - 1 > last:
            return
        while j < len(times) and times[j] < start + over:
            j += 1
        yield i, start, j


def _latency_windows(
    series: Sequence[tuple[float, LogHistogram]],
    over: float,
    what: float | str,
    value_of: Callable[[LogHistogram, float | str], float | None],
) -> list[tuple[float, float]]:
    """Each window's latency (its seconds' histograms merged), sliding: a second's counts come
    in and go out once each, and the window's maximum is kept by a monotonic queue, so a long
    run with a long window costs the run's length, not its length times the window's."""
    times = [t for t, _ in series]
    window = LogHistogram()
    tops: deque[int] = deque()  # indices of seconds whose max may still be the window's
    added = removed = 0
    out = []
    for i, start, j in _starts(times, over):
        while added < j:
            histogram = series[added][1]
            window.merge(histogram)  # its max is the queue's, set below
            while tops and series[tops[-1]][1].max <= histogram.max:
                tops.pop()
            tops.append(added)
            added += 1
        while removed < i:
            histogram = series[removed][1]
            window.counts -= histogram.counts
            window.total -= histogram.total
            window.sum -= histogram.sum
            removed += 1
        while tops and tops[0] < i:
            tops.popleft()
        window.max = series[tops[0]][1].max if tops else -math.inf
        value = value_of(window, what)
        if value is not None:
            out.append((start, value))
    return out


def _lag_windows(series: Sequence[tuple[float, float]], over: float) -> list[tuple[float, float]]:
    """Each window's largest lag, sliding (a monotonic queue)."""
    times = [t for t, _ in series]
    tops: deque[int] = deque()
    added = 0
    out = []
    for i, start, j in _starts(times, over):
        while added < j:
            while tops and series[tops[-1]][1] <= series[added][1]:
                tops.pop()
            tops.append(added)
            added += 1
        while tops and tops[0] < i:
            tops.popleft()
        if tops:
            out.append((start, series[tops[0]][1]))
    return out
