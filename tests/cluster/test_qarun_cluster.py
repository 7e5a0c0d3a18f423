"""Acceptance on the real node: the user's sequence, unchanged in spirit.

    helm install qarun charts/qarun-stack -n qarun --create-namespace  (this node's values:
        the simulator, the images `make images` pushed, Kafka plain, Flink standalone)
    kubectl apply -n qarun -f k8s/qarun.yaml   (300 questions, lexical)
    kubectl get qr -n qarun                    ... Succeeded

The operator, the workers, the API, the simulator, Kafka, PostgreSQL, Redis and the Flink
session run in their pods as the charts and the operator define them. Mid-run the test
scales the workers to 3 and deletes one LLM worker pod, the storage writer pod, the
TaskManager pod and then the JobManager pod; every question still ends with exactly one
result. Deleting the QARun leaves none of its children (topics included); uninstalling
the release leaves the namespace empty. Timings and the stack's CPU and memory go to
test-artifacts/cluster-timings.json.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from qarun_devstack import paths
from qarun_devstack.cluster import RealCluster
from qarun_devstack.images import PROJECT_IMAGES, require_image

ROOT = paths.ROOT
NAMESPACE = "qarun"
RUN = "yahoo-demo"
QUESTIONS = 300
ARTIFACTS = ROOT / "test-artifacts"
STATE_CLAIM = f"{RUN}-flink-state"
CHILD_KINDS = "deployments,jobs,configmaps,services,persistentvolumeclaims"
timings: dict[str, Any] = {}


def record(name: str, value: Any) -> None:
    timings[name] = round(value, 1) if isinstance(value, float) else value
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cluster-timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"{name}: {timings[name]}")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def get(cluster: RealCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", "-n", NAMESPACE, *args, "-o", "json").stdout)


def pods(cluster: RealCluster, component: str) -> list[dict[str, Any]]:
    selector = f"qarun.io/run={RUN},qarun.io/component={component}"
    items: list[dict[str, Any]] = get(cluster, "pods", "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses", [])
    return pod["status"].get("phase") == "Running" and all(s.get("ready") for s in statuses)


RESULTS_QUERY = f"select count(*), count(distinct question_id) from results where run = '{RUN}'"  # noqa: S608 - a constant


def results(cluster: RealCluster) -> tuple[int, int]:
    """(rows, distinct questions) of the run in PostgreSQL; (0, 0) before the storage
    writer created the table."""
    done = cluster.kubectl(
        "exec", "-n", NAMESPACE, "statefulset/qarun-postgres", "--",
        "psql", "-U", "qarun", "-d", "qarun", "-At", "-c", RESULTS_QUERY, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return 0, 0
    rows, distinct = done.stdout.strip().split("|")
    return int(rows), int(distinct)


def api_summary(cluster: RealCluster) -> dict[str, Any]:
    script = (
        "import urllib.request,sys;"
        f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:8080/runs/{RUN}/summary')"
        ".read().decode())"
    )
    done = cluster.kubectl(
        "exec", "-n", NAMESPACE, "deploy/qarun-api", "--", "python", "-c", script
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def topics(cluster: RealCluster) -> set[str]:
    done = cluster.kubectl(
        "exec", "-n", NAMESPACE, "statefulset/qarun-kafka", "--",
        "java", "-cp", "/opt/kafka/libs/*", "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server", "localhost:9092", "--list",
    )  # fmt: skip
    return {t for t in done.stdout.split() if t.startswith(f"qarun.{RUN}.")}


def stack_usage(cluster: RealCluster) -> dict[str, Any]:
    """CPU (cores) and memory (MiB) of every pod in the namespace, from kubelet's summary."""
    node = get(cluster, "pods")["items"][0]["spec"]["nodeName"]
    done = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/stats/summary", check=False)
    if done.returncode != 0:
        return {"unavailable": done.stderr.strip()[-300:]}
    raw = done.stdout
    cpu = memory = 0.0
    for pod in json.loads(raw).get("pods", []):
        if pod["podRef"]["namespace"] != NAMESPACE:
            continue
        cpu += pod.get("cpu", {}).get("usageNanoCores", 0) / 1e9
        memory += pod.get("memory", {}).get("workingSetBytes", 0) / 2**20
    return {"cpu_cores": round(cpu, 2), "memory_mib": round(memory)}


@pytest.fixture(scope="module")
def stack(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealCluster]:
    """The stack installed with helm, from the chart with its (offline) dependencies."""
    for name in (*PROJECT_IMAGES, "kafka", "postgres", "redis"):
        require_image(name)
    chart = tmp_path_factory.mktemp("chart") / "qarun-stack"
    shutil.copytree(ROOT / "charts" / "qarun-stack", chart)
    (chart / "charts").mkdir()
    shutil.copytree(ROOT / "charts" / "qarun-operator", chart / "charts" / "qarun-operator")
    for name in ("strimzi-kafka-operator", "flink-kubernetes-operator"):
        shutil.copytree(paths.upstream_charts() / name, chart / "charts" / name)
    kube = real_cluster.control_plane
    assert kube is not None
    started = time.monotonic()
    kube.helm(
        "install", "qarun", str(chart), "-n", NAMESPACE, "--create-namespace",
        "-f", str(ROOT / "charts" / "qarun-stack" / "values-node.yaml"),
        "--wait", "--timeout", "15m", timeout=960,
    )  # fmt: skip
    record("helm_install_to_ready_s", time.monotonic() - started)
    try:
        yield real_cluster
    finally:
        # A run the test did not get to delete goes first, while its operator still runs
        # (its finalizer releases the topics).
        real_cluster.kubectl(
            "delete", "qaruns", "--all", "-n", NAMESPACE, "--timeout=180s", check=False,
            timeout=200,
        )  # fmt: skip
        kube.helm("uninstall", "qarun", "-n", NAMESPACE, "--wait", "--timeout", "5m", timeout=330)

        def left() -> list[str]:
            names = real_cluster.kubectl(
                "get", "all,configmaps,secrets,pvc,qaruns", "-n", NAMESPACE, "-o", "name"
            ).stdout.split()
            # What every namespace keeps: the cluster's CA bundle ConfigMap.
            return [n for n in names if n != "configmap/kube-root-ca.crt"]

        deadline = time.monotonic() + 180  # pods terminate after their Deployments go
        while left() and time.monotonic() < deadline:
            time.sleep(2)
        assert left() == [], "the uninstalled release left objects in its namespace"


def checkpoint_volumes(cluster: RealCluster) -> list[str]:
    """The PersistentVolumes bound to the run's Flink checkpoint claim."""
    volumes = json.loads(cluster.kubectl("get", "pv", "-o", "json").stdout)["items"]
    return [
        v["metadata"]["name"]
        for v in volumes
        if (v["spec"].get("claimRef") or {}).get("name") == STATE_CLAIM
        and v["spec"]["claimRef"].get("namespace") == NAMESPACE
    ]


def sample_run() -> dict[str, Any]:
    """k8s/qarun.yaml at 300 questions, lexical, with checkpoints every 5 s so that the
    pod deletions below restore from recent ones."""
    run = yaml.safe_load((ROOT / "k8s" / "qarun.yaml").read_text())
    spec = run["spec"]
    spec["dataset"]["limit"] = spec["traffic"]["total"] = QUESTIONS
    spec["traffic"]["ratePerSecond"] = 5
    spec["scoring"]["method"] = "lexical"
    spec["flink"]["checkpointIntervalSeconds"] = 5
    spec["workers"]["resources"] = {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    return dict(run)


def test_helm_install_then_kubectl_apply_runs_to_succeeded(stack: RealCluster) -> None:
    cluster = stack
    applied = time.monotonic()
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(sample_run()))

    wait_for(lambda: results(cluster)[0] > 0, 600, "the first result in PostgreSQL")
    record("apply_to_first_result_s", time.monotonic() - applied)
    # The checkpoint claim names no class: the node's default one provisioned it.
    claim = get(cluster, "pvc", STATE_CLAIM)
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "node-local"
    assert checkpoint_volumes(cluster) == [claim["spec"]["volumeName"]]
    record("stack_usage_running", stack_usage(cluster))

    # kubectl scale: three Running LLM workers within 30 s.
    cluster.kubectl("scale", "-n", NAMESPACE, f"qarun/{RUN}", "--replicas=3")
    scaled = time.monotonic()
    wait_for(
        lambda: len([p for p in pods(cluster, "llm-worker") if running(p)]) == 3,
        30, "3 Running LLM worker pods", every=0.5,
    )  # fmt: skip
    record("scale_to_3_running_s", time.monotonic() - scaled)

    # Crashes mid-run: a worker, the storage writer, the TaskManager, then the JobManager.
    for component in ("llm-worker", "storage-writer", "flink-taskmanager", "flink-jobmanager"):
        victim = pods(cluster, component)[0]["metadata"]["name"]
        cluster.kubectl("delete", "pod", "-n", NAMESPACE, victim, "--wait=false")

        def replaced(c: str = component, v: str = victim) -> bool:
            return any(running(p) and p["metadata"]["name"] != v for p in pods(cluster, c))

        wait_for(replaced, 300, f"a new {component} pod Running")
        before = results(cluster)[0]
        wait_for(
            lambda b=before: results(cluster)[0] > b or results(cluster)[0] == QUESTIONS,
            300, f"results again after deleting the {component} pod",
        )  # fmt: skip

    def ended() -> dict[str, Any] | None:
        status: dict[str, Any] = get(cluster, "qarun", RUN).get("status", {})
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(ended, 900, "the QARun Succeeded")
    assert status["phase"] == "Succeeded", status
    record("apply_to_succeeded_s", time.monotonic() - applied)

    rows, distinct = results(cluster)
    assert (rows, distinct) == (QUESTIONS, QUESTIONS), "a result lost or duplicated"
    progress = status["progress"]
    assert progress["sent"] == QUESTIONS
    assert progress["validated"] + progress["exhausted"] + progress["failed"] == QUESTIONS
    printed = cluster.kubectl("get", "qr", "-n", NAMESPACE, RUN).stdout
    assert str(progress["validated"]) in printed and "Succeeded" in printed, printed
    summary = api_summary(cluster)
    assert summary["progress"]["validated"] == progress["validated"]
    assert summary["progress"]["exhausted"] == progress["exhausted"]
    assert status["flink"]["submissions"] == 0, "the job failed once; it should only have moved"
    record("stack_usage_after_run", stack_usage(cluster))

    # kubectl delete qarun: no child left, topics included.
    assert len(topics(cluster)) >= 5
    cluster.kubectl("delete", "qarun", RUN, "-n", NAMESPACE, "--wait=true", "--timeout=180s")
    wait_for(
        lambda: cluster.kubectl(
            "get", CHILD_KINDS, "-n", NAMESPACE, "-l", f"qarun.io/run={RUN}", "-o", "name"
        ).stdout.strip() == "",
        180, "the run's children gone",
    )  # fmt: skip
    assert topics(cluster) == set(), "the run's topics outlived it"
    wait_for(lambda: checkpoint_volumes(cluster) == [], 60, "the checkpoint volume deleted")
