"""Operator settings, read from QARUN_OPERATOR__* environment variables (set by the chart),
in the style of every QARun process (`QARUN_` prefix, `__` nesting).

Images and cluster-wide choices live here, not in the QARun spec: a run describes an
evaluation, the operator's installation decides what it runs on.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from qarun_core.env_contract import DELIMITER, PREFIX
from qarun_core.spec import FlinkMode, KafkaProvider


class OperatorConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}OPERATOR{DELIMITER}", frozen=True)

    worker_image: str = Field(
        default="qarun/workers:0.1.0",
        description="Image of the generator, LLM worker, retry and storage writer.",
    )
    flink_image: str = Field(
        default="qarun/flink:0.1.0",
        description="Image of the managed Flink session cluster (PyFlink + the QARun job).",
    )
    flink_version: str = Field(default="v2_2", description="FlinkDeployment spec.flinkVersion.")
    flink_service_account: str = Field(
        default="flink", description="Service account of the Flink pods (the Flink operator's)."
    )
    flink_mode: FlinkMode = Field(
        default=FlinkMode.OPERATOR,
        description="How a run gets its session cluster when its spec leaves flink.mode "
        "empty: the Flink operator's FlinkDeployment, or a standalone one.",
    )
    flink_rest_url: str = Field(
        default="http://{session}-rest.{namespace}.svc:8081",
        description="Where a standalone session cluster's REST API is reached; {session} "
        "and {namespace} are filled in.",
    )
    flink_home: str = Field(
        default="/opt/flink", description="The Flink distribution inside the Flink image."
    )
    flink_python: str = Field(
        default="/opt/qarun/venv/bin/python",
        description="The Flink image's Python with the scoring job (PythonDriver, UDFs).",
    )
    flink_uid: int = Field(default=10001, description="The Flink image's user id.")
    flink_state_storage_class: str = Field(
        default="",
        description="StorageClass of a standalone session's checkpoint volume (a "
        "ReadWriteOnce claim both pods mount: one node, or a ReadWriteMany class); "
        "empty = the cluster's default.",
    )
    flink_state_size: str = Field(default="1Gi", description="Size of that volume.")
    kafka_provider: KafkaProvider = Field(
        default=KafkaProvider.STRIMZI,
        description="The Kafka a run uses when its spec leaves kafka.provider empty.",
    )
    kafka_bootstrap: str = Field(
        default="",
        description="Bootstrap servers of a run whose spec names none (an external "
        "Kafka); empty = <cluster>-kafka-bootstrap:9092.",
    )
    flink_state_dir: str = Field(
        default="file:///opt/flink/state",
        description="Checkpoint and savepoint storage of managed session clusters (s3://... "
        "in production; a local path does not outlive the JobManager pod).",
    )
    image_pull_policy: str = Field(default="IfNotPresent")
    worker_service_account: str = Field(
        default="",
        description="Service account of the worker pods; empty = the namespace's default.",
    )
    summary_url: str = Field(
        default="http://qarun-api.{namespace}.svc:8080/runs/{run}/summary",
        description="Where a run's summary (qarun_core.summary.RunSummary) is read; "
        "{namespace} and {run} are filled in; empty = no summary.",
    )
    summary_timeout_seconds: float = Field(default=2.0, gt=0)
    status_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the status is aggregated and drift repaired."
    )


class KubeAccess(BaseSettings):
    """How the operator reaches the API server outside a pod: the usual $KUBECONFIG."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kubeconfig: str | None = Field(default=None, validation_alias="KUBECONFIG")
