"""`bankstream produce`: a scenario's events into Kafka, paced, from several processes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bankstream import metrics
from bankstream.commands import (
    PORT,
    PROCESSES,
    add_overrides,
    duration,
    run_id,
    settings_from,
    summary,
    topic,
    writable_folder,
)
from bankstream.durations import format_duration
from bankstream.errors import UsageError
from bankstream.progress import PROGRESS_VERSION, ProducerSummary
from loadgen.assign import parse_cells, parse_shard, split
from loadgen.pacing import Schedule
from loadgen.population import cell_activity
from loadgen.producer.coordinator import Coordinator, Options, default_processes, default_run_id
from loadgen.producer.manifest import Manifest
from loadgen.producer.request import LoadRequest, add_load_flags
from loadgen.stream import plan

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
    writable_folder(args.results, "--results")
    shard = parse_shard(args.shard) if args.shard is not None else None
    if shard and not args.run_id:
        msg = "--shard needs --run-id: every host of the run must give the same one"
        raise UsageError(msg)
    loaded = LoadRequest.from_args(args).resolve()
    settings = settings_from(args)
    scenario = loaded.scenario
    schedule = Schedule.of_load(scenario.load)
    run_id = args.run_id or default_run_id(scenario.name)
    # every check before anything starts: cells, shard, the load against the population
    whole = plan(loaded, run_id=run_id, schedule=schedule)
    cells = parse_cells(args.cells, whole.model.cells)
    if shard:
        activity = whole.model.cell_activity(cell_activity)
        cells = split(range(whole.model.cells), activity, shard[1])[shard[0]]
        if not len(cells):
            msg = f"--shard {args.shard}: this scenario has {whole.model.cells} cells, fewer than N"
            raise UsageError(msg)
    run = plan(loaded, cells=cells, run_id=run_id, schedule=schedule)
    options = Options(
        processes=min(args.processes or default_processes(), len(cells)),
        topic=args.topic or scenario.delivery.topic,
        run_id=run_id,
        shard=shard,
        # pushed instead of served unless a port is asked for (else Prometheus counts twice)
        metrics_port=(
            args.metrics_port
            if args.metrics_port is not None
            else 0
            if args.push
            else settings.loadgen_metrics_port
        ),
        results=args.results,
        flush_timeout=args.flush_timeout,
        metrics_linger=max(0.0, args.metrics_linger),
        output="quiet" if args.quiet else "json" if args.json else "live",
        verbose=args.verbose,
        push_interval=args.push_interval if args.push else None,
    )
    result = Coordinator(settings, run, schedule, options).start()
    record = result.manifest
    if not args.quiet:
        report(record, str(result.path), args.json)
    return result.exit_code


def report(record: Manifest, path: str, as_json: bool) -> None:
    """The run's summary: one JSON object, or lines for a person."""
    events = record["events"]
    latency = record["delivery_latency"]["seconds"]
    lag = record["schedule_lag"]["seconds"]
    stages = record["stages"]
    summary_: ProducerSummary = {
        "record": "summary",
        "v": PROGRESS_VERSION,
        "run_id": record["run_id"],
        "ended": record["ended"],
        "made": events["made"],
        "produced": events["produced"],
        "acked": events["acked"],
        "failed": events["failed"],
        "unsent": events["unsent"],
        "purged": events["purged"],
        "wall_seconds": round(record["wall_seconds"], 2),
        "rate": round(events["acked"] / record["wall_seconds"], 1) if record["wall_seconds"] else 0,
        "delivery_latency_p50": latency["p50"],
        "delivery_latency_p99": latency["p99"],
        "schedule_lag_p99": lag["p99"],
        "stall_seconds": round(record["stall_seconds"], 2),
        "manifest": path,
        "problems": record.get("problems", []),
    }
    if as_json:
        print(json.dumps(summary_), flush=True)
        return
    from rich.console import Console

    console = Console(stderr=True, highlight=False)

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f} ms"

    console.print(
        f"run {record['run_id']} ({record['scenario']}): {record['ended']}: "
        f"{events['acked']:,} of {events['produced']:,} events acknowledged, "
        f"{events['failed']:,} failed, {events['unsent']:,} not sent, in "
        f"{format_duration(round(record['wall_seconds'], 1))}"
    )
    for i, stage in enumerate(stages):
        target = stage["target_rate"]
        achieved = stage["achieved_rate"]
        console.print(
            f"  stage {i + 1}: {stage['events']:,} events, {achieved or 0:,.0f}/s"
            + (
                f" (target {target:,.0f}/s, {stage['ramp']})"
                if target
                else " (as fast as possible)"
            )
        )
    console.print(
        f"  delivery latency p50 {ms(latency['p50'])}, p99 {ms(latency['p99'])}, max "
        f"{ms(latency['max'])}; schedule lag p99 {ms(lag['p99'])}; stalled "
        f"{record['stall_seconds']:.1f} s"
    )
    for problem in record.get("problems", []):
        console.print(f"  problem: {problem}")
    console.print(f"  manifest: {path}")
