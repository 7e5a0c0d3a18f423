"""Helpers shared by the operator tests (imported as `optools`: tests/operator is on sys.path)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qarun_core.ports import free_port
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KubeCluster
from qarun_devstack.postgres import Postgres
from qarun_devstack.process import Service, port_open
from qarun_devstack.redis import Redis

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
CRD_FILE = CHARTS / "qarun-operator" / "crds" / "qaruns.qarun.io.yaml"
OPERATOR_NAMESPACE = "qarun-system"
OPERATOR_RELEASE = "qarun-operator"  # the chart's full name is then just this
OPERATOR_SA = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_RELEASE}"

JSON = dict[str, Any]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll until condition() is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def get_json(kube: KubeCluster, *args: str) -> JSON:
    done = kube.kubectl("get", *args, "-o", "json")
    result: JSON = json.loads(done.stdout)
    return result


def ensure_namespace(kube: KubeCluster, name: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))


def render_operator_chart(kube: KubeCluster, *extra: str) -> str:
    return kube.helm(
        "template", OPERATOR_RELEASE, str(CHARTS / "qarun-operator"),
        "--namespace", OPERATOR_NAMESPACE, *extra,
    ).stdout  # fmt: skip


@dataclass
class SummaryAPI:
    """The real QARun API (qarun-api) on the test's PostgreSQL, Redis and Kafka: the
    operator reads each run's summary from it, as on a cluster."""

    service: Service
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/runs/{{run}}/summary"


def start_summary_api(
    kafka: KafkaBroker, postgres: Postgres, redis: Redis, log: Path
) -> SummaryAPI:
    port = free_port()
    env = {
        "QARUN_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
        "QARUN_STORAGE__POSTGRES_DSN": postgres.dsn,
        "QARUN_STORAGE__REDIS_URL": redis.url,
        "QARUN_API__HOST": "127.0.0.1",
        "QARUN_API__PORT": str(port),
    }
    argv = [sys.executable, "-m", "qarun_workers.api"]
    service = Service("qarun-api", argv, log, env=env).start()
    service.wait_ready(lambda: port_open(port), 60, "listening")
    return SummaryAPI(service, port)


def service_account_kubeconfig(kube: KubeCluster, path: Path) -> Path:
    token = kube.kubectl(
        "create", "token", OPERATOR_RELEASE, "-n", OPERATOR_NAMESPACE, "--duration=2h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": kube.server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "operator"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path
