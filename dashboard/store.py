"""What the dashboard reads from MongoDB: the sink's rollups, its run summaries and transactions
by ``_id``. Read-only, and never a scan of ``transactions`` on the pages' default views.

Cost: each read is bounded by what it shows (rollups of one run, in the time range shown;
transactions fetched by ``_id``), not by how many transactions the store holds. The local
MongoDB-wire server has no secondary indexes (only ``_id``), so there a filter on the rollups
reads the rollups collection; MongoDB 8 serves the same filters from the sink's indexes
(kind + run + t, kind + run + debits). The one exception is the per-account drill-down (an
account's transactions): an index range on MongoDB 8, a scan of ``transactions`` on the local
server, so it runs only when asked for.

Filters are values in query documents (never text spliced into a query); names that come from
the user are checked against what the store holds.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pymongo.database import Database

from bankstream.events import account_kind

Document = dict[str, Any]
HOUR = dt.timedelta(hours=1)
# how many ids the latest-transactions read asks for at most (a run of a few cells or many)
MOST_IDS = 20_000
# the hourly rollup kinds and the label each is broken down by ("hour": by type and status)
HOURLY = {
    "hour": "type",
    "hour_city": "city",
    "hour_channel": "channel",
    "hour_device": "device",
    "hour_decline": "reason",
    "hour_fraud": "typology",
}


@dataclass(frozen=True)
class Collections:
    transactions: str = "transactions"
    accounts: str = "accounts"
    rollups: str = "rollups"


@dataclass(frozen=True)
class Run:
    run: str
    scenario: str
    count: int
    amount: int
    declined: int
    fraud: int
    first: dt.datetime  # simulated time of its first and last stored event (UTC)
    last: dt.datetime
    tails: dict[str, int]  # cell -> its highest transaction counter stored

    @staticmethod
    def of(doc: Document) -> Run:
        return Run(
            run=str(doc["run"]),
            scenario=str(doc.get("scenario", "")),
            count=int(doc.get("count", 0)),
            amount=int(doc.get("amount", 0)),
            declined=int(doc.get("declined", 0)),
            fraud=int(doc.get("fraud", 0)),
            first=_utc(int(doc.get("first_event_time", 0))),
            last=_utc(int(doc.get("last_event_time", 0))),
            tails={str(k): int(v) for k, v in (doc.get("tails") or {}).items()},
        )


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000.0, dt.UTC)


def _naive(when: dt.datetime) -> dt.datetime:
    """As pymongo returns BSON dates (naive UTC), for comparisons with stored ``t``."""
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


class Store:
    def __init__(
        self,
        db: Database[Document],
        names: Collections | None = None,
        indexed: bool | None = None,
    ) -> None:
        """``indexed``: the server sorts from the sink's indexes (MongoDB); None: ask it (the
        local MongoDB-wire server, a JVM, has only ``_id``)."""
        names = names or Collections()
        self.db = db
        self.transactions = db[names.transactions]
        self.accounts = db[names.accounts]
        self.rollups = db[names.rollups]
        self._indexed = indexed

    @property
    def indexed(self) -> bool:
        if self._indexed is None:
            try:
                status = self.db.client.admin.command("serverStatus")
                self._indexed = status.get("process") != "java"
            except Exception:  # a server that does not say: the reads that work everywhere
                self._indexed = False
        return self._indexed

    # ------------------------------------------------------------------ runs

    def runs(self) -> list[Run]:
        """Every run the sink has stored events of, the latest first."""
        found = [Run.of(d) for d in self.rollups.find({"kind": "run"}, {"_w": 0})]
        return sorted(found, key=lambda r: r.last, reverse=True)

    def run(self, run: str) -> Run | None:
        doc = self.rollups.find_one({"_id": f"run|{run}"}, {"_w": 0})
        return Run.of(doc) if doc else None

    # ------------------------------------------------------------------ rollups

    def hourly(
        self, run: str, start: dt.datetime, end: dt.datetime, minutes: bool = False
    ) -> dict[str, list[Document]]:
        """Every hourly rollup of the run in the range (or the per-minute ones), by kind: one
        read for the whole page (the local server reads the rollups once, not per chart)."""
        span = {"$gte": _naive(start), "$lt": _naive(end)}
        kinds = ["minute"] if minutes else list(HOURLY)
        query: Document = {"run": run, "t": span, "kind": {"$in": kinds}}
        out: dict[str, list[Document]] = {kind: [] for kind in kinds}
        for doc in self.rollups.find(query, {"_w": 0, "_id": 0}):
            out[doc["kind"]].append(doc)
        return out

    def top_customers(self, run: str, n: int = 20) -> pd.DataFrame:
        """The ``n`` customers who moved the most money out (approved debits) in the run."""
        fields = {
            "_id": 0,
            "customer": 1,
            "customer_name": 1,
            "segment": 1,
            "city": 1,
            "count": 1,
            "debits": 1,
            "credits": 1,
            "declined": 1,
        }
        query = {"kind": "customer", "run": run}
        if self.indexed:  # MongoDB: the top n straight from the index kind + run + debits
            cursor = self.rollups.find(query, fields).sort("debits", -1)
            return pd.DataFrame(list(cursor.limit(n)), columns=[c for c in fields if c != "_id"])
        # the local server sorts everything in memory (1.7 s for 100,000 customers): the
        # totals alone, the top n here, then those n documents by _id
        totals = self.rollups.find(
            query,
            {"_id": 0, "customer": 1, "debits": 1, "count": 1},
            batch_size=100_000,
        )
        top = heapq.nlargest(n, totals, key=lambda d: (d.get("debits", 0), d.get("count", 0)))
        ids = [f"customer|{run}|{d['customer']}" for d in top]
        found = {d["customer"]: d for d in self.rollups.find({"_id": {"$in": ids}}, fields)}
        rows = [found[d["customer"]] for d in top if d["customer"] in found]
        return pd.DataFrame(rows, columns=[c for c in fields if c != "_id"])

    # ------------------------------------------------------------------ accounts

    def balance_histogram(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray, int]:
        """(counts, bin edges in cents, accounts) of every checking account's current balance
        (a card account's balance is what its card owes or holds: not mixed in)."""
        balances = np.fromiter(
            (
                d.get("balance", 0)
                for d in self.accounts.find({}, {"_id": 1, "balance": 1})
                if account_kind(str(d["_id"])) == "checking"
            ),
            dtype=np.int64,
        )
        if balances.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
        low, high = np.percentile(balances, [0.5, 99.5])
        if high <= low:
            high = low + 1
        counts, edges = np.histogram(np.clip(balances, low, high), bins=bins, range=(low, high))
        return counts, edges, int(balances.size)

    def account(self, account: str) -> Document | None:
        return self.accounts.find_one({"_id": account})

    def account_history(self, account: str, run: str | None, limit: int = 500) -> pd.DataFrame:
        """The account's last ``limit`` transactions by seq (in the run, when given)."""
        query: Document = {"account": account}
        if run is not None:
            query["run_id"] = run
        docs = list(self.transactions.find(query, {"_p": 0}).sort("seq", -1).limit(limit))
        return _transactions(docs)

    # ------------------------------------------------------------------ transactions

    def latest(self, run: Run, n: int = 50, types: list[str] | None = None) -> pd.DataFrame:
        """The run's ``n`` latest stored transactions by event time (of ``types``), read by
        ``_id``: each cell's ids are ``<cell>-<counter>`` in event-time order, so the latest
        are at the top of each cell's counters. A cell is read further down only while it could
        still hold one of the ``n`` latest; exact, and bounded by ``n`` x cells."""
        cells = run.tails
        if not cells:
            return _transactions([])
        depth = {cell: max(2, math.ceil(2 * n / len(cells))) for cell in cells}
        lowest = {cell: top + 1 for cell, top in cells.items()}  # lowest counter asked for
        found: dict[str, Document] = {}
        asked = 0
        wanted = set(types) if types else None
        while True:
            ids = []
            for cell, top in cells.items():
                stop = max(1, top - depth[cell] + 1)
                ids += [f"{cell}-{c}" for c in range(stop, lowest[cell])]
                lowest[cell] = min(lowest[cell], stop)
            if not ids:
                break
            asked += len(ids)
            for d in self.transactions.find({"_id": {"$in": ids}}, {"_p": 0}):
                if d.get("run_id") == run.run and (wanted is None or d.get("type") in wanted):
                    found[str(d["_id"])] = d
            times = sorted((d["event_time"] for d in found.values()), reverse=True)
            nth = times[n - 1] if len(times) >= n else None
            oldest: dict[str, int] = {}
            for key, d in found.items():
                cell = key.rpartition("-")[0]
                oldest[cell] = min(oldest.get(cell, d["event_time"]), d["event_time"])
            deeper = [
                cell
                for cell in cells
                if lowest[cell] > 1 and (nth is None or oldest.get(cell, nth) >= nth)
            ]
            if not deeper or asked >= MOST_IDS:
                break
            for cell in deeper:
                depth[cell] *= 2
        docs = sorted(found.values(), key=lambda d: d["event_time"], reverse=True)[:n]
        return _transactions(docs)


def by_type(docs: list[Document], types: list[str] | None = None) -> pd.DataFrame:
    """Hour (or minute) x type x status rollups as a table: t, type, status, count, amount."""
    wanted = set(types) if types else None
    rows = [d for d in docs if wanted is None or d.get("type") in wanted]
    frame = pd.DataFrame(rows, columns=["t", "type", "status", "count", "amount"])
    return frame.sort_values(["t", "type", "status"], ignore_index=True)


def breakdown(docs: list[Document], label: str) -> pd.DataFrame:
    """Hourly rollups of one kind summed over their hours, by ``label`` (city, channel,
    device, reason, typology): label, count, amount, declined (and state, region for cities)."""
    columns = [label, "count", "amount", "declined"]
    frame = pd.DataFrame(docs, columns=[*columns, "state", "region"])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    extra = [c for c in ("state", "region") if frame[c].notna().any()]
    grouped = (
        frame.fillna({"declined": 0})
        .groupby([label, *extra], dropna=False)[["count", "amount", "declined"]]
        .sum()
        .reset_index()
    )
    return grouped.sort_values("count", ascending=False, ignore_index=True)


TX_COLUMNS = [
    "event_time",
    "tx_id",
    "account",
    "customer",
    "type",
    "status",
    "decline_reason",
    "amount",
    "balance_after",
    "channel",
    "rail",
    "city",
    "fraud",
    "typology",
    "seq",
]


def _transactions(docs: list[Document]) -> pd.DataFrame:
    frame = pd.DataFrame(docs, columns=TX_COLUMNS)
    frame["event_time"] = pd.to_datetime(frame["event_time"], unit="ms", utc=True)
    return frame
