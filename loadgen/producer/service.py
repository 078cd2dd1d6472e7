"""The producer as a library: :func:`run` sends what a :class:`ProduceRequest` asks for and
reports it (the manifest, and a summary unless quiet)."""

from __future__ import annotations

import json

from bankstream.commands import writable_folder
from bankstream.durations import format_duration
from bankstream.errors import UsageError
from bankstream.progress import PROGRESS_VERSION, ProducerSummary
from bankstream.settings import load_settings
from loadgen.assign import parse_cells, split
from loadgen.pacing import Schedule
from loadgen.population import cell_activity
from loadgen.producer.coordinator import Coordinator, Options, default_processes, default_run_id
from loadgen.producer.manifest import Manifest
from loadgen.producer.request import ProduceRequest
from loadgen.stream import plan


def run(request: ProduceRequest) -> int:
    """Plan the request's cells, send them, write the manifest; the exit code."""
    writable_folder(request.results, "--results")
    shard = request.shard
    loaded = request.load.resolve()
    settings = load_settings(request.config)
    scenario = loaded.scenario
    schedule = Schedule.of_load(scenario.load)
    run_id = request.run_id or default_run_id(scenario.name)
    # every check before anything starts: cells, shard, the load against the population
    whole = plan(loaded, run_id=run_id, schedule=schedule)
    cells = parse_cells(request.cells, whole.model.cells)
    if shard:
        activity = whole.model.cell_activity(cell_activity)
        cells = split(range(whole.model.cells), activity, shard[1])[shard[0]]
        if not len(cells):
            msg = (
                f"--shard {shard[0]}/{shard[1]}: this scenario has {whole.model.cells} cells, "
                "fewer than N"
            )
            raise UsageError(msg)
    run = plan(loaded, cells=cells, run_id=run_id, schedule=schedule)
    # pushed instead of served unless a port is asked for (else Prometheus counts twice)
    default_port = 0 if request.push else settings.loadgen_metrics_port
    options = Options(
        processes=min(request.processes or default_processes(), len(cells)),
        topic=request.topic or scenario.delivery.topic,
        run_id=run_id,
        shard=shard,
        metrics_port=request.metrics_port if request.metrics_port is not None else default_port,
        results=request.results,
        flush_timeout=request.flush_timeout,
        metrics_linger=max(0.0, request.metrics_linger),
        output=request.output,
        verbose=request.verbose,
        push_interval=request.push_interval if request.push else None,
    )
    result = Coordinator(settings, run, schedule, options).start()
    if request.output != "quiet":
        report(result.manifest, str(result.path), request.output == "json")
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
