from __future__ import annotations

import time
import uuid

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from bankstream import prometheus
from bankstream.settings import Settings

pytestmark = pytest.mark.integration


def test_prometheus_scrapes_an_exporter_on_the_loadgen_port(stack: Settings):
    registry = CollectorRegistry()
    gauge = Gauge("bankstream_test_marker", "set by the test", ["run"], registry=registry)
    run = uuid.uuid4().hex[:8]
    gauge.labels(run=run).set(42.5)
    server, thread = start_http_server(
        stack.loadgen_metrics_port, addr="127.0.0.1", registry=registry
    )
    try:
        deadline = time.monotonic() + 30
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            result = prometheus.query(stack, f'bankstream_test_marker{{run="{run}"}}')
            time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result, "Prometheus never scraped the test exporter"
    sample = result[0]
    assert sample["metric"]["job"] == "bankstream-loadgen"
    assert float(sample["value"][1]) == 42.5


def test_bad_query_is_reported(stack: Settings):
    from bankstream.errors import BankstreamError

    with pytest.raises(BankstreamError, match="rejected the query"):
        prometheus.query(stack, "sum(")
