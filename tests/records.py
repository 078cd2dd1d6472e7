"""Records as the commands write them, for tests that read them: a manifest built by
``loadgen.producer.manifest.build`` from producer processes' final reports (no Kafka needed)."""

from __future__ import annotations

from typing import Any

from bankstream.events import TX_TYPES
from bankstream.histogram import LogHistogram
from loadgen.pacing import Schedule
from loadgen.producer import manifest as manifests
from scenarios import load


def final_report(
    acked: int,
    checksums: dict[str, str],
    *,
    latency: float = 0.01,
    fraud: dict[str, int] | None = None,
    money_in: int = 0,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """One producer process's final report: ``acked`` deposits, all approved and acknowledged."""
    hist = LogHistogram()
    hist.add([latency] * acked)
    per_type = [acked if name == "deposit" else 0 for name in TX_TYPES]
    return {
        "kind": "final",
        "stream": {
            "by_type": {"deposit": {"approved": acked, "declined": 0}},
            "fraud": fraud or {},
            "money_in": money_in,
            "money_out": 0,
            "checksums": checksums,
        },
        "events_made": acked,
        "produced_by_type": per_type,
        "acked_by_type": per_type,
        "failed_by_type": [0] * len(TX_TYPES),
        "failed_errors": {},
        "latency": hist.to_dict(),
        "schedule_lag": LogHistogram().to_dict(),
        "started": 1_700_000_000.0,
        "finished": 1_700_000_000.0 + seconds,
        "first_event_time": 1_700_000_000_000,
        "last_event_time": 1_700_000_010_000,
        "stage_counts": [acked],
        "unsent": 0,
        "purged": 0,
        "stall_seconds": 0.0,
        "bytes": 10,
        "measured_events": acked,
        "last_send": 1_700_000_009.0,
        "kafka_errors": {},
    }


def manifest(
    finals: list[dict[str, Any]],
    *,
    run_id: str = "r",
    shard: tuple[int, int] | None = None,
    scenario: str = "retail-day",
) -> manifests.Manifest:
    """The manifest ``build`` makes of these final reports."""
    loaded = load(scenario)
    return manifests.build(
        loaded,
        run_id=run_id,
        topic="t",
        schedule=Schedule.of_load(loaded.scenario.load),
        events=None,
        cells=range(0, 4),
        shard=shard,
        processes=len(finals),
        finals=finals,
        ended="complete",
        environment={"bankstream": "test"},
    )
