"""`bankstream stack install|up|down|status|check`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from bankstream.commands import command_group, duration, settings_from, summary
from bankstream.stack import check, lifecycle
from bankstream.stack.lifecycle import ServiceState


def register(commands: Any) -> None:
    add = command_group(
        commands,
        "stack",
        summary("stack"),
        "The local stack: Apache Kafka (KRaft, one node), a MongoDB-wire server "
        "(mongo-java-server, or a real mongod found on PATH) and Prometheus, with --with "
        "pushgateway a Pushgateway and with --with connect Kafka Connect, on 127.0.0.1. A "
        "service whose setting is given "
        "(BANKSTREAM_KAFKA_BOOTSTRAP, BANKSTREAM_MONGO_URI, BANKSTREAM_PROMETHEUS_URL, "
        "BANKSTREAM_PUSHGATEWAY_URL, BANKSTREAM_CONNECT_URL) is used as it is and never started "
        "or stopped.",
    )

    p = add(
        "install",
        "fetch the jars (Maven Central) and check the tools",
        "Kafka and mongo-java-server jars go to <home>/lib through Maven; idempotent.",
    )
    _with(p)
    p.set_defaults(run=run_install)

    p = add(
        "up",
        "start what is not running and wait until every service answers",
        "Idempotent: a running service is left alone. Services whose setting is given are "
        "only checked.",
    )
    p.add_argument(
        "--durable",
        action="store_true",
        help="keep MongoDB data in an H2 file under the stack's home (default: memory)",
    )
    p.add_argument(
        "--timeout",
        type=duration(0, 3600),
        metavar="D",
        help="how long to wait for each service (default: 90)",
    )
    p.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        metavar="N",
        help="Kafka brokers: 1 (default) or 3, a replicated KRaft cluster on loopback (broker N "
        "on port 9092 + 2(N-1)); a run's topic then has 3 replicas and min.insync.replicas 2, "
        "and run --fault kill-broker@T can take one away",
    )
    _with(p)
    p.set_defaults(run=run_up)

    p = add("down", "stop the services this stack started", "Others are never touched.")
    p.set_defaults(run=run_down)

    p = add(
        "status",
        "each service, its address and whether it answers",
        "Exit code 1 when a service does not answer.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per service")
    p.set_defaults(run=run_status)

    p = add(
        "check",
        "smoke test: messages through Kafka, documents through MongoDB, a query",
        "Uses a temporary topic and database, removed afterwards.",
    )
    p.set_defaults(run=run_check)


def _console() -> Console:
    # wide enough for paths when the output is not a terminal (logs, CI, tests)
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 200
    return console


def _table(states: list[ServiceState]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("service", "address", "run by", "state", "detail"):
        table.add_column(column)
    runner = {
        lifecycle.LOCAL: "this stack",
        lifecycle.FOREIGN: "another process",
        lifecycle.EXTERNAL: "settings",
    }
    for s in states:
        state = "[green]answers[/]" if s.answering else "[red]down[/]"
        detail = s.detail + (f" (pid {s.pid})" if s.pid else "")
        table.add_row(s.title, s.address, runner[s.mode], state, detail)
    return table


def _with(p: Any) -> None:
    p.add_argument(
        "--with",
        dest="extras",
        action="append",
        choices=("connect", "pushgateway"),
        default=[],
        help="also Kafka Connect with the official MongoDB sink connector (for run --sink "
        "connect; REST on port 8083), or the Pushgateway (for --push; port 9091); repeatable",
    )


def _extras(args: argparse.Namespace) -> dict[str, object]:
    return {f"stack_{extra}": True for extra in args.extras}


def run_install(args: argparse.Namespace) -> int:
    console = _console()
    lifecycle.install(settings_from(args, **_extras(args)), report=console.print)
    console.print("installed")
    return 0


def run_up(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {"start_timeout": args.timeout, **_extras(args)}
    if args.brokers is not None:
        overrides["stack_kafka_brokers"] = args.brokers
    if args.durable:
        overrides["mongo_backend"] = "h2"
    console = _console()
    states = lifecycle.up(settings_from(args, **overrides), report=console.print)
    console.print(_table(states))
    return 0


def run_down(args: argparse.Namespace) -> int:
    console = _console()
    if not lifecycle.down(settings_from(args), report=console.print):
        console.print("nothing to stop: no service of this stack is running")
    return 0


def run_status(args: argparse.Namespace) -> int:
    states = lifecycle.status(settings_from(args))
    if args.json:
        for s in states:
            print(
                json.dumps(
                    {
                        "service": s.name,
                        "address": s.address,
                        "mode": s.mode,
                        "answering": s.answering,
                        "detail": s.detail,
                        "pid": s.pid,
                        "log_file": str(s.log_file) if s.log_file else None,
                    }
                )
            )
    else:
        _console().print(_table(states))
    return 0 if all(s.answering for s in states) else 1


def run_check(args: argparse.Namespace) -> int:
    console = _console()

    def report(result: check.CheckResult) -> None:
        console.print(
            f"[green]ok[/] {result.service:<10} {result.summary} ({result.seconds:.2f} s)"
        )

    check.run(settings_from(args), report)
    console.print("stack check passed")
    return 0
