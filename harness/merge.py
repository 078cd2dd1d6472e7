"""`bankstream merge`: the results of the hosts of one run (``bankstream run --shard I/N
--run-id ID`` on each) as one result, verified against the store.

Manifests add up (counts, money, fraud; each host's cells bring their checksums), histograms
merge bucket by bucket (so the percentiles are those of all the events, not an average of
percentiles), rates add up, lag and drain time take the largest. The thresholds are judged again
on the merged figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bankstream.errors import UsageError
from bankstream.histogram import LogHistogram
from harness.result import Figures, Result, latency_figures
from loadgen.producer.manifest import Manifest
from loadgen.producer.manifest import validate as validate_manifest


def check_hosts(results: Sequence[Mapping[str, Any]]) -> None:
    """One run, every shard once; else a one-line error that says what is missing."""
    ids = {r["run_id"] for r in results}
    if len(ids) != 1:
        msg = f"these results are of different runs ({', '.join(sorted(ids))}): merge one run"
        raise UsageError(msg)
    shards = [tuple(r["shard"]) if r.get("shard") else None for r in results]
    if None in shards:
        msg = "merge takes the results of bankstream run --shard I/N; one of these is a whole run"
        raise UsageError(msg)
    counts = {s[1] for s in shards if s}
    if len(counts) != 1:
        msg = f"the shards disagree on how many hosts there are ({sorted(counts)})"
        raise UsageError(msg)
    n = counts.pop()
    have = sorted(s[0] for s in shards if s)
    if have != list(range(n)):
        missing = sorted(set(range(n)) - set(have))
        twice = sorted({i for i in have if have.count(i) > 1})
        parts = [f"missing shard(s) {', '.join(f'{i}/{n}' for i in missing)}"] if missing else []
        parts += [f"shard(s) given twice: {', '.join(f'{i}/{n}' for i in twice)}"] if twice else []
        msg = f"{'; '.join(parts)}: give one result of each of the {n} hosts"
        raise UsageError(msg)
    digests = {r["scenario_digest"] for r in results}
    if len(digests) != 1:
        msg = "the hosts ran different scenario files (digests differ): merge one run"
        raise UsageError(msg)


def _shard(result: Result) -> tuple[int, int]:
    """A shard host's (I, N) (check_hosts: every result has one)."""
    shard = result["shard"]
    if shard is None:
        msg = "merge takes the results of bankstream run --shard I/N; one of these is a whole run"
        raise UsageError(msg)
    return shard[0], shard[1]


def _add(maps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        for key, value in m.items():
            if isinstance(value, Mapping):
                out[key] = _add([out.get(key, {}), value])
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
    return out


def merge_manifests(manifests: Sequence[Mapping[str, Any]]) -> Manifest:
    """The manifest of the whole run from its hosts' manifests (each read as a manifest)."""
    manifests = [validate_manifest(dict(m)) for m in manifests]
    first = manifests[0]
    checksums: dict[str, str] = {}
    for m in manifests:
        checksums.update(m["checksums"])
    ended = {m["ended"] for m in manifests}
    worst = "failed" if "failed" in ended else "stopped"
    delivery = LogHistogram.merged(
        LogHistogram.from_dict(m["delivery_latency"]["histogram"]) for m in manifests
    )
    return validate_manifest(
        {
            **{k: v for k, v in first.items() if k not in ("problems",)},
            "shard": None,
            "merged_from": [m["shard"] for m in manifests],
            "cells": None,
            "processes": sum(m["processes"] for m in manifests),
            "ended": "complete" if ended == {"complete"} else worst,
            "events": _add([m["events"] for m in manifests]),
            "by_type": _add([m["by_type"] for m in manifests]),
            "produced_by_type": _add([m["produced_by_type"] for m in manifests]),
            "acked_by_type": _add([m["acked_by_type"] for m in manifests]),
            "failed_by_type": _add([m["failed_by_type"] for m in manifests]),
            "fraud": {
                **first["fraud"],
                "by_typology": _add([m["fraud"]["by_typology"] for m in manifests]),
                "events": sum(m["fraud"]["events"] for m in manifests),
            },
            "money": {**first["money"], **_add([m["money"] for m in manifests])},
            "checksums": dict(sorted(checksums.items(), key=lambda item: int(item[0]))),
            "wall_seconds": max(m["wall_seconds"] for m in manifests),
            "bytes": sum(m["bytes"] for m in manifests),
            "delivery_latency": {"seconds": delivery.summary(), "histogram": delivery.to_dict()},
            "problems": [p for m in manifests for p in m.get("problems", [])],
        }
    )


def _sum(values: Sequence[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return float(sum(present)) if present else None


def merge_figures(results: Sequence[Result]) -> Figures:
    figs = [r["figures"] for r in results]
    produce = [f["produce"] for f in figs]
    sink = [f["sink"] for f in figs]
    rate = _sum([p["rate"] for p in produce])
    target = _sum([p["target_rate"] for p in produce])
    acked = sum(p["acked"] for p in produce)
    wall = max(p["wall_seconds"] for p in produce)
    whole = acked / wall if wall else None
    sink_rate = _sum([s["rate"] for s in sink])

    def hist(key: str) -> LogHistogram:
        return LogHistogram.merged(LogHistogram.from_dict(r["histograms"][key]) for r in results)

    resources: dict[str, Any] = {}
    for r in results:
        for side, figures in r["figures"]["resources"].items():
            host, hosts = _shard(r)
            resources[f"{side} (shard {host}/{hosts})"] = figures
    drains = [f["drain_seconds"] for f in figs if f["drain_seconds"] is not None]
    return {
        "produce": {
            **{k: sum(p[k] for p in produce) for k in ("made", "produced", "acked", "failed")},
            "unsent": sum(p["unsent"] for p in produce),
            "wall_seconds": wall,
            "rate": rate,
            "target_rate": target,
            "rate_ratio": rate / target if rate is not None and target else None,
            "rate_whole_run": whole,
            "schedule_lag": None,
            "stall_seconds": max((p["stall_seconds"] or 0.0) for p in produce),
        },
        "sink": {
            "inserted": sum(s["inserted"] for s in sink),
            "duplicates": sum(s["duplicates"] for s in sink),
            "dead_lettered": sum(s["dead_lettered"] or 0 for s in sink),
            "rate": sink_rate,
            "rate_ratio": sink_rate / whole if sink_rate and whole else None,
            "writing_seconds": max((s["writing_seconds"] or 0.0) for s in sink),
            "paused_seconds": max((s["paused_seconds"] or 0.0) for s in sink),
            "restarts": sum(s.get("restarts") or 0 for s in sink),
        },
        "lag": {
            "max_messages": max(f["lag"]["max_messages"] for f in figs),
            "max_seconds": max(f["lag"]["max_seconds"] for f in figs),
        },
        "latency": {
            "delivery": latency_figures(hist("delivery")),
            "end_to_end": latency_figures(hist("end_to_end")),
        },
        "drain_seconds": max(drains) if drains else None,
        "drained": all(f["drained"] for f in figs),
        "resources": resources,
    }


def merge_timelines(results: Sequence[Result]) -> tuple[list[str], list[list[Any]]]:
    """Second by second (each host's own clock from its producer's start): rates, counts, CPU
    and memory add up; lag and latency take the largest."""
    fields: list[str] = list(results[0]["timeline_fields"])
    adds = {
        "target_rate", "produce_rate", "sink_rate", "acked", "sunk", "lag",
        "producer_cpu", "sink_cpu", "producer_rss", "sink_rss",
    }  # fmt: skip
    length = max(len(r["timeline"]) for r in results)
    rows = []
    for i in range(length):
        present = [r["timeline"][i] for r in results if i < len(r["timeline"])]
        row: list[Any] = []
        for j, name in enumerate(fields):
            values = [p[j] for p in present if p[j] is not None]
            if not values:
                row.append(None)
            elif name == "t":
                row.append(min(values))
            elif name in adds:
                row.append(sum(values))
            else:
                row.append(max(values))
        rows.append(row)
    return fields, rows


def thresholds_of(result: Result) -> dict[str, list[Any]]:
    """The conditions a result was judged on, as the scenario model holds them."""
    from scenarios.model import Condition
    from scenarios.types import parse_scoped_condition

    out: dict[str, list[Any]] = {}
    for t in result["thresholds"]:
        op, value, over, stage = parse_scoped_condition(t["condition"])
        fields = {"op": op, "value": value, "over": over, "stage": stage}
        out.setdefault(t["metric"], []).append(Condition.model_validate(fields))
    return out


def merge_results(
    results: Sequence[Result], settings: Any, folder: Any, verify_limit: int
) -> Result:
    """The merged result of one run's hosts, verified against the store, judged and written to
    ``folder`` (with the merged manifest)."""
    import json

    from bankstream import mongo

    check_hosts(results)
    results = sorted(results, key=lambda r: _shard(r)[0])
    missing = [_shard(r) for r in results if not r.get("manifest")]
    if missing:
        msg = f"shard {missing[0][0]}/{missing[0][1]} has no manifest (its producer failed)"
        raise UsageError(msg)
    manifest = merge_manifests([r["manifest"] for r in results if r["manifest"] is not None])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    with mongo.client(settings) as client:
        return _merge(
            results, manifest, settings, client[settings.mongo_database], folder, verify_limit
        )


def _merge(
    results: Sequence[Result],
    manifest: Manifest,
    settings: Any,
    db: Any,
    folder: Any,
    verify_limit: int,
) -> Result:
    from harness import result as result_files
    from harness.run import conclude, mongo_version
    from harness.verify import verify

    collections = results[0].get("collections") or {
        "transactions": "transactions",
        "accounts": "accounts",
        "rollups": "rollups",
    }
    verification = None
    note = None
    if verify_limit:
        verification = verify(db, manifest, collections, limit=verify_limit).as_dict()
    else:
        note = "not verified (--verify-limit 0)"
    fields, timeline = merge_timelines(results)
    merged: Result = {
        "result_version": result_files.RESULT_VERSION,
        "run_id": results[0]["run_id"],
        "scenario": results[0]["scenario"],
        "scenario_digest": results[0]["scenario_digest"],
        "seed": results[0]["seed"],
        "shard": None,
        "merged_from": [r["shard"] for r in results],
        "topic": results[0]["topic"],
        "collections": collections,
        "started_at": min((r["started_at"] for r in results if r["started_at"]), default=None),
        "ended_at": max((r["ended_at"] for r in results if r["ended_at"]), default=None),
        "ended": manifest["ended"],
        "warmup_seconds": results[0]["warmup_seconds"],
        "figures": merge_figures(results),
        "verification": verification,
        "verification_note": note,
        "histograms": {
            key: LogHistogram.merged(
                LogHistogram.from_dict(r["histograms"][key]) for r in results
            ).to_dict()
            for key in ("delivery", "end_to_end")
        },
        "timeline_fields": fields,
        "timeline": timeline,
        "manifest": manifest,
        "environment": {
            **result_files.environment(settings, mongo_version(db)),
            "hosts": [r["environment"].get("host") for r in results],
        },
        "problems": [p for r in results for p in r.get("problems", [])],
        "ceilings": None,
    }
    conclude(merged, thresholds_of(results[0]), folder)
    return merged


def shard_manifests(db: Any, runs: str, run_id: str) -> list[Manifest]:
    """The manifests the shard producers of ``run_id`` left in the ``runs`` collection (the
    producer Indexed Job of deploy/k8s), every shard once."""
    prefix = f"{run_id}/shard-"
    found = [d for d in db[runs].find({"run_id": run_id}) if str(d["_id"]).startswith(prefix)]
    if not found:
        msg = (
            f"no shard manifests of run {run_id} in the {runs} collection (the producers write "
            "them there at their end; check the run id and the settings' MongoDB)"
        )
        raise UsageError(msg)
    for d in found:
        d.pop("_id", None)
    check_hosts(found)  # a manifest has the run id, the shard and the scenario's digest
    return sorted((validate_manifest(d) for d in found), key=lambda d: (d["shard"] or [0])[0])


def merge_store(loaded: Any, run_id: str, settings: Any, folder: Any, verify_limit: int) -> Result:
    """The merged result of a run whose producers were not `bankstream run` hosts (the
    Kubernetes Job): from the manifests in the store; the sink's figures are not in it (its
    metrics are in Prometheus), so only the producer's and the verification are judged."""
    import json

    from bankstream import mongo
    from harness import result as result_files
    from harness.run import conclude, mongo_version
    from harness.verify import verify

    scenario = loaded.scenario
    collections = scenario.sink.collections.model_dump()
    with mongo.client(settings) as client:
        db = client[settings.mongo_database]
        manifests = shard_manifests(db, collections["runs"], run_id)
        manifest = merge_manifests(manifests)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
        problems: list[str] = []
        names = {m["scenario"] for m in manifests}
        if names != {scenario.name}:
            msg = (
                f"run {run_id} was of scenario {', '.join(sorted(names))}, not {scenario.name}: "
                "give its --scenario (for its thresholds and collections)"
            )
            raise UsageError(msg)
        verification = None
        note: str | None = "not verified (--verify-limit 0)"
        if verify_limit:
            verification = verify(db, manifest, collections, limit=verify_limit).as_dict()
            note = None
        version = mongo_version(db)
    wall = float(manifest["wall_seconds"])
    acked = int(manifest["events"]["acked"])
    # the target: the schedule the producers ran (their flags included), from the manifest
    from loadgen.pacing import Schedule

    target = None
    schedule = Schedule.of_record(manifest["schedule"])
    if schedule.paced and wall:
        called = schedule.events_by(wall)
        if schedule.limit:
            called = min(called, float(schedule.limit))
        target = called / wall
    rate = acked / wall if wall else None
    delivery = LogHistogram.from_dict(manifest["delivery_latency"]["histogram"])
    figures: Figures = {
        "produce": {
            **{k: int(manifest["events"][k]) for k in ("made", "produced", "acked", "failed")},
            "unsent": int(manifest["events"]["unsent"]),
            "wall_seconds": wall,
            "rate": rate,
            "target_rate": target,
            "rate_ratio": rate / target if rate and target else None,
            "rate_whole_run": rate,
            "schedule_lag": None,
            "stall_seconds": manifest.get("stall_seconds"),
        },
        "sink": {
            key: None
            for key in (
                "inserted",
                "duplicates",
                "dead_lettered",
                "rate",
                "rate_ratio",
                "writing_seconds",
                "paused_seconds",
                "restarts",
            )
        },  # fmt: skip
        "lag": {"max_messages": None, "max_seconds": None},
        "latency": {
            "delivery": latency_figures(delivery),  # the whole run: no warm-up cut here
            "end_to_end": latency_figures(LogHistogram()),
        },
        "drain_seconds": None,
        "drained": None,
        "resources": {},
    }
    merged: Result = {
        "result_version": result_files.RESULT_VERSION,
        "run_id": run_id,
        "scenario": scenario.name,
        "scenario_digest": manifests[0]["scenario_digest"],
        "seed": manifests[0]["seed"],
        "shard": None,
        "merged_from": [m["shard"] for m in manifests],
        "topic": manifests[0]["topic"],
        "collections": {k: collections[k] for k in ("transactions", "accounts", "rollups")},
        "started_at": min((m["started_at"] for m in manifests if m["started_at"]), default=None),
        "ended_at": max((m["ended_at"] for m in manifests if m["ended_at"]), default=None),
        "ended": manifest["ended"],
        "warmup_seconds": 0.0,
        "figures": figures,
        "verification": verification,
        "verification_note": note,
        "histograms": {"delivery": delivery.to_dict(), "end_to_end": LogHistogram().to_dict()},
        "timeline_fields": [],
        "timeline": [],
        "manifest": manifest,
        "environment": {
            **result_files.environment(settings, version),
            "hosts": [m.get("environment", {}).get("host") for m in manifests],
        },
        "problems": problems + list(manifest.get("problems", [])),
        "ceilings": None,
    }
    # the sink's figures are in Prometheus, not in the store: its thresholds are not judged here
    sink_metrics = {
        "sink_rate_ratio", "e2e_latency_p50_seconds", "e2e_latency_p95_seconds",
        "e2e_latency_p99_seconds", "e2e_latency_max_seconds", "max_lag_seconds", "dead_lettered",
    }  # fmt: skip
    conclude(merged, scenario.thresholds, folder, deferred=sink_metrics, note="not in the store")
    return merged
