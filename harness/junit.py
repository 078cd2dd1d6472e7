"""JUnit XML of a run, a comparison and a capacity search: what CI systems show as test results
(Jenkins, GitLab, GitHub's test reporters read this shape).

A run is one ``testsuite`` with one ``testcase`` per threshold and per verification check
(failing with the measured value, skipped when it was not judged), and one failing case per
problem of the run; ``compare`` gives one case per figure and run (a regression fails it); a
capacity search gives one case per step and the rate found as a property.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bankstream.errors import UsageError
from bankstream.files import write_whole


@dataclass
class Case:
    """One test case: passed, failed (``failure``: the message) or skipped (``skipped``: why)."""

    name: str
    classname: str
    seconds: float = 0.0
    failure: str | None = None
    detail: str = ""
    skipped: str | None = None


@dataclass
class Suite:
    name: str
    cases: list[Case] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    timestamp: str | None = None  # ISO 8601, no zone (the schema CI readers use)


def write(path: Path, suites: Sequence[Suite]) -> None:
    """``suites`` as one JUnit XML file at ``path``, written whole or not at all."""
    root = ET.Element("testsuites", name="bankstream")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        failures = sum(c.failure is not None for c in suite.cases)
        skipped = sum(c.skipped is not None and c.failure is None for c in suite.cases)
        element = ET.SubElement(
            root,
            "testsuite",
            name=suite.name,
            tests=str(len(suite.cases)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            time=_seconds(suite.seconds),
        )
        if suite.timestamp:
            element.set("timestamp", suite.timestamp)
        if suite.properties:
            properties = ET.SubElement(element, "properties")
            for key, value in suite.properties.items():
                ET.SubElement(properties, "property", name=key, value=_text(value))
        for case in suite.cases:
            item = ET.SubElement(
                element,
                "testcase",
                name=_text(case.name),
                classname=_text(case.classname),
                time=_seconds(case.seconds),
            )
            if case.failure is not None:
                failure = ET.SubElement(item, "failure", message=_text(case.failure), type="failed")
                failure.text = _text(case.detail or case.failure)
            elif case.skipped is not None:
                ET.SubElement(item, "skipped", message=_text(case.skipped))
        totals["tests"] += len(suite.cases)
        totals["failures"] += failures
        totals["skipped"] += skipped
    for key in ("tests", "failures", "errors"):
        root.set(key, str(totals[key]))
    root.set("time", _seconds(sum(s.seconds for s in suites)))
    ET.indent(root)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
    _write_whole(path, data)


def _write_whole(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, data)
    except OSError as exc:
        msg = f"--junit {path}: cannot write there ({exc.strerror or exc}); give another file"
        raise UsageError(msg) from None


def _seconds(value: float) -> str:
    """A JUnit time: seconds, a dot, three decimals (no exponent, no sign)."""
    return f"{max(0.0, value if math.isfinite(value) else 0.0):.3f}"


def _text(value: object) -> str:
    """Text XML 1.0 can hold (control characters other than tab and newlines dropped)."""
    return "".join(c for c in str(value) if c in "\t\n\r" or ord(c) >= 0x20)


def _timestamp(iso: str | None) -> str | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).replace(tzinfo=None).isoformat(timespec="seconds")
    except ValueError:
        return None


def _elapsed(result: Mapping[str, Any]) -> float:
    try:
        began = datetime.fromisoformat(result["started_at"])
        ended = datetime.fromisoformat(result["ended_at"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, (ended - began).total_seconds())


# --------------------------------------------------------------------------- a run

# each check of the verification: (its name, the key, the value it must have)
CHECKS: tuple[tuple[str, str, object], ...] = (
    ("lost", "lost", 0),
    ("duplicates", "duplicates", 0),
    ("unexpected", "unexpected", 0),
    ("counts", "counts_match", True),
    ("money", "money_match", True),
    ("ledger", "ledger_problems", 0),
    ("checksums", "checksum_mismatches", 0),
)


def run_suite(result: Mapping[str, Any]) -> Suite:
    """A run's result as a suite: its thresholds, its verification, its problems."""
    scenario = str(result.get("scenario", "run"))
    classname = f"bankstream.{scenario}"
    suite = Suite(
        name=f"bankstream run {scenario} {result.get('run_id', '')}".strip(),
        seconds=_elapsed(result),
        timestamp=_timestamp(result.get("started_at")),
    )
    for key in ("run_id", "scenario", "scenario_digest", "seed", "verdict", "ended", "topic"):
        if result.get(key) is not None:
            suite.properties[key] = str(result[key])
    for verdict in result.get("thresholds") or []:
        name = f"threshold {verdict['metric']} {verdict['condition']}"
        case = Case(name, f"{classname}.thresholds")
        measured = verdict.get("measured")
        if verdict.get("passed") is False:
            case.failure = f"{verdict['metric']} {verdict['condition']}: measured {measured}"
        elif verdict.get("passed") is None:
            case.skipped = verdict.get("note") or "not measured"
        suite.cases.append(case)
    suite.cases += verification_cases(result, f"{classname}.verification")
    for problem in result.get("problems") or []:
        suite.cases.append(Case(f"problem: {problem}"[:200], f"{classname}.run", failure=problem))
    return suite


def verification_cases(result: Mapping[str, Any], classname: str) -> list[Case]:
    """One case per check of the store against the manifest (skipped when not verified)."""
    checked = result.get("verification")
    if checked is None:
        note = result.get("verification_note") or "not verified"
        return [Case(name, classname, skipped=note) for name, _, _ in CHECKS] + [
            Case("projections", classname, skipped=note)
        ]
    seconds = float(checked.get("seconds") or 0.0)
    cases = []
    for name, key, wanted in CHECKS:
        case = Case(name, classname, seconds=seconds if name == "lost" else 0.0)
        value = checked.get(key)
        if value is None:
            case.skipped = "not checked"
        elif value != wanted:
            case.failure = f"{name}: {value} (expected {wanted})"
        cases.append(case)
    projections = str(checked.get("projections", "not checked"))
    case = Case("projections", classname)
    if projections.startswith("not checked"):
        case.skipped = projections
    elif projections != "exact":
        case.failure = f"projections: {projections}"
    cases.append(case)
    problems = checked.get("problems") or []
    if problems and not any(c.failure for c in cases):  # a problem no check above names
        cases.append(Case("store", classname, failure=str(problems[0]), detail="\n".join(problems)))
    return cases


# --------------------------------------------------------------------------- compare


def compare_suite(results: Sequence[Mapping[str, Any]], changes: Sequence[Any]) -> Suite:
    """A comparison as a suite: a case per figure and compared run, a regression failing it,
    and a case per compared run for how it ended (failing when it ended early and the baseline
    did not)."""
    from harness.compare import early_regressions, ended_early

    runs = [str(r["run_id"]) for r in results]
    suite = Suite(name=f"bankstream compare {runs[0]}", properties={"baseline": runs[0]})
    early = set(early_regressions(results))
    for result in results[1:]:
        run = str(result["run_id"])
        case = Case(f"ended {run}", f"bankstream.compare.{runs[0]}")
        if run in early:
            case.failure = f"{run} ended early ({ended_early(result)}); the baseline completed"
        suite.cases.append(case)
    for change in changes:
        figure = change.figure
        for i in range(1, len(runs)):
            case = Case(f"{figure.name} {runs[i]}", f"bankstream.compare.{runs[0]}")
            value, base = change.values[i], change.values[0]
            if value is None or base is None:
                case.skipped = "not measured in both runs"
            elif change.flags[i] == "regression":
                moved = change.changes[i]
                text = f"{moved:+.1%}" if not figure.exact and math.isfinite(moved) else f"{moved}"
                case.failure = f"{figure.name}: {value} against {base} ({text}): a regression"
            suite.cases.append(case)
    return suite


# --------------------------------------------------------------------------- a capacity search


def capacity_suite(capacity: Mapping[str, Any]) -> Suite:
    """A capacity search as a suite: a case per step, the rate found as a property."""
    scenario = str(capacity.get("scenario", "run"))
    suite = Suite(
        name=f"bankstream run {scenario} --find-max {capacity.get('run_id', '')}".strip(),
        seconds=float(capacity.get("seconds") or 0.0),
    )
    found = capacity.get("found_rate")
    suite.properties = {
        "run_id": str(capacity.get("run_id", "")),
        "scenario": scenario,
        "found_rate": "" if found is None else f"{found:g}",
        "first_failing_rate": str(capacity.get("first_failing_rate") or ""),
    }
    for k, step in enumerate(capacity.get("steps") or [], 1):
        case = Case(
            f"step {k}: {step['rate']:,.0f} events/s",
            f"bankstream.{scenario}.capacity",
            seconds=float(step.get("seconds") or 0.0),
        )
        if not step.get("passed"):
            why = step.get("error") or ", ".join(step.get("failed") or []) or "failed"
            case.failure = str(why)
        suite.cases.append(case)
    if found is None:
        suite.cases.append(
            Case("a rate passes", f"bankstream.{scenario}.capacity", failure="no rate passed")
        )
    return suite
