"""`bankstream sink`: Kafka -> MongoDB, several processes in one consumer group."""

from __future__ import annotations

import argparse
from typing import Any

from bankstream import metrics
from bankstream.commands import PORT, field_range, in_range, summary, topic
from scenarios.model import Sink

EPILOG = """A sink process that dies is restarted (after 0.5, 1, 2, 4, 8 s; at most 5 restarts a
minute, then the sink fails); the batch it was writing is finished by whoever gets its
partitions. exit codes: 0 stopped (SIGINT/SIGTERM, or --until-idle) with every batch read written
and its offsets committed; 1 a sink process failed for good; 2 input to correct; 130/143 stopped
at once by a second SIGINT/SIGTERM."""


def register(commands: Any) -> None:
    p = commands.add_parser(
        "sink",
        help=summary("sink"),
        description="Read the events from Kafka and write them to MongoDB: each transaction "
        "once (its tx_id is the _id), the accounts' balances and the dashboard's rollups exact "
        "whatever is replayed or wherever a process dies (docs/sink.md); messages that are not "
        "events go to a dead-letter topic. Several processes share the partitions in one "
        "consumer group. Runs until stopped (or idle, with --until-idle). With --scenario, its "
        "sink and delivery sections give the defaults (topic, batch size, flush interval, "
        "processes, write concern, collections, dead-letter topic); flags win.",
        epilog=EPILOG,
    )
    p.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="take the defaults from this scenario's sink and delivery sections",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of --scenario (repeatable), e.g. sink.batch_size=2000",
    )
    p.add_argument("--group", default="bankstream-sink", metavar="G", help="consumer group")
    p.add_argument(
        "--topic",
        metavar="T",
        type=topic,
        help="the events' topic (default: bankstream.transactions)",
    )
    p.add_argument(
        "--dead-letter-topic",
        metavar="T",
        type=topic,
        help="where bad messages go (default: TOPIC.dlq)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        action=in_range(*field_range(Sink, "batch_size")),
        metavar="N",
        help="messages a batch (5000)",
    )
    p.add_argument(
        "--flush-interval",
        metavar="D",
        help="the longest a batch waits to fill (default: 200ms)",
    )
    p.add_argument(
        "--processes",
        type=int,
        action=in_range(*field_range(Sink, "workers")),
        metavar="N",
        help="sink processes in the group (default: 1)",
    )
    p.add_argument(
        "--until-idle",
        metavar="D",
        help="stop once no message came for this long, e.g. 10s (default: run until stopped)",
    )
    p.add_argument(
        "--store-timeout",
        default="30s",
        metavar="D",
        help="the longest a MongoDB operation may take before the sink retries it (30s)",
    )
    p.add_argument(
        "--lease",
        default="20s",
        metavar="D",
        help="how long a batch a sink died writing waits before another sink finishes it (20s): "
        "shorter is a faster takeover, but must stay longer than any write takes (a writer "
        "stalled beyond it can be overtaken; see docs/sink.md)",
    )
    p.add_argument(
        "--no-projections",
        action="store_true",
        help="write transactions only (no accounts, no rollups): to measure what they cost",
    )
    metrics.add_push_flags(p)
    p.add_argument(
        "--metrics-port",
        type=int,
        action=PORT,
        metavar="P",
        help="port of /metrics (default: BANKSTREAM_SINK_METRICS_PORT, 9102; 0: none)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary")
    out.add_argument("--json", action="store_true", help="one JSON line a second on stdout")
    p.add_argument("--fault", help=argparse.SUPPRESS)  # tests: where a process dies
    p.set_defaults(run=run_sink)


def run_sink(args: argparse.Namespace) -> int:
    from sink.request import SinkRequest
    from sink.service import run

    return run(SinkRequest.from_args(args))
