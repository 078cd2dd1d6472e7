"""Kafka messages -> events, and the messages that are not events, with their reason.

Pure (bytewax's oks/errs spirit): nothing here raises on bad input; a bad message comes back as
data, for the dead-letter topic. The check is the contract's fast one (types, required fields,
vocabularies, version), plus what only the message knows: its key is the event's account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson

from bankstream.events import problem

MAX_BYTES = 64 * 1024  # an event is about 750 bytes; anything this big is not one


class Message(Protocol):
    """What decoding needs of a Kafka message (confluent_kafka.Message has it)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | str | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class Good(NamedTuple):  # a tuple: made for every message, cheaper than a dataclass
    event: dict[str, Any] | None  # None when the fast path made ``document`` instead
    partition: int
    offset: int
    timestamp_ms: int  # the Kafka message's timestamp (the producer: the intended send time)
    document: bytes | None = None  # the BSON document to store (the fast path, sink/fast.py)
    send_time: int | None = None  # the event's, when ``event`` is None

    def sent(self) -> int | None:
        """The event's intended send time (null in a file of events)."""
        event = self.event
        return self.send_time if event is None else event["send_time"]


@dataclass(frozen=True)
class Bad:
    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _check(message: Message) -> tuple[str, dict[str, Any] | None]:
    """(why it is not an event, None), or ("", the event)."""
    value = message.value()
    if value is None:
        return "an empty message (no value)", None
    if len(value) > MAX_BYTES:
        return f"oversize: {len(value):,} bytes (an event has at most {MAX_BYTES:,})", None
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({str(exc)[:120]})", None
    if not isinstance(event, dict):
        return f"not a JSON object but {type(event).__name__}", None
    wrong = problem(event)
    if wrong is not None:
        return wrong, None
    key, account = message.key(), event["account"]
    if (key != account.encode()) if type(key) is bytes else (key != account):
        return "the message key is not the event's account", None
    return "", event


def decode(messages: Iterable[Message], fast: Any = None) -> tuple[list[Good], list[Bad]]:
    """The messages' events, and the messages that are not events of this contract. With
    ``fast`` (sink.fast.contract()), an event as the engine writes it becomes its stored document
    at once; any other message is decoded and checked here (and stored as the event's dict)."""
    good: list[Good] = []
    bad: list[Bad] = []
    convert = fast.convert if fast is not None else None
    for message in messages:
        partition = message.partition() or 0
        offset = message.offset() or 0
        if convert is not None:
            value, key = message.value(), message.key()
            made = convert(value, key) if value is not None and type(key) is bytes else None
            if made is not None:
                good.append(Good(None, partition, offset, message.timestamp()[1], *made))
                continue
        reason, event = _check(message)
        if event is None:
            key = message.key()
            raw_key = key.encode() if isinstance(key, str) else key
            bad.append(
                Bad(reason, message.topic() or "", partition, offset, raw_key, message.value())
            )
        else:
            good.append(Good(event, partition, offset, message.timestamp()[1]))
    return good, bad
