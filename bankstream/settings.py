"""Connection and stack settings: one validated model, read from CLI > environment > file.

Every field can be set by an environment variable ``BANKSTREAM_<FIELD>`` (e.g.
``BANKSTREAM_KAFKA_BOOTSTRAP``) or in a TOML settings file (``bankstream.toml`` in the current
directory, or the file named by ``BANKSTREAM_CONFIG`` / ``--config``). Values given on the command
line win over the environment, which wins over the file, which wins over the defaults.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
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
        allow_inf_nan=False,
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
    pushgateway_url: str = Field(
        "",
        description="Prometheus Pushgateway base URL, where produce/sink/run --push send their "
        "metrics. Setting it means: use that one, the local stack does not start one. "
        "Default: the local stack's.",
    )
    connect_url: str = Field(
        "",
        description="Kafka Connect REST URL, for `run --sink connect`. Setting it means: use "
        "that Connect cluster (it must have the MongoDB sink connector), the local stack does "
        "not start one. Default: the local stack's (`stack up --with connect`).",
    )
    connect_mongo_uri: str = Field(
        "",
        repr=False,
        description="The MongoDB connection string the connector is given, as Connect's workers "
        "reach the store (e.g. another host name inside docker compose). Its password is never "
        "printed. Default: BANKSTREAM_MONGO_URI.",
    )
    stack_pushgateway: bool = Field(
        False,
        description="The local stack also runs a Prometheus Pushgateway (what `stack up --with "
        "pushgateway` and `run --push` select).",
    )
    stack_connect: bool = Field(
        False,
        description="The local stack also runs Kafka Connect with the MongoDB sink connector "
        "(what `stack up --with connect` selects).",
    )
    connector_version: str = Field(
        "2.0.1",
        pattern=r"^\d+\.\d+\.\d+$",
        description="org.mongodb.kafka:mongo-kafka-connect version for the local Kafka Connect.",
    )
    connect_heap: str = Field(
        "1g", pattern=r"^\d+[mMgG]$", description="Java heap of the local Kafka Connect worker."
    )
    stack_pushgateway_port: int = Field(
        9091, ge=1, le=65535, description="Port of the local stack's Pushgateway."
    )
    stack_connect_port: int = Field(
        8083, ge=1, le=65535, description="REST port of the local stack's Kafka Connect."
    )
    stack_kafka_port: int = Field(
        9092,
        ge=1,
        le=65526,
        description="Port of the local stack's Kafka (+1: its controller; with several brokers, "
        "broker N listens on this port + 2(N-1), its controller on the next).",
    )
    stack_kafka_brokers: int | None = Field(
        None,
        ge=1,
        le=5,
        description="Brokers of the local stack's Kafka cluster (KRaft, each also a controller): "
        "1, or 3 to test a replicated cluster and a broker's loss (`stack up --brokers 3`). "
        "Default: as many as run now, else 1.",
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
    mongo_heap: str = Field(
        "6g",
        pattern=r"^\d+[mMgG]$",
        description="Java heap of the local in-memory MongoDB-wire server (-Xmx): a stored event "
        "takes about 5 KB of it (with the sink's indexes), so 6g holds about a million.",
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
        90.0, gt=0, le=3600, description="Seconds `stack up` waits for each service to answer."
    )
    connect_timeout: float = Field(
        5.0, gt=0, le=300, description="Seconds to wait for an existing service before giving up."
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
        if not self.pushgateway_url:
            self.pushgateway_url = f"http://{LOCALHOST}:{self.stack_pushgateway_port}"
        if not self.connect_url:
            self.connect_url = f"http://{LOCALHOST}:{self.stack_connect_port}"
        if not self.connect_mongo_uri:
            self.connect_mongo_uri = self.mongo_uri
        return self

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        if not value:
            return value
        for server in value.split(","):
            match = BOOTSTRAP_RE.fullmatch(server.strip())
            if not match or not 1 <= int(match.group("port")) <= 65535:
                msg = f"expected host:port[,host:port...], got {server.strip()!r}"
                raise ValueError(msg)
        return value

    @field_validator("kafka_config")
    @classmethod
    def _check_kafka_config(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        if "bootstrap.servers" in value:
            msg = "bootstrap.servers does not belong here: set BANKSTREAM_KAFKA_BOOTSTRAP"
            raise ValueError(msg)
        return value

    @field_validator("mongo_uri", "connect_mongo_uri")
    @classmethod
    def _check_mongo_uri(cls, value: str) -> str:
        if value and not value.startswith(("mongodb://", "mongodb+srv://")):
            msg = "expected a URI starting with mongodb:// or mongodb+srv://"
            raise ValueError(msg)
        if value.startswith("mongodb://"):  # +srv would look its hosts up in DNS here
            problem = _uri_options_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("prometheus_url", "connect_url", "pushgateway_url")
    @classmethod
    def _check_prometheus_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port
        except ValueError:
            ok = False
        if not ok:
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

    def remedy(self, field: str) -> str:
        """What to do when the service of ``field`` does not answer."""
        variable = f"BANKSTREAM_{field.upper()}"
        if self.is_given(field):
            return f"check that it runs and that {variable} is right"
        return f"start it with `bankstream stack up`, or set {variable} to an existing one"

    @property
    def mongo_uri_redacted(self) -> str:
        return redact_uri(self.mongo_uri)

    @property
    def prometheus_url_redacted(self) -> str:
        return redact_uri(self.prometheus_url)

    @property
    def secrets(self) -> list[str]:
        """Strings that must never appear in output (passwords in URIs and client settings)."""
        uris = (
            self.mongo_uri,
            self.prometheus_url,
            self.connect_url,
            self.connect_mongo_uri,
            self.pushgateway_url,
        )
        found = [s for s in (uri_password(u) for u in uris) if s]
        for uri in (self.mongo_uri, self.connect_mongo_uri):
            found += [m.group(2) for m in SECRET_PARAM_RE.finditer(uri) if m.group(2)]
        found += [str(v) for k, v in self.kafka_config.items() if secret_key(k) and str(v)]
        return sorted(set(found), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with the URIs and secrets of these settings masked (``***``)."""
        for uri, shown in (
            (self.mongo_uri, self.mongo_uri_redacted),
            (self.prometheus_url, self.prometheus_url_redacted),
            (self.connect_url, redact_uri(self.connect_url)),
            (self.pushgateway_url, redact_uri(self.pushgateway_url)),
            (self.connect_mongo_uri, redact_uri(self.connect_mongo_uri)),
        ):
            if uri != shown:
                text = text.replace(uri, shown)
        for secret in self.secrets:
            # whole values only: a short secret must not garble ordinary words
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "***", text)
        return text


BOOTSTRAP_RE = re.compile(
    r"(?:[A-Za-z_]+://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})"
)
# userinfo of a URI: everything up to the last @ before the path or query
USERINFO_RE = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/]*)"
    r"(?::(?P<password>.*))?@(?P<rest>[^@]*)$",
    re.S,
)
SECRET_PARAM_RE = re.compile(r"(?i)([?&;][^=&;]*(?:password|secret|token)[^=&;]*=)([^&;]*)")


def _uri_options_problem(uri: str) -> str | None:
    """What pymongo refuses in the URI's options (it would warn on stderr, or fail later)."""
    import warnings

    from pymongo import uri_parser
    from pymongo.errors import ConfigurationError, InvalidURI

    def refused(text: str) -> str | None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                uri_parser.parse_uri(text)
            except (ConfigurationError, InvalidURI, ValueError, UserWarning) as exc:
                return str(exc).split(" Refer to docstring")[0]
        return None

    found = refused(uri)
    if found is None:
        return None
    query = urlsplit(uri).query
    unknown = [
        part.split("=", 1)[0]
        for part in re.split(r"[&;]", query)
        if part and "nknown option" in (refused(f"mongodb://localhost/?{part}") or "")
    ]
    if unknown:
        return f"unknown option(s) {', '.join(unknown)} in the URI (see MongoDB's URI options)"
    return redact_uri(found)


def secret_key(key: str) -> bool:
    """True for client settings that hold a secret (their values are never shown)."""
    lowered = key.lower()
    named = ("ssl.key.pem", "sasl.oauthbearer.config", "sasl.jaas.config")
    return (
        any(word in lowered for word in ("password", "secret", "token"))
        or lowered in named
        # a client's setting passed through under a prefix (consumer.override.sasl.jaas.config)
        or lowered.endswith(tuple("." + name for name in named))
    )


def uri_password(uri: str) -> str | None:
    match = USERINFO_RE.match(uri)
    return match.group("password") if match else None


def redact_uri(uri: str) -> str:
    """The URI with its password and password-like query options replaced by ``***``."""
    match = USERINFO_RE.match(uri)
    if match and match.group("password") is not None:
        uri = f"{match.group('scheme')}{match.group('user')}:***@{match.group('rest')}"
    return SECRET_PARAM_RE.sub(lambda m: f"{m.group(1)}***", uri)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``overrides`` (the CLI) > environment > settings file > defaults.

    Errors become one :class:`UsageError` line per problem, naming the variable to change.
    """
    named = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if named is not None and not named.is_file():
        source = "--config" if config_file is not None else CONFIG_ENV
        msg = f"settings file {named} ({source}) does not exist: pass an existing TOML file"
        raise UsageError(msg)
    _check_environment(os.environ)
    file = named or Path(DEFAULT_CONFIG_FILE)
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise UsageError("\n".join(_describe(exc, file))) from None
    except SettingsError as exc:
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError | ValueError) and "kafka_config" in str(exc):
            msg = (
                "setting BANKSTREAM_KAFKA_CONFIG: not valid JSON (expected an object such "
                'as {"linger.ms": 20})'
            )
        else:
            msg = f"settings: {exc}"
        raise UsageError(msg) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"settings file {file}: not valid TOML ({exc})"
        raise UsageError(msg) from None
    finally:
        _config_file.reset(token)


# BANKSTREAM_* variables that are not settings but are read elsewhere
# handed from one process to another (the dashboard: from `bankstream dashboard` to Streamlit)
OTHER_VARIABLES = {"CONFIG", "SCENARIO_SET", "KEEP_STACK", "DASHBOARD_RESULTS", "DASHBOARD_REFRESH"}


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Every BANKSTREAM_ variable is a setting or one of ours (UsageError otherwise)."""
    _check_environment(os.environ if environ is None else environ)


def _check_environment(environ: Mapping[str, str]) -> None:
    """A misspelled BANKSTREAM_ variable is an error, not silently ignored."""
    known = {name.upper() for name in Settings.model_fields} | OTHER_VARIABLES
    for variable in environ:
        if not variable.startswith("BANKSTREAM_"):
            continue
        name = variable.removeprefix("BANKSTREAM_")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean BANKSTREAM_{close[0]}?" if close else ""
            msg = f"unknown setting {variable}{hint} (unset it or fix its name)"
            raise UsageError(msg)


def _describe(exc: ValidationError, file: Path) -> list[str]:
    lines: list[str] = []
    for err in exc.errors():
        loc = err["loc"]
        field = str(loc[0])
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, list(Settings.model_fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"settings file {file}: unknown key {field!r}{hint}")
            continue
        if field == "kafka_config":
            line = (
                f"setting BANKSTREAM_KAFKA_CONFIG: {loc[1]!r} must be text, a number or true/false"
                if len(loc) > 1
                else "setting BANKSTREAM_KAFKA_CONFIG: " + err["msg"].removeprefix("Value error, ")
            )
            if line not in lines:
                lines.append(line)
            continue
        text = err["msg"].removeprefix("Value error, ")
        if "got " not in text and field not in ("mongo_uri", "prometheus_url"):
            text += f" (got {err.get('input')!r})"
        lines.append(f"setting BANKSTREAM_{field.upper()}: {text}")
    return lines
