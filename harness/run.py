"""`bankstream run`: one run end to end, verified, judged and reported."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bankstream.errors import EXIT_FAILURE
from bankstream.progress import speaker
from bankstream.settings import Settings
from harness import result as results
from harness.orchestrate import ROW_FIELDS, Observed, Orchestra, Plan
from harness.pipeline import Pipeline
from harness.request import RunRequest
from harness.result import Figures, Result
from harness.verify import verify
from loadgen.producer.manifest import Manifest
from loadgen.producer.manifest import read as read_manifest
from scenarios import LoadedScenario

EXIT_STOPPED = 130


@dataclass
class Outcome:
    result: Result
    folder: Path
    exit_code: int


def sink_group(run_id: str) -> str:
    """The consumer group of a run's sink."""
    return f"bankstream-sink-{run_id}"


def execute(
    request: RunRequest,
    loaded: LoadedScenario,
    settings: Settings,
    run_id: str,
    schedule: Any,
) -> Outcome:
    """Run, verify, judge, report."""
    from bankstream import mongo

    with mongo.client(settings) as client:
        db = client[settings.mongo_database]
        return _execute(request, loaded, settings, run_id, schedule, db)


def _execute(
    request: RunRequest,
    loaded: LoadedScenario,
    settings: Settings,
    run_id: str,
    schedule: Any,
    db: Any,
) -> Outcome:
    from loadgen.producer.coordinator import ensure_topic

    scenario = loaded.scenario
    shard, output = request.shard, request.output
    say = speaker(output)

    topic = request.topic or f"{scenario.delivery.topic}.{run_id}"
    name = run_id if shard is None else f"{run_id}.shard-{shard[0]}-of-{shard[1]}"
    collections = scenario.sink.collections.model_dump()
    target = None
    if request.sink != "bankstream":
        from harness.watch import Target

        default = f"{settings.mongo_database}.{collections['transactions']}"
        target = Target.parse(request.target or default, request.id_field, request.event_field)
    store, stored_in = (
        (db, collections["transactions"])
        if target is None
        else (db.client[target.database], target.collection)
    )
    _check_room(settings, store, loaded, stored_in, request.fresh, say)
    folder = request.results / name
    folder.mkdir(parents=True, exist_ok=True)
    if request.fresh and target is not None:
        store[stored_in].drop()
        say(f"fresh: dropped {target.text}")
    elif request.fresh:
        for key in ("transactions", "accounts", "rollups"):
            db[collections[key]].drop()
        dropped = ", ".join(collections[k] for k in ("transactions", "accounts", "rollups"))
        say(f"fresh: dropped {dropped}")
    if not request.no_warm:
        from harness.warm import warm

        took = warm(db.client, loaded, say)
        if took is not None:
            say(f"warm after {took:.0f} s")
    delivery = scenario.delivery
    replication, config = delivery.replication_factor, None
    if "replication_factor" not in delivery.model_fields_set:
        from bankstream.stack.lifecycle import brokers

        if len(brokers(settings)) >= 3:  # the local stack's cluster: replicated as users run it
            replication, config = 3, {"min.insync.replicas": "2"}
    say(ensure_topic(settings, topic, delivery.partitions, replication, config))
    warmup = float(scenario.load.warmup)
    scratch = Path(tempfile.mkdtemp(prefix="bankstream-run-"))
    injector = None
    faults = list(request.faults)
    if faults:
        from harness.inject import Injector

        injector = Injector(faults, settings, folder, say)
    pipeline = Pipeline.of(request, settings, scenario, run_id, topic, target, folder, say)
    # a host of several reads whatever partitions it is given: its count of samples is unknown
    aborting = _abort_watch(scenario, schedule, warmup, every_event=target is None and not shard)
    if aborting and request.faults and request.judge_latency == "outside-faults":
        say(
            "abort: not armed with --fault (the thresholds are judged outside the faults' "
            "windows; --judge-latency whole-run arms it)"
        )
        aborting.rules.clear()
    for text in aborting.undecided():
        say(f"abort: {text} is judged at the end only (the run's count of samples is unknown)")
    plan = Plan(
        sink_argv=pipeline.argv or request.sink_argv(sink_group(run_id), topic),
        sink_is_bankstream=pipeline.argv is None,
        producer_argv=request.producer_argv(run_id, topic, scratch),
        folder=folder,
        warmup=warmup,
        target_at=(lambda t: schedule.rate_at(t)) if schedule.paced else (lambda t: None),
        expected_acked=None if shard else (lambda summary: int(summary["acked"])),
        drain_timeout=request.drain_timeout,
        output=output,
        injector=injector,
        group_offsets=_group_offsets(settings, sink_group(run_id), topic)
        if target is None
        else None,  # a watched pipeline: the watch reads its group
        keep_ticks=any(c.scope for cs in scenario.thresholds.values() for c in cs),
        ready_timeout=pipeline.ready_timeout,
        sink_pids=pipeline.pids,
        backlog=request.backlog or 0,
        on_sink_started=pipeline.start if pipeline.connector else None,
        abort=aborting or None,
    )
    say(f"run {run_id}: scenario {scenario.name}, topic {topic}, results in {folder}")
    started_at = results.now_iso()
    try:
        observed = Orchestra(plan).run()
        manifest = _take_manifest(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        stopping = pipeline.stop()
    ended_at = results.now_iso()
    observed.problems += stopping
    verification = None
    note = None
    if observed.killed:
        note = "not verified: stopped at once by a second signal"
    elif observed.aborted:
        note = "not verified: aborted (the sink was stopped without draining)"
        observed.problems.append(f"aborted at t={observed.aborted_at:.0f} s: {observed.aborted}")
    elif manifest is None:
        note = "not verified: the producer wrote no manifest"
    elif shard is not None:
        note = "not verified here: one host of several (bankstream merge verifies the whole run)"
    elif request.verify_limit == 0:
        note = "not verified (--verify-limit 0)"
    else:
        say("verifying the store against the manifest ...")
        began = time.monotonic()
        from harness.verify import account_limits

        accounts = None
        if manifest["events"]["made"] <= request.verify_limit:
            first, last = manifest["cells"] or (0, -1)
            accounts = account_limits(loaded, range(first, last + 1))
        from pymongo.errors import PyMongoError

        try:
            checked = verify(
                store,
                manifest,
                {**collections, "transactions": stored_in},
                request.verify_limit,
                accounts=accounts,
                target=target,
            )
            sample = None if target is None else pipeline.compare_sample(store[stored_in], checked)
        except PyMongoError as exc:  # the store went away: the run is still reported
            note = f"not verified: MongoDB did not answer ({settings.scrub(str(exc))[:200]})"
            observed.problems.append(note)
        else:
            verification = checked.as_dict()
            verification["floors_checked"] = accounts is not None
            if sample is not None:
                verification["sample"] = sample
            verification["seconds"] = round(time.monotonic() - began, 2)
    figures = build_figures(observed, manifest, schedule, warmup)
    figures["store"] = _store_fill(settings, store, stored_in)
    if request.backlog:
        figures["backlog"] = backlog_figures(observed, request.backlog)
    if target is not None:
        figures["pipeline"] = pipeline.figures(observed.sink_summary)
        if observed.sink_summary is not None and not observed.sink_summary.get("inserted"):
            observed.problems.append(
                f"the {request.sink} pipeline stored nothing in {target.text} "
                f"(it reads topic {topic}"
                + (f" as group {pipeline.group})" if pipeline.group else ")")
            )
    # a fault that could not be injected as asked: the run did not test what it says
    observed.problems += [
        f"fault {f['fault']}: {f['problem']}" for f in observed.faults if f.get("problem")
    ]
    if faults:
        from harness.faulted import fault_figures

        figures["faults"] = fault_figures(
            observed, ROW_FIELDS, warmup, judge_outside=request.judge_latency == "outside-faults"
        )
    try:
        figures["scoped"] = _scoped(observed, scenario, warmup, figures.get("faults"))
    except Exception as exc:  # not worth losing the run's result for
        figures["scoped"] = {}
        observed.problems.append(f"windowed and stage thresholds not judged: {exc}")
    problems = list(observed.problems) + (manifest.get("problems", []) if manifest else [])
    result: Result = {
        "result_version": results.RESULT_VERSION,
        "run_id": run_id,
        "scenario": scenario.name,
        "scenario_digest": loaded.digest,
        "seed": scenario.seed,
        "shard": list(shard) if shard else None,
        "topic": topic,
        "sink": request.sink,
        "collections": {k: collections[k] for k in ("transactions", "accounts", "rollups")}
        if target is None
        else {"transactions": stored_in},
        "started_at": started_at,
        "ended_at": ended_at,
        "ended": "aborted"
        if observed.aborted
        else "stopped"
        if observed.interrupted
        else (manifest["ended"] if manifest else "failed"),
        "aborted": {"reason": observed.aborted, "at_seconds": round(observed.aborted_at, 1)}
        if observed.aborted and observed.aborted_at is not None
        else None,
        "warmup_seconds": warmup,
        "figures": figures,
        "verification": verification,
        "verification_note": note,
        "histograms": {
            "delivery": observed.delivery.to_dict(),
            "end_to_end": observed.e2e.to_dict(),
        },
        "timeline_fields": ROW_FIELDS,
        "timeline": [row.as_list() for row in _thin(observed.timeline)],
        "manifest": manifest,
        "environment": results.environment(settings, mongo_version(db)),
        "problems": problems,
        "ceilings": None,
    }
    from harness import ceiling

    found = ceiling.find(request.results, scenario.name)
    if found is not None:
        result["ceilings"] = ceiling.ratios(found, figures)
    # one host of several cannot see the whole store: the merge judges lost and duplicates
    deferred = {"lost", "duplicates"} if shard else set()
    conclude(result, scenario.thresholds, folder, deferred)
    verdict = result["verdict"]
    code = EXIT_STOPPED if observed.interrupted else 0 if verdict == "pass" else EXIT_FAILURE
    if observed.killed:
        code = 128 + observed.killed
    if not shard and not request.keep_topic:
        _drop_topics(settings, topic)
    if request.push:
        _pushed(settings, result, run_id, shard, say)
    return Outcome(result, folder, code)


def _pushed(
    settings: Settings,
    result: Mapping[str, Any],
    run_id: str,
    shard: tuple[int, int] | None,
    say: Callable[[str], None],
) -> None:
    """A run with --push: its thresholds' limits, measured values and verdicts pushed as
    series (grouped by scenario: the latest run's limits are what Grafana draws), then the
    producer's and sink's groups taken off the gateway once Prometheus had time to scrape them."""
    from prometheus_client import CollectorRegistry, Gauge

    from bankstream import metrics

    registry = CollectorRegistry()
    labels = ["run_id", "metric", "condition"]
    limit = Gauge("bankstream_threshold_limit", "a threshold's limit", labels, registry=registry)
    value = Gauge("bankstream_threshold_measured", "its measured value", labels, registry=registry)
    passed = Gauge("bankstream_threshold_passed", "1 passed, 0 failed", labels, registry=registry)
    for t in result["thresholds"]:
        key = (run_id, t["metric"], t["condition"])
        limit.labels(*key).set(float(t["limit"]) if t.get("limit") is not None else float("nan"))
        if isinstance(t.get("measured"), int | float):
            value.labels(*key).set(float(t["measured"]))
        if t.get("passed") is not None:
            passed.labels(*key).set(1.0 if t["passed"] else 0.0)
    verdict = Gauge("bankstream_run_passed", "the run's verdict", ["run_id"], registry=registry)
    verdict.labels(run_id).set(1.0 if result["verdict"] == "pass" else 0.0)
    from prometheus_client import push_to_gateway

    try:
        push_to_gateway(
            metrics._bare(settings.pushgateway_url),
            job="bankstream-thresholds",
            registry=registry,
            grouping_key={"scenario": str(result["scenario"])},
            timeout=5,
            handler=metrics._gateway_handler(settings.pushgateway_url),
        )
    except Exception as exc:  # the gateway away: the run's result stands
        say(f"push: the Pushgateway did not take the thresholds: {settings.scrub(str(exc))}")
    import socket

    groups = [
        ("bankstream-sink", {"group": sink_group(run_id), "instance": socket.gethostname()}),
        ("bankstream-loadgen", {"run_id": run_id, "shard": f"{shard[0]}" if shard else "all"}),
    ]
    for job, grouping in groups:
        _wait_scraped(settings, job, grouping)
        try:
            metrics.delete_pushed(settings.pushgateway_url, job, grouping)
        except Exception as exc:  # left on the gateway: said, the run's result stands
            say(f"push: {job} {grouping} not deleted: {settings.scrub(str(exc))}")


def _wait_scraped(
    settings: Settings, job: str, grouping: Mapping[str, str], most: float = 60.0
) -> None:
    """Until Prometheus has the group's last push (its ``push_time_seconds`` as Prometheus has
    it reaches the gateway's own), at most ``most`` seconds; without a Prometheus to ask, 15 s
    (a few scrapes of any usual interval)."""
    from bankstream import prometheus

    wanted = {"job": job, **grouping}
    last = _pushed_at(settings, wanted)
    if last is None:  # nothing there (never pushed, or gone): nothing to wait for
        return
    labels = ",".join(f'{k}="{v}"' for k, v in wanted.items())
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        try:
            found = prometheus.query(settings, f"push_time_seconds{{{labels}}}", timeout=5)
        except Exception:  # no Prometheus to ask: a fixed wait
            time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
            return
        if found and float(found[0]["value"][1]) >= last:
            return
        time.sleep(1.0)


def _pushed_at(settings: Settings, labels: Mapping[str, str]) -> float | None:
    """When the gateway last took a push of the group with these labels (None: not there)."""
    import urllib.request

    from bankstream import metrics

    try:
        url = metrics._bare(settings.pushgateway_url) + "/api/v1/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310
            groups = json.loads(answer.read())["data"]
    except Exception:  # the gateway away (or guarded): unknown
        return None
    for group in groups:
        if group.get("labels") == dict(labels):
            samples = group.get("push_time_seconds", {}).get("metrics") or []
            return float(samples[0]["value"]) if samples else None
    return None


def conclude(
    result: Result,
    thresholds: Mapping[str, Any],
    folder: Path,
    deferred: Collection[str] = (),
    note: str = "judged by bankstream merge",
) -> None:
    """Judge the thresholds on the result's figures, name what failed, give the verdict, and
    write result.json, report.md and the charts into ``folder``."""
    verification = result["verification"]
    figures = result["figures"]
    verdicts = results.judge(
        thresholds,
        results.measured(figures, verification, result.get("histograms"), thresholds),
        deferred,
        note,
        results.unmeasured(figures, thresholds),
    )
    failed = [
        f"{t['metric']} {t['condition']} (measured {t['measured']})"
        for t in verdicts
        if t["passed"] is False
    ]
    if verification is not None and not verification["exact"]:
        failed += [f"verification: {p}" for p in verification["problems"]]
    failed += [f"problem: {p}" for p in result["problems"]]
    result["thresholds"] = verdicts
    result["failed"] = failed
    result["verdict"] = "pass" if not failed else "fail"
    try:
        result["charts"] = charts_for(result, folder)
    except Exception as exc:  # a chart is not worth losing the result for
        result["problems"].append(f"charts not drawn: {exc}")
    results.write(result, folder)
    results.write_csv(result, folder)
    markdown = results.report_markdown(result)
    (folder / "report.md").write_text(markdown)
    from harness import html

    html.write(markdown, folder, f"bankstream run {result['run_id']}: {result['verdict']}")


def charts_for(result: Mapping[str, Any], folder: Path) -> list[str]:
    from harness.charts import draw

    return draw(result, folder)


def _thin(rows: list[Any], most: int = 3600) -> list[Any]:
    """At most ``most`` rows (every k-th of a long run), so a day-long soak stays readable."""
    if len(rows) <= most:
        return rows
    step = -(-len(rows) // most)
    return rows[::step]


def _group_offsets(
    settings: Settings, group: str, topic: str
) -> Callable[[], dict[int, tuple[int, int]] | None]:
    from bankstream import kafka

    admin = kafka.admin_client(settings)
    reader = kafka.consumer(settings, **{"group.id": group, "enable.auto.commit": False})
    return lambda: kafka.group_offsets(admin, reader, topic)


def _take_manifest(scratch: Path, folder: Path) -> Manifest | None:
    found = sorted(scratch.glob("*/manifest*.json"))
    if not found:
        return None
    target = folder / found[0].name
    shutil.copyfile(found[0], target)
    return read_manifest(target)


def build_figures(
    obs: Observed, manifest: Manifest | None, schedule: Any, warmup: float
) -> Figures:
    m: Mapping[str, Any] = manifest or {}
    events = m.get("events", {"made": 0, "acked": 0, "failed": 0, "unsent": 0, "produced": 0})
    wall = float(m.get("wall_seconds") or 0.0)
    acked = int(events["acked"])
    # the measured window: from the end of the warm-up to the last event handed to Kafka, as
    # the producer counted them by send time (acknowledgements lag by the delivery latency)
    measured = m.get("measured") or {}
    count, until = measured.get("events"), measured.get("until_seconds")
    rate = target = ratio = None
    if count and until and until > warmup:
        rate = count / (until - warmup)
        # events are sent at N^-1(i): the window [warmup, until] holds those the schedule
        # called for in it, and the last one is sent at `until`, so count the one at its end
        if schedule.paced:
            end = min(until, schedule.duration) if schedule.duration else until
            if end > warmup:
                target = (schedule.events_by(end) - schedule.events_by(warmup)) / (end - warmup)
                ratio = rate / target if target else None
    elif wall:
        rate = acked / wall  # shorter than its warm-up: the whole run
    s: Mapping[str, Any] = obs.sink_summary or {}
    sink_rate = s.get("events_per_second")
    whole_rate = acked / wall if wall else None
    drain = (
        round(obs.drained_at - obs.produce_ended, 2)
        if obs.drained_at and obs.produce_ended
        else None
    )
    return {
        "produce": {
            "made": int(events["made"]),
            "produced": int(events["produced"]),
            "acked": acked,
            "failed": int(events["failed"]),
            "unsent": int(events["unsent"]),
            "wall_seconds": wall,
            "rate": rate,
            "target_rate": target,
            "rate_ratio": ratio,
            "rate_whole_run": whole_rate,
            "schedule_lag": (m.get("schedule_lag") or {}).get("seconds"),
            "stall_seconds": m.get("stall_seconds"),
        },
        "sink": {
            "inserted": int(s.get("inserted", 0)),
            "duplicates": int(s.get("duplicates", 0)),
            "dead_lettered": int(s.get("dead_lettered", 0)) if s else None,
            "rate": sink_rate,
            "rate_ratio": sink_rate / whole_rate if sink_rate and whole_rate else None,
            "writing_seconds": s.get("writing_seconds"),
            "paused_seconds": s.get("paused_seconds"),
            "restarts": s.get("restarts"),
        },
        "lag": {"max_messages": obs.max_lag, "max_seconds": obs.max_lag_seconds},
        "latency": {
            "delivery": results.latency_figures(obs.delivery),
            "end_to_end": results.latency_figures(obs.e2e),
            "delivery_with_warmup": results.latency_figures(obs.delivery_all),
            "end_to_end_with_warmup": results.latency_figures(obs.e2e_all),
        },
        "drain_seconds": drain,
        "drained": obs.drained,
        "resources": obs.resources,
    }


def _stage_ends(scenario: Any) -> list[float]:
    """When each stage of the load ends, seconds from its start."""
    ends, total = [], 0.0
    for stage in scenario.load.stages or []:
        total += float(stage.duration)
        ends.append(total)
    return ends


def _abort_watch(scenario: Any, schedule: Any, warmup: float, every_event: bool) -> Any:
    """The scenario's aborting conditions, with the samples the run will have when the load
    says how many events it sends (the sink measures every event; a watched pipeline, a few)."""
    from harness.abort import AbortWatch

    ends = _stage_ends(scenario)
    events = schedule.total if schedule.total is not None else None
    totals = {"delivery": events, "end_to_end": events if every_event else None}
    return AbortWatch(scenario.thresholds, warmup, ends, totals)


def backlog_figures(obs: Observed, asked: int) -> dict[str, Any]:
    """A catch-up run's figures: the backlog the pipeline met, how long it took to catch up
    (its lag within a second of the newest event) and at what rate it wrote meanwhile."""
    started, caught = obs.sink_started, obs.caught_up_at
    filled = started - obs.produce_started if started and obs.produce_started else None
    took = caught - started if caught and started else None
    rate = obs.caught_up_sunk / took if took and obs.caught_up_sunk is not None else None
    return {
        "asked": asked,
        "waiting": obs.backlog_waiting,
        "fill_seconds": round(filled, 2) if filled is not None else None,
        "catch_up_seconds": round(took, 2) if took is not None else None,
        "catch_up_rate": round(rate, 1) if rate is not None else None,
        "caught_up": caught is not None,
    }


def mongo_version(db: Any) -> str | None:
    try:
        return str(db.client.server_info().get("version"))
    except Exception:
        return None


def _scoped(
    observed: Observed, scenario: Any, warmup: float, faults: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The scoped thresholds' figures (each window's, each stage's), from each second."""
    from harness.faults import outside
    from harness.scoped import scoped_figures

    lags = {float(row.t): float(row.lag_seconds or 0.0) for row in observed.timeline}
    rates = {
        float(row.t): (float(row.produce_rate), row.target_rate, float(row.sink_rate))
        for row in observed.timeline
    }
    ends = _stage_ends(scenario)
    windows = [tuple(w) for w in faults["windows"]] if faults and faults["judged_outside"] else []
    return scoped_figures(
        observed.ticks,
        lags,
        scenario.thresholds,
        warmup,
        ends,
        excluded=lambda t: not outside(windows, t),
        rates=rates,
    )


def _store_fill(settings: Settings, db: Any, transactions: str) -> dict[str, Any] | None:
    """How full the local in-memory store is after the run (None for any other store): the
    transactions stored, of about how many its heap holds, and its heap in use."""
    from bankstream.stack.lifecycle import heap_in_use, heap_limit, memory_store_pid
    from harness import room

    pid = memory_store_pid(settings)
    heap = None if pid is None else heap_limit(pid)
    if pid is None or heap is None:
        return None
    try:
        stored = int(db[transactions].estimated_document_count())
    except Exception:  # the store went away: the fill is unknown, the run is still reported
        return None
    capacity = room.capacity(heap)
    return {
        "heap_bytes": heap,
        "heap_used_bytes": heap_in_use(pid),
        "room_events": capacity,
        "stored_events": stored,
        "fill": round(stored / capacity, 4) if capacity else None,
    }


def _check_room(
    settings: Settings,
    db: Any,
    loaded: LoadedScenario,
    transactions: str,
    fresh: bool,
    say: Callable[[str], None],
) -> None:
    """Refuse, before anything starts, a run the local in-memory store cannot hold (warn when
    it nearly fills it); say nothing of any other store."""
    from bankstream.stack.lifecycle import memory_store_heap
    from harness import room
    from loadgen.pacing import Schedule

    heap = memory_store_heap(settings)
    if heap is None:
        return
    load = loaded.scenario.load
    events = Schedule.of_load(load).total
    seconds = load.total_duration
    rate = events / seconds if events is not None and seconds else None
    stored = 0 if fresh else db[transactions].estimated_document_count()
    warning = room.check(heap, stored, events, rate, loaded.scenario.name, fresh)
    if warning:
        say(warning)


def _drop_topics(settings: Settings, topic: str) -> None:
    from bankstream import kafka

    admin = kafka.admin_client(settings)
    for name in (topic, f"{topic}.dlq"):
        try:
            kafka.delete_topic(admin, name)
        except Exception:  # gone already, or not allowed: the run's result does not depend on it
            continue
