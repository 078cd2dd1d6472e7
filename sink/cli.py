"""`bankstream sink`: Kafka -> MongoDB, several processes in one consumer group."""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
from typing import Any

from bankstream import kafka, metrics
from bankstream.commands import settings_from, summary, topic
from bankstream.durations import parse_duration
from bankstream.errors import UsageError
from scenarios.model import Delivery, Sink
from sink.consumer import SinkSpec
from sink.coordinator import Coordinator

EPILOG = """A sink process that dies is restarted (after 0.5, 1, 2, 4, 8 s; at most 5 restarts a
minute, then the sink fails); the batch it was writing is finished by whoever gets its
partitions. exit codes: 0 stopped (SIGINT/SIGTERM, or --until-idle) with every batch read written
and its offsets committed; 1 a sink process failed for good; 2 input to correct; 130/143 stopped
at once by a second SIGINT/SIGTERM."""


def register(commands: Any) -> None:
    p = commands.add_parser(
        "sink",
        help=summary("sink"),
        description="Read the events from Kafka and write them to MongoDB: each transaction "
        "once (its tx_id is the _id), the accounts' balances and the dashboard's rollups exact "
        "whatever is replayed or wherever a process dies (docs/sink.md); messages that are not "
        "events go to a dead-letter topic. Several processes share the partitions in one "
        "consumer group. Runs until stopped (or idle, with --until-idle). With --scenario, its "
        "sink and delivery sections give the defaults (topic, batch size, flush interval, "
        "processes, write concern, collections, dead-letter topic); flags win.",
        epilog=EPILOG,
    )
    p.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="take the defaults from this scenario's sink and delivery sections",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of --scenario (repeatable), e.g. sink.batch_size=2000",
    )
    p.add_argument("--group", default="bankstream-sink", metavar="G", help="consumer group")
    p.add_argument(
        "--topic",
        metavar="T",
        type=topic,
        help="the events' topic (default: bankstream.transactions)",
    )
    p.add_argument(
        "--dead-letter-topic",
        metavar="T",
        type=topic,
        help="where bad messages go (default: TOPIC.dlq)",
    )
    p.add_argument("--batch-size", type=int, metavar="N", help="messages a batch (5000)")
    p.add_argument(
        "--flush-interval",
        metavar="D",
        help="the longest a batch waits to fill (default: 200ms)",
    )
    p.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="sink processes in the group (default: 1)",
    )
    p.add_argument(
        "--until-idle",
        metavar="D",
        help="stop once no message came for this long, e.g. 10s (default: run until stopped)",
    )
    p.add_argument(
        "--store-timeout",
        default="30s",
        metavar="D",
        help="the longest a MongoDB operation may take before the sink retries it (30s)",
    )
    p.add_argument(
        "--lease",
        default="20s",
        metavar="D",
        help="how long a batch a sink died writing waits before another sink finishes it (20s): "
        "shorter is a faster takeover, but must stay longer than any write takes (a writer "
        "stalled beyond it can be overtaken; see docs/sink.md)",
    )
    p.add_argument(
        "--no-projections",
        action="store_true",
        help="write transactions only (no accounts, no rollups): to measure what they cost",
    )
    metrics.add_push_flags(p)
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="port of /metrics (default: BANKSTREAM_SINK_METRICS_PORT, 9102; 0: none)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary")
    out.add_argument("--json", action="store_true", help="one JSON line a second on stdout")
    p.add_argument("--fault", help=argparse.SUPPRESS)  # tests: where a process dies
    p.set_defaults(run=run_sink)


def _duration(text: str, flag: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        msg = f"{flag}: {exc}"
        raise UsageError(msg) from None
    if seconds <= 0:
        msg = f"{flag} must be longer than 0, got {text}"
        raise UsageError(msg)
    return seconds


def _defaults(args: argparse.Namespace) -> tuple[Sink, str, dict[str, Any] | None]:
    """The scenario's sink section (or the model's defaults), its topic, and its write concern
    when it gives one."""
    if args.scenario is None:
        if args.set:
            msg = "--set needs --scenario (the scenario whose settings it overrides)"
            raise UsageError(msg)
        return Sink(), Delivery().topic, None
    from scenarios import load

    scenario = load(args.scenario, overrides=args.set).scenario
    concern = scenario.sink.write_concern.model_dump(exclude_unset=True)
    return scenario.sink, scenario.delivery.topic, concern or None


def run_sink(args: argparse.Namespace) -> int:
    defaults, topic, write_concern = _defaults(args)
    args.topic = args.topic or topic
    args.batch_size = args.batch_size if args.batch_size is not None else defaults.batch_size
    args.processes = args.processes if args.processes is not None else defaults.workers
    if not 1 <= args.batch_size <= 100_000:
        msg = f"--batch-size must be between 1 and 100,000, got {args.batch_size}"
        raise UsageError(msg)
    if not 1 <= args.processes <= 256:
        msg = f"--processes must be between 1 and 256, got {args.processes}"
        raise UsageError(msg)
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        msg = f"--metrics-port must be between 0 and 65535, got {args.metrics_port}"
        raise UsageError(msg)
    flush = (
        _duration(args.flush_interval, "--flush-interval")
        if args.flush_interval
        else float(defaults.flush_interval)
    )
    idle = _duration(args.until_idle, "--until-idle") if args.until_idle else None
    store_timeout = _duration(args.store_timeout, "--store-timeout")
    lease = _duration(args.lease, "--lease")
    if lease < 1:
        msg = f"--lease must be at least 1s (longer than a write takes), got {args.lease}"
        raise UsageError(msg)
    settings = settings_from(args)
    kafka.wait_for_metadata(settings, settings.connect_timeout)
    from bankstream import mongo

    mongo.ping(settings)
    dead_letter = args.dead_letter_topic or defaults.dead_letter_topic or f"{args.topic}.dlq"
    admin = kafka.admin_client(settings)
    existing = admin.list_topics(timeout=settings.connect_timeout).topics
    if dead_letter not in existing:
        try:
            kafka.create_topic(admin, dead_letter, 1, 1)
        except Exception as exc:  # created meanwhile by another sink: fine
            if "already exists" not in str(exc).lower():
                msg = (
                    f"cannot create the dead-letter topic {dead_letter}: {settings.scrub(str(exc))}"
                )
                raise UsageError(msg) from None
    # pushed instead of served unless a port is asked for (else Prometheus counts twice)
    default = 0 if args.push else settings.sink_metrics_port
    port = args.metrics_port if args.metrics_port is not None else default
    output = "quiet" if args.quiet else "json" if args.json else "live"
    directory = tempfile.mkdtemp(prefix="bankstream-sink-metrics-")
    on_restart = on_dead = None
    counted = bool(port or args.push)
    if counted:
        metrics.use_directory(directory)  # this process counts the restarts
        from sink.metrics import process_dead, restarts

        on_restart, on_dead = restarts().inc, lambda pid: process_dead(pid, directory)
    stop_serving = metrics.serve(port, directory) if port else None
    pusher = (
        metrics.Pusher(
            settings.pushgateway_url,
            "bankstream-sink",
            {"group": args.group, "instance": socket.gethostname()},
            directory,
            args.push_interval,
            lambda text: print(f"sink: {settings.scrub(text)}", file=sys.stderr, flush=True),
        )
        if args.push
        else None
    )
    kafka_config = kafka.client_config(settings)
    kafka_config.pop("logger", None)
    specs = [
        SinkSpec(
            index=i,
            kafka=kafka_config,
            group=args.group,
            topic=args.topic,
            dead_letter_topic=dead_letter,
            mongo_uri=settings.mongo_uri,
            database=settings.mongo_database,
            collections={
                "transactions": defaults.collections.transactions,
                "accounts": defaults.collections.accounts,
                "rollups": defaults.collections.rollups,
            },
            write_concern=write_concern,
            batch_size=args.batch_size,
            flush_interval=flush,
            until_idle=idle,
            projections=not args.no_projections,
            metrics_dir=directory if counted else None,
            connect_timeout=settings.connect_timeout,
            store_timeout=store_timeout,
            lease=lease,
            verbose=args.verbose,
            fault=args.fault,
        )
        for i in range(args.processes)
    ]
    try:
        return Coordinator(specs, output, on_restart=on_restart, on_dead=on_dead).run()
    finally:
        if pusher is not None:
            pusher.stop()
        if stop_serving:
            stop_serving()
        shutil.rmtree(directory, ignore_errors=True)
