"""Open-model pacing: how many events by wall time t, and when each event is meant to be sent.

Pure functions of the load (like locust's ``shape.py``): a schedule is a list of stages, each
a constant rate (``step``) or a straight line from the previous stage's rate (``linear``, from 0
for the first). Event ``i`` (0-based) of a run is meant to go out when the schedule has called for
``i`` events: ``send_time(i) = N⁻¹(i)``, where ``N(t)`` is the integral of the rate. A producer
that falls behind sends late and says by how much; it never moves the schedule (so a stall shows
in the latencies instead of hiding in a slower schedule: no coordinated omission).

``rate: max`` has no schedule: every event is meant to go out at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scenarios.model import Load


@dataclass(frozen=True)
class Stage:
    start: float  # seconds from the start of the run
    duration: float
    rate_from: float  # events per second at the start of the stage
    rate_to: float  # ... and at its end (the same for a step)
    before: float  # events the schedule called for before the stage

    @property
    def events(self) -> float:
        return (self.rate_from + self.rate_to) / 2 * self.duration


@dataclass(frozen=True)
class Schedule:
    """The rate over time of one run, or of one producer's share of it (``scaled``)."""

    stages: tuple[Stage, ...]  # empty: as fast as possible
    limit: int | None = None  # the run ends after this many events (rate with events)
    length: float | None = None  # as fast as possible for this many seconds

    @classmethod
    def of_load(cls, load: Load) -> Schedule:
        if load.rate == "max":
            return cls((), load.events, load.duration)
        if load.stages:
            spec = [(s.duration, s.rate, s.ramp) for s in load.stages]
            limit = None
        else:
            assert isinstance(load.rate, float)
            duration = load.duration if load.duration is not None else math.inf
            spec = [(duration, load.rate, "step")]
            limit = load.events
        stages: list[Stage] = []
        start = before = previous = 0.0
        for duration, rate, ramp in spec:
            rate_from = previous if ramp == "linear" else rate
            stage = Stage(start, float(duration), rate_from, rate, before)
            stages.append(stage)
            start += stage.duration
            before += stage.events if math.isfinite(stage.duration) else 0.0
            previous = rate
        return cls(tuple(stages), limit)

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> Schedule:
        """The schedule a run manifest records (its ``schedule`` section: the stages' start,
        duration and rates, the events, the duration of a run as fast as possible)."""
        stages: list[Stage] = []
        before = 0.0
        for s in record["stages"]:
            stage = Stage(
                float(s["start"]), float(s["duration"]), s["rate_from"], s["rate_to"], before
            )
            stages.append(stage)
            before += stage.events if math.isfinite(stage.duration) else 0.0
        length = None if stages else record.get("duration_seconds")
        return cls(tuple(stages), record.get("events"), length)

    def scaled(self, share: float) -> Schedule:
        """The schedule of a producer that sends ``share`` of the run's events."""
        return Schedule(
            tuple(
                Stage(s.start, s.duration, s.rate_from * share, s.rate_to * share, s.before * share)
                for s in self.stages
            ),
            None if self.limit is None else int(round(self.limit * share)),
            self.length,
        )

    @property
    def paced(self) -> bool:
        return bool(self.stages)

    @property
    def duration(self) -> float | None:
        """Seconds the run lasts (None: until its events are sent)."""
        if not self.stages:
            return self.length
        if self.limit is not None:
            return self.send_time(self.limit - 1) if self.limit > 0 else 0.0
        end = self.stages[-1].start + self.stages[-1].duration
        return end if math.isfinite(end) else None

    @property
    def total(self) -> int | None:
        """How many events the run sends (None: as many as fit in its time)."""
        if self.limit is not None:
            return self.limit
        if not self.stages or not math.isfinite(self.stages[-1].duration):
            return None
        last = self.stages[-1]
        # events 0 .. n-1 are called for at times N⁻¹(i) < the end
        return max(0, math.ceil(last.before + last.events - 1e-9))

    @property
    def peak_rate(self) -> float:
        return max((max(s.rate_from, s.rate_to) for s in self.stages), default=math.inf)

    def rate_at(self, t: float) -> float:
        """The target rate at ``t`` seconds (0 before the start and after the end)."""
        for s in self.stages:
            if s.start <= t < s.start + s.duration:
                return s.rate_from + (s.rate_to - s.rate_from) * (t - s.start) / s.duration
        return 0.0

    def events_by(self, t: float) -> float:
        """Events the schedule has called for by ``t`` seconds: N(t)."""
        for s in self.stages:
            if t < s.start + s.duration:
                tau = max(0.0, t - s.start)
                slope = (s.rate_to - s.rate_from) / s.duration if math.isfinite(s.duration) else 0
                return s.before + s.rate_from * tau + slope * tau * tau / 2
        if not self.stages:
            return math.inf
        last = self.stages[-1]
        return last.before + last.events

    def send_time(self, i: int) -> float:
        return float(self.send_times(i, 1)[0])

    def send_times(self, first: int, count: int) -> NDArray[np.float64]:
        """When events ``first .. first + count - 1`` are meant to go out, seconds from the
        start: N⁻¹(i). Events past the end of the schedule get its end."""
        n = np.arange(first, first + count, dtype=np.float64)
        if not self.stages:
            return np.zeros(count)
        before = np.array([s.before for s in self.stages])
        which = np.maximum(np.searchsorted(before, n, side="right") - 1, 0)
        start = np.array([s.start for s in self.stages])[which]
        duration = np.array([s.duration for s in self.stages])[which]
        r0 = np.array([s.rate_from for s in self.stages])[which]
        r1 = np.array([s.rate_to for s in self.stages])[which]
        k = n - before[which]
        with np.errstate(divide="ignore", invalid="ignore"):
            half_slope = np.where(np.isfinite(duration), (r1 - r0) / (2 * duration), 0.0)
            # tau solves half_slope tau^2 + r0 tau = k; the form without cancellation, which
            # also holds for a flat stage (half_slope 0) and a ramp down
            root = np.sqrt(np.maximum(r0 * r0 + 4 * half_slope * k, 0.0))
            tau = np.where(k > 0, 2 * k / (r0 + root), 0.0)
        tau = np.minimum(np.nan_to_num(tau, nan=0.0, posinf=0.0), duration)
        out: NDArray[np.float64] = start + tau
        return out


def parse_stages(text: str) -> list[dict[str, object]]:
    """``--stages 2m:20000:linear,5m:20000,2m:5000:linear`` -> the scenario's ``load.stages``
    items (duration, rate and ramp, validated by the scenario model)."""
    stages: list[dict[str, object]] = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) not in (2, 3) or not all(fields):
            msg = (
                f"--stages: {part.strip()!r} is not DURATION:RATE[:linear] "
                "(e.g. 2m:20000:linear,5m:20000)"
            )
            raise ValueError(msg)
        try:
            rate = float(fields[1])
        except ValueError:
            msg = f"--stages: the rate in {part.strip()!r} is not a number of events per second"
            raise ValueError(msg) from None
        stage: dict[str, object] = {"duration": fields[0], "rate": rate}
        if len(fields) == 3:
            stage["ramp"] = fields[2]
        stages.append(stage)
    return stages
