"""Pushed metrics against the real local stack: a producer that has ended is still in
Prometheus (through the Pushgateway); a run with --push leaves its thresholds' limits and
verdict as series (what Grafana draws as limit lines) and takes its processes' groups off the
gateway."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bankstream import metrics, prometheus
from bankstream.settings import Settings
from bankstream.stack import lifecycle
from tests.conftest import ROOT, free_port, run_cli

pytestmark = pytest.mark.integration


def wait_for(settings: Settings, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = prometheus.query(settings, promql)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def groups(settings: Settings) -> list[dict[str, str]]:
    """The Pushgateway's groups (their labels)."""
    with urllib.request.urlopen(settings.pushgateway_url + "/api/v1/metrics", timeout=5) as r:
        data = json.loads(r.read())["data"]
    return [g["labels"] for g in data]


@pytest.fixture(scope="module")
def gateway(stack: Settings) -> Iterator[Settings]:
    """The local stack with its Pushgateway (`stack up --with pushgateway`)."""
    settings = stack.model_copy(update={"stack_pushgateway": True})
    states = lifecycle.up(settings, report=lambda _: None)
    started = [s.name for s in states if s.started and s.name == "pushgateway"]
    yield settings
    if started and not os.environ.get("BANKSTREAM_KEEP_STACK"):
        lifecycle.down(settings, report=lambda _: None, names=started)


def test_a_producer_that_ended_is_still_in_prometheus(gateway: Settings, tmp_path: Path) -> None:
    stack = gateway
    run_id = f"push-{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "produce", "retail-day", "--events", "2000", "--rate", "1000", "--run-id", run_id,
        "--topic", f"bankstream.test.{run_id}", "--results", str(tmp_path), "--push",
        "--push-interval", "1s", "--metrics-port", "0", "--quiet",
        env={"BANKSTREAM_LOADGEN_METRICS_PORT": str(free_port())},
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    try:
        # the process is gone; its last push is what Prometheus scrapes from the gateway
        query = f'sum(bankstream_loadgen_events_acked_total{{run_id="{run_id}"}})'
        deadline = time.monotonic() + 30
        acked = 0.0
        while time.monotonic() < deadline and acked < 2000:
            found = prometheus.query(stack, query)
            acked = float(found[0]["value"][1]) if found else 0.0
            time.sleep(0.5)
        assert acked == 2000
        labels = prometheus.query(
            stack, f'bankstream_loadgen_events_acked_total{{run_id="{run_id}"}}'
        )
        assert {s["metric"]["shard"] for s in labels} == {"all"}
    finally:
        metrics.delete_pushed(
            stack.pushgateway_url, "bankstream-loadgen", {"run_id": run_id, "shard": "all"}
        )


def test_a_run_pushes_its_limits_and_cleans_up_after_itself(gateway: Settings) -> None:
    stack = gateway
    database = f"test_push_{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "run", "retail-day", "--rate", "300", "--duration", "8s", "--no-warm", "--push",
        "--push-interval", "1s", "--json",
        env={"BANKSTREAM_MONGO_DATABASE": database},
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    result = json.loads(Path(ROOT, summary["result"]).read_text())
    run_id = result["run_id"]
    limit = wait_for(
        stack,
        "max by (scenario, condition) "
        '(bankstream_threshold_limit{metric="e2e_latency_p99_seconds", scenario="retail-day"})',
    )
    assert limit and float(limit[0]["value"][1]) == 2.0  # the scenario's "< 2s"
    verdict = wait_for(stack, f'bankstream_run_passed{{run_id="{run_id}"}}')
    assert verdict and float(verdict[0]["value"][1]) == 1.0
    # the sink's pushed series reached Prometheus while it ran (it served no /metrics)
    group = f"bankstream-sink-{run_id}"
    written = prometheus.query(
        stack, f'max_over_time(bankstream_sink_written_total{{group="{group}"}}[5m])'
    )
    assert sum(float(s["value"][1]) for s in written) >= result["figures"]["sink"]["inserted"]
    # and the gateway no longer holds the run's processes
    left = [g for g in groups(stack) if g.get("run_id") == run_id or g.get("group") == group]
    assert not left, left
