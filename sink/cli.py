"""`bankstream sink`: Kafka -> MongoDB, several processes in one consumer group."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import signal
import tempfile
import time
from typing import Any

from rich.console import Console

from bankstream import kafka, metrics
from bankstream.commands import settings_from, summary, topic
from bankstream.errors import EXIT_FAILURE, UsageError
from bankstream.histogram import LogHistogram
from scenarios.model import Delivery, Sink
from scenarios.types import parse_duration
from sink.consumer import SinkSpec, main

EPILOG = """exit codes: 0 stopped (SIGINT/SIGTERM, or --until-idle) with every batch read written
and its offsets committed; 1 a sink process failed; 2 input to correct."""


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
    port = args.metrics_port if args.metrics_port is not None else settings.sink_metrics_port
    output = "quiet" if args.quiet else "json" if args.json else "live"
    directory = tempfile.mkdtemp(prefix="bankstream-sink-metrics-")
    stop_serving = metrics.serve(port, directory) if port else None
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
            metrics_dir=directory if port else None,
            connect_timeout=settings.connect_timeout,
            store_timeout=store_timeout,
            lease=lease,
            verbose=args.verbose,
            fault=args.fault,
        )
        for i in range(args.processes)
    ]
    try:
        return Coordinator(specs, output).run()
    finally:
        if stop_serving:
            stop_serving()
        shutil.rmtree(directory, ignore_errors=True)


class Coordinator:
    def __init__(self, specs: list[SinkSpec], output: str) -> None:
        self.specs = specs
        self.output = output
        self.console = Console(stderr=True, highlight=False)
        self.signalled: str | None = None
        self.problems: list[str] = []
        self.interval = LogHistogram()  # end-to-end latency since the last progress line

    def _say(self, text: str) -> None:
        if self.output == "live":
            self.console.print(text)
        elif self.output == "json":
            print(json.dumps({"message": text}), flush=True)

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signalled:
            raise KeyboardInterrupt
        self.signalled = name
        self._say(f"{name}: stopping: finishing the batch in hand, committing ...")

    def run(self) -> int:
        context = multiprocessing.get_context("spawn")
        stop, reports = context.Event(), context.Queue()
        processes = [
            context.Process(target=main, args=(spec, stop, reports), daemon=True)
            for spec in self.specs
        ]
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        latest: dict[int, dict[str, Any]] = {}
        finals: dict[int, dict[str, Any]] = {}
        began = time.monotonic()
        try:
            for process in processes:
                process.start()
            self._say(
                f"sink: {len(processes)} processes in group {self.specs[0].group}, "
                f"topic {self.specs[0].topic}"
            )
            last = 0.0
            while len(finals) < len(processes):
                if self.signalled:
                    stop.set()
                try:
                    report = reports.get(timeout=0.25)
                except Exception:
                    report = None
                if report is not None:
                    kind, worker = report["kind"], report["worker"]
                    if kind == "progress":
                        latest[worker] = report
                        self.interval.merge(LogHistogram.from_dict(report["latency_delta"]))
                    elif kind in ("final", "error"):
                        finals[worker] = report
                        if kind == "error":
                            self.problems.append(report["message"])
                            stop.set()
                for i, process in enumerate(processes):
                    if i not in finals and process.exitcode is not None:
                        self.problems.append(
                            f"sink process {i} died (exit code {process.exitcode})"
                        )
                        finals[i] = {"kind": "error", "worker": i}
                        stop.set()
                now = time.monotonic()
                if now - last >= 1.0 and latest:
                    last = now
                    self._show(latest, now - began)
            if self.output == "json" and latest:
                self._show(latest, time.monotonic() - began)  # the last interval's figures
        finally:
            stop.set()
            for process in processes:
                process.join(30)
                if process.is_alive():
                    process.kill()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._finish(finals, time.monotonic() - began)

    def _figures(self, reports: list[dict[str, Any]]) -> dict[str, Any]:
        def total(key: str) -> int:
            return int(sum(r.get(key, 0) or 0 for r in reports))

        return {
            "consumed": total("consumed"),
            "inserted": total("inserted"),
            "duplicates": total("duplicates"),
            "dead_lettered": total("dead"),
            "recovered_batches": total("recovered"),
        }

    def _show(self, latest: dict[int, dict[str, Any]], elapsed: float) -> None:
        figures = self._figures(list(latest.values()))
        lag = sum(r.get("lag", 0) for r in latest.values())
        lag_s = max((r.get("lag_seconds", 0.0) for r in latest.values()), default=0.0)
        p99 = [r["latency_p99"] for r in latest.values() if r.get("latency_p99") is not None]
        line = {
            "elapsed": round(elapsed, 1),
            **figures,
            "lag": lag,
            "lag_seconds": round(lag_s, 2),
            "latency_p99": round(max(p99), 4) if p99 else None,
            # this interval's end-to-end latencies, for percentiles over time (mergeable)
            "latency_histogram": self.interval.to_dict(),
        }
        self.interval = LogHistogram()
        if self.output == "json":
            print(json.dumps(line), flush=True)
        elif self.output == "live":
            self.console.print(
                f"{elapsed:6.0f} s  {figures['inserted']:,} written, {figures['duplicates']:,} "
                f"already there, {figures['dead_lettered']:,} dead-lettered; lag {lag:,} "
                f"({lag_s:.1f} s)" + (f"; end-to-end p99 {max(p99) * 1000:,.0f} ms" if p99 else "")
            )

    def _finish(self, finals: dict[int, dict[str, Any]], elapsed: float) -> int:
        good = [f for f in finals.values() if f.get("kind") == "final"]
        figures = self._figures(good)
        latency = LogHistogram.merged(LogHistogram.from_dict(f["latency"]) for f in good)
        # the write rate: from the first message read to the last write acknowledged (the
        # start-up and the idle wait of --until-idle excluded)
        firsts = [f["first_read"] for f in good if f.get("first_read")]
        lasts = [f["last_written"] for f in good if f.get("last_written")]
        span = max(lasts) - min(firsts) if firsts and lasts else 0.0
        handled = figures["inserted"] + figures["duplicates"]
        summary_ = {
            **figures,
            "seconds": round(elapsed, 2),
            "writing_seconds": round(span, 3),
            "events_per_second": round(handled / span) if span > 0 else None,
            "end_to_end_latency": latency.summary(),
            "paused_seconds": round(max((f["paused_seconds"] for f in good), default=0.0), 2),
            "problems": self.problems,
        }
        if self.output == "json":
            print(json.dumps(summary_), flush=True)
        elif self.output == "live":
            p50, p99 = latency.percentile(0.5), latency.percentile(0.99)
            self.console.print(
                f"sink: {figures['inserted']:,} written, {figures['duplicates']:,} already there, "
                f"{figures['dead_lettered']:,} dead-lettered in {elapsed:.1f} s"
                + (f" ({handled / span:,.0f} events/s writing)" if span > 0 else "")
                + (
                    f"; end-to-end p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms"
                    if p50 is not None and p99 is not None
                    else ""
                )
            )
            for problem in self.problems:
                self.console.print(f"  problem: {problem}")
        return EXIT_FAILURE if self.problems else 0
