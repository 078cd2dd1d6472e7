"""What the pipeline page reads: Prometheus's HTTP API (the same PromQL as the Grafana
dashboard) when it answers, the results of `bankstream run` (RESULTS/<run id>/result.json and
the capacity searches' capacity.json), and the producer's run records in MongoDB."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.promql import resolve

Document = dict[str, Any]


class PrometheusError(Exception):
    pass


def prometheus_ready(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/-/ready", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):
        return False


def query_range(
    url: str, expr: str, start: float, end: float, step: float, timeout: float = 5.0
) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    """Prometheus's range query: [(labels, [(epoch seconds, value), ...]), ...]."""
    params = urllib.parse.urlencode(
        {"query": resolve(expr), "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    )
    address = f"{url.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(address, timeout=timeout) as reply:
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        msg = f"Prometheus refused the query ({exc.code}): {detail}"
        raise PrometheusError(msg) from None
    except (OSError, ValueError) as exc:
        msg = f"Prometheus did not answer: {exc}"
        raise PrometheusError(msg) from None
    if body.get("status") != "success":
        msg = f"Prometheus: {body.get('error', body)}"
        raise PrometheusError(msg)
    out = []
    for series in body["data"]["result"]:
        points = [(float(t), float(v)) for t, v in series["values"]]
        out.append((dict(series["metric"]), points))
    return out


def legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def panel_frames(
    url: str, panels: Any, minutes: float, step: float = 5.0, now: float | None = None
) -> list[pd.DataFrame | PrometheusError]:
    """Each panel's queries over the last ``minutes`` (one column per series, indexed by
    time), or the error its query met. The queries run side by side."""
    from concurrent.futures import ThreadPoolExecutor

    end = now if now is not None else time.time()
    start = end - minutes * 60
    queries = [(i, q) for i, panel in enumerate(panels) for q in panel.queries]

    def run(query: Any) -> Any:
        try:
            return query_range(url, query.expr, start, end, step)
        except PrometheusError as exc:
            return exc

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(run, [q for _, q in queries]))
    columns: list[dict[str, pd.Series]] = [{} for _ in panels]
    failed: dict[int, PrometheusError] = {}
    for (i, q), answer in zip(queries, answers, strict=True):
        if isinstance(answer, PrometheusError):
            failed.setdefault(i, answer)
            continue
        for labels, points in answer:
            if not points:
                continue
            times = pd.to_datetime([t for t, _ in points], unit="s", utc=True)
            columns[i][legend(q.legend, labels)] = pd.Series([v for _, v in points], index=times)
    return [failed[i] if i in failed else pd.DataFrame(c) for i, c in enumerate(columns)]


# ---------------------------------------------------------------------- results of runs


def _newest(folder: Path, name: str, limit: int) -> list[Document]:
    """The JSON objects in ``folder/*/name``, newest first (unreadable ones skipped)."""
    if not folder.is_dir():
        return []
    files = sorted(folder.glob(f"*/{name}"), key=lambda p: p.stat().st_mtime, reverse=True)
    out = []
    for path in files[:limit]:
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(found, dict):
            out.append(found)
    return out


def results(folder: Path, limit: int = 200) -> list[Document]:
    """The result.json of each run in ``folder`` (newest first)."""
    return [
        r
        for r in _newest(folder, "result.json", limit)
        if isinstance(r.get("figures"), dict) and isinstance(r.get("run_id"), str)
    ]


def capacities(folder: Path, limit: int = 50) -> list[Document]:
    """The capacity.json of each `bankstream run --find-max` in ``folder`` (newest first)."""
    return [c for c in _newest(folder, "capacity.json", limit) if isinstance(c.get("steps"), list)]


def summary_row(result: Document) -> Document:
    """One run's headline figures, for the table of past runs."""
    f = result.get("figures") or {}
    produce, sink = f.get("produce") or {}, f.get("sink") or {}
    e2e = (f.get("latency") or {}).get("end_to_end") or {}
    return {
        "run": result["run_id"],
        "scenario": result.get("scenario"),
        "started": result.get("started_at"),
        "verdict": result.get("verdict"),
        "target/s": produce.get("target_rate"),
        "produced/s": produce.get("rate"),
        "sunk/s": sink.get("rate"),
        "acked": produce.get("acked"),
        "inserted": sink.get("inserted"),
        "dead-lettered": sink.get("dead_lettered"),
        "e2e p50 (s)": e2e.get("p50"),
        "e2e p99 (s)": e2e.get("p99"),
        "max lag (msgs)": (f.get("lag") or {}).get("max_messages"),
    }


def timeline(result: Document) -> pd.DataFrame:
    """A run's per-second timeline (produced vs sunk, lag, latency) as recorded by the harness."""
    fields = result.get("timeline_fields") or []
    frame = pd.DataFrame(result.get("timeline") or [], columns=fields)
    return frame.set_index("t") if "t" in frame.columns else frame


def run_records(db: Any, collection: str = "runs", limit: int = 100) -> pd.DataFrame:
    """The producer's run manifests in MongoDB, one row each (newest first): the fallback when
    no Prometheus answers. Stored counts come from the sink's run summaries."""
    fields = ["run_id", "scenario", "shard", "started_at", "wall_seconds", "events"]
    fields += ["delivery_latency.seconds", "stall_seconds", "ended"]
    docs = list(db[collection].find({}, {f: 1 for f in fields}).sort("started_at", -1).limit(limit))
    rows = []
    for d in docs:
        events = d.get("events") or {}
        wall = d.get("wall_seconds") or 0
        latency = (d.get("delivery_latency") or {}).get("seconds") or {}
        rows.append(
            {
                "run": d.get("run_id"),
                "scenario": d.get("scenario"),
                "shard": "/".join(map(str, d["shard"])) if d.get("shard") else "",
                "started": d.get("started_at"),
                "ended": d.get("ended"),
                "acked": events.get("acked"),
                "failed": events.get("failed"),
                "produced/s": round(events.get("acked", 0) / wall, 1) if wall else None,
                "delivery p50 (s)": latency.get("p50"),
                "delivery p99 (s)": latency.get("p99"),
                "stalled (s)": d.get("stall_seconds"),
            }
        )
    return pd.DataFrame(rows)
