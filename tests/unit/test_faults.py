"""Fault specs (`bankstream run --fault`), recovery times from a run's timeline, and the figures
judged outside the faults' windows."""

from __future__ import annotations

from typing import Any

import pytest

from bankstream.histogram import LogHistogram
from harness.faulted import fault_figures
from harness.faults import Fault, FaultError, behind, outside, parse_fault, recovery
from harness.orchestrate import ROW_FIELDS, Observed, Row
from harness.result import judge, measured, unmeasured
from scenarios.model import default_thresholds
from tests.conftest import invoke


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("kill-sink@20s", Fault("kill-sink", 20.0, text="kill-sink@20s")),
        ("pause-broker@30s:10s", Fault("pause-broker", 30.0, 10.0, text="pause-broker@30s:10s")),
        ("pause-store@1m:1500ms", Fault("pause-store", 60.0, 1.5, text="pause-store@1m:1500ms")),
        ("restart-broker@45", Fault("restart-broker", 45.0, text="restart-broker@45")),
        ("kill-broker@30s", Fault("kill-broker", 30.0, text="kill-broker@30s")),
        ("kill-broker@30s:20s", Fault("kill-broker", 30.0, 20.0, text="kill-broker@30s:20s")),
        (
            "exec@30s:docker compose pause mongo",
            Fault(
                "exec",
                30.0,
                None,
                "docker compose pause mongo",
                "exec@30s:docker compose pause mongo",
            ),
        ),
        ("exec@5s:a:b:c", Fault("exec", 5.0, None, "a:b:c", "exec@5s:a:b:c")),
    ],
)
def test_good_specs(text: str, fault: Fault):
    assert parse_fault(text) == fault


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("pause-broker", "write KIND@AT[:LENGTH]"),
        ("pause-brokr@30s:10s", "did you mean pause-broker?"),
        ("pause-broker@30s", "pause-broker needs a length, e.g. pause-broker@30s:10s"),
        ("pause-store@soon:10s", "the time after @"),
        ("pause-store@10s:0s", "the length must be longer than 0"),
        ("kill-sink@10s:5s", "kill-sink takes no length"),
        ("exec@10s:", "exec needs a command"),
        ("exec@10s", "exec needs a command"),
    ],
)
def test_bad_specs_say_what_to_write(text: str, said: str):
    with pytest.raises(FaultError, match=said.replace("[", r"\[").replace("?", r"\?")):
        parse_fault(text)


def test_a_bad_fault_flag_is_one_line_and_exit_2():
    done = invoke("run", "retail-day", "--fault", "pause-brokr@3s:1s")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean pause-broker?" in lines[0], lines


def rows(*points: tuple[float, int, int, float]) -> list[list[Any]]:
    """Timeline rows from (t, acked, sunk, lag_seconds)."""
    out = []
    for t, acked, sunk, lag in points:
        row = dict.fromkeys(ROW_FIELDS, 0.0)
        row.update(t=t, acked=acked, sunk=sunk, lag_seconds=lag)
        out.append([row[k] for k in ROW_FIELDS])
    return out


def test_recovery_counts_from_the_end_until_back_within_a_second_for_good():
    timeline = rows(
        (9, 900, 900, 0.1),
        (10, 1000, 1000, 0.1),  # a sink process killed at 10 s: it reports no lag while dead
        (11, 1100, 1000, 0.0),
        (12, 1200, 1000, 0.0),
        (13, 1300, 1000, 0.0),
        (14, 1400, 1250, 0.0),  # back, catching up: 2 s behind
        (15, 1500, 1410, 0.0),  # within a second (1,400 acknowledged at 14 s)
        (16, 1600, 1410, 0.0),  # writes nothing for a second: not settled
        (17, 1700, 1650, 0.0),
        (18, 1800, 1790, 0.0),
        (19, 1900, 1900, 0.0),  # keeping up from 17 s to the run's end
        (20, 2000, 2000, 0.0),
    )
    assert behind(timeline, ROW_FIELDS)[:6] == [0.0, 0.0, 1.0, 2.0, 3.0, 2.0]
    took, worst = recovery(timeline, ROW_FIELDS, 10.0, 10.0)
    assert took == 7.0 and worst == 3.0


def test_a_pause_counts_from_its_end_and_never_recovering_is_none():
    timeline = rows(
        (10, 1000, 1000, 0.0),  # the broker paused 10 to 14 s: nothing acknowledged
        (12, 1000, 1000, 0.0),
        (14, 1000, 1000, 0.0),
        (15, 1900, 1000, 4.5),  # the producer's backlog acknowledged at once: the sink lags
        (16, 2000, 1950, 0.3),
        (17, 2100, 2050, 0.2),
        (18, 2200, 2150, 0.2),
    )
    assert recovery(timeline, ROW_FIELDS, 10.0, 14.0) == (2.0, 4.5)
    assert recovery(rows((10, 5, 0, 7.0), (11, 6, 0, 8.0)), ROW_FIELDS, 10.0, 10.0) == (None, 11.0)


def test_outside():
    assert outside([(10, 20), (30, 31)], 25) and not outside([(10, 20)], 10)


def test_thresholds_are_judged_outside_the_windows_and_recovery_joins_them():
    observed = Observed()
    blank: dict[str, Any] = dict.fromkeys(ROW_FIELDS, 0.0)
    for t in range(0, 60):
        lag = 8.0 if 20 <= t < 30 else 2.0 if 30 <= t < 33 else 0.1  # caught up at 33 s
        acked = t * 100
        sunk = acked if not 20 <= t < 33 else 2000
        observed.timeline.append(
            Row(**{**blank, "t": t, "acked": acked, "sunk": sunk, "lag_seconds": lag})
        )
        slow = LogHistogram()
        slow.add([9.0 if 20 <= t < 32 else 0.05])
        observed.ticks.append((float(t), LogHistogram(), slow))
    observed.faults = [
        {"fault": "pause-broker@20s:10s", "kind": "pause-broker", "started": 20.0, "ended": 30.0}
    ]
    faults = fault_figures(observed, ROW_FIELDS, warmup=5.0)
    assert faults["injected"][0]["recovery_seconds"] == 3.0
    assert faults["recovery_seconds"] == 3.0 and faults["recovered"]
    assert faults["windows"] == [[20.0, 38.0]]  # and the 5 s that confirmed the recovery
    assert faults["outside"]["max_lag_seconds"] == pytest.approx(0.1)
    assert faults["outside"]["end_to_end"]["p99"] < 1.0  # the slow seconds are inside
    figures = {
        "latency": {
            "end_to_end": {"p50": 9.0, "p95": 9.0, "p99": 9.0, "max": 9.0},
            "delivery": {"p50": 0.1, "p99": 0.1},
        },
        "lag": {"max_seconds": 8.0},
        "produce": {"rate_ratio": 1.0, "failed": 0},
        "sink": {"rate_ratio": 1.0, "dead_lettered": 0},
        "faults": faults,
    }
    values = measured(figures, {"lost": 0, "duplicates": 0})
    assert (
        values["max_lag_seconds"] == pytest.approx(0.1) and values["e2e_latency_p99_seconds"] < 1.0
    )
    thresholds = {**default_thresholds()}
    thresholds.pop("produce_rate_ratio")
    verdicts = judge(thresholds, values, reasons=unmeasured(figures))
    assert all(v["passed"] for v in verdicts), verdicts
    # judged over the whole run instead, the pause fails them
    whole = {**figures, "faults": {**faults, "judged_outside": False}}
    failed = {
        v["metric"]
        for v in judge(thresholds, measured(whole, {"lost": 0, "duplicates": 0}))
        if not v["passed"]
    }
    assert failed == {"e2e_latency_p99_seconds", "max_lag_seconds"}


def test_recovery_seconds_without_faults_is_not_judged_and_unrecovered_fails():
    from scenarios.model import Condition

    conditions = {"recovery_seconds": [Condition(op="<", value=30.0)]}
    plain = judge(conditions, {"recovery_seconds": None}, reasons=unmeasured({}))
    assert plain[0]["passed"] is None and plain[0]["note"] == "no fault in this run"
    stuck = {"faults": {"recovered": False}}
    failed = judge(conditions, {"recovery_seconds": None}, reasons=unmeasured(stuck))
    assert failed[0]["passed"] is False and "did not recover" in failed[0]["note"]


def test_faults_and_a_capacity_search_do_not_mix():
    done = invoke("run", "retail-day", "--find-max", "--fault", "kill-sink@3s")
    assert done.returncode == 2
    assert "run --fault without --find-max" in done.stderr


def test_partitions_kafka_sees_stalled_hold_the_recovery_back():
    """One sink process of four killed: the live three keep up (by the counts the sink is hardly
    behind, and the dead one reports no lag), but Kafka sees its partitions stalled until its
    successor has them (12 s here)."""
    points = []
    for t in range(10, 40):
        acked = t * 1000
        sunk = acked - (250 * (t - 10) if 10 <= t < 22 else 0)  # a quarter unread for 12 s
        points.append((t, acked, max(0, sunk), 0.1))
    timeline = rows(*points)
    stalled_i = ROW_FIELDS.index("stalled_partitions")
    for row in timeline:
        row[stalled_i] = 3 if 13 <= row[0] < 23 else 0  # seen 3 s after the kill
    took, _ = recovery(timeline, ROW_FIELDS, 10.0, 10.0)
    assert took is not None and took >= 12.0


def test_the_group_watch_counts_partitions_without_commits():
    from harness.orchestrate import GroupWatch

    answers = iter(
        [{0: (10, 10), 1: (10, 5)}, {0: (20, 20), 1: (20, 5)}, None, {0: (30, 30), 1: (30, 5)}]
    )
    watch = GroupWatch(lambda: next(answers, {0: (30, 30), 1: (30, 5)}))
    watch.STALL = 1.5
    try:
        import time

        deadline = time.monotonic() + 10
        while watch.stalled == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watch.stalled == 1 and watch.uncommitted == 25
    finally:
        watch.stop()
