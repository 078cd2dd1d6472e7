"""Building blocks of the command line: a parser with helpful errors, command groups."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

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
        "loadgen.producer.cli",
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


_N = TypeVar("_N")  # a namespace argparse fills in


def summary(name: str) -> str:
    return COMMANDS[name][1]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the closest valid command or flag.

    The suggestions come from what argparse hands over as data, not from its messages: the
    words no command takes (the leftovers of ``parse_known_args``) and the value that a
    command's, an action's or a flag's choices reject (``_check_value``). argparse's private
    parts used: that one method overridden, and ``_actions`` read by :func:`_flags`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._command_sets: list[argparse.Action] = []  # add_subparsers': its parsers' commands
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> Any:
        commands = super().add_subparsers(**kwargs)
        self._command_sets.append(commands)
        return commands

    def commands(self) -> list[argparse.ArgumentParser]:
        """The parsers of this parser's commands (their ``add_parser``), registered so far."""
        found: list[argparse.ArgumentParser] = []
        for commands in self._command_sets:
            if isinstance(commands.choices, Mapping):
                found.extend(commands.choices.values())
        return found

    @overload
    def parse_args(
        self, args: Iterable[str] | None = None, namespace: None = None
    ) -> argparse.Namespace: ...
    @overload
    def parse_args(self, args: Iterable[str] | None, namespace: _N) -> _N: ...
    @overload
    def parse_args(self, *, namespace: _N) -> _N: ...
    def parse_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> Any:
        parsed, leftovers = self.parse_known_args(args, namespace)
        if leftovers:  # as argparse's, without making a message of them first
            self.unrecognized(leftovers)
        return parsed

    def unrecognized(self, words: Sequence[str]) -> NoReturn:
        """The error for words that no command takes, a flag among them said where it belongs
        or what it may be a misspelling of."""
        self.error(unrecognized_arguments(self, words))

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {tame(message)} (see {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # Private, overridden: where argparse rejects a value that is not among an argument's
        # choices (a command, an action, a flag's). No public hook sees the value and the
        # choices; its error carries them only as English text. A value that is not text (a
        # flag with type=int) keeps argparse's own message, as before.
        choices = action.choices
        if isinstance(value, str) and choices is not None and value not in choices:
            raise argparse.ArgumentError(None, unknown_choice(value, [str(c) for c in choices]))
        super()._check_value(action, value)


_UNRECOGNIZED = "unrecognized arguments: "


def unknown_choice(value: str, choices: Sequence[str]) -> str:
    """The error for a value not among ``choices``, with the closest one if any is close."""
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown choice {value!r}{hint} (choose from {', '.join(choices)})"


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings of ``parser``'s arguments. Private, read: argparse offers no public
    way to list a parser's arguments, and those added to an argument group
    (add_mutually_exclusive_group) never pass through the parser's ``add_argument``, where
    they could be noted."""
    return {flag for action in parser._actions for flag in action.option_strings}


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and the parsers of all its commands, theirs too."""
    found = [parser]
    for sub in parser.commands() if isinstance(parser, Parser) else []:
        found.extend(_parsers(sub))
    return found


def unrecognized_arguments(parser: argparse.ArgumentParser, words: Sequence[str]) -> str:
    """The error for ``words`` that no command of ``parser`` takes: a flag of ``parser`` itself
    (bankstream's own) said to go before the command, another command's said to be one, a
    misspelt one given the closest flag."""
    flags = sorted({flag for p in _parsers(parser) for flag in _flags(p)})
    own = _flags(parser)
    hints = []
    for word in " ".join(words).split():  # a word with spaces in it: as many words
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
    return _UNRECOGNIZED + " ".join(hints)


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


def in_range(low: int, high: int, grouped: bool = True) -> type[argparse.Action]:
    """An argparse action for a whole-number flag (``type=int``) that must lie in
    ``[low, high]``: out of it, a one-line UsageError naming the flag (``--processes must be
    between 1 and 256, got 0``). Give it the bounds of the model field the flag sets
    (:func:`field_range`), not a copy of them. ``grouped``: thousands with commas (not for a
    port)."""

    class InRange(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            if not low <= values <= high:
                least, most = (f"{low:,}", f"{high:,}") if grouped else (str(low), str(high))
                flag = option_string or self.dest
                msg = f"{flag} must be between {least} and {most}, got {values}"
                raise UsageError(msg)
            setattr(namespace, self.dest, values)

    return InRange


PORT = in_range(0, 65535, grouped=False)  # a port to serve on (0: none)
PROCESSES = in_range(1, 256)  # producer processes on one host (the sink's: Sink.workers)


MAX_SEED = 2**63  # the scenario model's seed: 0 to 2^63 - 1


def checked_seed(seed: int | None) -> int | None:
    """``--seed`` in the scenario model's range (a one-line UsageError naming the flag if not)."""
    if seed is not None and not 0 <= seed < MAX_SEED:
        msg = f"--seed must be between 0 and 2^63 - 1, got {seed}"
        raise UsageError(msg)
    return seed


def flag_words(*flags: tuple[str, object]) -> list[str]:
    """A child command's words for its flags, in order: ``FLAG VALUE`` for a value, ``FLAG``
    alone for True, nothing for None or False (the command's default)."""
    out: list[str] = []
    for flag, value in flags:
        if value is True:
            out.append(flag)
        elif value is not None and value is not False:
            out += [flag, str(value)]
    return out


def report_words(push: bool, push_interval: float, output: str) -> list[str]:
    """The flags every reporting command (produce, sink, run) ends with: ``--push``,
    ``--push-interval`` and ``--json`` or ``--quiet`` (live: none)."""
    from bankstream.durations import format_duration

    return flag_words(
        ("--push", push),
        ("--push-interval", format_duration(push_interval)),
        (f"--{output}", output != "live"),
    )
