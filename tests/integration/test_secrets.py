"""Secrets given every way (a scenario's kafka_config, BANKSTREAM_KAFKA_CONFIG, a MongoDB URI
password) are never echoed by show, generate, produce or stack status, nor written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.test_hostile import cli


@pytest.mark.integration
def test_secrets_given_every_way_are_never_echoed(stack, tmp_path: Path):
    """A scenario's delivery.kafka_config, BANKSTREAM_KAFKA_CONFIG and a MongoDB URI password:
    none appears in any output, manifest or log of show, generate, produce and stack status."""
    secrets = ["hunt3r2xyz", "s3tt1ngsecret", "ur1pa55word"]
    path = tmp_path / "secret.yaml"
    path.write_text(
        "name: secret\nextends: retail-day\nload: {rate: 300, events: 900, warmup: 1s}\n"
        "delivery:\n  kafka_config: {sasl.password: hunt3r2xyz, sasl.username: bob}\n"
    )
    env = {
        "BANKSTREAM_KAFKA_CONFIG": '{"sasl.oauthbearer.client.secret": "s3tt1ngsecret"}',
        "BANKSTREAM_MONGO_DATABASE": f"test_secret_{os.getpid()}",
    }
    results = tmp_path / "results"
    runs = [
        cli("scenarios", "show", str(path), env=env),
        cli("-vv", "generate", str(path), "--events", "300", "-o", os.devnull, env=env),
        cli(
            "-v",
            "produce",
            str(path),
            "--json",
            "--results",
            str(results),
            "--metrics-port",
            "0",
            env=env,
        ),  # fmt: skip
        cli(
            "stack",
            "status",
            env={**env, "BANKSTREAM_MONGO_URI": "mongodb://bank:ur1pa55word@127.0.0.1:1/"},
        ),  # fmt: skip
    ]
    assert runs[2].returncode == 0, runs[2].stderr[-2000:]
    written = "".join(p.read_text() for p in results.rglob("*") if p.is_file())
    assert written, "the producer wrote no manifest"
    for text in [*(d.stdout + d.stderr for d in runs), written]:
        for secret in secrets:
            assert secret not in text
    from bankstream import mongo

    with mongo.client(stack) as client:
        stored = str(list(client[env["BANKSTREAM_MONGO_DATABASE"]]["runs"].find({})))
        client.drop_database(env["BANKSTREAM_MONGO_DATABASE"])
    assert "secret" in stored and not any(s in stored for s in secrets)
