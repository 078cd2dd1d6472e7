"""Connection and stack settings: one validated model, read from CLI > environment > file.

Every field can be set by an environment variable ``BANKSTREAM_<FIELD>`` (e.g.
``BANKSTREAM_KAFKA_BOOTSTRAP``) or in a TOML settings file (``bankstream.toml`` in the current
directory, or the file named by ``BANKSTREAM_CONFIG`` / ``--config``). Values given on the command
line win over the environment, which wins over the file, which wins over the defaults.
"""

from __future__ import annotations

import difflib
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bankstream.errors import UsageError

LOCALHOST = "127.0.0.1"
CONFIG_ENV = "BANKSTREAM_CONFIG"
DEFAULT_CONFIG_FILE = "bankstream.toml"
# the settings file named on the command line (--config), while load_settings reads it
_config_file: ContextVar[Path | None] = ContextVar("bankstream_config_file", default=None)


def _default_home() -> Path:
    """The stack's state folder: ``.bankstream/`` in a source checkout, else the user's cache."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / ".git").exists():
        return checkout / ".bankstream"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "bankstream"


class Settings(BaseSettings):
    """Where the services are and how the local stack runs them."""

    model_config = SettingsConfigDict(
        env_prefix="BANKSTREAM_",
        extra="forbid",
        validate_default=True,
    )

    kafka_bootstrap: str = Field(
        "",
        description="Kafka bootstrap servers (host:port[,host:port]). Setting it means: use "
        "that cluster, the local stack does not start Kafka. Default: the local stack's broker.",
    )
    kafka_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra librdkafka settings passed through to every client, e.g. "
        '{"security.protocol": "SASL_SSL"} (JSON in the environment).',
    )
    mongo_uri: str = Field(
        "",
        repr=False,
        description="MongoDB connection string. Setting it means: use that server, the local "
        "stack does not start one. Its password is never printed. Default: the local stack's.",
    )
    mongo_database: str = Field("bankstream", description="MongoDB database name.")
    prometheus_url: str = Field(
        "",
        description="Prometheus base URL. Setting it means: use that server, the local stack "
        "does not start one. Default: the local stack's.",
    )
    stack_kafka_port: int = Field(
        9092, ge=1, le=65534, description="Port of the local stack's Kafka (+1: its controller)."
    )
    stack_mongo_port: int = Field(
        27017, ge=1, le=65535, description="Port of the local stack's MongoDB-wire server."
    )
    stack_prometheus_port: int = Field(
        9090, ge=1, le=65535, description="Port of the local stack's Prometheus."
    )
    loadgen_metrics_port: int = Field(
        9101, ge=1, le=65535, description="Port of the loadgen's /metrics."
    )
    sink_metrics_port: int = Field(9102, ge=1, le=65535, description="Port of the sink's /metrics.")
    home: Path = Field(
        default_factory=_default_home,
        description="State folder of the local stack: jars, data, logs, pid files.",
    )
    kafka_version: str = Field(
        "4.4.0", pattern=r"^\d+\.\d+\.\d+$", description="Apache Kafka broker version."
    )
    kafka_heap: str = Field(
        "1g", pattern=r"^\d+[mMgG]$", description="Java heap of the local broker (-Xmx)."
    )
    mongo_server_version: str = Field(
        "1.47.0",
        pattern=r"^\d+\.\d+\.\d+$",
        description="de.bwaldvogel:mongo-java-server version for the local MongoDB-wire server.",
    )
    mongo_backend: Literal["memory", "h2"] = Field(
        "memory",
        description="Local MongoDB-wire server storage: memory (lost on stop) or h2 (a file "
        "under home; what `stack up --durable` selects).",
    )
    start_timeout: float = Field(
        90.0, gt=0, description="Seconds `stack up` waits for each service to answer."
    )
    connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for an existing service before giving up."
    )

    _given: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="after")
    def _local_defaults(self) -> Settings:
        """Connection settings not given point at the local stack's ports."""
        self._given = frozenset(f for f in self.model_fields_set if getattr(self, f) != "")
        if not self.kafka_bootstrap:
            self.kafka_bootstrap = f"{LOCALHOST}:{self.stack_kafka_port}"
        if not self.mongo_uri:
            self.mongo_uri = f"mongodb://{LOCALHOST}:{self.stack_mongo_port}"
        if not self.prometheus_url:
            self.prometheus_url = f"http://{LOCALHOST}:{self.stack_prometheus_port}"
        return self

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        if not value:
            return value
        for server in value.split(","):
            if not re.fullmatch(r"[^\s:,]+:\d{1,5}", server.strip()):
                msg = f"expected host:port[,host:port...], got {server.strip()!r}"
                raise ValueError(msg)
        return value

    @field_validator("mongo_uri")
    @classmethod
    def _check_mongo_uri(cls, value: str) -> str:
        if value and not value.startswith(("mongodb://", "mongodb+srv://")):
            msg = "expected a URI starting with mongodb:// or mongodb+srv://"
            raise ValueError(msg)
        return value

    @field_validator("prometheus_url")
    @classmethod
    def _check_prometheus_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            msg = "expected an http(s) URL such as http://127.0.0.1:9090"
            raise ValueError(msg)
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = _config_file.get() or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config)
        return (init_settings, env_settings, toml)

    def is_given(self, field: str) -> bool:
        """True when the field came from the CLI, the environment or the settings file."""
        return field in self._given

    @property
    def mongo_uri_redacted(self) -> str:
        return redact_uri(self.mongo_uri)

    @property
    def secrets(self) -> list[str]:
        """Strings that must never appear in output (passwords in URIs and client settings)."""
        found = [p for p in (urlsplit(self.mongo_uri).password,) if p]
        found += [
            str(v)
            for k, v in self.kafka_config.items()
            if any(word in k for word in ("password", "secret", "token", "key")) and str(v)
        ]
        return found

    def scrub(self, text: str) -> str:
        """``text`` with every secret of these settings replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def redact_uri(uri: str) -> str:
    """The URI with its password (if any) replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hostinfo}").geturl()


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``overrides`` (the CLI) > environment > settings file > defaults.

    Errors become one :class:`UsageError` line per problem, naming the variable to change.
    """
    if config_file is not None and not config_file.is_file():
        msg = f"settings file {config_file} does not exist: pass an existing TOML file"
        raise UsageError(msg)
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(field, list(Settings.model_fields), n=1)
                text = "unknown setting" + (
                    f"; did you mean BANKSTREAM_{close[0].upper()}?" if close else ""
                )
            else:
                text = err["msg"].removeprefix("Value error, ")
                if "got " not in text and field != "mongo_uri":
                    text += f" (got {err.get('input')!r})"
            lines.append(f"setting BANKSTREAM_{field.upper()}: {text}")
        raise UsageError("\n".join(lines)) from None
    finally:
        _config_file.reset(token)
