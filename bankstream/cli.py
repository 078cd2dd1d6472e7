"""`bankstream`: the one command-line entry point; each package adds its own subcommands.

Errors of our own (:class:`BankstreamError`) become one line on stderr and their exit code;
argparse mistakes get a "did you mean ...?" and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from bankstream import __version__, logs
from bankstream.commands import COMMANDS, Parser
from bankstream.errors import BankstreamError, tame


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (the first word that is neither a flag nor a flag's value)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser; with ``argv``, only the command it names is imported and registered in full
    (the others are listed with their summaries), without it every command is."""
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
    wanted = None if argv is None else _command_in(argv)
    # the module of the command named registers all of its commands, in full
    wanted_module = COMMANDS[wanted][0] if wanted in COMMANDS else None
    for name, (module, text) in COMMANDS.items():
        if name in commands.choices:  # registered with another command of its module
            continue
        if argv is None or module == wanted_module:
            importlib.import_module(module).register(commands)
        else:
            commands.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}.")
    return parser


def parse(words: Sequence[str]) -> argparse.Namespace:
    """The command line as ``main`` reads it (argparse's one-line errors, exit code 2)."""
    parser = build_parser(words)
    args, extra = parser.parse_known_args(words)
    args.extra = extra
    if extra and not getattr(args, "passthrough", False):
        parser.unrecognized(extra)
    return args  # extra: what the command hands on (bankstream dashboard: to Streamlit)


def _said(exc: BankstreamError) -> int:
    for line in map(tame, exc.message.splitlines()):
        # located problems (FILE:LINE: ...) read like compiler errors, without a prefix
        print(line if exc.located else f"bankstream: error: {line}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    try:
        args = parse(words)  # (a flag out of its range: a UsageError of its own, in_range)
    except BankstreamError as exc:
        return _said(exc)
    logs.configure(args.verbose)
    try:
        from bankstream.settings import check_environment

        check_environment()  # a misspelled BANKSTREAM_ variable, whatever the command
        code: int = args.run(args)
    except BankstreamError as exc:
        return _said(exc)
    except KeyboardInterrupt:
        print("bankstream: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
