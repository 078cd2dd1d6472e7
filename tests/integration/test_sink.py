"""`bankstream sink` against the real Kafka and MongoDB-wire server: every event once, the
projections equal to a recomputation from the stored transactions, after kill -9 at every step,
a takeover by another process, bad messages dead-lettered, and the store going away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from pymongo.database import Database

from bankstream import kafka, mongo
from bankstream.mongo import Document
from bankstream.settings import Settings
from sink.recompute import differences
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.integration


class Run:
    """A topic of produced events and a database for the sink, both removed afterwards."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.settings = settings
        self.tmp = tmp
        self.topic = f"test-sink-{uuid.uuid4().hex[:10]}"
        self.database = f"test_sink_{uuid.uuid4().hex[:10]}"
        self.group = f"test-sink-{uuid.uuid4().hex[:10]}"
        self.client = mongo.client(settings)

    def produce(self, scenario: str, events: int, *extra: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "bankstream", "produce", scenario, "--rate", "max"]
            + ["--events", str(events), "--topic", self.topic, "--metrics-port", "0"]
            + ["--results", str(self.tmp), "--json", *extra],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return summary

    def env(self) -> dict[str, str]:
        # a killed sink's partitions move after 6 s (the broker's least), not the sink's 10 s
        config = json.loads(os.environ.get("BANKSTREAM_KAFKA_CONFIG") or "{}")
        config.setdefault("session.timeout.ms", "6000")
        return {
            **os.environ,
            "BANKSTREAM_MONGO_DATABASE": self.database,
            "BANKSTREAM_KAFKA_CONFIG": json.dumps(config),
        }

    def sink_args(self, *extra: str) -> list[str]:
        return [
            *(sys.executable, "-m", "bankstream", "sink", "--topic", self.topic),
            *("--group", self.group, "--metrics-port", "0", "--json", *extra),
        ]

    def start_sink(self, *extra: str) -> subprocess.Popen[str]:
        """A sink running (no --until-idle unless given), its output piped."""
        return subprocess.Popen(
            self.sink_args(*extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=self.env(),
        )

    def sink(self, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.sink_args("--until-idle", "4s", *extra),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=self.env(),
            timeout=timeout,
            check=False,
        )

    def db(self) -> Database[Document]:
        return self.client[self.database]

    def check_exact(self, expected: int) -> None:
        db = self.db()
        assert db.transactions.count_documents({}) == expected
        assert differences(db) == []

    def close(self) -> None:
        self.client.drop_database(self.database)
        self.client.close()
        admin = kafka.admin_client(self.settings)
        for topic in (self.topic, f"{self.topic}.dlq"):
            kafka.delete_topic(admin, topic)


@pytest.fixture
def run(stack: Settings, tmp_path: Path) -> Iterator[Run]:
    r = Run(stack, tmp_path)
    yield r
    r.close()


def test_every_event_once_and_projections_exact(run: Run):
    summary = run.produce("fraud-ring", 10_000, "--set", "delivery.duplicates=0.02")
    done = run.sink("--processes", "2")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # injected duplicates come twice and are stored once
    copies = summary["acked"] - 10_000
    assert copies > 0
    assert result["inserted"] == 10_000 and result["duplicates"] == copies
    run.check_exact(10_000)
    # a second sink of the same group finds nothing new; another group finds only duplicates
    again = run.sink()
    assert json.loads(again.stdout.strip().splitlines()[-1])["inserted"] == 0
    other = run.sink("--group", f"{run.group}-other")
    replay = json.loads(other.stdout.strip().splitlines()[-1])
    assert replay["inserted"] == 0 and replay["duplicates"] == summary["acked"]
    run.check_exact(10_000)


@pytest.mark.parametrize(
    "fault", ["before_write", "after_insert", "after_record", "after_rollups", "after_write"]
)
def test_a_process_killed_at_any_step_is_restarted_by_the_sink_and_still_exact(
    run: Run, fault: str
):
    run.produce("retail-day", 6_000)
    # the process dies as kill -9 would at that step of the write; the sink starts a new one,
    # which finishes the batch through its record (a short lease: 5 s on, not 20)
    done = run.sink("--fault", fault, "--batch-size", "1500", "--lease", "5s")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["restarts"] == 1 and summary["problems"] == []
    assert summary["restarted"][0]["why"].startswith("sink process 0 died (exit code 137)")
    assert summary["inserted"] + summary["duplicates"] >= 6_000
    run.check_exact(6_000)


def test_a_sink_killed_mid_run_is_taken_over(run: Run):
    run.produce("retail-day", 20_000)
    first = run.start_sink("--batch-size", "500", "--lease", "5s")
    second = run.start_sink("--batch-size", "500", "--until-idle", "12s", "--lease", "5s")
    time.sleep(6)
    # kill -9 the first sink's whole process group: its coordinator and its process
    for pid in _children(first.pid) + [first.pid]:
        os.kill(pid, signal.SIGKILL)
    first.communicate(timeout=30)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    run.check_exact(20_000)


def _children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


def test_malformed_messages_go_to_the_dead_letter_topic(run: Run):
    run.produce("retail-day", 30_000, "--processes", "2")
    producer = Producer(kafka.client_config(run.settings))
    bad = [b"not json", b"\xff\xfe\xfd", b"[]", b'{"tx_id": 1}', b"x" * 70_000]
    for i in range(100):
        producer.produce(run.topic, value=bad[i % len(bad)], key=f"bad-{i}".encode())
    producer.flush(30)
    # transactions only: the projections are tested above, and cost time here
    done = run.sink("--processes", "2", "--no-projections", timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["dead_lettered"] == 100
    assert result["inserted"] == 30_000 and result["duplicates"] == 0
    assert run.db().transactions.count_documents({}) == 30_000
    # transactions only: the events go through the fast path (BSON made in C); each is stored
    # as it was sent
    sent = {}
    for message in _read_all(run.settings, run.topic):
        if not message.key().startswith(b"bad-"):
            event = orjson.loads(message.value())
            sent[event["tx_id"]] = event
    stored = {d.pop("_id"): d for d in run.db().transactions.find({})}
    assert stored == sent
    letters = _read_all(run.settings, f"{run.topic}.dlq")
    assert len(letters) == 100
    for message in letters:
        headers = dict(message.headers())
        assert headers["bankstream.topic"].decode() == run.topic
        assert headers["bankstream.error"]
        assert int(headers["bankstream.offset"]) >= 0
        assert message.key().startswith(b"bad-")


def _read_all(settings: Settings, topic: str) -> list[Any]:
    consumer = Consumer(
        kafka.client_config(
            settings, **{"group.id": f"read-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
        total = sum(consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions)
        consumer.assign(partitions)
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while len(out) < total and time.monotonic() < deadline:
            out += [m for m in consumer.consume(1000, timeout=1) if m.error() is None]
        return out
    finally:
        consumer.close()


@pytest.mark.skipif(
    bool(os.environ.get("BANKSTREAM_MONGO_URI")),
    reason="freezes the local MongoDB-wire server: only against the stack the tests run",
)
def test_the_store_away_and_back_loses_and_doubles_nothing(run: Run):
    run.produce("retail-day", 20_000)
    sink = run.start_sink("--batch-size", "1000", "--until-idle", "5s", "--store-timeout", "3s")
    # the store goes away while the sink is writing: once its first batch is stored (a fixed
    # wait was sometimes longer than the whole sink took)
    deadline = time.monotonic() + 120
    while run.db().transactions.estimated_document_count() == 0:
        assert time.monotonic() < deadline and sink.poll() is None, "the sink wrote nothing"
        time.sleep(0.1)
    server = _mongo_pid(run.settings)
    os.kill(server, signal.SIGSTOP)  # the store does not answer
    # longer than a write that starts while it is away can wait: the store timeout (3 s), then
    # pymongo's one retry, which waits up to the connect timeout (5 s) for the server (at 9 s, a
    # write that began a second or two into the freeze was retried into the server's return and
    # the sink never paused)
    time.sleep(14)
    os.kill(server, signal.SIGCONT)
    out, err = sink.communicate(timeout=300)
    assert sink.returncode == 0, err
    assert '"paused_seconds": 0.0' not in out  # it did wait for the store
    run.check_exact(20_000)


def _mongo_pid(settings: Settings) -> int:
    pid_file = settings.home / "run" / "mongo.pid"
    return int(pid_file.read_text().split()[0])


def test_one_event_as_json_is_stored_as_it_came(run: Run):
    run.produce("seed-demo", 20)
    # the scenario's sink section gives the defaults: here, the collection's name
    done = run.sink("--scenario", "seed-demo", "--set", "sink.collections.transactions=stored")
    assert done.returncode == 0, done.stderr
    assert "transactions" not in run.db().list_collection_names()
    assert run.db().stored.count_documents({}) == 20
    stored = run.db().stored.find_one({}, sort=[("_id", 1)])
    assert stored is not None
    # the event, its tx id as _id, and its batch's token (done: the event is projected)
    assert stored["_id"] == stored["tx_id"]
    assert run.db()["sink_done"].count_documents({"_id": stored["_p"]}) == 1
    assert orjson.loads(orjson.dumps({k: v for k, v in stored.items() if k not in ("_id", "_p")}))


def test_metrics_count_what_was_written_and_sigterm_stops_cleanly(run: Run):
    run.produce("fraud-ring", 5_000, "--rate", "2500")
    port = free_port()
    # the last --metrics-port given wins over sink_args' 0
    sink = run.start_sink("--metrics-port", str(port), "--flush-interval", "100ms")
    try:
        # until the sink has counted its writes, its lag (reported twice a second) is 0, and it
        # committed (every second)
        inserted, lag = 'bankstream_sink_written_total{result="inserted"}', -1.0
        samples: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                samples = _scrape(port)
            except OSError:  # not serving yet
                continue
            lag = sum(
                v for k, v in samples.items() if k.startswith("bankstream_sink_consumer_lag_m")
            )
            committed = samples.get("bankstream_sink_last_commit_timestamp_seconds", 0)
            if samples.get(inserted, 0) >= 5_000 and lag == 0 and committed:
                break
    finally:
        sink.send_signal(signal.SIGTERM)
        out, err = sink.communicate(timeout=60)
    assert sink.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["inserted"] == 5_000 and summary["problems"] == []
    run.check_exact(5_000)

    def total(metric: str) -> float:
        return sum(v for k, v in samples.items() if k == metric or k.startswith(metric + "{"))

    assert total("bankstream_sink_consumed_total") == 5_000
    assert samples[inserted] == 5_000
    assert samples['bankstream_sink_written_total{result="duplicate"}'] == 0
    assert total("bankstream_sink_end_to_end_latency_seconds_count") == 5_000
    assert total("bankstream_sink_consumer_lag_messages") == 0
    assert total("bankstream_sink_batch_size_messages_sum") == 5_000
    assert total("bankstream_sink_bulk_write_seconds_count") >= 1
    assert total("bankstream_sink_processes") == 1
    assert total("bankstream_sink_last_commit_timestamp_seconds") > time.time() - 120


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("bankstream_sink_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples
