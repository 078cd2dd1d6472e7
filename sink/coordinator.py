"""The sink's processes under one supervisor: started, restarted when they die, their progress
shown and summed, the summary at the end.

A sink process that dies (a crash, kill -9, a consumer that cannot get back into its group) is
restarted after a backoff, as Kafka Connect restarts a failed task; the batch it was writing is
finished through its batch record by whoever gets its partitions (``Writer.recover``), and its
counts so far stay in the totals. Too many restarts in a minute and the sink fails with one
line. The first SIGINT/SIGTERM asks every process to finish its batch and commit; a second one
ends them at once (exit 130 or 143).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from bankstream.errors import EXIT_FAILURE
from bankstream.histogram import LogHistogram
from bankstream.progress import (
    PROGRESS_VERSION,
    Output,
    Printer,
    Restart,
    SinkFigures,
    SinkSummary,
    SinkTick,
)
from bankstream.supervisor import Event, RestartPolicy, Signals, Supervisor
from sink.consumer import SinkSpec, main

COUNTS = ("consumed", "inserted", "duplicates", "dead", "recovered")
RESTARTS = RestartPolicy(most=5, window=60.0)


class Coordinator:
    def __init__(
        self,
        specs: list[SinkSpec],
        output: Output,
        policy: RestartPolicy = RESTARTS,
        on_restart: Callable[[], None] | None = None,
        on_dead: Callable[[int], None] | None = None,
        grace: float = 20.0,
    ) -> None:
        self.specs = specs
        self.output = output
        self.policy = policy
        self.on_restart = on_restart  # e.g. the restarts counter of /metrics
        self.on_dead = on_dead  # a dead process's pid (its live gauges are dropped)
        self.grace = grace  # seconds the processes may take to stop before they are killed
        self.console = Console(stderr=True, highlight=False)
        self.printer = Printer(output)
        self.signalled: str | None = None
        self.forced: int | None = None  # the second signal's number: everything killed at once
        self.problems: list[str] = []
        self.current: dict[int, dict[str, Any]] = {}  # each slot's running process: its progress
        self.finals: dict[int, dict[str, Any]] = {}
        self.past: dict[int, dict[str, float]] = {}  # each slot's earlier processes, summed
        self.errors: dict[int, str] = {}  # the last error a process said before it ended
        self.restarted: list[Restart] = []  # each restart: which slot, when, why
        self.why: dict[int, str] = {}  # a dead process's cause, until its restart
        self.latency = LogHistogram()  # every end-to-end latency, of every process
        self.interval = LogHistogram()  # since the last progress line
        self.first_read: float | None = None
        self.last_written: float | None = None
        self.began = time.monotonic()

    def _say(self, text: str) -> None:
        self.printer.say(text)

    def _on_signal(self, name: str) -> None:
        """The first SIGINT/SIGTERM (a second one: everything at once, KeyboardInterrupt)."""
        self.signalled = name
        self._say(f"{name}: stopping: finishing the batch in hand, committing (again: at once)")

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        supervisor: Supervisor[SinkSpec] = Supervisor(
            main,
            self.specs,
            "sink process",
            self.policy,
            # a restarted process does not repeat a test's fault
            respawn=lambda spec: dataclasses.replace(spec, fault=None),
            on_dead=self.on_dead,
        )
        signals = Signals(self._on_signal).__enter__()
        self.began = time.monotonic()
        try:
            supervisor.start()
            self._say(
                f"sink: {len(self.specs)} processes in group {self.specs[0].group}, "
                f"topic {self.specs[0].topic}"
            )
            last = 0.0
            stop_at: float | None = None
            while supervisor.running():
                if self.signalled and not supervisor.stopping:
                    supervisor.stop()
                if supervisor.stopping and stop_at is None:
                    stop_at = time.monotonic()
                if stop_at is not None and time.monotonic() - stop_at > self.grace:
                    supervisor.kill()  # a process stuck in a call that does not return
                    self.problems.append(
                        f"processes still writing {self.grace:g} s after the stop: killed "
                        "(their batches are read again by the next sink)"
                    )
                    break
                for event in supervisor.events(0.25):
                    self._on(event, supervisor)
                now = time.monotonic()
                if now - last >= 1.0 and self.current:
                    last = now
                    self._show(now - self.began)
            if self.output == "json" and (self.current or self.finals):
                self._show(time.monotonic() - self.began)  # the last interval's figures
        except KeyboardInterrupt:  # a second signal: no more waiting
            supervisor.kill()
            self.problems.append("stopped at once by a second signal: batches in hand not written")
        finally:
            supervisor.end(30)
            signals.__exit__(None, None, None)
            self.forced = signals.forced
        return self._finish(time.monotonic() - self.began, supervisor.restarts)

    def _on(self, event: Event, supervisor: Supervisor[SinkSpec]) -> None:
        worker, record = event.worker, event.record
        if event.kind == "report":
            kind = record.get("kind")
            if kind == "progress":
                self.current[worker] = record
                delta = LogHistogram.from_dict(record["latency_delta"])
                self.interval.merge(delta)
                self.latency.merge(delta)
                self._times(record)
            elif kind == "final":
                self.finals[worker] = record
                self.current.pop(worker, None)
                self._times(record)
            elif kind == "error":
                self.errors[worker] = str(record.get("message", ""))
            return
        said = self.errors.pop(worker, "")
        message = event.message + (f": {said}" if said else "")
        if event.kind == "died":
            self._fold(worker)
            self.why[worker] = said or event.message.split("; restarting")[0]
            self._say(message)
        elif event.kind == "restarted":
            self.restarted.append(
                {
                    "worker": worker,
                    "after_seconds": round(time.monotonic() - self.began, 1),
                    "why": self.why.pop(worker, ""),
                }
            )
            if self.on_restart is not None:
                self.on_restart()
            self._say(message)
        elif event.kind == "failed":
            self._fold(worker)
            if not supervisor.stopping or said:
                self.problems.append(message)
            supervisor.stop()

    def _fold(self, worker: int) -> None:
        """A process ended without its summary: its last counts join its slot's past."""
        last = self.current.pop(worker, None)
        if last is None:
            return
        past = self.past.setdefault(worker, dict.fromkeys((*COUNTS, "paused"), 0.0))
        for key in COUNTS:
            past[key] += float(last.get(key, 0) or 0)
        past["paused"] += float(last.get("paused", 0.0) or 0.0)

    def _times(self, record: dict[str, Any]) -> None:
        first, last = record.get("first_read"), record.get("last_written")
        if first and (self.first_read is None or first < self.first_read):
            self.first_read = first
        if last and (self.last_written is None or last > self.last_written):
            self.last_written = last

    # ------------------------------------------------------------------ figures

    def _slots(self) -> dict[int, dict[str, float]]:
        """Each slot's counts: its earlier processes' and its current (or last) one's."""
        out: dict[int, dict[str, float]] = {}
        for worker in {*self.past, *self.current, *self.finals}:
            now = self.finals.get(worker) or self.current.get(worker) or {}
            past = self.past.get(worker, {})
            out[worker] = {
                key: float(past.get(key, 0.0)) + float(now.get(key, 0) or 0) for key in COUNTS
            }
            paused = now.get("paused_seconds", now.get("paused", 0.0)) or 0.0
            out[worker]["paused"] = float(past.get("paused", 0.0)) + float(paused)
        return out

    def _figures(self) -> SinkFigures:
        slots = self._slots().values()

        def total(key: str) -> int:
            return int(sum(s[key] for s in slots))

        return {
            "consumed": total("consumed"),
            "inserted": total("inserted"),
            "duplicates": total("duplicates"),
            "dead_lettered": total("dead"),
            "recovered_batches": total("recovered"),
        }

    def _show(self, elapsed: float) -> None:
        figures = self._figures()
        running = list(self.current.values())
        lag = sum(r.get("lag", 0) for r in running)
        lag_s = max((r.get("lag_seconds", 0.0) for r in running), default=0.0)
        p99 = self.latency.percentile(0.99)
        line: SinkTick = {
            "record": "tick",
            "v": PROGRESS_VERSION,
            "elapsed": round(elapsed, 1),
            **figures,
            "lag": lag,
            "lag_seconds": round(lag_s, 2),
            "latency_p99": round(p99, 4) if p99 is not None else None,
            "restarts": len(self.restarted),
            # this interval's end-to-end latencies, for percentiles over time (mergeable)
            "latency_histogram": self.interval.to_dict(),
        }
        self.interval = LogHistogram()
        if self.output == "json":
            self.printer.emit(line)
        elif self.output == "live":
            self.console.print(
                f"{elapsed:6.0f} s  {figures['inserted']:,} written, {figures['duplicates']:,} "
                f"already there, {figures['dead_lettered']:,} dead-lettered; lag {lag:,} "
                f"({lag_s:.1f} s)"
                + (f"; end-to-end p99 {p99 * 1000:,.0f} ms" if p99 is not None else "")
                + (f"; {len(self.restarted)} restarted" if self.restarted else "")
            )

    def _finish(self, elapsed: float, restarts: int) -> int:
        figures = self._figures()
        # the write rate: from the first message read to the last write acknowledged (the
        # start-up and the idle wait of --until-idle excluded)
        span = (
            self.last_written - self.first_read
            if self.first_read is not None and self.last_written is not None
            else 0.0
        )
        handled = figures["inserted"] + figures["duplicates"]
        paused = max((s["paused"] for s in self._slots().values()), default=0.0)
        summary: SinkSummary = {
            "record": "summary",
            "v": PROGRESS_VERSION,
            **figures,
            "seconds": round(elapsed, 2),
            "writing_seconds": round(span, 3),
            "events_per_second": round(handled / span) if span > 0 else None,
            "end_to_end_latency": self.latency.summary(),
            "paused_seconds": round(paused, 2),
            "restarts": restarts,
            "restarted": self.restarted,
            "problems": self.problems,
        }
        if self.output == "json":
            self.printer.emit(summary)
        elif self.output == "live":
            p50, p99 = self.latency.percentile(0.5), self.latency.percentile(0.99)
            self.console.print(
                f"sink: {figures['inserted']:,} written, {figures['duplicates']:,} already there, "
                f"{figures['dead_lettered']:,} dead-lettered in {elapsed:.1f} s"
                + (f" ({handled / span:,.0f} events/s writing)" if span > 0 else "")
                + (
                    f"; end-to-end p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms"
                    if p50 is not None and p99 is not None
                    else ""
                )
                + (f"; {restarts} process restarts" if restarts else "")
            )
            for problem in self.problems:
                self.console.print(f"  problem: {problem}")
        if self.forced is not None:
            return 128 + self.forced
        return EXIT_FAILURE if self.problems else 0
