"""The sink's writes against their ceiling, side by side on one store, alternating:

    python -m benchmarks.sink_vs_ceiling --events 50000 --batch-size 5000 --pairs 3

- ceiling: raw pymongo ``insert_many(ordered=False)`` of the same documents, in batches of the
  same size, into an empty collection with the same indexes as the sink's;
- transactions only: the sink's decode and write of the same messages without projections;
- with projections: the same, with every projection on (accounts and rollups).

Each figure is events per second of the write path over the whole set (decoding included for
the sink, Kafka excluded: the messages are read once, before). Medians and pair-by-pair ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from typing import Any

import orjson

from bankstream import mongo
from bankstream.settings import load_settings
from loadgen.stream import RunStream, plan
from scenarios import load
from sink.decode import decode
from sink.writer import Writer


class Message:
    """An event as the sink reads it from Kafka."""

    __slots__ = ("_key", "_offset", "_value")

    def __init__(self, key: bytes, value: bytes, offset: int) -> None:
        self._key, self._value, self._offset = key, value, offset

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


def messages(scenario: str, events: int) -> list[Message]:
    out: list[Message] = []
    for batch in RunStream(plan(load(scenario, environ={}), events=events)).batches():
        for key, line in zip(batch.keys, batch.lines, strict=True):
            out.append(Message(key.encode(), line.encode(), len(out)))
    return out


def ceiling(db: Any, items: list[Message], size: int) -> float:
    documents = [{"_id": e["tx_id"], **e} for e in (orjson.loads(m.value()) for m in items)]
    Writer(db).ensure_indexes()  # the same indexes the sink's collection has
    began = time.perf_counter()
    for start in range(0, len(documents), size):
        db.transactions.insert_many(documents[start : start + size], ordered=False)
    return len(documents) / (time.perf_counter() - began)


def sink(db: Any, items: list[Message], size: int, projections: bool) -> float:
    writer = Writer(db, projections=projections)
    writer.ensure_indexes()
    began = time.perf_counter()
    for start in range(0, len(items), size):
        good, bad = decode(items[start : start + size])
        assert not bad
        writer.write(good, [("bench", 0)])
    return len(items) / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sink_vs_ceiling", description=__doc__
    )
    parser.add_argument("--scenario", default="retail-day")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    items = messages(args.scenario, args.events)
    settings = load_settings()
    rates: dict[str, list[float]] = {"ceiling": [], "transactions": [], "projections": []}
    with mongo.client(settings) as client:
        for _ in range(args.pairs):
            for name in rates:
                database = f"bench_sink_{uuid.uuid4().hex[:8]}"
                db = client[database]
                try:
                    if name == "ceiling":
                        rate = ceiling(db, items, args.batch_size)
                    else:
                        rate = sink(db, items, args.batch_size, name == "projections")
                finally:
                    client.drop_database(database)
                rates[name].append(rate)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratios = {
        f"{name}_ratio": round(
            statistics.median([a / b for a, b in zip(rates[name], rates["ceiling"], strict=True)]),
            3,
        )
        for name in ("transactions", "projections")
    }
    print(
        json.dumps(
            {
                "scenario": args.scenario,
                "events": args.events,
                "batch_size": args.batch_size,
                **{f"{k}_median": round(v) for k, v in medians.items()},
                **ratios,
                "rates": {k: [round(v) for v in vs] for k, vs in rates.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
