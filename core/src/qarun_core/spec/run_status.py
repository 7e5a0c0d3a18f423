"""The status the operator writes: phase, conditions, progress, score, usage, Flink job."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field

from qarun_core.spec.model import Model


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUCCEEDED = "Succeeded"
    TOPICS = "TopicsReady"  # and who manages them: Strimzi or the operator itself


class Status(Model):
    """Read-only models keep unknown fields out but never reject what the operator wrote."""

    model_config = ConfigDict(frozen=False, extra="ignore")


class Condition(Status):
    """One observation, in the Kubernetes condition convention."""

    type: ConditionType = Field(
        description="Ready, Progressing, Degraded, Succeeded or TopicsReady."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", max_length=1024, description="CamelCase machine reason.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime | None = Field(
        default=None, description="When status last changed."
    )
    observed_generation: int = Field(
        default=0, ge=0, description="The spec generation this condition describes."
    )


class Progress(Status):
    """Question counters of the run."""

    total: int = Field(
        default=0,
        ge=0,
        description="Questions the run will send (the spec's count, else the generator's "
        "once it is done).",
    )
    sent: int = Field(default=0, ge=0, description="Questions sent by the generator.")
    skipped: int = Field(
        default=0, ge=0, description="Questions not sent again: answered by an earlier pass."
    )
    answered: int = Field(default=0, ge=0, description="LLM answers scored and stored.")
    validated: int = Field(default=0, ge=0, description="Results at or above the threshold.")
    regenerated: int = Field(default=0, ge=0, description="Results that took more than one answer.")
    exhausted: int = Field(
        default=0, ge=0, description="Results kept below the threshold, regenerations used up."
    )
    failed: int = Field(
        default=0, ge=0, description="Questions given up on (a dead letter without an answer)."
    )
    dead_lettered: int = Field(
        default=0, ge=0, description="Messages in the dead-letter topic, of any reason."
    )


class ScoreStats(Status):
    """Score statistics of the results so far."""

    mean: float | None = Field(
        default=None, description="Mean score of the final results; null before any."
    )
    stddev: float | None = Field(
        default=None,
        description="Population standard deviation of those scores; null before any.",
    )


class Usage(Status):
    """Tokens and cost spent so far."""

    prompt_tokens: int = Field(default=0, ge=0, description="Prompt tokens.")
    completion_tokens: int = Field(default=0, ge=0, description="Completion tokens.")
    cost_usd: float = Field(default=0.0, ge=0, alias="costUSD", description="Cost in USD.")


class FlinkStatus(Status):
    """The scoring job on a standalone session cluster, as the operator submitted it."""

    job_id: str = Field(default="", description="Flink job id of the current submission.")
    submissions: int = Field(
        default=0, ge=0, description="Submissions that ended in a failed or cancelled job."
    )
    state: str = Field(default="", description="The job's state on the JobManager.")
    last_checkpoint: str = Field(
        default="",
        description="The latest completed checkpoint seen; a resubmission (e.g. after a "
        "JobManager restart) restores from it.",
    )


class QARunStatus(Status):
    """Written by the operator only."""

    phase: Phase = Field(
        default=Phase.PENDING, description="Pending, Provisioning, Running, Succeeded or Failed."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing, Degraded and Succeeded."
    )
    observed_generation: int = Field(
        default=0, ge=0, description="The spec generation the operator last reconciled."
    )
    replicas: int = Field(default=0, ge=0, description="LLM worker pods (for /scale).")
    selector: str = Field(default="", description="Label selector of the LLM worker pods.")
    progress: Progress = Field(default_factory=Progress, description=Progress.__doc__)
    score: ScoreStats = Field(default_factory=ScoreStats, description=ScoreStats.__doc__)
    attempts: dict[str, int] = Field(
        default_factory=dict, description="Results by the attempt that produced them."
    )
    usage: Usage = Field(default_factory=Usage, description=Usage.__doc__)
    flink: FlinkStatus = Field(default_factory=FlinkStatus, description=FlinkStatus.__doc__)
    started_at: datetime | None = Field(default=None, description="When provisioning began.")
    finished_at: datetime | None = Field(default=None, description="When the run ended.")
    message: str = Field(default="", max_length=32768, description="The latest notable event.")
