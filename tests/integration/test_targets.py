"""`bankstream run --sink external|connect` against the real local stack: a pipeline written
here (a plain confluent-kafka consumer storing with pymongo, tests/integration/pipeline.py) is
measured from outside and verified exact; the same pipeline made to drop and to double
messages has exactly those counted and fails its thresholds; a pipeline that never writes ends
the run by itself with one clear problem; the official MongoDB Kafka sink connector on the
local Kafka Connect is verified exact with lag and latency reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from bankstream import connect, mongo
from bankstream.mongo import Document
from bankstream.settings import Settings
from bankstream.stack import lifecycle
from tests.conftest import ROOT, free_port, run_cli

pytestmark = pytest.mark.integration
PIPELINE = ROOT / "tests" / "integration" / "pipeline.py"


def environment(database: str) -> dict[str, str]:
    return {
        "BANKSTREAM_MONGO_DATABASE": database,
        "BANKSTREAM_LOADGEN_METRICS_PORT": str(free_port()),
        "BANKSTREAM_SINK_METRICS_PORT": str(free_port()),
    }


def result_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result: dict[str, Any] = json.loads(Path(ROOT, summary["result"]).read_text())
    return result


@pytest.fixture
def database(stack: Settings) -> Iterator[Database[Document]]:
    name = f"test_targets_{uuid.uuid4().hex[:8]}"
    with mongo.client(stack) as client:
        yield client[name]
        client.drop_database(name)


class External:
    """tests/integration/pipeline.py running in the background for one run."""

    def __init__(
        self, settings: Settings, topic: str, group: str, target: str, *flags: str
    ) -> None:
        self.report = Path(ROOT, "results", f"pipeline-{uuid.uuid4().hex[:8]}.json")
        self.report.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 (our own script)
            [
                sys.executable,
                str(PIPELINE),
                "--bootstrap",
                settings.kafka_bootstrap,
                "--mongo",
                settings.mongo_uri,
                "--topic",
                topic,
                "--group",
                group,
                "--target",
                target,
                "--report",
                str(self.report),
                *flags,
            ]
        )

    def stop(self) -> dict[str, list[str]]:
        self.process.terminate()
        self.process.wait(30)
        found: dict[str, list[str]] = json.loads(self.report.read_text())
        self.report.unlink()
        return found


def run_external(
    settings: Settings,
    database: Database[Document],
    *flags: str,
    events: int = 4000,
    run_flags: tuple[str, ...] = (),
) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
    tag = uuid.uuid4().hex[:8]
    topic, group = f"bankstream.test.ext-{tag}", f"ext-{tag}"
    target = f"{database.name}.stored"
    pipeline = External(settings, topic, group, target, *flags)
    try:
        done = run_cli(
            "run",
            "retail-day",
            "--sink",
            "external",
            "--topic",
            topic,
            "--wait-for-group",
            group,
            "--target",
            target,
            "--events",
            str(events),
            "--rate",
            "1000",
            "--no-warm",
            "--json",
            *run_flags,
            env=environment(database.name),
            timeout=300,
        )
    finally:
        report = pipeline.stop()
    return done, report


def test_an_external_pipeline_is_measured_and_verified_exact(
    stack: Settings, database: Database[Document]
) -> None:
    done, report = run_external(stack, database)
    assert done.returncode == 0, done.stderr[-2000:]
    assert report == {"lost": [], "doubled": []}
    result = result_of(done)
    verification = result["verification"]
    assert verification["exact"] and verification["lost"] == verification["duplicates"] == 0
    assert verification["sample"]["checked"] > 0 and verification["sample"]["differing"] == 0
    pipeline = result["figures"]["pipeline"]
    assert pipeline["sink"] == "external" and pipeline["probes"]["id_mode"] == "id"
    assert pipeline["probes"]["found"] > 0
    assert result["figures"]["latency"]["end_to_end"]["count"] == pipeline["probes"]["found"]
    assert result["figures"]["sink"]["inserted"] == verification["stored"]
    assert "consumer group" in pipeline["method"]["lag"]


def test_lost_and_doubled_messages_are_counted_exactly(
    stack: Settings, database: Database[Document]
) -> None:
    done, report = run_external(stack, database, "--drop-every", "1000", "--twice-every", "500")
    assert done.returncode == 1, done.stderr[-2000:]
    verification = result_of(done)["verification"]
    assert report["lost"] and report["doubled"]
    assert verification["lost"] == len(report["lost"])
    assert verification["duplicates"] == len(report["doubled"])
    failed = result_of(done)["failed"]
    assert any(f.startswith("lost == 0") for f in failed)
    assert any(f.startswith("duplicates == 0") for f in failed)


def test_events_under_a_field_with_other_ids_are_found(
    stack: Settings, database: Database[Document]
) -> None:
    done, _ = run_external(
        stack, database, "--wrap", "event", events=1500, run_flags=("--event-field", "event")
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = result_of(done)
    assert result["verification"]["exact"]
    assert result["figures"]["pipeline"]["probes"]["id_mode"] == "field"


def test_a_pipeline_that_never_writes_ends_the_run(
    stack: Settings, database: Database[Document]
) -> None:
    done, _ = run_external(stack, database, "--never-write", events=1000)
    assert done.returncode == 1
    result = result_of(done)
    assert result["verification"]["lost"] == 1000 - result["manifest"]["events"]["failed"]
    nothing = [p for p in result["problems"] if "stored nothing" in p]
    assert len(nothing) == 1, result["problems"]


@pytest.fixture(scope="module")
def with_connect(stack: Settings) -> Iterator[Settings]:
    settings = stack.model_copy(update={"stack_connect": True})
    states = lifecycle.up(settings, report=lambda _: None)
    started = [s.name for s in states if s.started and s.name == "connect"]
    yield settings
    if started and not os.environ.get("BANKSTREAM_KEEP_STACK"):
        lifecycle.down(settings, report=lambda _: None, names=started)


def test_the_mongodb_connector_is_measured_and_verified_exact(
    with_connect: Settings, database: Database[Document]
) -> None:
    done = run_cli(
        "run",
        "retail-day",
        "--sink",
        "connect",
        "--target",
        f"{database.name}.connector",
        "--events",
        "6000",
        "--rate",
        "1500",
        "--set",
        "sink.connect={tasks.max: 2}",
        "--no-warm",
        "--json",
        env=environment(database.name),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = result_of(done)
    assert result["verification"]["exact"]
    assert result["verification"]["sample"]["differing"] == 0
    pipeline = result["figures"]["pipeline"]
    assert pipeline["probes"]["id_mode"] == "id-doc"  # {_id: {tx_id: ...}}
    assert pipeline["connector"]["config"]["tasks.max"] == "2"
    assert "connection.uri" not in pipeline["connector"]["config"]
    assert result["figures"]["latency"]["end_to_end"]["count"] > 0
    assert result["figures"]["lag"]["max_messages"] is not None
    connectors = connect.call(with_connect, "GET", "/connectors")
    assert pipeline["connector"]["name"] not in connectors  # deleted after the run


@pytest.mark.parametrize("sink", ["bankstream", "connect"])
def test_a_backlog_run_reports_the_catch_up(
    sink: str, with_connect: Settings, database: Database[Document]
) -> None:
    target = ["--target", f"{database.name}.backlog"] if sink == "connect" else []
    done = run_cli(
        "run",
        "retail-day",
        "--sink",
        sink,
        *target,
        "--backlog",
        "3000",
        "--events",
        "6000",
        "--rate",
        "1500",
        "--set",
        "thresholds={}",
        "--no-warm",
        "--json",
        env=environment(database.name),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = result_of(done)
    assert result["verification"]["exact"]
    backlog = result["figures"]["backlog"]
    assert backlog["caught_up"] and backlog["waiting"] >= 3000
    assert backlog["catch_up_seconds"] > 0 and backlog["catch_up_rate"] > 0
    assert result["figures"]["lag"]["max_messages"] >= 3000
    # nothing was read before the backlog waited: the first rows with events acknowledged
    # (the producer may take a second or two to start) show the sink idle, all of it waiting
    rows = [dict(zip(result["timeline_fields"], r, strict=True)) for r in result["timeline"]]
    first = next(r for r in rows if r["acked"] > 0)
    assert first["sunk"] == 0 and first["lag"] == first["acked"]


def test_bench_sinks_stores_one_topic_through_each_target_in_turns(
    with_connect: Settings, database: Database[Document]
) -> None:
    done = run_cli(
        "bench",
        "sinks",
        "retail-day",
        "--events",
        "3000",
        "--rounds",
        "1",
        "--processes",
        "1",
        "--json",
        env=environment(database.name),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(figures["targets"]) == ["bankstream", "bankstream-no-projections", "connect"]
    assert [t["target"] for t in figures["turns"]] == list(figures["targets"])
    for turn in figures["turns"]:
        assert turn["complete"] and turn["stored"] == figures["expected"] > 0
    assert figures["targets"]["bankstream"]["ratio"] == 1.0
    assert all(t["rate"] > 0 and t["ratio"] > 0 for t in figures["targets"].values())
    with mongo.client(with_connect) as client:  # every target's database dropped after
        assert not [n for n in client.list_database_names() if n.startswith("bench_sinks_")]
