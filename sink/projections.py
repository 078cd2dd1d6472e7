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
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

MINUTE = 60_000
HOUR = 3_600_000


_NONE: Mapping[str, int] = MappingProxyType({})


class Rollup:
    """One rollup document's change: the fields it is created with, and its increments (a
    plain class with slots: a batch makes several a event, and a dataclass's default
    factories cost more than the rest of the rollup)."""

    __slots__ = ("high", "inc", "keys", "low")

    def __init__(
        self,
        keys: dict[str, Any],
        inc: dict[str, int],
        low: Mapping[str, int] = _NONE,  # $min
        high: Mapping[str, int] = _NONE,  # $max
    ) -> None:
        self.keys, self.inc, self.low, self.high = keys, inc, low, high

    def update(self) -> dict[str, Any]:
        """The rollup's change as MongoDB update operators (empty ones left out)."""
        out: dict[str, Any] = {"$inc": self.inc, "$setOnInsert": self.keys}
        if self.low:
            out["$min"] = dict(self.low)
        if self.high:
            out["$max"] = dict(self.high)
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
    get = rollups.get
    # each run's summary, kept in plain locals while the batch is walked (the hot path)
    summaries: dict[str, list[Any]] = {}  # run -> [count, moved, declined, fraud, first, last]
    tails: dict[str, dict[str, int]] = {}  # run -> cell -> highest transaction counter
    hours: dict[int, dt.datetime] = {}

    def at_hour(ms: int) -> dt.datetime:
        when = hours.get(ms)
        if when is None:
            when = hours[ms] = at(ms)
        return when

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
        fraud = e["fraud"]
        kind, status = e["type"], e["status"]

        summary = summaries.get(run)
        if summary is None:
            summary = summaries[run] = [0, 0, 0, 0, ms, ms, e["scenario"]]
            tails[run] = {}
        summary[0] += 1
        summary[1] += moved
        summary[2] += declined
        if fraud:
            summary[3] += 1
        if ms < summary[4]:
            summary[4] = ms
        if ms > summary[5]:
            summary[5] = ms
        cell, _, counter = str(e["tx_id"]).rpartition("-")
        if counter.isdigit() and cell and "." not in cell and not cell.startswith("$"):
            # the last transaction of each cell: its ids are <cell>-<counter> in event-time
            # order, so the latest transactions are read by _id (no sort, no scan)
            number = int(counter)
            cells = tails[run]
            if number > cells.get(cell, 0):
                cells[cell] = number

        key = f"minute|{run}|{minute}|{kind}|{status}"
        r = get(key)
        if r is None:
            r = rollups[key] = Rollup(
                {"kind": "minute", "run": run, "t": at(minute), "type": kind, "status": status},
                {"count": 0, "amount": 0},
            )
        inc = r.inc
        inc["count"] += 1
        inc["amount"] += amount

        when = at_hour(hour)
        key = f"hour|{run}|{hour}|{kind}|{status}"
        r = get(key)
        if r is None:
            r = rollups[key] = Rollup(
                {"kind": "hour", "run": run, "t": when, "type": kind, "status": status},
                {"count": 0, "amount": 0},
            )
        inc = r.inc
        inc["count"] += 1
        inc["amount"] += amount

        city = e["city"]
        key = f"hour_city|{run}|{hour}|{city}"
        r = get(key)
        if r is None:
            r = rollups[key] = Rollup(
                {
                    "kind": "hour_city",
                    "run": run,
                    "t": when,
                    "city": city,
                    "state": e["state"],
                    "region": e["region"],
                },
                {"count": 0, "amount": 0, "declined": 0},
            )
        inc = r.inc
        inc["count"] += 1
        inc["amount"] += moved
        inc["declined"] += declined

        channel = e["channel"]
        key = f"hour_channel|{run}|{hour}|{channel}"
        r = get(key)
        if r is None:
            r = rollups[key] = Rollup(
                {"kind": "hour_channel", "run": run, "t": when, "channel": channel},
                {"count": 0, "amount": 0, "declined": 0},
            )
        inc = r.inc
        inc["count"] += 1
        inc["amount"] += moved
        inc["declined"] += declined

        device = "new" if e["device"].startswith("D-new-") else "usual"
        key = f"hour_device|{run}|{hour}|{device}"
        r = get(key)
        if r is None:
            r = rollups[key] = Rollup(
                {"kind": "hour_device", "run": run, "t": when, "device": device},
                {"count": 0, "amount": 0, "declined": 0},
            )
        inc = r.inc
        inc["count"] += 1
        inc["amount"] += moved
        inc["declined"] += declined

        if not approved:
            reason = e["decline_reason"]
            key = f"hour_decline|{run}|{hour}|{reason}"
            r = get(key)
            if r is None:
                r = rollups[key] = Rollup(
                    {"kind": "hour_decline", "run": run, "t": when, "reason": reason},
                    {"count": 0, "amount": 0},
                )
            inc = r.inc
            inc["count"] += 1
            inc["amount"] += amount
        if fraud:
            typology = e["typology"]
            key = f"hour_fraud|{run}|{hour}|{typology}"
            r = get(key)
            if r is None:
                r = rollups[key] = Rollup(
                    {"kind": "hour_fraud", "run": run, "t": when, "typology": typology},
                    {"count": 0, "amount": 0, "declined": 0},
                )
            inc = r.inc
            inc["count"] += 1
            inc["amount"] += moved
            inc["declined"] += declined

        customer = e["customer"]
        key = f"customer|{run}|{customer}"
        r = get(key)
        if r is None:
            r = rollups[key] = Rollup(
                {
                    "kind": "customer",
                    "run": run,
                    "customer": customer,
                    "customer_name": e["customer_name"],
                    "segment": e["segment"],
                    "city": city,
                },
                {"count": 0, "debits": 0, "credits": 0, "declined": 0},
            )
        inc = r.inc
        inc["count"] += 1
        if e["direction"] == "debit":
            inc["debits"] += moved
        else:
            inc["credits"] += moved
        inc["declined"] += declined

    for run, (count, moved, declined, fraud, first, last, scenario) in summaries.items():
        high: dict[str, int] = {"last_event_time": last}
        high.update({f"tails.{cell}": n for cell, n in tails[run].items()})
        rollups[f"run|{run}"] = Rollup(
            {"kind": "run", "run": run, "scenario": scenario},
            {"count": count, "amount": moved, "declined": declined, "fraud": fraud},
            {"first_event_time": first},
            high,
        )
    return Projection(accounts, rollups)
