"""The sink sends the store only queries it can serve by ``_id`` (docs/sink.md, "The queries"):
every filter it sends the growing collections (transactions, accounts, rollups) is on ``_id``
alone, through a first write, a replay of the same batch, a replay after an attempt that died
between the insert and the projections (events left pending), and a batch record finished by
another writer. The local MongoDB-wire server scans the whole collection, under its lock, for any
other shape: this test fails on the retry read the sink used to send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pymongo import MongoClient, monitoring

from bankstream.settings import Settings
from harness.ceiling import payloads
from scenarios import load
from sink.decode import Good
from sink.recompute import differences
from sink.writer import BATCHES, Writer

pytestmark = pytest.mark.integration
GROWING = {"transactions", "accounts", "rollups"}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.filters: list[tuple[str, str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        name = event.command_name
        collection = command.get(name)
        if name in ("find", "count"):
            self.filters.append((name, str(collection), command.get("filter", {})))
        elif name == "aggregate":
            stages = command.get("pipeline", [])
            match = stages[0].get("$match", {}) if stages else {}
            self.filters.append((name, str(collection), match))
        elif name in ("update", "delete"):
            for op in command.get("updates", command.get("deletes", [])):
                self.filters.append((name, str(collection), op["q"]))
        elif name == "findAndModify":
            self.filters.append((name, str(collection), command.get("query", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def by_id_only(query: Any) -> bool:
    """A filter the local server answers through its ``_id`` index: ``_id`` alone, equal to a
    value or ``$in`` a list."""
    if set(query) != {"_id"}:
        return False
    value = query["_id"]
    return not isinstance(value, dict) or set(value) == {"$in"}


@pytest.fixture
def recorded(stack: Settings) -> Iterator[tuple[Any, Recorder]]:
    import uuid

    recorder = Recorder()
    client: MongoClient[Any] = MongoClient(stack.mongo_uri, event_listeners=[recorder])
    name = f"test_queries_{uuid.uuid4().hex[:8]}"
    try:
        yield client[name], recorder
    finally:
        client.drop_database(name)
        client.close()


VALUES: list[bytes] = []


def goods(start: int, stop: int) -> list[Good]:
    """Events ``start`` to ``stop`` of retail-day's first 3,500, decoded as the sink decodes
    them (each call a fresh copy: the writer adds its fields to the events it writes)."""
    if not VALUES:
        VALUES.extend(payloads(load("retail-day", environ={}), 3_500)[1])
    return [Good(orjson.loads(v), 0, i, 0) for i, v in enumerate(VALUES[start:stop], start)]


class Died(Exception):
    pass


def test_every_filter_on_a_growing_collection_is_by_id_alone(recorded: tuple[Any, Recorder]):
    db, recorder = recorded
    writer = Writer(db, writer_id="first")
    writer.ensure_indexes()
    writer.write(goods(0, 2_000), [("t", 0)])
    writer.write(goods(0, 2_000), [("t", 0)])  # replayed: every event already stored

    # an attempt that dies after the insert, before its record: pending events stay behind
    def die(point: str) -> None:
        if point == "after_insert":
            raise Died

    dying = Writer(db, writer_id="dying")
    dying._die = die  # type: ignore[method-assign]
    with pytest.raises(Died):
        dying.write(goods(2_000, 3_000), [("t", 0)])
    # the replay finds them stored but pending, reads them by _id and projects them
    Writer(db, writer_id="next").write(goods(1_500, 3_000), [("t", 0)])

    # a record left half done is finished by another writer (lease 0: at once)
    left = Writer(db, writer_id="left", lease=0.0)

    def after_record(point: str) -> None:
        if point == "after_record":
            raise Died

    left._die = after_record  # type: ignore[method-assign]
    with pytest.raises(Died):
        left.write(goods(3_000, 3_500), [("t", 1)])
    assert db[BATCHES].count_documents({}) == 1
    assert Writer(db, writer_id="heir", lease=0.0).recover([("t", 1)]) == 1

    sent = [(name, coll, query) for name, coll, query in recorder.filters if coll in GROWING]
    assert {coll for _, coll, _ in sent} == GROWING
    wrong = [(name, coll, query) for name, coll, query in sent if not by_id_only(query)]
    assert wrong == [], wrong[:3]
    # and what was written is exact
    assert db.transactions.count_documents({}) == len({orjson.loads(v)["tx_id"] for v in VALUES})
    assert db.transactions.count_documents({"_p": 1}) == 0
    assert differences(db) == []
