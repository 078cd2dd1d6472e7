"""The producer's ceiling: a raw confluent-kafka loop sending pre-built payloads, the same events'
sizes and keys, with the same producer settings, from 1 or N processes. What bankstream's producer
adds (generating, pacing, counting by type) is measured against it.

    python -m benchmarks.ceiling retail-day --events 200000 --processes 2

prints one JSON object: events, seconds, events per second. Each run uses its own topic (the
scenario's partitions), deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import uuid
from typing import Any

import numpy as np

from bankstream import kafka
from bankstream.settings import Settings, load_settings
from loadgen.producer import producer_config
from loadgen.stream import RunStream, plan
from scenarios import LoadedScenario, load


def payloads(loaded: LoadedScenario, events: int) -> tuple[list[str], list[bytes]]:
    """The keys and values of the scenario's first ``events`` events (send time filled in)."""
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


def run(
    settings: Settings, loaded: LoadedScenario, keys: list[str], values: list[bytes], processes: int
) -> dict[str, Any]:
    """Send the payloads from ``processes`` processes (each an equal share) to a fresh topic."""
    topic = f"ceiling-{uuid.uuid4().hex[:10]}"
    delivery = loaded.scenario.delivery
    admin = kafka.admin_client(settings)
    kafka.create_topic(admin, topic, delivery.partitions, delivery.replication_factor)
    config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        **producer_config(settings.kafka_config, delivery),
    }
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
    return {"events": len(values), "seconds": seconds, "rate": len(values) / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__)
    parser.add_argument("scenario")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    loaded = load(args.scenario)
    keys, values = payloads(loaded, args.events)
    result = run(load_settings(), loaded, keys, values, args.processes)
    print(json.dumps({"scenario": args.scenario, "processes": args.processes, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
