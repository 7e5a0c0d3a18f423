"""What the operator realizes itself, against real Kafka and a real Flink session, with
the operator on the kwok API server: a run's topics on a Kafka without Strimzi (Kafka
Admin API, deleted with the QARun), and the scoring job on a standalone session cluster
(submitted through Flink's REST API, resubmitted from its last checkpoint after a
JobManager restart)."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]
from optools import ensure_namespace, get_json, wait_for

from qarun_core import plan as p
from qarun_core.spec import QARunSpec
from qarun_devstack.flink_session import FlinkSession
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KubeCluster
from qarun_operator.flink_rest import FlinkRest

NAMESPACE = "qarun-direct"


def apply_run(kube: KubeCluster, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    manifest = {
        "apiVersion": "qarun.io/v1alpha1",
        "kind": "QARun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    return manifest


def qarun(kube: KubeCluster, name: str) -> dict[str, Any]:
    return get_json(kube, "qarun", name, "-n", NAMESPACE)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind]
    return dict(found[0]) if found else {}


def topic_names(kafka: KafkaBroker, run: str) -> set[str]:
    listed = kafka.admin().list_topics(timeout=10).topics
    return {name for name in listed if name.startswith(f"qarun.{run}.")}


def gone(kube: KubeCluster, name: str) -> bool:
    done = kube.kubectl("get", "qarun", name, "-n", NAMESPACE, check=False)
    return done.returncode != 0 and "NotFound" in done.stderr


def test_without_strimzi_the_operator_creates_and_deletes_the_topics(
    kube: KubeCluster, operator: Any, kafka: KafkaBroker
) -> None:
    ensure_namespace(kube, NAMESPACE)
    run = "plain-topics"
    spec = {
        "llm": {"model": "m"},
        "kafka": {"provider": "plain", "bootstrapServers": kafka.bootstrap, "partitions": 3},
    }
    apply_run(kube, run, spec)
    planned = p.plan(run, NAMESPACE, QARunSpec.model_validate(spec))
    wanted = {t.name for t in planned.topics}
    wait_for(lambda: topic_names(kafka, run) == wanted, 60, "the run's topics in Kafka")
    described = kafka.admin().list_topics(timeout=10).topics
    assert {len(described[name].partitions) for name in wanted} == {3}
    questions = planned.topics[0]
    configs = kafka.admin().describe_configs([ConfigResource("topic", questions.name)])
    [entries] = [future.result(timeout=30) for future in configs.values()]
    for key, value in questions.config.items():
        assert entries[key].value == value, key
    topics = wait_for(
        lambda: (
            condition(qarun(kube, run), "TopicsReady").get("status") == "True"
            and condition(qarun(kube, run), "TopicsReady")
        ),
        30,
        "the TopicsReady condition",
    )
    assert topics["reason"] == "CreatedByOperator"
    assert "Kafka Admin API" in topics["message"]
    listed = kube.kubectl("get", "kafkatopics", "-n", NAMESPACE, "-o", "name").stdout
    assert listed.strip() == "", "no KafkaTopic objects without Strimzi"

    kube.kubectl("delete", "qarun", run, "-n", NAMESPACE, "--wait=false")
    wait_for(lambda: gone(kube, run), 60, "the QARun deleted (its finalizer released)")
    assert topic_names(kafka, run) == set(), "the run's topics outlived it"


def test_standalone_session_gets_the_job_through_rest_and_recovers_it_after_a_jm_restart(
    kube: KubeCluster, operator: Any, kafka: KafkaBroker, flink_session: FlinkSession
) -> None:
    ensure_namespace(kube, NAMESPACE)
    run = "standalone"
    spec = {
        "llm": {"model": "m"},
        "kafka": {"provider": "plain", "bootstrapServers": kafka.bootstrap, "partitions": 2},
        "flink": {"mode": "standalone", "parallelism": 2, "checkpointIntervalSeconds": 1},
    }
    # The checkpoint volume's claim binds to a volume made for it (no provisioner here;
    # the pods on kwok run nothing, the session is flink_session's processes).
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{NAMESPACE}-{run}-state"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": f"/var/lib/{NAMESPACE}-{run}"},  # never mounted: kwok
            "claimRef": {"namespace": NAMESPACE, "name": f"{run}-flink-state"},
        },
    }
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(volume))
    apply_run(kube, run, spec)
    rest = FlinkRest(flink_session.url)
    try:
        # The session cluster's objects, laid out as Flink's standalone Kubernetes session.
        for kind, name in (
            ("configmap", f"{run}-flink-config"),
            ("service", f"{run}-flink-jobmanager"),
            ("service", f"{run}-flink-rest"),
            ("deployment", f"{run}-flink-jobmanager"),
            ("deployment", f"{run}-flink-taskmanager"),
            ("persistentvolumeclaim", f"{run}-flink-state"),
        ):
            wait_for(
                lambda k=kind, n=name: kube.kubectl(
                    "get", k, n, "-n", NAMESPACE, check=False
                ).returncode == 0,
                60, f"{kind} {name}",
            )  # fmt: skip
        assert get_json(kube, "flinksessionjobs", "-n", NAMESPACE)["items"] == []

        def flink_status() -> dict[str, Any]:
            return dict(qarun(kube, run).get("status", {}).get("flink", {}))

        running = wait_for(
            lambda: flink_status().get("state") == "RUNNING" and flink_status(),
            240, "the scoring job RUNNING on the session cluster",
        )  # fmt: skip
        job_id = running["jobId"]
        assert rest.job_states()[job_id] == "RUNNING"
        checkpoint = wait_for(
            lambda: flink_status().get("lastCheckpoint"), 120, "a checkpoint in the status"
        )
        assert checkpoint.startswith("file:")

        # A new JobManager knows no job (no HA): the operator resubmits the same job id,
        # restoring from the checkpoint it recorded.
        flink_session.restart_jobmanager()
        wait_for(lambda: rest.job_states().get(job_id) == "RUNNING", 240, "the job back")
        restored = rest.restored_checkpoint(job_id)
        assert restored is not None and restored.startswith(checkpoint.rsplit("/chk-", 1)[0])
        assert flink_status()["jobId"] == job_id
    finally:
        for job, state in rest.job_states().items():
            if state == "RUNNING":
                rest.cancel(job)
        kube.kubectl("delete", "qarun", run, "-n", NAMESPACE, "--wait=false", check=False)
    wait_for(lambda: gone(kube, run), 60, "the QARun deleted")
