"""Helpers shared by the operator tests (imported as `optools`: tests/operator is on sys.path)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from qarun_devstack.kube import KubeCluster

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


class SummaryServer:
    """Plays the API's GET /runs/{run}/summary: tests set what each run reports."""

    def __init__(self) -> None:
        self.summaries: dict[str, JSON] = {}
        summaries = self.summaries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = self.path.split("?")[0].strip("/").split("/")
                body = summaries.get(parts[1]) if len(parts) == 3 else None
                data = json.dumps(body).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/runs/{{run}}/summary"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
