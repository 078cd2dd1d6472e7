"""The records that cross process boundaries are typed: what `produce` and `sink` print with
``--json`` and the run manifest are read through their models, and a field renamed on either
side (writer or model) fails here, not only in an integration run."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import pytest

from bankstream import progress
from bankstream.histogram import LogHistogram
from loadgen.pacing import Schedule
from loadgen.producer import manifest as manifests
from loadgen.producer.coordinator import tick
from loadgen.producer.service import report
from scenarios import load
from sink.coordinator import Coordinator
from tests.records import final_report, manifest


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _renamed(record: dict[str, Any], key: str) -> dict[str, Any]:
    out = dict(record)
    out[key + "_renamed"] = out.pop(key)
    return out


def test_the_producers_tick_is_its_record() -> None:
    schedule = Schedule.of_load(load("retail-day").scenario.load)
    interval = LogHistogram()
    interval.add([0.002, 0.004])
    worker = {"rate": 10.0, "produced": 12, "acked": 10, "failed": 0, "queue": 2, "stall": 0.0}
    record = tick(
        {0: worker | {"latency_p99": 0.004, "lag": 0.01}}, time.time() - 2, schedule, interval
    )
    read = progress.read("producer", json.loads(json.dumps(record)))
    assert read == record and read["record"] == "tick" and read["acked"] == 10
    with pytest.raises(progress.BadRecord, match="acked"):
        progress.read("producer", _renamed(dict(record), "acked"))


def test_the_producers_summary_is_its_record(capsys: pytest.CaptureFixture[str]) -> None:
    report(manifest([final_report(30, {"0": "a"})]), "results/r/manifest.json", as_json=True)
    (line,) = _lines(capsys)
    read = cast(progress.ProducerSummary, progress.read("producer", line))
    assert read["record"] == "summary" and read["acked"] == 30
    assert read["manifest"] == "results/r/manifest.json"


def test_the_sinks_tick_and_summary_are_its_records(capsys: pytest.CaptureFixture[str]) -> None:
    sink = Coordinator([], "json")
    report_ = {"consumed": 7, "inserted": 6, "duplicates": 1, "dead": 0, "recovered": 0}
    sink.current = {0: report_ | {"lag": 3, "lag_seconds": 0.5}}
    sink._show(1.0)
    sink._finish(2.0, 0)
    lines = _lines(capsys)
    records = [progress.read("sink", line) for line in lines]
    assert [r["record"] for r in records] == ["tick", "summary"]
    assert records[0]["inserted"] == 6 and records[1]["duplicates"] == 1  # type: ignore[typeddict-item]
    with pytest.raises(progress.BadRecord, match="lag"):
        progress.read("sink", _renamed(lines[0], "lag"))


def test_a_record_of_another_version_or_command_is_refused() -> None:
    message = progress.message("hello")
    assert progress.read("sink", message) == message
    with pytest.raises(progress.BadRecord, match="version"):
        progress.read("sink", {**message, "v": 2})
    with pytest.raises(progress.BadRecord):  # a sink's tick is not the producer's
        progress.read(
            "producer",
            {"record": "tick", "v": 1, "elapsed": 1.0, "inserted": 1, "lag": 0},
        )
    with pytest.raises(progress.BadRecord):
        progress.read("watch", [1, 2])


def test_the_manifest_is_read_through_its_model(tmp_path: Any) -> None:
    built = manifest([final_report(30, {"0": "a"}), final_report(20, {"1": "b"})])
    path = manifests.write(built, tmp_path, None)
    again = manifests.read(path)
    assert again == json.loads(json.dumps(built))
    assert again["events"]["acked"] == 50 and again["checksums"] == {"0": "a", "1": "b"}
    for key in ("events", "checksums", "run_id"):
        with pytest.raises(manifests.ManifestError, match=key):
            manifests.validate(_renamed(dict(built), key))
    with pytest.raises(manifests.ManifestError, match="version"):
        manifests.validate({**built, "manifest_version": 2})
    inner = json.loads(json.dumps(built))
    inner["events"]["acknowledged"] = inner["events"].pop("acked")
    with pytest.raises(manifests.ManifestError, match="events"):
        manifests.validate(inner)


def test_docs_results_names_every_key_of_the_result_and_its_figures() -> None:
    import re
    from pathlib import Path

    from harness.result import Figures, Result

    text = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text()
    section = text.split("## `result.json`", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            named |= set(re.findall(r"`([a-z_.]+)`", line.split("|")[1]))
    top = {n for n in named if not n.startswith("figures.")}
    figures = {n.removeprefix("figures.") for n in named if n.startswith("figures.")}
    assert top == (Result.__required_keys__ | Result.__optional_keys__) - {"figures"}
    assert figures == Figures.__required_keys__ | Figures.__optional_keys__


def test_a_result_is_read_through_its_model(tmp_path: Any) -> None:
    from bankstream.errors import UsageError
    from harness.result import read

    path = tmp_path / "result.json"
    path.write_text(json.dumps({"result_version": 1, "run_id": "r"}))
    with pytest.raises(UsageError, match="not a result of this bankstream"):
        read(path)
    path.write_text(json.dumps({"result_version": 2}))
    with pytest.raises(UsageError, match="result version 2"):
        read(path)


def test_the_runs_rows_and_summary_are_its_records(tmp_path: Any) -> None:
    from harness.cli import _summary
    from harness.orchestrate import ROW_FIELDS, Row, row_record

    row = Row(**{name: 0 for name in ROW_FIELDS} | {"t": 1.5, "target_rate": None})
    tick_ = progress.read("run", json.loads(json.dumps(row_record(row))))
    assert tick_["record"] == "tick" and cast(progress.RunTick, tick_)["t"] == 1.5
    result: dict[str, Any] = {"run_id": "r", "verdict": "pass", "failed": [], "ended": "complete"}
    result |= {"verification": None, "thresholds": [{"metric": "lost", "measured": 0}]}
    line = _summary(cast(Any, result), tmp_path)
    summary = progress.read("run", json.loads(json.dumps(line)))
    assert cast(progress.RunSummary, summary)["measured"] == {"lost": 0}
    with pytest.raises(progress.BadRecord, match="sunk"):
        progress.read("run", _renamed(dict(row_record(row)), "sunk"))


def test_the_runs_tick_has_the_timelines_fields() -> None:
    from harness.orchestrate import ROW_FIELDS

    assert list(progress.RunTick.__annotations__)[2:] == ROW_FIELDS
