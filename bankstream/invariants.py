"""Checks of a stream of events against the ledger's rules; used by tests and verifiers.

Pure functions over parsed events (dicts), in stream order. Each returns a list of problems
(empty when the stream is sound); money is compared in integer cents.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from bankstream.events import account_kind

Event = Mapping[str, Any]


def check_stream(events: Iterable[Event], limit: int = 20) -> list[str]:
    """Unique ids, gap-free sequences, exact balances, refunds within their originals, both
    legs of every internal transfer, statement payments within what their card owes. Injected
    duplicates are skipped; delayed events are put back where they were made before the
    checks."""
    problems: list[str] = []
    seen: set[str] = set()
    last: dict[str, tuple[int, int]] = {}  # account -> (seq, balance_after)
    purchases: dict[str, tuple[str, int]] = {}  # tx id -> (account, amount)
    refunded: dict[str, int] = defaultdict(int)
    debits: dict[str, tuple[str, str, int]] = {}  # internal debit id -> (from, to, amount)
    legs: dict[str, tuple[str, str, int]] = {}

    def problem(text: str) -> None:
        if len(problems) < limit:
            problems.append(text)

    stream = [e for e in events if not e["duplicate"]]
    if any(e["delayed"] for e in stream):
        # delayed events back where they were made, cell by cell (a cell's transaction ids end
        # in a counter; accounts, refunds and transfers stay within a cell); the others keep
        # the order they came in, so a swap among them still shows
        cells: dict[str, list[Event]] = {}
        for e in stream:
            cells.setdefault(made_order(e)[0], []).append(e)
        stream = []
        for cell in cells.values():
            late = sorted((e for e in cell if e["delayed"]), key=made_order)
            stream += heapq.merge((e for e in cell if not e["delayed"]), late, key=made_order)
    for e in stream:
        tx, account, amount = e["tx_id"], e["account"], e["amount"]
        if tx in seen:
            problem(f"{tx}: transaction id seen twice")
        seen.add(tx)
        if not isinstance(amount, int) or amount <= 0:
            problem(f"{tx}: amount {amount!r} is not a positive whole number of cents")
        before, after = e["balance_before"], e["balance_after"]
        approved = e["status"] == "approved"
        if approved:
            sign = -1 if e["direction"] == "debit" else 1
            if after != before + sign * amount:
                problem(f"{tx}: {before} {e['direction']} {amount} gives {after}")
        elif after != before:
            problem(f"{tx}: declined but the balance moved from {before} to {after}")
        if approved == (e["decline_reason"] is not None):
            problem(f"{tx}: status {e['status']} with decline reason {e['decline_reason']}")
        prev = last.get(account)
        if prev is None:
            if e["seq"] != 1:
                problem(f"{tx}: first event of {account} has seq {e['seq']}")
        else:
            if e["seq"] != prev[0] + 1:
                problem(f"{tx}: {account} seq {e['seq']} after {prev[0]}")
            if before != prev[1]:
                problem(f"{tx}: {account} balance_before {before} but last after {prev[1]}")
        last[account] = (e["seq"], after)
        kind = e["type"]
        if approved and kind in ("card_purchase", "bill_payment") and not inside_bank(e):
            purchases[tx] = (account, amount)
        if kind == "refund":
            original = purchases.get(e["ref_tx"] or "")
            if original is None:
                problem(f"{tx}: refund of {e['ref_tx']}, not an earlier approved purchase")
            else:
                if original[0] != account:
                    problem(f"{tx}: refund to {account} of a purchase by {original[0]}")
                refunded[e["ref_tx"]] += amount
                if refunded[e["ref_tx"]] > original[1]:
                    problem(f"{tx}: refunds of {e['ref_tx']} exceed its {original[1]} cents")
        # a transfer to another account of the bank, or a credit card's statement paid from
        # checking: a debit and its credit leg
        inside = kind in ("transfer", "bill_payment") and e["counterparty_kind"] == "account"
        if inside and approved and kind == "bill_payment" and e["direction"] == "credit":
            owed = -before
            if account_kind(str(account)) != "credit" or amount > owed:
                problem(f"{tx}: a statement payment of {amount} to {account}, owing {owed}")
        if inside and approved:
            if e["direction"] == "debit":
                debits[tx] = (account, e["counterparty"], amount)
            else:
                legs[e["ref_tx"]] = (e["counterparty"], account, amount)
        if e["fraud"] and not (e["typology"] and e["fraud_instance"]):
            problem(f"{tx}: fraud without typology and instance")
        if not e["fraud"] and (e["typology"] or e["fraud_instance"]):
            problem(f"{tx}: typology or instance on an event that is not fraud")
    for tx, leg in debits.items():
        if legs.get(tx) != leg:
            problem(f"{tx}: internal transfer {leg} has credit leg {legs.get(tx)}")
    for tx in legs.keys() - debits.keys():
        problem(f"credit leg of {tx} without its debit")
    return problems


def inside_bank(event: Event) -> bool:
    """Whether the event's counterparty is an account of the bank (a leg of a transfer inside
    it, or of a credit card's statement paid from checking)."""
    return bool(event["counterparty_kind"] == "account")


def made_order(event: Event) -> tuple[str, int]:
    """(cell's id prefix, counter) of a transaction id ``{run tag}-{cell}-{counter}``."""
    prefix, _, counter = str(event["tx_id"]).rpartition("-")
    return prefix, int(counter) if counter.isdigit() else -1


def external_flow(events: Iterable[Event]) -> int:
    """Net money that entered the bank: approved credits minus approved debits, counting only
    counterparties outside the bank."""
    net = 0
    for e in events:
        if e["duplicate"] or e["status"] != "approved":
            continue
        if e["counterparty_kind"] == "account":
            continue
        net += e["amount"] if e["direction"] == "credit" else -e["amount"]
    return net
