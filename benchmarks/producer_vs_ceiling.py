"""bankstream's producer against its ceiling, side by side on one broker, runs alternating
(ceiling, produce, ceiling, produce, ...), with 1 and with N processes:

    python -m benchmarks.producer_vs_ceiling --events 200000 --pairs 3

For each number of processes: the median events per second of each, and the median of the
pair-by-pair ratios (produce / ceiling). The producer's rate is its manifest's: acknowledged
events over the time from its coordinated start to its last acknowledgement (start-up excluded),
as the ceiling's is. On a small machine the broker shares the cores with both, so compare ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bankstream import kafka
from bankstream.settings import load_settings
from benchmarks import ceiling
from scenarios import load


def produce(scenario: str, events: int, processes: int) -> float:
    """Events per second of one `bankstream produce` at rate max (its own topic)."""
    settings = load_settings()
    topic = f"bench-produce-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as results:
        done = subprocess.run(
            [sys.executable, "-m", "bankstream", "produce", scenario, "--rate", "max"]
            + ["--events", str(events), "--processes", str(processes), "--topic", topic]
            + ["--metrics-port", "0", "--results", results, "--json", "--run-id", topic],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            if done.returncode != 0:
                msg = f"produce failed: {done.stderr.strip()[-500:]}"
                raise RuntimeError(msg)
            manifest = json.loads(Path(results, topic, "manifest.json").read_text())
        finally:
            kafka.delete_topic(kafka.admin_client(settings), topic)
    acked: int = manifest["events"]["acked"]
    return acked / float(manifest["wall_seconds"])


def compare(scenario: str, events: int, processes: int, pairs: int) -> dict[str, Any]:
    loaded = load(scenario)
    keys, values = ceiling.payloads(loaded, events)
    settings = load_settings()
    ceilings, ours, ratios = [], [], []
    for _ in range(pairs):
        top = ceiling.run(settings, loaded, keys, values, processes)["rate"]
        mine = produce(scenario, events, processes)
        ceilings.append(top)
        ours.append(mine)
        ratios.append(mine / top)
    return {
        "scenario": scenario,
        "events": events,
        "processes": processes,
        "ceiling_rates": [round(r) for r in ceilings],
        "produce_rates": [round(r) for r in ours],
        "ceiling_median": round(statistics.median(ceilings)),
        "produce_median": round(statistics.median(ours)),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.producer_vs_ceiling", description=__doc__
    )
    parser.add_argument("--scenario", default="max-throughput")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    results = [compare(args.scenario, args.events, n, args.pairs) for n in args.processes]
    if len(results) >= 2:
        one, many = results[0], results[-1]
        scaling = {
            "ceiling_1_to_n": round(many["ceiling_median"] / one["ceiling_median"], 3),
            "produce_1_to_n": round(many["produce_median"] / one["produce_median"], 3),
        }
        results.append({"scaling": scaling})
    for result in results:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
