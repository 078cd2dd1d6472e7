"""The sink as a library: :func:`run` starts the processes a :class:`SinkRequest` asks for and
supervises them until they end."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from typing import Any

from bankstream import kafka, metrics
from bankstream.errors import UsageError
from bankstream.settings import load_settings
from scenarios.model import Delivery, Sink
from sink.consumer import SinkSpec
from sink.coordinator import Coordinator
from sink.request import SinkRequest


def defaults(request: SinkRequest) -> tuple[Sink, str, dict[str, Any] | None]:
    """The scenario's sink section (or the model's defaults), its topic, and its write concern
    when it gives one."""
    if request.scenario is None:
        return Sink(), Delivery().topic, None
    from scenarios import load

    scenario = load(request.scenario, overrides=list(request.overrides)).scenario
    concern = scenario.sink.write_concern.model_dump(exclude_unset=True)
    return scenario.sink, scenario.delivery.topic, concern or None


def run(request: SinkRequest) -> int:
    """Run the sink the request describes until it ends; its exit code."""
    section, scenario_topic, write_concern = defaults(request)
    topic = request.topic or scenario_topic
    batch_size = request.batch_size if request.batch_size is not None else section.batch_size
    processes = request.processes if request.processes is not None else section.workers
    flush = (
        request.flush_interval
        if request.flush_interval is not None
        else float(section.flush_interval)
    )
    settings = load_settings(request.config)
    kafka.wait_for_metadata(settings, settings.connect_timeout)
    from bankstream import mongo

    mongo.ping(settings)
    dead_letter = request.dead_letter_topic or section.dead_letter_topic or f"{topic}.dlq"
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
    default = 0 if request.push else settings.sink_metrics_port
    port = request.metrics_port if request.metrics_port is not None else default
    directory = tempfile.mkdtemp(prefix="bankstream-sink-metrics-")
    on_restart = on_dead = None
    counted = bool(port or request.push)
    if counted:
        metrics.use_directory(directory)  # this process counts the restarts
        from sink.metrics import process_dead, restarts

        on_restart, on_dead = restarts().inc, lambda pid: process_dead(pid, directory)
    stop_serving = metrics.serve(port, directory) if port else None
    pusher = (
        metrics.Pusher(
            settings.pushgateway_url,
            "bankstream-sink",
            {"group": request.group, "instance": socket.gethostname()},
            directory,
            request.push_interval,
            lambda text: print(f"sink: {settings.scrub(text)}", file=sys.stderr, flush=True),
        )
        if request.push
        else None
    )
    kafka_config = kafka.client_config(settings)
    kafka_config.pop("logger", None)
    specs = [
        SinkSpec(
            index=i,
            kafka=kafka_config,
            group=request.group,
            topic=topic,
            dead_letter_topic=dead_letter,
            mongo_uri=settings.mongo_uri,
            database=settings.mongo_database,
            collections={
                "transactions": section.collections.transactions,
                "accounts": section.collections.accounts,
                "rollups": section.collections.rollups,
            },
            write_concern=write_concern,
            batch_size=batch_size,
            flush_interval=flush,
            until_idle=request.until_idle,
            projections=request.projections,
            metrics_dir=directory if counted else None,
            connect_timeout=settings.connect_timeout,
            store_timeout=request.store_timeout,
            lease=request.lease,
            verbose=request.verbose,
            fault=request.fault,
        )
        for i in range(processes)
    ]
    try:
        return Coordinator(specs, request.output, on_restart=on_restart, on_dead=on_dead).run()
    finally:
        if pusher is not None:
            pusher.stop()
        if stop_serving:
            stop_serving()
        shutil.rmtree(directory, ignore_errors=True)
