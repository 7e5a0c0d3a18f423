"""What a run runs on: Kafka, the Flink session cluster, PostgreSQL and Redis."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from qarun_core.spec.model import Model, Rule, SecretKeyRef


class KafkaProvider(StrEnum):
    STRIMZI = "strimzi"  # the run's topics are KafkaTopics of a Strimzi cluster
    PLAIN = "plain"  # a broker without Strimzi (the stack's StatefulSet)
    EXTERNAL = "external"  # any other Kafka (a cloud service, another operator)


class KafkaSpec(Model):
    """The Kafka cluster that carries the run's topics."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.replicas <= 1 || self.minInSyncReplicas < self.replicas",
            "kafka.minInSyncReplicas must be below kafka.replicas so one broker may fail",
            ".minInSyncReplicas",
            lambda m: m.replicas <= 1 or m.min_in_sync_replicas < m.replicas,
        ),
    )
    provider: KafkaProvider | None = Field(
        default=None,
        description="strimzi: the run's topics are KafkaTopics that Strimzi's topic operator "
        "creates and deletes; plain or external: a Kafka that Strimzi does not manage, "
        "whose topics the QARun operator creates and deletes itself through the Kafka "
        "Admin API (same partitions and configs). Empty = the QARun operator's "
        "installation default (its kafka.provider value).",
    )
    cluster: str = Field(
        default="qarun",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Name of the Kafka cluster: the Strimzi Kafka resource (or the stack's "
        "plain broker); bootstrap servers default to <cluster>-kafka-bootstrap:9092.",
    )
    bootstrap_servers: str = Field(
        default="",
        max_length=1024,
        description="Bootstrap servers; empty = the QARun operator's default for external "
        "Kafka, else <cluster>-kafka-bootstrap:9092.",
    )
    partitions: int = Field(
        default=6, ge=1, le=1000, description="Partitions of each topic (the workers' parallelism)."
    )
    replicas: int = Field(default=1, ge=1, le=10, description="Replication factor of each topic.")
    min_in_sync_replicas: int = Field(
        default=1, ge=1, le=10, description="min.insync.replicas of each topic."
    )
    retention_hours: int = Field(
        default=168, ge=1, le=8760, description="How long topic records are kept."
    )


class FlinkMode(StrEnum):
    OPERATOR = "operator"  # FlinkDeployment + FlinkSessionJob (the Flink operator)
    STANDALONE = "standalone"  # JobManager/TaskManager Deployments, REST submission


class FlinkSpec(Model):
    """The Flink scoring job."""

    mode: FlinkMode | None = Field(
        default=None,
        description="operator: a FlinkDeployment session cluster and a FlinkSessionJob for "
        "the Flink Kubernetes operator; standalone: JobManager and TaskManager "
        "Deployments (Flink's standalone Kubernetes session) to which the QARun operator "
        "submits the job through Flink's REST API. Empty = the QARun operator's "
        "installation default (its flink.mode value).",
    )
    session_cluster: str = Field(
        default="",
        max_length=63,
        pattern=r"^$|^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description="An existing session cluster to submit to (a FlinkDeployment, or in "
        "standalone mode the cluster behind the Service <name>-rest:8081); empty = the "
        "operator manages one for this run.",
    )
    parallelism: int = Field(default=2, ge=1, le=256, description="Parallelism of the job.")
    checkpoint_interval_seconds: int = Field(
        default=30, ge=1, le=3600, description="Checkpoint interval."
    )
    task_managers: int = Field(
        default=1, ge=1, le=100, description="TaskManagers of a managed session cluster."
    )


class StorageSpec(Model):
    """Where the storage writer keeps results: PostgreSQL plus a Redis cache."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "!self.redisURL.contains('@')",
            "storage.redisURL must not contain credentials; keep them in a Secret",
            ".redisURL",
            lambda m: "@" not in m.redis_url,
        ),
    )
    postgres_secret_ref: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="qarun-postgres", key="dsn"),
        description="The Secret key holding the PostgreSQL DSN (postgresql://user:pw@host/db).",
    )
    redis_url: str = Field(
        default="redis://qarun-redis:6379/0",
        alias="redisURL",
        max_length=1024,
        pattern=r"^rediss?://\S+$",
        description="Redis URL: the answer cache, the fleet-wide rate limits and budget, "
        "and the generator's progress.",
    )
    cache_ttl_seconds: int = Field(
        default=21600, ge=1, alias="cacheTTLSeconds", description="TTL of cached results."
    )
