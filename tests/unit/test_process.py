from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from bankstream.stack.process import ManagedProcess, port_answers
from tests.conftest import free_port, run_cli


def test_spawn_find_stop(tmp_path: Path):
    proc = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "logs" / "s.log", str(tmp_path))
    assert proc.pid() is None
    child = proc.spawn(
        [
            sys.executable,
            "-c",
            "import time; print('up', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
    )
    assert proc.pid() == child.pid
    assert proc.stop(timeout=5)
    assert child.poll() is not None
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert "up" in proc.log_file.read_text()
    assert not proc.stop()


def test_stale_pid_file_is_not_ours(tmp_path: Path):
    proc = ManagedProcess("x", tmp_path, tmp_path / "x.log", marker="/no/such/marker")
    proc.pid_file.write_text(f"{os.getpid()}\n")  # a live pid, but not a process of ours
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_port_answers():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert port_answers("127.0.0.1", server.getsockname()[1])
    assert not port_answers("127.0.0.1", free_port())


@pytest.mark.slow
def test_port_taken_by_a_foreign_process_is_a_clear_error(tmp_path: Path):
    """Something that accepts connections but does not speak Kafka holds the broker's port."""
    port = free_port(pair=True)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = run_cli(
            "stack",
            "up",
            env={
                "BANKSTREAM_HOME": str(tmp_path),
                "BANKSTREAM_STACK_KAFKA_PORT": str(port),
                "BANKSTREAM_CONNECT_TIMEOUT": "2",
            },
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"bankstream: error: port 127.0.0.1:{port} needed by the local Kafka is taken by "
        "another process that does not answer as Kafka: stop it, or point "
        "BANKSTREAM_KAFKA_BOOTSTRAP at an existing Kafka"
    )
    assert not (tmp_path / "run" / "kafka.pid").exists()
