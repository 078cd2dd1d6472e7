"""The process supervisor: workers that die are restarted within the policy's limits, a killed
worker leaves nothing locked for the others, a stop reaches every worker, and none outlives the
process that started it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bankstream.supervisor import Event, Reports, RestartPolicy, StopFlag, Supervisor


@dataclass(frozen=True)
class Spec:
    index: int
    die_after: float | None = None  # seconds, then exit code 3
    report_every: float = 0.01


def worker(spec: Spec, stop: StopFlag, reports: Reports) -> None:
    began = time.monotonic()
    n = 0
    while not stop.is_set():
        n += 1
        reports.put({"kind": "progress", "worker": spec.index, "n": n, "pid": os.getpid()})
        if spec.die_after is not None and time.monotonic() - began > spec.die_after:
            os._exit(3)
        time.sleep(spec.report_every)
    reports.put({"kind": "final", "worker": spec.index, "n": n})


def watch(
    supervisor: Supervisor[Spec], seconds: float, until: Callable[[list[Event]], bool] | None = None
) -> list[Event]:
    """Events for ``seconds``, or until ``until`` holds of those seen (then at most ``seconds``:
    a loaded machine starts a process in seconds, not milliseconds)."""
    seen: list[Event] = []
    deadline = time.monotonic() + seconds
    while supervisor.running() and time.monotonic() < deadline:
        seen += supervisor.events(0.05)
        if until is not None and until(seen):
            break
    return seen


def test_a_dead_worker_is_restarted_and_the_others_go_on():
    fast = RestartPolicy(most=5, backoff=(0.05,))
    specs = [Spec(0, die_after=0.3), Spec(1)]
    supervisor = Supervisor(
        worker, specs, "test worker", fast, respawn=lambda s: replace(s, die_after=None)
    )
    supervisor.start()

    def new_process_reported(seen: list[Event]) -> bool:
        pid = supervisor.slots[0].process.pid
        return any(e.kind == "report" and e.record["pid"] == pid for e in seen) and any(
            e.kind == "restarted" for e in seen
        )

    try:
        seen = watch(supervisor, 30, until=new_process_reported)
        kinds = [(e.kind, e.worker) for e in seen if e.kind != "report"]
        assert ("died", 0) in kinds and ("restarted", 0) in kinds, kinds
        assert "exit code 3" in next(e.message for e in seen if e.kind == "died")
        assert supervisor.restarts == 1
        assert new_process_reported(seen)  # the new process reports
        seen = watch(supervisor, 30, until=lambda s: any(e.worker == 1 for e in s))
        assert any(e.kind == "report" and e.worker == 1 for e in seen)  # the other goes on
    finally:
        supervisor.end(5)
    assert not supervisor.running() or all(not s.process.is_alive() for s in supervisor.slots)


def test_restarts_beyond_the_limit_fail_with_one_message():
    policy = RestartPolicy(most=2, window=60, backoff=(0.01,))
    supervisor = Supervisor(worker, [Spec(0, die_after=0.05)], "test worker", policy)
    supervisor.start()
    try:
        seen = watch(supervisor, 10)
    finally:
        supervisor.end(5)
    events = [e for e in seen if e.kind != "report"]
    assert [e.kind for e in events] == ["died", "restarted", "died", "restarted", "failed"]
    assert "2 restarts within 60 s already: giving up" in events[-1].message
    assert not supervisor.running()


def test_no_restart_policy_fails_at_the_first_death():
    supervisor = Supervisor(worker, [Spec(0, die_after=0.05)], "test worker")
    supervisor.start()
    try:
        seen = watch(supervisor, 10)
    finally:
        supervisor.end(5)
    assert [e.kind for e in seen if e.kind != "report"] == ["failed"]


def test_a_worker_killed_while_reporting_blocks_nobody():
    """kill -9 of workers that report as fast as they can, many times: the others keep
    reporting and every worker still stops when asked (a shared queue's lock or an Event's
    could be left held)."""
    policy = RestartPolicy(most=100, backoff=(0.01,))
    specs = [Spec(i, report_every=0.0) for i in range(3)]
    supervisor = Supervisor(worker, specs, "test worker", policy)
    supervisor.start()
    try:
        watch(supervisor, 0.3)
        for _ in range(5):
            os.kill(supervisor.slots[0].process.pid, signal.SIGKILL)
            time.sleep(0.05)  # killed in the middle of its reports

            def others_report(seen: list[Event]) -> bool:
                restarted = any(e.kind == "restarted" for e in seen)
                return restarted and {1, 2} <= {e.worker for e in seen if e.kind == "report"}

            seen = watch(supervisor, 30, until=others_report)
            assert others_report(seen)
        supervisor.stop()
        seen = watch(supervisor, 10)
    finally:
        supervisor.end(5)
    finals = {e.worker for e in seen if e.kind == "report" and e.record["kind"] == "final"}
    assert {1, 2} <= finals
    assert not supervisor.running()


def test_workers_end_when_their_supervisor_is_gone(tmp_path):
    """A supervising process killed with kill -9: its workers see the stop and end."""
    import subprocess
    import sys

    script = tmp_path / "orphan.py"
    script.write_text(
        "import sys, time\n"
        "from bankstream.supervisor import Supervisor\n"
        "from tests.unit.test_supervisor import Spec, worker\n"
        "if __name__ == '__main__':\n"
        "    s = Supervisor(worker, [Spec(0, report_every=0.05)], 'w')\n"
        "    s.start()\n"
        "    print(s.slots[0].process.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()
        parent.wait(5)
        if parent.stdout is not None:
            parent.stdout.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_a_stop_while_a_restart_waits_ends_it_once():
    policy = RestartPolicy(most=5, backoff=(30.0,))  # the restart would come long after
    supervisor = Supervisor(worker, [Spec(0, die_after=0.05)], "test worker", policy)
    supervisor.start()
    try:
        seen = watch(supervisor, 30, until=lambda s: any(e.kind == "died" for e in s))
        supervisor.stop()
        seen += watch(supervisor, 5)
    finally:
        supervisor.end(5)
    assert [e.kind for e in seen if e.kind != "report"] == ["died"]
    assert not supervisor.running() and supervisor.restarts == 0
