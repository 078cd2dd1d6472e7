"""Every query shape the sink, the harness and the dashboard send, timed against the store as the
``transactions`` collection grows (docs/sink.md, "The queries"):

    python -m benchmarks.query_shapes --sizes 100000,500000 --repeat 5

For each size, a scratch database gets that many events of retail-day as the sink stores them
(with the sink's indexes); then each shape is timed (median of ``--repeat``) and shown against a
``find_one`` by ``_id`` in the same database. A shape served by an index (by ``_id`` alone on the
MongoDB-wire server) takes about as long at every size; a scan grows with the collection. The
shape the sink's retry path used to send (``_id`` in a list and another field) is timed with
200 ids only: with a batch's 5,000 it takes minutes at 500,000 documents.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from pymongo import UpdateOne

from bankstream import mongo
from bankstream.settings import load_settings
from benchmarks.sink_vs_ceiling import documents
from sink.writer import Writer

Shape = tuple[str, str, Callable[[Any, list[dict[str, Any]]], object]]


def shapes() -> list[Shape]:
    """(who, shape, call(db, docs)) of every query the pipeline sends a growing collection."""

    def ids(docs: list[dict[str, Any]], n: int) -> list[str]:
        step = max(1, len(docs) // n)
        return [d["_id"] for d in docs[::step][:n]]

    return [
        (
            "baseline",
            "find_one {_id}",
            lambda db, d: db.transactions.find_one({"_id": d[-1]["_id"]}),
        ),
        (
            "sink",
            "find {_id: {$in: 5000}} {_p: 1} (retry: pending)",
            lambda db, d: list(db.transactions.find({"_id": {"$in": ids(d, 5000)}}, {"_p": 1})),
        ),
        (
            "sink (before)",
            "find {_id: {$in: 200}, _p: 1}",
            lambda db, d: list(db.transactions.find({"_id": {"$in": ids(d, 200)}, "_p": 1})),
        ),
        (
            "sink",
            "bulk update_one {_id} x5000 ($unset _p)",
            lambda db, d: db.transactions.bulk_write(
                [UpdateOne({"_id": i}, {"$unset": {"_p": ""}}) for i in ids(d, 5000)],
                ordered=False,
            ),
        ),
        (
            "sink",
            "insert_many 5000 (duplicates: 11000)",
            lambda db, d: _insert_again(db, d[:5000]),
        ),
        (
            "dashboard",
            "find {_id: {$in: 500}} (latest)",
            lambda db, d: list(db.transactions.find({"_id": {"$in": ids(d, 500)}}, {"_p": 0})),
        ),
        (
            "dashboard",
            "find {account} sort seq limit 500 (history)",
            lambda db, d: list(
                db.transactions.find({"account": d[0]["account"]}).sort("seq", -1).limit(500)
            ),
        ),
        (
            "harness",
            "find_one {run_id: {$ne}} (others in the store?)",
            lambda db, d: db.transactions.find_one({"run_id": {"$ne": "nothing"}}, {"_id": 1}),
        ),
        (
            "harness",
            "find {run_id} (verify: the whole run)",
            lambda db, d: sum(
                1 for _ in db.transactions.find({"run_id": d[0]["run_id"]}, batch_size=10_000)
            ),
        ),
    ]


def _insert_again(db: Any, docs: list[dict[str, Any]]) -> None:
    from pymongo.errors import BulkWriteError

    with contextlib.suppress(BulkWriteError):  # every one a duplicate: what is timed
        db.transactions.insert_many([dict(x) for x in docs], ordered=False)


def timed(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,500000", help="documents, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scenario", default="retail-day")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = load_settings()
    docs = documents(args.scenario, max(sizes))
    table: dict[str, dict[int, float]] = {}
    with mongo.client(settings) as client:
        for size in sizes:
            name = f"bench_shapes_{uuid.uuid4().hex[:8]}"
            db = client[name]
            try:
                Writer(db).ensure_indexes()
                part = docs[:size]
                for start in range(0, size, 10_000):
                    db.transactions.insert_many(
                        [dict(x) for x in part[start : start + 10_000]], ordered=False
                    )
                for who, shape, call in shapes():
                    seconds = timed(functools.partial(call, db, part), args.repeat)
                    table.setdefault(f"{who}: {shape}", {})[size] = seconds
                    print(f"  {size:>9,} {who}: {shape}: {seconds * 1000:,.1f} ms", flush=True)
            finally:
                client.drop_database(name)
    base = table["baseline: find_one {_id}"]
    print(f"\n{'shape':<62}" + "".join(f"{s:>12,}" for s in sizes) + "   x by _id  grows")
    for key, by_size in table.items():
        cells = "".join(f"{by_size[s] * 1000:>10,.1f}ms" for s in sizes)
        ratio = by_size[sizes[-1]] / base[sizes[-1]]
        grows = by_size[sizes[-1]] / by_size[sizes[0]] if len(sizes) > 1 else float("nan")
        print(f"{key:<62}{cells}{ratio:>11,.0f}{grows:>7.1f}x")


if __name__ == "__main__":
    main()
