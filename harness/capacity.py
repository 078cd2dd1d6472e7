"""`bankstream run SCENARIO --find-max`: the highest rate that still meets the thresholds.

Each step is a short real run (`bankstream run --rate R --duration STEP --fresh`, a quarter of it
warm-up, verified like any run). The rate doubles while steps pass; after the first failure it
bisects between the last pass and the first failure until they are within 10% of each other, or
until the time budget would be exceeded by one more step. The result names the rate found, the
thresholds that failed just above it, and charts latency against throughput with the knee
marked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from rich.console import Console

from bankstream import progress
from bankstream.durations import format_duration
from bankstream.errors import UsageError
from harness.request import RunRequest
from harness.result import read as read_result

CLOSE_ENOUGH = 0.10  # stop bisecting when (fail - pass) / pass is below this


def step_request(
    request: RunRequest, rate: float, step: float, run_id: str, folder: Path
) -> RunRequest:
    """One step: the search's request at ``rate`` for ``step`` seconds (a quarter of it warm-up,
    unless the user's ``--set load.warmup`` says otherwise), on the run's own topic, fresh."""
    load = request.load.model_copy(
        update={
            "rate": rate,
            "duration": step,
            "events": None,
            "stages": None,
            "overrides": (f"load.warmup={format_duration(step / 4)}", *request.load.overrides),
        }
    )
    update = {"load": load, "run_id": run_id, "results": folder, "topic": None, "shard": None}
    return request.model_copy(update={**update, "fresh": True, "faults": (), "output": "json"})


def run_step(argv: list[str], timeout: float) -> tuple[int, dict[str, Any] | None, str]:
    """(exit code, the run's result.json, its last error line)."""
    try:
        done = subprocess.run(  # noqa: S603 (our own command)
            [sys.executable, "-m", "bankstream", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 1, None, f"the step did not finish within {timeout:.0f} s"
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    error = (done.stderr.strip().splitlines() or [""])[-1]
    if not lines:
        return done.returncode, None, error
    try:
        summary = progress.read("run", json.loads(lines[-1]))
    except (ValueError, progress.BadRecord):
        return done.returncode, None, error
    if summary["record"] != "summary":
        return done.returncode, None, error
    found = read_result(Path(cast(progress.RunSummary, summary)["result"]))
    return done.returncode, dict(found), error


def search(
    request: RunRequest,
    budget: float,
    step: float,
    start: float,
    run_id: str,
    folder: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    began = time.monotonic()
    steps: list[dict[str, Any]] = []
    passed: float | None = None
    failed: float | None = None
    rate = start
    estimate = step + 30.0  # a step's wall time: start-up, drain and verification included
    stopped = "budget"
    while True:
        if time.monotonic() - began + estimate > budget:
            break
        k = len(steps) + 1
        step_id = f"{run_id}-step{k}"
        say(f"step {k}: {rate:,.0f} events/s for {step:g} s ...")
        t0 = time.monotonic()
        code, result, error = run_step(
            step_request(request, rate, step, step_id, folder / "steps").to_argv(),
            timeout=max(budget, 3 * estimate),
        )
        took = time.monotonic() - t0
        estimate = max(estimate, took)
        if result is None:
            if code == 2 and not steps:
                raise UsageError(error.removeprefix("bankstream: error: "))
            steps.append({"rate": rate, "passed": False, "error": error, "seconds": took})
            say(f"  could not run: {error}")
            stopped = "error"
            break
        figures = result["figures"]
        e2e = figures["latency"]["end_to_end"]
        ok = result["verdict"] == "pass"
        limits = [t["metric"] for t in result["thresholds"] if t["passed"] is False]
        entry = {
            "rate": rate,
            "achieved": figures["produce"]["rate"],
            "sink_rate": figures["sink"]["rate"],
            "e2e_p50": e2e["p50"],
            "e2e_p99": e2e["p99"],
            "max_lag_seconds": figures["lag"]["max_seconds"],
            "passed": ok,
            "failed_thresholds": limits,
            "failed": result["failed"],
            "run_id": result["run_id"],
            "seconds": round(took, 1),
        }
        steps.append(entry)
        say(
            f"  {'pass' if ok else 'FAIL'}: achieved {entry['achieved'] or 0:,.0f}/s, end-to-end "
            f"p99 {(e2e['p99'] or 0) * 1000:,.0f} ms"
            + (f"; failed {', '.join(limits) or result['failed'][0]}" if not ok else "")
        )
        if ok:
            passed = rate if passed is None else max(passed, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        if failed is None:
            rate = rate * 2
        elif passed is None:
            if rate <= 1:
                stopped = "floor"
                break
            rate = rate / 2
        else:
            if (failed - passed) / passed <= CLOSE_ENOUGH:
                stopped = "converged"
                break
            rate = (passed + failed) / 2
    limiting: list[str] = []
    if failed is not None:
        above = [s for s in steps if s["rate"] == failed]
        if above:
            limiting = above[0].get("failed_thresholds") or above[0].get("failed", [])
    return {
        "found_rate": passed,
        "first_failing_rate": failed,
        "limited_by": limiting,
        "stopped": stopped,
        "budget_seconds": budget,
        "seconds": round(time.monotonic() - began, 1),
        "step_seconds": step,
        "steps": steps,
    }


def report(capacity: dict[str, Any], scenario: str, run_id: str) -> str:
    found = capacity["found_rate"]
    headline = f"{found:,.0f} events/s" if found else "none found"
    lines = [
        f"# Capacity of {scenario}: {headline}",
        "",
        f"Run {run_id}: steps of {capacity['step_seconds']:g} s (a quarter warm-up), doubling "
        f"while passing, then bisecting to within {CLOSE_ENOUGH:.0%}; stopped: "
        f"{capacity['stopped']} after {capacity['seconds']:g} s of a "
        f"{capacity['budget_seconds']:g} s budget.",
        "",
    ]
    if capacity["first_failing_rate"]:
        lines.append(
            f"The first failing rate, {capacity['first_failing_rate']:,.0f} events/s, failed "
            f"{', '.join(capacity['limited_by']) or 'its run'}."
        )
        lines.append("")
    lines += [
        "| step | target/s | achieved/s | sink/s | e2e p50 | e2e p99 | max lag | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:,.0f} ms"

    for i, s in enumerate(capacity["steps"], 1):
        lines.append(
            f"| {i} | {s['rate']:,.0f} | {s.get('achieved') or 0:,.0f} | "
            f"{s.get('sink_rate') or 0:,.0f} | {ms(s.get('e2e_p50'))} | {ms(s.get('e2e_p99'))} | "
            f"{(s.get('max_lag_seconds') or 0):.1f} s | "
            + ("pass" if s["passed"] else "FAIL: " + ", ".join(s.get("failed_thresholds") or []))
            + " |"
        )
    lines += ["", "![latency vs throughput](capacity.png)", ""]
    return "\n".join(lines)


def find_max(
    request: RunRequest,
    budget: float,
    step: float,
    scenario: Any,
    run_id: str,
    junit: Path | None = None,
) -> int:
    """Search, then write capacity.json, its chart and report.md into RESULTS/``run_id``."""
    from bankstream.progress import speaker
    from harness.charts import capacity as chart

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    output = request.output
    say = speaker(output)

    given = request.load.rate
    start = given if isinstance(given, float) else None
    if start is None:
        start = scenario.load.rate if isinstance(scenario.load.rate, float) else 1000.0
    folder = request.results / run_id
    folder.mkdir(parents=True, exist_ok=True)
    capacity = search(request, budget, step, float(start), run_id, folder, say)
    capacity["scenario"] = scenario.name
    capacity["run_id"] = run_id
    (folder / "capacity.json").write_text(json.dumps(capacity, indent=1) + "\n")
    chart(capacity["steps"], capacity["found_rate"], folder / "capacity.png")
    markdown = report(capacity, scenario.name, run_id)
    (folder / "report.md").write_text(markdown)
    from harness import html

    html.write(markdown, folder, f"bankstream capacity of {scenario.name}: {run_id}")
    if junit is not None:
        from harness import junit as xml

        xml.write(junit, [xml.capacity_suite(capacity)])
    found = capacity["found_rate"]
    if output == "json":
        print(json.dumps({k: v for k, v in capacity.items() if k != "steps"}), flush=True)
    else:
        console.print(
            f"{scenario.name}: "
            + (
                f"highest passing rate {found:,.0f} events/s"
                if found
                else "no rate passed its thresholds"
            )
            + (
                f"; {capacity['first_failing_rate']:,.0f}/s failed "
                f"{', '.join(capacity['limited_by']) or 'its run'}"
                if capacity["first_failing_rate"]
                else "; none failed within the budget"
            )
        )
        console.print(f"  report: {folder / 'report.md'}")
    return 0 if found else 1
