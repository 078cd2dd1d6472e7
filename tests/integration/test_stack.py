"""`bankstream stack ...` through the CLI, against the running stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pymongo import MongoClient

from bankstream.settings import Settings
from tests.conftest import ROOT, free_port, run_cli

pytestmark = pytest.mark.integration

SERVICES = ["kafka", "mongo", "prometheus"]  # (then the optional ones running: pushgateway, ...)


def status(env: dict[str, str] | None = None) -> list[dict[str, object]]:
    done = run_cli("stack", "status", "--json", env=env)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_status_lists_every_service_answering(stack: Settings):
    done = run_cli("stack", "status")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = status()
    assert [r["service"] for r in rows][:3] == SERVICES
    assert all(r["answering"] for r in rows), rows
    assert rows[0]["address"] == stack.kafka_bootstrap
    assert rows[2]["address"] == stack.prometheus_url


def test_up_is_idempotent(stack: Settings):
    before = {r["service"]: r["pid"] for r in status()}
    done = run_cli("stack", "up")
    assert done.returncode == 0, done.stderr
    assert "starting" not in done.stdout
    after = {r["service"]: r["pid"] for r in status()}
    assert after == before


def test_check_runs_end_to_end(stack: Settings):
    done = run_cli("stack", "check")
    assert done.returncode == 0, done.stderr
    assert "1000 keyed messages produced and consumed" in done.stdout
    assert "1 duplicate rejected with 11000" in done.stdout
    assert done.stdout.strip().endswith("stack check passed")


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (
            "BANKSTREAM_KAFKA_BOOTSTRAP",
            "127.0.0.1:{port}",
            "Kafka at 127.0.0.1:{port} did not answer",
        ),
        (
            "BANKSTREAM_MONGO_URI",
            "mongodb://bank:s3cretpw@127.0.0.1:{port}/?authSource=admin",
            "MongoDB at mongodb://bank:***@127.0.0.1:{port}/?authSource=admin did not answer",
        ),
        (
            "BANKSTREAM_PROMETHEUS_URL",
            "http://127.0.0.1:{port}",
            "Prometheus at http://127.0.0.1:{port} did not answer",
        ),
    ],
)
def test_unreachable_service_is_one_line_naming_address_and_setting(
    stack: Settings, setting: str, value: str, expected: str
):
    port = free_port()
    env = {
        "BANKSTREAM_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "BANKSTREAM_MONGO_URI": stack.mongo_uri,
        "BANKSTREAM_PROMETHEUS_URL": stack.prometheus_url,
        "BANKSTREAM_CONNECT_TIMEOUT": "2",
        setting: value.format(port=port),
    }
    for command in (["stack", "check"], ["stack", "up"]):
        done = run_cli(*command, env=env, timeout=60)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert expected.format(port=port) in lines[0]
        assert setting in lines[0]
        assert "s3cretpw" not in done.stdout + done.stderr


def test_durable_mongo_keeps_data_across_restarts(stack: Settings, tmp_path: Path):
    """`stack up --durable` on a second home and port: data survives `down` and `up`."""
    shutil.copytree(stack.home / "lib", tmp_path / "lib", symlinks=True)
    port = free_port()
    env = {
        "BANKSTREAM_HOME": str(tmp_path),
        "BANKSTREAM_STACK_MONGO_PORT": str(port),
        "BANKSTREAM_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "BANKSTREAM_PROMETHEUS_URL": stack.prometheus_url,
    }
    uri = f"mongodb://127.0.0.1:{port}"
    try:
        done = run_cli("stack", "up", "--durable", env=env)
        assert done.returncode == 0, done.stderr
        with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            client.bankstream.kept.insert_one({"_id": "x", "cents": 123})
        # a running in-memory/durable server is not silently swapped
        done = run_cli("stack", "up", env=env)
        assert done.returncode == 2
        assert "already runs as 'h2', not 'memory'" in done.stderr
        assert run_cli("stack", "down", env=env).returncode == 0
        assert (tmp_path / "mongo" / "bankstream.mv.db").is_file()
        done = run_cli("stack", "up", "--durable", env=env)
        assert done.returncode == 0, done.stderr
        with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            assert client.bankstream.kept.find_one({"_id": "x"}) == {"_id": "x", "cents": 123}
    finally:
        run_cli("stack", "down", env=env)
    rows = status(env)
    assert rows[1]["answering"] is False


def test_rendered_prometheus_config_is_valid(stack: Settings):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    config = stack.home / "prometheus" / "prometheus.yml"
    if not config.is_file():
        pytest.skip("Prometheus is not run by the local stack")
    done = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "GRAFANA_"))},
            **env,
        },
        check=False,
        timeout=120,
    )


def compose_env() -> dict[str, str]:
    pairs = (ROOT / ".env.example").read_text().splitlines()
    return dict(p.split("=", 1) for p in pairs if p and not p.startswith("#"))


def test_docker_compose_file_is_valid():
    if shutil.which("docker") is None:
        pytest.skip("no docker client on this machine")
    if (
        subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        != 0
    ):
        pytest.skip("no docker compose plugin: run scripts/compose-plugin.sh")
    env = compose_env()
    done = _compose("--env-file", "/dev/null", "config", "-q", env=env)
    assert done.returncode == 0, done.stderr
    services = _compose("--env-file", "/dev/null", "config", "--services", env=env).stdout.split()
    assert {"kafka", "mongo", "prometheus", "grafana"} <= set(services)
    # a missing password is refused with the message from the compose file
    del env["MONGO_ROOT_PASSWORD"]
    done = _compose("--env-file", "/dev/null", "config", "-q", env=env)
    assert done.returncode != 0
    assert "MONGO_ROOT_PASSWORD" in done.stderr


def test_compose_prometheus_config_is_valid():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    done = subprocess.run(
        [
            promtool,
            "check",
            "config",
            "--syntax-only",
            str(ROOT / "deploy/prometheus/prometheus.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
