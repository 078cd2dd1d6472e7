"""A producer run: its processes, their start and stop, live progress, the manifest.

The coordinator checks everything before a process starts (the plan, the topic, the metrics
port), splits this host's cells between N processes by expected activity (each also takes that
share of the rate), starts them together once every cell is built, shows their progress, and on
SIGINT or SIGTERM (or when a process fails) asks them to stop: each sends the batch in hand,
flushes for at most ``flush_timeout`` seconds and reports. Then the manifest is written.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bankstream import kafka, metrics
from bankstream.errors import EXIT_FAILURE
from bankstream.histogram import LogHistogram
from bankstream.progress import PROGRESS_VERSION, Output, Printer, ProducerTick
from bankstream.settings import Settings
from bankstream.supervisor import Signals, Supervisor
from loadgen.assign import split
from loadgen.errors import LoadgenError, LoadgenUsageError
from loadgen.pacing import Schedule
from loadgen.population import cell_activity
from loadgen.producer import manifest as manifests
from loadgen.producer.client import producer_config
from loadgen.producer.worker import WorkerSpec, main
from loadgen.stream import Plan

log = logging.getLogger(__name__)
EXIT_STOPPED = 130


@dataclass(frozen=True)
class Options:
    processes: int
    topic: str
    run_id: str
    shard: tuple[int, int] | None
    metrics_port: int  # 0: no /metrics
    results: Path
    flush_timeout: float = 30.0
    metrics_linger: float = 3.0  # keep serving /metrics after the end, for a last scrape
    output: Output = "live"
    verbose: int = 0
    write_runs: bool = True  # the manifest to MongoDB too
    push_interval: float | None = None  # push the metrics to the Pushgateway this often


@dataclass
class Result:
    manifest: manifests.Manifest
    path: Path
    exit_code: int
    problems: list[str]


def default_run_id(scenario: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{scenario}-{stamp}-{uuid.uuid4().hex[:4]}"


def ensure_topic(
    settings: Settings,
    name: str,
    partitions: int,
    replication: int,
    config: dict[str, str] | None = None,
    _retried: bool = False,
) -> str:
    """Create the topic when missing (with ``config``, e.g. min.insync.replicas); an existing
    one with fewer partitions than the scenario asks for is refused (its events would spread
    differently). Returns what was done."""
    admin = kafka.admin_client(settings)
    kafka.wait_for_metadata(settings, settings.connect_timeout)
    metadata = admin.list_topics(name, timeout=settings.connect_timeout)
    topic = metadata.topics.get(name)
    if topic is not None and topic.error is None:
        have = len(topic.partitions)
        if have < partitions:
            msg = (
                f"topic {name} has {have} partitions, the scenario asks for {partitions}: give "
                f"another --topic, delete it, or --set delivery.partitions={have}"
            )
            raise LoadgenUsageError(msg)
        return f"topic {name} exists ({have} partitions)"
    try:
        kafka.create_topic(admin, name, partitions, replication, config)
    except Exception as exc:  # e.g. a replication factor above the brokers there are
        if "TOPIC_ALREADY_EXISTS" in str(exc) and not _retried:  # another host was first
            return ensure_topic(settings, name, partitions, replication, config, _retried=True)
        msg = f"cannot create topic {name}: {settings.scrub(str(exc))}"
        raise LoadgenError(msg) from None
    isr = (
        f", min.insync.replicas {config['min.insync.replicas']}"
        if config and "min.insync.replicas" in config
        else ""
    )
    return f"topic {name} created ({partitions} partitions, replication {replication}{isr})"


def tick(
    latest: dict[int, dict[str, Any]], started: float, schedule: Schedule, interval: LogHistogram
) -> ProducerTick:
    """The producer's record of this second: its processes' latest reports summed (``started``:
    when producing began, epoch seconds; ``interval``: this second's delivery latencies)."""
    elapsed = max(0.0, time.time() - started) if started else 0.0

    def total(key: str) -> float:
        return float(sum(r.get(key, 0) or 0 for r in latest.values()))

    lat = [float(r["latency_p99"]) for r in latest.values() if r.get("latency_p99") is not None]
    lag = max((float(r.get("lag", 0.0)) for r in latest.values()), default=0.0)
    duration = schedule.duration
    paced = schedule.paced
    return {
        "record": "tick",
        "v": PROGRESS_VERSION,
        "elapsed": round(elapsed, 1),
        "remaining": round(max(0.0, duration - elapsed), 1) if duration else None,
        "target_rate": round(schedule.rate_at(elapsed), 1) if paced else None,
        "rate": round(total("rate"), 1),
        "produced": int(total("produced")),
        "acked": int(total("acked")),
        "failed": int(total("failed")),
        "queue": int(total("queue")),
        "schedule_lag": round(lag, 3),
        "stall": round(total("stall"), 1),
        "latency_p99": round(max(lat), 4) if lat else None,
        # this interval's delivery latencies, for percentiles over time (mergeable)
        "latency_histogram": interval.to_dict(),
    }


class Coordinator:
    def __init__(self, settings: Settings, run: Plan, schedule: Schedule, options: Options) -> None:
        self.settings = settings
        self.run = run
        self.schedule = schedule
        self.options = options
        self.console = Console(stderr=True, highlight=False)
        self.printer = Printer(options.output)
        self.problems: list[str] = []
        self.signalled: str | None = None
        self.interval = LogHistogram()  # delivery latency since the last progress line

    def start(self) -> Result:
        options, run, settings = self.options, self.run, self.settings
        scenario = run.loaded.scenario
        delivery = scenario.delivery
        note = ensure_topic(
            settings, options.topic, delivery.partitions, delivery.replication_factor
        )
        self._say(note)
        activity = run.model.cell_activity(cell_activity)
        parts = [r for r in split(run.cells, activity, options.processes) if len(r)]
        for key in [k for k in run.model.cache if isinstance(k, tuple) and k[0] == "customers"]:
            del run.model.cache[key]  # the processes draw their own
        config = {
            "bootstrap.servers": settings.kafka_bootstrap,
            **producer_config(settings.kafka_config, delivery),
        }
        metrics_dir = tempfile.mkdtemp(prefix="bankstream-metrics-")
        stop_serving = (
            metrics.serve(options.metrics_port, metrics_dir) if options.metrics_port else None
        )
        counted = bool(options.metrics_port or options.push_interval)
        pusher = (
            metrics.Pusher(
                settings.pushgateway_url,
                "bankstream-loadgen",
                {
                    "run_id": options.run_id,
                    "shard": f"{options.shard[0]}" if options.shard else "all",
                },
                metrics_dir,
                options.push_interval,
                lambda text: self._say(settings.scrub(text)),
            )
            if options.push_interval
            else None
        )
        specs = [
            WorkerSpec(
                index=i,
                loaded=run.loaded,
                events=run.events,
                cells=cells,
                run_id=options.run_id,
                schedule=self.schedule,
                topic=options.topic,
                kafka=config,
                metrics_dir=metrics_dir if counted else None,
                duration=self.schedule.length if not self.schedule.paced else None,
                flush_timeout=options.flush_timeout,
                verbose=options.verbose,
            )
            for i, cells in enumerate(parts)
        ]
        # one supervisor, no restarts: a producer process that died took events with it that
        # another would send twice; the run fails, saying which
        supervisor: Supervisor[WorkerSpec] = Supervisor(
            main,
            specs,
            "producer process",
            last_kinds=("final", "error"),
            shared=lambda context: (context.RawValue("d", 0.0),),
        )
        signals = Signals(self._on_signal).__enter__()
        finals: dict[int, dict[str, Any]] = {}
        try:
            supervisor.start()
            self._say(
                f"building {len(run.cells)} cells in {len(specs)} processes "
                f"({run.own_events or 'unbounded'} events) ..."
            )
            finals = self._watch(supervisor)
        except KeyboardInterrupt:  # a second signal: the processes end at once, unflushed
            supervisor.kill()
            raise
        finally:
            supervisor.end(options.flush_timeout + 10)
            signals.__exit__(None, None, None)
        try:
            return self._finish(finals, len(specs))
        finally:
            if pusher is not None:
                pusher.stop()  # what it ended with, before the files go
            if stop_serving:
                if options.metrics_linger > 0:
                    self._say(f"done: serving /metrics for {options.metrics_linger:g} s more")
                    time.sleep(options.metrics_linger)
                stop_serving()
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _on_signal(self, name: str) -> None:
        """The first SIGINT/SIGTERM (a second one stops waiting for the flush)."""
        self.signalled = name
        self._say(f"{name}: stopping: sending what is in hand, then flushing ...")

    def _say(self, text: str) -> None:
        self.printer.say(text)

    def _watch(self, supervisor: Supervisor[WorkerSpec]) -> dict[int, dict[str, Any]]:
        (start_at,) = supervisor.shared
        n = len(supervisor.slots)
        ready: set[int] = set()
        finals: dict[int, dict[str, Any]] = {}
        latest: dict[int, dict[str, Any]] = {}
        live = None
        if self.options.output == "live" and self.console.is_terminal:
            live = Live(console=self.console, refresh_per_second=4, transient=False)
            live.start()
        last_print = 0.0
        try:
            while supervisor.running():
                if self.signalled and not supervisor.stopping:
                    supervisor.stop()
                for event in supervisor.events(0.25):
                    worker, report = event.worker, event.record
                    if event.kind in ("died", "failed"):
                        self.problems.append(event.message)
                        finals[worker] = {"kind": "error", "worker": worker}
                        supervisor.stop()
                        continue
                    kind = report.get("kind")
                    if kind == "ready":
                        ready.add(worker)
                        if len(ready) == n and not start_at.value:
                            start_at.value = time.time() + 0.2
                            self._say(f"run {self.options.run_id}: producing")
                    elif kind == "progress":
                        latest[worker] = report
                        self.interval.merge(LogHistogram.from_dict(report["latency_delta"]))
                    elif kind == "final":
                        finals[worker] = report
                    elif kind == "error":
                        self.problems.append(report["message"])
                        finals[worker] = report
                        supervisor.stop()
                now = time.monotonic()
                if now - last_print >= (1.0 if self.options.output == "json" else 0.25):
                    last_print = now
                    self._show(latest, start_at.value, live)
            if self.options.output == "json":
                self._show(latest, start_at.value, live)  # the last interval's figures
        finally:
            if live is not None:
                live.stop()
        return finals

    def _aggregate(self, latest: dict[int, dict[str, Any]], started: float) -> ProducerTick:
        return tick(latest, started, self.schedule, self.interval)

    def _show(self, latest: dict[int, dict[str, Any]], started: float, live: Live | None) -> None:
        if not latest:
            return
        figures = self._aggregate(latest, started)
        self.interval = LogHistogram()
        if self.options.output == "json":
            self.printer.emit(figures)
            return
        if live is None:
            return
        table = Table(show_header=False, box=None, pad_edge=False)
        remaining = figures["remaining"]
        table.add_row(
            "elapsed",
            f"{figures['elapsed']:.0f} s"
            + (f" (remaining {remaining:.0f} s)" if remaining else ""),
        )
        target = figures["target_rate"]
        table.add_row(
            "rate",
            f"{figures['rate']:,.0f}/s" + (f" (target {target:,.0f}/s)" if target else " (max)"),
        )
        table.add_row(
            "events",
            f"{figures['acked']:,} acked of {figures['produced']:,} produced, "
            f"{figures['failed']:,} failed, {figures['queue']:,} in the clients' queues",
        )
        p99 = figures["latency_p99"]
        table.add_row(
            "latency",
            f"delivery p99 {p99 * 1000:,.0f} ms" if p99 is not None else "-",
        )
        table.add_row(
            "schedule lag",
            f"{figures['schedule_lag'] * 1000:,.0f} ms, stalled {figures['stall']:.1f} s",
        )
        live.update(table)

    def _finish(self, finals: dict[int, dict[str, Any]], processes: int) -> Result:
        options, run = self.options, self.run
        good = [f for f in finals.values() if f.get("kind") == "final"]
        ended = (
            "failed"
            if self.problems
            else "stopped"
            if self.signalled or any(f.get("ended") == "stopped" for f in good)
            else "complete"
        )
        record = manifests.build(
            run.loaded,
            run_id=options.run_id,
            topic=options.topic,
            schedule=self.schedule,
            events=run.events,
            cells=run.cells,
            shard=options.shard,
            processes=processes,
            finals=good,
            ended=ended,
            environment=manifests.environment(self.settings.kafka_bootstrap),
        )
        if self.problems:
            record["problems"] = self.problems
        path = manifests.write(record, options.results, options.shard)
        if options.write_runs:
            self._store(record)
        counts = record["events"]
        if self.problems or counts["failed"] or counts["unsent"] or counts["purged"]:
            code = EXIT_FAILURE
        elif ended == "stopped":
            code = EXIT_STOPPED
        else:
            code = 0
        return Result(record, path, code, list(self.problems))

    def _store(self, record: manifests.Manifest) -> None:
        """The manifest in MongoDB's runs collection too (a warning when it cannot be)."""
        from bankstream import mongo

        collection = self.run.loaded.scenario.sink.collections.runs
        document = {**record, "_id": self._document_id(record)}
        try:
            with mongo.client(self.settings) as client:
                db = client[self.settings.mongo_database]
                db[collection].replace_one({"_id": document["_id"]}, document, upsert=True)
        except Exception as exc:
            reason = self.settings.scrub(str(exc).split(", Timeout:")[0])
            print(
                f"bankstream: warning: could not store the manifest in MongoDB "
                f"({self.settings.mongo_uri_redacted}: {reason}); it is in results/",
                file=sys.stderr,
            )

    def _document_id(self, record: manifests.Manifest) -> str:
        shard = self.options.shard
        run_id = str(record["run_id"])
        return run_id if shard is None else f"{run_id}/shard-{shard[0]}-of-{shard[1]}"


def default_processes() -> int:
    return max(1, os.cpu_count() or 1)
