"""The ceilings of a pipeline: what the raw clients do with the same data on the same cluster.

- Kafka: a bare confluent-kafka loop sending the scenario's own payloads and keys, pre-built,
  with the producer's settings, from 1 or N processes, to a fresh topic with the scenario's
  partitions (deleted after);
- MongoDB: pymongo ``insert_many(ordered=False)`` of the same events as documents (decoded
  before the clock starts), in batches of the sink's size, into a fresh collection with the
  sink's indexes (in a scratch database, dropped after).

`bankstream bench ceiling SCENARIO` measures both and keeps the figures in
``results/ceilings/<scenario>.json``; `bankstream run` states the pipeline's rates as ratios of
them.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bankstream import kafka, mongo
from bankstream.settings import Settings
from scenarios import LoadedScenario

CEILING_VERSION = 1


def payloads(loaded: LoadedScenario, events: int) -> tuple[list[str], list[bytes]]:
    """The keys and values of the scenario's first ``events`` events (send time filled in)."""
    from loadgen.stream import RunStream, plan

    keys: list[str] = []
    values: list[bytes] = []
    now = int(time.time() * 1000)
    for batch in RunStream(plan(loaded, events=events)).batches():
        keys += batch.keys
        values += batch.values(np.full(len(batch), now, dtype=np.int64))
    return keys, values


def _send(
    config: dict[str, Any],
    topic: str,
    keys: list[str],
    values: list[bytes],
    barrier: Any,
    ends: Any,
    index: int,
) -> None:
    from confluent_kafka import Producer

    acked = [0]

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked[0] += 1

    producer = Producer({**config, "on_delivery": delivered})
    produce, poll = producer.produce, producer.poll
    barrier.wait()  # every process ready: the clock starts
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.05)
        if i % 1000 == 0:
            poll(0)
    producer.flush(120)
    ends[index] = time.time()
    if acked[0] != len(values):
        msg = f"ceiling: {acked[0]} of {len(values)} acknowledged"
        raise RuntimeError(msg)


def kafka_ceiling(
    settings: Settings, loaded: LoadedScenario, keys: list[str], values: list[bytes], processes: int
) -> dict[str, Any]:
    """Send the payloads from ``processes`` processes (each an equal share) to a fresh topic."""
    from loadgen.producer.client import producer_config

    topic = f"ceiling-{uuid.uuid4().hex[:10]}"
    delivery = loaded.scenario.delivery
    admin = kafka.admin_client(settings)
    kafka.create_topic(admin, topic, delivery.partitions, delivery.replication_factor)
    config = {
        **kafka.client_config(settings),
        **producer_config(settings.kafka_config, delivery),
    }
    config.pop("logger", None)
    try:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(processes + 1)
        ends = context.Array("d", processes)
        workers = [
            context.Process(
                target=_send,
                args=(config, topic, keys[i::processes], values[i::processes], barrier, ends, i),
            )
            for i in range(processes)
        ]
        for worker in workers:
            worker.start()
        barrier.wait()
        began = time.time()
        for worker in workers:
            worker.join()
        seconds = max(ends[i] for i in range(processes)) - began
        if any(worker.exitcode for worker in workers):
            msg = "ceiling: a sending process failed"
            raise RuntimeError(msg)
    finally:
        kafka.delete_topic(admin, topic)
    return {
        "events": len(values),
        "processes": processes,
        "seconds": seconds,
        "rate": len(values) / seconds,
    }


def documents(values: list[bytes]) -> list[dict[str, Any]]:
    """The payloads as the sink stores them (``_id`` = the transaction id)."""
    out = []
    for value in values:
        event = orjson.loads(value)
        out.append({"_id": event["tx_id"], **event})
    return out


def mongo_ceiling(db: Any, items: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """``insert_many(ordered=False)`` of ``items`` in batches of ``size`` into a collection with
    the sink's indexes."""
    from sink.writer import Writer

    Writer(db).ensure_indexes()
    began = time.perf_counter()
    for start in range(0, len(items), size):
        db.transactions.insert_many(items[start : start + size], ordered=False)
    seconds = time.perf_counter() - began
    return {
        "events": len(items),
        "batch_size": size,
        "seconds": seconds,
        "rate": len(items) / seconds,
    }


def measure(
    settings: Settings, loaded: LoadedScenario, events: int, processes: int
) -> dict[str, Any]:
    """Both ceilings for ``loaded``'s first ``events`` events."""
    from harness.result import now_iso

    keys, values = payloads(loaded, events)
    kafka_figures = kafka_ceiling(settings, loaded, keys, values, processes)
    items = documents(values)
    database = f"bankstream_ceiling_{uuid.uuid4().hex[:8]}"
    with mongo.client(settings) as client:
        try:
            mongo_figures = mongo_ceiling(client[database], items, loaded.scenario.sink.batch_size)
        finally:
            client.drop_database(database)
    return {
        "ceiling_version": CEILING_VERSION,
        "scenario": loaded.scenario.name,
        "scenario_digest": loaded.digest,
        "measured_at": now_iso(),
        "kafka_bootstrap": settings.kafka_bootstrap,
        "mongodb_uri": settings.mongo_uri_redacted,
        "kafka_producer": kafka_figures,
        "mongodb_insert": mongo_figures,
    }


def path_for(results: Path, scenario: str) -> Path:
    return results / "ceilings" / f"{scenario}.json"


def save(figures: dict[str, Any], results: Path) -> Path:
    path = path_for(results, figures["scenario"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n")
    return path


def find(results: Path, scenario: str) -> dict[str, Any] | None:
    """The scenario's last measured ceilings, if any."""
    path = path_for(results, scenario)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("ceiling_version") == CEILING_VERSION else None


def ratios(ceilings: dict[str, Any], figures: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's rates as shares of the ceilings (for result.json and the report)."""
    produce = figures["produce"].get("rate")
    sink = figures["sink"].get("rate")
    kafka_rate = ceilings["kafka_producer"]["rate"]
    mongo_rate = ceilings["mongodb_insert"]["rate"]
    return {
        "measured_at": ceilings["measured_at"],
        "scenario_digest": ceilings["scenario_digest"],  # of the file as measured
        "kafka_producer_rate": kafka_rate,
        "mongodb_insert_rate": mongo_rate,
        "produce_rate_of_ceiling": produce / kafka_rate if produce and kafka_rate else None,
        "sink_rate_of_ceiling": sink / mongo_rate if sink and mongo_rate else None,
    }
