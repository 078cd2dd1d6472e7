"""The event contract: one JSON object per Kafka message, key = the account id.

``EVENT_SCHEMA`` is its JSON Schema (``docs/event.schema.json`` is generated from it); the
engine writes events with exactly these keys, in this order.
"""

from __future__ import annotations

from typing import Any

from loadgen.model import RAIL_NAMES, SCHEMA_VERSION, TYPES, TYPOLOGIES
from scenarios.reference import CHANNELS

DECLINE_REASONS = ("insufficient_funds", "limit_exceeded", "blocked_fraud")
COUNTERPARTY_KINDS = ("account", "merchant", "external", "employer", "cash", "biller", "bank")


def _field(kind: str | list[str], text: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": text, **extra}


FIELDS: dict[str, dict[str, Any]] = {
    "tx_id": _field(
        "string",
        "transaction id, unique in a run and the same for the same scenario, "
        "seed and cell (<scenario tag>-<cell hex>-<counter>); the MongoDB _id",
    ),
    "account": _field("string", "the account the event belongs to; also the Kafka key"),
    "customer": _field("string", "the account's owner"),
    "customer_name": _field(["string", "null"], "name of a named customer (seed-demo), else null"),
    "segment": _field("string", "the customer's segment in the scenario"),
    "city": _field("string", "the customer's city"),
    "state": _field("string", "two-letter Brazilian state (UF)"),
    "region": _field("string", "IBGE macro-region of the state"),
    "device": _field("string", "device id; D-new-... marks a device never seen before"),
    "type": _field("string", "transaction type", enum=list(TYPES)),
    "label": _field("string", "display name of the type (from the scenario)"),
    "rail": _field(["string", "null"], "payment rail", enum=[*RAIL_NAMES, None]),
    "direction": _field(
        "string", "debit takes money from the account, credit brings it", enum=["debit", "credit"]
    ),
    "channel": _field("string", "where the customer acted", enum=list(CHANNELS)),
    "amount": _field("integer", "amount in minor units (cents), always positive", minimum=1),
    "balance_before": _field("integer", "the account's balance before, in cents"),
    "balance_after": _field(
        "integer", "the account's balance after, in cents (equal to before when declined)"
    ),
    "status": _field(
        "string", "approved, or declined with a reason", enum=["approved", "declined"]
    ),
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
    "merchant_category": _field(["string", "null"], "card purchases: merchant category"),
    "mcc": _field(["integer", "null"], "card purchases: ISO 18245 merchant category code"),
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
    "schema": _field("integer", "version of this contract", const=SCHEMA_VERSION),
    "run_id": _field("string", "the run that produced it"),
    "scenario": _field("string", "scenario name"),
    "duplicate": _field("boolean", "an injected second copy of an event (delivery.duplicates)"),
    "delayed": _field(
        "boolean", "an event sent after later ones on purpose (delivery.out_of_order)"
    ),
    "produced_at": _field(
        ["integer", "null"],
        "wall-clock time the producer sent it, epoch "
        "milliseconds; null in `bankstream generate`. Always the last key, so a "
        "producer can fill it in without re-encoding the event",
    ),
}

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "bankstream event",
    "description": "One banking event, as a Kafka message value (the key is the account id).",
    "type": "object",
    "properties": FIELDS,
    "required": list(FIELDS),
    "additionalProperties": False,
}
