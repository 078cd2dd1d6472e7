"""A run's result: its figures, the thresholds judged on them, ``result.json`` and ``report.md``.

``result.json`` (schema version ``RESULT_VERSION``) holds everything a later ``compare`` or
``merge`` needs: the producer's manifest, the verification, the figures, the thresholds and
their verdicts, the post-warm-up latency histograms (mergeable), the timeline, the environment.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
from collections.abc import Collection, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from bankstream.files import write_whole
from bankstream.histogram import LogHistogram
from loadgen.producer.manifest import Manifest

RESULT_VERSION = 1
HERE = Path(__file__).resolve().parent
_STRICT = ConfigDict(extra="forbid")


class Figures(TypedDict):
    """``figures``: what the run measured (docs/results.md says each part's keys)."""

    produce: dict[str, Any]
    sink: dict[str, Any]
    lag: dict[str, Any]
    latency: dict[str, Any]
    drain_seconds: float | None
    drained: bool | None  # None: a merge of the store's manifests (no sink figures)
    resources: dict[str, dict[str, float]]
    store: NotRequired[dict[str, Any] | None]
    backlog: NotRequired[dict[str, Any]]
    pipeline: NotRequired[dict[str, Any]]
    faults: NotRequired[dict[str, Any]]
    scoped: NotRequired[dict[str, Any]]


class Aborted(TypedDict):
    reason: str
    at_seconds: float


@with_config(_STRICT)
class Result(TypedDict):
    """``result.json``: written by `run` and `merge`, read by `compare`, `merge` and the
    dashboard through this model; its keys are these and only these (docs/results.md lists
    them, checked by a unit test)."""

    result_version: int
    run_id: str
    scenario: str
    scenario_digest: str
    seed: int
    shard: list[int] | None
    merged_from: NotRequired[list[list[int] | None]]
    topic: str
    sink: NotRequired[str]
    collections: dict[str, str]
    started_at: str | None
    ended_at: str | None
    ended: str
    aborted: NotRequired[Aborted | None]
    warmup_seconds: float
    verdict: NotRequired[str]  # these four: from the thresholds judged (conclude)
    failed: NotRequired[list[str]]
    thresholds: NotRequired[list[dict[str, Any]]]
    charts: NotRequired[list[str]]
    figures: Figures
    verification: dict[str, Any] | None
    verification_note: str | None
    histograms: dict[str, dict[str, Any]]
    timeline_fields: list[str]
    timeline: list[list[Any]]
    manifest: Manifest | None
    ceilings: NotRequired[dict[str, Any] | None]
    environment: dict[str, Any]
    problems: list[str]


@cache
def _adapter() -> TypeAdapter[Result]:
    return TypeAdapter(Result)


def validate(data: Any, where: str = "result") -> Result:
    """``data`` as a result (a one-line UsageError naming ``where`` when it is another version
    or its keys are not :class:`Result`'s)."""
    from bankstream.errors import UsageError
    from bankstream.progress import BadRecord, versioned

    try:
        result: Result = versioned(_adapter(), data, "result_version", RESULT_VERSION, "result")
    except BadRecord as exc:
        msg = f"{where}: {exc}"
        raise UsageError(msg) from None
    return result


def latency_figures(hist: LogHistogram) -> dict[str, float | int | None]:
    """count, mean, p50, p90, p95, p99, p99.9 and max, seconds."""
    out = hist.summary()
    out["p95"] = hist.percentile(0.95)
    return {k: out[k] for k in ("count", "mean", "p50", "p90", "p95", "p99", "p999", "max")}


def latency_metric(name: str) -> tuple[str, float | str] | None:
    """``e2e_latency_p99_9_seconds`` -> ("end_to_end", 0.999); ``delivery_latency_max_seconds``
    -> ("delivery", "max"); None for a name of another kind."""
    from scenarios.model import LATENCY_METRIC_RE

    match = LATENCY_METRIC_RE.match(name)
    if not match:
        return None
    which = "end_to_end" if match.group(1) == "e2e" else "delivery"
    what = match.group(2)
    if what in ("max", "mean"):
        return which, what
    whole, _, fraction = what[1:].partition("_")
    return which, int(whole + fraction) / 10 ** (2 + len(fraction))


def latency_value(histogram: LogHistogram, what: float | str) -> float | None:
    if not histogram.total:
        return None
    if what == "max":
        return histogram.max
    if what == "mean":
        return histogram.sum / histogram.total
    assert isinstance(what, float)
    return histogram.percentile(what)


def measured(
    figures: Mapping[str, Any],
    verification: Mapping[str, Any] | None,
    histograms: Mapping[str, Any] | None = None,
    wanted: Iterable[str] = (),
) -> dict[str, Any]:
    """Every metric a threshold can name, from the figures (None: not measured in this run);
    with the run's latency ``histograms`` (after the warm-up), also each ``wanted`` latency
    metric of any percentile (outside the faults' windows when the run is judged there)."""
    e2e = figures["latency"]["end_to_end"]
    delivery = figures["latency"]["delivery"]
    max_lag = figures["lag"]["max_seconds"]
    faults = figures.get("faults")
    if faults and faults["judged_outside"]:  # latency and lag outside the faults' windows
        e2e, delivery = faults["outside"]["end_to_end"], faults["outside"]["delivery"]
        max_lag = faults["outside"]["max_lag_seconds"]
    verified = verification or {}
    values: dict[str, Any] = {
        "produce_rate_ratio": figures["produce"].get("rate_ratio"),
        "sink_rate_ratio": figures["sink"].get("rate_ratio"),
        "delivery_latency_p50_seconds": delivery["p50"],
        "delivery_latency_p99_seconds": delivery["p99"],
        "e2e_latency_p50_seconds": e2e["p50"],
        "e2e_latency_p95_seconds": e2e["p95"],
        "e2e_latency_p99_seconds": e2e["p99"],
        "e2e_latency_max_seconds": e2e["max"],
        "max_lag_seconds": max_lag,
        "recovery_seconds": faults["recovery_seconds"] if faults else None,
        "lost": verified.get("lost"),
        "duplicates": verified.get("duplicates"),
        "dead_lettered": figures["sink"].get("dead_lettered"),
        "failed": figures["produce"].get("failed"),
    }
    if faults and faults["judged_outside"]:
        histograms = faults["outside"].get("histograms")
    for name in wanted:
        kind = latency_metric(name)
        if kind is None or name in values:
            continue
        data = (histograms or {}).get(kind[0])
        values[name] = (
            None if data is None else latency_value(LogHistogram.from_dict(data), kind[1])
        )
    values.update(figures.get("scoped") or {})  # "METRIC over 1m": its worst windows
    return values


def unmeasured(
    figures: Mapping[str, Any], thresholds: Mapping[str, Any] | None = None
) -> dict[str, tuple[bool | None, str]]:
    """Metrics this run cannot measure, and how their thresholds are then judged: not at all
    (None) or failed (False), with the reason. Scoped conditions (over a window, in a stage)
    need each second's record, which a merged result of many hosts does not have."""
    out: dict[str, tuple[bool | None, str]] = {}
    if "scoped" not in figures:
        for metric, conditions in (thresholds or {}).items():
            for c in conditions:
                if c.scope:
                    note = "windows and stages are judged on each host's own result"
                    out[f"{metric} {c.scope}"] = (None, note)
    faults = figures.get("faults")
    if not faults:
        out["recovery_seconds"] = (None, "no fault in this run")
    elif not faults["recovered"]:
        out["recovery_seconds"] = (False, "a fault did not recover before the run ended")
    return out


def judge(
    thresholds: Mapping[str, Any],
    values: Mapping[str, Any],
    deferred: Collection[str] = (),
    deferred_note: str = "judged by bankstream merge",
    reasons: Mapping[str, tuple[bool | None, str]] | None = None,
) -> list[dict[str, Any]]:
    """One verdict per condition: passed (True), failed (False; a threshold that cannot be
    checked is not met), or None for a ``deferred`` metric not measured here (one host of
    several: ``bankstream merge`` judges it). ``reasons``: metrics known not to be measured,
    judged as :func:`unmeasured` says."""
    out = []
    for metric, conditions in thresholds.items():
        for condition in conditions:
            text = condition.text(metric)
            name = f"{metric} {condition.scope}" if condition.scope else metric
            value = values.get(name)
            note = None
            if isinstance(value, Mapping):  # a scoped figure: judged on its worst window
                side = "min" if condition.op in (">", ">=") else "max"
                if value[side] is not None:
                    at = value[f"{side}_at"]
                    note = f"worst of {value['windows']} windows: the one from {at:.1f} s"
                value = value[side]
            ok: bool | None = value is not None and math.isfinite(value) and condition.holds(value)
            if value is None and reasons and name in reasons:
                ok, note = reasons[name]
            elif value is None:
                ok = None if metric in deferred else False
                note = deferred_note if ok is None else "not measured in this run"
            out.append(
                {
                    "metric": metric,
                    "condition": text,
                    "limit": condition.value,
                    "measured": value,
                    "passed": ok,
                    "note": note,
                }
            )
    return out


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(HERE), *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout.strip()


def git_revision() -> str | None:
    """The checkout's commit (with -dirty when it has changes), when run from one."""
    try:
        rev = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}-dirty" if dirty else rev


def environment(settings: Any, mongo_version: str | None) -> dict[str, Any]:
    """The producer manifest's environment, and what a whole run adds: the git revision, the
    MongoDB client and server, the Kafka version of the local stack."""
    import pymongo

    from loadgen.producer.manifest import environment as machine

    return {
        **machine(settings.kafka_bootstrap),
        "git_revision": git_revision(),
        "pymongo": pymongo.__version__,
        "kafka": settings.kafka_version if not settings.is_given("kafka_bootstrap") else "external",
        "mongodb": mongo_version,
        "mongodb_uri": settings.mongo_uri_redacted,
    }


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write(result: Mapping[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_whole(folder / "result.json", json.dumps(result, indent=1, default=_plain) + "\n")


def write_csv(result: Mapping[str, Any], folder: Path) -> list[str]:
    """The result's per-second timeline (``timeline.csv``, its columns as in result.json) and
    its latency histograms (``latency.csv``: histogram, bucket bounds in seconds, count, and the
    share of observations up to the bucket's upper bound), for a spreadsheet or pandas. Returns
    the files' names."""
    import csv

    from bankstream.histogram import LogHistogram

    with (folder / "timeline.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(result.get("timeline_fields") or [])
        writer.writerows(result.get("timeline") or [])
    with (folder / "latency.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["histogram", "lower_seconds", "upper_seconds", "count", "cumulative_share"]
        )
        for name, data in (result.get("histograms") or {}).items():
            histogram = LogHistogram.from_dict(data)
            seen = 0
            for lower, upper, count in histogram.rows():
                seen += count
                share = seen / histogram.total if histogram.total else 0.0
                writer.writerow([name, f"{lower:.9g}", f"{upper:.9g}", count, f"{share:.6f}"])
    return ["timeline.csv", "latency.csv"]


def _store_line(store: Mapping[str, Any] | None) -> list[str]:
    """The local in-memory store's fill, when the run wrote to it."""
    if not store or not store.get("room_events"):
        return []
    heap, limit = store.get("heap_used_bytes"), store["heap_bytes"] / 2**30
    used = f"; heap in use {heap / 2**30:.2f} of {limit:.2f} GiB" if heap else ""
    fill = float(store.get("fill") or 0.0)
    warn = " (over 80%: the store slows down as it fills; drop old runs with --fresh)"
    return [
        f"- local in-memory store: {store['stored_events']:,} events of about "
        f"{store['room_events']:,} it holds, {fill:.0%} full{used}" + (warn if fill > 0.8 else "")
    ]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    msg = f"not JSON: {type(value).__name__}"
    raise TypeError(msg)


def read(path: Path) -> Result:
    """A result.json (or the folder that holds one), checked for its schema version."""
    from bankstream.errors import UsageError

    file = path / "result.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        msg = f"{file}: no such result (give a results/<run id> folder or its result.json)"
        raise UsageError(msg) from None
    except (OSError, ValueError) as exc:
        msg = f"{file}: not a readable result.json ({exc})"
        raise UsageError(msg) from None
    return validate(data, str(file))


# ---------------------------------------------------------------------------- report.md


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.1f} ms"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _verdict(passed: bool | None) -> str:
    return "pass" if passed else "FAIL" if passed is False else "-"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"


def _faults_section(faults: Mapping[str, Any] | None) -> list[str]:
    """The faults injected, their windows and recovery, and where the thresholds were judged."""
    if not faults:
        return []
    windows = ", ".join(f"{a:g}-{b:g} s" for a, b in faults["windows"]) or "none"
    where = (
        f"outside the faults' windows and recoveries ({windows}); the whole run's figures are below"
        if faults["judged_outside"]
        else "over the whole run, faults included (--judge-latency whole-run)"
    )
    lines = [
        "",
        "## Faults",
        "",
        f"Latency and lag thresholds are judged {where}. Recovery: from a fault's end until the "
        "sink keeps up again for 5 s (its consumer lag under a second, its delay behind the "
        "producer by the run's counts back to what it was before, no partition stalled as Kafka "
        "sees it); max lag: how far behind it fell.",
        "",
        "| fault | started | ended | recovery | max lag | note |",
        "|---|---|---|---|---|---|",
    ]
    for f in faults["injected"]:
        recovered = _secs(f.get("recovery_seconds"))
        if f.get("started") is not None and f.get("recovery_seconds") is None:
            recovered = "not recovered"
        lines.append(
            f"| `{f['fault']}` | {_secs(f.get('started'))} | {_secs(f.get('ended'))} | "
            f"{recovered} | {_secs(f.get('max_lag_seconds'))} | {f.get('problem') or ''} |"
        )
    out = faults["outside"]
    lines.append(
        f"\nOutside the windows: end-to-end p99 {_ms(out['end_to_end']['p99'])}, delivery p99 "
        f"{_ms(out['delivery']['p99'])}, max lag {out['max_lag_seconds']:g} s."
    )
    return lines


def _backlog_line(backlog: Mapping[str, Any] | None) -> list[str]:
    if not backlog:
        return []
    if not backlog["caught_up"]:
        return [
            f"- backlog: the pipeline started with {_num(backlog['waiting'])} events waiting "
            f"(asked {backlog['asked']:,}) and never caught up"
        ]
    return [
        f"- backlog: the pipeline started {_num(backlog['fill_seconds'])} s in with "
        f"{_num(backlog['waiting'])} events waiting (asked {backlog['asked']:,}); caught up "
        f"(lag within 1 s) after {_num(backlog['catch_up_seconds'])} s, writing "
        f"{_num(backlog['catch_up_rate'])}/s meanwhile; the end-to-end latency includes the "
        "backlog's wait"
    ]


def _pipeline_section(pipeline: Mapping[str, Any] | None) -> list[str]:
    """Which pipeline was under test and how each figure of it was measured from outside."""
    if not pipeline:
        return []
    lines = ["", "## Pipeline under test", ""]
    what = {"connect": "the MongoDB Kafka sink connector", "external": "an external pipeline"}
    lines.append(
        f"{what.get(pipeline['sink'], pipeline['sink'])}, storing in `{pipeline['target']}`"
        + (f", consumer group `{pipeline['group']}`" if pipeline.get("group") else "")
        + ". bankstream did not run it: the figures below were measured from outside "
        "(the sink row of the processes is `bankstream watch`"
        + (", with the local Connect worker" if pipeline["sink"] == "connect" else "")
        + ")."
    )
    connector = pipeline.get("connector")
    if connector:
        config = connector["config"]
        lines.append(
            f"- connector `{connector['name']}`: {config.get('tasks.max')} task(s), "
            f"write model {str(config.get('writemodel.strategy')).rsplit('.', 1)[-1]}, "
            f"id strategy {str(config.get('document.id.strategy')).rsplit('.', 1)[-1]}"
        )
    for name, how in (pipeline.get("method") or {}).items():
        lines.append(f"- {name}: {how}")
    probes = pipeline.get("probes")
    if probes:
        lines.append(
            f"- probes: {probes['probed']:,} taken of {probes['seen']:,} messages seen, "
            f"{probes['found']:,} found, {probes['never_seen']:,} never seen, "
            f"{probes['skipped']:,} skipped (too many waiting); resolution "
            f"{probes['poll_seconds'] * 1000:.0f} ms plus one query; documents looked up by "
            f"{probes['id_mode'] or 'nothing (none stored)'}"
        )
    return lines


def report_markdown(result: Mapping[str, Any]) -> str:
    fig = result["figures"]
    produce, sink, lag = fig["produce"], fig["sink"], fig["lag"]
    verdict = result["verdict"]
    lines = [
        f"# Run {result['run_id']}: {verdict.upper()}",
        "",
        f"Scenario `{result['scenario']}` (digest `{str(result['scenario_digest'])[:12]}`, seed "
        f"{result['seed']}), {result['started_at']} to {result['ended_at']}, ended "
        f"{result['ended']}. Warm-up of {result['warmup_seconds']:g} s excluded from rates, "
        "latencies and lag.",
        "",
        "## Thresholds",
        "",
        "| metric | condition | measured | verdict |",
        "|---|---|---|---|",
    ]
    for t in result["thresholds"]:
        value = t["measured"]
        shown = _ms(value) if t["metric"].endswith("_seconds") else _num(value)
        lines.append(
            f"| {t['metric']} | {t['condition']} | {shown} | "
            f"{_verdict(t['passed'])}{' (' + t['note'] + ')' if t['note'] else ''} |"
        )
    lines += _faults_section(fig.get("faults"))
    lines += _pipeline_section(fig.get("pipeline"))
    v = result.get("verification")
    lines += ["", "## Verification", ""]
    if v is None:
        lines.append(result.get("verification_note") or "not verified")
    else:
        lines += [
            f"- {'exact' if v['exact'] else 'NOT exact'}: {v['distinct']:,} distinct events "
            f"stored of {v['expected']:,} acknowledged; lost {v['lost']:,}, duplicates "
            f"{v['duplicates']:,}, unexpected {v['unexpected']:,}",
            f"- counts by type and status {'match' if v['counts_match'] else 'differ'}; money in "
            f"and out {'match' if v['money_match'] else 'differ'}; ledger problems "
            f"{v['ledger_problems']:,}; cells off their checksum {v['checksum_mismatches']:,}",
            f"- full stream check: {'done' if v['stream_checked'] else 'not run (too large)'}; "
            f"projections: {v['projections']}",
        ]
        sample = v.get("sample")
        if sample is not None:
            lines.append(
                f"- field by field: {sample['checked']:,} sampled documents against their events, "
                f"{sample['differing']:,} differ"
            )
        lines += [f"- problem: {p}" for p in v["problems"]]
    delivery, e2e = fig["latency"]["delivery"], fig["latency"]["end_to_end"]
    lines += [
        "",
        "## Figures",
        "",
        f"- produced: {produce['acked']:,} acknowledged of {produce['made']:,} made, "
        f"{produce['failed']:,} failed; {_num(produce['rate'])}/s measured"
        + (
            f" against {_num(produce['target_rate'])}/s (ratio {produce['rate_ratio']:.3f})"
            if produce.get("rate_ratio") is not None
            else ""
        ),
        f"- sunk: {_num(sink['inserted'])} written, {_num(sink['duplicates'])} already there, "
        f"{_num(sink['dead_lettered'])} dead-lettered; write rate {_num(sink['rate'])}/s"
        + (
            f" ({sink['rate_ratio']:.3f} of the produce rate)"
            if sink.get("rate_ratio") is not None
            else ""
        ),
        f"- consumer lag: max {_num(lag['max_messages'])} messages, {_num(lag['max_seconds'])} s; "
        f"drained {_num(fig['drain_seconds'])} s after the producer stopped",
        *_store_line(fig.get("store")),
        *_backlog_line(fig.get("backlog")),
        "",
        "| latency (s from intended send) | count | p50 | p90 | p99 | p99.9 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, h in (("delivery (acked by Kafka)", delivery), ("end to end (in MongoDB)", e2e)):
        lines.append(
            f"| {name} | {h['count']:,} | {_ms(h['p50'])} | {_ms(h['p90'])} | {_ms(h['p99'])} | "
            f"{_ms(h['p999'])} | {_ms(h['max'])} |"
        )
    lines += ["", "| process | CPU seconds | peak memory |", "|---|---|---|"]
    for name, r in fig["resources"].items():
        memory = r["peak_rss_bytes"] / 2**20
        lines.append(f"| {name} | {r['cpu_seconds']:,.1f} | {memory:,.0f} MiB |")
    c = result.get("ceilings")
    if c:
        lines += [
            "",
            "## Against the ceilings",
            "",
            "Raw clients with this scenario's data on this cluster (bankstream bench ceiling, "
            f"{c['measured_at']}):",
            "",
            f"- Kafka producer ceiling {_num(c['kafka_producer_rate'])}/s: the producer ran at "
            + (
                f"{c['produce_rate_of_ceiling']:.3f} of it"
                if c["produce_rate_of_ceiling"] is not None
                else "-"
            ),
            f"- MongoDB insert_many ceiling {_num(c['mongodb_insert_rate'])}/s: the sink wrote at "
            + (
                f"{c['sink_rate_of_ceiling']:.3f} of it"
                if c["sink_rate_of_ceiling"] is not None
                else "-"
            ),
        ]
    charts = result.get("charts") or []
    if charts:
        lines += ["", "## Charts", ""] + [f"![{c}]({c})" for c in charts]
    env = result["environment"]
    lines += [
        "",
        "## Environment",
        "",
        ", ".join(f"{k} {v}" for k, v in env.items() if v is not None),
        "",
    ]
    if result.get("problems"):
        lines += ["## Problems", ""] + [f"- {p}" for p in result["problems"]] + [""]
    return "\n".join(lines)
