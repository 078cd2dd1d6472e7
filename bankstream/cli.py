"""`bankstream`: the one command-line entry point; each package adds its own subcommands.

Errors of our own (:class:`BankstreamError`) become one line on stderr and their exit code;
argparse mistakes get a "did you mean ...?" and exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bankstream import __version__, logs
from bankstream.errors import EXIT_USAGE, BankstreamError
from bankstream.settings import Settings, load_settings


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the closest valid command or flag."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {suggest(self, message)} (see {self.prog} --help)\n"
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
        words = unknown.group(1).split()
        hints = []
        for word in words:
            close = difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.6)
            if word.startswith("-") and close:
                hints.append(f"{word} (did you mean {close[0]}?)")
            else:
                hints.append(word)
        return f"unrecognized arguments: {' '.join(hints)}"
    return message


def settings_from(args: argparse.Namespace, **overrides: object) -> Settings:
    """Settings for a command: its flags > environment > settings file > defaults."""
    config: Path | None = args.config
    return load_settings(config, **overrides)


def build_parser() -> Parser:
    parser = Parser(
        prog="bankstream",
        description="Load generator and benchmark harness for Kafka -> MongoDB pipelines, "
        "driven by realistic synthetic banking activity.",
    )
    parser.add_argument("--version", action="version", version=f"bankstream {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings file (TOML; default: ./bankstream.toml or $BANKSTREAM_CONFIG)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from bankstream.stack import cli as stack_cli
    from loadgen import cli as loadgen_cli
    from scenarios import cli as scenarios_cli

    stack_cli.register(commands)
    scenarios_cli.register(commands)
    loadgen_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.verbose)
    try:
        code: int = args.run(args)
    except BankstreamError as exc:
        for line in exc.message.splitlines():
            # located problems (FILE:LINE: ...) read like compiler errors, without a prefix
            print(line if exc.located else f"bankstream: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bankstream: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
