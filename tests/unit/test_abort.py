"""Aborting thresholds: the grammar, what the model accepts, and when each kind of condition is
decided failed (a window, a stage, the whole run's maximum, a percentile with a known count)."""

from __future__ import annotations

from typing import Any

import pytest

from bankstream.errors import BankstreamError
from bankstream.histogram import LogHistogram
from harness.abort import AbortWatch
from scenarios import load
from scenarios.types import parse_abort


def thresholds(**conditions: str) -> dict[str, Any]:
    overrides = [f"thresholds.{k}={v}" for k, v in conditions.items()]
    return load("payday-rush", overrides=overrides).scenario.thresholds


def hist(*values: float) -> LogHistogram:
    h = LogHistogram()
    h.add(list(values))
    return h


def test_the_grammar_reads_and_writes_abort() -> None:
    assert parse_abort("< 2s over 30s, abort after 1m") == (True, 60.0)
    assert parse_abort("< 2s, abort") == (True, 0.0)
    assert parse_abort("< 2s over 30s") == (False, 0.0)
    c = thresholds(e2e_latency_p99_seconds="<= 500ms in stage 1 , abort after 90s")[
        "e2e_latency_p99_seconds"
    ][0]
    assert (c.abort, c.abort_after, c.stage) == (True, 90.0, 1)
    assert c.text("e2e_latency_p99_seconds") == "<= 0.5s in stage 1, abort after 90s"


@pytest.mark.parametrize(
    ("metric", "condition"),
    [("lost", "== 0, abort"), ("e2e_latency_p99_seconds", "> 1s, abort"), ("x", "< 1, abort")],
)
def test_only_upper_limits_of_what_each_second_measures_abort(metric: str, condition: str) -> None:
    with pytest.raises(BankstreamError):
        thresholds(**{metric: condition})


def test_a_window_aborts_once_it_is_whole_and_broken() -> None:
    watch = AbortWatch(thresholds(e2e_latency_p99_seconds="< 1s over 3s, abort"), 5.0, [], {})
    assert watch.second(4.0, hist(), hist(9.0), 0.0) is None  # the warm-up
    assert watch.second(5.0, hist(), hist(0.1), 0.0) is None
    assert watch.second(6.0, hist(), hist(0.1), 0.0) is None
    assert watch.second(7.0, hist(), hist(0.1), 0.0) is None  # a whole window, it holds
    reason = watch.second(8.0, hist(), hist(*[5.0] * 10), 0.0)
    assert reason is not None and "can no longer pass" in reason and "to t=8 s" in reason


def test_the_delay_holds_the_abort_back() -> None:
    conditions = thresholds(max_lag_seconds="< 5s, abort after 10s")
    watch = AbortWatch(conditions, 0.0, [], {})
    assert watch.second(3.0, hist(), hist(), 9.0) is None  # broken, but within the delay
    assert "lag 9.00 s" in str(watch.second(10.0, hist(), hist(), 0.0))


def test_a_stage_is_judged_when_it_ends() -> None:
    conditions = thresholds(e2e_latency_max_seconds="< 1s in stage 1, abort")
    watch = AbortWatch(conditions, 0.0, [10.0, 20.0], {})
    assert watch.second(5.0, hist(), hist(3.0), 0.0) is None  # inside the stage: not yet
    assert "in stage 1" in str(watch.second(11.0, hist(), hist(0.1), 0.0))


def test_a_percentile_aborts_when_the_rest_of_the_run_cannot_save_it() -> None:
    conditions = thresholds(e2e_latency_p99_seconds="< 1s, abort")
    watch = AbortWatch(conditions, 0.0, [], {"end_to_end": 1000})
    assert watch.second(1.0, hist(), hist(*[3.0] * 10), 0.0) is None  # 10 of 1,000: p99 may hold
    reason = watch.second(2.0, hist(), hist(3.0), 0.0)  # 11 > 1% of 1,000
    assert reason is not None and "11 of the run's 1,000" in reason
    unknown = AbortWatch(conditions, 0.0, [], {"end_to_end": None})
    assert unknown.undecided() == ["e2e_latency_p99_seconds < 1s, abort"]
    assert unknown.second(1.0, hist(), hist(*[3.0] * 500), 0.0) is None


def test_a_failure_within_the_delay_still_decides_once_it_has_passed() -> None:
    conditions = thresholds(e2e_latency_p99_seconds="< 1s over 2s, abort after 10s")
    watch = AbortWatch(conditions, 0.0, [], {})
    assert watch.second(1.0, hist(), hist(5.0), 0.0) is None
    assert watch.second(2.0, hist(), hist(5.0), 0.0) is None  # broken, within the delay
    for t in range(3, 10):
        assert watch.second(float(t), hist(), hist(0.1), 0.0) is None  # good windows since
    assert "to t=2 s" in str(watch.second(10.0, hist(), hist(0.1), 0.0))
