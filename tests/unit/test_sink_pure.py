"""The sink's pure parts: decoding (bad messages come back as data) and projections."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from loadgen.stream import RunStream, plan
from scenarios import load
from sink.decode import MAX_BYTES, decode
from sink.projections import project
from tests.conftest import ROOT


@dataclass
class FakeMessage:
    """What decoding reads of a confluent_kafka.Message."""

    _value: bytes | None
    _key: bytes | None
    _offset: int = 0

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_764_449_231_512)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    run = plan(load("fraud-ring", environ={}), events=6000)
    return [orjson.loads(line) for b in RunStream(run).batches() for line in b.lines]


def message(event: dict[str, Any], **changes: Any) -> FakeMessage:
    return FakeMessage(orjson.dumps({**event, **changes}), event["account"].encode())


def test_every_event_decodes(events: list[dict[str, Any]]):
    good, bad = decode(message(e) for e in events)
    assert bad == [] and [g.event for g in good] == events
    assert good[0].partition == 3 and good[0].timestamp_ms == 1_764_449_231_512


def test_bad_messages_come_back_with_their_reason(events: list[dict[str, Any]]):
    e = events[0]
    cases = [
        (FakeMessage(None, b"k"), "an empty message"),
        (FakeMessage(b"x" * (MAX_BYTES + 1), b"k"), "oversize"),
        (FakeMessage(b"not json", b"k"), "not JSON"),
        (FakeMessage(b'{"a": "\xff\xfe"}', b"k"), "not JSON"),
        (FakeMessage(b"[1, 2]", b"k"), "not a JSON object"),
        (message(e, event_version=1), "event_version 1"),
        (message(e, amount=-5), "amount -5 is not positive"),
        (message(e, amount="12"), "amount is not a 64-bit integer"),
        (FakeMessage(orjson.dumps({k: v for k, v in e.items() if k != "seq"}), b"k"), "missing"),
        (FakeMessage(orjson.dumps(e), b"someone-else"), "the message key is not"),
    ]
    good, bad = decode(m for m, _ in cases)
    assert good == []
    assert len(bad) == len(cases)
    for (m, expected), letter in zip(cases, bad, strict=True):
        assert expected in letter.reason, (expected, letter.reason)
        assert letter.value == m.value() and letter.key == m.key() and letter.partition == 3


def test_projections_count_what_the_events_say(events: list[dict[str, Any]]):
    projection = project(events)
    rollups = projection.rollups
    minutes = [r for r in rollups.values() if r.keys["kind"] == "minute"]
    assert sum(r.inc["count"] for r in minutes) == len(events)
    by_status = Counter()
    for r in minutes:
        by_status[r.keys["status"]] += r.inc["count"]
    assert by_status == Counter(e["status"] for e in events)
    hours = [r for r in rollups.values() if r.keys["kind"] == "hour"]
    assert sum(r.inc["amount"] for r in hours) == sum(e["amount"] for e in events)
    # one summary per run: its span, and each cell's last transaction counter
    (summary,) = [r for r in rollups.values() if r.keys["kind"] == "run"]
    assert summary.inc["count"] == len(events)
    assert summary.low["first_event_time"] == min(e["event_time"] for e in events)
    assert summary.high["last_event_time"] == max(e["event_time"] for e in events)
    tails: dict[str, int] = {}
    for e in events:
        cell, _, counter = e["tx_id"].rpartition("-")
        tails[cell] = max(tails.get(cell, 0), int(counter))
    assert {k.removeprefix("tails."): v for k, v in summary.high.items() if "." in k} == tails
    fraud = [r for r in rollups.values() if r.keys["kind"] == "hour_fraud"]
    assert sum(r.inc["count"] for r in fraud) == sum(e["fraud"] for e in events)
    customers = [r for r in rollups.values() if r.keys["kind"] == "customer"]
    assert sum(r.inc["debits"] for r in customers) == sum(
        e["amount"] for e in events if e["status"] == "approved" and e["direction"] == "debit"
    )
    # each account's latest state: its highest seq, whatever the order
    latest: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["account"] not in latest or e["seq"] > latest[e["account"]]["seq"]:
            latest[e["account"]] = e
    reversed_projection = project(reversed(events))
    for account, e in latest.items():
        for p in (projection, reversed_projection):
            assert p.accounts[account]["balance"] == e["balance_after"]
            assert p.accounts[account]["last_seq"] == e["seq"]


def test_the_sink_does_not_import_the_engine():
    code = (
        "import sys, sink.decode, sink.projections, sink.writer, sink.consumer, sink.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('loadgen',)]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
