"""The progress protocol: what `produce`, `sink`, `watch` and `run` print with ``--json`` (one
record a line on stdout), typed once, and the one printer every command uses.

Each line is a JSON object with ``record`` (``message``, ``tick``, ``summary`` or ``started``)
and ``v`` (:data:`PROGRESS_VERSION`). A ``tick`` comes once a second with that second's figures
and latency histogram (they merge by adding counts); the ``summary`` is the command's last line.
`bankstream run` starts the commands with ``--json`` and reads their lines through
:func:`read`, which refuses a record whose fields are not these (a renamed field fails the unit
tests of its writer, not only an integration run).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

PROGRESS_VERSION = 1
Output = Literal["live", "json", "quiet"]
Histogram = dict[str, Any]  # LogHistogram.to_dict()
Summary = dict[str, float | int | None]  # LogHistogram.summary()
_STRICT = ConfigDict(extra="forbid")


@with_config(_STRICT)
class Message(TypedDict):
    """Something a person should read (what the command does, a problem)."""

    record: Literal["message"]
    v: int
    message: str


@with_config(_STRICT)
class Started(TypedDict):
    """`watch`: it reads the topic and the store (`run` may start the load)."""

    record: Literal["started"]
    v: int


@with_config(_STRICT)
class ProducerTick(TypedDict):
    """`produce`, once a second: the producer's figures so far and this second's latency."""

    record: Literal["tick"]
    v: int
    elapsed: float
    remaining: float | None
    target_rate: float | None
    rate: float
    produced: int
    acked: int
    failed: int
    queue: int
    schedule_lag: float
    stall: float
    latency_p99: float | None
    latency_histogram: Histogram


@with_config(_STRICT)
class ProducerSummary(TypedDict):
    """`produce`'s last line: what was sent, and where the manifest is."""

    record: Literal["summary"]
    v: int
    run_id: str
    ended: str
    made: int
    produced: int
    acked: int
    failed: int
    unsent: int
    purged: int
    wall_seconds: float
    rate: float
    delivery_latency_p50: float | None
    delivery_latency_p99: float | None
    schedule_lag_p99: float | None
    stall_seconds: float
    manifest: str
    problems: list[str]


class SinkFigures(TypedDict):
    """The sink's counts so far, over its processes (restarted ones included)."""

    consumed: int
    inserted: int
    duplicates: int
    dead_lettered: int
    recovered_batches: int


@with_config(_STRICT)
class SinkTick(SinkFigures):
    """`sink`, once a second."""

    record: Literal["tick"]
    v: int
    elapsed: float
    lag: int
    lag_seconds: float
    latency_p99: float | None
    restarts: int
    latency_histogram: Histogram


class Restart(TypedDict):
    worker: int
    after_seconds: float
    why: str


@with_config(_STRICT)
class SinkSummary(SinkFigures):
    """`sink`'s last line."""

    record: Literal["summary"]
    v: int
    seconds: float
    writing_seconds: float
    events_per_second: int | None
    end_to_end_latency: Summary
    paused_seconds: float
    restarts: int
    restarted: list[Restart]
    problems: list[str]


@with_config(_STRICT)
class WatchTick(TypedDict):
    """`watch`, once a second: the target's count, lag and this second's latency probes."""

    record: Literal["tick"]
    v: int
    elapsed: float
    inserted: int
    duplicates: int
    dead_lettered: int
    lag: int
    lag_seconds: float
    quiet: bool
    probes_pending: int
    latency_histogram: Histogram


@with_config(_STRICT)
class WatchSummary(TypedDict):
    """`watch`'s last line."""

    record: Literal["summary"]
    v: int
    inserted: int
    duplicates: int
    dead_lettered: int
    seconds: float
    writing_seconds: float
    events_per_second: int | None
    end_to_end_latency: Summary
    probes: dict[str, Any]
    method: dict[str, str]
    problems: list[str]
    pipeline: NotRequired[dict[str, Any]]


@with_config(_STRICT)
class RunTick(TypedDict):
    """`run`, once a second: the timeline's row (docs/results.md, ``timeline_fields``)."""

    record: Literal["tick"]
    v: int
    t: float
    target_rate: float | None
    produce_rate: float
    sink_rate: float
    acked: int
    sunk: int
    lag: int
    lag_seconds: float
    delivery_p50: float | None
    delivery_p99: float | None
    e2e_p50: float | None
    e2e_p99: float | None
    producer_cpu: float
    sink_cpu: float
    producer_rss: int
    sink_rss: int
    stalled_partitions: int


@with_config(_STRICT)
class RunSummary(TypedDict):
    """`run`'s (and `merge`'s) last line: the verdict and where the result is."""

    record: Literal["summary"]
    v: int
    run_id: str
    verdict: str
    failed: list[str]
    ended: str
    verification: dict[str, Any] | None
    measured: dict[str, Any]
    result: str
    report: str


Source = Literal["producer", "sink", "watch", "run"]
ProducerRecord = Message | ProducerTick | ProducerSummary
SinkRecord = Message | SinkTick | SinkSummary
WatchRecord = Message | Started | WatchTick | WatchSummary
RunRecord = Message | RunTick | RunSummary
AnyRecord = ProducerRecord | SinkRecord | WatchRecord | RunRecord


@cache
def _adapter(source: Source) -> TypeAdapter[Any]:
    kinds: dict[Source, Any] = {
        "producer": ProducerRecord,
        "sink": SinkRecord,
        "watch": WatchRecord,
        "run": RunRecord,
    }
    # told apart by ``record``: a problem is then the record's own, not every kind's
    told_apart: Any = Annotated[kinds[source], Field(discriminator="record")]
    return TypeAdapter(told_apart)


class BadRecord(ValueError):
    """Data that is not a record of its kind, or of another version (its problem in one line).
    The records that cross a process or a file: these progress lines, the run manifest
    (``loadgen.producer.manifest``) and ``result.json`` (``harness.result``)."""


def versioned(adapter: TypeAdapter[Any], data: Any, key: str, version: int, what: str) -> Any:
    """``data`` validated by ``adapter`` once its ``key`` says ``version``; else
    :class:`BadRecord`, naming the first field in question."""
    if not isinstance(data, dict) or data.get(key) != version:
        found = data.get(key) if isinstance(data, dict) else None
        msg = f"{what} version {found!r}, this bankstream reads {version}"
        raise BadRecord(msg)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        msg = f"not a {what} of this bankstream ({where}: {first['msg']})"
        raise BadRecord(msg) from None


def read(source: Source, data: Any) -> AnyRecord:
    """``data`` (a parsed JSON line of ``source``) as its record; :class:`BadRecord` if it is
    not one of them, or of another version."""
    record: AnyRecord = versioned(
        _adapter(source), data, "v", PROGRESS_VERSION, f"{source} progress record"
    )
    return record


def check(source: Source, record: Mapping[str, Any]) -> None:
    """Raise :class:`BadRecord` unless ``record`` is one of ``source``'s (for tests of writers)."""
    read(source, json.loads(json.dumps(record)))


def message(text: str) -> Message:
    return {"record": "message", "v": PROGRESS_VERSION, "message": text}


class Printer:
    """How a command tells what it does, one way for every command: ``live`` prints lines for
    a person on stderr, ``json`` prints records on stdout (one a line, flushed), ``quiet``
    prints nothing."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self._console: Any = None

    @property
    def console(self) -> Any:
        """The rich console of the live output (stderr)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._console

    def say(self, text: str) -> None:
        """A message: a line on stderr (live) or a ``message`` record (json)."""
        if self.output == "live":
            self.console.print(text)
        elif self.output == "json":
            self.emit(message(text))

    def emit(self, record: Mapping[str, Any]) -> None:
        """A record on stdout (json output only)."""
        if self.output == "json":
            print(json.dumps(record), flush=True)

    def live(self, text: str) -> None:
        """A line for a person (live output only)."""
        if self.output == "live":
            self.console.print(text)


def speaker(output: Output) -> Callable[[str], None]:
    """:meth:`Printer.say` of a printer of this output."""
    return Printer(output).say
