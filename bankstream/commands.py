"""Building blocks of the command line: a parser with helpful errors, command groups."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bankstream.errors import EXIT_USAGE, UsageError, printable, tame
from bankstream.events import TOPIC_PATTERN

if TYPE_CHECKING:
    from pydantic import BaseModel

    from bankstream.settings import Settings

# Every command: the module that registers it (imported only when the command runs, so that
# `bankstream --help` and each command start fast and the ground floor imports nothing above it)
# and its one-line summary (shown by `bankstream --help`; the module uses the same).
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": (
        "bankstream.stack.cli",
        "run the local stack (Kafka, a MongoDB-wire server, Prometheus) without Docker",
    ),
    "scenarios": (
        "scenarios.cli",
        "list, show, validate scenario files; print their JSON Schema",
    ),
    "generate": (
        "loadgen.cli",
        "write a scenario's events as JSON lines (no Kafka): for inspection and tools",
    ),
    "sink": (
        "sink.cli",
        "write the events from Kafka to MongoDB, each once, projections exact, from several "
        "processes (metrics, dead letters)",
    ),
    "produce": (
        "loadgen.produce",
        "send a scenario's events to Kafka at its rate, from several processes (metrics, "
        "progress, a run manifest)",
    ),
    "run": (
        "harness.cli",
        "run a scenario end to end (stack, sink, producer), verify the store, judge the "
        "thresholds, write a report",
    ),
    "compare": (
        "harness.cli",
        "compare run results side by side, regressions beyond noise flagged",
    ),
    "merge": (
        "harness.cli",
        "merge the results of the hosts of one run into one result, verified against the store",
    ),
    "dashboard": (
        "dashboard.cli",
        "the Streamlit dashboard: banking analytics and pipeline performance, live",
    ),
    "watch": (
        "harness.cli",
        "measure a Kafka -> MongoDB pipeline bankstream does not run: stored count, lag, "
        "latency by probes",
    ),
    "bench": (
        "harness.cli",
        "benchmarks of the configured cluster: the raw clients' ceilings for a scenario",
    ),
}


def summary(name: str) -> str:
    return COMMANDS[name][1]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the closest valid command or flag."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE,
            f"{self.prog}: error: {tame(suggest(self, message))} (see {self.prog} --help)\n",
        )


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_parsers(sub))
    return found


def suggest(parser: argparse.ArgumentParser, message: str) -> str:
    """``message`` with "did you mean ...?" when a close command or flag exists."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        options = re.findall(r"'?([\w.-]+)'?", choice.group(2))
        close = difflib.get_close_matches(choice.group(1), options, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown choice {choice.group(1)!r}{hint} (choose from {', '.join(options)})"
    unknown = re.search(r"unrecognized arguments: (.*)", message)
    if unknown:
        flags = sorted(
            {flag for p in _parsers(parser) for a in p._actions for flag in a.option_strings}
        )
        own = {flag for a in parser._actions for flag in a.option_strings}  # bankstream's own
        words = unknown.group(1).split()
        hints = []
        for word in words:
            flag = word.split("=")[0]
            close = difflib.get_close_matches(flag, flags, n=1, cutoff=0.6)
            if word.startswith("-") and flag in own:
                hints.append(f"{word} (an option of bankstream itself: put it before the command)")
            elif word.startswith("-") and flag in flags:  # another command's option
                hints.append(f"{word} (an option of other commands, not of this one)")
            elif word.startswith("-") and close:
                hints.append(f"{word} (did you mean {close[0]}?)")
            else:
                hints.append(word)
        return f"unrecognized arguments: {' '.join(hints)}"
    return message


def command_group(
    commands: Any, name: str, summary: str, description: str
) -> Callable[..., argparse.ArgumentParser]:
    """``bankstream NAME ACTION``: returns ``add(action, summary, more="")`` for its actions,
    each with a help line and a description (every command has both)."""
    group = commands.add_parser(name, help=summary, description=description)
    actions = group.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=Parser
    )

    def add(action: str, text: str, more: str = "") -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            action, help=text, description=f"{text[0].upper()}{text[1:]}. {more}".strip()
        )
        return parser

    return add


def settings_from(args: argparse.Namespace, **overrides: object) -> Settings:
    """Settings for a command: its flags > environment > settings file > defaults."""
    from bankstream.settings import load_settings

    config: Path | None = args.config
    return load_settings(config, **overrides)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): scenario overrides, into ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set load.rate=500 (repeatable; a key with dots "
        "in [brackets])",
    )


RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def run_id(text: str) -> str:
    """An argparse type: a run id is part of topic, folder and document names, so letters,
    digits, '.', '_' and '-' only (up to 100, the first a letter or digit)."""
    if not RUN_ID_RE.fullmatch(text):
        msg = (
            f"'{printable(text, 60)}' is not a run id: use letters, digits, '.', '_' and '-' "
            "(up to 100, starting with a letter or digit)"
        )
        raise argparse.ArgumentTypeError(msg)
    return text


TOPIC_RE = re.compile(TOPIC_PATTERN)  # Kafka's own rule, as the scenario model's


def topic(text: str) -> str:
    """An argparse type: a Kafka topic name (letters, digits, '.', '_', '-'; 1 to 249)."""
    if not TOPIC_RE.fullmatch(text) or text in (".", ".."):
        msg = (
            f"'{printable(text, 60)}' is not a Kafka topic name: use letters, digits, '.', '_' "
            "and '-' (1 to 249)"
        )
        raise argparse.ArgumentTypeError(msg)
    return text


def writable_folder(folder: Path, flag: str) -> Path:
    """``folder``, created if missing, when this process can write in it (UsageError, before any
    work starts, when it cannot)."""
    import os
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".bankstream-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        shown = printable(str(folder), 80)
        msg = f"{flag} {shown}: cannot write there ({exc.strerror or exc}); give another folder"
        raise UsageError(msg) from None
    return folder


def duration(
    low: float = 0.0, high: float = 86400.0, low_open: bool = True
) -> Callable[[str], float]:
    """An argparse type for a duration flag: ``60s``, ``2m``, ``1.5h``, ``250ms`` or a bare
    number of seconds, between ``low`` (excluded when ``low_open``) and ``high`` seconds."""
    from bankstream.durations import format_duration, parse_duration

    def parse(text: str) -> float:
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if seconds < low or (low_open and seconds == low) or seconds > high:
            least = (
                f"longer than {format_duration(low)}"
                if low_open
                else f"at least {format_duration(low)}"
            )
            most = format_duration(high)
            msg = f"expected a duration {least} and at most {most}, got {printable(text, 40)}"
            raise argparse.ArgumentTypeError(msg)
        return seconds

    parse.__name__ = "duration"  # argparse names the type in its messages
    return parse


def field_range(model: type[BaseModel], name: str) -> tuple[int, int]:
    """The ``ge``/``le`` bounds the model declares for a field: a flag that sets the field is
    checked against the model's range, never a copy of it."""
    import annotated_types

    low, high = None, None
    for rule in model.model_fields[name].metadata:
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
    if not (isinstance(low, int) and isinstance(high, int)):
        msg = f"{model.__name__}.{name} declares no whole-number range"
        raise TypeError(msg)
    return low, high


def global_flags(config: Path | None, verbose: int) -> list[str]:
    """The flags before a command (``--config``, ``-v``), so that a child command started with
    them sees the same settings and logs as its parent."""
    out: list[str] = []
    if config is not None:
        out += ["--config", str(config)]
    if verbose:
        out.append("-" + "v" * verbose)
    return out
