"""A single-node Apache Kafka broker in KRaft mode, from the Maven Central jars."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from qarun_core.kafka_topics import ensure_topics
from qarun_core.ports import free_port
from qarun_devstack import paths
from qarun_devstack.process import Service, port_open, run

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def server_properties(port: int, controller_port: int, log_dirs: Path) -> str:
    """Combined broker+controller on loopback, sized for one small machine."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dirs),
        "num.partitions": "1",
        # Topics are created explicitly, as Strimzi KafkaTopics are in a cluster.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "24",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


@dataclass
class KafkaBroker:
    workdir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap: str = "512m"
    service: Service | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> KafkaBroker:
        libs = paths.kafka_libs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        props = self.workdir / "server.properties"
        props.write_text(server_properties(self.port, self.controller_port, self.workdir / "data"))
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=self.workdir / "server.log"))
        # The full JIT (no -XX:TieredStopAtLevel=1): C1 alone started 0.5 s sooner,
        # but the broker then took 0.32 cores at 200 questions/s end to end, not 0.26.
        java = [
            "java",
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # --cluster-id=ID, not "-t ID": one random id in 64 starts with "-".
        storage_format = [
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            f"--cluster-id={cluster_id}",
        ]
        if not (self.workdir / "data" / "meta.properties").exists():  # a restart keeps its data
            run([*java, *storage_format, "-c", str(props)], "formatting the Kafka log directory")
        self.service = Service(
            "kafka", [*java, "kafka.Kafka", str(props)], self.workdir / "out.log"
        )
        self.service.start().wait_ready(self._ready, timeout, "accepting metadata requests")
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):  # before the client, which would log every refusal
            return False
        admin = self.admin()
        return len(admin.list_topics(timeout=2).brokers) == 1

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, name: str, partitions: int = 1, **config: str) -> None:
        """Create a topic and wait until it exists; an existing topic is left as it is."""
        ensure_topics(self.bootstrap, {name: partitions}, config=config)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(grace=20)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (SIGTERM: a controlled shutdown, as in a rolling restart) and start again
        on the same ports with the same data, after `down_seconds` down."""
        self.stop()
        time.sleep(down_seconds)
        self.start()
