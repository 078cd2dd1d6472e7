"""The producer's ceiling: a raw confluent-kafka loop sending pre-built payloads, the same events'
sizes and keys, with the same producer settings, from 1 or N processes. What bankstream's producer
adds (generating, pacing, counting by type) is measured against it.

    python -m benchmarks.ceiling retail-day --events 200000 --processes 2

prints one JSON object: events, seconds, events per second. Each run uses its own topic (the
scenario's partitions), deleted afterwards. The loop itself is `harness.ceiling` (also behind
`bankstream bench ceiling`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bankstream.settings import Settings, load_settings
from harness.ceiling import kafka_ceiling, payloads
from scenarios import LoadedScenario, load

__all__ = ["payloads", "run"]


def run(
    settings: Settings, loaded: LoadedScenario, keys: list[str], values: list[bytes], processes: int
) -> dict[str, Any]:
    """Send the payloads from ``processes`` processes (each an equal share) to a fresh topic."""
    return kafka_ceiling(settings, loaded, keys, values, processes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__)
    parser.add_argument("scenario")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    loaded = load(args.scenario)
    keys, values = payloads(loaded, args.events)
    result = run(load_settings(), loaded, keys, values, args.processes)
    print(json.dumps({"scenario": args.scenario, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
