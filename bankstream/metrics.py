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


def _gateway_handler(url: str) -> Any:
    """prometheus-client's push handler, with user:password in the URL as basic auth."""
    import urllib.parse

    from prometheus_client.exposition import basic_auth_handler, default_handler

    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return default_handler
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")

    def handler(*args: Any) -> Any:
        return basic_auth_handler(*args, username=user, password=password)  # type: ignore[misc]

    return handler


def _bare(url: str) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


class Pusher:
    """Every process's metrics in ``directory`` pushed to a Prometheus Pushgateway every
    ``interval`` seconds and once more at :meth:`stop`, under ``job`` and ``grouping`` (for
    processes that may end before a scrape: Kubernetes Jobs, short runs). A push that fails is
    tried again next time; the first failure is said once through ``warn``."""

    def __init__(
        self,
        url: str,
        job: str,
        grouping: dict[str, str],
        directory: str,
        interval: float,
        warn: Callable[[str], None],
    ) -> None:
        import threading

        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
        self.url, self.job, self.grouping = url, job, grouping
        self.interval, self.warn = interval, warn
        self.failed = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="metrics-push")
        self._thread.start()

    def push(self) -> bool:
        from prometheus_client import push_to_gateway

        try:
            push_to_gateway(
                _bare(self.url),
                job=self.job,
                registry=self.registry,
                grouping_key=self.grouping,
                timeout=5,
                handler=_gateway_handler(self.url),
            )
        except Exception as exc:  # the gateway away: next time
            if not self.failed:
                self.failed = True
                self.warn(f"metrics not pushed to the Pushgateway: {type(exc).__name__}: {exc}")
            return False
        return True

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self.push()

    def stop(self) -> None:
        """The last values pushed (what the process ended with)."""
        self._done.set()
        self._thread.join(10)
        self.push()


def delete_pushed(url: str, job: str, grouping: dict[str, str]) -> None:
    """A group's metrics taken off the Pushgateway (a run's, once Prometheus has them)."""
    from prometheus_client import delete_from_gateway

    delete_from_gateway(
        _bare(url), job=job, grouping_key=grouping, timeout=5, handler=_gateway_handler(url)
    )


def add_push_flags(parser: Any) -> None:
    """``--push`` and ``--push-interval`` (produce, sink, run)."""
    from bankstream.commands import duration

    parser.add_argument(
        "--push",
        action="store_true",
        help="also push the metrics to the Pushgateway (BANKSTREAM_PUSHGATEWAY_URL; the local "
        "stack's by default) every --push-interval and at the end: for processes that may end "
        "before Prometheus scrapes them (Kubernetes Jobs)",
    )
    parser.add_argument(
        "--push-interval",
        type=duration(1, 3600, low_open=False),
        default=5.0,
        metavar="D",
        help="with --push: how often (default: 5s)",
    )
