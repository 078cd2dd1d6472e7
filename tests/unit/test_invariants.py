"""The stream validator the harness runs on stored data: silent on a sound stream, and it
catches each kind of damage a pipeline can do to one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bankstream.invariants import check_stream
from loadgen.engine import CellStream, quotas
from loadgen.model import EngineModel
from scenarios import load

Event = dict[str, Any]


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    """One cell of fraud-ring: refunds, transfers inside the bank, credit card statements paid,
    declines and fraud."""
    loaded = load("fraud-ring", environ={})
    model = EngineModel.build(loaded.scenario, loaded.digest)
    share = quotas(model, 400_000)
    lines = [line for chunk in CellStream(model, 5, share[5]).chunks() for line in chunk.lines]
    return [orjson.loads(line) for line in lines]


def first(events: list[Event], test: Callable[[Event], bool]) -> int:
    return next(i for i, e in enumerate(events) if test(e))


def test_a_sound_stream_has_no_problem(stream: list[Event]):
    assert len(stream) > 1000
    assert check_stream(stream) == []
    kinds = {e["type"] for e in stream}
    assert {"refund", "transfer", "card_purchase"} <= kinds
    assert any(e["fraud"] for e in stream)
    assert any(e["status"] == "declined" for e in stream)


def a_cent_off(events: list[Event]) -> None:
    i = first(events, lambda e: e["status"] == "approved" and e["seq"] > 1)
    events[i]["balance_after"] += 1


def a_duplicate_id(events: list[Event]) -> None:
    events[10]["tx_id"] = events[3]["tx_id"]


def an_over_refund(events: list[Event]) -> None:
    i = first(events, lambda e: e["type"] == "refund")
    events[i]["amount"] += 10**9
    # the account's later balances follow, so only the refund itself is wrong
    events[i]["balance_after"] += 10**9
    for e in events[i + 1 :]:
        if e["account"] == events[i]["account"]:
            e["balance_before"] += 10**9
            e["balance_after"] += 10**9


def a_mismatched_transfer_leg(events: list[Event]) -> None:
    i = first(
        events,
        lambda e: (
            e["type"] == "transfer"
            and e["counterparty_kind"] == "account"
            and e["direction"] == "credit"
        ),
    )
    events[i]["counterparty"] = "A999999999-0"


def shift_from(events: list[Event], i: int, by: int) -> None:
    """Event i's balance after, and its account's later balances, moved by ``by``."""
    events[i]["balance_after"] += by
    for e in events[i + 1 :]:
        if e["account"] == events[i]["account"]:
            e["balance_before"] += by
            e["balance_after"] += by


def an_overpaid_statement(events: list[Event]) -> None:
    """A credit card's statement paid with more than the card owes, both legs and every later
    balance consistent: only the payment itself is wrong."""
    i = first(
        events,
        lambda e: e["type"] == "bill_payment" and e["account"].endswith("-credit"),
    )
    j = first(events, lambda e: e["tx_id"] == events[i]["ref_tx"])
    more = -events[i]["balance_before"] - events[i]["amount"] + 1
    events[i]["amount"] += more
    events[j]["amount"] += more
    shift_from(events, i, more)
    shift_from(events, j, -more)


def a_missing_fraud_label(events: list[Event]) -> None:
    i = first(events, lambda e: e["fraud"])
    events[i]["typology"] = None


def a_declined_event_that_moved_money(events: list[Event]) -> None:
    i = first(events, lambda e: e["status"] == "declined")
    events[i]["balance_after"] = events[i]["balance_before"] - events[i]["amount"]


def a_dropped_event(events: list[Event]) -> None:
    account = events[0]["account"]
    mine = [i for i, e in enumerate(events) if e["account"] == account]
    del events[mine[1]]


@pytest.mark.parametrize(
    ("damage", "found"),
    [
        (a_cent_off, "gives"),
        (a_duplicate_id, "seen twice"),
        (an_over_refund, "exceed"),
        (a_mismatched_transfer_leg, "credit leg"),
        (an_overpaid_statement, "statement payment"),
        (a_missing_fraud_label, "fraud without typology"),
        (a_declined_event_that_moved_money, "declined but the balance moved"),
        (a_dropped_event, " seq "),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_each_kind_of_damage_is_caught(
    stream: list[Event], damage: Callable[[list[Event]], None], found: str
):
    events = copy.deepcopy(stream)
    damage(events)
    problems = check_stream(events)
    assert any(found in p for p in problems), problems
