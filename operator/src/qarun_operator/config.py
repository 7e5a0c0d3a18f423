"""Operator settings, read from QARUN_OPERATOR_* environment variables (set by the chart).

Images and cluster-wide choices live here, not in the QARun spec: a run describes an
evaluation, the operator's installation decides what it runs on.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QARUN_OPERATOR_", frozen=True)

    worker_image: str = Field(
        default="qarun-workers:0.1.0",
        description="Image of the generator, LLM worker, retry and storage writer.",
    )
    flink_image: str = Field(
        default="qarun-flink:0.1.0",
        description="Image of the managed Flink session cluster (PyFlink + the QARun job).",
    )
    flink_version: str = Field(default="v2_2", description="FlinkDeployment spec.flinkVersion.")
    flink_service_account: str = Field(
        default="flink", description="Service account of the Flink pods (the Flink operator's)."
    )
    flink_python_jar: str = Field(
        default="local:///opt/flink/opt/flink-python-2.2.0.jar",
        description="jarURI of the FlinkSessionJob (the PythonDriver's jar).",
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
