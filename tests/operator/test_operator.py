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

import yaml
from optools import (
    ROOT,
    SummaryServer,
    ensure_namespace,
    get_json,
    wait_for,
)

from qarun_devstack.kube import KWOK_NODE, KubeCluster

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


def test_qarun_lifecycle(kube: KubeCluster, operator: Any, summary_server: SummaryServer) -> None:
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
    assert env["QARUN_LLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {
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
    assert job_args()[job_args().index("--threshold") + 1] == "0.9"

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
    summary_server.summaries[RUN] = {
        "progress": {"total": 1000, "sent": 400, "answered": 380, "validated": 300},
        "score": {"mean": 0.81, "stddev": 0.07},
        "usage": {"promptTokens": 1000, "completionTokens": 2000, "costUSD": 0.5},
        "attempts": {"1": 280, "2": 20},
    }
    running = wait_for(
        lambda: (q := qarun(kube))["status"].get("phase") == "Running" and q,
        60,
        "phase Running",
    )
    assert condition(running, "Ready")["status"] == "True"
    assert condition(running, "Degraded")["status"] == "False"
    assert running["status"]["progress"]["validated"] == 300
    assert running["status"]["score"]["mean"] == 0.81
    table = kube.kubectl("get", "qarun", RUN, "-n", NAMESPACE).stdout
    assert "Running" in table
    assert "380" in table
    assert "0.81" in table

    # 6. Every question has a final outcome: Succeeded, and the workers are released.
    summary_server.summaries[RUN] = {
        "progress": {"total": 1000, "sent": 1000, "answered": 1100, "validated": 950,
                     "exhausted": 40, "failed": 10, "regenerated": 100},
        "score": {"mean": 0.84, "stddev": 0.06},
        "generatorDone": True,
    }  # fmt: skip
    done = wait_for(
        lambda: (q := qarun(kube))["status"].get("phase") == "Succeeded" and q,
        60,
        "phase Succeeded",
    )
    assert condition(done, "Succeeded")["status"] == "True"
    assert condition(done, "Succeeded")["reason"] == "AllAnswered"
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
