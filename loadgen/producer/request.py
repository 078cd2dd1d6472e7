"""The load a command asks for, typed once: the scenario, its overrides and seed, and the flags that
shape its load (``--rate``, ``--stages``, ``--duration``, ``--events``).

:meth:`LoadRequest.from_args` reads the command line once (every flag checked there, with the
messages the commands have always given); :meth:`LoadRequest.resolve` applies it to the
scenario, whose model validates it and blames the flag for a problem; :meth:`LoadRequest.to_argv`
hands it to a child command (``run`` starts ``produce``; ``run --find-max`` starts ``run`` steps),
which reads back an equal request. Nothing downstream parses a rate or a duration from text again.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bankstream.commands import checked_seed, flag_words, global_flags, report_words
from bankstream.durations import format_duration, parse_duration
from bankstream.errors import UsageError
from loadgen.pacing import parse_stages
from scenarios import LoadedScenario, load
from scenarios.loader import MAX_DIGITS, Flag
from scenarios.model import Load


def add_load_flags(p: argparse.ArgumentParser) -> None:
    """SCENARIO and the flags that shape its load (``bankstream produce`` and ``run``)."""
    p.add_argument("scenario", metavar="SCENARIO", help="bundled name or path to a YAML file")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--rate", metavar="N", help="events per second (or max: as fast as possible)")
    rate.add_argument(
        "--stages",
        metavar="SPEC",
        help="stages DURATION:RATE[:linear],... e.g. 2m:20000:linear,5m:20000,2m:5000:linear",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration", metavar="D", help="how long, e.g. 10m (with --rate)")
    length.add_argument("--events", metavar="N", help="how many events in all (with --rate)")


class StageRequest(BaseModel):
    """One stage of ``--stages``: seconds, events per second, and its ramp when given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seconds: float
    rate: float
    ramp: str | None = None  # the scenario model knows the ramps (and names them when refused)

    def spec(self) -> str:
        """``DURATION:RATE[:RAMP]`` as ``--stages`` takes it (exact: it reads back equal)."""
        ramp = f":{self.ramp}" if self.ramp is not None else ""
        return f"{format_duration(self.seconds)}:{_number(self.rate)}{ramp}"


class LoadRequest(BaseModel):
    """What to send: the scenario (a bundled name or a file), ``--set`` overrides in order, the
    seed, and the load flags (None: the scenario's own). The ranges the scenario model checks
    (a rate's ceiling, a stage's ramp, a duration's length) are left to it, so that a problem is
    reported once, in its words, blaming the flag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    rate: float | Literal["max"] | None = None
    stages: tuple[StageRequest, ...] | None = None
    duration: float | None = None
    events: int | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LoadRequest:
        """The request of a command's parsed flags (``add_load_flags``, ``--seed``, ``--set``);
        a flag that is not what it must be is a one-line UsageError naming it."""
        return cls(
            scenario=args.scenario,
            overrides=tuple(args.overrides),
            seed=checked_seed(getattr(args, "seed", None)),
            rate=_rate(args.rate),
            stages=_stages(args.stages),
            duration=_duration(args.duration),
            events=_events(args.events),
        )

    def to_argv(self) -> list[str]:
        """The request as a command's words: ``SCENARIO [flags]``; parsed by ``produce`` or
        ``run`` and :meth:`from_args`, they give an equal request."""
        argv = [self.scenario]
        if self.rate is not None:
            argv += ["--rate", self.rate if self.rate == "max" else _number(self.rate)]
        if self.stages is not None:
            argv += ["--stages", ",".join(stage.spec() for stage in self.stages)]
        if self.duration is not None:
            argv += ["--duration", format_duration(self.duration)]
        if self.events is not None:
            argv += ["--events", str(self.events)]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        for override in self.overrides:
            argv += ["--set", override]
        return argv

    # ------------------------------------------------------------------ applying

    def flags(self) -> list[Flag]:
        """The load flags as typed values of the scenario's keys, each naming its flag (the
        loader validates them with the scenario, located at the flag)."""
        out: list[Flag] = []
        if self.rate is not None:
            out += [(("load", "rate"), self.rate, "--rate"), (("load", "stages"), None, "--rate")]
        if self.stages is not None:
            stages = [
                {"duration": s.seconds, "rate": s.rate}
                | ({"ramp": s.ramp} if s.ramp is not None else {})
                for s in self.stages
            ]
            out += [(("load", key), None, "--stages") for key in ("rate", "duration", "events")]
            out += [(("load", "stages"), stages, "--stages")]
        if self.duration is not None:
            out += [
                (("load", "duration"), self.duration, "--duration"),
                (("load", "events"), None, "--duration"),
            ]
        if self.events is not None:
            out += [
                (("load", "events"), self.events, "--events"),
                (("load", "duration"), None, "--events"),
            ]
        return out

    @property
    def shapes_load(self) -> bool:
        """Whether a flag changes the scenario's load."""
        return any(x is not None for x in (self.rate, self.stages, self.duration, self.events))

    def _seed(self) -> list[Flag]:
        return [] if self.seed is None else [(("seed",), self.seed, "--seed")]

    def base(self) -> LoadedScenario:
        """The scenario with ``--set`` and the seed, its load as the file has it."""
        return load(self.scenario, overrides=self.overrides, flags=self._seed())

    def resolve(self) -> LoadedScenario:
        """The scenario the request describes: ``--set``, the seed, then the load flags (typed,
        read once by the loader). When the flags make the run no longer than the scenario's
        warm-up, the warm-up becomes a tenth of the run (the results still exclude a start,
        and the flags still work)."""
        if not self.shapes_load:
            return self.base()
        return load(self.scenario, self.overrides, flags=self._seed() + self.flags(), fit=self._fit)

    def _fit(self, current: Load | None) -> list[Flag]:
        """The warm-up fitted to the run the flags make, given the scenario's own load."""
        fitted = None if current is None else self._fitted_warmup(current)
        if fitted is None:
            return []
        return [(("load", "warmup"), fitted, "--warmup fitted to the run")]

    def _fitted_warmup(self, current: Load) -> float | None:
        """A tenth of the run when the scenario's warm-up would not fit in the run the flags
        make (None: it fits, or the flags are refused anyway and the scenario says why)."""
        rate = self.rate if self.rate is not None else current.rate
        per_second = rate if isinstance(rate, float) else None
        seconds: float
        if self.stages is not None:
            seconds = sum(s.seconds for s in self.stages)
        elif self.duration is not None:
            seconds = self.duration
        elif self.events is not None:
            if self.events > 10**15:
                return None  # out of range: the scenario's check of load.events says so
            seconds = self.events / per_second if per_second else math.inf
        elif self.rate is not None and per_second:
            seconds = (
                current.events / per_second if current.events else current.duration or math.inf
            )
        else:
            seconds = math.inf
        if current.warmup < seconds or not math.isfinite(seconds):
            return None
        return seconds / 10


def _number(value: float) -> str:
    """A number as the shortest text that reads back equal (``500`` for 500.0)."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _rate(text: str | None) -> float | Literal["max"] | None:
    if text is None:
        return None
    if text == "max":
        return "max"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        msg = f"--rate must be a positive number of events per second or max, got {text}"
        raise UsageError(msg)
    return value


def _stages(text: str | None) -> tuple[StageRequest, ...] | None:
    if text is None:
        return None
    try:
        stages = parse_stages(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = []
    for stage in stages:
        try:
            seconds = parse_duration(stage["duration"])
        except ValueError as exc:
            msg = f"--stages: {exc}"
            raise UsageError(msg) from None
        ramp = stage.get("ramp")
        rate = stage["rate"]
        assert isinstance(rate, float)  # parse_stages reads it as a number
        ramp_ = None if ramp is None else str(ramp)
        out.append(StageRequest(seconds=seconds, rate=rate, ramp=ramp_))
    return tuple(out)


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        msg = f"--duration: {exc}"
        raise UsageError(msg) from None


def _events(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) <= 0:
        msg = f"--events must be a positive whole number, got {text}"
        raise UsageError(msg)
    if len(text.lstrip("0")) > MAX_DIGITS:  # as the scenario's own numbers are held
        msg = f"--events: a number of more than {MAX_DIGITS} digits: {text[:20]}..."
        raise UsageError(msg)
    return int(text)


def shard_of(args: argparse.Namespace) -> tuple[int, int] | None:
    """``--shard I/N`` as (I, N), which needs ``--run-id`` (produce and run)."""
    from loadgen.assign import parse_shard

    shard = parse_shard(args.shard) if args.shard is not None else None
    if shard and not args.run_id:
        msg = "--shard needs --run-id: every host of the run must give the same one"
        raise UsageError(msg)
    return shard


class ProduceRequest(BaseModel):
    """`bankstream produce`'s request: the load, and where and how to send it (None: the
    scenario's, the setting's or the machine's default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    load: LoadRequest
    processes: int | None = None
    cells: str | None = None  # A-B, checked against the scenario's cells when it is planned
    shard: tuple[int, int] | None = None
    run_id: str | None = None
    topic: str | None = None
    results: Path = Path("results")
    metrics_port: int | None = None
    metrics_linger: float = 3.0
    flush_timeout: float = 30.0
    push: bool = False
    push_interval: float = 5.0
    output: Literal["live", "json", "quiet"] = "live"
    config: Path | None = None
    verbose: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ProduceRequest:
        """The request of `bankstream produce`'s parsed flags (one-line UsageErrors)."""
        shard = shard_of(args)
        return cls(
            load=LoadRequest.from_args(args),
            processes=args.processes,
            cells=args.cells,
            shard=shard,
            run_id=args.run_id,
            topic=args.topic,
            results=args.results,
            metrics_port=args.metrics_port,
            metrics_linger=args.metrics_linger,
            flush_timeout=args.flush_timeout,
            push=args.push,
            push_interval=args.push_interval,
            output="quiet" if args.quiet else "json" if args.json else "live",
            config=args.config,
            verbose=args.verbose,
        )

    def to_argv(self) -> list[str]:
        """The request as `bankstream produce`'s words (global flags first); parsed back by
        :meth:`from_args`, they give an equal request."""
        shard = f"{self.shard[0]}/{self.shard[1]}" if self.shard is not None else None
        return [
            *global_flags(self.config, self.verbose),
            "produce",
            *self.load.to_argv(),
            *flag_words(
                ("--processes", self.processes),
                ("--cells", self.cells),
                ("--shard", shard),
                ("--run-id", self.run_id),
                ("--topic", self.topic),
                ("--metrics-port", self.metrics_port),
                ("--results", self.results),
                ("--metrics-linger", format_duration(self.metrics_linger)),
                ("--flush-timeout", format_duration(self.flush_timeout)),
            ),
            *report_words(self.push, self.push_interval, self.output),
        ]
