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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

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
) -> dict[str, dict[str, Any]]:
    """Each scoped condition's worst windows: ``{key: {max, max_at, min, min_at, windows}}``
    (max and min None when no window saw anything). ``lags``: each second's consumer lag in
    seconds; ``stage_ends``: when each stage of the load ends, seconds from the start."""
    from harness.result import latency_metric, latency_value

    kept = [tick for tick in ticks if tick[0] >= warmup and not excluded(tick[0])]
    out: dict[str, dict[str, Any]] = {}
    for metric, conditions in thresholds.items():
        kind = latency_metric(metric)
        for condition in conditions:
            if not condition.scope or key(metric, condition.scope) in out:
                continue
            spans = _spans(kept, condition.over, condition.stage, stage_ends)
            values: list[tuple[float, float]] = []  # (window start, its value)
            for start, chosen in spans:
                if kind is not None:
                    delivery = kind[0] == "delivery"
                    merged = LogHistogram.merged(d if delivery else e for _, d, e in chosen)
                    value = latency_value(merged, kind[1])
                else:  # max_lag_seconds
                    seen = [lags[t] for t, _, _ in chosen if t in lags]
                    value = max(seen) if seen else None
                if value is not None:
                    values.append((start, value))
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


def _spans(
    ticks: Sequence[Tick], over: float | None, stage: int | None, stage_ends: Sequence[float]
) -> list[tuple[float, Sequence[Tick]]]:
    """The windows to judge: (start, their seconds)."""
    if stage is not None:
        begin = stage_ends[stage - 2] if stage > 1 else 0.0
        end = stage_ends[stage - 1]
        inside = [tick for tick in ticks if begin < tick[0] <= end]
        return [(begin, inside)] if inside else []
    if not ticks or over is None:
        return []
    times = np.array([tick[0] for tick in ticks])
    last = times[-1]
    if last - times[0] + 1 < over:  # shorter than one window: the run is the window
        return [(float(times[0]), ticks)]
    spans = []
    for i, start in enumerate(times):
        if start + over - 1 > last:  # complete windows only
            break
        j = int(np.searchsorted(times, start + over, side="left"))
        spans.append((float(start), ticks[i:j]))
    return spans
