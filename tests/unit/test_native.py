"""The ledger's C loop makes exactly what its Python reference makes: the same bytes, keys,
times, statistics and balances, on every kind of stream."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from bankstream.events import RAILS, TX_TYPES
from loadgen import native
from loadgen.draw import CP_KINDS
from loadgen.engine import CellStream, quotas
from loadgen.errors import LoadgenError
from loadgen.ledger import UPKEEP
from loadgen.model import EngineModel
from scenarios import load

CASES = [
    ("retail-day", 400_000, []),
    ("fraud-ring", 600_000, []),
    ("seed-demo", 3_000, []),
    # limits that bind: night and daily caps
    ("retail-day", 300_000, ["limits.night.max_total=20", "limits.daily_outgoing=300"]),
    # delivery markers
    ("fraud-ring", 200_000, ["delivery.out_of_order=0.1", "delivery.duplicates=0.05"]),
    # many partial refunds, a short refund window (the pool is swept)
    (
        "retail-day",
        600_000,
        ["transaction_types.refund.partial_share=0.9", "transaction_types.refund.max_age=2h"],
    ),
    # takeovers with nothing to drain, a small bank (transfers inside it often)
    (
        "fraud-ring",
        60_000,
        [
            "anomalies.typologies.0.drain_share=0",
            "anomalies.overlap.amount=0",
            "population.customers=300",
        ],
    ),
]


def test_the_c_loop_is_built():
    """`pip install -e .` (make setup) compiles it; without it everything runs, slower."""
    assert native.AVAILABLE


def model_of(name: str, overrides: list[str], use_native: bool) -> EngineModel:
    """The scenario's engine model, with the C loop or its Python reference (a test of the C
    loop is skipped where it is not built)."""
    if use_native and not native.AVAILABLE:
        pytest.skip("the C loop is not built")
    loaded = load(name, overrides=overrides, environ={})
    model = EngineModel.build(loaded.scenario, loaded.digest)
    model.native = use_native
    return model


def cells_of(name: str, events: int, overrides: list[str], use_native: bool) -> list[object]:
    model = model_of(name, overrides, use_native)
    share = quotas(model, events)
    out: list[object] = []
    for cell in range(0, model.cells, max(1, model.cells // 12)):
        stream = CellStream(model, cell, share[cell])
        assert isinstance(stream.ledger, native.NativeLedger) == use_native
        for chunk in stream.chunks():
            out += [chunk.data, chunk.offsets.tolist(), chunk.keys, chunk.times.tolist()]
            out += [chunk.types.tolist()]
        stats = stream.stats
        out += [stats.counts, stats.money_in, stats.money_out, stats.fraud, stream.checksum()]
        out += [[int(b) for b in stream.state.balance], [int(s) for s in stream.state.seq]]
    return out


@pytest.mark.skipif(not native.AVAILABLE, reason="the C loop is not built")
@pytest.mark.parametrize(("name", "events", "overrides"), CASES)
def test_c_and_python_make_the_same_events(name: str, events: int, overrides: list[str]):
    fast = cells_of(name, events, overrides, True)
    reference = cells_of(name, events, overrides, False)
    assert len(fast) == len(reference)
    for i, (a, b) in enumerate(zip(fast, reference, strict=True)):
        assert a == b, f"item {i} differs"


def test_gather_orders_events_into_json_lines():
    parts = (b'{"a":1}{"b":22}', b'{"c":333}')
    part = np.array([1, 0, 0], dtype=np.int64)
    start = np.array([0, 7, 0], dtype=np.int64)
    length = np.array([9, 8, 7], dtype=np.int64)
    data, offsets = native.gather(parts, part, start, length)
    assert data == b'{"c":333}\n{"b":22}\n{"a":1}\n'
    assert offsets.tolist() == [0, 10, 19, 27]
    sent = np.array([5, -1, 1_764_449_231_512], dtype=np.int64)
    events = (b'{"c":3,"send_time":null}{"b":2,"send_time":null}',)
    both = native.gather(
        events, np.zeros(2, np.int64), np.array([0, 24]), np.array([24, 24]), sent[:2], False
    )
    assert both[0] == b'{"c":3,"send_time":5}{"b":2,"send_time":-1}'
    assert both[1].tolist() == [0, 21, 43]
    with pytest.raises(ValueError, match="already set"):
        native.gather((both[0],), np.zeros(1, np.int64), np.zeros(1, np.int64), [21], sent[:1])
    if native.AVAILABLE:
        with pytest.raises(IndexError):
            native.gather(parts, part, start, length + 5)


def test_the_c_loop_refuses_misuse_instead_of_crashing():
    if not native.AVAILABLE:
        pytest.skip("the C loop is not built")
    from loadgen import _ledger

    bare = _ledger.Ledger.__new__(_ledger.Ledger)
    with pytest.raises(RuntimeError, match="not initialised"):
        bare.run(tuple([np.zeros(1, np.int64)] * 23), 0, 0, 0)
    one = (b'{"a":1,"send_time":null}',)
    zero, one_, huge = (np.array([v], dtype=np.int64) for v in (0, 1, 2**63 - 1))
    with pytest.raises(IndexError):
        _ledger.gather(one, zero, one_, huge, None, True)
    with pytest.raises(IndexError):
        _ledger.values(one, zero, one_, huge, zero)


@pytest.mark.parametrize("use_native", [True, False])
def test_a_balance_past_64_bits_is_an_error_not_a_wrong_number(use_native: bool):
    overrides = [
        "population.customers=2",
        "population.segments=[{name: rich, share: 1, mix: {deposit: 1}, activity: "
        "{mean_per_day: 10000}}]",
        "transaction_types.deposit.amount={median: 10000000000000, sigma: 0.1, "
        "max: 10000000000000}",
        "anomalies.typologies=[]",
    ]
    # past 9,223 deposits of R$ 10 trillion
    stream = CellStream(model_of("retail-day", overrides, use_native), 0, 20_000)
    with pytest.raises(LoadgenError, match="64-bit range of cents"):
        for _ in stream.chunks():
            pass


def test_the_c_loops_codes_are_the_contracts_positions():
    """The C loop names some codes itself (#define): each is its name's position in the
    contract's vocabularies, as the Python side numbers them."""
    source = (Path(__file__).resolve().parents[2] / "loadgen" / "_ledger.c").read_text()
    defined = {
        name: int(value)
        for name, value in re.findall(r"^#define (\w+) (\d+)\b", source, flags=re.MULTILINE)
    }
    assert defined["RAIL_PIX"] == RAILS.index("pix")
    assert defined["RAIL_INTERNAL"] == RAILS.index("internal")
    assert defined["TYPE_TRANSFER"] == TX_TYPES.index("transfer")
    assert defined["TYPE_REFUND"] == TX_TYPES.index("refund")
    assert defined["N_TYPES"] == len(TX_TYPES)
    for kind in ("account", "merchant", "external", "employer", "cash", "biller", "bank"):
        assert defined[f"CP_{kind.upper()}"] == CP_KINDS.index(kind)
    assert defined["INTERNAL_UPKEEP"] == UPKEEP


@pytest.mark.parametrize("use_native", [True, False])
def test_a_book_transfer_paid_by_pix_at_the_quota_end_meets_the_new_device_caps(use_native: bool):
    """The last event of a cell's quota has no room for a book transfer's second leg, so it is
    paid outside the bank by Pix: from a new device, the R$ 200 cap of a Pix binds it then
    (found on a weekend of retail-day: a R$ 3,648.91 TED amount approved as a new-device Pix)."""
    overrides = [
        "population.customers=50",
        "population.new_device_share=1",
        "population.segments=[{name: all, share: 1, mix: {transfer: 1}, channels: {mobile: 1}, "
        "activity: {mean_per_day: 50}}]",
        "transaction_types.transfer.rails={ted: 1}",
        "transaction_types.transfer.internal_share=1",
        "transaction_types.transfer.rail_amounts.ted={median: 2000, sigma: 0.1, min: 1000, "
        "max: 3000}",
        "anomalies.typologies=[]",
    ]
    model = model_of("retail-day", overrides, use_native)
    events = []
    for chunk in CellStream(model, 0, 301).chunks():  # odd: the last row has room for one leg
        events += chunk.lines
    assert len(events) == 301
    books = [e for e in events[:-1] if '"rail":"internal"' in e]
    # (R$ 1,000 and more each: a book transfer from a new device is not a Pix, and not capped)
    assert len(books) == 300 and any('"status":"approved"' in e for e in books)
    last = events[-1]
    assert '"rail":"pix"' in last and '"counterparty_kind":"external"' in last, last
    assert '"device":"D-new-' in last and '"decline_reason":"limit_exceeded"' in last, last


@pytest.mark.parametrize("use_native", [True, False])
def test_a_cards_upkeep_at_the_quota_end_never_leaves_the_bank(use_native: bool):
    """A statement paid and a prepaid top-up move money between two accounts of the bank: when
    a cell's quota ends with room for one leg only, they make no event (a book transfer would be
    paid outside by Pix instead; the upkeep is not a Pix to anyone). Found by review: a
    bill_payment on rail pix to an external id made of the card's account index."""
    model = model_of("retail-day", ["population.customers=2000"], use_native)
    events = [orjson.loads(line) for c in CellStream(model, 0, 20_000).chunks() for line in c.lines]

    def upkeep(e: dict[str, object]) -> bool:
        to_card = str(e["counterparty"]).endswith(("-credit", "-prepaid"))
        return e["direction"] == "debit" and e["counterparty_kind"] == "account" and to_card

    firsts = {
        kind: next(i for i, e in enumerate(events) if upkeep(e) and e["type"] == kind)
        for kind in ("bill_payment", "transfer")
    }
    for kind, first in firsts.items():
        quota = first + 1  # the quota ends on the upkeep's debit leg
        stream = CellStream(model, 0, quota)
        got = [orjson.loads(line) for c in stream.chunks() for line in c.lines]
        assert len(got) == quota, kind
        assert got[:first] == events[:first], kind
        assert not upkeep(got[-1]) and got[-1]["rail"] != "internal", (kind, got[-1])
        assert not any(e["type"] == "bill_payment" and e["rail"] == "pix" for e in got), kind
        counted = [0] * (2 * len(TX_TYPES))
        for e in got:
            counted[2 * TX_TYPES.index(e["type"]) + (e["status"] != "approved")] += 1
        assert stream.stats.counts == counted, kind
