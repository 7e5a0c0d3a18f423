"""The real control plane: controllers act, kwok runs pods, upstream CRDs validate."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from qarun_devstack.kube import KWOK_NODE, KubeCluster

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "smoke", "namespace": "default"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "smoke"}},
        "template": {
            "metadata": {"labels": {"app": "smoke"}},
            "spec": {
                "containers": [{"name": "app", "image": "registry.invalid/smoke:1"}],
                "tolerations": [{"operator": "Exists"}],
            },
        },
    },
}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def get_json(kube: KubeCluster, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


def test_deployment_gets_replicaset_and_running_pods(kube: KubeCluster) -> None:
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(DEPLOYMENT))

    def replicaset_owned() -> bool:
        items = get_json(kube, "replicasets", "-l", "app=smoke")["items"]
        return any(
            ref["kind"] == "Deployment" and ref["name"] == "smoke"
            for rs in items
            for ref in rs["metadata"].get("ownerReferences", [])
        )

    def pods_running() -> bool:
        pods = get_json(kube, "pods", "-l", "app=smoke")["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return len(running) == 2 and all(p["spec"]["nodeName"] == KWOK_NODE for p in running)

    wait_for(replicaset_owned, 60, "the controller-manager to create the ReplicaSet")
    wait_for(pods_running, 90, "2 pods Running on the kwok node")
    status = get_json(kube, "deployment", "smoke")["status"]
    wait_for(
        lambda: get_json(kube, "deployment", "smoke")["status"].get("readyReplicas") == 2,
        60,
        f"the Deployment to report 2 ready replicas (status {status})",
    )


UPSTREAM_SAMPLES = """
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: qarun.smoke.questions
  namespace: default
  labels: {strimzi.io/cluster: qarun}
spec:
  partitions: 6
  replicas: 1
  config: {retention.ms: 86400000}
---
apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata: {name: qarun-smoke-session, namespace: default}
spec:
  image: flink:2.2
  flinkVersion: v2_2
  serviceAccount: flink
  jobManager: {resource: {memory: 1024m, cpu: 0.5}}
  taskManager: {resource: {memory: 1024m, cpu: 0.5}}
---
apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata: {name: qarun-smoke-scoring, namespace: default}
spec:
  deploymentName: qarun-smoke-session
  job:
    entryClass: org.apache.flink.client.python.PythonDriver
    args: ["-py", "/opt/qarun/job.py"]
    parallelism: 2
    upgradeMode: stateless
"""


def test_upstream_custom_resources_pass_server_side_dry_run(kube: KubeCluster) -> None:
    done = kube.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=UPSTREAM_SAMPLES
    )
    for name in ("kafkatopic", "flinkdeployment", "flinksessionjob"):
        assert name in done.stdout.lower(), done.stdout


def test_upstream_crd_schema_rejects_bad_input(kube: KubeCluster) -> None:
    bad = UPSTREAM_SAMPLES.split("---", maxsplit=1)[0].replace("partitions: 6", "partitions: many")
    done = kube.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=bad, check=False
    )
    assert done.returncode != 0
    assert "spec.partitions" in done.stderr


def test_helm_lints_renders_and_applies_a_chart(kube: KubeCluster, tmp_path: Path) -> None:
    chart = Path(__file__).with_name("minimal-chart")
    lint = kube.helm("lint", str(chart), "--strict")
    assert "0 chart(s) failed" in lint.stdout

    rendered = kube.helm("template", "demo", str(chart), "--set", "replicas=3").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert [d["kind"] for d in docs] == ["ConfigMap"]
    assert docs[0]["data"] == {"message": "hello", "replicas": "3"}
    applied = kube.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=rendered)
    assert "configmap/demo-config serverside-applied" in applied.stdout
