"""`bankstream produce`: a scenario's events into Kafka, paced, from several processes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bankstream import metrics
from bankstream.commands import (
    PORT,
    PROCESSES,
    add_overrides,
    duration,
    run_id,
    summary,
    topic,
)
from loadgen.producer.coordinator import default_processes
from loadgen.producer.request import ProduceRequest, add_load_flags

EPILOG = """\
exit codes: 0 every event made was acknowledged by Kafka; 1 some failed or were not sent (or a
process failed); 2 input to correct; 130 stopped (SIGINT/SIGTERM) with every event sent
acknowledged. The manifest goes to RESULTS/<run id>/manifest.json and MongoDB's runs collection.
"""


def register(commands: Any) -> None:
    p = commands.add_parser(
        "produce",
        help=summary("produce"),
        description="Send a scenario's events to Kafka at the load's rate (open model: each "
        "event has an intended send time; a producer that falls behind reports it and never "
        "slows the schedule down), from several processes each owning a share of the cells and "
        "of the rate. Live progress on stderr, metrics on /metrics, a run manifest at the end. "
        "Defaults come from the scenario's load and delivery sections.",
        epilog=EPILOG,
    )
    add_load_flags(p)
    p.add_argument(
        "--processes",
        type=int,
        action=PROCESSES,
        metavar="N",
        help=f"producer processes on this host (default: the cores, {default_processes()})",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--cells", metavar="A-B", help="only these cells (inclusive), e.g. 0-127")
    where.add_argument(
        "--shard",
        metavar="I/N",
        help="this host's share of the cells when N hosts send one run (needs --run-id)",
    )
    p.add_argument("--seed", type=int, metavar="S", help="override the scenario's seed")
    add_overrides(p)
    p.add_argument(
        "--run-id",
        type=run_id,
        metavar="ID",
        help="the run's id (default: <scenario>-<time>-<hex>)",
    )
    p.add_argument("--topic", metavar="T", type=topic, help="Kafka topic (default: the scenario's)")
    p.add_argument(
        "--metrics-port",
        type=int,
        action=PORT,
        metavar="P",
        help="port of /metrics (default: BANKSTREAM_LOADGEN_METRICS_PORT, 9101; 0: none)",
    )
    p.add_argument(
        "--metrics-linger",
        type=duration(0, 3600, low_open=False),
        default=3.0,
        metavar="D",
        help="keep serving /metrics this long after the end, for Prometheus's last scrape "
        "(default: 3)",
    )
    metrics.add_push_flags(p)
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="where the manifest goes (default: ./results)",
    )
    p.add_argument(
        "--flush-timeout",
        type=duration(0, 86400),
        default=30.0,
        metavar="D",
        help="on stop, how long to wait for Kafka to acknowledge what was sent (default: 30)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary")
    out.add_argument(
        "--json", action="store_true", help="one JSON line a second on stdout, and the summary"
    )
    p.set_defaults(run=run_produce)


def run_produce(args: argparse.Namespace) -> int:
    from loadgen.producer.service import run

    return run(ProduceRequest.from_args(args))
