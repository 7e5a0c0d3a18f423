"""The whole local infrastructure at once, for `make demo` and benchmarks."""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from qarun_devstack.flink import FlinkSetup
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KubeCluster
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis


@dataclass
class LocalStack:
    """Kafka, PostgreSQL, Redis, the Flink wiring and (optionally) a Kubernetes API."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qarun-")))
    with_kube: bool = True
    startup_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stack = ExitStack()
        self.kafka = KafkaBroker(self.workdir / "kafka")
        self.postgres = Postgres(self.workdir / "postgres")
        self.redis = Redis(self.workdir / "redis")
        self.kube = KubeCluster(self.workdir / "kube") if self.with_kube else None
        self.flink: FlinkSetup | None = None

    def __enter__(self) -> LocalStack:
        try:
            for name, component in self._components():
                started = time.monotonic()
                component.start()
                self._stack.callback(component.stop)
                self.startup_seconds[name] = round(time.monotonic() - started, 2)
            self.flink = FlinkSetup()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _components(self) -> list[tuple[str, KafkaBroker | Postgres | Redis | KubeCluster]]:
        parts: list[tuple[str, KafkaBroker | Postgres | Redis | KubeCluster]] = [
            ("kafka", self.kafka),
            ("postgres", self.postgres),
            ("redis", self.redis),
        ]
        return [*parts, ("kubernetes", self.kube)] if self.kube else parts

    def endpoints(self) -> dict[str, str]:
        found = {
            "kafka": self.kafka.bootstrap,
            "postgres": self.postgres.dsn,
            "redis": self.redis.url,
        }
        if self.kube:
            found["kubernetes"] = f"{self.kube.server} (KUBECONFIG={self.kube.kubeconfig})"
        if self.flink:
            found["flink"] = f"embedded MiniCluster per job, connector {self.flink.connector_jar}"
        return found
