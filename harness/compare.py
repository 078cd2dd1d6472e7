"""`bankstream compare A B [C ...]`: results side by side, each figure's change from the first,
regressions beyond noise flagged.

Noise is estimated from the runs themselves: each rate and latency figure has a per-second
series in the timeline (after the warm-up, while producing); its relative standard error is the
series' coefficient of variation over the square root of its length. A change is flagged when it
is larger than three combined standard errors of the two runs and than a floor (5% for rates,
10% for latencies and resources). Counts that must be zero (lost, duplicates, failed, dead
letters) are flagged on any increase. A figure is better higher, lower, or (a ratio to its
target) the closer it is to 1. A run that ended early (stopped, failed) is named at the top and
its rates, latencies and resources are not judged against a complete run's: they describe a
part of a run. Its counts are (an event lost is lost however the run ended).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Result = Mapping[str, Any]


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str  # "/s", "s", "cpu" (CPU seconds), "", "B"
    better: str  # "higher", "lower", or "one" (a ratio to a target: the closer to 1 the better)
    floor: float  # smallest relative change that can be flagged
    get: Callable[[Result], float | None]
    series: str | None = None  # timeline column whose spread is the noise
    exact: bool = False  # a count that should not grow at all


def _path(*keys: str) -> Callable[[Result], float | None]:
    def get(result: Result) -> float | None:
        value: Any = result
        for key in keys:
            if not isinstance(value, Mapping) or value.get(key) is None:
                return None
            value = value[key]
        return float(value)

    return get


def _verified(key: str) -> Callable[[Result], float | None]:
    def get(result: Result) -> float | None:
        v = result.get("verification")
        return None if not v else float(v[key])

    return get


FIGURES = [
    Figure(
        "produce rate", "/s", "higher", 0.05, _path("figures", "produce", "rate"), "produce_rate"
    ),
    Figure("produce rate / target", "", "one", 0.02, _path("figures", "produce", "rate_ratio")),
    Figure("sink write rate", "/s", "higher", 0.05, _path("figures", "sink", "rate"), "sink_rate"),
    Figure(
        "delivery latency p50",
        "s",
        "lower",
        0.10,
        _path("figures", "latency", "delivery", "p50"),
        "delivery_p50",
    ),
    Figure(
        "delivery latency p99",
        "s",
        "lower",
        0.10,
        _path("figures", "latency", "delivery", "p99"),
        "delivery_p99",
    ),
    Figure(
        "end-to-end latency p50",
        "s",
        "lower",
        0.10,
        _path("figures", "latency", "end_to_end", "p50"),
        "e2e_p50",
    ),
    Figure(
        "end-to-end latency p99",
        "s",
        "lower",
        0.10,
        _path("figures", "latency", "end_to_end", "p99"),
        "e2e_p99",
    ),
    Figure(
        "end-to-end latency p99.9",
        "s",
        "lower",
        0.10,
        _path("figures", "latency", "end_to_end", "p999"),
        "e2e_p99",
    ),
    Figure("max lag", "s", "lower", 0.10, _path("figures", "lag", "max_seconds"), "lag_seconds"),
    Figure("drain time", "s", "lower", 0.10, _path("figures", "drain_seconds")),
    Figure(
        "producer CPU",
        "cpu",
        "lower",
        0.10,
        _path("figures", "resources", "producer", "cpu_seconds"),
    ),
    Figure("sink CPU", "cpu", "lower", 0.10, _path("figures", "resources", "sink", "cpu_seconds")),
    Figure(
        "producer peak memory",
        "B",
        "lower",
        0.10,
        _path("figures", "resources", "producer", "peak_rss_bytes"),
    ),
    Figure(
        "sink peak memory",
        "B",
        "lower",
        0.10,
        _path("figures", "resources", "sink", "peak_rss_bytes"),
    ),
    Figure("lost", "", "lower", 0.0, _verified("lost"), exact=True),
    Figure("duplicates", "", "lower", 0.0, _verified("duplicates"), exact=True),
    Figure("failed", "", "lower", 0.0, _path("figures", "produce", "failed"), exact=True),
    Figure(
        "dead-lettered", "", "lower", 0.0, _path("figures", "sink", "dead_lettered"), exact=True
    ),
]


def relative_error(result: Result, column: str | None) -> float:
    """The relative standard error of a figure from its per-second series (0 when unknown)."""
    if column is None:
        return 0.0
    fields = result.get("timeline_fields") or []
    if column not in fields or "t" not in fields:
        return 0.0
    i, t = fields.index(column), fields.index("t")
    warmup = float(result.get("warmup_seconds", 0.0))
    values = [float(row[i]) for row in result.get("timeline", []) if row[t] >= warmup and row[i]]
    if len(values) < 3:
        return 0.0
    mean = statistics.fmean(values)
    if mean <= 0:
        return 0.0
    return statistics.stdev(values) / mean / math.sqrt(len(values))


@dataclass
class Change:
    figure: Figure
    values: list[float | None]
    changes: list[float | None]  # relative change of each run from the first
    noise: list[float]  # the change each run had to exceed to be flagged
    flags: list[str]  # "", "regression", "improved"


def ended_early(result: Result) -> str | None:
    """How a run ended when it did not complete ("stopped", "failed"); None when it did."""
    ended = result.get("ended")
    return None if ended in (None, "complete") else str(ended)


def early_regressions(results: Sequence[Result]) -> list[str]:
    """The runs that ended early where the baseline completed: a regression in itself."""
    if ended_early(results[0]):
        return []
    return [str(r["run_id"]) for r in results[1:] if ended_early(r)]


def _worse(figure: Figure, a: float, b: float) -> bool:
    if figure.better == "one":
        return abs(b - 1) > abs(a - 1)
    return b < a if figure.better == "higher" else b > a


def compare(results: Sequence[Result]) -> list[Change]:
    base = results[0]
    out = []
    for fig in FIGURES:
        values = [fig.get(r) for r in results]
        if all(v is None for v in values):
            continue
        changes: list[float | None] = [0.0]
        noise = [0.0]
        flags = [""]
        a = values[0]
        for r, b in zip(results[1:], values[1:], strict=True):
            if a is None or b is None:
                changes.append(None)
                noise.append(0.0)
                flags.append("")
                continue
            if fig.exact:
                changes.append(b - a)
                noise.append(0.0)
                flags.append("regression" if b > a else "improved" if b < a else "")
                continue
            change = (b - a) / abs(a) if a else (0.0 if b == a else math.inf)
            combined = 3 * math.hypot(
                relative_error(base, fig.series), relative_error(r, fig.series)
            )
            limit = max(fig.floor, combined)
            flag = ""
            partial = bool(ended_early(r)) != bool(ended_early(base))  # a part against a whole
            if abs(change) > limit and b != a and not partial:
                flag = "regression" if _worse(fig, a, b) else "improved"
            changes.append(change)
            noise.append(limit)
            flags.append(flag)
        out.append(Change(fig, values, changes, noise, flags))
    return out


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:,.1f} ms"
    if unit == "cpu":
        return f"{value:,.1f} CPU-s"
    if unit == "B":
        return f"{value / 2**20:,.0f} MiB"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:,.3f}" if value != int(value) else f"{int(value):,}"


def pipeline(result: Result) -> str:
    """The pipeline a run measured: ``bankstream``, ``connect`` or ``external``, with where it
    stored when that was not bankstream's own collections (results before it say nothing:
    bankstream's sink)."""
    kind = str(result.get("sink") or "bankstream")
    target = ((result.get("figures") or {}).get("pipeline") or {}).get("target")
    return f"{kind} ({target})" if target else kind


def table(results: Sequence[Result], changes: Sequence[Change]) -> list[list[str]]:
    """Rows for a person: figure, then each run's value (with its change from the first)."""
    rows = [["figure", *[str(r["run_id"]) for r in results]]]
    rows.append(["pipeline", *[pipeline(r) for r in results]])
    for c in changes:
        cells = [c.figure.name]
        for i, value in enumerate(c.values):
            text = show(value, c.figure.unit)
            change = c.changes[i]
            if i and change is not None:
                if c.figure.exact:
                    text += f" ({change:+,.0f})" if change else ""
                elif math.isfinite(change):
                    text += f" ({change * 100:+.1f}%, noise ±{c.noise[i] * 100:.0f}%)"
            if c.flags[i]:
                text += f" {c.flags[i].upper()}"
            cells.append(text)
        rows.append(cells)
    return rows
