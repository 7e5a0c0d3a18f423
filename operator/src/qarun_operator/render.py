"""RunPlan -> Kubernetes manifests: the operator's realization of the neutral plan.

Pure functions (no API calls): every child carries the run's labels and a controller
owner reference to the QARun, so deleting the QARun garbage-collects all of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qarun_core import plan as p
from qarun_core.spec import API_VERSION, KIND, FlinkMode, KafkaProvider, Resources
from qarun_operator import standalone
from qarun_operator.config import OperatorConfig
from qarun_operator.objects import JSON

TEMPLATE_HASH = "qarun.io/template-hash"
WORKER_UID = 10001
WORKER_METRICS_PORT = 9100  # the LLM worker's QARUN_METRICS__PORT default; keep them equal


@dataclass(frozen=True)
class Owner:
    name: str
    uid: str

    def reference(self) -> JSON:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def _meta(name: str, namespace: str, labels: Mapping[str, str], owner: Owner) -> JSON:
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [owner.reference()],
    }


def template_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def kafka_topic(run: p.RunPlan, topic: p.TopicPlan, owner: Owner) -> JSON:
    labels = {**run.labels, p.LABEL_COMPONENT: "topic", "strimzi.io/cluster": run.kafka_cluster}
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": _meta(topic.name, run.namespace, labels, owner),
        "spec": {
            "partitions": topic.partitions,
            "replicas": topic.replicas,
            "config": dict(topic.config),
        },
    }


def _env(component_env: Mapping[str, str], secrets: tuple[p.SecretEnv, ...]) -> list[JSON]:
    env: list[JSON] = [{"name": k, "value": v} for k, v in sorted(component_env.items())]
    env += [
        {"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
        for s in secrets
    ]
    return env


def _resources(resources: Resources | None) -> JSON:
    if resources is None:
        return {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    return resources.model_dump(mode="json", exclude_none=True)


def _pod_spec(c: p.ComponentPlan, config: OperatorConfig, restart: str) -> JSON:
    spec: JSON = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": restart,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": WORKER_UID,
            "runAsGroup": WORKER_UID,
            "fsGroup": WORKER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": c.role,
                "image": config.worker_image,
                "imagePullPolicy": config.image_pull_policy,
                "command": list(c.command),
                "env": _env(c.env, c.secret_env),
                "resources": _resources(c.resources),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    if config.worker_service_account:
        spec["serviceAccountName"] = config.worker_service_account
    return spec


def _expose_metrics(template: JSON) -> None:
    """The LLM worker's Prometheus endpoint: a named port and the usual scrape annotations."""
    template["metadata"]["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(WORKER_METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    template["spec"]["containers"][0]["ports"] = [
        {"name": "metrics", "containerPort": WORKER_METRICS_PORT, "protocol": "TCP"}
    ]


def deployment(run: p.RunPlan, c: p.ComponentPlan, owner: Owner, config: OperatorConfig) -> JSON:
    match = {p.LABEL_RUN: run.run, p.LABEL_COMPONENT: c.role}
    template: JSON = {
        "metadata": {"labels": dict(c.labels)},
        "spec": _pod_spec(c, config, "Always"),
    }
    if c.role == p.LLM_WORKER:
        _expose_metrics(template)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(c.name, run.namespace, c.labels, owner),
        "spec": {
            "replicas": c.replicas,
            "selector": {"matchLabels": match},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": template,
        },
    }


def job(run: p.RunPlan, c: p.ComponentPlan, owner: Owner, config: OperatorConfig) -> JSON:
    """The generator. A Job's pod template is immutable: its hash is an annotation, and a
    changed template (e.g. a new rate) makes apply.py replace an unfinished Job."""
    template = {"metadata": {"labels": dict(c.labels)}, "spec": _pod_spec(c, config, "OnFailure")}
    meta = _meta(c.name, run.namespace, c.labels, owner)
    meta["annotations"] = {TEMPLATE_HASH: template_hash(template)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"backoffLimit": 6, "template": template},
    }


def flink_session(run: p.RunPlan, owner: Owner, config: OperatorConfig) -> JSON:
    f = run.flink
    container: JSON = {"name": "flink-main-container"}
    if f.secret_env:
        container["env"] = _env({}, f.secret_env)
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": _meta(
            f.session, run.namespace, {**run.labels, p.LABEL_COMPONENT: "flink"}, owner
        ),
        "spec": {
            "image": config.flink_image,
            "imagePullPolicy": config.image_pull_policy,
            "flinkVersion": config.flink_version,
            "serviceAccount": config.flink_service_account,
            "flinkConfiguration": {
                "taskmanager.numberOfTaskSlots": str(max(1, -(-f.parallelism // f.task_managers))),
                "execution.checkpointing.dir": f"{config.flink_state_dir}/checkpoints",
                "execution.checkpointing.savepoint-dir": f"{config.flink_state_dir}/savepoints",
            },
            "jobManager": {"replicas": 1, "resource": {"memory": "1024m", "cpu": 0.5}},
            "taskManager": {
                "replicas": f.task_managers,
                "resource": {"memory": "1536m", "cpu": 1.0},
            },
            "podTemplate": {
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": config.flink_uid},
                    "containers": [container],
                }
            },
        },
    }


def flink_session_job(run: p.RunPlan, owner: Owner, config: OperatorConfig) -> JSON:
    f = run.flink
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkSessionJob",
        "metadata": _meta(f.job, run.namespace, f.labels, owner),
        "spec": {
            "deploymentName": f.session,
            # No jarURI: the Flink operator fetches a session job's jar itself (and
            # accepts only the schemes it is configured for, https by default), so a
            # local:// path in the image cannot work. Without one it uploads its empty
            # jar, and for the PythonDriver entry class Flink adds flink-python from
            # the distribution's opt/ to the program's class path.
            "job": {
                "entryClass": "org.apache.flink.client.python.PythonDriver",
                "args": ["-pym", f.module, *f.args],
                "parallelism": f.parallelism,
                # Keyed state records which attempts were scored: upgrades (a new
                # threshold) restore from a savepoint so nothing is lost or doubled.
                "upgradeMode": "savepoint",
                "state": "running",
            },
        },
    }


def manifests(run: p.RunPlan, owner: Owner, config: OperatorConfig) -> list[JSON]:
    """Every child of the run, in the order they are applied. Without Strimzi the topics
    are no objects (the operator creates them through the Kafka Admin API); in standalone
    mode the operator submits the scoring job itself."""
    out: list[JSON] = []
    if run.kafka_provider is KafkaProvider.STRIMZI:
        out += [kafka_topic(run, t, owner) for t in run.topics]
    if run.flink.mode is FlinkMode.STANDALONE:
        if run.flink.managed:
            out += standalone.manifests(run, owner.reference(), config)
    else:
        if run.flink.managed:
            out.append(flink_session(run, owner, config))
        out.append(flink_session_job(run, owner, config))
    for c in run.components:
        out.append(
            deployment(run, c, owner, config)
            if c.kind is p.WorkloadKind.SERVICE
            else job(run, c, owner, config)
        )
    return out
