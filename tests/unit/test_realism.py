"""Realism that rules enforce, measured on generated days (shared/REALISM.md): cash is never a
Pix, places work in their hours, regulatory caps bind everyone (fraudsters included), a new
device is a risk signal and not a label, structuring stays under the Brazilian R$ 50,000 line
among large legitimate deposits, weekend Pix tickets are about a third of weekday ones, and
salaries follow the CLT count of business days."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from bankstream.events import CARD_KINDS, account_kind
from loadgen.calendar import easter, is_bank_day, nth_business_day
from loadgen.engine import CellStream
from loadgen.model import EngineModel
from loadgen.stream import RunStream, plan
from scenarios import load

ZONE = ZoneInfo("America/Sao_Paulo")
Event = dict[str, Any]


def events_of(name: str, events: int, *overrides: str) -> list[Event]:
    run = plan(load(name, overrides=list(overrides), environ={}), events=events)
    out = []
    for batch in RunStream(run).batches():
        for line in batch.lines:
            event = orjson.loads(line)
            event["local"] = dt.datetime.fromtimestamp(event["event_time"] / 1000, ZONE)
            out.append(event)
    return out


@pytest.fixture(scope="module")
def monday() -> list[Event]:
    """retail-day: a Monday of 300,000 events."""
    return events_of("retail-day", 300_000)


@pytest.fixture(scope="module")
def weekend() -> list[Event]:
    """retail-day from a Friday noon into the weekend (Carnival closes the banks on the next
    Monday and Tuesday, 3-4 March 2025)."""
    return events_of("retail-day", 300_000, "time.start=2025-02-28T12:00:00")


@pytest.fixture(scope="module")
def fraud_ring() -> list[Event]:
    return events_of("fraud-ring", 300_000)


def is_new_device(e: Event) -> bool:
    return bool(e["device"].startswith("D-new-"))


def approved_debit(e: Event) -> bool:
    return bool(e["status"] == "approved" and e["direction"] == "debit")


def in_night(e: Event) -> bool:
    return bool(e["local"].hour >= 20 or e["local"].hour < 6)


@pytest.mark.slow
def test_a_day_has_the_published_payment_mix_and_channels(monday: list[Event]):
    """Payments (outgoing transfers, card purchases, boletos: BCB's set, so not book transfers
    nor a card account's upkeep) by rail and card within 2 points of BCB / FEBRABAN / ABECS 2024
    (Pix 55.6%, credit 17.3%, debit 14.6%, prepaid 8.0%, boleto 3.7%, TED 0.7%); channels of the
    operations customers make within 2 points of FEBRABAN 2024 (mobile 75%, POS 13%, all digital
    82%)."""
    paid = Counter(
        card_kind(e) if e["rail"] == "card" else e["rail"]
        for e in monday
        if e["direction"] == "debit"
        and e["type"] in ("transfer", "card_purchase", "bill_payment")
        and e["rail"] in ("pix", "card", "boleto", "ted")
    )
    payments = sum(paid.values())
    published = {"pix": 55.6, "credit": 17.3, "debit": 14.6, "prepaid": 8.0, "boleto": 3.7}
    published["ted"] = 0.7
    shares = {kind: 100 * paid[kind] / payments for kind in published}
    assert all(abs(shares[k] - published[k]) <= 2 for k in published), shares
    # FEBRABAN counts the operations customers make: money received has no channel
    acted = [e for e in monday if e["channel"] != "none"]
    channels = Counter(e["channel"] for e in acted)
    share = {c: 100 * n / len(acted) for c, n in channels.items()}
    assert abs(share["mobile"] - 75) <= 2 and abs(share["pos"] - 13) <= 2, share
    assert abs(share["mobile"] + share["web"] - 82) <= 2, share


@pytest.mark.slow
def test_pix_pays_people_and_businesses(monday: list[Event]):
    """Of the Pix customers send, the scenario's share (retail-day: BCB's 34% of Pix, 2023)
    pays a business: a merchant with its category and code, at a merchant's ticket; the rest
    goes to people, in this bank or another, with no merchant fields."""
    sent = [
        e
        for e in monday
        if e["type"] == "transfer" and e["rail"] == "pix" and e["direction"] == "debit"
    ]
    sent = [e for e in sent if not e["fraud"]]
    business = [e for e in sent if e["counterparty_kind"] == "merchant"]
    people = [e for e in sent if e["counterparty_kind"] != "merchant"]
    share = load("retail-day", environ={}).scenario.transaction_types.transfer.business_share
    assert abs(100 * len(business) / len(sent) - 100 * share) <= 2, (len(business), len(sent))
    assert {e["counterparty_kind"] for e in people} == {"account", "external"}
    assert all(e["counterparty"][0] == "M" for e in business)
    assert all(e["merchant_category"] and e["mcc"] for e in business)
    assert not any(e["merchant_category"] or e["mcc"] for e in people)
    # a business is paid at a merchant's ticket: the merchants' category amounts (the card
    # purchases' before each kind of card's scaling to its own ticket), not the Pix rail's
    model = EngineModel.build(load("retail-day", environ={}).scenario, "x")
    factor = dict(zip(CARD_KINDS, model.card_factor.tolist(), strict=True))
    cards = [e["amount"] / factor[card_kind(e)] for e in monday if e["type"] == "card_purchase"]
    pix_to_people = [e["amount"] for e in people]
    to_business = [e["amount"] for e in business]
    assert abs(np.median(to_business) / np.median(cards) - 1) < 0.25
    assert {e["merchant_category"] for e in business} >= {"grocery", "restaurants", "fuel"}
    assert len(pix_to_people) > len(to_business)
    # the Pix individuals send, to people and to businesses: 93% under R$ 200 (BCB), a
    # weekday's within 2 points
    under = 100 * sum(e["amount"] < 200_00 for e in sent) / len(sent)
    assert abs(under - 93) <= 2, under


def customer_did_nothing(e: Event) -> bool:
    """Money received (but a deposit), the bank's fees, and a credit card's statement paid by
    automatic debit (a bill payment inside the bank)."""
    received = e["direction"] == "credit" and e["type"] != "deposit"
    statement = e["type"] == "bill_payment" and e["counterparty_kind"] == "account"
    return bool(received or e["type"] == "fee" or statement)


def card_kind(e: Event) -> str:
    """The card a card purchase was paid with: its account's kind (a debit card's is the
    checking account)."""
    kind = account_kind(e["account"])
    return "debit" if kind == "checking" else kind


@pytest.mark.parametrize("day", ["monday", "weekend", "fraud_ring"])
@pytest.mark.slow
def test_money_received_has_no_channel(day: str, request: pytest.FixtureRequest):
    """Incoming transfers (and the credit legs of transfers inside the bank), salaries, refunds
    and fees carry channel none; everything a customer does carries the channel used."""
    events: list[Event] = request.getfixturevalue(day)
    wrong = Counter(
        (e["type"], e["direction"], e["channel"])
        for e in events
        if (e["channel"] == "none") != customer_did_nothing(e)
    )
    assert not wrong, wrong
    assert {e["type"] for e in events if e["channel"] == "none"} >= {"transfer", "refund", "fee"}


@pytest.mark.parametrize("day", ["monday", "weekend", "fraud_ring"])
@pytest.mark.slow
def test_transfers_inside_the_bank_are_never_ted_or_doc(day: str, request: pytest.FixtureRequest):
    """TED and DOC are interbank: a transfer between two accounts of the bank is Pix or a book
    transfer (rail internal), and only such a transfer is a book transfer."""
    events: list[Event] = request.getfixturevalue(day)
    inside = Counter(e["rail"] for e in events if e["counterparty_kind"] == "account")
    assert not inside.keys() - {"pix", "internal"}, inside
    assert inside["internal"] > 0 and inside["pix"] > inside["internal"], inside
    book = Counter((e["type"], e["counterparty_kind"]) for e in events if e["rail"] == "internal")
    # (a credit card's statement paid from checking is a bill payment inside the bank)
    assert ("transfer", "account") in book, book
    assert set(book) <= {("transfer", "account"), ("bill_payment", "account")}, book


@pytest.mark.parametrize("day", ["monday", "weekend", "fraud_ring"])
@pytest.mark.slow
def test_places_work_in_their_hours_and_cash_is_no_pix(day: str, request: pytest.FixtureRequest):
    events: list[Event] = request.getfixturevalue(day)
    wrong: Counter[str] = Counter()
    for e in events:
        local = e["local"]
        bank = is_bank_day(local.date())
        if e["type"] in ("deposit", "withdrawal") and e["rail"] is not None:
            wrong["cash on a rail"] += 1
        if e["rail"] == "ted" and not (bank and 7 <= local.hour < 17):
            wrong["TED outside the STR window"] += 1
        if e["channel"] == "branch" and not (bank and 10 <= local.hour < 16):
            wrong["branch closed"] += 1
        if e["channel"] == "atm" and not 6 <= local.hour < 22:
            wrong["ATM closed"] += 1
    assert not wrong, wrong
    if day == "weekend":  # cash and TED did happen: the rules moved them, not removed them
        seen = Counter(e["channel"] for e in events) + Counter(e["rail"] for e in events)
        assert seen["atm"] > 100 and seen["ted"] > 10, seen


@pytest.mark.parametrize("day", ["monday", "weekend", "fraud_ring"])
@pytest.mark.slow
def test_no_approved_operation_breaks_a_regulatory_limit(day: str, request: pytest.FixtureRequest):
    events: list[Event] = request.getfixturevalue(day)
    night: defaultdict[tuple[str, dt.date], int] = defaultdict(int)
    device_day: defaultdict[tuple[str, dt.date], int] = defaultdict(int)
    wrong: Counter[str] = Counter()
    capped = ("transfer", "bill_payment", "card_purchase")
    for e in events:
        if not approved_debit(e):
            continue
        local, amount = e["local"], e["amount"]
        if e["type"] in capped and in_night(e):
            key = (e["account"], (local - dt.timedelta(hours=6)).date())
            night[key] += amount
            if night[key] > 100_000:
                wrong["night limit R$ 1,000"] += 1
        if is_new_device(e) and e["rail"] == "pix" and e["type"] == "transfer":
            if amount > 20_000:
                wrong["new-device Pix over R$ 200"] += 1
            device_day[(e["account"], local.date())] += amount
            if device_day[(e["account"], local.date())] > 100_000:
                wrong["new-device Pix over R$ 1,000 a day"] += 1
        if e["type"] == "withdrawal" and amount > (100_000 if in_night(e) else 300_000):
            wrong["cash over its cap"] += 1
    assert not wrong, wrong


@pytest.mark.slow
def test_fraudsters_meet_the_limits_too(fraud_ring: list[Event]):
    """A takeover from a new device asks for more than R$ 200 and is declined: declines of
    fraud by limit exist, beside those the bank's controls block."""
    reasons = Counter(
        e["decline_reason"] for e in fraud_ring if e["fraud"] and e["status"] == "declined"
    )
    assert reasons["limit_exceeded"] > 0 and reasons["blocked_fraud"] > 0, reasons


@pytest.mark.slow
def test_a_new_device_is_a_signal_not_a_label(monday: list[Event]):
    new = [e for e in monday if is_new_device(e)]
    legitimate = sum(1 for e in new if not e["fraud"])
    assert legitimate > 0.5 * len(new), (legitimate, len(new))
    # and legitimate customers on a new device meet its limit as anyone would
    assert any(not e["fraud"] and e["decline_reason"] == "limit_exceeded" for e in new), (
        "no legitimate new-device operation was declined by the new-device cap"
    )


@pytest.mark.slow
def test_weekend_pix_tickets_are_about_a_third_of_weekday_ones(weekend: list[Event]):
    tickets: defaultdict[bool, list[int]] = defaultdict(list)
    for e in weekend:
        if e["rail"] == "pix" and e["direction"] == "debit" and not e["fraud"]:
            tickets[e["local"].weekday() >= 5].append(e["amount"])
    ratio = np.mean(tickets[True]) / np.mean(tickets[False])
    assert len(tickets[True]) > 10_000 and len(tickets[False]) > 10_000
    assert 0.25 <= ratio <= 0.45, ratio


@pytest.mark.slow
def test_structuring_stays_under_the_brazilian_line_among_large_legitimate_deposits(
    fraud_ring: list[Event],
):
    deposits = [e for e in fraud_ring if e["type"] == "deposit"]
    structuring = np.array([e["typology"] == "structuring" for e in deposits])
    amounts = np.array([e["amount"] for e in deposits])
    assert structuring.sum() > 100
    assert amounts[structuring].max() < 5_000_000  # R$ 50,000
    assert (amounts[~structuring] >= 1_000_000).sum() > 0  # legitimate deposits of R$ 10,000+


def best_rule(values: list[Any] | np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of the best one-feature rule for ``label`` (the one with the highest
    min(precision, recall)): a band [low, high] of a number (edges at the label's quantiles),
    or a set of values (the values by their precision, best first, each prefix)."""
    positives = int(label.sum())
    best = (0.0, 0.0)
    if isinstance(values, np.ndarray):
        edges = np.unique(np.quantile(values[label], np.linspace(0, 1, 21)))
        for i, low in enumerate(edges):
            for high in edges[i:]:
                inside = (values >= low) & (values <= high)
                hits = int((inside & label).sum())
                found = (hits / max(1, int(inside.sum())), hits / positives)
                best = max(best, found, key=min)
        return best
    counts: defaultdict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for v, y in zip(values, label.tolist(), strict=True):
        counts[v][0] += y
        counts[v][1] += 1
    hits = total = 0
    for hit, seen in sorted(counts.values(), key=lambda c: -c[0] / c[1]):
        hits, total = hits + hit, total + seen
        best = max(best, (hits / total, hits / positives), key=min)
    return best


def features(events: list[Event]) -> dict[str, list[Any] | np.ndarray]:
    return {
        "amount": np.array([e["amount"] for e in events], dtype=np.float64),
        "hour": np.array([e["local"].hour for e in events], dtype=np.float64),
        "channel": [e["channel"] for e in events],
        "new device": [is_new_device(e) for e in events],
        "counterparty kind": [e["counterparty_kind"] for e in events],
    }


@pytest.mark.slow
def test_no_single_feature_rule_finds_a_typology(fraud_ring: list[Event]):
    """For each typology, no rule on one feature (amount, hour, channel, new device,
    counterparty kind) reaches precision and recall both above 0.8."""
    columns = features(fraud_ring)
    found = {}
    for typology in ("account_takeover", "card_testing", "structuring", "mule_ring"):
        label = np.array([e["typology"] == typology for e in fraud_ring])
        assert label.sum() > 100, typology
        for name, values in columns.items():
            precision, recall = best_rule(values, label)
            found[f"{typology} by {name}"] = (round(precision, 2), round(recall, 2))
    print("best one-feature rules (precision, recall):", found)
    assert not [k for k, (p, r) in found.items() if p > 0.8 and r > 0.8], found


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC AUC of ``score`` for ``label`` (ties count half), by ranks."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    sorted_score = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_score, return_index=True, return_counts=True)
    mean_rank = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(mean_rank, counts)
    positives = int(label.sum())
    negatives = len(label) - positives
    return float((ranks[label].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@pytest.mark.slow
def test_no_single_feature_separates_fraud(fraud_ring: list[Event]):
    """For fraud as a whole, each feature alone (as the best score it can give: its own value
    for the amount and the hour, the fraud rate of its value otherwise) stays under AUC 0.9."""
    label = np.array([bool(e["fraud"]) for e in fraud_ring])
    measured = {}
    for name, values in features(fraud_ring).items():
        if isinstance(values, np.ndarray):
            best = max(auc(values, label), auc(-values, label))
        else:
            rate: defaultdict[Any, list[int]] = defaultdict(lambda: [0, 0])
            for v, y in zip(values, label.tolist(), strict=True):
                rate[v][0] += y
                rate[v][1] += 1
            score = np.array([rate[v][0] / rate[v][1] for v in values])
            best = auc(score, label)
        measured[name] = round(best, 3)
    print("single-feature AUC of fraud:", measured)
    assert max(measured.values()) < 0.9, measured


@pytest.mark.parametrize(
    ("year", "month", "paid"),
    [
        (2025, 4, dt.date(2025, 4, 4)),  # 5th business day Sat 5 Apr: paid on Friday the 4th
        (2025, 6, dt.date(2025, 6, 6)),  # a Pix record day (BCB)
        (2025, 9, dt.date(2025, 9, 5)),  # a Pix record day (BCB)
        (2025, 12, dt.date(2025, 12, 5)),  # a Pix record day (BCB)
        (2025, 3, dt.date(2025, 3, 6)),  # Saturday the 1st counts; Carnival is no holiday here
        (2025, 5, dt.date(2025, 5, 7)),  # 1 May (a holiday) does not count
        (2024, 11, dt.date(2024, 11, 7)),  # 2 Nov a Saturday holiday: not counted
    ],
)
def test_salaries_follow_the_clt_count_of_business_days(year: int, month: int, paid: dt.date):
    assert nth_business_day(year, month, 5) == paid
    assert is_bank_day(paid)


def test_bank_days_skip_weekends_holidays_carnival_and_corpus_christi():
    assert easter(2025) == dt.date(2025, 4, 20) and easter(2024) == dt.date(2024, 3, 31)
    closed = [
        dt.date(2025, 3, 3),  # Carnival Monday
        dt.date(2025, 3, 4),  # Carnival Tuesday
        dt.date(2025, 4, 18),  # Good Friday
        dt.date(2025, 6, 19),  # Corpus Christi
        dt.date(2025, 11, 20),  # Black Consciousness Day (national since 2024)
        dt.date(2025, 3, 8),  # a Saturday
    ]
    assert not any(is_bank_day(day) for day in closed)
    assert is_bank_day(dt.date(2025, 3, 5)) and is_bank_day(dt.date(2023, 11, 20))


@pytest.fixture(scope="module")
def card_months() -> list[Event]:
    """retail-day's bank at 1,000 customers over about seven weeks, every credit card due on the
    10th (its statement closing on the 3rd, seven days before)."""
    return events_of(
        "retail-day",
        150_000,
        "population.customers=1000",
        "transaction_types.card_purchase.credit.due_days=[10]",
    )


@pytest.mark.slow
def test_cards_by_kind_move_their_own_accounts_at_their_tickets(monday: list[Event]):
    """A debit card takes from the checking account, credit and prepaid cards from accounts of
    their own; each kind averages its published ticket (ABECS 2024: credit R$ 137, debit R$ 60,
    prepaid R$ 41) within 10%; only card purchases, refunds and the cards' upkeep (statements
    paid, top-ups) move a card account; prepaid cards are topped up from checking."""
    amounts: defaultdict[str, list[int]] = defaultdict(list)
    moved = Counter()
    for e in monday:
        kind = account_kind(e["account"])
        if e["type"] == "card_purchase" and not e["fraud"]:
            amounts[card_kind(e)].append(e["amount"])
        if kind != "checking":
            moved[kind, e["type"], e["direction"]] += 1
    tickets = {kind: np.mean(a) / 100 for kind, a in amounts.items()}
    published = {"credit": 137, "debit": 60, "prepaid": 41}
    assert all(abs(tickets[k] / published[k] - 1) < 0.1 for k in published), tickets
    assert set(moved) <= {
        ("credit", "card_purchase", "debit"),
        ("credit", "refund", "credit"),
        ("credit", "bill_payment", "credit"),
        ("prepaid", "card_purchase", "debit"),
        ("prepaid", "refund", "credit"),
        ("prepaid", "transfer", "credit"),
    }, moved
    assert moved["prepaid", "transfer", "credit"] > 0 and moved["credit", "bill_payment", "credit"]
    top_ups = [e for e in monday if e["counterparty"].endswith("-prepaid")]
    assert top_ups and all(account_kind(e["account"]) == "checking" for e in top_ups)


@pytest.mark.slow
def test_credit_card_statements_and_their_payments(card_months: list[Event]):
    """Each statement (what a card owes when it closes, at 00:00 on the 3rd) equals the one
    before plus the purchases, less the payments and refunds, in between; each payment, on the
    due date (the 10th, or the next bank day), is at most the statement and at most what the
    card owes then; some holders pay in full, others in part, and a card at its limit is
    declined."""
    by_account: defaultdict[str, list[Event]] = defaultdict(list)
    for e in card_months:
        if account_kind(e["account"]) == "credit" and not e["duplicate"]:
            by_account[e["account"]].append(e)
    closes = sorted(
        {dt.datetime(e["local"].year, e["local"].month, 3, tzinfo=ZONE) for e in card_months}
    )
    first, last = card_months[0]["local"], max(e["local"] for e in card_months)
    closes = [c for c in closes if first < c < last]
    assert len(closes) >= 1, (first, last)
    checked = full = partial = identities = 0
    for events in by_account.values():
        events.sort(key=lambda e: e["seq"])

        def owed_at(moment: dt.datetime, events: list[Event] = events) -> int | None:
            """What the card owed at a moment (None: no event tells)."""
            before = [e for e in events if e["local"] < moment]
            if before:
                return -int(before[-1]["balance_after"])
            after = [e for e in events if e["local"] >= moment]
            return -int(after[0]["balance_before"]) if after else None

        for c0, c1 in zip(closes, closes[1:], strict=False):
            o0, o1 = owed_at(c0), owed_at(c1)
            if o0 is None or o1 is None:
                continue
            moved = Counter()
            for e in events:
                if c0 <= e["local"] < c1 and e["status"] == "approved":
                    moved[e["type"]] += e["amount"]
            assert set(moved) <= {"card_purchase", "refund", "bill_payment"}, moved
            expected = o0 + moved["card_purchase"] - moved["refund"] - moved["bill_payment"]
            assert o1 == expected, (events[0]["account"], c0, o0, o1, moved)
            identities += 1
        for e in events:
            if e["type"] != "bill_payment":
                continue
            close = max((c for c in closes if c <= e["local"]), default=None)
            if close is None:  # the statement of a close before the run: not seen
                continue
            due = close.date() + dt.timedelta(days=7)
            assert e["local"].date() >= due and all(
                not is_bank_day(due + dt.timedelta(days=d))
                for d in range((e["local"].date() - due).days)
            ), (e["tx_id"], e["local"], due)
            statement = max(0, owed_at(close) or 0)
            owed = -e["balance_before"]
            assert e["amount"] <= min(statement, owed), (e["tx_id"], statement, owed)
            checked += 1
            full += e["amount"] == min(statement, owed)
            partial += e["amount"] < min(statement, owed)
    assert checked > 100 and identities > 100, (checked, identities)
    assert full > partial > 0, (full, partial)
    declined = Counter(
        e["decline_reason"]
        for events in by_account.values()
        for e in events
        if e["status"] == "declined"
    )
    assert declined["insufficient_funds"] > 0, declined


@pytest.mark.parametrize(
    ("start", "due", "paid_before"),
    [
        (
            "2025-03-10T00:00:00",
            8,
            False,
        ),  # due on Saturday the 8th: paid on the Monday, in the run
        ("2025-03-10T00:00:00", 9, False),  # due on the Sunday: the same
        ("2025-03-10T00:00:00", 10, False),  # due on the Monday the run begins
        ("2025-03-10T12:00:00", 10, True),  # paid at 06-08h that Monday, before the run
        ("2025-03-10T00:00:00", 7, True),  # due on Friday the 7th: paid then
    ],
)
def test_the_statement_due_around_the_start_is_paid_once(start: str, due: int, paid_before: bool):
    """Cards in use before the run owe their last statement until its payment day and time (the
    due date or the next bank day, 06-08h): paid before the start, a card opens owing what was
    spent since (and a partial payer's carry) and pays nothing on the first day; paid in the
    run, it opens owing the statement and pays it once that day. Found by review: the opening
    balance took a statement due on the weekend as paid, then the Monday paid it again, and one
    paid at 06h was never paid when the run began at noon."""
    loaded = load(
        "retail-day",
        overrides=[
            "population.customers=2000",
            f"transaction_types.card_purchase.credit.due_days=[{due}]",
            f"time.start={start}",
        ],
        environ={},
    )
    model = EngineModel.build(loaded.scenario, loaded.digest)
    stream = CellStream(model, 0, 20_000)
    state, cards = stream.state, stream.state.cards
    assert cards is not None and len(cards.credit) > 20
    owed = -state.opening[cards.credit]
    first_day = dt.date.fromisoformat(start[:10])
    payments: Counter[str] = Counter()
    for chunk in stream.chunks():
        for line in chunk.lines:
            e = orjson.loads(line)
            local = dt.datetime.fromtimestamp(e["event_time"] / 1000, ZONE).date()
            to_card = str(e["counterparty"]).endswith("-credit")
            if e["type"] == "bill_payment" and e["direction"] == "debit" and to_card:
                payments[e["counterparty"]] += local == first_day
    full = cards.pay_share == 1.0
    if paid_before:
        assert not +payments, payments.most_common(3)
        # a full payer owes only what was spent since the close (less than a statement)
        assert (owed[full] <= cards.statement[full]).all()
        assert (owed[full] < cards.statement[full]).any()
    else:
        assert (owed >= cards.statement).all()
        due_now = [state.key[a] for a, o in zip(cards.credit, owed, strict=True) if o > 0]
        assert due_now and all(payments[k] == 1 for k in due_now), payments.most_common(3)
        assert set(+payments) <= set(due_now)
