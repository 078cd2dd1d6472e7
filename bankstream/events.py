"""The event contract: one JSON object per Kafka message, key = the account id.

Shared by the engine, the producer, the sink, the harness and the dashboard, so it sits on the
ground floor and imports nothing of theirs (no numpy, no pydantic): the vocabularies, the fields
in their order, the version, the JSON Schema (``docs/event.schema.json`` is generated from it),
helpers that fill the send time and the delivery markers without re-encoding an event, a fast
check of one decoded event, and the balance checksum a run manifest carries.

Event text is ASCII only (JSON ``\\uXXXX`` escapes for anything else): the same JSON once
decoded, half the memory of text with an accented city in it, and encoding to UTF-8 is a copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, get_args

# Version of this contract, written in every event as ``event_version`` (scenario files have a
# ``schema_version`` of their own). 2: ``send_time`` (the intended send time) replaced
# ``produced_at``; ``event_version`` replaced ``schema``.
EVENT_VERSION: Final = 2

# ---------------------------------------------------------------------------- vocabularies
# Each is written once, here; the scenario model's types and the engine's integer codes derive
# from these (codes are positions in the tuples).

# Transaction types drawn from a segment's mix, in the engine's order; ``salary`` follows the pay
# schedule instead.
MixType = Literal[
    "deposit", "withdrawal", "transfer", "bill_payment", "card_purchase", "refund", "fee"
]
TxType = Literal[
    "deposit", "withdrawal", "transfer", "bill_payment", "card_purchase", "refund", "fee", "salary"
]
MIX_TYPES: tuple[MixType, ...] = get_args(MixType)
TX_TYPES: tuple[TxType, ...] = get_args(TxType)

# Rails: the transfer rails a scenario weighs, then the rails of boletos and cards, and the book
# transfer between two accounts of the bank (``internal``: TED and DOC are interbank, so a transfer
# inside the bank drawn as one of them is a book transfer; Pix works inside a bank too).
TransferRail = Literal["pix", "ted", "doc"]
Rail = Literal["pix", "ted", "doc", "boleto", "card", "internal"]
TRANSFER_RAILS: tuple[TransferRail, ...] = get_args(TransferRail)
RAILS: tuple[Rail, ...] = get_args(Rail)

# Where the customer acted; ``none`` where the customer did nothing (money received: incoming
# transfers and their credit legs, salaries, refunds; and the bank's own fees). Scenarios weigh
# the customer's channels only.
CustomerChannel = Literal["mobile", "web", "atm", "pos", "branch"]
Channel = Literal["mobile", "web", "atm", "pos", "branch", "none"]
CUSTOMER_CHANNELS: tuple[CustomerChannel, ...] = get_args(CustomerChannel)
CHANNELS: tuple[Channel, ...] = get_args(Channel)

# Kafka's rule for the topics events go to (besides: not "." or ".."): the scenario's, the flags'
TOPIC_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"

Direction = Literal["debit", "credit"]
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)

Status = Literal["approved", "declined"]
STATUSES: tuple[Status, ...] = get_args(Status)

DeclineReason = Literal["insufficient_funds", "limit_exceeded", "blocked_fraud"]
DECLINE_REASONS: tuple[DeclineReason, ...] = get_args(DeclineReason)

CounterpartyKind = Literal["account", "merchant", "external", "employer", "cash", "biller", "bank"]
COUNTERPARTY_KINDS: tuple[CounterpartyKind, ...] = get_args(CounterpartyKind)

# The cards a card purchase is paid with; a debit card takes from the checking account, credit
# and prepaid cards are accounts of their own (ids ending in -credit and -prepaid)
CardKind = Literal["credit", "debit", "prepaid"]
CARD_KINDS: tuple[CardKind, ...] = get_args(CardKind)

Typology = Literal["account_takeover", "card_testing", "structuring", "mule_ring"]
TYPOLOGIES: tuple[Typology, ...] = get_args(Typology)


# ---------------------------------------------------------------------------- fields


def _field(kind: str | list[str], text: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": text, **extra}


FIELDS: dict[str, dict[str, Any]] = {
    "tx_id": _field(
        "string",
        "transaction id, unique in a run and the same for the same scenario, "
        "seed and cell (<scenario tag>-<cell hex>-<counter>); the MongoDB _id",
    ),
    "account": _field(
        "string",
        "the account the event moves; also the Kafka key. A<customer>-<n>: a checking account "
        "(debit card purchases take from it); A<customer>-credit: a credit card, whose balance "
        "is minus what the customer owes and whose floor is minus the card's limit (purchases "
        "debit it, declined for insufficient_funds past the limit as ISO 8583's code 51; the "
        "statement's payment from checking credits it); A<customer>-prepaid: a prepaid card, "
        "topped up from checking",
    ),
    "customer": _field("string", "the account's owner"),
    "customer_name": _field(["string", "null"], "name of a named customer (seed-demo), else null"),
    "segment": _field("string", "the customer's segment in the scenario"),
    "city": _field("string", "the customer's city"),
    "state": _field("string", "two-letter Brazilian state (UF)"),
    "region": _field("string", "IBGE macro-region of the state"),
    "device": _field(
        "string",
        "device id; D-new-... marks a device never seen before (legitimate customers change "
        "devices too: a risk signal, not a fraud label)",
    ),
    "type": _field("string", "transaction type", enum=list(TX_TYPES)),
    "label": _field("string", "display name of the type (from the scenario)"),
    "rail": _field(["string", "null"], "payment rail", enum=[*RAILS, None]),
    "direction": _field(
        "string", "debit takes money from the account, credit brings it", enum=list(DIRECTIONS)
    ),
    "channel": _field("string", "where the customer acted", enum=list(CHANNELS)),
    "amount": _field("integer", "amount in minor units (cents), always positive", minimum=1),
    "balance_before": _field("integer", "the account's balance before, in cents"),
    "balance_after": _field(
        "integer", "the account's balance after, in cents (equal to before when declined)"
    ),
    "status": _field("string", "approved, or declined with a reason", enum=list(STATUSES)),
    "decline_reason": _field(
        ["string", "null"], "why it was declined", enum=[*DECLINE_REASONS, None]
    ),
    "counterparty": _field(
        ["string", "null"],
        "the other side: an account id (inside the bank), "
        "a merchant, an external account, an employer, cash, a biller, bank",
    ),
    "counterparty_kind": _field(
        "string", "what the counterparty is", enum=list(COUNTERPARTY_KINDS)
    ),
    "merchant_category": _field(
        ["string", "null"],
        "payments to a merchant (card purchases, Pix to a business): its category",
    ),
    "mcc": _field(["integer", "null"], "payments to a merchant: ISO 18245 merchant category code"),
    "seq": _field("integer", "the account's event number: 1, 2, 3, ... without gaps", minimum=1),
    "event_time": _field("integer", "simulated time of the event, epoch milliseconds (UTC)"),
    "fraud": _field("boolean", "true for every event of an injected fraud typology"),
    "typology": _field(["string", "null"], "the fraud typology", enum=[*TYPOLOGIES, None]),
    "fraud_instance": _field(["string", "null"], "id of the fraud instance (its events share it)"),
    "ref_tx": _field(
        ["string", "null"],
        "refund: the purchase refunded; credit leg of an internal transfer: its debit",
    ),
    "currency": _field("string", "ISO 4217 code of amount and balances"),
    "event_version": _field("integer", "version of this contract", const=EVENT_VERSION),
    "run_id": _field("string", "the run that produced it"),
    "scenario": _field("string", "scenario name"),
    "duplicate": _field("boolean", "an injected second copy of an event (delivery.duplicates)"),
    "delayed": _field(
        "boolean", "an event sent after later ones on purpose (delivery.out_of_order)"
    ),
    "send_time": _field(
        ["integer", "null"],
        "wall-clock time the producer's schedule meant to send it (the intended send time, so a "
        "producer that falls behind cannot hide its own delay), epoch milliseconds; null in "
        "`bankstream generate`. Always the last key",
    ),
}
FIELD_NAMES: tuple[str, ...] = tuple(FIELDS)

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "bankstream event",
    "description": f"One banking event, as a Kafka message value (the key is the account id); "
    f"event_version {EVENT_VERSION}.",
    "type": "object",
    "properties": FIELDS,
    "required": list(FIELDS),
    "additionalProperties": False,
}


# ---------------------------------------------------------------------------- markers
# The last three keys of every event, in this order: an event is rewritten by replacing its end.

FRESH_END: Final = '"duplicate":false,"delayed":false,"send_time":null}'
_MARKS = ',"duplicate":'


def _end(duplicate: bool, delayed: bool, send_time: int | None) -> str:
    send = "null" if send_time is None else str(int(send_time))
    return (
        f'"duplicate":{"true" if duplicate else "false"},'
        f'"delayed":{"true" if delayed else "false"},"send_time":{send}}}'
    )


def remark(
    line: str,
    *,
    duplicate: bool | None = None,
    delayed: bool | None = None,
    send_time: int | None = None,
) -> str:
    """``line`` (an event's JSON text) with its delivery markers and send time changed; those not
    given keep their values (a send time given replaces the one there)."""
    cut = line.rfind(_MARKS)
    if cut < 0 or not line.endswith("}"):
        msg = "not an event of this contract: its last keys are not duplicate, delayed, send_time"
        raise ValueError(msg)
    end = line[cut + 1 :]
    was_duplicate = end.startswith('"duplicate":true')
    was_delayed = '"delayed":true' in end
    old_send = end.rsplit(":", 1)[1][:-1]
    send = send_time if send_time is not None else None if old_send == "null" else int(old_send)
    return line[: cut + 1] + _end(
        was_duplicate if duplicate is None else duplicate,
        was_delayed if delayed is None else delayed,
        send,
    )


def with_send_times(lines: Iterable[str], send_ms: Iterable[int]) -> list[str]:
    """Events with their intended send times filled in (each line as the engine made it, send
    time null, any markers): the producer's hot path, so it only replaces the final ``null}``."""
    out = []
    for line, ms in zip(lines, send_ms, strict=True):
        if not line.endswith("null}"):
            msg = "an event's send time is already filled in"
            raise ValueError(msg)
        out.append(f"{line[:-5]}{ms}}}")
    return out


# ---------------------------------------------------------------------------- checks

_STRINGS = (
    "tx_id",
    "account",
    "customer",
    "segment",
    "city",
    "state",
    "region",
    "device",
    "label",
    "currency",
    "run_id",
    "scenario",
)
_OPTIONAL_STRINGS = (
    "customer_name",
    "counterparty",
    "merchant_category",
    "fraud_instance",
    "ref_tx",
)
_INTEGERS = ("amount", "balance_before", "balance_after", "seq", "event_time")
_BOOLEANS = ("fraud", "duplicate", "delayed")
_ENUMS: tuple[tuple[str, frozenset[Any]], ...] = (
    ("type", frozenset(TX_TYPES)),
    ("direction", frozenset(DIRECTIONS)),
    ("channel", frozenset(CHANNELS)),
    ("status", frozenset(STATUSES)),
    ("counterparty_kind", frozenset(COUNTERPARTY_KINDS)),
    ("rail", frozenset((*RAILS, None))),
    ("decline_reason", frozenset((*DECLINE_REASONS, None))),
    ("typology", frozenset((*TYPOLOGIES, None))),
)
_KEYS = FIELDS.keys()
# JSON numbers a 64-bit signed integer holds (MongoDB's long)
_LONG = 2**63


def problem(event: Mapping[str, Any]) -> str | None:
    """What is wrong with one decoded event (types, required fields, vocabularies, version), or
    None: a fast check for every message, not a JSON Schema validation."""
    if type(event) is not dict and not isinstance(event, Mapping):  # dict: skip the ABC check
        return "not a JSON object"
    version = event.get("event_version")
    if version != EVENT_VERSION or type(version) is not int:
        return f"event_version {version!r} (this bankstream reads {EVENT_VERSION})"
    if event.keys() != _KEYS:
        missing = [k for k in FIELD_NAMES if k not in event]
        if missing:
            return f"missing {', '.join(missing)}"
        extra = [str(k) for k in event if k not in FIELDS]
        return f"unknown key {extra[0][:40]!r}"
    for key in _STRINGS:
        if type(event[key]) is not str:
            return f"{key} is not a string"
    for key in _OPTIONAL_STRINGS:
        value = event[key]
        if value is not None and type(value) is not str:
            return f"{key} is neither a string nor null"
    for key in _INTEGERS:
        value = event[key]
        if type(value) is not int or not -_LONG <= value < _LONG:
            return f"{key} is not a 64-bit integer"
    for key in _BOOLEANS:
        if type(event[key]) is not bool:
            return f"{key} is not true or false"
    for key, allowed in _ENUMS:
        value = event[key]
        if (value is not None and type(value) is not str) or value not in allowed:
            return f"{key} {str(value)[:40]!r} is not one of the contract's values"
    if event["amount"] <= 0:
        return f"amount {event['amount']} is not positive"
    if event["seq"] <= 0:
        return f"seq {event['seq']} is not positive"
    mcc, send = event["mcc"], event["send_time"]
    if mcc is not None and (type(mcc) is not int or not 0 <= mcc < 10_000):
        return "mcc is neither a 4-digit code nor null"
    if send is not None and (type(send) is not int or not 0 <= send < _LONG):
        return "send_time is neither epoch milliseconds nor null"
    if (event["status"] == "approved") != (event["decline_reason"] is None):
        return "status and decline_reason disagree"
    return None


def account_kind(account: str) -> Literal["checking", "credit", "prepaid"]:
    """The kind of an account, by its id: a credit card's ends in -credit, a prepaid card's in
    -prepaid, anything else is a checking account."""
    if account.endswith("-credit"):
        return "credit"
    if account.endswith("-prepaid"):
        return "prepaid"
    return "checking"


def card_upkeep(event: Mapping[str, Any]) -> bool:
    """Whether an event is a leg of a card account's own upkeep, not something drawn from a
    segment's mix: a credit card's statement paid from checking (bill_payment inside the bank),
    a prepaid card topped up from checking (transfer inside the bank)."""
    if event["counterparty_kind"] != "account":
        return False
    return (
        account_kind(str(event["account"])) != "checking"
        or account_kind(str(event["counterparty"])) != "checking"
    )


def balance_checksum(accounts: Iterable[tuple[str, int, int]]) -> str:
    """Digest of the final (account, balance, seq) of every account that has events, in account
    order: what a run manifest claims per cell, and what a verifier recomputes from the store."""
    digest = hashlib.sha256()
    for account, balance, seq in sorted(accounts):
        digest.update(f"{account}:{balance}:{seq};".encode())
    return digest.hexdigest()


if __name__ == "__main__":  # python -m bankstream.events > docs/event.schema.json
    import json

    print(json.dumps(EVENT_SCHEMA, indent=2, ensure_ascii=False))
