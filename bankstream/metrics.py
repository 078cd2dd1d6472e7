"""Prometheus metrics of a run's processes, served as one /metrics (prometheus-client's
multiprocess mode): each process writes its values to files in one directory per run, and the
coordinating process serves them all. Shared by the producer and the sink."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bankstream.errors import UsageError

ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_directory(directory: str) -> None:
    """Where this process writes its metrics: call before prometheus_client is imported."""
    os.environ[ENV] = directory


def observe_many(histogram: Any, bounds: NDArray[np.float64], values: NDArray[np.float64]) -> None:
    """Many observations at once into a prometheus-client Histogram with these bucket bounds
    (what its ``observe`` does for one value, per bucket instead of per value)."""
    if not len(values):
        return
    index = np.searchsorted(bounds, values, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)
    for i, n in enumerate(counts.tolist()):
        if n:
            histogram._buckets[i].inc(n)
    histogram._sum.inc(float(values.sum()))


def serve(port: int, directory: str, flag: str = "--metrics-port") -> Callable[[], None]:
    """One /metrics for every process writing to ``directory``; returns how to stop it."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    try:
        server, thread = start_http_server(port, addr="0.0.0.0", registry=registry)
    except OSError as exc:
        msg = (
            f"cannot serve /metrics on port {port} ({exc.strerror}): give another {flag} (0: none)"
        )
        raise UsageError(msg) from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(2)

    return stop
