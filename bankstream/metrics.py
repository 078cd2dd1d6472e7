"""Prometheus metrics of a run's processes, served as one /metrics (prometheus-client's
multiprocess mode): each process writes its values to files in one directory per run, and the
coordinating process serves them all. Shared by the producer and the sink."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from bankstream.errors import UsageError

if TYPE_CHECKING:  # prometheus_client is imported only after use_directory
    from prometheus_client import Metric

ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_directory(directory: str) -> None:
    """Where this process writes its metrics: call before prometheus_client is imported."""
    os.environ[ENV] = directory


# A BatchHistogram's parts in the metric files: two sum-mode gauges under its name with these
# suffixes (a colon: no instrumented name has one), shown as the histogram by `_FilesCollector`
_COUNTS = ":bucket_counts"
_SUM = ":sum"
_FEW = 128  # values in a batch up to which each is looked up (above: sorted, then counted)


def _le(bound: float) -> str:
    """A bucket bound as prometheus-client writes it in ``le`` (Go's float format)."""
    if bound == math.inf:
        return "+Inf"
    text = repr(float(bound))
    dot = text.find(".")
    if dot > 6:  # Go switches to an exponent sooner than Python (bounds of a million and more)
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


class BatchHistogram:
    """A histogram that takes many observations at a time, summed over a run's processes and
    served as a prometheus-client Histogram of the same name and buckets would be (the same
    ``_bucket``, ``_count`` and ``_sum`` series, a dead process's observations kept).

    prometheus-client's Histogram takes one value a call, and a report brings thousands. So the
    count of each bucket and the sum are kept in gauges of mode "sum" (which the multiprocess
    files add up over every process, the ended ones too, as they do a Histogram's): a write a
    bucket a batch, not one a value; :func:`serve` and :class:`Pusher` show them as the
    histogram."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        from prometheus_client import Gauge

        bounds = [float(b) for b in buckets]
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not bounds or any(a >= b for a, b in itertools.pairwise(bounds)):
            msg = f"{name}: buckets must be increasing, got {list(buckets)}"
            raise ValueError(msg)
        self.bounds = np.asarray(bounds, dtype=np.float64)
        counts = Gauge(name + _COUNTS, documentation, ["le"], multiprocess_mode="sum")
        # every bucket written (zero) now, as a Histogram's are: served before a first batch
        self._counts = [counts.labels(le=_le(b)) for b in (*bounds, math.inf)]
        self._sum = Gauge(name + _SUM, documentation, multiprocess_mode="sum")

    def observe_many(self, values: NDArray[np.float64]) -> None:
        """Many observations at once (what ``Histogram.observe`` does for one, per bucket)."""
        total = len(values)
        if not total:
            return
        # a value on a bound is in that bound's bucket, as ``observe`` has it; NaN in +Inf's
        if total <= _FEW:  # each value's bucket among the bounds
            index = np.searchsorted(self.bounds, values, side="left")
            counts = np.bincount(index, minlength=len(self._counts)).tolist()
        else:  # how many are at most each bound, among the sorted values: a few times faster
            at_most = np.searchsorted(np.sort(values), self.bounds, side="right").tolist()
            counts = [b - a for a, b in zip([0, *at_most], [*at_most, total], strict=True)]
        for bucket, n in zip(self._counts, counts, strict=True):
            if n:
                bucket.inc(n)
        self._sum.inc(float(values.sum()))


class _FilesCollector:
    """Every process's metrics in ``directory`` (prometheus-client's MultiProcessCollector),
    each :class:`BatchHistogram` shown as the histogram it is: the same samples, in the same
    order, as that collector shows a Histogram's."""

    def __init__(self, directory: str) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self._files = CollectorRegistry()
        MultiProcessCollector(self._files, path=directory)  # type: ignore[no-untyped-call]

    def collect(self) -> list[Metric]:
        families = list(self._files.collect())
        sums = {m.name[: -len(_SUM)]: m for m in families if m.name.endswith(_SUM)}
        return [
            _histogram(m, sums.get(m.name[: -len(_COUNTS)])) if m.name.endswith(_COUNTS) else m
            for m in families
            if not m.name.endswith(_SUM)
        ]


def _histogram(counts: Metric, total: Metric | None) -> Metric:
    """A BatchHistogram's gauges (summed over processes) as a histogram family."""
    from prometheus_client.core import HistogramMetricFamily

    name = counts.name[: -len(_COUNTS)]
    family = HistogramMetricFamily(name, counts.documentation)
    by_bound = sorted((float(s.labels["le"]), s.labels["le"], s.value) for s in counts.samples)
    family.add_sample(name + "_sum", {}, sum(s.value for s in total.samples) if total else 0.0)
    acc = 0.0
    for _, le, n in by_bound:
        acc += n
        family.add_sample(name + "_bucket", {"le": le}, acc)
    family.add_sample(name + "_count", {}, acc)
    return family


def serve(port: int, directory: str, flag: str = "--metrics-port") -> Callable[[], None]:
    """One /metrics for every process writing to ``directory``; returns how to stop it."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(_FilesCollector(directory))
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

        self.registry = CollectorRegistry()
        self.registry.register(_FilesCollector(directory))
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
