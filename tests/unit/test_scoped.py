"""Thresholds over every window of a run and in one stage of its load: a spike the whole run
hides fails its minute; a stage is judged on its own seconds."""

from __future__ import annotations

from typing import Any

import pytest

from bankstream.histogram import LogHistogram
from harness.result import judge, unmeasured
from harness.scoped import Tick, scoped_figures
from scenarios import ScenarioError, load


def ticks(seconds: int, slow: range, fast: float = 0.01, spike: float = 3.0) -> list[Tick]:
    out = []
    for t in range(1, seconds + 1):
        delivery, e2e = LogHistogram(), LogHistogram()
        delivery.add([0.001] * 100)
        e2e.add([spike if t in slow else fast] * 100)
        out.append((float(t), delivery, e2e))
    return out


def thresholds(*conditions: str, stages: bool = False) -> dict[str, Any]:
    stages_ = "load.stages=[{duration: 60s, rate: 100}, {duration: 60s, rate: 200}]"
    base = ["load.rate=null", "load.events=null", "load.duration=null", stages_] if stages else []
    sets = [f"thresholds.{c}" for c in conditions]
    return dict(load("retail-day", overrides=base + sets).scenario.thresholds)


def test_a_spike_the_whole_run_hides_fails_the_minute_it_is_in() -> None:
    judged = thresholds("e2e_latency_p99_seconds=< 1s over 60s")
    run = ticks(600, slow=range(300, 303))  # 3 s of 600: 0.5% of the events
    whole = LogHistogram.merged(e for _, _, e in run)
    assert (whole.percentile(0.99) or 0) < 0.02  # the whole run's p99 passes
    figures = scoped_figures(run, {}, judged, warmup=0.0, stage_ends=[])
    figure = figures["e2e_latency_p99_seconds over 1m"]
    assert figure["max"] > 2.5 and 240 <= figure["max_at"] <= 302
    assert figure["windows"] == 600 - 60 + 1
    values = {"e2e_latency_p99_seconds over 1m": figure}
    (verdict,) = [v for v in judge(judged, values) if v["condition"].endswith("over 1m")]
    assert verdict["passed"] is False and verdict["measured"] == figure["max"]
    assert "worst of 541 windows" in verdict["note"]
    calm = scoped_figures(ticks(600, slow=range(0)), {}, judged, 0.0, [])
    (verdict,) = [v for v in judge(judged, calm) if v["condition"].endswith("over 1m")]
    assert verdict["passed"] is True


def test_the_warm_up_and_a_faults_window_are_not_judged() -> None:
    judged = thresholds("e2e_latency_max_seconds=< 1s over 30s")
    run = ticks(200, slow=range(5, 8))
    assert scoped_figures(run, {}, judged, 10.0, [])["e2e_latency_max_seconds over 30s"]["max"] < 1
    figure = scoped_figures(
        ticks(200, slow=range(100, 103)), {}, judged, 10.0, [], excluded=lambda t: 95 <= t <= 110
    )
    assert figure["e2e_latency_max_seconds over 30s"]["max"] < 1


def test_a_stage_is_judged_on_its_own_seconds_and_lag_too() -> None:
    judged = thresholds(
        'e2e_latency_p50_seconds=["< 1s in stage 1", "< 1s in stage 2"]',
        "max_lag_seconds=< 2s in stage 2",
        stages=True,
    )
    lags = {float(t): (5.0 if t == 90 else 0.1) for t in range(1, 121)}
    figures = scoped_figures(ticks(120, slow=range(61, 121)), lags, judged, 0.0, [60.0, 120.0])
    verdicts = {(v["metric"], v["condition"]): v["passed"] for v in judge(judged, figures)}
    assert verdicts[("e2e_latency_p50_seconds", "< 1s in stage 1")] is True
    assert verdicts[("e2e_latency_p50_seconds", "< 1s in stage 2")] is False
    assert verdicts[("max_lag_seconds", "< 2s in stage 2")] is False


def test_a_scoped_condition_is_written_back_as_given_and_refused_where_it_means_nothing() -> None:
    judged = thresholds("delivery_latency_p99_9_seconds=<= 500ms over 90s")
    assert [c.text("x_seconds") for c in judged["delivery_latency_p99_9_seconds"]] == [
        "<= 0.5s over 90s"
    ]
    for bad, message in (
        (
            "lost=== 0 over 60s",
            "only latency metrics, max_lag_seconds, produce_rate_ratio and sink_rate_ratio",
        ),
        ("max_lag_seconds=< 5s in stage 1", "the load has no stages"),
        ("e2e_latency_p99_seconds=< 1s over 0s", "over every window of 1s to 1d"),
    ):
        with pytest.raises(ScenarioError, match=message):
            thresholds(bad)
    with pytest.raises(ScenarioError, match="the load has 2 stages"):
        thresholds("e2e_latency_p99_seconds=< 1s in stage 3", stages=True)


def test_a_merged_result_leaves_its_scoped_conditions_to_the_hosts() -> None:
    judged = thresholds("e2e_latency_p99_seconds=< 1s over 60s")
    reasons = unmeasured({}, judged)
    (verdict,) = [v for v in judge(judged, {}, reasons=reasons) if "over" in v["condition"]]
    assert verdict["passed"] is None and "each host's own result" in verdict["note"]


def test_sliding_windows_equal_each_window_merged_from_scratch() -> None:
    import random

    from harness.result import latency_value
    from harness.scoped import _lag_windows, _latency_windows

    rng = random.Random(7)
    series = []
    for t in range(1, 200):
        if rng.random() < 0.1:
            continue  # seconds excluded (a fault's window) leave gaps
        histogram = LogHistogram()
        histogram.add([rng.lognormvariate(-4, 1.5) for _ in range(rng.randrange(0, 30))])
        series.append((float(t), histogram))
    for over, what in ((30.0, 0.99), (7.0, "max"), (60.0, "mean"), (500.0, 0.5)):
        sliding = _latency_windows(series, over, what, latency_value)
        naive = []
        times = [t for t, _ in series]
        starts = [times[0]] if times[-1] - times[0] + 1 < over else times
        for start in starts:
            if len(starts) > 1 and start + over - 1 > times[-1]:
                break
            chosen = [h for t, h in series if start <= t < start + over]
            value = latency_value(LogHistogram.merged(chosen), what)
            if value is not None:
                naive.append((start, value))
        assert [s for s, _ in sliding] == [s for s, _ in naive]
        pairs = zip(sliding, naive, strict=True)
        assert all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for (_, a), (_, b) in pairs)
    lags = [(float(t), rng.random()) for t in range(1, 100)]
    assert [v for _, v in _lag_windows(lags, 10.0)] == [
        max(v for t, v in lags if s <= t < s + 10) for s, _ in lags[: len(lags) - 9]
    ]


def test_a_rate_ratio_is_judged_over_every_window() -> None:
    """A producer that falls to half its target for 10 s of 300: the whole run's ratio (0.98)
    passes, the worst 30 s window (~0.83) fails; the sink's ratio to the producer likewise."""
    judged = thresholds("produce_rate_ratio=>= 0.95 over 30s", "sink_rate_ratio=>= 0.9 over 30s")
    run = ticks(300, slow=range(0))
    rates = {
        t: (500.0 if 100 <= t < 110 else 1000.0, 1000.0, 1000.0 if t < 200 else 700.0)
        for t, _, _ in run
    }
    figures = scoped_figures(run, {}, judged, 0.0, [], rates=rates)
    produce = figures["produce_rate_ratio over 30s"]
    assert produce["min"] == pytest.approx((20 * 1000 + 10 * 500) / 30_000)
    assert 80 <= produce["min_at"] <= 100
    sink = figures["sink_rate_ratio over 30s"]
    assert sink["min"] == pytest.approx(0.7)  # a whole window after t=200
    verdicts = {v["metric"]: v for v in judge(judged, figures) if "over" in v["condition"]}
    assert verdicts["produce_rate_ratio"]["passed"] is False
    assert verdicts["sink_rate_ratio"]["passed"] is False
    # no target (rate: max): the produce ratio has no window, it is not measured
    untargeted = {t: (r[0], None, r[2]) for t, r in rates.items()}
    none = scoped_figures(run, {}, judged, 0.0, [], rates=untargeted)
    assert none["produce_rate_ratio over 30s"]["windows"] == 0
