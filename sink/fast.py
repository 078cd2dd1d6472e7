"""The sink's fast path (``sink/_fast.c``, built by ``pip install``): a Kafka message of an event as
the engine writes it, straight to the BSON document ``transactions`` stores, with the contract's
check (``bankstream.events.problem``, and the key being the account) on the way.

It takes only what it can take for certain (the contract's field order, no whitespace, integers
as integers, valid UTF-8); for anything else it answers None and the message is decoded the slow
way (orjson + ``problem``), which accepts it or says why not. So a message is dead-lettered for
the same reasons with or without it, and a document it makes is the one pymongo makes of the
slow path's dict (``tests/unit/test_sink_fast.py``)."""

from __future__ import annotations

from typing import Any

from bankstream import events
from sink.decode import MAX_BYTES

try:
    from sink import _fast
except ImportError:  # pragma: no cover - only without a compiler at install time
    _fast = None  # type: ignore[assignment]

AVAILABLE = _fast is not None

# the kinds of fields the C check knows (sink/_fast.c)
_STRING, _OPTIONAL_STRING, _INTEGER, _BOOLEAN, _ENUM, _OPTIONAL_INTEGER = range(1, 7)


def _kind(name: str) -> int:
    if name in events._STRINGS:
        return _STRING
    if name in events._OPTIONAL_STRINGS:
        return _OPTIONAL_STRING
    if name in events._INTEGERS or name == "event_version":
        return _INTEGER
    if name in events._BOOLEANS:
        return _BOOLEAN
    if name in dict(events._ENUMS):
        return _ENUM
    if name in ("mcc", "send_time"):
        return _OPTIONAL_INTEGER
    msg = f"the fast path does not know the contract's field {name!r}"
    raise ValueError(msg)


def contract() -> Any:
    """The contract, compiled for ``convert(value, key)``; None without the C module."""
    if _fast is None:
        return None
    return _fast.Contract(*arguments())


def arguments() -> tuple[Any, ...]:
    """What the C check is given of the contract (``sink/_fast.c``: ``Contract``)."""
    names = events.FIELD_NAMES
    enums = dict(events._ENUMS)
    allowed: list[tuple[tuple[bytes, ...], bool] | None] = []
    for name in names:
        values = enums.get(name)
        if values is None:
            allowed.append(None)
        else:
            strings = tuple(sorted(v.encode() for v in values if v is not None))
            allowed.append((strings, None in values))
    where = (
        "tx_id",
        "account",
        "amount",
        "seq",
        "mcc",
        "send_time",
        "status",
        "decline_reason",
        "event_version",
    )
    return (
        tuple(n.encode() for n in names),
        bytes(_kind(n) for n in names),
        tuple(allowed),
        events.EVENT_VERSION,
        tuple(names.index(w) for w in where),
        b"approved",
        MAX_BYTES,
    )
