"""Recovery from each kind of fault, several runs each, against the local stack:

    python -m benchmarks.fault_recovery --repeat 3 --rate 800 --duration 45s

Each run is ``bankstream run retail-day --fresh --fault SPEC`` (in a scratch database); the
table gives, per fault, the median and range of its recovery time and of the sink's largest
delay, and how many runs verified exact (lost 0, duplicates 0, projections exact).
``--sequence N`` also runs N times the sequence that once left the sink stuck for good: a run
whose sink process is killed, then a run with the broker paused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FAULTS = (
    "kill-sink@15s",
    "pause-broker@15s:10s",
    "restart-broker@15s",
    "pause-store@15s:15s",
    "exec@15s:P=$(cat {home}/run/mongo.pid); kill -STOP $P; sleep 10; kill -CONT $P",
)


def run(fault: str, rate: int, duration: str, results: Path, database: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bankstream", "run", "retail-day", "--rate", str(rate)]
    argv += ["--duration", duration, "--fresh", "--json", "--results", str(results)]
    argv += ["--fault", fault]
    env = {**os.environ, "BANKSTREAM_MONGO_DATABASE": database}
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    result: dict[str, Any] = json.loads(Path(ROOT, summary["result"]).read_text())
    return result


def outcome(result: dict[str, Any]) -> tuple[bool, float | None, float | None]:
    v = result["verification"] or {}
    exact = bool(v.get("exact")) and v.get("projections") == "exact"
    fault = result["figures"]["faults"]["injected"][0]
    return exact, fault.get("recovery_seconds"), fault.get("max_lag_seconds")


def spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    missing = len(values) - len(known)
    text = f"{statistics.median(known):.1f} s ({min(known):.1f}-{max(known):.1f})"
    return text + (f", {missing} not recovered" if missing else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=800)
    parser.add_argument("--duration", default="45s")
    parser.add_argument("--sequence", type=int, default=0, metavar="N")
    parser.add_argument("--only", help="one fault spec instead of every kind")
    args = parser.parse_args()
    from bankstream.settings import load_settings

    home = load_settings().home
    database = f"bench_faults_{uuid.uuid4().hex[:8]}"
    results = Path(tempfile.mkdtemp(prefix="bankstream-faults-"))
    rows = []
    faults = [args.only] if args.only else [f.format(home=home) for f in FAULTS]
    for fault in faults:
        seen = [outcome(run(fault, args.rate, args.duration, results, database))]
        seen += [
            outcome(run(fault, args.rate, args.duration, results, database))
            for _ in range(args.repeat - 1)
        ]
        exact = sum(1 for e, _, _ in seen if e)
        rows.append(
            (fault, exact, spread([r for _, r, _ in seen]), spread([m for _, _, m in seen]))
        )
        print(f"  {fault}: {seen}", flush=True)
    stuck = 0
    for _ in range(args.sequence):
        first = outcome(run("kill-sink@15s", args.rate, args.duration, results, database))
        second = outcome(run("pause-broker@15s:10s", args.rate, args.duration, results, database))
        ok = first[0] and second[0] and first[1] is not None and second[1] is not None
        stuck += 0 if ok else 1
        print(f"  sequence: {first} then {second}", flush=True)
    print(f"\nrate {args.rate}/s, {args.duration} runs, {args.repeat} each ({results})")
    print("| fault | exact | recovery, median (range) | max delay, median (range) |")
    print("|---|---|---|---|")
    for fault, exact, recovery, delay in rows:
        print(f"| `{fault}` | {exact} of {args.repeat} | {recovery} | {delay} |")
    if args.sequence:
        print(
            f"\nkilled sink process's run, then a broker pause: {stuck} of {args.sequence} failed"
        )
    from bankstream import mongo

    with mongo.client(load_settings()) as client:
        client.drop_database(database)


if __name__ == "__main__":
    main()
