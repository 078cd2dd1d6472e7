from __future__ import annotations

from pathlib import Path

import pytest

from bankstream.errors import UsageError
from bankstream.settings import load_settings, redact_uri


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    for var in ("KAFKA_BOOTSTRAP", "MONGO_URI", "PROMETHEUS_URL", "CONFIG"):
        monkeypatch.delenv(f"BANKSTREAM_{var}", raising=False)
    s = load_settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.mongo_uri == "mongodb://127.0.0.1:27017"
    assert s.prometheus_url == "http://127.0.0.1:9090"
    assert not s.is_given("kafka_bootstrap")
    moved = load_settings(stack_kafka_port=19092, stack_mongo_port=27999)
    assert moved.kafka_bootstrap == "127.0.0.1:19092"
    assert moved.mongo_uri == "mongodb://127.0.0.1:27999"
    assert not moved.is_given("kafka_bootstrap")


def test_precedence_cli_over_env_over_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    config = tmp_path / "bankstream.toml"
    config.write_text(
        'kafka_bootstrap = "file:1"\nmongo_database = "fromfile"\nkafka_heap = "2g"\n'
    )
    monkeypatch.setenv("BANKSTREAM_KAFKA_BOOTSTRAP", "env:2")
    monkeypatch.setenv("BANKSTREAM_MONGO_DATABASE", "fromenv")
    s = load_settings(config, mongo_database="fromcli")
    assert s.kafka_bootstrap == "env:2"
    assert s.mongo_database == "fromcli"
    assert s.kafka_heap == "2g"
    assert s.is_given("kafka_bootstrap")


def test_settings_file_in_the_current_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("BANKSTREAM_CONFIG", raising=False)
    monkeypatch.delenv("BANKSTREAM_MONGO_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bankstream.toml").write_text('mongo_uri = "mongodb://db.example:27017"\n')
    s = load_settings()
    assert s.mongo_uri == "mongodb://db.example:27017"
    assert s.is_given("mongo_uri")


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("KAFKA_BOOTSTRAP", "localhost", "BANKSTREAM_KAFKA_BOOTSTRAP: expected host:port"),
        ("MONGO_URI", "http://x", "BANKSTREAM_MONGO_URI: expected a URI starting with mongodb://"),
        ("PROMETHEUS_URL", "9090", "BANKSTREAM_PROMETHEUS_URL: expected an http(s) URL"),
        ("STACK_KAFKA_PORT", "0", "BANKSTREAM_STACK_KAFKA_PORT: Input should be greater"),
        ("CONNECT_TIMEOUT", "soon", "BANKSTREAM_CONNECT_TIMEOUT: Input should be a valid number"),
    ],
)
def test_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
):
    monkeypatch.setenv(f"BANKSTREAM_{var}", value)
    with pytest.raises(UsageError) as err:
        load_settings()
    assert expected in err.value.message
    assert err.value.exit_code == 2


def test_unknown_key_in_settings_file_is_an_error(tmp_path: Path):
    config = tmp_path / "s.toml"
    config.write_text('kafka_bootstrp = "x:1"\n')
    with pytest.raises(UsageError) as err:
        load_settings(config)
    assert err.value.message == (
        "setting BANKSTREAM_KAFKA_BOOTSTRP: unknown setting; did you mean "
        "BANKSTREAM_KAFKA_BOOTSTRAP?"
    )


def test_missing_settings_file(tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_passwords_are_redacted(monkeypatch: pytest.MonkeyPatch):
    assert redact_uri("mongodb://app:s3cr%40t@db:27017/x?authSource=admin") == (
        "mongodb://app:***@db:27017/x?authSource=admin"
    )
    assert redact_uri("mongodb://db:27017") == "mongodb://db:27017"
    monkeypatch.setenv("BANKSTREAM_MONGO_URI", "ftp://app:hunter2@db")
    with pytest.raises(UsageError) as err:
        load_settings()
    assert "hunter2" not in err.value.message
    s = load_settings(
        mongo_uri="mongodb://app:hunter2@db", kafka_config={"sasl.password": "pw-kafka"}
    )
    assert "hunter2" not in repr(s)
    assert s.scrub("x hunter2 y pw-kafka") == "x *** y ***"
