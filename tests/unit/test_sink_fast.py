"""The sink's fast path (sink/_fast.c): an event as the engine writes it becomes the document
pymongo makes of the slow path's dict, byte for byte; anything else is left to the slow path,
which alone decides that a message is bad (so dead letters keep their reasons)."""

from __future__ import annotations

import random
from typing import Any

import bson
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bankstream.events import FIELD_NAMES, remark, with_send_times
from loadgen.stream import RunStream, plan
from scenarios import load
from sink.decode import _check, decode
from sink.fast import AVAILABLE, arguments, contract
from tests.unit.test_sink_pure import FakeMessage

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="the C fast path is not built")


def lines_of(name: str, events: int, *overrides: str) -> list[str]:
    run = plan(load(name, overrides=list(overrides), environ={}), events=events)
    return [line for batch in RunStream(run).batches() for line in batch.lines]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    """Events of every kind: fraud, declines, refunds, names with accents (seed-demo), marked
    duplicates and delays, send times filled in and not."""
    fraud = lines_of("fraud-ring", 4000, "delivery.duplicates=0.05", "delivery.out_of_order=0.05")
    demo = lines_of("seed-demo", 300)
    start = 1_764_000_000_000
    sent = with_send_times(lines_of("retail-day", 2000), range(start, start + 2000))
    return fraud + demo + sent + [remark(fraud[0], duplicate=True, delayed=True)]


def as_document(event: dict[str, Any] | None) -> bytes:
    assert event is not None
    return bson.encode({**event, "_id": event["tx_id"]})


def slow_document(value: bytes, key: bytes | None) -> bytes | None:
    """What the slow path stores for this message: the event's dict with its _id, as BSON."""
    reason, event = _check(FakeMessage(value, key))
    if event is None:
        return None
    return bson.encode({**event, "_id": event["tx_id"]})


def test_every_event_is_the_document_pymongo_makes(lines: list[str]):
    fast = contract()
    names = set()
    for line in lines:
        event = orjson.loads(line)
        value = line.encode()
        made = fast.convert(value, event["account"].encode())
        assert made is not None, line
        document, send_time = made
        assert document == slow_document(value, event["account"].encode())
        assert send_time == event["send_time"]
        names.add(event["customer_name"])
    assert any(n and not n.isascii() for n in names)  # accents went through \u escapes


def test_another_key_is_left_to_the_slow_path(lines: list[str]):
    fast = contract()
    assert fast.convert(lines[0].encode(), b"A999999999-0") is None
    assert fast.convert(lines[0].encode(), "a str key") is None


def test_decode_with_and_without_the_fast_path_agree(lines: list[str]):
    messages = [
        FakeMessage(line.encode(), orjson.loads(line)["account"].encode()) for line in lines
    ]
    messages += [FakeMessage(b"not json", b"k"), FakeMessage(b'{"tx_id": 1}', b"k")]
    messages += [FakeMessage(lines[0].replace(":", ": ", 1).encode(), messages[0].key())]
    slow_good, slow_bad = decode(messages)
    fast_good, fast_bad = decode(messages, contract())
    assert [b.reason for b in fast_bad] == [b.reason for b in slow_bad] and len(slow_bad) == 2
    assert len(fast_good) == len(slow_good) == len(lines) + 1
    for f, s in zip(fast_good, slow_good, strict=True):
        assert (f.partition, f.offset, f.timestamp_ms) == (s.partition, s.offset, s.timestamp_ms)
        assert f.sent() == s.sent()
        assert (f.document or as_document(f.event)) == as_document(s.event)
    assert sum(g.event is not None for g in fast_good) == 1  # the one with a space: slow path


# values a field may be given instead of its own: each kind of JSON, and the edge cases of the
# contract's rules and of JSON itself
ODD_VALUES = [
    "null",
    "true",
    "false",
    "0",
    "-0",
    "01",
    "1.0",
    "1e3",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "2147483648",
    "-2147483649",
    "10000",
    "9999",
    '""',
    '"approved"',
    '"declined"',
    '"pix"',
    '"x"',
    '"\\u00e3"',
    '"\\ud83d\\ude00"',
    '"\\ud800"',
    '"\\udc00"',
    '"\\u0000"',
    '"a\\"b"',
    '"\\/\\b\\f\\n\\r\\t"',
    '"\\x"',
    '"São"',
    '"\U0001f600"',
    '"\x01"',
    "[]",
    "{}",
    '"A000000001-0"',
    "2",
    "3",
    # bytes that are not UTF-8 (surrogate escapes of the raw bytes): a stray, a surrogate, an
    # overlong form
    '"\udcff"',
    '"\udced\udca0\udc80"',
    '"\udcc0\udcaf"',
]


def mutate(line: str, rnd: random.Random) -> tuple[bytes, bytes]:
    """An event's message, changed in one to three ways."""
    event = orjson.loads(line)
    key = event["account"].encode()
    pairs = [f'"{k}":' + orjson.dumps(v).decode() for k, v in event.items()]
    for _ in range(rnd.randint(1, 3)):
        how = rnd.randrange(7)
        i = rnd.randrange(len(pairs))
        if how <= 2:  # another value
            name = FIELD_NAMES[i] if i < len(FIELD_NAMES) else "x"
            pairs[i] = f'"{name}":' + rnd.choice(ODD_VALUES)
        elif how == 3:  # a field missing
            del pairs[i]
        elif how == 4:  # two fields swapped
            j = rnd.randrange(len(pairs))
            pairs[i], pairs[j] = pairs[j], pairs[i]
        elif how == 5:  # a field twice, or an unknown one
            pairs.insert(i, rnd.choice([pairs[i], '"extra":1']))
        else:  # the key
            key = rnd.choice([b"", key + b"x", key.upper()])
    text = "{" + ",".join(pairs) + "}"
    cut = rnd.random()
    if cut < 0.05:
        text = text[: rnd.randrange(len(text))]
    elif cut < 0.1:
        text += rnd.choice([" ", "\n", "x", "}"])
    return text.encode("utf-8", "surrogateescape"), key


@settings(
    max_examples=3000, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=0, max_value=10_000))
def test_the_fast_path_never_takes_what_the_slow_path_refuses(seed: int, which: int) -> None:
    """Hostile and odd messages: whatever the fast path takes, the slow path takes too and
    stores the same bytes; what the slow path refuses, the fast path leaves to it."""
    lines = _some_lines()
    value, key = mutate(lines[which % len(lines)], random.Random(seed))
    made = _fast().convert(value, key)
    expected = slow_document(value, key)
    if made is not None:
        assert made[0] == expected, value
    elif expected is not None:
        # a good event left to the slow path: never one in the contract's order and orjson's
        # own form (the engine's differs only by escaping what is not ASCII)
        event = orjson.loads(value)
        assert list(event) != list(FIELD_NAMES) or orjson.dumps(event) != value, value


_CACHE: dict[str, Any] = {}


def _some_lines() -> list[str]:
    if "lines" not in _CACHE:
        _CACHE["lines"] = lines_of("fraud-ring", 600) + lines_of("seed-demo", 50)
    return _CACHE["lines"]  # type: ignore[no-any-return]


def _fast() -> Any:
    if "fast" not in _CACHE:
        _CACHE["fast"] = contract()
    return _CACHE["fast"]


def test_a_contract_the_check_cannot_hold_is_refused():
    """The rules read tx_id and account as strings, amount and seq as integers...: a contract
    where they are of another kind, or a second initialisation, is an error, not a wrong check
    (the sink then decodes in Python)."""
    from sink import _fast

    args: list[Any] = list(arguments())
    make: Any = _fast.Contract
    made = make(*args)
    with pytest.raises(RuntimeError):
        made.__init__(*args)
    account = FIELD_NAMES.index("account")
    kinds = bytearray(args[1])
    kinds[account] = 3  # an integer
    with pytest.raises(ValueError, match="another kind"):
        make(args[0], bytes(kinds), *args[2:])
    with pytest.raises(ValueError, match="max_bytes"):
        make(*args[:6], 0)
