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
        f"settings file {config}: unknown key 'kafka_bootstrp'; did you mean 'kafka_bootstrap'?"
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


def test_secrets_never_shown(monkeypatch: pytest.MonkeyPatch):
    s = load_settings(
        mongo_uri="mongodb://bob:hun#ter2@127.0.0.1:1/db?tlsCertificateKeyFilePassword=tlspw99",
        prometheus_url="http://admin:promsecret@127.0.0.1:1",
        kafka_config={"sasl.password": "kafkapw", "no.such.key": "-186"},
    )
    text = s.scrub(f"{s.mongo_uri} {s.prometheus_url} kafkapw tlspw99 val=-186 refused")
    for secret in ("hun#ter2", "promsecret", "kafkapw", "tlspw99"):
        assert secret not in text
        assert secret not in s.mongo_uri_redacted + s.prometheus_url_redacted
    assert "val=-186 refused" in text  # only secrets are masked
    monkeypatch.setenv("BANKSTREAM_KAFKA_CONFIG", '{"sasl.password": ["hunter2"]}')
    with pytest.raises(UsageError) as err:
        load_settings()
    assert err.value.message == (
        "setting BANKSTREAM_KAFKA_CONFIG: 'sasl.password' must be text, a number or true/false"
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BANKSTREAM_KAFKA_CONFIG", "{bad", "setting BANKSTREAM_KAFKA_CONFIG: not valid JSON"),
        (
            "BANKSTREAM_KAFKA_BOOTSTRP",
            "h:1",
            "unknown setting BANKSTREAM_KAFKA_BOOTSTRP; did you mean BANKSTREAM_KAFKA_BOOTSTRAP?",
        ),
        (
            "BANKSTREAM_CONFIG",
            "/no/such/file.toml",
            "settings file /no/such/file.toml (BANKSTREAM_CONFIG) does not exist",
        ),
        (
            "BANKSTREAM_KAFKA_BOOTSTRAP",
            "127.0.0.1:99999",
            "BANKSTREAM_KAFKA_BOOTSTRAP: expected host:port",
        ),
        ("BANKSTREAM_CONNECT_TIMEOUT", "inf", "BANKSTREAM_CONNECT_TIMEOUT"),
        ("BANKSTREAM_MONGO_HEAP", "6 GB", "BANKSTREAM_MONGO_HEAP"),
        (
            "BANKSTREAM_KAFKA_CONFIG",
            '{"bootstrap.servers": "h:1"}',
            "bootstrap.servers does not belong here: set BANKSTREAM_KAFKA_BOOTSTRAP",
        ),
    ],
)
def test_bad_environment(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str):
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError) as err:
        load_settings()
    assert expected in err.value.message
    assert len(err.value.message.splitlines()) == 1


def test_bootstrap_forms():
    for value in ("[::1]:9092", "PLAINTEXT://broker:9092", "a:1,b.example:9093"):
        assert load_settings(kafka_bootstrap=value).kafka_bootstrap == value


@pytest.mark.parametrize(
    "content", [b'kafka_bootstrap = "unclosed\n', b"mongo_database = '\xff'\n"]
)
def test_broken_settings_file(tmp_path: Path, content: bytes):
    config = tmp_path / "bad.toml"
    config.write_bytes(content)
    with pytest.raises(UsageError) as err:
        load_settings(config)
    assert err.value.message.startswith(f"settings file {config}: not valid TOML")


def test_the_local_mongodb_wire_server_gets_the_heap_asked_for(monkeypatch: pytest.MonkeyPatch):
    """A stored event takes about 5 KB of the in-memory server's heap: the heap is a setting."""
    from bankstream.stack.services import MongoService

    monkeypatch.setattr("shutil.which", lambda name: None if name == "mongod" else f"/bin/{name}")
    assert "-Xmx6g" in MongoService(load_settings()).command()
    monkeypatch.setenv("BANKSTREAM_MONGO_HEAP", "12g")
    assert "-Xmx12g" in MongoService(load_settings()).command()
