"""What `bankstream sink` is asked for, typed once.

:meth:`SinkRequest.from_args` reads the command line once (every flag checked there, in one line
naming the flag, with the ranges of the scenario model's sink section read from the model);
:func:`sink.service.run` takes the request; :meth:`SinkRequest.to_argv` gives the words of a
child `bankstream sink` (``run`` starts one), which read back an equal request.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bankstream.commands import flag_words, global_flags, report_words
from bankstream.durations import format_duration, parse_duration
from bankstream.errors import UsageError

Output = Literal["live", "json", "quiet"]
DEFAULT_GROUP = "bankstream-sink"


class SinkRequest(BaseModel):
    """One sink's request. ``None``: the scenario's sink section (or the model's default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str | None = None
    overrides: tuple[str, ...] = ()
    group: str = DEFAULT_GROUP
    topic: str | None = None
    dead_letter_topic: str | None = None
    batch_size: int | None = None
    flush_interval: float | None = None
    processes: int | None = None
    until_idle: float | None = None
    store_timeout: float = 30.0
    lease: float = 20.0
    projections: bool = True
    push: bool = False
    push_interval: float = 5.0
    metrics_port: int | None = None  # None: the setting (0 when pushing)
    output: Output = "live"
    fault: str | None = None  # tests: where a process dies
    config: Path | None = None  # the global flags
    verbose: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SinkRequest:
        """The request of `bankstream sink`'s parsed flags; a flag that is not what it must be
        is a one-line UsageError naming it."""
        if args.scenario is None and args.set:
            msg = "--set needs --scenario (the scenario whose settings it overrides)"
            raise UsageError(msg)
        lease = _duration(args.lease, "--lease")
        if lease is not None and lease < 1:
            msg = f"--lease must be at least 1s (longer than a write takes), got {args.lease}"
            raise UsageError(msg)
        return cls(
            scenario=args.scenario,
            overrides=tuple(args.set),
            group=args.group,
            topic=args.topic,
            dead_letter_topic=args.dead_letter_topic,
            batch_size=args.batch_size,
            flush_interval=_duration(args.flush_interval, "--flush-interval"),
            processes=args.processes,
            until_idle=_duration(args.until_idle, "--until-idle"),
            store_timeout=_duration(args.store_timeout, "--store-timeout"),
            lease=lease,
            projections=not args.no_projections,
            push=args.push,
            push_interval=args.push_interval,
            metrics_port=args.metrics_port,
            output="quiet" if args.quiet else "json" if args.json else "live",
            fault=args.fault,
            config=args.config,
            verbose=args.verbose,
        )

    def to_argv(self) -> list[str]:
        """The request as `bankstream sink`'s words (global flags first); parsed back by
        :meth:`from_args`, they give an equal request."""

        def seconds(value: float | None) -> str | None:
            return None if value is None else format_duration(value)

        return [
            *global_flags(self.config, self.verbose),
            "sink",
            *flag_words(("--scenario", self.scenario)),
            *flag_words(*(("--set", override) for override in self.overrides)),
            *flag_words(
                ("--group", self.group),
                ("--topic", self.topic),
                ("--dead-letter-topic", self.dead_letter_topic),
                ("--batch-size", self.batch_size),
                ("--processes", self.processes),
                ("--metrics-port", self.metrics_port),
                ("--fault", self.fault),
                ("--flush-interval", seconds(self.flush_interval)),
                ("--until-idle", seconds(self.until_idle)),
                ("--store-timeout", seconds(self.store_timeout)),
                ("--lease", seconds(self.lease)),
                ("--no-projections", not self.projections),
            ),
            *report_words(self.push, self.push_interval, self.output),
        ]


def _duration(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        msg = f"{flag}: {exc}"
        raise UsageError(msg) from None
    if seconds <= 0:
        msg = f"{flag} must be longer than 0, got {text}"
        raise UsageError(msg)
    return seconds
