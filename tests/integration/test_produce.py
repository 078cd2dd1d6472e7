"""`bankstream produce` against the real Kafka: what is acknowledged is what is in the topic,
each account in order on one partition, the same events as `generate`, stops and outages that
lose nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from bankstream import kafka
from bankstream.settings import Settings
from bankstream.stack import lifecycle
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_topic(stack: Settings) -> Iterator[str]:
    """A topic name nobody used; the producer creates it, the test deletes it."""
    name = f"test-produce-{uuid.uuid4().hex[:10]}"
    yield name
    kafka.delete_topic(kafka.admin_client(stack), name)


def produce(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bankstream", "produce", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
        env={**os.environ},
    )


def start_produce(*args: str) -> subprocess.Popen[str]:
    """`bankstream produce` running, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "bankstream", "produce", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def wait_until_producing(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if "producing" in line:
            break


def summary_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def manifest_of(summary: dict[str, Any]) -> dict[str, Any]:
    return json.loads(Path(ROOT, summary["manifest"]).read_text())  # type: ignore[no-any-return]


def read_topic(settings: Settings, topic: str) -> list[tuple[int, dict[str, Any]]]:
    """Every message of ``topic``: (partition, event), partition by partition in order."""
    consumer = Consumer(
        kafka.client_config(
            settings,
            **{
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
        total = sum(consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions)
        consumer.assign(partitions)
        out: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + 60
        while len(out) < total and time.monotonic() < deadline:
            out.extend(
                (message.partition() or 0, orjson.loads(message.value()))
                for message in consumer.consume(5000, timeout=2)
                if message.error() is None
            )
        return out
    finally:
        consumer.close()


def check_order(events: list[tuple[int, dict[str, Any]]]) -> None:
    """Each account on one partition, its seq increasing there."""
    partition_of: dict[str, int] = {}
    last: dict[str, int] = {}
    for partition, event in events:
        account = event["account"]
        assert partition_of.setdefault(account, partition) == partition, account
        assert event["seq"] > last.get(account, 0), (account, event["seq"])
        last[account] = event["seq"]


def generated_ids(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "bankstream", "generate", *args, "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return [orjson.loads(line)["tx_id"] for line in done.stdout.splitlines()]


def test_acked_is_what_the_topic_holds_and_what_generate_makes(
    stack: Settings, fresh_topic: str, tmp_path: Path
):
    done = produce(
        "retail-day",
        "--rate",
        "2000",
        "--events",
        "10000",
        "--topic",
        fresh_topic,
        "--metrics-port",
        "0",
        "--results",
        str(tmp_path),
        "--json",
        "--processes",
        "2",
    )
    assert done.returncode == 0, done.stderr
    summary = summary_of(done)
    assert summary["acked"] == summary["produced"] == summary["made"] == 10_000
    manifest = manifest_of(summary)
    events = read_topic(stack, fresh_topic)
    assert len(events) == 10_000
    ids = [e["tx_id"] for _, e in events]
    assert len(set(ids)) == 10_000
    assert set(ids) == set(generated_ids("retail-day", "--events", "10000"))
    check_order(events)
    # the manifest's counts are the topic's
    counted = Counter((e["type"], e["status"]) for _, e in events)
    for name, statuses in manifest["by_type"].items():
        for status, n in statuses.items():
            assert counted[(name, status)] == n, (name, status)
    acked = {kind: n for kind, n in manifest["acked_by_type"].items() if n}
    assert acked == dict(Counter(e["type"] for _, e in events))
    # every event carries its intended send time, within the run
    sent = [e["send_time"] for _, e in events]
    began = dt.datetime.fromisoformat(manifest["started_at"]).timestamp() * 1000
    ended = dt.datetime.fromisoformat(manifest["ended_at"]).timestamp() * 1000
    assert all(isinstance(s, int) and began - 1000 <= s <= ended for s in sent)
    assert len(manifest["checksums"]) == 256


def test_two_shards_are_one_run(stack: Settings, fresh_topic: str, tmp_path: Path):
    for shard in ("0/2", "1/2"):
        done = produce(
            "fraud-ring",
            "--rate",
            "3000",
            "--events",
            "6000",
            "--shard",
            shard,
            "--run-id",
            "two-hosts",
            "--topic",
            fresh_topic,
            "--metrics-port",
            "0",
            "--results",
            str(tmp_path),
            "--json",
            "--processes",
            "1",
        )
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "two-hosts").iterdir()) == [
        "manifest.shard-0-of-2.json",
        "manifest.shard-1-of-2.json",
    ]
    events = read_topic(stack, fresh_topic)
    ids = [e["tx_id"] for _, e in events]
    assert len(ids) == len(set(ids)) == 6000
    assert set(ids) == set(generated_ids("fraud-ring", "--events", "6000"))
    assert {e["run_id"] for _, e in events} == {"two-hosts"}


def test_a_ramp_reaches_each_stage(stack: Settings, fresh_topic: str, tmp_path: Path):
    done = produce(
        "retail-day",
        "--stages",
        "4s:400,4s:1500:linear",
        "--topic",
        fresh_topic,
        "--metrics-port",
        "0",
        "--results",
        str(tmp_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    manifest = manifest_of(summary_of(done))
    first, second = manifest["stages"]
    assert first["target_rate"] == 400 and abs(first["achieved_rate"] / 400 - 1) < 0.15
    # a linear ramp from 400 to 1,500: 950/s on average
    assert abs(second["achieved_rate"] / 950 - 1) < 0.15
    assert manifest["events"]["acked"] == 400 * 4 + 950 * 4


def test_sigint_mid_run_leaves_a_manifest_equal_to_the_topic(
    stack: Settings, fresh_topic: str, tmp_path: Path
):
    process = start_produce(
        *("retail-day", "--rate", "3000", "--duration", "60s", "--topic", fresh_topic),
        *("--metrics-port", "0", "--results", str(tmp_path), "--json"),
    )
    wait_until_producing(process)
    time.sleep(4)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=90)
    assert process.returncode == 130, err
    summary = json.loads(out.strip().splitlines()[-1])
    manifest = manifest_of(summary)
    assert manifest["ended"] == "stopped"
    events = read_topic(stack, fresh_topic)
    assert 0 < len(events) == manifest["events"]["acked"] == manifest["events"]["made"]
    counted = Counter((e["type"], e["status"]) for _, e in events)
    assert sum(counted.values()) == sum(sum(s.values()) for s in manifest["by_type"].values())
    check_order(events)


def test_metrics_counters_equal_the_manifest(stack: Settings, fresh_topic: str, tmp_path: Path):
    port = free_port()
    process = start_produce(
        *("fraud-ring", "--rate", "2000", "--events", "8000", "--topic", fresh_topic),
        *("--metrics-port", str(port), "--metrics-linger", "5", "--results", str(tmp_path)),
        "--json",
    )
    assert process.stdout is not None
    scraped = ""
    for line in process.stdout:
        if "serving /metrics" in line:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                scraped = r.read().decode()
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    manifest = manifest_of(json.loads(out.strip().splitlines()[-1]))
    samples: dict[str, float] = {}
    for line in scraped.splitlines():
        if line.startswith("bankstream_loadgen_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)

    def total(metric: str) -> float:
        return sum(v for k, v in samples.items() if k.startswith(metric + "{") or k == metric)

    assert total("bankstream_loadgen_events_produced_total") == manifest["events"]["produced"]
    assert total("bankstream_loadgen_events_acked_total") == manifest["events"]["acked"] == 8000
    assert total("bankstream_loadgen_events_failed_total") == 0
    assert total("bankstream_loadgen_produced_bytes_total") == manifest["bytes"]
    for kind, n in manifest["acked_by_type"].items():
        assert samples.get(f'bankstream_loadgen_events_acked_total{{type="{kind}"}}', 0) == n
    assert total("bankstream_loadgen_delivery_latency_seconds_count") == 8000


@pytest.mark.skipif(
    bool(os.environ.get("BANKSTREAM_KAFKA_BOOTSTRAP")),
    reason="stops the local broker: only against the stack the tests run",
)
def test_a_broker_outage_stalls_and_loses_nothing(
    stack: Settings, fresh_topic: str, tmp_path: Path
):
    process = start_produce(
        *("retail-day", "--rate", "1000", "--duration", "25s", "--topic", fresh_topic),
        *("--metrics-port", "0", "--results", str(tmp_path), "--json", "--flush-timeout", "120"),
    )
    wait_until_producing(process)
    time.sleep(5)
    lifecycle.down(stack, report=lambda _: None, names=["kafka"])
    time.sleep(10)
    lifecycle.up(stack, report=lambda _: None)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err or out.strip().splitlines()[-1:]
    manifest = manifest_of(json.loads(out.strip().splitlines()[-1]))
    assert manifest["stall_seconds"] >= 5
    assert manifest["events"]["failed"] == 0
    events = read_topic(stack, fresh_topic)
    ids = [e["tx_id"] for _, e in events]
    assert len(ids) == len(set(ids)) == manifest["events"]["acked"] == 25_000
    check_order(events)
