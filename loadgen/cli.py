"""`bankstream generate`: the engine's events as JSON lines, without Kafka."""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bankstream.commands import add_overrides
from bankstream.errors import UsageError
from loadgen.engine import cell_streams, merged, parse_cells, quotas, time_scale
from loadgen.model import EngineModel
from scenarios import load


def register(commands: Any) -> None:
    p = commands.add_parser(
        "generate",
        help="write a scenario's events as JSON lines (no Kafka): for inspection and tools",
        description="Write a scenario's events as JSON lines, one event per line, ordered by "
        "event time. The same scenario, seed and cells give the same events, byte for byte, "
        "whatever the split of cells between processes or hosts.",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="bundled name or path to a YAML file")
    p.add_argument(
        "--events",
        type=int,
        metavar="N",
        help="how many events in all (default: the scenario's load.events)",
    )
    p.add_argument(
        "--cells", metavar="A-B", help="only these cells of the population (inclusive), e.g. 0-127"
    )
    p.add_argument("--seed", type=int, metavar="S", help="override the scenario's seed")
    add_overrides(p)
    p.add_argument(
        "--run-id",
        metavar="ID",
        help="run id written in every event (default: gen-<8 hex of the scenario digest>)",
    )
    p.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE|-",
        help="where to write (default: standard output)",
    )
    p.add_argument(
        "--keys", action="store_true", help="prefix each line with its Kafka key and a tab"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    p.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.seed is not None:
        if args.seed < 0:
            msg = f"--seed must be 0 or more, got {args.seed}"
            raise UsageError(msg)
        overrides.append(f"seed={args.seed}")
    loaded = load(args.scenario, overrides=overrides)
    events = args.events if args.events is not None else loaded.scenario.load.events
    if events is None:
        msg = f"{loaded.scenario.name} has no load.events: give --events N"
        raise UsageError(msg)
    if events <= 0:
        msg = f"--events must be positive, got {events}"
        raise UsageError(msg)
    model = EngineModel.build(loaded.scenario, loaded.digest, args.run_id)
    try:
        cells = parse_cells(args.cells, model.cells)
    except Exception as exc:
        raise UsageError(str(exc)) from None
    began = time.perf_counter()
    out: IO[str]
    try:
        out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        msg = f"cannot write {args.output}: {exc.strerror}; give another --output"
        raise UsageError(msg) from None
    written = size = 0
    console = Console(stderr=True, highlight=False)
    # a progress bar for a person watching a long run into a file
    progress = Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=args.quiet or out is sys.stdout or not console.is_terminal,
    )
    try:
        streams = [chunks for _, chunks in cell_streams(model, cells, events, time_scale(loaded))]
        share = sum(quotas(model, events)[c] for c in cells)
        task = progress.add_task("events", total=share)
        progress.start()
        batch: list[str] = []
        for _, key, line in merged(streams):
            batch.append(f"{key}\t{line}" if args.keys else line)
            if len(batch) >= 8192:
                text = "\n".join(batch) + "\n"
                out.write(text)
                written += len(batch)
                size += len(text)
                batch.clear()
                progress.update(task, completed=written)
        if batch:
            text = "\n".join(batch) + "\n"
            out.write(text)
            written += len(batch)
            size += len(text)
        out.flush()
    except BrokenPipeError:  # e.g. | head: the reader has what it wanted
        sys.stderr.close()
        return 0
    finally:
        progress.stop()
        if out is not sys.stdout:
            out.close()
    seconds = time.perf_counter() - began
    if not args.quiet:
        console.print(
            f"generated {written:,} events of {loaded.scenario.name} (cells "
            f"{cells.start}-{cells.stop - 1} of {model.cells}, seed {loaded.scenario.seed}), "
            f"{size / 1e6:.1f} MB in {seconds:.1f} s ({written / max(seconds, 1e-9):,.0f} "
            "events/s)"
        )
    return 0
