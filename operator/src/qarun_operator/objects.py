"""The Kubernetes objects the operator touches, as JSON, and their kinds.

The operator knows every kind it reads or writes, and its RBAC grants exactly those;
a cluster without Strimzi or the Flink operator lacks some of them (see Kube.list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qarun_core.spec import API_VERSION

JSON = dict[str, Any]  # one object, or a part of one, as the API server reads and writes it


@dataclass(frozen=True)
class ResourceKind:
    api_version: str
    kind: str


KAFKA_TOPIC = ResourceKind("kafka.strimzi.io/v1", "KafkaTopic")
FLINK_DEPLOYMENT = ResourceKind("flink.apache.org/v1beta1", "FlinkDeployment")
FLINK_SESSION_JOB = ResourceKind("flink.apache.org/v1beta1", "FlinkSessionJob")
DEPLOYMENT = ResourceKind("apps/v1", "Deployment")
JOB = ResourceKind("batch/v1", "Job")
CONFIG_MAP = ResourceKind("v1", "ConfigMap")
SERVICE = ResourceKind("v1", "Service")
CLAIM = ResourceKind("v1", "PersistentVolumeClaim")
QARUN = ResourceKind(API_VERSION, "QARun")
# A run's children by kind, for pruning and observing.
CHILD_KINDS = (
    KAFKA_TOPIC, FLINK_DEPLOYMENT, FLINK_SESSION_JOB, DEPLOYMENT, JOB, CONFIG_MAP, SERVICE, CLAIM,
)  # fmt: skip


def kind_of(obj: JSON) -> ResourceKind:
    return ResourceKind(obj["apiVersion"], obj["kind"])
