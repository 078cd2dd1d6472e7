"""The run manifest: what the producer claims it sent, for the verifier to hold the store to.

Written to ``results/<run-id>/manifest.json`` (``manifest.shard-I-of-N.json`` for one host of
many) and to MongoDB's ``runs`` collection. Counts by type and status, fraud, money and the
cells' balance checksums describe the events made; ``events`` says how many of them were handed
to Kafka, acknowledged, failed or never sent, so the checksums hold for the store exactly when
nothing failed and nothing was left unsent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from bankstream import __version__
from bankstream.errors import BankstreamError
from bankstream.events import EVENT_VERSION, TX_TYPES
from bankstream.files import write_whole
from bankstream.histogram import LogHistogram
from loadgen.pacing import Schedule
from scenarios import LoadedScenario

MANIFEST_VERSION = 1
_STRICT = ConfigDict(extra="forbid")


class StageSpan(TypedDict):
    """A stage of the schedule (seconds from the start, events a second)."""

    start: float
    duration: float
    rate_from: float
    rate_to: float


class ScheduleRecord(TypedDict):
    paced: bool
    events: int | None
    duration_seconds: float | None
    stages: list[StageSpan]


class TimeRecord(TypedDict):
    mode: str
    acceleration: float | None
    simulated_seconds: float | None
    simulated_seconds_per_wall_second: float | None


class EventCounts(TypedDict):
    """Events made; handed to Kafka; acknowledged; failed; never sent; purged at the end."""

    made: int
    produced: int
    acked: int
    failed: int
    unsent: int
    purged: int


class FraudRecord(TypedDict):
    by_typology: dict[str, int]
    events: int
    rate: float
    configured_rate: float


Money = TypedDict("Money", {"currency": str, "in": int, "out": int})


class StageFigures(TypedDict):
    duration_seconds: float
    target_rate: float | None
    ramp: str
    events: int
    achieved_rate: float | None


class Measured(TypedDict):
    warmup_seconds: float
    events: int
    until_seconds: float | None


class LatencyRecord(TypedDict):
    seconds: dict[str, float | int | None]  # LogHistogram.summary()
    histogram: dict[str, Any]  # LogHistogram.to_dict()


@with_config(_STRICT)
class Manifest(TypedDict):
    """The manifest, as written to ``manifest.json`` and the runs collection and read by the
    harness (``merge``, ``verify``, the result): its keys are these and only these."""

    manifest_version: int
    run_id: str
    scenario: str
    scenario_digest: str
    seed: int
    event_version: int
    topic: str
    shard: list[int] | None
    cells: list[int] | None  # [first, last]; None on a merged manifest
    processes: int
    ended: str  # complete, stopped, failed
    schedule: ScheduleRecord
    time: TimeRecord
    events: EventCounts
    by_type: dict[str, dict[str, int]]  # type -> approved/declined -> events
    produced_by_type: dict[str, int]
    acked_by_type: dict[str, int]
    failed_by_type: dict[str, int]
    failed_errors: dict[str, int]
    fraud: FraudRecord
    money: Money
    checksums: dict[str, str]  # cell -> its final balances' checksum
    first_event_time: int | None
    last_event_time: int | None
    started_at: str | None
    ended_at: str | None
    wall_seconds: float
    stall_seconds: float
    stall_seconds_by_process: list[float]
    bytes: int
    stages: list[StageFigures]
    measured: Measured
    delivery_latency: LatencyRecord
    schedule_lag: LatencyRecord
    kafka_errors: dict[str, int]
    environment: dict[str, Any]
    problems: NotRequired[list[str]]
    merged_from: NotRequired[list[list[int] | None]]  # a merged manifest: its hosts' shards


@cache
def _adapter() -> TypeAdapter[Manifest]:
    return TypeAdapter(Manifest)


class ManifestError(BankstreamError):
    """A manifest that is not one this bankstream reads (its problem in one line)."""


def validate(data: Any) -> Manifest:
    """``data`` as a manifest; :class:`ManifestError` when it is another version or its keys
    are not :class:`Manifest`'s."""
    from bankstream.progress import BadRecord, versioned

    try:
        manifest: Manifest = versioned(
            _adapter(), data, "manifest_version", MANIFEST_VERSION, "manifest"
        )
    except BadRecord as exc:
        raise ManifestError(str(exc)) from None
    return manifest


def read(path: Path) -> Manifest:
    """The manifest in ``path`` (validated)."""
    return validate(json.loads(path.read_text()))


def _sum_lists(rows: Sequence[Sequence[int]], length: int = len(TX_TYPES)) -> list[int]:
    return [sum(column) for column in zip(*rows, strict=True)] if rows else [0] * length


def _iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def build(
    loaded: LoadedScenario,
    *,
    run_id: str,
    topic: str,
    schedule: Schedule,
    events: int | None,
    cells: range,
    shard: tuple[int, int] | None,
    processes: int,
    finals: Sequence[Mapping[str, Any]],
    ended: str,
    environment: Mapping[str, Any],
) -> Manifest:
    """The manifest of a run from its processes' final reports."""
    scenario = loaded.scenario
    by_type: dict[str, dict[str, int]] = {name: {"approved": 0, "declined": 0} for name in TX_TYPES}
    fraud: dict[str, int] = {}
    checksums: dict[str, str] = {}
    money_in = money_out = 0
    for final in finals:
        stream = final["stream"]
        for name, counts in stream["by_type"].items():
            for status, n in counts.items():
                by_type[name][status] += n
        for kind, n in stream["fraud"].items():
            fraud[kind] = fraud.get(kind, 0) + n
        money_in += stream["money_in"]
        money_out += stream["money_out"]
        checksums.update(stream["checksums"])
    made = sum(final["events_made"] for final in finals)
    produced = _sum_lists([final["produced_by_type"] for final in finals])
    acked = _sum_lists([final["acked_by_type"] for final in finals])
    failed = _sum_lists([final["failed_by_type"] for final in finals])
    latency = LogHistogram.merged(LogHistogram.from_dict(f["latency"]) for f in finals)
    lag = LogHistogram.merged(LogHistogram.from_dict(f["schedule_lag"]) for f in finals)
    started = min((f["started"] for f in finals), default=0.0)
    ending = max((f["finished"] for f in finals), default=0.0)
    firsts = [f["first_event_time"] for f in finals if f["first_event_time"] is not None]
    lasts = [f["last_event_time"] for f in finals if f["last_event_time"] is not None]
    stage_counts = _sum_lists([f["stage_counts"] for f in finals], max(1, len(schedule.stages)))
    stages: list[StageFigures] = []
    wall = max(ending - started, 1e-9)
    if schedule.stages:
        for stage, count in zip(schedule.stages, stage_counts, strict=True):
            duration = stage.duration if stage.duration != float("inf") else wall - stage.start
            # the last stage lasts as long as the run did, when it ran over
            if stage is schedule.stages[-1]:
                duration = max(duration, wall - stage.start)
            stages.append(
                {
                    "duration_seconds": duration,
                    "target_rate": (stage.rate_from + stage.rate_to) / 2,
                    "ramp": "linear" if stage.rate_from != stage.rate_to else "step",
                    "events": count,
                    "achieved_rate": count / duration if duration > 0 else None,
                }
            )
    else:
        stages.append(
            {
                "duration_seconds": wall,
                "target_rate": None,
                "ramp": "max",
                "events": stage_counts[0],
                "achieved_rate": stage_counts[0] / wall,
            }
        )
    fraud_total = sum(fraud.values())
    simulated = (max(lasts) - min(firsts)) / 1000.0 if firsts and lasts else None
    errors: dict[str, int] = {}
    for final in finals:
        for name, n in {**final["failed_errors"]}.items():
            errors[name] = errors.get(name, 0) + n
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": run_id,
        "scenario": scenario.name,
        "scenario_digest": loaded.digest,
        "seed": scenario.seed,
        "event_version": EVENT_VERSION,
        "topic": topic,
        "shard": list(shard) if shard else None,
        "cells": [cells.start, cells.stop - 1],
        "processes": processes,
        "ended": ended,
        "schedule": {
            "paced": schedule.paced,
            "events": events,
            "duration_seconds": schedule.duration,
            "stages": [
                {
                    "start": s.start,
                    "duration": s.duration,
                    "rate_from": s.rate_from,
                    "rate_to": s.rate_to,
                }
                for s in schedule.stages
            ],
        },
        "time": {
            "mode": scenario.time.mode,
            "acceleration": scenario.time.acceleration,
            "simulated_seconds": simulated,
            "simulated_seconds_per_wall_second": simulated / wall if simulated else None,
        },
        "events": {
            "made": made,
            "produced": sum(produced),
            "acked": sum(acked),
            "failed": sum(failed),
            "unsent": sum(f["unsent"] for f in finals),
            "purged": sum(f.get("purged", 0) for f in finals),
        },
        "by_type": by_type,
        "produced_by_type": dict(zip(TX_TYPES, produced, strict=True)),
        "acked_by_type": dict(zip(TX_TYPES, acked, strict=True)),
        "failed_by_type": dict(zip(TX_TYPES, failed, strict=True)),
        "failed_errors": errors,
        "fraud": {
            "by_typology": fraud,
            "events": fraud_total,
            "rate": fraud_total / made if made else 0.0,
            "configured_rate": scenario.anomalies.total_rate,
        },
        "money": {"currency": scenario.currency, "in": money_in, "out": money_out},
        "checksums": dict(sorted(checksums.items(), key=lambda item: int(item[0]))),
        "first_event_time": min(firsts) if firsts else None,
        "last_event_time": max(lasts) if lasts else None,
        "started_at": _iso(started),
        "ended_at": _iso(ending),
        "wall_seconds": wall,
        # the run stalled while its processes did (they stall together on an outage)
        "stall_seconds": max((f["stall_seconds"] for f in finals), default=0.0),
        "stall_seconds_by_process": [round(f["stall_seconds"], 3) for f in finals],
        "bytes": sum(f["bytes"] for f in finals),
        "stages": stages,
        # after the load's warm-up: events handed to Kafka, from the end of the warm-up to the
        # last one sent (seconds since the start), for the harness's produce rate
        "measured": {
            "warmup_seconds": float(scenario.load.warmup),
            "events": sum(f.get("measured_events", 0) for f in finals),
            "until_seconds": max(
                (f["last_send"] - started for f in finals if f.get("last_send")), default=None
            ),
        },
        "delivery_latency": {"seconds": latency.summary(), "histogram": latency.to_dict()},
        "schedule_lag": {"seconds": lag.summary(), "histogram": lag.to_dict()},
        "kafka_errors": _merge_counts([f["kafka_errors"] for f in finals]),
        "environment": dict(environment),
    }


def _merge_counts(maps: Sequence[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in maps:
        for name, n in counts.items():
            out[name] = out.get(name, 0) + n
    return out


def environment(bootstrap: str) -> dict[str, Any]:
    """Versions and machine facts a result is read with."""
    import confluent_kafka
    import numpy

    return {
        "bankstream": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka_bootstrap": bootstrap,
        "cores": os.cpu_count(),
        "host": platform.node(),
        "platform": platform.platform(),
    }


def file_name(shard: tuple[int, int] | None) -> str:
    return "manifest.json" if shard is None else f"manifest.shard-{shard[0]}-of-{shard[1]}.json"


def write(manifest: Manifest, directory: Path, shard: tuple[int, int] | None) -> Path:
    """``directory/<run id>/<file_name>``, written whole or not at all."""
    folder = directory / str(manifest["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    return write_whole(folder / file_name(shard), json.dumps(manifest, indent=2) + "\n")
