"""`bankstream`: the one command-line entry point; each package adds its own subcommands.

Errors of our own (:class:`BankstreamError`) become one line on stderr and their exit code;
argparse mistakes get a "did you mean ...?" and exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from bankstream import __version__, logs
from bankstream.commands import Parser
from bankstream.errors import BankstreamError


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
