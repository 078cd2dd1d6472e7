"""The sink as users run it against its ceiling, side by side on one store, alternating:

    python -m benchmarks.sink_vs_ceiling --events 50000 --batch-size 5000 --pairs 3

The events are produced once to a fresh topic (``bankstream produce --rate max``). Then, in
turns, each into a fresh database:

- ceiling: raw pymongo ``insert_many(ordered=False)`` of the same documents (decoded before the
  clock starts), in batches of the same size, into a collection with the sink's indexes;
- transactions: ``bankstream sink --no-projections`` reading the topic with a new group;
- projections: ``bankstream sink`` with every projection on.

A sink's figure is its own: events written from its first message read to its last write
acknowledged (start-up and the idle wait excluded). Medians and pair-by-pair ratios; ``--processes``
gives the sink's processes (the ceiling is one client).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from bankstream import kafka, mongo
from bankstream.settings import Settings, load_settings
from harness.ceiling import documents as ceiling_documents
from harness.ceiling import mongo_ceiling, payloads
from scenarios import load

ROOT = Path(__file__).resolve().parent.parent


def documents(scenario: str, events: int) -> list[dict[str, Any]]:
    """The events the producer sends (the same ids and fields), as the sink stores them."""
    return ceiling_documents(payloads(load(scenario, environ={}), events)[1])


def ceiling(db: Any, items: list[dict[str, Any]], size: int) -> float:
    return float(mongo_ceiling(db, items, size)["rate"])


def bankstream(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bankstream", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        msg = f"bankstream {args[0]} failed: {done.stderr.strip()[-500:]}"
        raise SystemExit(msg)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def sink(topic: str, database: str, size: int, processes: int, projections: bool) -> float:
    args = ["sink", "--topic", topic, "--group", f"bench-{uuid.uuid4().hex[:8]}"]
    args += ["--batch-size", str(size), "--processes", str(processes), "--until-idle", "2s"]
    args += ["--metrics-port", "0", "--json"] + ([] if projections else ["--no-projections"])
    result = bankstream(*args, env={**os.environ, "BANKSTREAM_MONGO_DATABASE": database})
    return float(result["events_per_second"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sink_vs_ceiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", default="retail-day")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=1, help="sink processes (1)")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    settings: Settings = load_settings()
    topic = f"bench-sink-{uuid.uuid4().hex[:8]}"
    bankstream(
        *("produce", args.scenario, "--rate", "max", "--events", str(args.events)),
        *("--topic", topic, "--metrics-port", "0", "--json", "--results", "/tmp"),
    )
    items = documents(args.scenario, args.events)
    rates: dict[str, list[float]] = {"ceiling": [], "transactions": [], "projections": []}
    try:
        with mongo.client(settings) as client:
            for _ in range(args.pairs):
                for name in rates:
                    database = f"bench_sink_{uuid.uuid4().hex[:8]}"
                    try:
                        if name == "ceiling":
                            rate = ceiling(client[database], items, args.batch_size)
                        else:
                            projections = name == "projections"
                            rate = sink(
                                topic, database, args.batch_size, args.processes, projections
                            )
                    finally:
                        client.drop_database(database)
                    rates[name].append(rate)
    finally:
        kafka.delete_topic(kafka.admin_client(settings), topic)
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
                "processes": args.processes,
                **{f"{k}_median": round(v) for k, v in medians.items()},
                **ratios,
                "rates": {k: [round(v) for v in vs] for k, vs in rates.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
