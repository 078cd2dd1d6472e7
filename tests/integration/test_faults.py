"""Faults against the real local stack (`bankstream run --fault`): a sink process killed, the
broker paused (three times in one run), the broker restarted, the store paused, a command of the
user's; after each the store holds every acknowledged event exactly once, the projections are
exact and a recovery time is reported. A killed worker's run followed by a broker pause (the
sequence that left the sink stuck for good), a run whose sink cannot drain, a second Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from pymongo.database import Database

from bankstream.mongo import Document
from bankstream.settings import Settings
from tests.conftest import ROOT, run_cli
from tests.integration.test_run import environment, result_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(
            os.environ.get("BANKSTREAM_KAFKA_BOOTSTRAP") or os.environ.get("BANKSTREAM_MONGO_URI")
        ),
        reason="faults act on the local stack's own processes",
    ),
]


@pytest.fixture
def database(mongo_db: Database[Document]) -> Database[Document]:
    """A fresh database for the test's runs (the runs use --fresh within it)."""
    return mongo_db


def faulted_run(
    database: Database[Document],
    results: Path,
    *faults: str,
    rate: int = 500,
    seconds: int = 30,
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    args = ["run", "retail-day", "--rate", str(rate), "--duration", f"{seconds}s", *extra]
    args += ["--processes", "1", "--fresh", "--json", "--results", str(results)]
    for fault in faults:
        args += ["--fault", fault]
    done = run_cli(*args, env=environment(database.name), timeout=600)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done, result_of(done)[1]


def assert_exact_and_recovered(result: dict[str, Any], faults: int) -> list[dict[str, Any]]:
    v = result["verification"]
    assert v is not None, result["verification_note"]
    assert v["exact"], v["problems"]
    assert v["lost"] == 0 and v["duplicates"] == 0 and v["projections"] == "exact"
    injected = result["figures"]["faults"]["injected"]
    assert len(injected) == faults
    for fault in injected:
        assert fault.get("problem") is None, fault
        assert fault["recovery_seconds"] is not None, fault
        assert 0 <= fault["recovery_seconds"] < 120
    # the thresholds were judged outside the faults' windows, and the report says so
    assert result["figures"]["faults"]["judged_outside"]
    assert any(t["metric"] == "lost" and t["passed"] for t in result["thresholds"])
    return list(injected)


def test_a_killed_sink_process_is_restarted_and_nothing_is_lost(
    database: Database[Document], tmp_path: Path
):
    # two sink processes: the live one keeps writing its partitions while the dead one's wait
    # for its successor (the session timeout, 10 s): a recovery the live one's reports alone
    # would call immediate; Kafka sees those partitions stalled
    extra = ("--sink-processes", "2")
    done, result = faulted_run(database, tmp_path, "kill-sink@10s", extra=extra)
    injected = assert_exact_and_recovered(result, 1)
    assert injected[0]["kind"] == "kill-sink" and injected[0]["pid"] > 0
    assert injected[0]["recovery_seconds"] >= 5
    assert result["figures"]["sink"]["restarts"] == 1
    report = (tmp_path / result["run_id"] / "report.md").read_text()
    assert "## Faults" in report and "`kill-sink@10s`" in report


def test_the_broker_paused_three_times_in_one_run(database: Database[Document], tmp_path: Path):
    pauses = ("pause-broker@8s:12s", "pause-broker@28s:12s", "pause-broker@48s:6s")
    done, result = faulted_run(database, tmp_path, *pauses, seconds=60)
    injected = assert_exact_and_recovered(result, 3)
    assert [round(f["ended"] - f["started"]) for f in injected] == [12, 12, 6]


def test_a_killed_workers_run_then_a_broker_pause(database: Database[Document], tmp_path: Path):
    """The sequence that left the sink stuck for good (2 runs in 2) before it was supervised."""
    _, first = faulted_run(database, tmp_path, "kill-sink@10s")
    assert_exact_and_recovered(first, 1)
    _, second = faulted_run(database, tmp_path, "pause-broker@10s:10s")
    assert_exact_and_recovered(second, 1)


def test_the_broker_restarted(database: Database[Document], tmp_path: Path):
    _, result = faulted_run(database, tmp_path, "restart-broker@10s")
    injected = assert_exact_and_recovered(result, 1)
    assert injected[0]["ended"] > injected[0]["started"] + 1  # down, then answering again


def test_the_store_paused(database: Database[Document], tmp_path: Path):
    _, result = faulted_run(database, tmp_path, "pause-store@10s:15s")
    assert_exact_and_recovered(result, 1)
    assert result["figures"]["sink"]["paused_seconds"] > 0


def test_a_command_of_the_users_pauses_the_store(
    stack: Settings, database: Database[Document], tmp_path: Path
):
    pid = (stack.home / "run" / "mongo.pid").read_text().strip()
    command = f"exec@10s:kill -STOP {pid}; sleep 8; kill -CONT {pid}"
    _, result = faulted_run(database, tmp_path, command)
    injected = assert_exact_and_recovered(result, 1)
    assert injected[0]["exit_code"] == 0 and injected[0]["ended"] - injected[0]["started"] >= 8


def test_a_sink_that_cannot_drain_ends_the_run_with_the_problem_named(
    database: Database[Document], tmp_path: Path
):
    began = time.monotonic()
    args = ["run", "retail-day", "--rate", "300", "--duration", "10s", "--processes", "1"]
    args += ["--fresh", "--json", "--results", str(tmp_path), "--drain-timeout", "15s"]
    args += ["--fault", "pause-store@5s:10m"]
    done = run_cli(*args, env=environment(database.name), timeout=300)
    assert time.monotonic() - began < 200
    assert done.returncode == 1, done.stderr[-2000:]
    summary, result = result_of(done)
    assert any("did not drain within 15 s" in f for f in result["failed"]), result["failed"]
    # the store was continued when the run ended: verification could still run
    assert result["verification"] is not None and result["verification"]["lost"] > 0


def test_a_second_ctrl_c_ends_everything_at_once(database: Database[Document], tmp_path: Path):
    args = [sys.executable, "-m", "bankstream", "run", "retail-day", "--rate", "300"]
    args += ["--duration", "5m", "--processes", "1", "--fresh", "--json"]
    args += ["--results", str(tmp_path), "--fault", "pause-store@8s:5m"]
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **environment(database.name)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        for line in process.stdout:  # until the store is paused and the sink stuck in a write
            if "fault: pause-store" in line or time.monotonic() > deadline:
                break
        time.sleep(3)
        family = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        assert len(family) >= 4  # the sink, the producer and their processes
        process.send_signal(signal.SIGINT)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        began = time.monotonic()
        process.communicate(timeout=30)
        assert time.monotonic() - began < 5 + 2  # the verdict is written after
        assert process.returncode == 130
        time.sleep(0.5)
        assert [pid for pid in family if psutil.pid_exists(pid) and _alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_broker_of_three_killed_loses_nothing(
    stack: Settings, database: Database[Document], tmp_path: Path
):
    """`stack up --brokers 3` on ports of its own (its own home; the session's MongoDB and
    Prometheus), a run on it whose topic has three replicas, one broker killed with SIGKILL and
    started again 15 s later."""
    import json

    from confluent_kafka.admin import AdminClient

    home = tmp_path / "stack"
    home.mkdir()
    (home / "lib").symlink_to(stack.home / "lib")  # the jars the session's stack resolved
    base = _free_ports(6)
    env = {
        **environment(database.name),
        "BANKSTREAM_HOME": str(home),
        "BANKSTREAM_STACK_KAFKA_PORT": str(base),
        "BANKSTREAM_KAFKA_HEAP": "512m",
        "BANKSTREAM_MONGO_URI": stack.mongo_uri,
        "BANKSTREAM_PROMETHEUS_URL": stack.prometheus_url,
    }
    try:
        up = run_cli("stack", "up", "--brokers", "3", env=env, timeout=300)
        assert up.returncode == 0, up.stderr[-3000:] + up.stdout[-3000:]
        status = run_cli("stack", "status", "--json", env=env)
        nodes = [json.loads(line) for line in status.stdout.splitlines()]
        kafka = [n for n in nodes if n["service"].startswith("kafka")]
        assert [n["service"] for n in kafka] == ["kafka", "kafka-2", "kafka-3"]
        assert all(n["answering"] and n["detail"].startswith("3 broker(s)") for n in kafka)
        results = tmp_path / "results"
        args = ["run", "retail-day", "--rate", "300", "--duration", "40s", "--processes", "1"]
        args += ["--fresh", "--no-warm", "--keep-topic", "--json", "--results", str(results)]
        args += ["--fault", "kill-broker@10s:15s"]
        done = run_cli(*args, env=env, timeout=600)
        assert done.returncode in (0, 1), done.stderr[-3000:]
        _, result = result_of(done)
        injected = assert_exact_and_recovered(result, 1)
        assert injected[0]["kind"] == "kill-broker" and injected[0]["ended"] >= 25
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{base}"})
        topic = admin.list_topics(result["topic"], timeout=10).topics[result["topic"]]
        assert {len(p.replicas) for p in topic.partitions.values()} == {3}
        admin.delete_topics([result["topic"], result["topic"] + ".dlq"])
    finally:
        run_cli("stack", "down", env=env, timeout=120)


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports nobody listens on."""
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + count > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    msg = "no free ports"
    raise RuntimeError(msg)
