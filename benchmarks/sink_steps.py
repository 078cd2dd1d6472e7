"""Where the sink's time goes with every projection on: each step of a batch write, in µs per
event, against the configured MongoDB (no Kafka: the events are the engine's, decoded once):

    python -m benchmarks.sink_steps --events 50000 --batch-size 5000

The steps are those of ``sink/writer.py``: the insert (with the pending mark), the projection's
computation, the batch record (built, inserted, deleted), the rollups' and the accounts' upserts
(the accounts' read of their last seq included in ``accounts (all)``), clearing the pending
marks. Beside them: the same events written with ``projections=False`` (the transactions-only
path), and the number of account and rollup documents the events touch, which is what the
projections' upserts cost in the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from bankstream import mongo
from bankstream.settings import load_settings
from benchmarks.sink_vs_ceiling import documents
from sink import writer as writers
from sink.decode import Good


def _goods(items: list[dict[str, Any]]) -> list[Good]:
    return [Good(dict(item), 0, offset, 0) for offset, item in enumerate(items)]


def _timed(spent: dict[str, float], name: str, call: Callable[..., Any]) -> Any:
    def inner(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - began

    return inner


def steps(db: Any, items: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """One pass of the writer with every projection on, each step timed."""
    writer = writers.Writer(db)
    writer.ensure_indexes()
    spent: dict[str, float] = collections.defaultdict(float)
    writer._insert = _timed(spent, "insert and mark", writer._insert)  # type: ignore[method-assign]
    writer._record = _timed(spent, "record: build", writer._record)  # type: ignore[method-assign]
    writer.batches.insert_one = _timed(spent, "record: insert", writer.batches.insert_one)  # type: ignore[method-assign]
    writer.batches.delete_one = _timed(spent, "record: delete", writer.batches.delete_one)  # type: ignore[method-assign]
    writer._accounts = _timed(spent, "accounts (all)", writer._accounts)  # type: ignore[method-assign]
    writer._clear_pending = _timed(spent, "clear pending", writer._clear_pending)  # type: ignore[method-assign]
    # the projection's computation, inside "record: build" (the writer's module's own name)
    compute = vars(writers)["project"]
    vars(writers)["project"] = _timed(spent, "compute", compute)
    bulk = writers.Writer._bulk

    def timed_bulk(collection: Any, updates: list[Any], what: str) -> None:
        began = time.perf_counter()
        bulk(collection, updates, what)
        spent[f"{what}: upserts"] += time.perf_counter() - began

    writer._bulk = timed_bulk  # type: ignore[method-assign]
    goods = _goods(items)
    began = time.perf_counter()
    try:
        for start in range(0, len(goods), batch):
            writer.write(goods[start : start + batch], [("bench", 0)])
    finally:
        vars(writers)["project"] = compute
    total = time.perf_counter() - began
    n = len(goods)
    return {
        "events": n,
        "rate": round(n / total),
        "us_per_event": round(total / n * 1e6, 1),
        "steps_us_per_event": {
            k: round(v / n * 1e6, 1) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
        },
        "account_documents": db.accounts.count_documents({}),
        "rollup_documents": db.rollups.count_documents({}),
    }


def transactions_only(db: Any, items: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    writer = writers.Writer(db, projections=False)
    writer.ensure_indexes()
    goods = _goods(items)
    began = time.perf_counter()
    for start in range(0, len(goods), batch):
        writer.write(goods[start : start + batch], [("bench", 0)])
    total = time.perf_counter() - began
    return {"rate": round(len(goods) / total), "us_per_event": round(total / len(goods) * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sink_steps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", default="retail-day")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args(argv)
    items = documents(args.scenario, args.events)
    settings = load_settings()
    figures: dict[str, Any] = {"scenario": args.scenario, "batch_size": args.batch_size}
    with mongo.client(settings) as client:
        for name, measure in (("projections", steps), ("transactions_only", transactions_only)):
            database = f"bench_steps_{uuid.uuid4().hex[:8]}"
            try:
                figures[name] = measure(client[database], items, args.batch_size)
            finally:
                client.drop_database(database)
    figures["ratio"] = round(
        figures["projections"]["rate"] / figures["transactions_only"]["rate"], 3
    )
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
