"""The processes a command supervises, and how a command is stopped.

Every supervising command (`produce`, `sink`, `run`, `watch`) takes SIGINT/SIGTERM through
:class:`Signals`: the first asks it to stop (flush, commit, write what it has), the second ends
everything at once. It supervises either worker processes (:class:`Supervisor`: `produce` and
`sink`) or child commands (:class:`Command`: `run` starts `sink` and `produce`, and `watch`);
both report typed records (``bankstream.progress``), printed by one ``Printer``.

Worker processes of one command: started, told to stop, watched, restarted when they die.

Each worker runs ``target(spec, stop, reports, *shared)`` in a process of its own
(multiprocessing, spawn; ``shared``: more lock-free values of the command's, e.g. a start
time). Nothing it shares with the others can be left locked by a worker killed with kill -9:

- ``stop`` is a :class:`StopFlag`, one byte of shared memory read and written without a lock
  (a multiprocessing Event takes a lock on every ``is_set()``; a worker killed holding it would
  block every other one). It also reads as set once the supervising process is gone, so no
  worker outlives its command.
- ``reports`` is the worker's own pipe (:class:`Reports`): a worker killed while writing leaves
  a torn message in its own pipe only, never a shared queue's lock held.

A worker that dies without its last report (a crash, kill -9, the out-of-memory killer) is
restarted as Kafka Connect restarts a failed task: after a backoff that grows with the worker's
recent restarts, at most ``RestartPolicy.most`` restarts in any ``window`` seconds for the whole
command; past that the supervisor gives up, and the command fails with one line. The restarted
process gets the spec ``respawn`` makes of the old one (e.g. without a test's fault).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # (imported where a Command uses them: a worker process unpickles this
    # module's StopFlag and Reports, and needs neither)
    from bankstream import progress

Spec = TypeVar("Spec")
Record = dict[str, Any]
log = logging.getLogger(__name__)


class Signals:
    """SIGINT and SIGTERM while a command supervises: the first calls ``first(name)`` (ask
    everything to stop and finish what it has), the second calls ``second(signum)`` (end
    everything at once); without ``second``, the second signal raises KeyboardInterrupt out of
    whatever waits. The previous handlers come back when the block ends."""

    def __init__(
        self, first: Callable[[str], None], second: Callable[[int], None] | None = None
    ) -> None:
        self.first = first
        self.second = second
        self.count = 0
        self.name: str | None = None  # the first signal's name
        self.forced: int | None = None  # the second signal's number
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        signals = (signal.SIGINT, signal.SIGTERM)
        self._previous = {s: signal.signal(s, self._handle) for s in signals}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            self.name = signal.Signals(signum).name
            self.first(self.name)
        elif self.forced is None:
            self.forced = signum
            if self.second is None:
                raise KeyboardInterrupt
            self.second(signum)


class StopFlag:
    """Set once by the supervisor, read by every worker; no lock (see the module's docstring).
    A worker also sees it set when the process that started it has gone (its parent changed)."""

    def __init__(self, context: Any) -> None:
        self._value = context.RawValue("b", 0)
        self._parent = os.getpid()  # the supervising process

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        if self._value.value:
            return True
        # in a worker: its supervisor gone (in the supervisor itself, the flag alone counts)
        return os.getpid() != self._parent and os.getppid() != self._parent


class Reports:
    """A worker's end of its pipe to the supervisor (``put`` a record, a dict of plain values)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def put(self, record: Record) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):  # the supervisor is gone: stopping
            self._connection.send(record)


@dataclass(frozen=True)
class RestartPolicy:
    """How dead workers are restarted. ``most`` 0: never (a dead worker fails the command)."""

    most: int = 5  # restarts in any ``window`` seconds, for all workers together
    window: float = 60.0
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)  # before a slot's 1st, 2nd, ... restart
    forget_after: float = 60.0  # a worker up this long starts its backoff again from the first


@dataclass
class Event:
    """Something the supervisor saw: a worker's record, or one of its own.

    ``kind``: ``report`` (``record`` is the worker's), ``died`` (``message`` says how; the worker
    will be restarted), ``restarted``, ``failed`` (a dead worker not restarted: the policy's
    limit, or restarts off)."""

    kind: str
    worker: int
    record: Record = field(default_factory=dict)
    message: str = ""


@dataclass
class _Slot(Generic[Spec]):
    spec: Spec
    process: Any
    connection: Connection
    started: float
    restarts: int = 0  # in a row (reset after forget_after seconds up)
    done: bool = False  # its last report arrived, or it failed for good
    restart_at: float | None = None  # dead, to be restarted then
    closed: bool = False  # its pipe is at its end (the process exited, or is exiting)


class Supervisor(Generic[Spec]):
    """Starts ``target(spec, stop, reports, *shared)`` once per spec and watches them
    (``events()``)."""

    def __init__(
        self,
        target: Callable[..., None],
        specs: Sequence[Spec],
        name: str,
        policy: RestartPolicy | None = None,
        respawn: Callable[[Spec], Spec] = lambda spec: spec,
        last_kinds: tuple[str, ...] = ("final",),
        on_dead: Callable[[int], None] | None = None,
        shared: Callable[[Any], tuple[Any, ...]] = lambda context: (),
    ) -> None:
        self.target = target
        self.name = name  # as a person reads it: "sink process"
        self.policy = policy or RestartPolicy(most=0)
        self.respawn = respawn
        self.last_kinds = last_kinds  # records after which a worker's exit is its end
        self.on_dead = on_dead  # called with a dead worker's pid (e.g. its metrics files)
        self.context = multiprocessing.get_context("spawn")
        self.stop_flag = StopFlag(self.context)
        self.shared = shared(self.context)  # made in this context, handed to every worker
        self.slots: list[_Slot[Spec]] = []
        self.restarts = 0
        self._recent: deque[float] = deque()  # when the last restarts happened
        self._specs = list(specs)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for spec in self._specs:
            self.slots.append(self._spawn(spec))

    def _spawn(self, spec: Spec) -> _Slot[Spec]:
        mine, theirs = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=self.target,
            args=(spec, self.stop_flag, Reports(theirs), *self.shared),
            daemon=True,
        )
        process.start()
        theirs.close()  # the child holds its own copy: EOF here once it is gone
        return _Slot(spec, process, mine, time.monotonic())

    def stop(self) -> None:
        """Ask every worker to stop (each finishes what it has in hand and reports); a dead one
        waiting for its restart is not restarted."""
        self.stop_flag.set()
        for slot in self.slots:
            if slot.restart_at is not None:
                slot.restart_at = None
                slot.done = True

    @property
    def stopping(self) -> bool:
        return self.stop_flag.is_set()

    def running(self) -> bool:
        """True until every worker has ended (its last report, or failed for good)."""
        return not all(slot.done for slot in self.slots)

    def end(self, timeout: float) -> None:
        """Stop, wait up to ``timeout`` seconds for the workers to exit, then kill the rest."""
        self.stop()
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """SIGKILL every worker still alive (a second Ctrl-C)."""
        for slot in self.slots:
            if slot.process.is_alive():
                slot.process.kill()
        for slot in self.slots:
            slot.process.join(5)
            with contextlib.suppress(OSError):
                slot.connection.close()

    # ------------------------------------------------------------------ watching

    def events(self, timeout: float) -> list[Event]:
        """What happened within ``timeout`` seconds: records that arrived, workers that died,
        restarted or failed for good."""
        out: list[Event] = []
        now = time.monotonic()
        for i, slot in enumerate(self.slots):
            if slot.restart_at is not None and now >= slot.restart_at and not self.stopping:
                out.append(self._restart(i))
        readable = [s.connection for s in self.slots if not s.done and not s.closed]
        if readable:
            ready = wait(readable, timeout)
        else:
            time.sleep(timeout)
            ready = []
        for i, slot in enumerate(self.slots):
            if slot.connection in ready:
                out += self._read(i, slot)
        for i, slot in enumerate(self.slots):
            if not slot.done and slot.restart_at is None and not slot.process.is_alive():
                out += self._read(i, slot)  # its last words, if it had time to say them
                if not slot.done:
                    out += self._dead(i, slot)
        return out

    def _read(self, i: int, slot: _Slot[Spec]) -> list[Event]:
        """The records waiting in a worker's pipe (until its last one, or the pipe's end)."""
        out = []
        while not slot.done and not slot.closed:
            try:
                if not slot.connection.poll():
                    break
                record = slot.connection.recv()
            except Exception:  # its end (EOFError), or a message torn by a kill: nothing more
                slot.closed = True
                break
            if isinstance(record, dict):
                out.append(Event("report", i, record))
                if record.get("kind") in self.last_kinds:
                    slot.done = True
        return out

    def _dead(self, i: int, slot: _Slot[Spec]) -> list[Event]:
        slot.process.join(1)
        code = slot.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        message = f"{self.name} {i} died ({how})"
        if self.on_dead is not None and slot.process.pid is not None:
            self.on_dead(slot.process.pid)
        with contextlib.suppress(OSError):
            slot.connection.close()
        if self.stopping:
            slot.done = True
            return [Event("failed", i, message=message)]
        now = time.monotonic()
        while self._recent and now - self._recent[0] > self.policy.window:
            self._recent.popleft()
        if len(self._recent) >= self.policy.most:
            slot.done = True
            if self.policy.most == 0:
                return [Event("failed", i, message=message)]
            why = (
                f"{message}; {self.policy.most} restarts within {self.policy.window:g} s "
                "already: giving up"
            )
            return [Event("failed", i, message=why)]
        if now - slot.started > self.policy.forget_after:
            slot.restarts = 0
        backoff = self.policy.backoff[min(slot.restarts, len(self.policy.backoff) - 1)]
        slot.restart_at = now + backoff
        self._recent.append(now)
        return [Event("died", i, message=f"{message}; restarting it in {backoff:g} s")]

    def _restart(self, i: int) -> Event:
        old = self.slots[i]
        fresh = self._spawn(self.respawn(old.spec))
        fresh.restarts = old.restarts + 1
        self.slots[i] = fresh
        self.restarts += 1
        return Event("restarted", i, message=f"{self.name} {i} restarted")


class Command:
    """A `bankstream` command run as a child in a session of its own (``--json``): its progress
    records arrive on ``lines`` as (when, record), read through ``bankstream.progress.read``
    (a line that is not one of ``source``'s records is logged, not taken); its stderr goes to
    ``log_file``. ``others``: processes it watches rather than runs, sampled with it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        others: Sequence[int] = (),
        source: progress.Source | None = None,
    ) -> None:
        self.name = name
        self.source: progress.Source = source or ("producer" if name == "producer" else "sink")
        self.log_file = log_file
        self.lines: queue.Queue[tuple[float, progress.AnyRecord]] = queue.Queue()
        self._stderr = log_file.open("w")
        self.process = subprocess.Popen(  # noqa: S603 (our own command, no shell)
            [sys.executable, "-m", "bankstream", *argv],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self.last_line = time.time()  # when it last wrote a record
        self.refused: list[str] = []  # lines that were not records of its protocol
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        import psutil

        self._ps = psutil.Process(self.process.pid)
        self._others: list[psutil.Process] = []
        for pid in others:
            with contextlib.suppress(psutil.Error):
                self._others.append(psutil.Process(pid))
        self._before = 0.0  # their CPU time before this run (not the run's)
        for other in self._others:
            with contextlib.suppress(psutil.Error):
                times = other.cpu_times()
                self._before += times.user + times.system
        self.cpu_seconds = 0.0
        self.peak_rss = 0

    def _read(self) -> None:
        from bankstream import progress

        stream: IO[str] | None = self.process.stdout
        assert stream is not None
        for line in stream:
            try:
                data = json.loads(line)
            except ValueError:
                log.info("%s: %s", self.name, line.rstrip())
                continue
            try:
                record = progress.read(self.source, data)
            except progress.BadRecord as exc:
                log.warning("%s", exc)
                self.refused.append(str(exc))
                continue
            self.last_line = time.time()
            self.lines.put((time.time(), record))

    def sample(self) -> tuple[float, int]:
        """(CPU seconds so far, resident memory now) of the command and its processes."""
        import psutil

        cpu, rss = 0.0, 0
        try:
            family = [self._ps, *self._ps.children(recursive=True), *self._others]
        except psutil.Error:
            return self.cpu_seconds, 0
        for p in family:
            try:
                times = p.cpu_times()
                cpu += times.user + times.system
                rss += p.memory_info().rss
            except psutil.Error:
                continue
        cpu -= self._before
        # a process that ended takes its CPU time with it: keep the largest total seen
        self.cpu_seconds = max(self.cpu_seconds, cpu)
        self.peak_rss = max(self.peak_rss, rss)
        return self.cpu_seconds, rss

    def workers(self) -> list[int]:
        """The pids of the command's worker processes (multiprocessing's spawned children)."""
        import psutil

        try:
            children = self._ps.children(recursive=True)
            return sorted(p.pid for p in children if "spawn_main" in " ".join(p.cmdline()))
        except psutil.Error:
            return []

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def done(self) -> bool:
        return self.process.poll() is not None

    def finish(self, timeout: float) -> int:
        """Wait for the exit (then kill), and for the last lines."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            code = self.process.wait()
        self._reader.join(5)
        self._stderr.close()
        return code

    def last_error(self) -> str:
        """The last line the command wrote on stderr (its one-line error, if it failed)."""
        try:
            lines = [x for x in self.log_file.read_text().splitlines() if x.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""
