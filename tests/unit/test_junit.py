"""JUnit XML of a run, a comparison and a capacity search: valid against the shape CI systems
read (tests/data/junit.xsd), counts that add up, a failure carrying the measured value."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from bankstream.errors import UsageError
from harness import junit
from harness.compare import compare

SCHEMA = xmlschema.XMLSchema(Path(__file__).parents[1] / "data" / "junit.xsd")

PASSED: dict[str, Any] = {
    "run_id": "retail-day-1",
    "scenario": "retail-day",
    "scenario_digest": "ab" * 32,
    "seed": 7,
    "verdict": "pass",
    "ended": "complete",
    "started_at": "2026-12-07T18:00:00+00:00",
    "ended_at": "2026-12-07T18:01:05.5+00:00",
    "warmup_seconds": 0.0,
    "thresholds": [
        {"metric": "e2e_latency_p99_seconds", "condition": "< 2s", "measured": 0.05,
         "passed": True, "note": None},
        {"metric": "lost", "condition": "== 0", "measured": 0, "passed": True, "note": None},
        {"metric": "recovery_seconds", "condition": "< 60s", "measured": None, "passed": None,
         "note": "no fault in this run"},
    ],
    "verification": {
        "exact": True, "lost": 0, "duplicates": 0, "unexpected": 0, "counts_match": True,
        "money_match": True, "ledger_problems": 0, "checksum_mismatches": 0,
        "projections": "exact", "problems": [], "seconds": 1.5,
    },
    "verification_note": None,
    "problems": [],
    "figures": {},
    "timeline": [],
}  # fmt: skip


def failed_run() -> dict[str, Any]:
    result = copy.deepcopy(PASSED)
    result["verdict"] = "fail"
    result["thresholds"][0].update(measured=3.2, passed=False)
    result["verification"].update(
        exact=False, lost=3, projections="2 differences", problems=["3 events not in the store"]
    )
    result["problems"] = ["the sink stopped \x1b[31mred\x07 during the run"]
    return result


def written(tmp_path: Path, suites: list[junit.Suite]) -> ET.Element:
    path = tmp_path / "deep" / "junit.xml"
    junit.write(path, suites)
    SCHEMA.validate(str(path))
    return ET.parse(path).getroot()


def test_a_passing_run_is_a_suite_of_passing_and_skipped_cases(tmp_path: Path) -> None:
    root = written(tmp_path, [junit.run_suite(PASSED)])
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    names = [c.get("name") for c in cases]
    assert "threshold e2e_latency_p99_seconds < 2s" in names
    assert {"lost", "duplicates", "ledger", "checksums", "projections"} <= set(names)
    assert suite.get("tests") == str(len(cases)) == root.get("tests")
    assert (suite.get("failures"), suite.get("skipped")) == ("0", "1")  # recovery: no fault
    assert suite.get("time") == "65.500" and suite.get("timestamp") == "2026-12-07T18:00:00"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["run_id"] == "retail-day-1" and properties["verdict"] == "pass"


def test_a_failing_run_names_what_failed_with_the_measured_value(tmp_path: Path) -> None:
    root = written(tmp_path, [junit.run_suite(failed_run())])
    failures = {
        c.get("name"): c.find("failure").get("message")
        for c in root.iter("testcase")
        if c.find("failure") is not None
    }
    assert failures["threshold e2e_latency_p99_seconds < 2s"].endswith("measured 3.2")
    assert failures["lost"] == "lost: 3 (expected 0)"
    assert failures["projections"] == "projections: 2 differences"
    assert any(name.startswith("problem: the sink stopped") for name in failures)
    assert root.get("failures") == str(len(failures)) == "4"
    assert "\x1b" not in ET.tostring(root, encoding="unicode")  # XML 1.0 cannot hold it


def test_an_unverified_run_skips_its_checks_and_says_why(tmp_path: Path) -> None:
    result = {**PASSED, "verification": None, "verification_note": "not verified (limit 0)"}
    root = written(tmp_path, [junit.run_suite(result)])
    skipped = [c for c in root.iter("testcase") if c.find("skipped") is not None]
    assert len(skipped) == 1 + len(junit.CHECKS) + 1
    assert skipped[-1].find("skipped").get("message") == "not verified (limit 0)"


def test_a_regression_in_a_comparison_is_a_failing_case(tmp_path: Path) -> None:
    base = {**PASSED, "figures": {"produce": {"rate": 1000.0}, "lost": 0}}
    worse = {**failed_run(), "run_id": "retail-day-2"}
    worse["figures"] = {"produce": {"rate": 500.0}, "lost": 3}
    changes = compare([base, worse])
    root = written(tmp_path, [junit.compare_suite([base, worse], changes)])
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    flagged = [c.figure.name for c in changes if c.flags[1] == "regression"]
    assert flagged and sorted(failed) == sorted(f"{name} retail-day-2" for name in flagged)
    stopped = {**worse, "ended": "stopped"}
    root = written(tmp_path, [junit.compare_suite([base, stopped], compare([base, stopped]))])
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert "ended retail-day-2" in failed and "produce rate retail-day-2" not in failed
    assert "lost retail-day-2" in failed  # a count is judged however the run ended


def test_a_capacity_search_is_a_case_per_step_and_the_rate_found(tmp_path: Path) -> None:
    capacity = {
        "run_id": "retail-day-max-1", "scenario": "retail-day", "found_rate": 1600.0,
        "first_failing_rate": 3200.0, "seconds": 140.2,
        "steps": [
            {"rate": 800.0, "passed": True, "seconds": 40.0},
            {"rate": 1600.0, "passed": True, "seconds": 41.0},
            {"rate": 3200.0, "passed": False, "seconds": 44.0,
             "failed": ["e2e_latency_p99_seconds < 2s (measured 2.2)"]},
        ],
    }  # fmt: skip
    root = written(tmp_path, [junit.capacity_suite(capacity)])
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "1")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["found_rate"] == "1600"
    none = written(tmp_path, [junit.capacity_suite({**capacity, "found_rate": None})])
    assert none.get("failures") == "2"


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="^--junit .*cannot write there"):
        junit.write(blocker / "junit.xml", [junit.run_suite(PASSED)])


def test_the_schema_refuses_what_ci_readers_refuse() -> None:
    good = '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
    good += '<testcase name="c" time="0.100"/></testsuite></testsuites>'
    assert SCHEMA.is_valid(good)
    assert not SCHEMA.is_valid(good.replace(' tests="1"', ""))  # uncounted
    assert not SCHEMA.is_valid(good.replace('name="c" ', ""))  # an unnamed case
    assert not SCHEMA.is_valid(good.replace("0.100", "1e-1"))  # a time readers cannot read
