"""What a batch of newly stored events changes in the projections the dashboard reads. Pure.

- ``accounts``: each account's latest balance, seq and event time (the event with the highest
  seq wins, so an older event replayed later never overwrites a newer one).
- ``rollups``, each of one run (``run`` = the events' ``run_id``): counts and amounts by minute
  and by hour x type x status; by hour x city, x channel and x device (usual or new); declines
  by hour x reason; fraud by hour x typology; per-customer totals (the "top customers"); and one
  summary per run (counts, first and last event time, the last transaction counter of each
  cell, so the dashboard reads the latest transactions by _id). Amounts are of approved events
  (money that moved), in cents, but in the minute and hour x type x status rollups, where each
  status has its own document.

Events are grouped here, so a batch becomes one update per document it touches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MINUTE = 60_000
HOUR = 3_600_000


@dataclass
class Rollup:
    """One rollup document's change: the fields it is created with, and its increments."""

    keys: dict[str, Any]
    inc: dict[str, int] = field(default_factory=dict)
    low: dict[str, int] = field(default_factory=dict)  # $min
    high: dict[str, int] = field(default_factory=dict)  # $max

    def add(self, **amounts: int) -> None:
        for name, value in amounts.items():
            self.inc[name] = self.inc.get(name, 0) + value

    def least(self, name: str, value: int) -> None:
        if value < self.low.get(name, value + 1):
            self.low[name] = value

    def most(self, name: str, value: int) -> None:
        if value > self.high.get(name, value - 1):
            self.high[name] = value

    def update(self) -> dict[str, Any]:
        """The rollup's change as MongoDB update operators (empty ones left out)."""
        out: dict[str, Any] = {"$inc": self.inc, "$setOnInsert": self.keys}
        if self.low:
            out["$min"] = self.low
        if self.high:
            out["$max"] = self.high
        return out


@dataclass
class Projection:
    accounts: dict[str, dict[str, Any]]  # account -> its latest state in this batch
    rollups: dict[str, Rollup]  # rollup _id -> change


def at(ms: int) -> dt.datetime:
    """Epoch milliseconds as a UTC datetime (a BSON date)."""
    return dt.datetime.fromtimestamp(ms / 1000.0, dt.UTC)


def project(events: Iterable[Mapping[str, Any]]) -> Projection:
    accounts: dict[str, dict[str, Any]] = {}
    rollups: dict[str, Rollup] = {}

    def rollup(key: str, **keys: Any) -> Rollup:
        found = rollups.get(key)
        if found is None:
            found = rollups[key] = Rollup(keys)
        return found

    for e in events:
        account, seq = e["account"], e["seq"]
        latest = accounts.get(account)
        if latest is None or seq > latest["last_seq"]:
            accounts[account] = {
                "customer": e["customer"],
                "customer_name": e["customer_name"],
                "segment": e["segment"],
                "city": e["city"],
                "state": e["state"],
                "region": e["region"],
                "balance": e["balance_after"],
                "currency": e["currency"],
                "last_seq": seq,
                "last_event_time": e["event_time"],
                "last_tx": e["tx_id"],
            }
        run = e["run_id"]
        ms = e["event_time"]
        minute, hour = ms - ms % MINUTE, ms - ms % HOUR
        approved = e["status"] == "approved"
        amount = e["amount"]
        moved = amount if approved else 0
        declined = 0 if approved else 1
        kind, status = e["type"], e["status"]
        summary = rollup(f"run|{run}", kind="run", run=run, scenario=e["scenario"])
        summary.add(count=1, amount=moved, declined=declined, fraud=1 if e["fraud"] else 0)
        summary.least("first_event_time", ms)
        summary.most("last_event_time", ms)
        cell, _, counter = str(e["tx_id"]).rpartition("-")
        if counter.isdigit() and cell and "." not in cell and not cell.startswith("$"):
            # the last transaction of each cell: its ids are <cell>-<counter> in event-time
            # order, so the latest transactions are read by _id (no sort, no scan)
            summary.most(f"tails.{cell}", int(counter))
        rollup(
            f"minute|{run}|{minute}|{kind}|{status}",
            kind="minute",
            run=run,
            t=at(minute),
            type=kind,
            status=status,
        ).add(count=1, amount=amount)
        rollup(
            f"hour|{run}|{hour}|{kind}|{status}",
            kind="hour",
            run=run,
            t=at(hour),
            type=kind,
            status=status,
        ).add(count=1, amount=amount)
        rollup(
            f"hour_city|{run}|{hour}|{e['city']}",
            kind="hour_city",
            run=run,
            t=at(hour),
            city=e["city"],
            state=e["state"],
            region=e["region"],
        ).add(count=1, amount=moved, declined=declined)
        rollup(
            f"hour_channel|{run}|{hour}|{e['channel']}",
            kind="hour_channel",
            run=run,
            t=at(hour),
            channel=e["channel"],
        ).add(count=1, amount=moved, declined=declined)
        device = "new" if e["device"].startswith("D-new-") else "usual"
        rollup(
            f"hour_device|{run}|{hour}|{device}",
            kind="hour_device",
            run=run,
            t=at(hour),
            device=device,
        ).add(count=1, amount=moved, declined=declined)
        if not approved:
            reason = e["decline_reason"]
            rollup(
                f"hour_decline|{run}|{hour}|{reason}",
                kind="hour_decline",
                run=run,
                t=at(hour),
                reason=reason,
            ).add(count=1, amount=amount)
        if e["fraud"]:
            typology = e["typology"]
            rollup(
                f"hour_fraud|{run}|{hour}|{typology}",
                kind="hour_fraud",
                run=run,
                t=at(hour),
                typology=typology,
            ).add(count=1, amount=moved, declined=declined)
        debit = e["direction"] == "debit"
        rollup(
            f"customer|{run}|{e['customer']}",
            kind="customer",
            run=run,
            customer=e["customer"],
            customer_name=e["customer_name"],
            segment=e["segment"],
            city=e["city"],
        ).add(
            count=1,
            debits=moved if debit else 0,
            credits=0 if debit else moved,
            declined=declined,
        )
    return Projection(accounts, rollups)
