"""The pipeline under test of one run: bankstream's own sink, the official MongoDB Kafka sink
connector on Kafka Connect, or an external pipeline of the user's.

For ``connect`` and ``external`` the harness starts `bankstream watch` where it would start the
sink (same JSON lines, so the run follows either the same way); for ``connect`` it also creates
the run's connector before the load and deletes it after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bankstream.settings import Settings
from harness.request import RunRequest
from harness.watch import Target, compare_sample, sampled

GROUP_WAIT = 600.0  # seconds an external pipeline may take to join (--wait-for-group)
CONNECT_WAIT = 120.0  # seconds a new connector's tasks may take to read the topic


def connector_config(
    settings: Settings, topic: str, target: Target, options: Mapping[str, Any]
) -> dict[str, str]:
    """The run's connector: idempotent (the document's ``_id`` is ``{id_field: …}`` of the
    event, each write a replace-upsert), unordered bulk writes; the scenario's
    ``sink.connect`` options win, except where the events come from and go to."""
    config: dict[str, str] = {
        "connector.class": "com.mongodb.kafka.connect.MongoSinkConnector",
        "tasks.max": "1",
        "document.id.strategy": "com.mongodb.kafka.connect.sink.processor.id.strategy."
        "PartialValueStrategy",
        "document.id.strategy.partial.value.projection.type": "AllowList",
        "document.id.strategy.partial.value.projection.list": target.id_field,
        "document.id.strategy.overwrite.existing": "true",
        "writemodel.strategy": "com.mongodb.kafka.connect.sink.writemodel.strategy."
        "ReplaceOneDefaultStrategy",
        "bulk.write.ordered": "false",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "consumer.override.auto.offset.reset": "earliest",
    }
    config.update({k: _text(v) for k, v in options.items()})
    config.update(
        {
            "topics": topic,
            "connection.uri": settings.connect_mongo_uri,
            "database": target.database,
            "collection": target.collection,
        }
    )
    return config


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class Pipeline:
    """What the run does for its pipeline, before, during and after the load."""

    kind: str
    settings: Settings
    say: Callable[[str], None]
    argv: list[str] | None = None  # the watch's words (None: bankstream's sink)
    target: Target | None = None
    group: str | None = None
    ready_timeout: float = 120.0
    pids: list[int] = field(default_factory=list)
    sample_file: Path | None = None
    connector: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    created: bool = False

    @classmethod
    def of(
        cls,
        request: RunRequest,
        settings: Settings,
        scenario: Any,
        run_id: str,
        topic: str,
        target: Target | None,
        folder: Path,
        say: Callable[[str], None],
    ) -> Pipeline:
        if request.sink == "bankstream" or target is None:
            return cls("bankstream", settings, say)
        sample = folder / "sampled-events.jsonl"
        if request.sink == "external":
            group = request.wait_for_group or request.group
            waits = request.wait_for_group is not None
            say(
                f"external pipeline: it reads topic {topic} from {settings.kafka_bootstrap} and "
                f"stores each event in {target.text}"
                + (f"; waiting up to {GROUP_WAIT / 60:.0f} min for group {group}" if waits else "")
            )
            return cls(
                "external",
                settings,
                say,
                argv=request.watch_argv(topic, target.text, group, sample),
                target=target,
                group=group,
                ready_timeout=GROUP_WAIT + 60 if waits else 120.0,
                sample_file=sample,
            )
        name = f"bankstream-{run_id}"
        config = connector_config(settings, topic, target, scenario.sink.connect)
        return cls(
            "connect",
            settings,
            say,
            argv=request.watch_argv(topic, target.text, f"connect-{name}", sample),
            target=target,
            group=f"connect-{name}",
            ready_timeout=CONNECT_WAIT,
            pids=_local_connect_pids(settings),
            sample_file=sample,
            connector=name,
            config=config,
        )

    def start(self) -> None:
        """Before the load: the run's connector created (connect)."""
        if self.connector is None:
            return
        from bankstream import connect

        self.created = True  # (asked: a timeout may still have made it; stop deletes it anyway)
        connect.create(self.settings, self.connector, self.config)
        tasks = self.config.get("tasks.max", "1")
        self.say(
            f"connect: connector {self.connector} created ({tasks} task(s)), group {self.group}"
        )

    def stop(self) -> list[str]:
        """After the run: the connector's failures named, then it is deleted. The problems."""
        if self.connector is None or not self.created:
            return []
        from bankstream import connect

        problems = []
        try:
            problems += [
                f"connector {self.connector}: {f}"
                for f in connect.failures(self.settings, self.connector)
            ]
        except connect.ConnectUnavailable as exc:
            problems.append(f"connector {self.connector}: status unknown ({exc.message})")
        try:
            connect.delete(self.settings, self.connector)
        except connect.ConnectUnavailable as exc:
            problems.append(f"connector {self.connector} not deleted: {exc.message}")
        return problems

    def compare_sample(self, collection: Any, verification: Any) -> dict[str, Any] | None:
        """The probed events against their stored documents, field by field; a difference is
        a problem of the verification."""
        if self.sample_file is None or self.target is None:
            return None
        try:
            events = list(sampled(self.sample_file))
        except (OSError, ValueError):  # the watch died writing it: no sample to check
            events = []
        checked, differing, examples = compare_sample(collection, self.target, events)
        if differing:
            verification.problems.append(
                f"{differing} of {checked} sampled documents differ from their events, e.g. "
                + examples[0]
            )
        return {"events": len(events), "checked": checked, "differing": differing}

    def figures(self, summary: Mapping[str, Any] | None) -> dict[str, Any]:
        """What the result says of the pipeline and how it was measured."""
        s = summary or {}
        from bankstream.settings import secret_key

        # the connection string and any secret among the options never reach a result
        shown = {
            k: v for k, v in self.config.items() if k != "connection.uri" and not secret_key(k)
        }
        return {
            "sink": self.kind,
            "target": self.target.text if self.target else None,
            "group": self.group,
            "connector": {"name": self.connector, "config": shown} if self.connector else None,
            "method": s.get("method"),
            "probes": s.get("probes"),
        }


def _local_connect_pids(settings: Settings) -> list[int]:
    """The local stack's Connect worker (its CPU and memory are the pipeline's)."""
    if settings.is_given("connect_url"):
        return []
    from bankstream.stack.lifecycle import process_of
    from bankstream.stack.services import ConnectService

    pid = process_of(ConnectService(settings)).pid()
    return [pid] if pid is not None else []
