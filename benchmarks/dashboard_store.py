"""A store for the dashboard's tests and benchmark: a scenario's events as the sink leaves them.

``seed(..., writer=True)`` writes through the sink's own Writer (the real path: transactions,
rollups, accounts); ``writer=False`` inserts the same documents and the same projection in
bulk (``sink.projections.project`` over every event, then one insert per document), for stores
of millions where the Writer would take many minutes on this machine.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from scenarios import LoadedScenario

CHUNK = 100_000


def events(loaded: LoadedScenario, count: int, run_id: str) -> list[bytes]:
    import numpy as np

    from loadgen.stream import RunStream, plan

    values: list[bytes] = []
    for batch in RunStream(plan(loaded, events=count, run_id=run_id)).batches():
        values += batch.values(np.full(len(batch), int(time.time() * 1000), dtype=np.int64))
    return values


def seed(db: Any, loaded: LoadedScenario, count: int, run_id: str, writer: bool = True) -> int:
    """Store ``count`` events of ``loaded`` as run ``run_id`` in ``db``; returns how many."""
    values = events(loaded, count, run_id)
    if writer:
        from sink.decode import Good
        from sink.writer import Writer

        w = Writer(db)
        w.ensure_indexes()
        for start in range(0, len(values), 5_000):
            good = [Good(orjson.loads(v), 0, 0, 0) for v in values[start : start + 5_000]]
            w.write(good, [("seed", 0)])
        return len(values)
    from sink.projections import project
    from sink.writer import Writer

    Writer(db).ensure_indexes()
    for start in range(0, len(values), CHUNK):
        chunk = [orjson.loads(v) for v in values[start : start + CHUNK]]
        db.transactions.insert_many([{"_id": e["tx_id"], **e} for e in chunk], ordered=False)
    projection = project(orjson.loads(v) for v in values)
    rollups = []
    for key, change in projection.rollups.items():
        doc: dict[str, Any] = {"_id": key, **change.keys, **change.inc}
        for name, value in {**change.low, **change.high}.items():
            if name.startswith("tails."):
                doc.setdefault("tails", {})[name.removeprefix("tails.")] = value
            else:
                doc[name] = value
        rollups.append(doc)
    for start in range(0, len(rollups), CHUNK):
        db.rollups.insert_many(rollups[start : start + CHUNK], ordered=False)
    accounts = [{"_id": a, **s} for a, s in projection.accounts.items()]
    for start in range(0, len(accounts), CHUNK):
        db.accounts.insert_many(accounts[start : start + CHUNK], ordered=False)
    return len(values)
