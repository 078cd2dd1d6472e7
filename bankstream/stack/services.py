"""The three services of the local stack: how each is installed, configured, started and probed.

Kafka and the MongoDB-wire server are Java programs whose jars Maven resolves from Maven Central
into ``<home>/lib``; Prometheus is Debian's ``prometheus`` package. Each runs on loopback.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bankstream import kafka, mongo, prometheus
from bankstream.errors import BankstreamError, UsageError
from bankstream.settings import Settings

LOCALHOST = "127.0.0.1"


def asset(name: str) -> Path:
    """Path of a file shipped in ``bankstream/stack/assets``."""
    return Path(str(resources.files("bankstream.stack") / "assets" / name))


def render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def _need(program: str, hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        msg = f"{program} is not installed: {hint}"
        raise UsageError(msg)
    return path


def resolve_jars(pom_template: str, values: dict[str, str], dest: Path, log_file: Path) -> Path:
    """Copy the dependencies of a pom into ``dest`` once (Maven's cache makes reruns cheap).

    The copy goes to a temporary folder first and is renamed when complete, so an interrupted
    install is redone, never half used.
    """
    if (dest / ".complete").is_file():
        return dest
    mvn = _need("mvn", "run `make setup` (Debian package maven)")
    work = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pom = work / "pom.xml"
    pom.write_text(render(asset(pom_template).read_text(), values))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={work / 'jars'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        msg = f"Maven could not resolve {pom_template} {values}: see {log_file}"
        raise BankstreamError(msg)
    shutil.rmtree(dest, ignore_errors=True)
    (work / "jars").rename(dest)
    shutil.copy(pom, dest / "pom.xml")
    (dest / ".complete").write_text("ok\n")
    shutil.rmtree(work, ignore_errors=True)
    return dest


@dataclass(frozen=True)
class Service(ABC):
    """One service of the stack. ``home`` is the stack's state folder."""

    settings: Settings

    name: str = ""
    title: str = ""
    setting: str = ""

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / f"{self.name}.log"

    @property
    def external(self) -> bool:
        """True when the user pointed bankstream at an existing server (its setting is given)."""
        return self.settings.is_given(self.setting.removeprefix("BANKSTREAM_").lower())

    @property
    @abstractmethod
    def address(self) -> str: ...

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """Loopback ports the local server listens on (the first one answers clients)."""

    @property
    def variant(self) -> str:
        """How the local server is run, when that can differ between starts (e.g. storage)."""
        return "default"

    @abstractmethod
    def probe(self, timeout: float) -> str:
        """A short description (version) if the server answers, else a BankstreamError."""

    @abstractmethod
    def install(self) -> None:
        """Fetch what the local server needs; idempotent."""

    @abstractmethod
    def command(self) -> list[str]:
        """Prepare config and data folders; the argv that starts the local server."""


@dataclass(frozen=True)
class KafkaService(Service):
    name: str = "kafka"
    title: str = "Kafka"
    setting: str = "BANKSTREAM_KAFKA_BOOTSTRAP"

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def ports(self) -> list[int]:
        port = self.settings.stack_kafka_port
        return [port, port + 1]

    @property
    def lib(self) -> Path:
        return self.home / "lib" / f"kafka-{self.settings.kafka_version}"

    def probe(self, timeout: float) -> str:
        metadata = kafka.wait_for_metadata(self.settings, timeout)
        return f"{len(metadata.brokers)} broker(s), cluster {metadata.cluster_id}"

    def install(self) -> None:
        _need("java", "install a Java 17+ runtime (e.g. Debian package openjdk-17-jre-headless)")
        resolve_jars(
            "kafka-pom.xml",
            {"KAFKA_VERSION": self.settings.kafka_version},
            self.lib,
            self.home / "logs" / "install.log",
        )

    def command(self) -> list[str]:
        java = _need("java", "install a Java 17+ runtime")
        folder = self.home / "kafka"
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        port, controller = self.ports
        properties = folder / "server.properties"
        properties.write_text(
            render(
                asset("server.properties").read_text(),
                {"PORT": str(port), "CONTROLLER_PORT": str(controller), "DATA_DIR": str(data)},
            )
        )
        logging = [
            f"-Dlog4j2.configurationFile={asset('log4j2.xml')}",
            f"-Dbankstream.kafka.log={self.home / 'logs' / 'kafka-server.log'}",
        ]
        classpath = ["-cp", f"{self.lib}/*"]
        if not (data / "meta.properties").is_file():
            self._format(java, logging, classpath, properties)
        heap = self.settings.kafka_heap
        return [
            java,
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            *logging,
            *classpath,
            "kafka.Kafka",
            str(properties),
        ]

    def _format(self, java: str, logging: list[str], cp: list[str], properties: Path) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        with self.log_file.open("ab") as log:
            done = subprocess.run(
                [
                    java,
                    *logging,
                    *cp,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(properties),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            msg = f"formatting Kafka's storage failed: see {self.log_file}"
            raise BankstreamError(msg)


@dataclass(frozen=True)
class MongoService(Service):
    name: str = "mongo"
    title: str = "MongoDB"
    setting: str = "BANKSTREAM_MONGO_URI"

    @property
    def address(self) -> str:
        return self.settings.mongo_uri_redacted

    @property
    def ports(self) -> list[int]:
        return [self.settings.stack_mongo_port]

    @property
    def lib(self) -> Path:
        return self.home / "lib" / f"mongo-java-server-{self.settings.mongo_server_version}"

    @property
    def variant(self) -> str:
        return "mongod" if self.mongod else self.settings.mongo_backend

    @property
    def mongod(self) -> str | None:
        """A real ``mongod`` on PATH is preferred over the Java wire-protocol server."""
        return shutil.which("mongod")

    def probe(self, timeout: float) -> str:
        return f"version {mongo.ping(self.settings, timeout)}"

    def install(self) -> None:
        if self.mongod:
            return
        _need("java", "install a Java 17+ runtime (e.g. Debian package openjdk-17-jre-headless)")
        resolve_jars(
            "mongo-pom.xml",
            {"MONGO_SERVER_VERSION": self.settings.mongo_server_version},
            self.lib,
            self.home / "logs" / "install.log",
        )

    def command(self) -> list[str]:
        folder = self.home / "mongo"
        folder.mkdir(parents=True, exist_ok=True)
        if self.mongod:
            data = folder / "mongod"
            data.mkdir(exist_ok=True)
            return [
                self.mongod,
                "--dbpath",
                str(data),
                "--bind_ip",
                LOCALHOST,
                "--port",
                str(self.ports[0]),
            ]
        java = _need("java", "install a Java 17+ runtime")
        argv = [
            java,
            f"-Xmx{self.settings.mongo_heap}",
            "-XX:+UseG1GC",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            f"{self.lib}/*",
            str(asset("LocalMongo.java")),
            LOCALHOST,
            str(self.ports[0]),
        ]
        if self.settings.mongo_backend == "h2":
            argv.append(str(folder / "bankstream.mv.db"))
        return argv


@dataclass(frozen=True)
class PrometheusService(Service):
    name: str = "prometheus"
    title: str = "Prometheus"
    setting: str = "BANKSTREAM_PROMETHEUS_URL"

    @property
    def address(self) -> str:
        return self.settings.prometheus_url_redacted

    @property
    def ports(self) -> list[int]:
        return [self.settings.stack_prometheus_port]

    def probe(self, timeout: float) -> str:
        return prometheus.ready(self.settings, timeout)

    def install(self) -> None:
        _need("prometheus", "run `make setup` (Debian package prometheus)")

    def command(self) -> list[str]:
        folder = self.home / "prometheus"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yml"
        listen = f"{LOCALHOST}:{self.ports[0]}"
        config.write_text(
            render(
                asset("prometheus.yml").read_text(),
                {
                    "LOADGEN_PORT": str(self.settings.loadgen_metrics_port),
                    "SINK_PORT": str(self.settings.sink_metrics_port),
                    "PROMETHEUS_ADDRESS": listen,
                },
            )
        )
        return [
            _need("prometheus", "run `make setup` (Debian package prometheus)"),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address={listen}",
        ]


def all_services(settings: Settings) -> list[Service]:
    return [KafkaService(settings), MongoService(settings), PrometheusService(settings)]
