"""Writing a batch to MongoDB so that each transaction is stored once and each projection counts
each transaction once, whatever is replayed and wherever a process dies (docs/sink.md).

One batch, in order:

1. insert its events into ``transactions`` (``_id`` = tx id, unordered), each tagged with the
   batch's token (``_p``: ``<writer>:<batch number>``, the id its batch record will have); a
   duplicate key (11000) means "already there";
2. the events to project: those inserted now, and those already there whose token is not done
   (an earlier attempt stored them and died before projecting them);
3. a batch record in ``sink_batches``: the projections' changes, this writer's id and batch
   number, the partitions, the ids, and the ids of step 2's second kind (one document: written
   whole or not at all);
4. tag those second-kind events with this batch's token; apply the changes: each rollup
   document is changed only if it has not seen this writer's batch number yet (``_w.<writer>``
   < number, set in the same update); each account only by a newer seq;
5. mark the token done (one document in ``sink_done``); 6. delete the record. Then the offsets
   are stored.

A stored event is projected exactly when its token is done: one small insert a batch, where
clearing a mark on each event was an update a stored document. A process that dies after 3
leaves the record; whoever gets its partitions next finishes it (``recover``) before reading
them, and the changes it already made are skipped by their guard. A process that dies before 3
leaves events whose token is never done, which its successor projects when they come again.
Only standard update operators (``$inc``, ``$set``, ``$setOnInsert``, upserts): no
multi-document transactions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from bankstream.mongo import DUPLICATE_KEY, Document
from sink.decode import Good
from sink.projections import project

BATCHES = "sink_batches"  # the batch records
DONE = "sink_done"  # the tokens of the batches whose projections are applied
PENDING = "_p"  # a stored event's token: its batch's record id (done, or pending)
GUARDS = "_w"
MOST_PER_RECORD = 10_000  # events per batch record (its document stays far below 16 MB)
LEASE = 20.0  # seconds a batch record is its finisher's before another may take it over


def done_tokens(done: Any, tokens: Iterable[Any]) -> set[str]:
    """Which of ``tokens`` (stored events' ``_p``) are marked done in ``done`` (``sink_done``),
    read by ``_id`` alone; an event stored before tokens (``_p: 1``) is never among them."""
    named = list({t for t in tokens if isinstance(t, str)})
    return {d["_id"] for d in done.find({"_id": {"$in": named}})} if named else set()


class StoreError(Exception):
    """A write the store refused for a reason other than a duplicate key."""


@dataclass
class Written:
    inserted: int  # new transactions
    duplicates: int  # already stored
    projected: int  # events whose projections were applied
    sent: list[int | None]  # the intended send times of the events inserted now (for latency)


def _with_id(good: Good) -> dict[str, Any]:
    """A decoded event as its document: ``_id`` is the tx id (pymongo writes it first)."""
    event = good.event
    assert event is not None  # only the fast path has none, and it made its document
    event["_id"] = event["tx_id"]
    return event


def _duplicates_only(exc: BulkWriteError, what: str) -> set[int]:
    """The indexes of the operations a bulk write refused as duplicate keys; any other error
    (a write error or a write concern error) is a StoreError naming ``what``."""
    duplicates, others = set(), []
    for error in exc.details.get("writeErrors", []):
        if error.get("code") == DUPLICATE_KEY:
            duplicates.add(int(error["index"]))
        else:
            others.append(error)
    others += exc.details.get("writeConcernErrors") or []
    if others:
        first = others[0]
        msg = f"{what}: {first.get('errmsg', first)} (code {first.get('code')})"
        raise StoreError(msg) from None
    return duplicates


class Writer:
    def __init__(
        self,
        db: Database[Document],
        transactions: str = "transactions",
        accounts: str = "accounts",
        rollups: str = "rollups",
        projections: bool = True,
        writer_id: str | None = None,
        lease: float = LEASE,
    ) -> None:
        self.db = db
        self.lease = lease  # seconds a batch record is this writer's before another may take it
        self.transactions = db[transactions]
        self.accounts = db[accounts]
        self.rollups = db[rollups]
        self.batches = db[BATCHES]
        self.done = db[DONE]
        self.projections = projections
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self.counter = int(time.time() * 1000) * 1000  # increasing across restarts too
        self.open: list[str] = []  # records of this writer not finished (a failed attempt)
        self.last_seq: dict[str, int] = {}  # account -> the last seq written
        self.fault: str | None = None  # tests: die at "before_write", "after_insert", ...

    # ------------------------------------------------------------------ setup

    def ensure_indexes(self) -> None:
        """The indexes the sink, the verifier and the dashboard use, created idempotently."""
        self.transactions.create_index([("account", 1), ("event_time", 1)])
        self.transactions.create_index([("event_time", 1)])
        self.transactions.create_index([("type", 1), ("event_time", 1)])
        self.transactions.create_index([("run_id", 1)])
        self.rollups.create_index([("kind", 1), ("run", 1), ("t", 1)])
        self.rollups.create_index([("kind", 1), ("run", 1), ("debits", -1)])
        self.accounts.create_index([("customer", 1)])
        self.batches.create_index([("partitions", 1)])

    # ------------------------------------------------------------------ a batch

    def write(self, goods: Sequence[Good], partitions: Iterable[tuple[str, int]]) -> Written:
        """Store ``goods`` (from ``partitions``) and project them, exactly once. On an error the
        same batch may be written again: what was done is not done twice."""
        self._finish_open()
        keys = sorted({f"{t}:{p}" for t, p in partitions})
        total = Written(0, 0, 0, [])
        for start in range(0, len(goods), MOST_PER_RECORD):
            part = self._write(goods[start : start + MOST_PER_RECORD], keys)
            total.inserted += part.inserted
            total.duplicates += part.duplicates
            total.projected += part.projected
            total.sent += part.sent
        return total

    def _write(self, goods: Sequence[Good], partitions: list[str]) -> Written:
        self._die("before_write")
        if not self.projections:
            return self._insert_only(goods)
        # the decoded events are the documents (pymongo writes _id first), tagged with the
        # token of this batch: pending until it is done
        self.counter += 1
        token = f"{self.writer_id}:{self.counter}"
        documents = [_with_id(g) for g in goods]
        for document in documents:
            document[PENDING] = token
        duplicates = self._insert(documents)
        new = [d for i, d in enumerate(documents) if i not in duplicates]
        sent = [d["send_time"] for d in new]
        # stored by an earlier attempt that died before projecting them (not a second copy of
        # an event inserted just now: injected duplicates can share a batch)
        inserted_now = {d["_id"] for d in new}
        again = list({documents[i]["_id"] for i in duplicates} - inserted_now)
        pending = self._still_pending(again)
        events = new + pending
        if not events:
            return Written(len(new), len(duplicates), 0, sent)
        record = self._record(token, events, partitions, [e["_id"] for e in pending])
        # open before it is sent: an insert that timed out may still have landed, and the next
        # attempt must finish that record rather than project the same events in a new one
        self.open.append(record["_id"])
        self.batches.insert_one(record)
        self._die("after_record")
        self._finish(record, fresh=True)
        return Written(len(new), len(duplicates), len(events), sent)

    def _still_pending(self, ids: list[str]) -> list[dict[str, Any]]:
        """Of the transactions ``ids`` (already stored), those whose token is not done, whole
        (an event stored before tokens, ``_p: 1``, is pending too; one without ``_p`` is done).

        Read by ``_id`` alone, the token checked here: a filter on a list of ``_id``s and any
        other field makes the MongoDB-wire server compare every stored document with every id,
        under the collection's lock (minutes on a few hundred thousand documents, every other
        client's write waiting); by ``_id`` alone it uses its index (docs/sink.md, the queries).
        Usually none is pending: only their ids and tokens are read, and the whole documents of
        those that are."""
        if not ids:
            return []
        tokens = {
            d["_id"]: d[PENDING]
            for d in self.transactions.find({"_id": {"$in": ids}}, {PENDING: 1})
            if PENDING in d
        }
        if not tokens:
            return []
        done = done_tokens(self.done, tokens.values())
        marked = [i for i, t in tokens.items() if t not in done]
        if not marked:
            return []
        found = self.transactions.find({"_id": {"$in": marked}})
        return [d for d in found if PENDING in d and d[PENDING] not in done]

    def _insert_only(self, goods: Sequence[Good]) -> Written:
        """No projections: the transactions, nothing to wait for. The fast path's documents
        are stored as they are (BSON already), the others as their events' dicts."""
        documents: list[Any] = [
            _with_id(g) if g.document is None else RawBSONDocument(g.document) for g in goods
        ]
        duplicates = self._insert(documents)
        sent = [g.sent() for i, g in enumerate(goods) if i not in duplicates]
        return Written(len(goods) - len(duplicates), len(duplicates), 0, sent)

    def _insert(self, documents: list[Any]) -> set[int]:
        """Insert, unordered; the indexes of those already stored."""
        duplicates: set[int] = set()
        if documents:
            try:
                self.transactions.insert_many(documents, ordered=False)
            except BulkWriteError as exc:
                duplicates = _duplicates_only(exc, "transactions")
        self._die("after_insert")
        return duplicates

    def _record(
        self, token: str, events: list[dict[str, Any]], partitions: list[str], retag: list[str]
    ) -> dict[str, Any]:
        """The batch record of ``events``; its id is the batch's token."""
        projection = project(events)
        return {
            "_id": token,
            "writer": self.writer_id,
            "counter": self.counter,
            "partitions": partitions,
            "ids": [e["_id"] for e in events],
            "retag": retag,  # stored under an earlier token that is not done: now this one's
            "accounts": [
                {"_id": account, **state} for account, state in projection.accounts.items()
            ],
            "rollups": [
                {"_id": key, "update": change.update()}
                for key, change in projection.rollups.items()
            ],
            "created": dt.datetime.now(dt.UTC),
            # who finishes it: its writer, or (once the lease is out) whoever recovers it
            "owner": self.writer_id,
            "lease": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.lease),
        }

    def _finish(self, record: dict[str, Any], fresh: bool = False) -> None:
        """Apply a batch record's changes (each at most once), mark its token done, delete it.
        Only the holder of the record's lease does this: its writer, or the one process that
        claimed it (``recover``). ``fresh``: its writer just made it, so no change of it was
        applied yet."""
        writer, counter = record["writer"], record["counter"]
        # its events stored under an earlier token (never done) are this batch's now, before
        # any change is applied: once this token is done, they are projected
        self._retag(record.get("retag", []), record["_id"])
        guard = f"{GUARDS}.{writer}"
        seen: set[str] = set()
        if not fresh:
            # which rollups already took this batch: read first, then update by _id alone (the
            # MongoDB-wire server scans the whole collection for a filter on _id and another
            # field; MongoDB does not). Only this record's lease holder writes these guards.
            keys = [r["_id"] for r in record["rollups"]]
            seen = {
                d["_id"]
                for d in self.rollups.find({"_id": {"$in": keys}}, {guard: 1})
                if d.get(GUARDS, {}).get(writer, -1) >= counter
            }
        updates = [
            UpdateOne(
                {"_id": r["_id"]},
                {**r["update"], "$set": {guard: counter}},
                upsert=True,
            )
            for r in record["rollups"]
            if r["_id"] not in seen
        ]
        self._bulk(self.rollups, updates, "rollups")
        self._die("after_rollups")
        self._accounts(record["accounts"])
        self._die("after_projections")
        if "retag" not in record:  # a record of a sink before tokens: its events marked _p: 1
            self._clear_pending(record["ids"])
        self._mark_done(record["_id"])
        self.batches.delete_one({"_id": record["_id"]})
        if record["_id"] in self.open:
            self.open.remove(record["_id"])

    def _accounts(self, states: list[dict[str, Any]]) -> None:
        """Each account to its state of the highest seq: a stored newer one stays. The last seq
        written is remembered (one writer per partition, so per account); unknown accounts'
        are read once."""
        known = self.last_seq
        unknown = [a["_id"] for a in states if a["_id"] not in known]
        if unknown:
            for d in self.accounts.find({"_id": {"$in": unknown}}, {"last_seq": 1}):
                known[d["_id"]] = d.get("last_seq", 0)
        newer = [a for a in states if known.get(a["_id"], 0) < a["last_seq"]]
        self._bulk(
            self.accounts,
            [
                UpdateOne(
                    {"_id": a["_id"]},
                    {"$set": {k: v for k, v in a.items() if k != "_id"}},
                    upsert=True,
                )
                for a in newer
            ],
            "accounts",
        )
        for a in newer:
            known[a["_id"]] = a["last_seq"]
        if len(known) > 2_000_000:
            known.clear()

    def forget_accounts(self) -> None:
        """Partitions moved: what this writer knew of accounts' last seq may be stale."""
        self.last_seq.clear()

    def _retag(self, ids: list[str], token: str) -> None:
        """These stored events now belong to the batch ``token`` (one update by _id each)."""
        if ids:
            self.transactions.bulk_write(
                [UpdateOne({"_id": i}, {"$set": {PENDING: token}}) for i in ids], ordered=False
            )

    def _mark_done(self, token: str) -> None:
        """The batch's projections are applied: its events are no longer pending."""
        # (done already: a record finished twice, its writer having died after this)
        with contextlib.suppress(DuplicateKeyError):
            self.done.insert_one({"_id": token, "at": dt.datetime.now(dt.UTC)})

    def _clear_pending(self, ids: list[str]) -> None:
        """A record of a sink before tokens: its events' ``_p: 1`` cleared, one update by _id
        each (a filter on a list of _ids is slow on the MongoDB-wire server)."""
        if ids:
            self.transactions.bulk_write(
                [UpdateOne({"_id": i}, {"$unset": {PENDING: ""}}) for i in ids], ordered=False
            )

    @staticmethod
    def _bulk(collection: Any, updates: list[UpdateOne], what: str) -> None:
        """Unordered upserts; a duplicate key means the guard held (already applied, or a newer
        state): anything else is an error."""
        if not updates:
            return
        try:
            collection.bulk_write(updates, ordered=False)
        except BulkWriteError as exc:
            _duplicates_only(exc, what)

    def _finish_open(self) -> None:
        for record_id in list(self.open):
            record = self._claim(record_id)
            if record is None:
                self.open.remove(record_id)
            else:
                self._finish(record)

    def _claim(self, record_id: str) -> dict[str, Any] | None:
        """The record, once this process holds its lease (renewed when it holds it already);
        None when it is gone. Another holder's lease is waited out (it died, or is finishing):
        even a writer's own record, when another process took it over while it was away."""
        while True:
            now = dt.datetime.now(dt.UTC)
            lease = now + dt.timedelta(seconds=self.lease)
            free = {"$or": [{"lease": {"$lt": now}}, {"owner": self.writer_id}]}
            claimed = self.batches.find_one_and_update(
                {"_id": record_id, **free},
                {"$set": {"lease": lease, "owner": self.writer_id}},
                return_document=True,
            )
            if claimed is not None:
                return claimed
            if self.batches.count_documents({"_id": record_id}) == 0:
                return None
            time.sleep(0.5)

    def recover(self, partitions: Iterable[tuple[str, int]]) -> int:
        """Finish every batch record that touches ``partitions`` (a process that held them died
        mid-batch): before their messages are read again, waiting out a lease still held.
        Returns how many were finished."""
        keys = [f"{t}:{p}" for t, p in partitions]
        if not keys:
            return 0
        finished = 0
        for found in list(self.batches.find({"partitions": {"$in": keys}}, {"_id": 1})):
            record = self._claim(found["_id"])
            if record is not None:
                self._finish(record)
                finished += 1
        return finished

    def _die(self, point: str) -> None:
        """Tests only: end the process abruptly at ``point`` (as kill -9 would)."""
        if self.fault == point:
            import os

            os._exit(137)
