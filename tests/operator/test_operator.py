"""Acceptance: the operator against the real API server + controller-manager + kwok.

The operator runs in-process (KopfRunner) authenticated as the qarun-operator chart's
ServiceAccount, so these runs also prove the chart's RBAC is enough. There are no
Strimzi or Flink operators here: where the test needs their effect it writes the status
they would write (KafkaTopic Ready, FlinkDeployment READY, FlinkSessionJob RUNNING).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from optools import (
    ROOT,
    ensure_namespace,
    get_json,
    wait_for,
)
from stored_runs import StoredRun

from qarun_core.keys import Role, consumer_group
from qarun_core.topics import RunTopics
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KWOK_NODE, KubeCluster
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis

NAMESPACE = "qarun-e2e"
SAMPLE = ROOT / "k8s" / "qarun.yaml"
RUN = "yahoo-demo"
RETRY_TIERS = ("retry-2s", "retry-10s", "retry-1m")
CHILD_KINDS = "kafkatopics,deployments,jobs,flinkdeployments,flinksessionjobs"
EXPECTED_CHILDREN = {
    ("Deployment", f"{RUN}-llm-worker"),
    ("Deployment", f"{RUN}-retry"),
    ("Deployment", f"{RUN}-storage-writer"),
    ("Job", f"{RUN}-generator"),
    ("FlinkDeployment", f"{RUN}-flink"),
    ("FlinkSessionJob", f"{RUN}-scoring"),
    *{
        ("KafkaTopic", f"qarun.{RUN}.{stream}")
        for stream in ("questions", "answers", "results", "metrics", "dlq", *RETRY_TIERS)
    },
}
ARTIFACTS = ROOT / "test-artifacts"


def children(kube: KubeCluster, run: str = RUN, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(
        kube, CHILD_KINDS, "-n", namespace, "-l", f"qarun.io/run={run}"
    )["items"]
    return items


def qarun(kube: KubeCluster, name: str = RUN) -> dict[str, Any]:
    return get_json(kube, "qarun", name, "-n", NAMESPACE)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return dict(c)
    return {}


def set_status(kube: KubeCluster, kind: str, name: str, status: dict[str, Any]) -> None:
    kube.kubectl(
        "patch", kind, name, "-n", NAMESPACE, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def record(name: str, value: float) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "operator-timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = round(value, 3)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{name}: {value:.3f} s")


def create_secrets(kube: KubeCluster) -> None:
    for name, key in (("llm-credentials", "apiKey"), ("qarun-postgres", "dsn")):
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "stringData": {key: "not-a-real-secret"},
        }
        kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))


def test_qarun_lifecycle(
    kube: KubeCluster, operator: Any, postgres: Postgres, redis: Redis
) -> None:
    ensure_namespace(kube, NAMESPACE)
    create_secrets(kube)

    # 1. Every child exists, owned by the QARun, within seconds.
    # The sample with a real provider's key (the simulator needs none): the Secret is
    # referenced by the workers, never copied.
    sample = yaml.safe_load(SAMPLE.read_text())
    sample["spec"]["llm"]["apiKeySecretRef"] = {"name": "llm-credentials", "key": "apiKey"}
    kube.kubectl("apply", "--server-side", "-n", NAMESPACE, "-f", "-", input=json.dumps(sample))
    started = time.monotonic()
    uid = qarun(kube)["metadata"]["uid"]

    def all_children_owned() -> bool:
        found = {
            (c["kind"], c["metadata"]["name"])
            for c in children(kube)
            if any(
                r["uid"] == uid and r.get("controller") for r in c["metadata"]["ownerReferences"]
            )
        }
        return found == EXPECTED_CHILDREN

    wait_for(all_children_owned, 30, "all children with owner references", every=0.05)
    elapsed = time.monotonic() - started
    record("children_exist_after_apply", elapsed)
    assert elapsed < 15, f"children took {elapsed:.1f} s (the target is 5 s)"
    managed = get_json(
        kube, CHILD_KINDS, "-n", NAMESPACE, "-l", f"qarun.io/run={RUN}", "--show-managed-fields"
    )["items"]
    for child in managed:
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "qarun"
        assert labels["qarun.io/run"] == RUN
        assert labels["qarun.io/component"]
        assert child["metadata"]["managedFields"][0]["manager"] == "qarun-operator"

    # Secrets are referenced, never copied into the children.
    worker = get_json(kube, "deployment", f"{RUN}-llm-worker", "-n", NAMESPACE)
    env = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["QARUN_LLM__API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "llm-credentials",
        "key": "apiKey",
    }
    assert "not-a-real-secret" not in json.dumps(children(kube))

    # 2. The controller-manager makes ReplicaSets, kwok runs the pods.
    def replicasets() -> dict[str, int]:
        items = get_json(kube, "replicasets", "-n", NAMESPACE, "-l", f"qarun.io/run={RUN}")
        return {
            rs["metadata"]["ownerReferences"][0]["name"]: rs["spec"]["replicas"]
            for rs in items["items"]
        }

    wait_for(lambda: len(replicasets()) == 3, 60, "ReplicaSets of the three Deployments")

    def running_workers() -> int:
        pods = get_json(
            kube, "pods", "-n", NAMESPACE, "-l", f"qarun.io/run={RUN},qarun.io/component=llm-worker"
        )["items"]
        return sum(
            1
            for p in pods
            if p["status"].get("phase") == "Running" and p["spec"].get("nodeName") == KWOK_NODE
        )

    wait_for(lambda: running_workers() == 2, 90, "2 LLM worker pods Running on the kwok node")
    wait_for(lambda: qarun(kube).get("status", {}).get("replicas") == 2, 30, "status.replicas = 2")
    assert qarun(kube)["status"]["phase"] == "Provisioning"  # no Strimzi/Flink operator yet

    # 3. kubectl scale sets the LLM worker count through the /scale subresource.
    kube.kubectl("scale", f"qarun/{RUN}", "-n", NAMESPACE, "--replicas=5")
    scaled = time.monotonic()
    wait_for(
        lambda: (
            get_json(kube, "deployment", f"{RUN}-llm-worker", "-n", NAMESPACE)["spec"]["replicas"]
            == 5
        ),
        30,
        "the worker Deployment at 5 replicas",
        every=0.05,
    )
    record("scale_to_deployment", time.monotonic() - scaled)
    wait_for(lambda: running_workers() == 5, 90, "5 LLM worker pods Running")
    scale = json.loads(
        kube.kubectl(
            "get", "--raw", f"/apis/qarun.io/v1alpha1/namespaces/{NAMESPACE}/qaruns/{RUN}/scale"
        ).stdout
    )
    assert scale["spec"]["replicas"] == 5
    wait_for(
        lambda: (
            json.loads(
                kube.kubectl(
                    "get",
                    "--raw",
                    f"/apis/qarun.io/v1alpha1/namespaces/{NAMESPACE}/qaruns/{RUN}/scale",
                ).stdout
            )["status"].get("replicas")
            == 5
        ),
        30,
        "the scale subresource to report 5 replicas",
    )
    assert scale["status"]["selector"] == f"qarun.io/run={RUN},qarun.io/component=llm-worker"

    # 4. A spec change rolls out: threshold -> the scoring job, concurrency -> the workers.
    patch = {"spec": {"scoring": {"threshold": 0.9}, "llm": {"maxConcurrency": 64}}}
    kube.kubectl("patch", "qarun", RUN, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))

    def job_args() -> list[str]:
        job = get_json(kube, "flinksessionjob", f"{RUN}-scoring", "-n", NAMESPACE)
        args: list[str] = job["spec"]["job"]["args"]
        return args

    wait_for(lambda: "0.9" in job_args(), 30, "the new threshold in the FlinkSessionJob")
    assert job_args()[job_args().index("--scoring.threshold") + 1] == "0.9"

    def worker_concurrency() -> str:
        d = get_json(kube, "deployment", f"{RUN}-llm-worker", "-n", NAMESPACE)
        env = {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        return str(env["QARUN_LLM__MAX_CONCURRENCY"])

    wait_for(lambda: worker_concurrency() == "64", 30, "the new concurrency in the workers")
    worker_rs = (
        "replicasets",
        "-n",
        NAMESPACE,
        "-l",
        f"qarun.io/run={RUN},qarun.io/component=llm-worker",
    )
    wait_for(
        lambda: len(get_json(kube, *worker_rs)["items"]) == 2,
        60,
        "a second worker ReplicaSet (rolling update)",
    )
    generation = qarun(kube)["metadata"]["generation"]
    wait_for(
        lambda: qarun(kube)["status"].get("observedGeneration") == generation,
        30,
        f"observedGeneration {generation}",
    )

    # 5. With the upstream operators' status in place the run is Running and Ready.
    for child in children(kube):
        kind, name = child["kind"], child["metadata"]["name"]
        if kind == "KafkaTopic":
            set_status(
                kube, "kafkatopic", name, {"conditions": [{"type": "Ready", "status": "True"}]}
            )
        elif kind == "FlinkDeployment":
            set_status(kube, "flinkdeployment", name, {"jobManagerDeploymentStatus": "READY"})
        elif kind == "FlinkSessionJob":
            set_status(kube, "flinksessionjob", name, {"jobStatus": {"state": "RUNNING"}})
    # The run's API (the real one) summarises what the test stores, as the pipeline would.
    stored = StoredRun(postgres.dsn, redis.url, RUN)
    stored.generator(400, done=False)
    stored.add("validated", 300, score=0.81)
    stored.add("exhausted", 20, score=0.6, attempts=3)
    running = wait_for(
        lambda: (
            (q := qarun(kube))["status"].get("phase") == "Running"
            and q["status"]["progress"]["validated"] == 300
            and q
        ),
        60,
        "phase Running with the stored results",
    )
    assert condition(running, "Ready")["status"] == "True"
    assert condition(running, "Degraded")["status"] == "False"
    progress = running["status"]["progress"]
    assert (progress["sent"], progress["exhausted"], progress["answered"]) == (400, 20, 360)
    assert progress["answered"] == stored.counts()["answered"]
    mean = (300 * 0.81 + 20 * 0.6) / 320
    assert running["status"]["score"]["mean"] == pytest.approx(mean)
    assert running["status"]["attempts"] == {"1": 300, "3": 20}
    assert running["status"]["usage"]["promptTokens"] == 300 * 10 + 20 * 30
    table = kube.kubectl("get", "qarun", RUN, "-n", NAMESPACE).stdout
    assert "Running" in table
    assert "360" in table
    assert "0.7968" in table  # (300 * 0.81 + 20 * 0.6) / 320 = 0.796875

    # 6. Every question has a final outcome: Succeeded, and the workers are released.
    stored.add("validated", 640, score=0.9)
    stored.add("exhausted", 30, score=0.5, attempts=2)
    stored.add("failed", 9)
    stored.generator(1000, done=True)
    time.sleep(3)  # a few status rounds: one result is still missing
    assert qarun(kube)["status"]["phase"] == "Running"
    stored.add("failed", 1)
    done = wait_for(
        lambda: (q := qarun(kube))["status"].get("phase") == "Succeeded" and q,
        60,
        "phase Succeeded",
    )
    assert condition(done, "Succeeded")["status"] == "True"
    assert condition(done, "Succeeded")["reason"] == "AllAnswered"
    assert done["status"]["progress"] == {
        "total": 1000, "sent": 1000, "skipped": 0, "answered": 360 + 640 + 60,
        "validated": 940, "regenerated": 50, "exhausted": 50, "failed": 10, "deadLettered": 0,
    }  # fmt: skip
    assert done["status"]["finishedAt"]
    wait_for(
        lambda: (
            get_json(kube, "deployment", f"{RUN}-llm-worker", "-n", NAMESPACE)["spec"]["replicas"]
            == 0
        ),
        30,
        "the finished run's workers scaled to 0",
    )
    events = kube.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={RUN}"
    ).stdout
    assert "Succeeded" in events

    # 7. Deleting the QARun leaves no child (garbage collection by owner references).
    kube.kubectl("delete", "qarun", RUN, "-n", NAMESPACE, "--wait=true")
    deleted = time.monotonic()
    wait_for(lambda: not children(kube), 60, "every child garbage-collected")
    record("children_gone_after_delete", time.monotonic() - deleted)
    wait_for(
        lambda: not get_json(kube, "pods", "-n", NAMESPACE, "-l", f"qarun.io/run={RUN}")["items"],
        90,
        "every pod gone",
    )


def test_apply_errors_become_conditions_and_events(kube: KubeCluster, operator: Any) -> None:
    """A child the operator cannot apply: Degraded + a Warning event, no crash, recovery."""
    ensure_namespace(kube, NAMESPACE)
    run = "blocked"
    squatter = {  # a Deployment with the worker's name but another (immutable) selector
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{run}-llm-worker", "namespace": NAMESPACE},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "squatter"}},
            "template": {
                "metadata": {"labels": {"app": "squatter"}},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1"}]},
            },
        },
    }
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(squatter))
    sample = yaml.safe_load(Path(ROOT / "k8s" / "samples" / "minimal.yaml").read_text())
    sample["metadata"] = {"name": run, "namespace": NAMESPACE}
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(sample))

    degraded = wait_for(
        lambda: (
            condition(q := qarun(kube, run), "Degraded").get("reason") == "ReconcileFailed" and q
        ),
        60,
        "Degraded=True ReconcileFailed",
    )
    assert condition(degraded, "Degraded")["status"] == "True"
    assert f"{run}-llm-worker" in condition(degraded, "Degraded")["message"]
    events = kube.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={run}"
    ).stdout
    assert "ApplyFailed" in events
    assert not operator.future.done()  # the operator is still running (no crash)

    kube.kubectl("delete", "deployment", f"{run}-llm-worker", "-n", NAMESPACE, "--wait=true")
    wait_for(
        lambda: (
            condition(qarun(kube, run), "Degraded").get("reason") not in (None, "ReconcileFailed")
        ),
        60,
        "recovery once the squatter is gone",
    )
    worker = get_json(kube, "deployment", f"{run}-llm-worker", "-n", NAMESPACE)
    assert worker["metadata"]["ownerReferences"][0]["name"] == run
    kube.kubectl("delete", "qarun", run, "-n", NAMESPACE, "--wait=true")
    wait_for(lambda: not children(kube, run), 60, "the blocked run's children collected")


def test_lag_above_lag_per_replica_scales_the_workers(
    kube: KubeCluster, operator: Any, kafka: KafkaBroker
) -> None:
    """The lag is the real questions topic's: 350 questions that the workers' group has
    not read ask for ceil(350 / 100) = 4 workers; once it has read all but 100, one."""
    ensure_namespace(kube, NAMESPACE)
    run = "laggy"
    topic = RunTopics(run).questions
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for n in range(350):
        producer.produce(topic, b"{}", key=str(n).encode())
    assert producer.flush(30) == 0

    sample = yaml.safe_load(Path(ROOT / "k8s" / "samples" / "minimal.yaml").read_text())
    sample["metadata"] = {"name": run, "namespace": NAMESPACE}
    sample["spec"]["workers"] = {
        "replicas": 1,
        "autoscale": {"enabled": True, "minReplicas": 1, "maxReplicas": 4, "lagPerReplica": 100},
    }
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(sample))

    def workers() -> int | None:
        done = kube.kubectl(
            "get", "deployment", f"{run}-llm-worker", "-n", NAMESPACE, "-o", "json", check=False
        )
        return int(json.loads(done.stdout)["spec"]["replicas"]) if done.returncode == 0 else None

    wait_for(lambda: workers() == 4, 60, "the workers scaled up to 4 on a lag of 350")
    assert qarun(kube, run)["spec"]["workers"]["replicas"] == 4

    # The workers' group commits all but 50 questions of each partition: lag 100.
    group = Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": consumer_group(run, Role.LLM_WORKER)}
    )
    try:
        ends = [
            group.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)
        ]
        group.commit(
            offsets=[TopicPartition(topic, p, end - 50) for p, end in enumerate(ends)],
            asynchronous=False,
        )
    finally:
        group.close()
    wait_for(lambda: workers() == 1, 60, "the workers scaled down to 1 on a lag of 100")
    kube.kubectl("delete", "qarun", run, "-n", NAMESPACE, "--wait=true")
