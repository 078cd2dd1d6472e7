"""What `bankstream run` is asked to do, typed once: the load (:class:`LoadRequest`), the
pipeline's processes, where results go, the faults, and how the run ends and is judged.

Built by :meth:`RunRequest.from_args` in the command's module; the harness (``execute``, the
capacity search) reads it, never the command line; the commands it starts get their words from
:meth:`RunRequest.producer_argv`, :meth:`RunRequest.sink_argv` and :meth:`RunRequest.to_argv`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bankstream.commands import flag_words, global_flags, report_words
from bankstream.durations import format_duration
from bankstream.errors import UsageError
from harness.faults import Fault
from loadgen.producer.request import LoadRequest, ProduceRequest, shard_of
from sink.request import SinkRequest

Output = Literal["live", "json", "quiet"]
JudgeLatency = Literal["outside-faults", "whole-run"]
SinkKind = Literal["bankstream", "connect", "external"]


class RunRequest(BaseModel):
    """One run's request (the defaults are the command's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    load: LoadRequest
    processes: int | None = None  # producer processes (None: the producer's default)
    sink_processes: int | None = None  # None: the scenario's sink.workers
    run_id: str | None = None
    shard: tuple[int, int] | None = None  # (I, N): host I of N
    topic: str | None = None
    fresh: bool = False
    no_stack: bool = False
    no_warm: bool = False
    keep_topic: bool = False
    drain_timeout: float = 300.0
    verify_limit: int
    results: Path = Path("results")
    faults: tuple[Fault, ...] = ()
    judge_latency: JudgeLatency = "outside-faults"
    output: Output = "live"
    config: Path | None = None  # the global flags the children need to see the same settings
    verbose: int = 0
    # the pipeline under test: bankstream's sink, the MongoDB Kafka connector, or the user's own
    sink: SinkKind = "bankstream"
    target: str | None = None  # DB.COLLECTION where connect/external store (default: scenario's)
    id_field: str = "tx_id"
    event_field: str | None = None
    group: str | None = None  # the external pipeline's consumer group (lag, drain)
    wait_for_group: str | None = None  # start the load once this group reads the topic
    backlog: int | None = None  # start the pipeline once this many events wait in the topic
    push: bool = False  # the producer's and sink's metrics, and the verdicts, to the Pushgateway
    push_interval: float = 5.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunRequest:
        """The request of `bankstream run`'s parsed flags; a flag that is not what it must be is
        a one-line UsageError naming it (the same checks, in the same order, as always)."""
        check_counts(args)
        shard = shard_of(args)
        return cls(
            load=LoadRequest.from_args(args),
            processes=args.processes,
            sink_processes=args.sink_processes,
            run_id=args.run_id,
            shard=shard,
            topic=args.topic,
            fresh=args.fresh,
            no_stack=args.no_stack,
            no_warm=args.no_warm,
            keep_topic=args.keep_topic,
            drain_timeout=args.drain_timeout,
            verify_limit=args.verify_limit,
            results=args.results,
            faults=tuple(args.faults or ()),
            judge_latency=args.judge_latency,
            output="quiet" if args.quiet else "json" if args.json else "live",
            config=args.config,
            verbose=args.verbose,
            **_pipeline(args),
            push=getattr(args, "push", False),
            push_interval=getattr(args, "push_interval", 5.0),
        )

    # ------------------------------------------------------------------ the children's words

    def global_flags(self) -> list[str]:
        """The flags before the command, so that a child sees the same settings."""
        return global_flags(self.config, self.verbose)

    def producer_request(self, run_id: str, topic: str, folder: Path) -> ProduceRequest:
        """The producer of this run, its manifest into ``folder``; pushed instead of served
        when pushing (Prometheus would count each figure twice)."""
        return ProduceRequest(
            load=self.load,
            processes=self.processes,
            shard=self.shard,
            run_id=run_id,
            topic=topic,
            results=folder,
            metrics_port=0 if self.push else None,
            metrics_linger=0.0,
            push=self.push,
            push_interval=self.push_interval,
            output="json",
            config=self.config,
            verbose=self.verbose,
        )

    def producer_argv(self, run_id: str, topic: str, folder: Path) -> list[str]:
        """`bankstream produce` for this run: :meth:`producer_request`'s words."""
        return self.producer_request(run_id, topic, folder).to_argv()

    def sink_request(self, group: str, topic: str) -> SinkRequest:
        """The sink of this run (the scenario's sink section, with ``--set``); pushed instead
        of served when pushing (Prometheus would count each figure twice)."""
        return SinkRequest(
            scenario=self.load.scenario,
            overrides=self.load.overrides,
            processes=self.sink_processes,
            topic=topic,
            group=group,
            push=self.push,
            push_interval=self.push_interval,
            metrics_port=0 if self.push else None,
            output="json",
            config=self.config,
            verbose=self.verbose,
        )

    def sink_argv(self, group: str, topic: str) -> list[str]:
        """`bankstream sink` for this run: :meth:`sink_request`'s words."""
        return self.sink_request(group, topic).to_argv()

    def to_argv(self) -> list[str]:
        """The request as `bankstream run`'s words (global flags first); parsed back by
        :meth:`from_args`, they give an equal request."""
        argv = [*self.global_flags(), "run", *self.load.to_argv()]
        other = self.sink != "bankstream"  # another pipeline under test
        shard = f"{self.shard[0]}/{self.shard[1]}" if self.shard is not None else None
        argv += flag_words(
            ("--processes", self.processes),
            ("--sink-processes", self.sink_processes),
            ("--run-id", self.run_id),
            ("--topic", self.topic),
            ("--shard", shard),
            ("--fresh", self.fresh),
            ("--no-stack", self.no_stack),
            ("--no-warm", self.no_warm),
            ("--keep-topic", self.keep_topic),
            ("--drain-timeout", format_duration(self.drain_timeout)),
            ("--verify-limit", self.verify_limit),
            ("--results", self.results),
            *(("--fault", fault.text) for fault in self.faults),
            ("--judge-latency", self.judge_latency),
            ("--sink", self.sink if other else None),
            ("--id-field", self.id_field if other else None),
            ("--target", self.target),
            ("--event-field", self.event_field),
            ("--group", self.group),
            ("--wait-for-group", self.wait_for_group),
            ("--backlog", self.backlog),
        )
        return [*argv, *report_words(self.push, self.push_interval, self.output)]

    def watch_argv(self, topic: str, target: str, group: str | None, sample: Path) -> list[str]:
        """`bankstream watch` following the pipeline under test (connect, external)."""
        argv = [*self.global_flags(), "watch", "--topic", topic, "--target", target]
        argv += ["--id-field", self.id_field]
        if self.event_field is not None:
            argv += ["--event-field", self.event_field]
        if self.wait_for_group is not None or (self.sink == "connect" and group):
            argv += ["--wait-for-group", str(group)]
            if self.sink == "connect":  # (within the harness's own wait: its reason is said)
                argv += ["--wait-timeout", "100s"]
        elif group is not None:
            argv += ["--group", group]
        if self.backlog is not None:
            argv.append("--from-start")
        return [*argv, "--sample-file", str(sample), "--json"]


def _pipeline(args: argparse.Namespace) -> dict[str, object]:
    """The pipeline under test, as `run`'s flags name it; flags that describe another
    pipeline than the one chosen are refused."""
    from harness.watch import Target

    sink = getattr(args, "sink", "bankstream")
    values = {
        "target": getattr(args, "target", None),
        "id_field": getattr(args, "id_field", "tx_id"),
        "event_field": getattr(args, "event_field", None),
        "group": getattr(args, "group", None),
        "wait_for_group": getattr(args, "wait_for_group", None),
    }
    given = [
        f"--{k.replace('_', '-')}"
        for k, v in values.items()
        if v is not None and not (k == "id_field" and v == "tx_id")
    ]
    if sink == "bankstream" and given:
        msg = f"{given[0]} describes another pipeline: use it with --sink external or connect"
        raise UsageError(msg)
    if sink == "connect":
        for flag in ("--group", "--wait-for-group", "--event-field"):
            if flag in given:
                msg = f"{flag} is for --sink external: the connector's group and documents are ours"
                raise UsageError(msg)
    if values["group"] and values["wait_for_group"] and values["group"] != values["wait_for_group"]:
        msg = "--group and --wait-for-group name different groups: give one"
        raise UsageError(msg)
    if sink != "bankstream" and getattr(args, "shard", None) is not None:
        msg = f"--shard runs bankstream's sink on each host: not with --sink {sink}"
        raise UsageError(msg)
    if sink != "bankstream":
        Target.parse(
            str(values["target"] or "db.c"), str(values["id_field"]), values["event_field"]
        )
        kills = [f.text for f in (getattr(args, "faults", None) or []) if f.kind == "kill-sink"]
        if kills:
            msg = f"--fault {kills[0]}: bankstream does not run the {sink} pipeline's processes"
            raise UsageError(msg)
    backlog = getattr(args, "backlog", None)
    if backlog is not None:
        if backlog < 1:
            msg = f"--backlog must be 1 event or more, got {backlog}"
            raise UsageError(msg)
        if sink == "external":
            msg = "--backlog needs a pipeline bankstream starts: --sink bankstream or connect"
            raise UsageError(msg)
        if getattr(args, "shard", None) is not None or getattr(args, "find_max", False):
            msg = "--backlog is a run of one host at one rate: leave out --shard and --find-max"
            raise UsageError(msg)
    return {"sink": sink, **values, "backlog": backlog}


def check_counts(args: argparse.Namespace) -> None:
    """`run`'s counts in range (before anything else is read)."""
    if args.verify_limit < 0:
        msg = f"--verify-limit must be 0 (no verification) or more, got {args.verify_limit}"
        raise UsageError(msg)
