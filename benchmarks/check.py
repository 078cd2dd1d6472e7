"""The quick regression check CI runs: each hot path timed against its ceiling side by side (A B A
B, the median of the pairs' ratios), compared with the ratios in ``benchmarks/baseline.json``.

    python -m benchmarks.check            # fail when a ratio is worse than the baseline's by more
                                          # than the tolerance (default 30%)
    python -m benchmarks.check --save     # measure and write the baseline

A ratio of two timings taken in turns on the same machine moves far less than either timing: on
this shared 2-core machine the fastest round of one benchmark moved by 50-65% between two runs of
the same code, while these ratios move by a few percent (see the README's Development section).

- ``serialise``: the producer's payloads of a batch (``Batch.values``) / ``orjson.dumps`` of the
  same events;
- ``decode``: the sink's decode and contract check / ``orjson.loads`` of the same bytes;
- ``fast``: the same through the fast path (BSON made in C, as ``--no-projections`` does) /
  ``orjson.loads`` of the same bytes;
- ``project``: the sink's projection of a 5,000-event batch / a bare count by minute, type and
  status of the same events (the least a rollup does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

BASELINE = Path(__file__).resolve().parent / "baseline.json"
EVENTS = 20_000


def _timed(work: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def paths() -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Each hot path and its ceiling, on the same data."""
    from benchmarks.test_pipeline_bench import Message
    from harness.ceiling import payloads
    from loadgen.stream import RunStream, plan
    from scenarios import load
    from sink.decode import decode
    from sink.fast import contract
    from sink.projections import project

    loaded = load("retail-day", environ={})
    keys, values = payloads(loaded, EVENTS)
    messages = [Message(k, v, i) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
    events = [orjson.loads(v) for v in values]
    batch = next(iter(RunStream(plan(loaded, events=EVENTS)).batches()))
    stamps = np.full(len(batch), 1_700_000_000_000, dtype=np.int64)
    batch_events = [orjson.loads(v) for v in batch.values(stamps)]
    five = events[:5000]
    fast = contract()

    def floor() -> Counter[tuple[int, str, str]]:
        return Counter((e["event_time"] // 60_000, e["type"], e["status"]) for e in five)

    return {
        "serialise": (
            lambda: batch.values(stamps),
            lambda: [orjson.dumps(e) for e in batch_events],
        ),
        "decode": (lambda: decode(messages), lambda: [orjson.loads(v) for v in values]),
        "fast": (lambda: decode(messages, fast), lambda: [orjson.loads(v) for v in values]),
        "project": (lambda: project(five), floor),
    }


def measure(pairs: int = 7) -> dict[str, float]:
    """The median over ``pairs`` of (path time / ceiling time), the two timed in turns."""
    out = {}
    for name, (path, ceiling) in paths().items():
        path(), ceiling()  # warm
        ratios = [_timed(path) / _timed(ceiling) for _ in range(pairs)]
        out[name] = round(statistics.median(ratios), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--save", action="store_true", help="write the baseline")
    parser.add_argument(
        "--tolerance", default="30%", help="how much worse a ratio may be (default: 30%%)"
    )
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args(argv)
    try:
        tolerance = float(args.tolerance.rstrip("%")) / 100
    except ValueError:
        print(f"--tolerance: expected a percentage such as 30%, got {args.tolerance}")
        return 2
    ratios = measure()
    if args.save:
        args.baseline.write_text(json.dumps(ratios, indent=1) + "\n")
        print(f"baseline saved to {args.baseline}: {ratios}")
        return 0
    try:
        baseline: dict[str, float] = json.loads(args.baseline.read_text())
    except (OSError, ValueError) as exc:
        print(f"no readable baseline at {args.baseline} ({exc}): run with --save first")
        return 2
    worse = []
    for name, ratio in ratios.items():
        base = baseline.get(name)
        change = ratio / base - 1 if base else 0.0
        verdict = "REGRESSION" if change > tolerance else "ok"
        if verdict != "ok":
            worse.append(name)
        base_text = f"{base:.3f}" if base else "-"
        print(
            f"{name:10s} {ratio:8.3f} x its ceiling (baseline {base_text}, {change:+.0%}) {verdict}"
        )
    if worse:
        print(f"regressions beyond {tolerance:.0%}: {', '.join(worse)}")
        return 1
    print(f"no regression beyond {tolerance:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
