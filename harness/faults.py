"""Faults a run schedules (``bankstream run --fault SPEC``): what they are, when they happen, and
how long the pipeline took to recover from each. Pure: the injection is ``harness.inject``.

A spec is ``KIND@AT[:LENGTH]`` or ``exec@AT:COMMAND``, times from the producer's start:

- ``kill-sink@20s``: one sink process killed with SIGKILL (the sink restarts it);
- ``pause-broker@30s:10s``: the Kafka broker stopped (SIGSTOP) for 10 s, then continued;
- ``restart-broker@30s``: the broker stopped (SIGTERM) and started again;
- ``kill-broker@30s[:20s]``: one broker of a three-broker stack killed with SIGKILL (started
  again after 20 s when a length is given; else left down);
- ``pause-store@30s:20s``: the MongoDB-wire server stopped (SIGSTOP) for 20 s;
- ``exec@30s:COMMAND``: any command (a shell line), for a stack the harness does not own, e.g.
  ``exec@30s:docker compose pause mongo``; its window lasts while it runs.

A fault's window runs from its start to its end (the broker answering again after a restart);
its recovery time from the end of the window until the sink is back within a second of the
producer (it has written everything the producer had acknowledged a second before), for good.
"""

from __future__ import annotations

import bisect
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bankstream.durations import format_duration, parse_duration

KINDS = {
    "kill-sink": "one sink process killed (SIGKILL)",
    "pause-broker": "the Kafka broker paused (SIGSTOP, then SIGCONT)",
    "restart-broker": "the Kafka broker stopped (SIGTERM) and started again",
    "kill-broker": "one broker of three killed (SIGKILL), started again after LENGTH if given",
    "pause-store": "the MongoDB-wire server paused (SIGSTOP, then SIGCONT)",
    "exec": "a command of yours (a shell line), e.g. docker compose pause mongo",
}
NEEDS_LENGTH = {"pause-broker", "pause-store"}
NO_LENGTH = {"kill-sink", "restart-broker"}
LOCAL_STACK = {"pause-broker", "restart-broker", "kill-broker", "pause-store"}
SPEC_RE = re.compile(r"^(?P<kind>[a-z-]+)@(?P<at>[^:]+)(?::(?P<rest>.*))?$", re.DOTALL)
RECOVERED_LAG = 1.0  # seconds of consumer lag below which the sink has caught up


class FaultError(ValueError):
    """A fault spec that cannot be scheduled."""


@dataclass(frozen=True)
class Fault:
    """One scheduled fault."""

    kind: str
    at: float  # seconds after the producer's start
    length: float | None = None  # a pause's length; kill-broker: when it starts again
    command: str | None = None  # exec
    text: str = ""  # as the user wrote it

    @property
    def local(self) -> bool:
        """It acts on the local stack's own processes."""
        return self.kind in LOCAL_STACK

    def describe(self) -> str:
        what = KINDS[self.kind].split(",")[0]
        if self.kind == "exec":
            what = f"`{self.command}`"
        length = f" for {format_duration(self.length)}" if self.length else ""
        return f"{self.kind} at {format_duration(self.at)}{length}: {what}"


def parse_fault(text: str) -> Fault:
    """``pause-broker@30s:10s`` -> Fault; FaultError says what is wrong and what is expected."""
    match = SPEC_RE.match(text.strip())
    if not match:
        msg = f"{text!r} is not a fault: write KIND@AT[:LENGTH], e.g. pause-broker@30s:10s"
        raise FaultError(msg)
    kind, rest = match["kind"], match["rest"]
    if kind not in KINDS:
        import difflib

        close = difflib.get_close_matches(kind, list(KINDS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        msg = f"unknown fault {kind!r}: {hint}(one of {', '.join(KINDS)})"
        raise FaultError(msg)
    try:
        at = parse_duration(match["at"])
    except ValueError as exc:
        msg = f"{text}: the time after @ {exc.args[0].removeprefix('expected ')}"
        raise FaultError(msg) from None
    if kind == "exec":
        if not rest or not rest.strip():
            msg = f"{text}: exec needs a command, e.g. exec@30s:docker compose pause mongo"
            raise FaultError(msg)
        return Fault(kind, at, None, rest.strip(), text)
    length = None
    if rest is not None:
        if kind in NO_LENGTH:
            msg = f"{text}: {kind} takes no length (write {kind}@{match['at']})"
            raise FaultError(msg)
        try:
            length = parse_duration(rest)
        except ValueError as exc:
            msg = f"{text}: the length after : {exc.args[0].removeprefix('expected ')}"
            raise FaultError(msg) from None
        if length <= 0:
            msg = f"{text}: the length must be longer than 0"
            raise FaultError(msg)
    elif kind in NEEDS_LENGTH:
        msg = f"{text}: {kind} needs a length, e.g. {kind}@{match['at']}:10s"
        raise FaultError(msg)
    return Fault(kind, at, length, None, text)


def behind(timeline: Sequence[Sequence[Any]], fields: Sequence[str]) -> list[float]:
    """Each row's delay of the sink behind the producer, in seconds, from the run's own counts:
    ``t`` less the time by which the producer had acknowledged as many events as the sink has
    written (0 when it wrote them all). Independent of what the sink reports of itself: a sink
    process that is dead reports no lag, yet falls behind here."""
    t_i, acked_i, sunk_i = (fields.index(k) for k in ("t", "acked", "sunk"))
    times = [float(r[t_i]) for r in timeline]
    acked = [int(r[acked_i]) for r in timeline]
    out = []
    for i, row in enumerate(timeline):
        sunk = int(row[sunk_i])
        if sunk >= acked[i]:
            out.append(0.0)
            continue
        # the last row whose acknowledged count the sink has reached (acked never decreases)
        j = bisect.bisect_right(acked, sunk, 0, i + 1) - 1
        out.append(times[i] - times[j] if j >= 0 else times[i])
    return out


def recovery(
    timeline: Sequence[Sequence[Any]],
    fields: Sequence[str],
    started: float,
    ended: float,
    settle: float = 5.0,
) -> tuple[float | None, float]:
    """(seconds from ``ended`` until recovered, or None; the sink's largest delay from
    ``started`` until then): recovered once, for ``settle`` seconds (or until the run's last
    row), the sink's consumer lag has stayed under ``RECOVERED_LAG`` (a backlog the producer
    sent at once after a pause is acknowledged within a second, yet not written) and its delay
    by the run's counts (:func:`behind`: a dead sink process reports no lag) is back to what it
    was before the fault, within ``RECOVERED_LAG`` (the counts are sampled once a second, each
    side by itself: a sink keeping up reads up to a second or two behind by them), it writes
    while there is something to write, and Kafka sees no partition stalled (messages to read,
    no commit for seconds: the partitions of a dead process, while the live ones keep up).

    ``timeline``: the run's rows, ``fields`` names their columns (t, acked, sunk, lag_seconds)."""
    t_i, lag_i = fields.index("t"), fields.index("lag_seconds")
    acked_i, sunk_i = fields.index("acked"), fields.index("sunk")
    # partitions Kafka saw unread and uncommitted for seconds (a dead process's, while its
    # successor waits for them): not recovered, whatever the live processes say
    stalled_i = fields.index("stalled_partitions") if "stalled_partitions" in fields else None
    delays = behind(timeline, fields)
    before = [d for row, d in zip(timeline, delays, strict=True) if float(row[t_i]) < started]
    usual = statistics.median(before) if before else 0.0
    tolerance = max(2 * RECOVERED_LAG, usual + RECOVERED_LAG)
    worst = 0.0
    since: float | None = None
    previous = None
    for row, counted in zip(timeline, delays, strict=True):
        # a sink that writes nothing while there is something to write is not keeping up,
        # however small its delay looks yet
        idle = previous is not None and row[sunk_i] <= previous[sunk_i] < row[acked_i]
        previous = row
        t = float(row[t_i])
        if t < started - 0.5:
            continue
        delay = max(counted, float(row[lag_i] or 0.0))
        worst = max(worst, delay)
        if t < ended:
            continue
        stalled = stalled_i is not None and int(row[stalled_i] or 0) > 0
        if stalled or idle or counted > tolerance or float(row[lag_i] or 0.0) >= RECOVERED_LAG:
            since = None
            continue
        if since is None:
            since = t
        if t - since >= settle:
            return max(0.0, since - ended), worst
    if since is not None:  # caught up when the run ended (the sink drained)
        return max(0.0, since - ended), worst
    return None, worst


def outside(windows: Sequence[tuple[float, float]], t: float) -> bool:
    """True when second ``t`` of the run is in none of the ``windows`` (start, end)."""
    return all(not start <= t <= end for start, end in windows)
