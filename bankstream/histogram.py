"""A latency histogram of bounded size that merges: processes and hosts each keep one, and the
run's percentiles come from their sum.

Buckets are logarithmic, 40 a decade (each about 6% wide, so a percentile is within 6% of the
truth), from 10 microseconds to about 28 hours, plus one below and one above. Memory is fixed
(363 counts) whatever the number of observations; merging adds counts, so the result does not
depend on how observations were split between processes (HdrHistogram's idea, simpler).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

LOW = 1e-5  # seconds: the first bucket's lower bound
PER_DECADE = 40
DECADES = 10
BUCKETS = PER_DECADE * DECADES  # plus one below LOW and one above the last bound
# upper bound of bucket i (1 .. BUCKETS); bucket 0 holds what is below LOW
BOUNDS = LOW * 10.0 ** (np.arange(1, BUCKETS + 1) / PER_DECADE)


class LogHistogram:
    """Counts of observations (seconds) by logarithmic bucket, with their sum, min and max."""

    def __init__(self) -> None:
        self.counts = np.zeros(BUCKETS + 2, dtype=np.int64)
        self.total = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: ArrayLike) -> None:
        """Observe many values at once."""
        array = np.asarray(values, dtype=np.float64).ravel()
        if not len(array):
            return
        index = np.searchsorted(BOUNDS, array, side="left") + 1
        index[array < LOW] = 0
        self.counts += np.bincount(index, minlength=BUCKETS + 2)[: BUCKETS + 2]
        self.total += len(array)
        self.sum += float(array.sum())
        self.min = min(self.min, float(array.min()))
        self.max = max(self.max, float(array.max()))

    def merge(self, other: LogHistogram) -> LogHistogram:
        self.counts += other.counts
        self.total += other.total
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def percentile(self, q: float) -> float | None:
        """The value below which a share ``q`` (0..1) of observations fall (the upper bound of
        its bucket, never above the maximum seen); None without observations."""
        if not self.total:
            return None
        rank = max(1, math.ceil(q * self.total))
        i = int(np.searchsorted(np.cumsum(self.counts), rank, side="left"))
        if i == 0:
            return min(LOW, self.max)
        bound = float(BOUNDS[i - 1]) if i <= BUCKETS else math.inf
        return min(bound, self.max)

    @property
    def mean(self) -> float | None:
        return self.sum / self.total if self.total else None

    def summary(self) -> dict[str, float | int | None]:
        """Count, mean, p50, p90, p99, p99.9 and max, in seconds."""
        return {
            "count": self.total,
            "mean": self.mean,
            "p50": self.percentile(0.5),
            "p90": self.percentile(0.9),
            "p99": self.percentile(0.99),
            "p999": self.percentile(0.999),
            "max": self.max if self.total else None,
        }

    def rows(self) -> list[tuple[float, float, int]]:
        """The non-empty buckets in order: (lower bound, upper bound, count), seconds; the first
        bucket's lower bound is 0 and the last one's upper bound is infinity."""
        out = []
        for i in np.flatnonzero(self.counts).tolist():
            lower = 0.0 if i == 0 else LOW if i == 1 else float(BOUNDS[i - 2])
            upper = LOW if i == 0 else float(BOUNDS[i - 1]) if i <= BUCKETS else math.inf
            out.append((lower, upper, int(self.counts[i])))
        return out

    def to_dict(self) -> dict[str, Any]:
        """A compact form (non-empty buckets only) for JSON files and MongoDB."""
        nonzero = np.flatnonzero(self.counts)
        return {
            "buckets": {str(int(i)): int(self.counts[i]) for i in nonzero},
            "count": self.total,
            "sum": self.sum,
            "min": self.min if self.total else None,
            "max": self.max if self.total else None,
            "scheme": f"log{PER_DECADE}/decade from {LOW:g} s",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogHistogram:
        out = cls()
        for index, count in data.get("buckets", {}).items():
            out.counts[int(index)] += int(count)
        out.total = int(data.get("count", 0))
        out.sum = float(data.get("sum", 0.0))
        out.min = data["min"] if data.get("min") is not None else math.inf
        out.max = data["max"] if data.get("max") is not None else -math.inf
        return out

    @classmethod
    def merged(cls, parts: Iterable[LogHistogram]) -> LogHistogram:
        out = cls()
        for part in parts:
            out.merge(part)
        return out
