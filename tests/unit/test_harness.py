"""The harness's pure parts: thresholds judged, regressions flagged beyond noise, the verifier's
ledger checks, and one-line errors for bad flags."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bankstream.histogram import LogHistogram
from harness import compare
from harness.result import judge, latency_figures, measured
from harness.verify import _ledger, cell_of
from scenarios import load
from tests.conftest import invoke


def figures(rate: float = 1000.0, p99: float = 0.1, lost: int = 0) -> dict[str, Any]:
    hist = LogHistogram()
    hist.add([p99 / 2] * 98 + [p99] * 2)
    lat = latency_figures(hist)
    return {
        "produce": {"rate": rate, "rate_ratio": rate / 1000.0, "failed": 0},
        "sink": {"rate": rate, "rate_ratio": 1.0, "dead_lettered": 0},
        "lag": {"max_seconds": 0.5, "max_messages": 10},
        "latency": {"delivery": lat, "end_to_end": lat},
        "drain_seconds": 1.0,
        "resources": {},
    }


def result(run_id: str, rate: float, p99: float = 0.1, lost: int = 0) -> dict[str, Any]:
    fields = ["t", "produce_rate", "e2e_p99"]
    timeline = [[float(t), rate * (1 + 0.01 * (t % 3 - 1)), p99] for t in range(60)]
    return {
        "run_id": run_id,
        "verdict": "pass",
        "warmup_seconds": 5.0,
        "figures": figures(rate, p99),
        "verification": {"lost": lost, "duplicates": 0},
        "timeline_fields": fields,
        "timeline": timeline,
    }


def test_the_default_thresholds_pass_on_good_figures_and_name_what_fails() -> None:
    scenario = load("retail-day").scenario
    verdicts = judge(scenario.thresholds, measured(figures(), {"lost": 0, "duplicates": 0}))
    assert all(v["passed"] for v in verdicts)
    bad = judge(scenario.thresholds, measured(figures(rate=500.0), {"lost": 2, "duplicates": 0}))
    failed = {v["metric"] for v in bad if not v["passed"]}
    assert failed == {"produce_rate_ratio", "lost"}


def test_a_threshold_that_was_not_measured_fails() -> None:
    scenario = load("retail-day").scenario
    verdicts = judge(scenario.thresholds, measured(figures(), None))
    missing = [v for v in verdicts if v["metric"] == "lost"]
    assert missing and not missing[0]["passed"] and missing[0]["note"]


def test_compare_flags_a_halved_rate_and_a_lost_event_but_not_itself() -> None:
    a = result("a", 1000.0)
    same = compare.compare([a, copy.deepcopy(a)])
    assert not any(flag for c in same for flag in c.flags)
    worse = compare.compare([a, result("b", 500.0, p99=0.4, lost=1)])
    flagged = {c.figure.name for c in worse if c.flags[1] == "regression"}
    assert {"produce rate", "end-to-end latency p99", "lost"} <= flagged
    better = compare.compare([a, result("c", 1010.0)])
    assert not any(c.flags[1] == "regression" for c in better)  # 1% is within the noise


def test_a_ratio_to_target_is_better_the_closer_it_is_to_one() -> None:
    a = result("a", 1000.0)
    a["figures"]["produce"]["rate_ratio"] = 1.0
    ahead = copy.deepcopy(a) | {"run_id": "b"}
    ahead["figures"]["produce"]["rate_ratio"] = 1.301  # sent ahead of its schedule
    (ratio,) = [c for c in compare.compare([a, ahead]) if c.figure.name == "produce rate / target"]
    assert ratio.flags[1] == "regression"
    closer = copy.deepcopy(ahead) | {"run_id": "c"}
    closer["figures"]["produce"]["rate_ratio"] = 1.01
    (ratio,) = [c for c in compare.compare([ahead, closer]) if c.figure.name == ratio.figure.name]
    assert ratio.flags[1] == "improved"


def test_a_run_that_ended_early_is_named_and_its_rates_are_not_judged() -> None:
    a = result("a", 1000.0) | {"ended": "complete"}
    stopped = result("b", 400.0, lost=1) | {"ended": "stopped"}
    changes = compare.compare([a, stopped])
    flagged = {c.figure.name for c in changes if c.flags[1]}
    assert flagged == {"lost"}  # the counts are judged; a part of a run's rate is not
    assert compare.early_regressions([a, stopped]) == ["b"]
    assert compare.early_regressions([stopped, a]) == []  # the baseline itself ended early


def test_noise_is_the_relative_standard_error_of_the_series() -> None:
    steady = result("a", 1000.0)
    assert 0 < compare.relative_error(steady, "produce_rate") < 0.01
    assert compare.relative_error(steady, None) == 0.0


def test_the_ledger_check_finds_a_gap_a_break_and_a_wrong_amount() -> None:
    columns = {
        "account": [0, 0, 0, 1, 1],
        "seq": [1, 2, 4, 1, 2],
        "before": [100, 150, 150, 0, 7],
        "after": [150, 150, 100, 10, 7],
        "delta": [50, 0, -50, 10, 0],
    }
    (problems, examples), finals = _ledger(columns, ["A", "B"], 10)
    assert problems == 2  # A: seq 4 after 2; B: 7 is not the 10 it had
    assert any("A: seq 4" in e for e in examples) and any(e.startswith("B:") for e in examples)
    assert finals == {0: (100, 4), 1: (7, 2)}


def test_cell_numbers_are_read_from_hex_transaction_ids() -> None:
    assert cell_of("3a7194e4-00aa-17") == "170"
    assert cell_of("nonsense") == "?"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "retail-day", "--processes", "0"], "--processes must be between 1 and 256"),
        (["run", "retail-day", "--shard", "1/2"], "--shard needs --run-id"),
        (["run", "retail-day", "--rate", "fast"], "--rate must be a positive number"),
        (["run", "no-such-scenario"], "no-such-scenario"),
        (["compare", "only-one"], "at least two results"),
        (["run", "retail-day", "--find-max", "--duration", "1m"], "leave out --duration"),
        (["run", "retail-day", "--find-max", "--step", "1s"], "--step must be between"),
        (["run", "retail-day", "--find-max", "--budget", "10s"], "must be longer than a step"),
        (["run", "retail-day", "--find-max", "--budget", "soon"], "--budget"),
        (["bench", "ceiling", "retail-day", "--events", "0"], "--events must be between"),
        (["merge", "/nonexistent/a"], "no such result"),
        (["compare", "/nonexistent/a", "/nonexistent/b"], "no such result"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: str) -> None:
    done = invoke(*args)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_compare_refuses_a_file_that_is_not_a_result(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"result_version": 99}))
    done = invoke("compare", str(tmp_path), str(tmp_path))
    assert done.returncode == 2 and "result version 99" in done.stderr


@pytest.mark.parametrize("command", ["run", "compare", "merge"])
def test_help(command: str) -> None:
    done = invoke(command, "--help")
    assert done.returncode == 0 and "exit codes" in done.stdout


def shard_result(i: int, n: int, run_id: str = "r", digest: str = "d") -> dict[str, Any]:
    return {"run_id": run_id, "shard": [i, n], "scenario_digest": digest}


@pytest.mark.parametrize(
    ("results", "words"),
    [
        ([shard_result(0, 2)], "missing shard(s) 1/2"),
        ([shard_result(0, 2), shard_result(0, 2)], "given twice: 0/2"),
        ([shard_result(0, 2), shard_result(1, 2, run_id="other")], "different runs"),
        ([shard_result(0, 2), shard_result(1, 3)], "disagree"),
        ([shard_result(0, 2), shard_result(1, 2, digest="x")], "different scenario"),
        ([{"run_id": "r", "shard": None, "scenario_digest": "d"}], "whole run"),
    ],
)
def test_merge_wants_every_shard_of_one_run_once(results: list[dict[str, Any]], words: str) -> None:
    from bankstream.errors import UsageError
    from harness.merge import check_hosts

    with pytest.raises(UsageError, match=re.escape(words)):
        check_hosts(results)


def test_merged_manifests_add_up_and_keep_every_cell() -> None:
    from harness.merge import merge_manifests
    from tests.records import final_report
    from tests.records import manifest as built

    def manifest(shard: int, cells: dict[str, str], acked: int) -> dict[str, Any]:
        final = final_report(
            acked,
            cells,
            latency=0.01 * (shard + 1),
            fraud={"smurfing": shard},
            money_in=100 * acked,
            seconds=10.0 + shard,
        )
        return dict(built([final], shard=(shard, 2)))

    merged = merge_manifests([manifest(0, {"0": "a"}, 30), manifest(1, {"1": "b"}, 70)])
    assert merged["events"]["acked"] == 100 and merged["by_type"]["deposit"]["approved"] == 100
    assert merged["checksums"] == {"0": "a", "1": "b"}
    assert merged["money"] == {"currency": "BRL", "in": 10_000, "out": 0}
    assert merged["fraud"]["by_typology"] == {"smurfing": 1}
    assert merged["wall_seconds"] == 11.0 and merged["shard"] is None
    assert merged["delivery_latency"]["seconds"]["count"] == 100


def test_the_timeline_and_histograms_as_csv_read_back_as_the_result_has_them(
    tmp_path: Path,
) -> None:
    import csv

    from bankstream.histogram import LogHistogram
    from harness.result import write_csv

    seconds = [0.0, 2e-6, 0.00123, 0.05, 0.05, 1.7, 1e9]
    histogram = LogHistogram()
    histogram.add(seconds)
    rows = histogram.rows()
    for value in seconds:  # every value inside the bounds of one bucket counted
        assert any(lower <= value <= upper for lower, upper, _ in rows)
    assert sum(count for *_, count in rows) == len(seconds) and rows[-1][1] == float("inf")
    case = result("a", 1000.0)
    case["histograms"] = {"end_to_end": histogram.to_dict(), "delivery": LogHistogram().to_dict()}
    assert write_csv(case, tmp_path) == ["timeline.csv", "latency.csv"]
    with (tmp_path / "timeline.csv").open() as source:
        table = list(csv.reader(source))
    assert table[0] == case["timeline_fields"]
    assert [[float(x) for x in row] for row in table[1:]] == case["timeline"]
    with (tmp_path / "latency.csv").open() as source:
        buckets = list(csv.DictReader(source))
    assert [int(b["count"]) for b in buckets] == [count for *_, count in rows]
    assert {b["histogram"] for b in buckets} == {"end_to_end"}  # an empty one has no rows
    assert float(buckets[-1]["cumulative_share"]) == 1.0


def test_any_percentile_of_either_latency_is_a_threshold() -> None:
    from bankstream.histogram import LogHistogram
    from harness.result import latency_metric
    from scenarios import ScenarioError

    wanted = {
        "e2e_latency_p99_9_seconds": "< 2s",
        "e2e_latency_p99_99_seconds": "< 1s",
        "delivery_latency_p75_seconds": "< 100ms",
        "delivery_latency_mean_seconds": "< 1s",
        "e2e_latency_max_seconds": "< 60s",
    }
    sets = [f"thresholds.{m}={c}" for m, c in wanted.items()]
    scenario = load("retail-day", overrides=sets).scenario
    assert set(wanted) <= set(scenario.thresholds)
    assert latency_metric("e2e_latency_p99_9_seconds") == ("end_to_end", 0.999)
    assert latency_metric("delivery_latency_p5_seconds") == ("delivery", 0.05)
    assert latency_metric("lost") is None
    e2e, delivery = LogHistogram(), LogHistogram()
    e2e.add([0.01] * 9990 + [5.0] * 10)  # one in a thousand takes 5 s
    delivery.add([0.001] * 100 + [0.5] * 100)
    histograms = {"end_to_end": e2e.to_dict(), "delivery": delivery.to_dict()}
    values = measured(figures(), {"lost": 0, "duplicates": 0}, histograms, scenario.thresholds)
    assert values["e2e_latency_p99_seconds"] == figures()["latency"]["end_to_end"]["p99"]
    assert values["e2e_latency_p99_9_seconds"] < 0.011 < 4.9 < values["e2e_latency_p99_99_seconds"]
    assert values["delivery_latency_p75_seconds"] > 0.4  # the upper half took 0.5 s
    assert abs(values["delivery_latency_mean_seconds"] - 0.2505) < 1e-9
    verdicts = {v["metric"]: v["passed"] for v in judge(scenario.thresholds, values)}
    assert verdicts["e2e_latency_p99_9_seconds"] and not verdicts["e2e_latency_p99_99_seconds"]
    assert not verdicts["delivery_latency_p75_seconds"]
    assert verdicts["delivery_latency_mean_seconds"]
    for bad in ("e2e_latency_p100_seconds", "e2e_latency_p0_seconds", "e2e_latency_p9_9999_s"):
        with pytest.raises(ScenarioError, match="unknown metric.*any latency"):
            load("retail-day", overrides=[f"thresholds.{bad}=< 1s"])
