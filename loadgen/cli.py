"""`bankstream generate`: the engine's events as JSON lines, without Kafka."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bankstream.commands import add_overrides, checked_seed, run_id, summary
from bankstream.durations import format_duration
from bankstream.errors import BankstreamError, UsageError
from loadgen.pacing import Schedule
from loadgen.stream import RunStream, plan
from scenarios import load


def register(commands: Any) -> None:
    p = commands.add_parser(
        "generate",
        help=summary("generate"),
        description="Write a scenario's events as JSON lines, one event per line, ordered by "
        "event time. The same scenario, seed and cells give the same events, byte for byte, "
        "whatever the split of cells between processes or hosts.",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="bundled name or path to a YAML file")
    p.add_argument(
        "--events",
        type=int,
        metavar="N",
        help="how many events in all (default: as many as the scenario's load sends: its events, "
        "rate x duration, or its stages)",
    )
    p.add_argument(
        "--cells", metavar="A-B", help="only these cells of the population (inclusive), e.g. 0-127"
    )
    p.add_argument("--seed", type=int, metavar="S", help="override the scenario's seed")
    add_overrides(p)
    p.add_argument(
        "--run-id",
        type=run_id,
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


def _not_an_input(output: Path, inputs: tuple[Path, ...]) -> None:
    """Refuse an --output that is one of the command's own input files."""
    for source in inputs:
        try:
            same = output.exists() and os.path.samefile(output, source)
        except OSError:
            same = False
        if same:
            msg = (
                f"--output {output} is the scenario file this command reads ({source}): "
                "writing there would destroy it; give another file"
            )
            raise UsageError(msg)


def run_generate(args: argparse.Namespace) -> int:
    seed = checked_seed(args.seed)
    loaded = load(
        args.scenario, args.overrides, flags=[] if seed is None else [(("seed",), seed, "--seed")]
    )
    load_ = loaded.scenario.load
    events = args.events if args.events is not None else Schedule.of_load(load_).total
    if events is None:
        msg = (
            f"{loaded.scenario.name} sends as fast as it can for "
            f"{format_duration(load_.duration or 0)}: give --events N"
        )
        raise UsageError(msg)
    if events <= 0:
        msg = f"--events must be positive, got {events}"
        raise UsageError(msg)
    # everything that can be refused is refused before the output is opened
    run = plan(loaded, events=events, cells=args.cells, run_id=args.run_id)
    own = run.own_events or 0
    began = time.perf_counter()
    if args.output != "-":
        _not_an_input(Path(args.output), loaded.sources)
    out: IO[bytes]
    try:
        out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
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
        disable=args.quiet or args.output == "-" or not console.is_terminal,
    )
    try:
        task = progress.add_task("events", total=own)
        progress.start()
        for batch in RunStream(run).batches():
            data = batch.data
            if args.keys:
                data = "".join(
                    [f"{k}\t{line}\n" for k, line in zip(batch.keys, batch.lines, strict=True)]
                ).encode()
            out.write(data)
            written += len(batch)
            size += len(data)
            progress.update(task, completed=written)
        out.flush()
    except BrokenPipeError:  # e.g. | head: the reader has what it wanted
        sys.stderr.close()
        return 0
    except OSError as exc:  # the disk is full, the device refuses writes
        where = "standard output" if args.output == "-" else args.output
        msg = f"cannot write {where} after {written:,} events: {exc.strerror or exc}"
        raise BankstreamError(msg) from None
    finally:
        progress.stop()
        if args.output != "-":
            with contextlib.suppress(OSError):  # what could not be written was reported
                out.close()
    seconds = time.perf_counter() - began
    if not args.quiet:
        cells = run.cells
        console.print(
            f"generated {written:,} events of {loaded.scenario.name} (cells "
            f"{cells.start}-{cells.stop - 1} of {run.model.cells}, seed {loaded.scenario.seed}), "
            f"{size / 1e6:.1f} MB in {seconds:.1f} s ({written / max(seconds, 1e-9):,.0f} "
            "events/s)"
        )
    return 0
