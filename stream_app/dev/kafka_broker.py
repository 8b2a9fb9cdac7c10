"""Apache Kafka itself, from its own jars, on loopback: the real broker for tests and the bench, no Docker.

One KRaft process that is both broker and controller, on two free loopback
ports, its storage formatted in a fresh folder with a random cluster id. The
jars come from Maven Central through ``ops/kafka/pom.xml`` (Apache Kafka
4.1.1 and its runtime dependencies, about 43 MB, fetched once into
``.kafka/lib``; ``make kafka-jars``, or the first start, does it); the JDK is
the machine's (``JAVA_HOME``, else ``java`` on the PATH; Kafka 4 needs 17+).

Unlike the embedded broker it keeps its data on disk, drops a member that
leaves its group, compacts compacted topics and answers end offsets right, so
the worker runs here with its production settings.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from churnwatch.dev.child_process import ChildProcess
from churnwatch.dev.embedded_broker import BrokerError, free_port, kafka_answers

PROJECT = Path(__file__).resolve().parents[2]  # stream_app/dev/ -> the checkout
POM = PROJECT / "ops" / "kafka" / "pom.xml"
DEFAULT_LIB = PROJECT / ".kafka" / "lib"

# A broker for one machine: one replica of everything, no waiting for a
# group's first members, no topic made by asking for it (as in
# docker-compose.yml: the worker creates what it uses).
SERVER_DEFAULTS: dict[str, str] = {
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}
LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = info
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not found or not Path(found).exists():
        raise BrokerError("Apache Kafka needs a JDK 17 or newer: set JAVA_HOME or put java on the PATH")
    return found


def ensure_jars(lib: Path = DEFAULT_LIB) -> Path:
    """The broker's jars, fetched from Maven Central the first time (``mvn``, about 43 MB)."""
    if lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")):
        return lib
    if not POM.exists():
        raise BrokerError(f"no {POM}: the real broker runs from a churnwatch checkout")
    maven = shutil.which("mvn")
    if maven is None:
        raise BrokerError("fetching Apache Kafka's jars needs Maven (mvn) on the PATH")
    partial = lib.with_name(lib.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [maven, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={partial}"],
        capture_output=True, text=True, timeout=900,
    )
    if done.returncode != 0:
        raise BrokerError(f"mvn could not fetch Apache Kafka's jars:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)  # whole or not at all: an interrupted fetch is fetched again
    return lib


def cluster_id() -> str:
    """A random cluster id in Kafka's form (a UUID, URL-safe base64, no padding).

    Never starting with "-", as Kafka's own ``Uuid.randomUuid`` ensures: the
    storage tool would read it as an option.
    """
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not found.startswith("-"):
            return found


class KafkaBroker(ChildProcess):
    """Format, start, wait until it serves metadata, stop by pid; the log goes to ``broker.log``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        work_dir: Path | None = None,
        settings: dict[str, str] | None = None,
        lib: Path = DEFAULT_LIB,
        heap: str = "768m",
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="churnwatch-kafka-"))
        super().__init__(self.work_dir / "broker.log")
        self.host = host
        self.port = port or free_port(host)
        self.controller_port = free_port(host)
        self.settings = settings or {}
        self.lib = lib
        self.heap = heap
        self.startup_timeout_s = startup_timeout_s
        self.cluster_id = cluster_id()

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def server_properties(self) -> dict[str, str]:
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.work_dir / "data"),
            **SERVER_DEFAULTS,
            **self.settings,
        }

    def start(self) -> KafkaBroker:
        if kafka_answers(self.host, self.port, timeout=0.3):
            raise BrokerError(f"something already answers Kafka on {self.bootstrap_servers}")
        lib = ensure_jars(self.lib)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        logging = self.work_dir / "log4j2.properties"
        logging.write_text(LOG4J2)
        classpath = f"{lib}/*"
        jvm = [java(), "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={logging}", "-cp", classpath]
        formatted = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", self.cluster_id,
                                    "-c", str(config)], capture_output=True, text=True, timeout=120)
        if formatted.returncode != 0:
            raise BrokerError(f"formatting Kafka's storage failed: "
                              f"{formatted.stdout[-2000:]}{formatted.stderr[-2000:]}")
        self.spawn([*jvm, "kafka.Kafka", str(config)], dict(os.environ))
        failed = self.started_within(
            lambda: kafka_answers(self.host, self.port) and _serves_metadata(self.bootstrap_servers),
            self.startup_timeout_s, poll_s=0.25)
        if failed:
            raise BrokerError(f"Apache Kafka {failed}")
        return self


def _serves_metadata(bootstrap: str) -> bool:
    """A metadata answer that names this broker: the controller is elected and the broker registered."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def ask() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) != -1
        finally:
            await admin.close()

    try:
        return asyncio.run(asyncio.wait_for(ask(), timeout=5))
    except Exception:  # noqa: BLE001 - not ready yet, whatever it says
        return False
