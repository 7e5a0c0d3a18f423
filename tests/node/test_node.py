"""The real node runs the stack's images: Services, cluster DNS, the charts' security.

A Deployment of the workers image serves the LLM simulator behind a Service; a pod of
the same image finds it by its DNS name and asks it a question. The pod's exit code and
logs come from the container runtime (through kubelet), so they prove the container ran.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qarun_devstack.cluster import RealCluster
from qarun_devstack.images import require_image

# What the charts ask of every QARun pod (charts/qarun-stack/templates/_helpers.tpl).
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
TMP = {"volumes": [{"name": "tmp", "emptyDir": {}}]}
TMP_MOUNT = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - an emptyDir, as the charts mount

CLIENT = """
import json, os, socket, time, urllib.request
host = "llm-sim.{ns}.svc.cluster.local"
print("resolved", host, socket.gethostbyname(host), flush=True)
request = urllib.request.Request(
    f"http://{{host}}:8000/v1/chat/completions",
    data=json.dumps({{
        "model": "qarun-sim",
        "messages": [{{"role": "user", "content": "Why is the sky blue?"}}],
    }}).encode(),
    headers={{"Content-Type": "application/json"}},
)
# A new Service's address routes only once kube-proxy has written its rules, a moment
# after the Endpoints exist (seconds under load: "Network is unreachable" until then),
# so the client retries as any client of a new Service would.
deadline = time.monotonic() + 60
while True:
    try:
        reply = json.load(urllib.request.urlopen(request, timeout=30))
        break
    except OSError as error:
        if time.monotonic() > deadline:
            raise
        print("not yet:", error, flush=True)
        time.sleep(1)
print("answer", json.dumps(reply["choices"][0]["message"]["content"]), flush=True)
print("uid", os.getuid(), flush=True)
try:
    open("/root-fs-probe", "w")
    print("root fs writable", flush=True)
except OSError as error:
    print("root fs read-only:", error.strerror, flush=True)
open("/tmp/probe", "w").write("ok")
print("tmp writable", flush=True)
raise SystemExit(7)
"""


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def get(cluster: RealCluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", *args, "-o", "json").stdout))


@pytest.fixture
def namespace(real_cluster: RealCluster) -> Iterator[str]:
    name = f"smoke-{secrets.token_hex(3)}"
    real_cluster.kubectl("create", "namespace", name)
    yield name
    real_cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_node_is_ready_and_coredns_runs(real_cluster: RealCluster) -> None:
    node = get(real_cluster, "nodes")["items"]
    assert len(node) == 1
    ready = {c["type"]: c["status"] for c in node[0]["status"]["conditions"]}["Ready"]
    assert ready == "True"
    addresses = {a["type"]: a["address"] for a in node[0]["status"]["addresses"]}
    assert addresses["InternalIP"] == real_cluster.node_ip
    assert not real_cluster.node_ip.startswith("127.")
    pods = get(real_cluster, "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert pods[0]["spec"]["containers"][0]["image"] == require_image("coredns")


def test_a_pod_reaches_the_simulator_by_its_service_name(
    real_cluster: RealCluster, namespace: str
) -> None:
    image = require_image("workers")
    labels = {"app": "llm-sim"}
    simulator = {
        "name": "llm-sim",
        "image": image,
        "command": ["qarun-llm-sim", "--host", "0.0.0.0", "--port", "8000", "--latency", "0.01"],  # noqa: S104
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": TMP_MOUNT,
    }
    manifests = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "llm-sim", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": POD_SECURITY,
                        "containers": [simulator],
                        **TMP,
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "llm-sim", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 8000, "targetPort": "http"}]},
        },
    ]
    real_cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
    )
    real_cluster.kubectl(
        "-n", namespace, "rollout", "status", "deployment/llm-sim", "--timeout=300s", timeout=320
    )

    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "command": ["python", "-c", CLIENT.format(ns=namespace)],
                    "securityContext": CONTAINER_SECURITY,
                    "volumeMounts": TMP_MOUNT,
                }
            ],
            **TMP,
        },
    }
    real_cluster.kubectl("apply", "-f", "-", input=json.dumps(client))

    def finished() -> bool:
        phase = get(real_cluster, "pod", "client", "-n", namespace)["status"].get("phase")
        return phase in ("Succeeded", "Failed")

    wait_for(finished, 180, "the client pod to finish")
    status = get(real_cluster, "pod", "client", "-n", namespace)["status"]
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    logs = real_cluster.kubectl("-n", namespace, "logs", "client").stdout
    # The exit code the program chose, as the runtime reported it: the container ran.
    assert terminated["exitCode"] == 7, logs
    assert terminated["containerID"].startswith("containerd://")
    assert "resolved llm-sim." in logs
    assert 'answer "' in logs
    assert "uid 10001" in logs
    assert "root fs read-only: Read-only file system" in logs
    assert "tmp writable" in logs


def test_a_claim_naming_no_class_binds_to_a_node_local_volume(
    real_cluster: RealCluster, namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "state", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    real_cluster.kubectl("apply", "-f", "-", input=json.dumps(claim))
    wait_for(
        lambda: (
            get(real_cluster, "pvc", "state", "-n", namespace)["status"].get("phase") == "Bound"
        ),
        60,
        "the claim Bound",
    )
    bound = get(real_cluster, "pvc", "state", "-n", namespace)
    assert bound["spec"]["storageClassName"] == "node-local"  # the default class
    volume = get(real_cluster, "pv", bound["spec"]["volumeName"])
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert directory.is_relative_to(real_cluster.workdir)

    writer = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "writer", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "writer",
                    "image": require_image("workers"),
                    "command": ["python", "-c", "open('/state/probe', 'w').write('written')"],
                    "securityContext": CONTAINER_SECURITY,
                    "volumeMounts": [{"name": "state", "mountPath": "/state"}],
                }
            ],
            "volumes": [{"name": "state", "persistentVolumeClaim": {"claimName": "state"}}],
        },
    }
    real_cluster.kubectl("apply", "-f", "-", input=json.dumps(writer))
    wait_for(
        lambda: (
            get(real_cluster, "pod", "writer", "-n", namespace)["status"].get("phase")
            in ("Succeeded", "Failed")
        ),
        180,
        "the writer pod to finish",
    )
    logs = real_cluster.kubectl("-n", namespace, "logs", "writer").stdout
    assert get(real_cluster, "pod", "writer", "-n", namespace)["status"]["phase"] == "Succeeded", (
        logs
    )
    assert (directory / "probe").read_text() == "written"
    assert (directory / "probe").stat().st_uid == 10001

    real_cluster.kubectl("delete", "pod", "writer", "-n", namespace)
    real_cluster.kubectl("delete", "pvc", "state", "-n", namespace)
    wait_for(
        lambda: (
            real_cluster.kubectl("get", "pv", volume["metadata"]["name"], check=False).returncode
            != 0
        ),
        60,
        "the volume deleted with its claim",
    )
    assert not directory.exists()
