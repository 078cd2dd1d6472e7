"""Shared fixtures. Integration tests use the services the BANKSTREAM_* settings name, else the
local stack, started once per session (and stopped after, if this session started it)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from pymongo.database import Database

from bankstream import kafka, mongo
from bankstream.mongo import Document
from bankstream.settings import Settings, load_settings
from bankstream.stack import lifecycle

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `long` tests (minutes each) run only when an -m names them (``pytest -m long``):
    whatever else -m says, such as the quick tier's "not slow and not integration"."""
    if "long" in (config.option.markexpr or ""):
        return
    kept: list[pytest.Item] = []
    long: list[pytest.Item] = []
    for item in items:
        (long if item.get_closest_marker("long") else kept).append(item)
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = kept


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The services, answering. Only what this fixture started is stopped at the end."""
    states = lifecycle.up(settings, report=log.info)
    started = [s.name for s in states if s.started]
    yield settings
    if started and not os.environ.get("BANKSTREAM_KEEP_STACK"):
        lifecycle.down(settings, report=log.info, names=started)


@pytest.fixture
def kafka_admin(stack: Settings) -> AdminClient:
    return kafka.admin_client(stack)


@pytest.fixture
def topic(stack: Settings, kafka_admin: AdminClient) -> Iterator[str]:
    """A fresh topic (3 partitions) for one test, deleted after it."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    kafka.create_topic(kafka_admin, name, partitions=3)
    yield name
    kafka.delete_topic(kafka_admin, name)


@pytest.fixture
def mongo_db(stack: Settings) -> Iterator[Database[Document]]:
    """A fresh database for one test, dropped after it."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with mongo.client(stack) as client:
        yield client[name]
        client.drop_database(name)


def free_port(pair: bool = False) -> int:
    """A loopback port nobody listens on (and the next one too, with ``pair``)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port >= 65535:
            continue
        if not pair:
            return port
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    msg = "no free port"
    raise RuntimeError(msg)


def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``bankstream ARGS`` in this process (no interpreter start-up): exit code and output as
    ``run_cli`` gives them. ``env`` is added to the environment while it runs."""
    import contextlib
    import io

    from bankstream.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            stdout.flush()
            stderr.flush()
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess(
        ["bankstream", *args], code, out.getvalue().decode(), err.getvalue().decode()
    )


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``bankstream ARGS`` as a user runs it: a new process, its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "bankstream", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
