"""Faults injected during a run, each at its time in a thread of its own, on the local stack's
own processes (found by their pid files, never by name) or by a command of the user's.

Whatever happens to the run, a paused process is continued, a stopped or killed broker started
again and a command still running ended before the harness goes on (``stop``): a fault never
outlives its run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bankstream.errors import UsageError
from bankstream.settings import Settings
from harness.faults import Fault

log = logging.getLogger(__name__)


def local_process(settings: Settings, name: str) -> Any:
    """The local stack's process of service ``name`` (its pid file), or a UsageError saying the
    service is not the stack's own."""
    from bankstream.stack import lifecycle
    from bankstream.stack.services import all_services

    for service in all_services(settings):
        if service.name == name:
            proc = lifecycle.process_of(service)
            if service.external or proc.pid() is None:
                msg = (
                    f"--fault on {service.title} needs the local stack's own {service.title} "
                    f"(the one at {service.address} is not started by `bankstream stack up`): "
                    "use exec@AT:COMMAND for a server of yours"
                )
                raise UsageError(msg)
            return proc
    msg = f"no local service {name!r}"
    raise UsageError(msg)


def check(faults: Sequence[Fault], settings: Settings) -> None:
    """Before the run: every fault can act on what it names (UsageError otherwise)."""
    from bankstream.stack.lifecycle import brokers

    for fault in faults:
        if fault.kind in ("pause-broker", "restart-broker"):
            local_process(settings, "kafka")
        elif fault.kind == "pause-store":
            local_process(settings, "mongo")
        elif fault.kind == "kill-broker":
            found = brokers(settings)
            if len(found) < 3:
                msg = (
                    f"--fault {fault.text}: kill-broker needs a local stack of three brokers "
                    "(`bankstream stack up --brokers 3`); "
                    f"this one has {len(found)}: use restart-broker or pause-broker"
                )
                raise UsageError(msg)


class Injector:
    """Runs ``faults`` once the run's clock starts (``start``); ``records`` says what happened."""

    def __init__(
        self,
        faults: Sequence[Fault],
        settings: Settings,
        folder: Path,
        say: Callable[[str], None],
    ) -> None:
        self.faults = list(faults)
        self.settings = settings
        self.folder = folder
        # the pids of the sink's processes now (the orchestra knows its sink)
        self.sink_workers: Callable[[], list[int]] = list
        self.say = say
        self.records: list[dict[str, Any]] = [
            {"fault": f.text, "kind": f.kind, "at": f.at, "length": f.length} for f in self.faults
        ]
        self._cancel = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._undo: dict[int, Callable[[], None]] = {}  # what to put right if stopped early
        self._lock = threading.Lock()

    def start(self, started: float) -> None:
        """The producer started at ``started`` (epoch seconds): faults count from there."""
        self._started = started
        for i, fault in enumerate(self.faults):
            thread = threading.Thread(target=self._one, args=(i, fault), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Cancel the faults not begun, end the ones under way (continue, start again)."""
        self._cancel.set()
        for thread in self._threads:
            thread.join(120)
        with self._lock:
            undo = list(self._undo.values())
            self._undo.clear()
        for action in undo:
            with contextlib.suppress(Exception):
                action()

    def _now(self) -> float:
        return time.time() - self._started

    def _one(self, i: int, fault: Fault) -> None:
        record = self.records[i]
        if self._cancel.wait(max(0.0, fault.at - self._now())):
            record["problem"] = "not injected: the run ended first"
            return
        record["started"] = round(self._now(), 3)
        self.say(f"fault: {fault.describe()}")
        try:
            getattr(self, "_" + fault.kind.replace("-", "_"))(i, fault, record)
        except Exception as exc:
            record["problem"] = f"{type(exc).__name__}: {exc}"
            self.say(f"fault {fault.text}: {record['problem']}")
        record["ended"] = round(self._now(), 3)

    def _hold(self, i: int, undo: Callable[[], None]) -> None:
        with self._lock:
            self._undo[i] = undo

    def _release(self, i: int) -> None:
        with self._lock:
            undo = self._undo.pop(i, None)
        if undo is not None:
            undo()

    # ------------------------------------------------------------------ the kinds

    def _kill_sink(self, i: int, fault: Fault, record: dict[str, Any]) -> None:
        pids = self.sink_workers()
        if not pids:
            msg = "no sink process to kill"
            raise RuntimeError(msg)
        os.kill(pids[0], signal.SIGKILL)
        record["pid"] = pids[0]

    def _pid(self, service: str, record: dict[str, Any]) -> int:
        pid: int | None = local_process(self.settings, service).pid()
        if pid is None:
            msg = f"the local {service} is not running"
            raise RuntimeError(msg)
        record["pid"] = pid
        return pid

    def _pause(self, i: int, fault: Fault, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        self._hold(i, lambda: os.kill(pid, signal.SIGCONT))
        try:
            self._cancel.wait(fault.length or 0.0)
        finally:
            self._release(i)

    def _pause_broker(self, i: int, fault: Fault, record: dict[str, Any]) -> None:
        self._pause(i, fault, self._pid("kafka", record))

    def _pause_store(self, i: int, fault: Fault, record: dict[str, Any]) -> None:
        self._pause(i, fault, self._pid("mongo", record))

    def _restart_broker(self, i: int, fault: Fault, record: dict[str, Any]) -> None:
        self._hold(i, self._start_again)  # whatever happens next, it is started again
        local_process(self.settings, "kafka").stop()
        self._release(i)  # started again, and answering

    def _kill_broker(self, i: int, fault: Fault, record: dict[str, Any]) -> None:
        from bankstream.stack.lifecycle import brokers

        victim = brokers(self.settings)[-1]  # not the one clients bootstrap from
        pid = victim.pid()
        if pid is None:
            msg = "the broker to kill is not running"
            raise RuntimeError(msg)
        record["pid"] = pid
        self._hold(i, self._start_again)  # after LENGTH, else when the run ends
        os.kill(pid, signal.SIGKILL)
        if fault.length is None:
            return
        try:
            self._cancel.wait(fault.length)
        finally:
            self._release(i)

    def _start_again(self) -> None:
        """Start what of the local stack is not running, and wait until it answers."""
        from bankstream.stack import lifecycle

        lifecycle.up(self.settings, report=log.info)

    def _exec(self, i: int, fault: Fault, record: dict[str, Any]) -> None:
        """The user's command, in a session of its own: when the run ends first, it is ended
        too (its whole process group)."""
        log_file = self.folder / f"fault-{i + 1}.log"
        with log_file.open("w") as out:
            command = subprocess.Popen(  # noqa: S602 (the user's own command line, as given)
                fault.command or "",
                shell=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            while command.poll() is None:
                if self._cancel.wait(0.2):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(command.pid, signal.SIGKILL)
                    command.wait()
                    record["problem"] = "ended with the run before it finished"
                    return
        record["exit_code"] = command.returncode
        if command.returncode != 0:
            record["problem"] = (
                f"the command exited with {command.returncode} (see {log_file.name})"
            )
