"""Thresholds that stop a run as soon as it can no longer pass them (``"< 2s over 30s, abort"``,
``"< 5s, abort after 1m"``): a one-hour soak that fell over at minute 3 ends at minute 3.

Each second of the run (after the warm-up and the condition's delay) the harness hands over that
second's latency histograms and consumer lag; a condition is decided failed when no later second
can make it pass:

- over a window (``over 30s``): a complete window whose figure breaks the limit;
- in a stage (``in stage 2``): the stage has ended, and its figure breaks the limit;
- over the whole run: its maximum (``latency_max``, ``max_lag_seconds``) past the limit; a
  percentile ``pQ`` once more than (1 − Q) of the run's whole count of samples lie past the limit
  (the count is known when the load says how many events it sends and every event is measured);
  a mean, or a percentile without a known count, is decided at the end only.

Only upper limits (``<``, ``<=``) abort (the scenario model refuses the others).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bankstream.histogram import LogHistogram


@dataclass
class Rule:
    metric: str
    condition: Any  # scenarios.model.Condition
    kind: str  # "delivery", "end_to_end" or "lag"
    what: float | str  # a quantile, "max" or "mean" (lag: "max")
    total: int | None  # samples the whole run will have (None: unknown)
    window: deque[tuple[float, Any]] = field(default_factory=deque)
    stage: LogHistogram = field(default_factory=LogHistogram)
    stage_lag: float = 0.0
    stage_seen: bool = False
    run: LogHistogram = field(default_factory=LogHistogram)
    run_lag: float = 0.0
    first: float | None = None  # the first second fed (a window is whole from there)
    failed: str | None = None  # decided failed (said once the delay has passed)

    @property
    def text(self) -> str:
        return f"{self.metric} {self.condition.text(self.metric)}"

    def breaks(self, value: float | None) -> bool:
        return value is not None and not self.condition.holds(value)


class AbortWatch:
    """The run's aborting conditions, fed a second at a time (:meth:`second`)."""

    def __init__(
        self,
        thresholds: Mapping[str, Sequence[Any]],
        warmup: float,
        stage_ends: Sequence[float],
        totals: Mapping[str, int | None],
    ) -> None:
        from harness.result import latency_metric

        self.warmup = warmup
        self.stage_ends = list(stage_ends)
        self.rules: list[Rule] = []
        for metric, conditions in thresholds.items():
            kind = latency_metric(metric)
            for condition in conditions:
                if not condition.abort:
                    continue
                if kind is None:  # max_lag_seconds
                    self.rules.append(Rule(metric, condition, "lag", "max", None))
                else:
                    which, what = kind
                    self.rules.append(Rule(metric, condition, which, what, totals.get(which)))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def undecided(self) -> list[str]:
        """Aborting conditions this run can only judge at its end (said before it starts)."""
        return [
            r.text
            for r in self.rules
            if r.condition.over is None
            and r.condition.stage is None
            and (r.what == "mean" or (isinstance(r.what, float) and r.total is None))
        ]

    def second(self, t: float, delivery: LogHistogram, e2e: LogHistogram, lag: float) -> str | None:
        """This second's figures in; the first condition decided failed, in words (else None)."""
        if t < self.warmup:
            return None
        for rule in self.rules:
            reason = self._judge(rule, t, delivery if rule.kind == "delivery" else e2e, lag)
            if reason is not None and rule.failed is None:
                rule.failed = reason  # kept: a failure within the delay still decides
            if rule.failed is not None and t >= self.warmup + rule.condition.abort_after:
                return f"{rule.text} can no longer pass: {rule.failed}"
        return None

    def _judge(self, rule: Rule, t: float, hist: LogHistogram, lag: float) -> str | None:
        from harness.result import latency_value

        c = rule.condition
        lagging = rule.kind == "lag"
        if rule.first is None:
            rule.first = t
        if c.over is not None:
            rule.window.append((t, lag if lagging else hist))
            while rule.window and rule.window[0][0] <= t - c.over:
                rule.window.popleft()
            if t - rule.first + 1 < c.over:  # not a whole window yet (as the end judges it)
                return None
            if lagging:
                value: float | None = max(v for _, v in rule.window)
            else:
                value = latency_value(LogHistogram.merged(h for _, h in rule.window), rule.what)
            if rule.breaks(value):
                return f"{_shown(rule, value)} in the {c.over:g} s to t={t:.0f} s"
            return None
        if c.stage is not None:
            begin = self.stage_ends[c.stage - 2] if c.stage > 1 else 0.0
            end = self.stage_ends[c.stage - 1]
            if begin < t <= end:
                rule.stage_seen = True
                if lagging:
                    rule.stage_lag = max(rule.stage_lag, lag)
                else:
                    rule.stage.merge(hist)
                return None
            if t > end and rule.stage_seen:
                rule.stage_seen = False  # judged once
                value = rule.stage_lag if lagging else latency_value(rule.stage, rule.what)
                if rule.breaks(value):
                    return f"{_shown(rule, value)} in stage {c.stage}"
            return None
        if lagging:
            rule.run_lag = max(rule.run_lag, lag)
            return f"lag {rule.run_lag:.2f} s at t={t:.0f} s" if rule.breaks(rule.run_lag) else None
        rule.run.merge(hist)
        if rule.what == "max":
            value = rule.run.max if rule.run.total else None
            return f"max {value:.3f} s by t={t:.0f} s" if rule.breaks(value) else None
        if isinstance(rule.what, float) and rule.total:
            beyond = sum(n for low, _, n in rule.run.rows() if not c.holds(low))
            allowed = (1.0 - rule.what) * rule.total
            if beyond > allowed:
                return (
                    f"{beyond:,} of the run's {rule.total:,} samples already past the limit "
                    f"(p{rule.what * 100:g} allows {allowed:,.0f}) by t={t:.0f} s"
                )
        return None


def _shown(rule: Rule, value: float | None) -> str:
    if value is None:
        return "nothing measured"
    name = "lag" if rule.kind == "lag" else str(rule.what)
    if isinstance(rule.what, float):
        name = f"p{rule.what * 100:g}"
    return f"{name} {value:.3f} s"
