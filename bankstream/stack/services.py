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
    """Broker ``node`` of the local stack's KRaft cluster of ``brokers`` (each node a broker and
    a controller). The first is ``kafka``, the others ``kafka-2``, ``kafka-3``, ..."""

    name: str = "kafka"
    title: str = "Kafka"
    setting: str = "BANKSTREAM_KAFKA_BOOTSTRAP"
    node: int = 1
    brokers: int = 1

    @property
    def address(self) -> str:
        if self.node == 1:
            return self.settings.kafka_bootstrap
        return f"{LOCALHOST}:{self.ports[0]}"

    @property
    def ports(self) -> list[int]:
        port = self.settings.stack_kafka_port + 2 * (self.node - 1)
        return [port, port + 1]

    @property
    def external(self) -> bool:
        return self.node == 1 and super().external

    @property
    def variant(self) -> str:
        return "default" if self.brokers == 1 else f"{self.brokers} brokers"

    @property
    def folder(self) -> Path:
        """Its configuration and data: one broker in ``kafka``, a cluster's in
        ``kafka-cluster/node-N`` (a node formatted for one quorum cannot join another)."""
        if self.brokers == 1:
            return self.home / "kafka"
        return self.home / "kafka-cluster" / f"node-{self.node}"

    @property
    def lib(self) -> Path:
        return self.home / "lib" / f"kafka-{self.settings.kafka_version}"

    def probe(self, timeout: float) -> str:
        settings = self.settings
        if self.node > 1:  # this node's own answer
            settings = settings.model_copy(update={"kafka_bootstrap": self.address})
        metadata = kafka.wait_for_metadata(settings, timeout)
        if len(metadata.brokers) < self.brokers:  # a node of the cluster not (yet) registered
            msg = f"{len(metadata.brokers)} of {self.brokers} brokers registered"
            raise BankstreamError(msg)
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
        folder = self.folder
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        port, controller = self.ports
        voters = ",".join(
            f"{n}@{LOCALHOST}:{KafkaService(self.settings, node=n).ports[1]}"
            for n in range(1, self.brokers + 1)
        )
        replicas = min(3, self.brokers)  # the internal topics, replicated when they can be
        properties = folder / "server.properties"
        properties.write_text(
            render(
                asset("server.properties").read_text(),
                {
                    "NODE_ID": str(self.node),
                    "VOTERS": voters,
                    "PORT": str(port),
                    "CONTROLLER_PORT": str(controller),
                    "DATA_DIR": str(data),
                    "REPLICAS": str(replicas),
                    "MIN_ISR": str(max(1, replicas - 1)),
                },
            )
        )
        logging = [
            f"-Dlog4j2.configurationFile={asset('log4j2.xml')}",
            f"-Dbankstream.kafka.log={self.home / 'logs' / (self.name + '-server.log')}",
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

    def _cluster_id(self) -> str:
        """A new cluster id; the nodes of a cluster share one (kept beside their folders)."""
        shared = self.folder.parent / "cluster.id" if self.brokers > 1 else None
        if shared is not None and shared.is_file():
            return shared.read_text().strip()
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if shared is not None:
            shared.write_text(cluster_id + "\n")
        return cluster_id

    def _format(self, java: str, logging: list[str], cp: list[str], properties: Path) -> None:
        cluster_id = self._cluster_id()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
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
                    "PUSHGATEWAY_ADDRESS": f"{LOCALHOST}:{self.settings.stack_pushgateway_port}",
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


@dataclass(frozen=True)
class PushgatewayService(Service):
    """Debian's ``prometheus-pushgateway``: short-lived processes push their metrics there
    (``--push``), the local Prometheus scrapes it."""

    name: str = "pushgateway"
    title: str = "Pushgateway"
    setting: str = "BANKSTREAM_PUSHGATEWAY_URL"

    @property
    def address(self) -> str:
        return self.settings.scrub(self.settings.pushgateway_url)

    @property
    def ports(self) -> list[int]:
        return [self.settings.stack_pushgateway_port]

    def probe(self, timeout: float) -> str:
        from bankstream import prometheus

        return prometheus.pushgateway_ready(self.settings, timeout)

    def install(self) -> None:
        _need("prometheus-pushgateway", "run `make setup` (Debian package prometheus-pushgateway)")

    def command(self) -> list[str]:
        folder = self.home / "pushgateway"
        folder.mkdir(parents=True, exist_ok=True)
        return [
            _need(
                "prometheus-pushgateway", "run `make setup` (Debian package prometheus-pushgateway)"
            ),
            f"--web.listen-address={LOCALHOST}:{self.ports[0]}",
            # what was pushed outlives a restart of the gateway (a file under the stack's home)
            f"--persistence.file={folder / 'metrics.store'}",
        ]


@dataclass(frozen=True)
class ConnectService(Service):
    """Kafka Connect (distributed mode, one worker) with the official MongoDB sink connector in
    its plugin folder: what `run --sink connect` benchmarks. Its internal topics live in the
    stack's Kafka; a connector is created per run through the REST API."""

    name: str = "connect"
    title: str = "Kafka Connect"
    setting: str = "BANKSTREAM_CONNECT_URL"

    @property
    def address(self) -> str:
        return self.settings.scrub(self.settings.connect_url)

    @property
    def ports(self) -> list[int]:
        return [self.settings.stack_connect_port]

    @property
    def lib(self) -> Path:
        return self.home / "lib" / f"connect-{self.settings.kafka_version}"

    @property
    def plugins(self) -> Path:
        return self.home / "lib" / f"connect-plugins-{self.settings.connector_version}"

    def probe(self, timeout: float) -> str:
        from bankstream import connect

        return connect.probe(self.settings, timeout)

    def install(self) -> None:
        _need("java", "install a Java 17+ runtime (e.g. Debian package openjdk-17-jre-headless)")
        log = self.home / "logs" / "install.log"
        resolve_jars(
            "connect-pom.xml", {"KAFKA_VERSION": self.settings.kafka_version}, self.lib, log
        )
        plugin = self.plugins / "mongo-kafka-connect"
        resolve_jars(
            "connector-pom.xml", {"CONNECTOR_VERSION": self.settings.connector_version}, plugin, log
        )

    def command(self) -> list[str]:
        java = _need("java", "install a Java 17+ runtime")
        folder = self.home / "connect"
        folder.mkdir(parents=True, exist_ok=True)
        port = self.ports[0]
        replicas = min(3, running_brokers(self.settings) or 1)
        properties = folder / "worker.properties"
        properties.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={self.settings.kafka_bootstrap}",
                    "group.id=bankstream-connect",
                    # bankstream's keys are account ids (text), its values JSON without schemas
                    "key.converter=org.apache.kafka.connect.storage.StringConverter",
                    "value.converter=org.apache.kafka.connect.json.JsonConverter",
                    "value.converter.schemas.enable=false",
                    "config.storage.topic=bankstream-connect-configs",
                    "offset.storage.topic=bankstream-connect-offsets",
                    "status.storage.topic=bankstream-connect-status",
                    f"config.storage.replication.factor={replicas}",
                    f"offset.storage.replication.factor={replicas}",
                    f"status.storage.replication.factor={replicas}",
                    # sink tasks commit their offsets at this interval: lag is read from them
                    "offset.flush.interval.ms=1000",
                    f"listeners=http://{LOCALHOST}:{port}",
                    f"rest.advertised.host.name={LOCALHOST}",
                    f"rest.advertised.port={port}",
                    f"plugin.path={self.plugins}",
                    # a run's connector sets its own consumer's group and poll size
                    "connector.client.config.override.policy=All",
                    "",
                ]
            )
        )
        heap = self.settings.connect_heap
        return [
            java,
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={asset('log4j2.xml')}",
            f"-Dbankstream.kafka.log={self.home / 'logs' / 'connect-worker.log'}",
            "-cp",
            f"{self.lib}/*",
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(properties),
        ]


def all_services(settings: Settings, brokers: int | None = None) -> list[Service]:
    """The stack's services, Kafka's ``brokers`` nodes first (default: the setting, else as
    many as run now, else one)."""
    count = brokers or settings.stack_kafka_brokers or running_brokers(settings) or 1
    if KafkaService(settings).external:
        count = 1
    nodes: list[Service] = [
        KafkaService(
            settings,
            name="kafka" if n == 1 else f"kafka-{n}",
            title="Kafka" if count == 1 else f"Kafka broker {n}",
            node=n,
            brokers=count,
        )
        for n in range(1, count + 1)
    ]
    services: list[Service] = [*nodes, MongoService(settings), PrometheusService(settings)]
    pushing = settings.stack_pushgateway or settings.is_given("pushgateway_url")
    if pushing or runs(settings, "pushgateway"):
        services.append(PushgatewayService(settings))
    if settings.stack_connect or settings.is_given("connect_url") or connect_runs(settings):
        services.append(ConnectService(settings))
    return services


def runs(settings: Settings, name: str) -> bool:
    """The local stack's service ``name`` runs now (its pid file)."""
    from bankstream.stack.process import ManagedProcess

    run = settings.home / "run"
    proc = ManagedProcess(name, run, settings.home / "logs" / f"{name}.log", str(settings.home))
    return proc.pid() is not None


def connect_runs(settings: Settings) -> bool:
    """The local stack's Kafka Connect runs now (its pid file)."""
    return runs(settings, "connect")


def running_brokers(settings: Settings) -> int | None:
    """The broker count of the local Kafka nodes that run now (their variant files), if any."""
    from bankstream.stack.process import ManagedProcess

    run = settings.home / "run"
    for pid_file in sorted(run.glob("kafka*.pid")) if run.is_dir() else []:
        name = pid_file.stem
        proc = ManagedProcess(name, run, settings.home / "logs" / f"{name}.log", str(settings.home))
        variant = run / f"{name}.variant"
        if proc.pid() is not None and variant.is_file():
            words = variant.read_text().split()
            if words and words[0].isdigit():
                return int(words[0])
    return None
