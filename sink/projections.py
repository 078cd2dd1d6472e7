"""What a batch of newly stored events changes in the projections the dashboard reads. Pure.

- ``accounts``: each account's latest balance, seq and event time (the event with the highest
  seq wins, so an older event replayed later never overwrites a newer one).
- ``rollups``: counts and amounts by minute x type x status; by hour x city, x channel and x
  device (usual or new); declines by hour x reason; fraud by hour x typology; per-customer
  totals (the "top customers"). Amounts are of approved events (money that moved), in cents, but
  in the minute rollup, where each status has its own document.

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

    def add(self, **amounts: int) -> None:
        for name, value in amounts.items():
            self.inc[name] = self.inc.get(name, 0) + value


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
        ms = e["event_time"]
        minute, hour = ms - ms % MINUTE, ms - ms % HOUR
        approved = e["status"] == "approved"
        amount = e["amount"]
        moved = amount if approved else 0
        declined = 0 if approved else 1
        kind, status = e["type"], e["status"]
        rollup(
            f"minute|{minute}|{kind}|{status}",
            kind="minute",
            t=at(minute),
            type=kind,
            status=status,
        ).add(count=1, amount=amount)
        rollup(
            f"hour_city|{hour}|{e['city']}",
            kind="hour_city",
            t=at(hour),
            city=e["city"],
            state=e["state"],
            region=e["region"],
        ).add(count=1, amount=moved, declined=declined)
        rollup(
            f"hour_channel|{hour}|{e['channel']}",
            kind="hour_channel",
            t=at(hour),
            channel=e["channel"],
        ).add(count=1, amount=moved, declined=declined)
        device = "new" if e["device"].startswith("D-new-") else "usual"
        rollup(f"hour_device|{hour}|{device}", kind="hour_device", t=at(hour), device=device).add(
            count=1, amount=moved, declined=declined
        )
        if not approved:
            reason = e["decline_reason"]
            rollup(
                f"hour_decline|{hour}|{reason}", kind="hour_decline", t=at(hour), reason=reason
            ).add(count=1, amount=amount)
        if e["fraud"]:
            typology = e["typology"]
            rollup(
                f"hour_fraud|{hour}|{typology}", kind="hour_fraud", t=at(hour), typology=typology
            ).add(count=1, amount=moved, declined=declined)
        debit = e["direction"] == "debit"
        rollup(
            f"customer|{e['customer']}",
            kind="customer",
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
