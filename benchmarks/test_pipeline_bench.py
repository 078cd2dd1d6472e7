"""The pipeline's hot paths, each with its ceiling beside it. Run with `make bench`; the figures
land in the report (``extra_info``), never in asserts. `make bench-check` compares a run with the
saved baseline and fails beyond its stated tolerance.

- ``serialise``: the producer's payloads of one batch with their send times (``Batch.values``),
  against ``orjson.dumps`` of the same events as dicts;
- ``decode``: the sink's decode and contract check of Kafka messages, against bare
  ``orjson.loads`` of the same bytes;
- ``project``: the sink's projection of a batch (accounts and rollups), the work between decoding
  and writing;
- ``sink against the store``: `bankstream sink --no-projections` on a topic holding the events,
  against raw ``insert_many(ordered=False)`` of the same documents (the real store).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import numpy as np
import orjson
import pytest

from bankstream import kafka, mongo
from bankstream.settings import Settings
from harness.ceiling import documents, mongo_ceiling, payloads
from scenarios import load
from sink.decode import decode
from sink.projections import project
from tests.conftest import ROOT

EVENTS = 20_000


class Message:
    """What the sink reads of a Kafka message."""

    __slots__ = ("_key", "_offset", "_value")

    def __init__(self, key: str, value: bytes, offset: int) -> None:
        self._key, self._value, self._offset = key.encode(), value, offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key

    def topic(self) -> str:
        return "bench"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


@pytest.fixture(scope="module")
def data() -> tuple[list[str], list[bytes]]:
    return payloads(load("retail-day", environ={}), EVENTS)


def _per_event(benchmark: Any, events: int) -> None:
    if benchmark.stats is not None:
        benchmark.extra_info["events"] = events
        benchmark.extra_info["events_per_second"] = round(events / benchmark.stats.stats.median)


def test_serialise_a_batch(benchmark: Any) -> None:
    from loadgen.stream import RunStream, plan

    batch = next(iter(RunStream(plan(load("retail-day", environ={}), events=EVENTS)).batches()))
    stamps = np.full(len(batch), 1_700_000_000_000, dtype=np.int64)
    values = benchmark(batch.values, stamps)
    assert len(values) == len(batch)
    _per_event(benchmark, len(batch))
    events = [orjson.loads(v) for v in values]
    if benchmark.stats is not None:
        import time

        began = time.perf_counter()
        for event in events:
            orjson.dumps(event)
        ceiling = len(events) / (time.perf_counter() - began)
        benchmark.extra_info["ceiling_orjson_dumps_per_second"] = round(ceiling)


def test_decode_and_check(benchmark: Any, data: tuple[list[str], list[bytes]]) -> None:
    keys, values = data
    messages = [Message(k, v, i) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
    good, bad = benchmark(decode, messages)
    assert len(good) == len(messages) and not bad
    _per_event(benchmark, len(messages))
    if benchmark.stats is not None:
        import time

        began = time.perf_counter()
        for value in values:
            orjson.loads(value)
        benchmark.extra_info["ceiling_orjson_loads_per_second"] = round(
            len(values) / (time.perf_counter() - began)
        )


def test_project_a_batch(benchmark: Any, data: tuple[list[str], list[bytes]]) -> None:
    events = [orjson.loads(v) for v in data[1][:5000]]  # one batch of the sink's default size
    projection = benchmark(project, events)
    assert projection.accounts and projection.rollups
    _per_event(benchmark, len(events))


@pytest.mark.integration
def test_sink_against_the_store(benchmark: Any, stack: Settings) -> None:
    """`bankstream sink --no-projections` against raw insert_many of the same documents."""
    events = 5_000 if benchmark.disabled else 50_000
    loaded = load("retail-day", environ={})
    keys, values = payloads(loaded, events)
    topic = f"bench-sink-{uuid.uuid4().hex[:8]}"
    admin = kafka.admin_client(stack)
    kafka.create_topic(admin, topic, 12)
    producer = kafka.producer(stack)
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    rates: dict[str, float] = {}

    def pair() -> None:
        with mongo.client(stack) as client:
            database = f"bench_sink_{uuid.uuid4().hex[:8]}"
            try:
                rates["ceiling"] = mongo_ceiling(client[database], documents(values), 5000)["rate"]
            finally:
                client.drop_database(database)
            database = f"bench_sink_{uuid.uuid4().hex[:8]}"
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "bankstream", "sink", "--topic", topic, "--group",
                     f"bench-{uuid.uuid4().hex[:6]}", "--until-idle", "2s", "--metrics-port", "0",
                     "--no-projections", "--json"],
                    capture_output=True, text=True, cwd=ROOT, timeout=600, check=True,
                    env={**os.environ, "BANKSTREAM_MONGO_DATABASE": database},
                )  # fmt: skip
                rates["sink"] = float(json.loads(done.stdout.splitlines()[-1])["events_per_second"])
            finally:
                client.drop_database(database)

    try:
        benchmark.pedantic(pair, rounds=1, iterations=1)
    finally:
        kafka.delete_topic(admin, topic)
        kafka.delete_topic(admin, f"{topic}.dlq")
    assert rates["sink"] > 0 and rates["ceiling"] > 0
    benchmark.extra_info.update(
        events=events,
        ceiling_insert_many_per_second=round(rates["ceiling"]),
        sink_events_per_second=round(rates["sink"]),
        ratio=round(rates["sink"] / rates["ceiling"], 3),
    )
