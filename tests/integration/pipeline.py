"""A pipeline bankstream does not own, for the tests of `run --sink external`: a plain
confluent-kafka consumer that stores each message with pymongo, as someone's own code would.

    python tests/integration/pipeline.py --topic T --group G --target db.coll
        [--drop-every N] [--twice-every M] [--never-write] [--wrap FIELD]

``--drop-every N`` skips every N-th message; ``--twice-every M`` stores every M-th message a
second time under a new ``_id``; ``--never-write`` reads and commits but stores nothing;
``--wrap FIELD`` stores the event under FIELD with an ObjectId ``_id``. Offsets are committed
after each batch is stored. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from confluent_kafka import Consumer
from pymongo import MongoClient, ReplaceOne


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--mongo", default="mongodb://127.0.0.1:27017")
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--drop-every", type=int, default=0)
    p.add_argument("--twice-every", type=int, default=0)
    p.add_argument("--never-write", action="store_true")
    p.add_argument("--wrap")
    p.add_argument("--report", help="write what it dropped and stored twice here (JSON) at exit")
    args = p.parse_args()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    database, _, name = args.target.partition(".")
    collection = MongoClient(args.mongo)[database][name]
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,  # the run creates the topic
        }
    )
    consumer.subscribe([args.topic])
    seen = 0
    dropped: set[str] = set()
    doubled: set[str] = set()
    stored: set[str] = set()
    while not stopping:
        messages = [
            m for m in consumer.consume(num_messages=2000, timeout=0.2) if m.error() is None
        ]
        writes = []
        for message in messages:
            seen += 1
            event = json.loads(message.value())
            if args.drop_every and seen % args.drop_every == 0:
                dropped.add(event["tx_id"])
                continue
            stored.add(event["tx_id"])
            if args.wrap:
                writes.append(
                    ReplaceOne(
                        {f"{args.wrap}.tx_id": event["tx_id"]}, {args.wrap: event}, upsert=True
                    )
                )
            else:
                writes.append(ReplaceOne({"_id": event["tx_id"]}, event, upsert=True))
            if args.twice_every and seen % args.twice_every == 0:
                writes.append(ReplaceOne({"_id": f"copy-{event['tx_id']}"}, event, upsert=True))
                doubled.add(event["tx_id"])
        if writes and not args.never_write:
            collection.bulk_write(writes, ordered=False)
        if messages:
            consumer.commit(asynchronous=False)
    consumer.close()
    if args.report:
        with open(args.report, "w") as out:
            json.dump({"lost": sorted(dropped - stored), "doubled": sorted(doubled)}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
