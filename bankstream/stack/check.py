"""`stack check`: a short end-to-end smoke run through every service of the stack.

Kafka: a temporary topic, keyed messages produced (idempotent, acks=all) and consumed back, each
key on one partition, then the topic is deleted. MongoDB: a temporary database, an unordered
insert with a duplicate ``_id`` (error 11000 handled), an aggregation, then it is dropped.
Prometheus: an instant query.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition
from pymongo.errors import BulkWriteError, PyMongoError

from bankstream import kafka, mongo, prometheus
from bankstream.errors import BankstreamError
from bankstream.settings import Settings

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class CheckResult:
    service: str
    summary: str
    seconds: float


def kafka_round_trip(settings: Settings, messages: int = 1000, partitions: int = 3) -> str:
    """Produce ``messages`` keyed messages to a temporary topic and consume them all back."""
    kafka.wait_for_metadata(settings, settings.connect_timeout)
    admin = kafka.admin_client(settings)
    topic = f"bankstream-check-{uuid.uuid4().hex[:12]}"
    kafka.create_topic(admin, topic, partitions=partitions)
    try:
        producer = kafka.producer(
            settings, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5}
        )
        failures: list[str] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        for i in range(messages):
            producer.produce(topic, key=f"acct-{i % 50}", value=f"{i}", on_delivery=delivered)
            producer.poll(0)
        left = producer.flush(settings.connect_timeout * 3)
        if left or failures:
            msg = f"Kafka check: {left} message(s) not delivered, {len(failures)} failed"
            raise BankstreamError(msg)

        consumer = kafka.consumer(
            settings,
            **{"group.id": topic, "auto.offset.reset": "earliest", "enable.auto.commit": False},
        )
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        seen: dict[str, set[int]] = {}
        values: set[str] = set()
        deadline = time.monotonic() + settings.connect_timeout * 6
        try:
            while len(values) < messages and time.monotonic() < deadline:
                for record in consumer.consume(500, timeout=0.5):
                    if record.error():
                        text = f"Kafka check: consume error {record.error()}"
                        raise BankstreamError(text)
                    key = (record.key() or b"").decode()
                    seen.setdefault(key, set()).add(record.partition() or 0)
                    values.add((record.value() or b"").decode())
        finally:
            consumer.close()
        if len(values) != messages:
            msg = f"Kafka check: consumed {len(values)} of {messages} messages"
            raise BankstreamError(msg)
        split = [k for k, parts in seen.items() if len(parts) > 1]
        if split:
            msg = f"Kafka check: keys on several partitions: {split[:5]}"
            raise BankstreamError(msg)
    finally:
        kafka.delete_topic(admin, topic)
    return f"{messages} keyed messages produced and consumed on {partitions} partitions"


def mongo_round_trip(settings: Settings, documents: int = 1000) -> str:
    """Unordered insert with a duplicate, an aggregation, in a temporary database."""
    mongo.ping(settings)
    name = f"bankstream_check_{uuid.uuid4().hex[:12]}"
    with mongo.client(settings) as client:
        db = client[name]
        try:
            docs = [{"_id": i, "kind": i % 4, "cents": i * 100} for i in range(documents)]
            docs.append({"_id": 0, "kind": 0, "cents": 0})
            duplicates = 0
            try:
                db.check.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                codes = {e["code"] for e in exc.details["writeErrors"]}
                if codes != {DUPLICATE_KEY}:
                    msg = f"MongoDB check: unexpected write errors {codes}"
                    raise BankstreamError(msg) from None
                duplicates = len(exc.details["writeErrors"])
            count = db.check.count_documents({})
            groups = list(
                db.check.aggregate(
                    [
                        {"$group": {"_id": "$kind", "n": {"$sum": 1}, "cents": {"$sum": "$cents"}}},
                    ]
                )
            )
        finally:
            client.drop_database(name)
    total = sum(g["cents"] for g in groups)
    expected = sum(i * 100 for i in range(documents))
    if count != documents or duplicates != 1 or total != expected:
        msg = (
            f"MongoDB check: {count} documents, {duplicates} duplicate errors, sum {total} "
            f"(expected {documents}, 1, {expected})"
        )
        raise BankstreamError(msg)
    return f"{documents} documents written (1 duplicate rejected with 11000), aggregated, dropped"


def prometheus_query(settings: Settings) -> str:
    prometheus.ready(settings)
    result = prometheus.query(settings, "up")
    return f"answers queries ({len(result)} scrape target(s) known)"


def run(settings: Settings, report: Callable[[CheckResult], None]) -> list[CheckResult]:
    steps: list[tuple[str, Callable[[], str]]] = [
        ("Kafka", lambda: kafka_round_trip(settings)),
        ("MongoDB", lambda: mongo_round_trip(settings)),
        ("Prometheus", lambda: prometheus_query(settings)),
    ]
    results = []
    for service, step in steps:
        began = time.perf_counter()
        try:
            summary = step()
        except (KafkaException, PyMongoError) as exc:
            msg = f"{service} check failed: {settings.scrub(str(exc))}"
            raise BankstreamError(msg) from None
        result = CheckResult(service, summary, time.perf_counter() - began)
        report(result)
        results.append(result)
    return results
