"""`bankstream watch`: measure a Kafka -> MongoDB pipeline that bankstream does not run.

The watcher never asks the pipeline anything. It reads what any pipeline leaves behind:

- **throughput**: the target collection's document count, asked every second (from the count
  when the watch began);
- **lag**: the pipeline's consumer group offsets when its group is known (messages, and the age
  of the oldest message not yet committed over the partitions), else the messages in the topic
  not yet in the store; an age comes from each partition's end offsets, sampled every second and
  interpolated between samples (with ``--from-start``, from each partition's first message);
- **end-to-end latency** by sampled probes: the watcher reads the topic itself (a consumer of
  no group, from the end), takes ``probes`` messages a second, and asks the store for them by id
  every ``poll`` seconds; an event's latency is the time its document was first seen less the
  message's Kafka timestamp (the producer's send time). The resolution is the poll interval
  plus one query. Change streams would give every document's write time, but the local
  MongoDB-wire server has none, so probes are what is measured everywhere.

It prints the same JSON lines as `bankstream sink --json` (``inserted``, ``lag``,
``lag_seconds``, ``latency_histogram`` a second, a summary at the end), so `bankstream run`
follows any pipeline as it follows its own sink, and adds ``quiet``: the stored count has not
moved for a while and, when the group is known, it has committed everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bankstream import progress
from bankstream.errors import BankstreamError, UsageError
from bankstream.histogram import LogHistogram
from bankstream.progress import PROGRESS_VERSION, WatchRecord
from bankstream.supervisor import Signals

PROBES_PER_SECOND = 10.0
POLL_SECONDS = 0.05
MOST_PENDING = 2_000  # probes waiting for their document at once (then new ones are skipped)
GIVE_UP = 300.0  # seconds after which a probe's document is taken as never coming
SAMPLE_KEPT = 1_000  # probed events kept whole for the field-by-field check
QUIET_WITH_GROUP = 5.0  # seconds the count stays put, every offset committed: drained
QUIET_WITHOUT_GROUP = 15.0  # seconds the count stays put, the group unknown: drained


@dataclass(frozen=True)
class Target:
    """Where a pipeline stores the events: ``database.collection``, the event's id field, and
    the field that holds the event (None: the event's fields are the document's own)."""

    database: str
    collection: str
    id_field: str = "tx_id"
    event_field: str | None = None

    @classmethod
    def parse(cls, text: str, id_field: str = "tx_id", event_field: str | None = None) -> Target:
        database, dot, collection = text.partition(".")
        if not dot or not database or not collection:
            msg = (
                f"--target must be DATABASE.COLLECTION, e.g. bankstream.transactions, got {text!r}"
            )
            raise UsageError(msg)
        for name, value in (("--id-field", id_field), ("--event-field", event_field)):
            if value is not None and (not value or value.startswith(("$", ".")) or ".." in value):
                msg = f"{name} must be a field name or a dotted path, got {value!r}"
                raise UsageError(msg)
        return cls(database, collection, id_field, event_field)

    @property
    def text(self) -> str:
        return f"{self.database}.{self.collection}"

    def path(self, name: str) -> str:
        """The document path of the event's field ``name``."""
        return f"{self.event_field}.{name}" if self.event_field else name

    def event_of(self, document: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The event a stored document holds (None: not there)."""
        if not self.event_field:
            return document
        found: Any = document
        for part in self.event_field.split("."):
            if not isinstance(found, Mapping):
                return None
            found = found.get(part)
        return found if isinstance(found, Mapping) else None


def id_mode(document: Mapping[str, Any], target: Target) -> str:
    """How a pipeline keys its documents, seen on one of them: ``id`` (``_id`` is the event's
    id), ``id-doc`` (``_id`` is ``{id_field: id}``, as the MongoDB connector's partial value
    strategy makes it) or ``field`` (anything else: look documents up by the id field)."""
    event = target.event_of(document)
    if event is None:
        return "field"
    value = get_path(event, target.id_field)
    key = document.get("_id")
    if value is not None and key == value:
        return "id"
    if isinstance(key, Mapping) and list(key) == [target.id_field.rsplit(".", 1)[-1]]:
        return "id-doc"
    return "field"


def lookup(ids: list[str], mode: str, target: Target) -> dict[str, Any]:
    """A query for the documents of these event ids (the ``_id`` index where the mode allows)."""
    if mode == "id":
        return {"_id": {"$in": ids}}
    if mode == "id-doc":
        leaf = target.id_field.rsplit(".", 1)[-1]
        return {"_id": {"$in": [{leaf: i} for i in ids]}}
    return {target.path(target.id_field): {"$in": ids}}


def get_path(event: Mapping[str, Any], dotted: str) -> Any:
    found: Any = event
    for part in dotted.split("."):
        if not isinstance(found, Mapping):
            return None
        found = found.get(part)
    return found


@dataclass
class Probe:
    id: str
    sent: float  # epoch seconds (the message's Kafka timestamp)


@dataclass
class Offsets:
    """The topic's end offsets (summed over partitions) a second, to turn a count of messages
    behind into an age."""

    history: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=86_400))

    def add(self, when: float, total: int) -> None:
        self.history.append((when, total))

    def age(self, done: int, now: float) -> float:
        """Seconds since the topic first held more than ``done`` messages (0: none behind)."""
        if not self.history or self.history[-1][1] <= done:
            return 0.0
        before: tuple[float, int] | None = None
        for when, total in self.history:
            if total > done:
                if before is None:
                    return max(0.0, now - when)
                # the moment between two samples when the topic passed ``done`` (linear)
                t0, n0 = before
                passed = t0 + (when - t0) * (done + 1 - n0) / (total - n0)
                return max(0.0, now - passed)
            before = (when, total)
        return 0.0


class Watcher:
    """One watch of ``topic`` into ``target``; :meth:`run` until :meth:`stop`."""

    def __init__(
        self,
        settings: Any,
        topic: str,
        target: Target,
        group: str | None = None,
        wait_for_group: float = 0.0,
        probes: float = PROBES_PER_SECOND,
        poll: float = POLL_SECONDS,
        sample_file: Path | None = None,
        output: str = "json",
        from_start: bool = False,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.target = target
        self.group = group
        self.wait_for_group = wait_for_group
        self.probes = probes
        self.poll = poll
        self.sample_file = sample_file
        self.output = output
        self.from_start = from_start  # the topic holds the run's events alone, a backlog first
        self.stopping = threading.Event()
        self.pending: OrderedDict[str, Probe] = OrderedDict()
        self.kept: list[dict[str, Any]] = []
        self.interval = LogHistogram()
        self.latency = LogHistogram()
        self.mode: str | None = None
        self.counts = {
            "seen": 0,
            "probed": 0,
            "found": 0,
            "skipped": 0,
            "unreadable": 0,
            "given_up": 0,
        }
        self.offsets = Offsets()  # the topic's end offsets summed (lag without a group)
        self.history: dict[int, Offsets] = defaultdict(Offsets)  # each partition's
        self.unseeded: set[int] = set()  # (--from-start) partitions whose first message is unseen
        self.problems: list[str] = []

    def stop(self, *_: object) -> None:
        self.stopping.set()

    # ------------------------------------------------------------------ output

    def _emit(self, line: WatchRecord) -> None:
        if self.output == "json":
            print(json.dumps(line), flush=True)
        elif self.output == "live" and line["record"] == "message":
            print(line["message"], flush=True)
        elif self.output == "live" and line["record"] == "tick":
            p99 = self.interval.percentile(0.99)
            print(
                f"{line['elapsed']:6.0f} s  {line['inserted']:,} stored; lag {line['lag']:,} "
                f"({line['lag_seconds']:.1f} s)"
                + (f"; end-to-end p99 {p99 * 1000:,.0f} ms" if p99 is not None else ""),
                flush=True,
            )

    # ------------------------------------------------------------------ the watch

    def run(self) -> int:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition
        from pymongo.errors import PyMongoError

        from bankstream import kafka, mongo

        admin = kafka.admin_client(self.settings)
        try:
            metadata = admin.list_topics(self.topic, timeout=self.settings.connect_timeout)
        except KafkaException as exc:
            msg = f"Kafka did not answer for topic {self.topic}: {self.settings.scrub(str(exc))}"
            raise BankstreamError(msg) from None
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            msg = f"topic {self.topic} does not exist: create it first (bankstream run does)"
            raise UsageError(msg)
        partitions = sorted(found.partitions)
        reader = kafka.consumer(
            self.settings,
            **{
                "group.id": f"bankstream-watch-{time.time_ns():x}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            },
        )
        start = OFFSET_BEGINNING if self.from_start else OFFSET_END
        reader.assign([TopicPartition(self.topic, p, start) for p in partitions])
        if self.from_start:
            self.unseeded = set(partitions)
        group_reader = (
            kafka.consumer(self.settings, **{"group.id": self.group, "enable.auto.commit": False})
            if self.group
            else None
        )
        client = mongo.client(self.settings)
        collection = client[self.target.database][self.target.collection]
        try:
            # what the target and the topic hold before the pipeline writes a thing
            try:
                base_count = int(collection.estimated_document_count())
            except PyMongoError as exc:
                reason = self.settings.scrub(str(exc))[:200]
                msg = f"MongoDB did not count {self.target.text}: {reason}"
                raise BankstreamError(msg) from None
            ends = {} if self.from_start else self._ends(admin, partitions)
            base_end = 0 if self.from_start else (sum(ends.values()) if ends else None)
            for partition, end in (ends or {}).items():
                self.history[partition].add(time.time(), end)
            if self.output == "json":  # (bankstream run may start the pipeline now)
                self._emit({"record": "started", "v": PROGRESS_VERSION})
            if self.group and self.wait_for_group > 0 and not self._await_group(admin):
                return 130 if self.stopping.is_set() else 1
            self._emit(
                progress.message(
                    f"watching {self.target.text} for topic {self.topic} "
                    f"(probes {self.probes:g}/s every {self.poll * 1000:.0f} ms; lag "
                    + (f"from group {self.group})" if self.group else "store behind topic)")
                )
            )
            return self._loop(
                admin, reader, group_reader, collection, partitions, base_count, base_end
            )
        finally:
            reader.close()
            if group_reader is not None:
                group_reader.close()
            client.close()
            self._write_sample()

    def _await_group(self, admin: Any) -> bool:
        """Until the group has a member reading the topic (or the wait ends: one problem)."""
        if self.output == "live":  # (bankstream run says it itself: its first line means ready)
            print(f"waiting for consumer group {self.group} to read {self.topic}", flush=True)
        deadline = time.monotonic() + self.wait_for_group
        while not self.stopping.is_set():
            if _group_reads(admin, self.group or "", self.topic):
                return True
            if time.monotonic() > deadline:
                print(
                    f"bankstream watch: error: consumer group {self.group} did not start reading "
                    f"{self.topic} within {self.wait_for_group:g} s: start the pipeline with that "
                    "group, or give another --wait-for-group",
                    file=sys.stderr,
                    flush=True,
                )
                return False
            self.stopping.wait(1.0)
        return False

    def _ends(self, admin: Any, partitions: list[int]) -> dict[int, int] | None:
        """Each partition's end offset (None: the broker away this second)."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        try:
            futures = admin.list_offsets(
                {TopicPartition(self.topic, p): latest for p in partitions}, request_timeout=5
            )
            return {tp.partition: int(f.result(timeout=5).offset) for tp, f in futures.items()}
        except Exception:  # the broker away: unknown this second
            return None

    def _loop(
        self,
        admin: Any,
        reader: Any,
        group_reader: Any,
        collection: Any,
        partitions: list[int],
        base_count: int,
        base_end: int | None,
    ) -> int:
        from pymongo.errors import PyMongoError

        from bankstream import kafka

        began = time.monotonic()
        next_report = began + 1.0
        next_poll = began
        last_probe = 0.0
        stored = 0
        moved_at = time.monotonic()  # when the stored count last changed
        first_stored: float | None = None
        last_stored: float | None = None
        lag = 0
        lag_seconds = 0.0
        committed_all = False
        while not self.stopping.is_set():
            messages = reader.consume(num_messages=5_000, timeout=0.02)
            self.counts["seen"] += len(messages)
            if self.unseeded:
                self._seed(messages)
            now = time.time()
            for message in messages:
                if now - last_probe < 1.0 / self.probes:
                    break  # (a probe is due at most once a batch: k a second of a loop's ~50)
                if message.error() is None:
                    last_probe = now
                    self._sample(message.value(), message.timestamp()[1] / 1000.0)
            now_m = time.monotonic()
            if self.pending and now_m >= next_poll:
                # a lookup by a field the server may not index: once a second
                slow = self.mode == "field"
                next_poll = now_m + (max(self.poll, 1.0) if slow else self.poll)
                with contextlib.suppress(PyMongoError):  # the store away: asked again
                    self._resolve(collection)
            if now_m < next_report:
                continue
            self._expire(now)
            try:
                count: int | None = int(collection.estimated_document_count()) - base_count
            except PyMongoError:  # unknown is not still: the drain does not take it as quiet
                count = None
                moved_at = now_m
            if count is not None and count != stored:
                moved_at = now_m
                last_stored = now_m
                if first_stored is None:
                    first_stored = now_m
                stored = count
            ends = self._ends(admin, partitions)
            wall = time.time()
            end = sum(ends.values()) if ends is not None else None
            if ends is not None and end is not None:
                self.offsets.add(wall, end)
                for partition, at in ends.items():
                    self.history[partition].add(wall, at)
            if group_reader is not None:
                offsets = kafka.group_offsets(admin, group_reader, self.topic)
                committed_all = False  # (unknown this second: not drained)
                if offsets is not None:
                    lag = sum(max(0, e - done) for e, done in offsets.values())
                    # the oldest message not yet committed, over the partitions
                    lag_seconds = max(
                        (self.history[p].age(done, wall) for p, (_, done) in offsets.items()),
                        default=0.0,
                    )
                    committed_all = lag == 0
            elif end is not None and base_end is not None:
                lag = max(0, (end - base_end) - stored)
                lag_seconds = self.offsets.age(base_end + stored, wall)
            still = now_m - moved_at
            quiet = (
                still >= QUIET_WITH_GROUP and committed_all
                if group_reader is not None
                else still >= QUIET_WITHOUT_GROUP
            )
            self._emit(
                {
                    "record": "tick",
                    "v": PROGRESS_VERSION,
                    "elapsed": round(now_m - began, 1),
                    "inserted": stored,
                    "duplicates": 0,
                    "dead_lettered": 0,
                    "lag": lag,
                    "lag_seconds": round(lag_seconds, 2),
                    "quiet": quiet,
                    "probes_pending": len(self.pending),
                    "latency_histogram": self.interval.to_dict(),
                }
            )
            self.interval = LogHistogram()
            # a second that took long (a broker or store away) is one line, not a burst
            next_report = max(next_report + 1.0, time.monotonic() + 0.5)
        span = last_stored - first_stored if first_stored and last_stored else 0.0
        self._emit(
            {
                "record": "summary",
                "v": PROGRESS_VERSION,
                "inserted": stored,
                "duplicates": 0,
                "dead_lettered": 0,
                "seconds": round(time.monotonic() - began, 2),
                "writing_seconds": round(span, 3),
                "events_per_second": round(stored / span) if span > 0 else None,
                "end_to_end_latency": self.latency.summary(),
                "probes": {
                    **self.counts,
                    "never_seen": len(self.pending) + self.counts["given_up"],
                    "per_second": self.probes,
                    "poll_seconds": self.poll,
                    "id_mode": self.mode,
                },
                "method": {
                    "throughput": "the target's document count, every second",
                    "lag": f"consumer group {self.group}'s committed offsets"
                    if self.group
                    else "messages in the topic not yet in the store",
                    "latency": f"{self.counts['found']} probes ({self.probes:g} a second), "
                    f"looked up every {self.poll * 1000:.0f} ms",
                },
                "problems": self.problems,
            }
        )
        return 0

    def _seed(self, messages: list[Any]) -> None:
        """(--from-start) a partition's first message read: when the topic began to hold it
        (its timestamp), so that a backlog's age counts from there, not from the watch's start."""
        for message in messages:
            partition = message.partition()
            if partition in self.unseeded and message.error() is None:
                self.unseeded.discard(partition)
                sent = message.timestamp()[1] / 1000.0
                self.history[partition].history.appendleft((sent, int(message.offset())))

    def _expire(self, now: float) -> None:
        """Probes waiting longer than ``GIVE_UP`` are never seen (their events lost, or kept
        where the watch does not look): they stop taking the lookups' room."""
        while self.pending:
            ident, probe = next(iter(self.pending.items()))
            if now - probe.sent <= GIVE_UP:
                break
            del self.pending[ident]
            self.counts["given_up"] += 1

    def _sample(self, value: bytes | None, sent: float) -> None:
        """Take one message as a probe (its id; the whole event for the field check)."""
        if len(self.pending) >= MOST_PENDING:
            self.counts["skipped"] += 1
            return
        try:
            event = json.loads(value or b"")
        except ValueError:
            self.counts["unreadable"] += 1
            return
        ident = get_path(event, self.target.id_field) if isinstance(event, dict) else None
        if not isinstance(ident, str) or ident in self.pending:
            self.counts["unreadable"] += 1
            return
        self.pending[ident] = Probe(ident, sent)
        self.counts["probed"] += 1
        if len(self.kept) < SAMPLE_KEPT:
            self.kept.append(event)

    def _resolve(self, collection: Any) -> None:
        """Ask the store for the pending probes; each one found has its latency."""
        if self.mode is None:
            document = collection.find_one({self.target.path(self.target.id_field): {"$exists": 1}})
            if document is None:
                return
            self.mode = id_mode(document, self.target)
        waiting = list(self.pending)
        # the oldest and the newest: probes whose documents never come do not starve new ones
        ids = waiting if len(waiting) <= 500 else waiting[:250] + waiting[-250:]
        found = collection.find(lookup(ids, self.mode, self.target), {"_id": 1, **self._id_proj()})
        now = time.time()
        for document in found:
            ident = self._ident(document)
            probe = self.pending.pop(ident, None) if ident is not None else None
            if probe is None:
                continue
            latency = max(0.0, now - probe.sent)
            self.interval.add([latency])
            self.latency.add([latency])
            self.counts["found"] += 1

    def _id_proj(self) -> dict[str, int]:
        return {} if self.mode in ("id", "id-doc") else {self.target.path(self.target.id_field): 1}

    def _ident(self, document: Mapping[str, Any]) -> str | None:
        key = document.get("_id")
        if self.mode == "id":
            return key if isinstance(key, str) else None
        if self.mode == "id-doc" and isinstance(key, Mapping):
            value = next(iter(key.values()), None)
            return value if isinstance(value, str) else None
        event = self.target.event_of(document)
        value = get_path(event, self.target.id_field) if event is not None else None
        return value if isinstance(value, str) else None

    def _write_sample(self) -> None:
        if self.sample_file is None:
            return
        with self.sample_file.open("w") as out:
            for event in self.kept:
                out.write(json.dumps(event) + "\n")


def _group_reads(admin: Any, group: str, topic: str) -> bool:
    """True when ``group`` has a member assigned a partition of ``topic``."""
    try:
        described = admin.describe_consumer_groups([group], request_timeout=5)[group].result(5)
    except Exception:  # not there yet, or the broker busy: asked again
        return False
    for member in described.members or []:
        assignment = member.assignment
        for tp in getattr(assignment, "topic_partitions", None) or []:
            if tp.topic == topic:
                return True
    return False


def sampled(path: Path) -> Iterator[dict[str, Any]]:
    """The events a watch kept whole (see ``--sample-file``)."""
    if not path.is_file():
        return
    with path.open() as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def compare_sample(
    collection: Any, target: Target, events: list[dict[str, Any]], shown: int = 3
) -> tuple[int, int, list[str]]:
    """Each sampled event against its stored document, field by field (the document may hold
    more fields; numbers compare by value; the delivery marks are not compared). (checked,
    differing, examples)."""
    if not events:
        return 0, 0, []
    ids = [str(get_path(e, target.id_field)) for e in events]
    stored: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(ids), 500):
        query = {target.path(target.id_field): {"$in": ids[start : start + 500]}}
        for document in collection.find(query):
            event = target.event_of(document)
            if event is not None:
                stored.setdefault(str(get_path(event, target.id_field)), event)
    differing, examples = 0, list[str]()
    for ident, event in zip(ids, events, strict=True):
        have = stored.get(ident)
        if have is None:
            continue  # lost: counted by the verification
        wrong = [
            k
            for k, v in event.items()
            if k not in DELIVERY_FIELDS and not _same(have.get(k, _MISSING), v)
        ]
        if wrong:
            differing += 1
            if len(examples) < shown:
                k = wrong[0]
                examples.append(
                    f"{ident}: {k} stored {have.get(k, '(missing)')!r}, sent {event[k]!r}"
                )
    return len(stored), differing, examples


_MISSING = object()
# how a copy was delivered, not what the transaction is: a marked replay stored over its first
# copy (a replace-upsert keeps the last) differs there and nowhere else
DELIVERY_FIELDS = frozenset({"duplicate", "delayed", "send_time"})


def _same(stored: Any, sent: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return stored is sent or stored == sent and type(stored) is type(sent)
    if isinstance(sent, int | float) and isinstance(stored, int | float):
        return float(stored) == float(sent)
    if isinstance(sent, dict) and isinstance(stored, Mapping):
        return set(sent) <= set(stored) and all(_same(stored[k], v) for k, v in sent.items())
    if isinstance(sent, list) and isinstance(stored, list):
        return len(sent) == len(stored) and all(
            _same(a, b) for a, b in zip(stored, sent, strict=True)
        )
    return bool(stored == sent)


def run_watch(args: argparse.Namespace) -> int:
    from bankstream.commands import settings_from

    target = Target.parse(args.target, args.id_field, args.event_field)
    if not 0 < args.probes <= 1000:
        msg = f"--probes must be more than 0 and at most 1000 a second, got {args.probes:g}"
        raise UsageError(msg)
    group = args.wait_for_group or args.group
    if args.group and args.wait_for_group and args.group != args.wait_for_group:
        msg = "--group and --wait-for-group name different groups: give one"
        raise UsageError(msg)
    settings = settings_from(args)
    from bankstream import kafka, mongo

    kafka.wait_for_metadata(settings, settings.connect_timeout)  # else one line: what to do
    mongo.ping(settings)
    watcher = Watcher(
        settings,
        args.topic,
        target,
        group=group,
        wait_for_group=args.wait_timeout if args.wait_for_group else 0.0,
        probes=args.probes,
        sample_file=args.sample_file,
        output="json" if args.json else "live",
        from_start=args.from_start,
    )
    with Signals(lambda _: watcher.stop(), lambda _: watcher.stop()):
        return watcher.run()
