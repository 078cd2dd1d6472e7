"""`bankstream run`, `compare` and `merge`: the harness's commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bankstream.commands import (
    PROCESSES,
    add_overrides,
    command_group,
    duration,
    field_range,
    global_flags,
    in_range,
    run_id,
    settings_from,
    summary,
    topic,
    writable_folder,
)
from bankstream.errors import UsageError
from bankstream.progress import PROGRESS_VERSION, RunSummary
from harness.verify import DEFAULT_LIMIT
from scenarios.model import Sink

EVENTS = in_range(1, 10_000_000)  # a benchmark's events (one topic filled once)

if TYPE_CHECKING:
    from harness.request import RunRequest
    from harness.result import Result

RUN_EPILOG = """\
exit codes: 0 every threshold held and the store holds exactly what was acknowledged; 1 a
threshold failed or the verification found a difference (each is named); 2 input to correct;
130 stopped by Ctrl-C (the result is still written). Results: RESULTS/<run id>/result.json,
report.md and PNG charts.
"""


def register(commands: Any) -> None:
    """`run`, `compare`, `merge`, `bench` and `watch`."""
    _register_run(commands)
    _register_compare_merge(commands)
    _register_bench(commands)
    _register_watch(commands)


def _register_run(commands: Any) -> None:
    p = commands.add_parser(
        "run",
        help=summary("run"),
        description="Run a scenario end to end: start the local stack when no cluster is "
        "configured, create the run's topic, start the sink, then the producer; show both "
        "live; wait for the sink to drain; verify the store against the producer's manifest "
        "(lost, duplicates, counts, money, ledger, checksums, projections); judge the "
        "scenario's thresholds on the figures after the warm-up; write result.json, report.md "
        "and charts. Ctrl-C stops the producer, lets the sink write what was acknowledged, and "
        "still reports.",
        epilog=RUN_EPILOG,
    )
    from loadgen.producer.request import add_load_flags

    add_load_flags(p)
    p.add_argument(
        "--processes", type=int, action=PROCESSES, metavar="N", help="producer processes"
    )
    p.add_argument(
        "--sink-processes",
        type=int,
        action=in_range(*field_range(Sink, "workers")),
        metavar="N",
        help="sink processes in the consumer group (default: the scenario's sink.workers)",
    )
    p.add_argument("--seed", type=int, metavar="S", help="override the scenario's seed")
    add_overrides(p)
    p.add_argument(
        "--run-id",
        type=run_id,
        metavar="ID",
        help="the run's id (default: <scenario>-<time>-<hex>)",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="this host's share when N hosts run one run (needs --run-id; then bankstream merge)",
    )
    p.add_argument(
        "--topic",
        metavar="T",
        type=topic,
        help="Kafka topic (default: <the scenario's topic>.<run id>)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="drop the scenario's transactions, accounts and rollups collections first (the "
        "projections are verified only when the collections hold this run alone)",
    )
    p.add_argument(
        "--no-stack",
        action="store_true",
        help="do not start the local stack; use the configured servers as they are",
    )
    p.add_argument(
        "--no-warm",
        action="store_true",
        help="do not warm a cold local MongoDB-wire server first (a JVM just started writes "
        "slowly for ~25 s; real MongoDB is never warmed)",
    )
    p.add_argument(
        "--keep-topic", action="store_true", help="keep the run's topic (default: deleted)"
    )
    p.add_argument(
        "--drain-timeout",
        type=duration(0, 86400),
        default=300.0,
        metavar="D",
        help="after the producer stops, wait at most this long for the sink, e.g. 90s or 5m "
        "(default: 5m)",
    )
    p.add_argument(
        "--verify-limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help="the full stream check and the projections up to this many events (0: do not "
        f"verify at all; default: {DEFAULT_LIMIT}); counts, ledger and checksums are always "
        "checked",
    )
    p.add_argument(
        "--results", type=Path, default=Path("results"), metavar="DIR", help="default: ./results"
    )
    p.add_argument(
        "--fault",
        dest="faults",
        action="append",
        type=fault_spec,
        default=[],
        metavar="SPEC",
        help="inject a fault, times from the producer's start (repeatable): kill-sink@20s, "
        "pause-broker@30s:10s, restart-broker@30s, kill-broker@30s[:20s] (with `stack up "
        "--brokers 3`), pause-store@30s:20s, exec@30s:COMMAND (any shell line, e.g. docker "
        "compose pause mongo); each fault's recovery time is measured and reported",
    )
    p.add_argument(
        "--judge-latency",
        choices=("outside-faults", "whole-run"),
        default="outside-faults",
        help="with --fault: judge the latency and lag thresholds outside the faults' windows "
        "and recoveries (default), or over the whole run",
    )
    p.add_argument(
        "--sink",
        choices=("bankstream", "connect", "external"),
        default="bankstream",
        help="the pipeline under test: bankstream's own sink (default); connect: the official "
        "MongoDB Kafka sink connector on Kafka Connect (`stack up --with connect`, or "
        "BANKSTREAM_CONNECT_URL); external: your own pipeline, which reads the run's topic and "
        "writes --target (see docs/targets.md)",
    )
    p.add_argument(
        "--target",
        metavar="DB.COLLECTION",
        help="--sink connect|external: where the pipeline stores the events (default: the "
        "configured database, the scenario's transactions collection; --fresh drops it)",
    )
    add_target_flags(p)
    from bankstream.metrics import add_push_flags

    add_push_flags(p)
    p.add_argument(
        "--backlog",
        type=int,
        metavar="N",
        help="a catch-up run: the pipeline starts only once N events wait in the topic (the "
        "load goes on); the result gives the catch-up time and rate (--sink bankstream or "
        "connect)",
    )
    p.add_argument(
        "--find-max",
        action="store_true",
        help="capacity search: short steps from --rate (default: the scenario's), doubling while "
        "they pass, then bisecting, to the highest rate that meets the thresholds",
    )
    p.add_argument(
        "--budget", default="10m", metavar="D", help="--find-max: time for all steps (10m)"
    )
    p.add_argument(
        "--step", default="30s", metavar="D", help="--find-max: each step's length (30s)"
    )
    p.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="also write the result as JUnit XML (a test case per threshold and per check of "
        "the store; with --find-max, per step) for CI systems' test reports",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="only the verdict")
    out.add_argument(
        "--json", action="store_true", help="one JSON line a second, then the result's summary"
    )
    p.set_defaults(run=run_run)


def _register_compare_merge(commands: Any) -> None:
    c = commands.add_parser(
        "compare",
        help=summary("compare"),
        description="Results side by side: each figure of every run, its change from the first, "
        "and regressions beyond noise flagged. Noise comes from the runs themselves: a figure's "
        "per-second series gives its relative standard error; a change is flagged when it "
        "exceeds three combined standard errors and a floor (5%% for rates, 10%% for latencies "
        "and resources); lost, duplicates, failed and dead letters on any increase.",
        epilog="exit codes: 0 no regression; 1 a regression flagged; 2 input to correct.",
    )
    c.add_argument(
        "results",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="results/<run id> folders or result.json files; the first is the baseline",
    )
    c.add_argument("--json", action="store_true", help="the comparison as JSON")
    c.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="also write the comparison as JUnit XML (a test case per figure and run; a "
        "regression fails it)",
    )
    c.set_defaults(run=run_compare)

    m = commands.add_parser(
        "merge",
        help=summary("merge"),
        description="Merge the results of the hosts of one run (bankstream run --shard I/N "
        "--run-id ID on each) into one result: manifests add up, histograms merge bucket by "
        "bucket, rates add up; the whole run is verified against the store (the settings name "
        "it) and the thresholds are judged again.",
        epilog="exit codes: 0 every threshold held and the store is exact; 1 not; 2 input to "
        "correct (a shard missing or given twice, results of different runs).",
    )
    m.add_argument(
        "results", nargs="*", type=Path, metavar="RESULT", help="each host's result folder"
    )
    m.add_argument(
        "--run-id",
        type=run_id,
        metavar="ID",
        help="instead of result folders: the shard manifests the producers of run ID left in "
        "MongoDB's runs collection (the Kubernetes Job), with --scenario",
    )
    m.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="with --run-id: the scenario the producers ran (thresholds, collections)",
    )
    add_overrides(m)
    m.add_argument(
        "--results",
        dest="output",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="where the merged result goes: DIR/<run id> (default: ./results)",
    )
    m.add_argument(
        "--verify-limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help="as for bankstream run (0: do not verify)",
    )
    m.add_argument("--json", action="store_true", help="the summary as one JSON line")
    m.set_defaults(run=run_merge)


def _register_bench(commands: Any) -> None:
    add = command_group(
        commands,
        "bench",
        summary("bench"),
        "Benchmarks of the configured cluster. `ceiling`: what the raw clients do with a "
        "scenario's own data (bankstream run states its rates as shares of it).",
    )
    b = add(
        "ceiling",
        "measure the raw Kafka producer and the raw MongoDB insert_many with a scenario's "
        "payloads, keys and documents",
        "Kafka: a bare confluent-kafka loop sending the scenario's pre-built payloads and keys "
        "with the producer's settings to a fresh topic (deleted after). MongoDB: "
        "insert_many(ordered=False) of the same events as documents in batches of the sink's "
        "size into a scratch database (dropped after). Kept in RESULTS/ceilings/<scenario>.json, "
        "which bankstream run reads.",
    )
    b.add_argument("scenario", metavar="SCENARIO", help="bundled name or path to a YAML file")
    b.add_argument(
        "--events",
        type=int,
        action=EVENTS,
        default=100_000,
        metavar="N",
        help="how many (default: 100000)",
    )
    b.add_argument(
        "--processes",
        type=int,
        action=PROCESSES,
        default=1,
        metavar="N",
        help="Kafka sending processes (1)",
    )
    add_overrides(b)
    b.add_argument(
        "--results", type=Path, default=Path("results"), metavar="DIR", help="default: ./results"
    )
    b.add_argument("--json", action="store_true", help="the figures as one JSON line")
    b.set_defaults(run=run_ceiling)
    from harness.sinkbench import TARGETS

    k = add(
        "sinks",
        "the same topic through each pipeline in turns (bankstream's sink with and without "
        "projections, the MongoDB Kafka connector): rates and ratios",
        "Produces N of the scenario's events into a topic once, then, round by round (A B C A B "
        "C), lets each target store the whole topic from a standing start into a database of "
        "its own (dropped after). A target's rate: its documents over the time from its start "
        "to its last document; its writing rate: from its first document. Medians of the "
        "rounds, ratios to the first target. connect needs Kafka Connect (`stack up --with "
        "connect`, or BANKSTREAM_CONNECT_URL).",
    )
    k.add_argument("scenario", metavar="SCENARIO", help="bundled name or path to a YAML file")
    k.add_argument(
        "--events",
        type=int,
        action=EVENTS,
        default=100_000,
        metavar="N",
        help="how many (default: 100000)",
    )
    k.add_argument(
        "--targets",
        default=",".join(TARGETS),
        metavar="A,B,...",
        help=f"which, in this order, the first the ratios' base (default: {','.join(TARGETS)})",
    )
    k.add_argument(
        "--rounds",
        type=int,
        action=in_range(1, 20),
        default=2,
        metavar="R",
        help="turns of each (2)",
    )
    k.add_argument(
        "--processes",
        type=int,
        action=in_range(*field_range(Sink, "workers")),
        default=2,
        metavar="N",
        help="sink processes, and the connector's tasks (2)",
    )
    add_overrides(k)
    k.add_argument("--json", action="store_true", help="the figures as one JSON line")
    k.set_defaults(run=run_bench_sinks)


def _register_watch(commands: Any) -> None:
    from harness.watch import POLL_SECONDS, PROBES_PER_SECOND, run_watch

    w = commands.add_parser(
        "watch",
        help=summary("watch"),
        description="Follow a Kafka -> MongoDB pipeline from outside, asking it nothing: the "
        "target collection's count every second (throughput), the pipeline's consumer group "
        "offsets (lag in messages and seconds; without --group, the messages in the topic not "
        "yet stored), and end-to-end latency by probes: messages sampled from the topic, looked "
        f"up in the store by id every {POLL_SECONDS * 1000:.0f} ms. bankstream run --sink "
        "external|connect runs it for you. Runs until stopped (Ctrl-C), then prints a summary.",
    )
    w.add_argument("--topic", required=True, type=topic, metavar="T", help="the events' topic")
    w.add_argument(
        "--target",
        required=True,
        metavar="DB.COLLECTION",
        help="where the pipeline stores the events",
    )
    add_target_flags(w)
    w.add_argument(
        "--probes",
        type=float,
        default=PROBES_PER_SECOND,
        metavar="K",
        help=f"messages a second looked up for latency (default: {PROBES_PER_SECOND:g})",
    )
    w.add_argument(
        "--wait-timeout",
        type=duration(1, 86400),
        default=600.0,
        metavar="D",
        help="with --wait-for-group: how long to wait for the group (default: 10m)",
    )
    w.add_argument(
        "--sample-file",
        type=Path,
        metavar="FILE",
        help="write the probed events here as JSON lines (for a field-by-field check)",
    )
    w.add_argument(
        "--from-start",
        action="store_true",
        help="count the topic's messages from its start (the topic holds one run's events, a "
        "backlog waiting) and probe them too; default: from the watch's start",
    )
    w.add_argument("--json", action="store_true", help="one JSON line a second, then a summary")
    w.set_defaults(run=run_watch)


def add_target_flags(p: Any) -> None:
    """How a pipeline's documents look, and its consumer group (run and watch)."""
    p.add_argument(
        "--id-field",
        default="tx_id",
        metavar="F",
        help="the event's field that identifies it (default: tx_id)",
    )
    p.add_argument(
        "--event-field",
        metavar="F",
        help="the document's field that holds the event (default: the event's fields are the "
        "document's own)",
    )
    p.add_argument(
        "--group",
        metavar="G",
        help="the pipeline's consumer group: lag and the drain read its committed offsets",
    )
    p.add_argument(
        "--wait-for-group",
        metavar="G",
        help="start only once consumer group G reads the topic (and read lag from it)",
    )


def fault_spec(text: str) -> Any:
    """An argparse type: a --fault SPEC (harness.faults)."""
    from harness.faults import FaultError, parse_fault

    try:
        return parse_fault(text)
    except FaultError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_run(args: argparse.Namespace) -> int:
    writable_folder(args.results, "--results")
    from harness.request import RunRequest, check_counts
    from harness.run import execute
    from loadgen.assign import split
    from loadgen.pacing import Schedule
    from loadgen.population import cell_activity
    from loadgen.producer.coordinator import default_run_id
    from loadgen.stream import plan

    check_counts(args)
    if args.junit is not None:
        writable_folder(args.junit.parent, "--junit")
    if args.find_max:
        return find_max_run(args)
    request = RunRequest.from_args(args)
    loaded = request.load.resolve()
    extras = {"stack_connect": request.sink == "connect", "stack_pushgateway": request.push}
    settings = settings_from(args, **{k: True for k, on in extras.items() if on})
    _services(request, settings)
    if request.faults:
        from harness.inject import check

        check(list(request.faults), settings)
    run_id = request.run_id or default_run_id(loaded.scenario.name)
    # the producer's own checks (the load against the population, cells, shards), before
    # anything starts; a shard's target is its share of the run's rate
    schedule = Schedule.of_load(loaded.scenario.load)
    whole = plan(loaded, run_id=run_id, schedule=schedule)
    shard = request.shard
    if shard:
        activity = whole.model.cell_activity(cell_activity)
        cells = split(range(whole.model.cells), activity, shard[1])[shard[0]]
        if not len(cells):
            msg = f"--shard {args.shard}: this scenario has {whole.model.cells} cells, fewer than N"
            raise UsageError(msg)
        schedule = plan(loaded, cells=cells, run_id=run_id, schedule=schedule).own_schedule
    outcome = execute(request, loaded, settings, run_id, schedule)
    result = outcome.result
    if args.junit is not None:
        from harness import junit

        junit.write(args.junit, [junit.run_suite(result)])
    if request.output == "json":
        print(json.dumps(_summary(result, outcome.folder)), flush=True)
    else:
        _print_verdict(
            Console(stderr=True, highlight=False, soft_wrap=True), result, outcome.folder
        )
    return outcome.exit_code


def _services(request: RunRequest, settings: Any) -> None:
    """The configured servers answering: the local stack started where it is ours to start
    (its progress shown only to a person), or, with --no-stack, Kafka and MongoDB pinged."""
    if request.no_stack:
        from bankstream import kafka, mongo

        kafka.wait_for_metadata(settings, settings.connect_timeout)
        mongo.ping(settings)
        if request.sink == "connect":
            from bankstream import connect

            connect.probe(settings, settings.connect_timeout)
    else:
        from bankstream.stack import lifecycle

        console = Console(stderr=True, highlight=False, soft_wrap=True)
        lifecycle.up(settings, report=console.print if request.output == "live" else lambda _: None)


def _summary(result: Result, folder: Path) -> RunSummary:
    return {
        "record": "summary",
        "v": PROGRESS_VERSION,
        "run_id": result["run_id"],
        "verdict": result.get("verdict", "fail"),
        "failed": result.get("failed", []),
        "ended": result["ended"],
        "verification": result["verification"],
        "measured": {t["metric"]: t["measured"] for t in result.get("thresholds", [])},
        "result": str(folder / "result.json"),
        "report": str(folder / "report.md"),
    }


def _print_verdict(console: Console, result: Result, folder: Path) -> None:
    verdict = result["verdict"]
    v = result["verification"]
    fig = result["figures"]
    console.print(
        f"run {result['run_id']}: {verdict.upper()}"
        + (
            f": {v['distinct']:,} of {v['expected']:,} acknowledged events stored, lost "
            f"{v['lost']:,}, duplicates {v['duplicates']:,}"
            if v
            else f" ({result['verification_note']})"
        )
    )
    e2e = fig["latency"]["end_to_end"]
    if e2e["p99"] is not None:
        console.print(
            f"  end-to-end latency p50 {e2e['p50'] * 1000:,.0f} ms, p99 {e2e['p99'] * 1000:,.0f} "
            f"ms; max lag {fig['lag']['max_seconds'] or 0:.1f} s"
        )
    for item in result["failed"]:
        console.print(f"  failed: {item}")
    console.print(f"  report: {folder / 'report.md'}")


def run_compare(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness import compare
    from harness.result import read

    if len(args.results) < 2:
        msg = "compare needs at least two results (the first is the baseline)"
        raise UsageError(msg)
    if args.junit is not None:
        writable_folder(args.junit.parent, "--junit")
    results = [read(path) for path in args.results]
    changes = compare.compare(results)
    if args.junit is not None:
        from harness import junit

        junit.write(args.junit, [junit.compare_suite(results, changes)])
    regressions = [("ended early", run) for run in compare.early_regressions(results)]
    regressions += [
        (c.figure.name, str(results[i]["run_id"]))
        for c in changes
        for i, flag in enumerate(c.flags)
        if flag == "regression"
    ]
    early = {str(r["run_id"]): e for r in results if (e := compare.ended_early(r))}
    if args.json:
        print(
            json.dumps(
                {
                    "runs": [r["run_id"] for r in results],
                    "pipelines": [compare.pipeline(r) for r in results],
                    "ended_early": early,
                    "figures": [
                        {
                            "figure": c.figure.name,
                            "unit": c.figure.unit,
                            "values": c.values,
                            "changes": c.changes,
                            "noise": c.noise,
                            "flags": c.flags,
                        }
                        for c in changes
                    ],
                    "regressions": [{"figure": f, "run": r} for f, r in regressions],
                }
            )
        )
    else:
        rows = compare.table(results, changes)
        grid = Table(*rows[0], box=None, highlight=False)
        for row in rows[1:]:
            grid.add_row(*row)
        console = Console(highlight=False, soft_wrap=True)
        for run, ended in early.items():
            console.print(
                f"{run} ended early ({ended}): its rates, latencies and resources cover part of "
                "a run and are not judged against a complete run's"
            )
        console.print(grid)
        verdicts = ", ".join(f"{r['run_id']} {r['verdict']}" for r in results)
        console.print(f"verdicts: {verdicts}")
        if regressions:
            for figure, run in regressions:
                console.print(f"regression: {figure} in {run}")
        else:
            console.print("no regression beyond noise")
    return 1 if regressions else 0


def run_merge(args: argparse.Namespace) -> int:
    writable_folder(args.output, "--results")
    from harness.merge import merge_results
    from harness.result import read

    if args.verify_limit < 0:
        msg = f"--verify-limit must be 0 (no verification) or more, got {args.verify_limit}"
        raise UsageError(msg)
    settings = settings_from(args)
    from bankstream import mongo

    if args.run_id:
        from harness.merge import merge_store
        from scenarios import load

        if args.results or not args.scenario:
            msg = "merge --run-id ID takes --scenario NAME|FILE and no result folders"
            raise UsageError(msg)
        loaded = load(args.scenario, overrides=args.overrides)
        mongo.ping(settings)  # an unreachable store: one line that names the setting
        folder = args.output / args.run_id
        merged = merge_store(loaded, args.run_id, settings, folder, args.verify_limit)
    else:
        if not args.results:
            msg = "merge needs the result folders of the hosts (or --run-id ID --scenario S)"
            raise UsageError(msg)
        results = [read(path) for path in args.results]
        mongo.ping(settings)
        folder = args.output / str(results[0]["run_id"])
        merged = merge_results(results, settings, folder, args.verify_limit)
    if args.json:
        print(json.dumps(_summary(merged, folder)), flush=True)
    else:
        _print_verdict(Console(stderr=True, highlight=False, soft_wrap=True), merged, folder)
    return 0 if merged["verdict"] == "pass" else 1


def run_ceiling(args: argparse.Namespace) -> int:
    writable_folder(args.results, "--results")
    from harness import ceiling
    from scenarios import load

    loaded = load(args.scenario, overrides=args.overrides)
    settings = settings_from(args)
    from bankstream import kafka, mongo

    kafka.wait_for_metadata(settings, settings.connect_timeout)
    mongo.ping(settings)
    figures = ceiling.measure(settings, loaded, args.events, args.processes)
    path = ceiling.save(figures, args.results)
    if args.json:
        print(json.dumps({**figures, "file": str(path)}))
    else:
        k, m = figures["kafka_producer"], figures["mongodb_insert"]
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(
            f"ceilings of {figures['scenario']} on this cluster ({args.events:,} events): Kafka "
            f"producer {k['rate']:,.0f} events/s ({k['processes']} process(es)), MongoDB "
            f"insert_many {m['rate']:,.0f} documents/s (batches of {m['batch_size']:,})"
        )
        console.print(f"  kept in {path}; bankstream run states its rates against them")
    return 0


def run_bench_sinks(args: argparse.Namespace) -> int:
    from harness.sinkbench import TARGETS, measure
    from scenarios import load

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets or len(set(targets)) != len(targets):
        msg = f"--targets: give each of {', '.join(TARGETS)} at most once, got {args.targets!r}"
        raise UsageError(msg)
    load(args.scenario, overrides=args.overrides)  # its errors before anything starts
    settings = settings_from(args, **({"stack_connect": True} if "connect" in targets else {}))
    from bankstream.stack import lifecycle

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    say = console.print if not args.json else (lambda _: None)
    lifecycle.up(settings, report=say)
    figures = measure(
        settings,
        args.scenario,
        args.overrides,
        args.events,
        targets,
        args.rounds,
        args.processes,
        say,
        global_flags=global_flags(args.config, args.verbose),
    )
    if args.json:
        print(json.dumps(figures))
        return 0
    console.print(
        f"{figures['expected']:,} events of {figures['scenario']}, {args.processes} process(es) "
        f"or task(s) each, {args.rounds} round(s) in turns; medians:"
    )
    for target, f in figures["targets"].items():
        rate = f"{f['rate']:,.0f}/s" if f["rate"] else "did not finish"
        writing = f" ({f['writing_rate']:,.0f}/s writing)" if f["writing_rate"] else ""
        ratio = f", {f['ratio']:.2f} x {targets[0]}" if f["ratio"] is not None else ""
        console.print(f"  {target:<26} {rate}{writing}{ratio}")
    return 0 if all(f["complete"] for f in figures["targets"].values()) else 1


def find_max_run(args: argparse.Namespace) -> int:
    from bankstream.durations import parse_duration
    from harness.capacity import find_max
    from loadgen.producer.coordinator import default_run_id

    for flag in ("stages", "duration", "events", "shard"):
        if getattr(args, flag) is not None:
            msg = f"--find-max sets the rate and length of each step: leave out --{flag}"
            raise UsageError(msg)
    if args.faults:
        msg = "--find-max runs steps of a healthy pipeline: run --fault without --find-max"
        raise UsageError(msg)
    if args.sink != "bankstream":
        msg = f"--find-max searches with bankstream's sink only: run --sink {args.sink} at a rate"
        raise UsageError(msg)
    seconds = {}
    for flag in ("budget", "step"):
        try:
            seconds[flag] = parse_duration(getattr(args, flag))
        except ValueError as exc:
            msg = f"--{flag}: {exc}"
            raise UsageError(msg) from None
    if not 4 <= seconds["step"] <= 3600:
        msg = f"--step must be between 4s and 1h, got {args.step}"
        raise UsageError(msg)
    if seconds["budget"] < seconds["step"]:
        msg = f"--budget ({args.budget}) must be longer than a step ({args.step})"
        raise UsageError(msg)
    from harness.request import RunRequest

    # the scenario as the steps start from: --rate is each step's own, not the scenario's
    # (a scenario with stages has no rate to set); the steps use what is up now
    request = RunRequest.from_args(args)
    if request.load.rate == "max":
        msg = "--rate (the first step's rate) must be a positive number, got max"
        raise UsageError(msg)
    loaded = request.load.base()
    _services(request, settings_from(args))
    request = request.model_copy(update={"no_stack": True})
    run_id = request.run_id or default_run_id(f"{loaded.scenario.name}-max")
    return find_max(
        request, seconds["budget"], seconds["step"], loaded.scenario, run_id, args.junit
    )
