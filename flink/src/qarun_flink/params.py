"""Job parameters from command-line arguments, falling back to QARUN_* environment variables.

The operator sets the same names (as FlinkSessionJob args or container env), so one
table below is the contract. Everything is validated before the job graph is built:
a bad value stops the submission with one line that names the flag, the variable and
what is wrong, instead of a Java stack trace from a half-started job.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qarun_core.messages import RUN_PATTERN
from qarun_core.topics import Stream, topic


class ScorerName(StrEnum):
    LEXICAL = "lexical"
    EMBEDDING = "embedding"
    JUDGE = "judge"


class Delivery(StrEnum):
    # Results keyed by (run, question_id), written at least once; the storage writer
    # upserts on that key. See job.py for why this is the default.
    AT_LEAST_ONCE = "at-least-once"
    # Kafka transactions committed on each checkpoint; consumers must read_committed.
    EXACTLY_ONCE = "exactly-once"


class StartingOffsets(StrEnum):
    GROUP = "group"  # committed offsets of the consumer group, else the earliest
    EARLIEST = "earliest"
    LATEST = "latest"


class ParamError(ValueError):
    """A job parameter is missing or invalid; the message is meant for a person."""


# field -> (flag, environment variable, help)
PARAMS: dict[str, tuple[str, str, str]] = {
    "run": ("--run", "QARUN_RUN", "the QARun name; topics default to qarun.<run>.<stream>"),
    "bootstrap": ("--bootstrap", "QARUN_KAFKA_BOOTSTRAP", "Kafka bootstrap servers"),
    "answers_topic": ("--answers-topic", "QARUN_TOPIC_ANSWERS", "input: the LLM answers"),
    "questions_topic": ("--questions-topic", "QARUN_TOPIC_QUESTIONS", "regenerations go here"),
    "results_topic": ("--results-topic", "QARUN_TOPIC_RESULTS", "final results"),
    "metrics_topic": ("--metrics-topic", "QARUN_TOPIC_METRICS", "windowed run metrics"),
    "dlq_topic": ("--dlq-topic", "QARUN_TOPIC_DLQ", "unparseable answers"),
    "group_id": ("--group-id", "QARUN_FLINK_GROUP_ID", "Kafka consumer group of the job"),
    "scorer": ("--scorer", "QARUN_SCORING_METHOD", "lexical | embedding | judge"),
    "threshold": ("--threshold", "QARUN_SCORING_THRESHOLD", "validated at or above, 0..1"),
    "max_regenerations": (
        "--max-regenerations",
        "QARUN_SCORING_MAX_REGENERATIONS",
        "regenerations after the first attempt",
    ),
    "parallelism": ("--parallelism", "QARUN_FLINK_PARALLELISM", "operator parallelism"),
    "checkpoint_interval_seconds": (
        "--checkpoint-interval-seconds",
        "QARUN_FLINK_CHECKPOINT_INTERVAL_SECONDS",
        "checkpoint every N seconds",
    ),
    "bundle_time_ms": (
        "--bundle-time-ms",
        "QARUN_FLINK_BUNDLE_TIME_MS",
        "the longest an answer waits for its batch to be scored: latency against CPU",
    ),
    "checkpoint_dir": (
        "--checkpoint-dir",
        "QARUN_FLINK_CHECKPOINT_DIR",
        "checkpoint storage URI (file:///…, s3://…); default: the cluster's",
    ),
    "restore_from": (
        "--restore-from",
        "QARUN_FLINK_RESTORE_FROM",
        "a checkpoint or savepoint path to restore (local runs; the operator sets it itself)",
    ),
    "ready_file": (
        "--ready-file",
        "QARUN_FLINK_READY_FILE",
        "local runs: a file written once the job is running, for a runner to wait on",
    ),
    "metrics_window_seconds": (
        "--metrics-window-seconds",
        "QARUN_METRICS_WINDOW_SECONDS",
        "tumbling window of the run metrics",
    ),
    "delivery": ("--delivery", "QARUN_FLINK_DELIVERY", "at-least-once | exactly-once"),
    "starting_offsets": (
        "--starting-offsets",
        "QARUN_FLINK_STARTING_OFFSETS",
        "group | earliest | latest",
    ),
    "bounded": (
        "--bounded",
        "QARUN_FLINK_BOUNDED",
        "stop at the answers' end offsets of the start (benchmarks): true | false",
    ),
    "llm_base_url": ("--llm-base-url", "QARUN_LLM_BASE_URL", "judge: OpenAI-compatible URL"),
    "llm_model": ("--llm-model", "QARUN_LLM_MODEL", "judge: model name"),
    "judge_concurrency": (
        "--judge-concurrency",
        "QARUN_JUDGE_CONCURRENCY",
        "judge: calls in flight per subtask",
    ),
    "judge_timeout_seconds": (
        "--judge-timeout-seconds",
        "QARUN_JUDGE_TIMEOUT_SECONDS",
        "judge: timeout of one call",
    ),
}
# The workers' nested names (qarun_workers.settings) for the same values: a local
# runner that gives every process one shared environment needs no second copy.
ALIASES = {
    "bootstrap": "QARUN_KAFKA__BOOTSTRAP",
    "llm_base_url": "QARUN_LLM__BASE_URL",
    "llm_model": "QARUN_LLM__MODEL",
}
# The judge's API key is read from QARUN_LLM_API_KEY only: command-line arguments end
# up in the FlinkSessionJob spec and in process listings.
API_KEY_ENV = "QARUN_LLM_API_KEY"


class JobParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str = Field(pattern=RUN_PATTERN)
    bootstrap: str = Field(min_length=1)
    answers_topic: str = ""
    questions_topic: str = ""
    results_topic: str = ""
    metrics_topic: str = ""
    dlq_topic: str = ""
    group_id: str = ""
    scorer: ScorerName = ScorerName.LEXICAL
    threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    max_regenerations: int = Field(default=3, ge=0, le=20)
    parallelism: int = Field(default=1, ge=1, le=256)
    checkpoint_interval_seconds: float = Field(default=30.0, gt=0)
    bundle_time_ms: int = Field(default=50, ge=1, le=60_000)
    checkpoint_dir: str | None = None
    restore_from: str | None = None
    ready_file: str | None = None
    metrics_window_seconds: float = Field(default=10.0, gt=0)
    delivery: Delivery = Delivery.AT_LEAST_ONCE
    starting_offsets: StartingOffsets = StartingOffsets.GROUP
    bounded: bool = False
    llm_base_url: str | None = None
    llm_model: str | None = None
    judge_concurrency: int = Field(default=32, ge=1, le=1024)
    judge_timeout_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _defaults_and_judge(self) -> JobParams:
        names = {
            "answers_topic": Stream.ANSWERS,
            "questions_topic": Stream.QUESTIONS,
            "results_topic": Stream.RESULTS,
            "metrics_topic": Stream.METRICS,
            "dlq_topic": Stream.DLQ,
        }
        for field, stream in names.items():
            if not getattr(self, field):
                object.__setattr__(self, field, topic(self.run, stream))
        if not self.group_id:
            object.__setattr__(self, "group_id", f"qarun.{self.run}.scoring")
        if self.scorer is ScorerName.JUDGE and not (self.llm_base_url and self.llm_model):
            raise ValueError("the judge scorer needs --llm-base-url and --llm-model")
        return self

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_regenerations


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qarun-flink",
        description="The QARun scoring job. Every flag falls back to its environment variable.",
    )
    for field, (flag, env, text) in PARAMS.items():
        parser.add_argument(flag, dest=field, metavar=env, help=f"{text} [{env}]")
    return parser


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> JobParams:
    """Flags first, then QARUN_* variables, then defaults; raises ParamError."""
    environ = os.environ if environ is None else environ
    args = vars(_parser().parse_args(list(argv)))
    raw = {}
    for field, (_, env, _) in PARAMS.items():
        value = args[field] if args[field] is not None else environ.get(env)
        if value is None and field in ALIASES:
            value = environ.get(ALIASES[field])
        if value is not None and value != "":
            raw[field] = value
    try:
        return JobParams.model_validate(raw)
    except ValidationError as error:
        raise ParamError(_explain(error)) from None


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        if field in PARAMS:
            flag, env, _ = PARAMS[field]
            given = "" if item["type"] == "missing" else f", got {item['input']!r}"
            lines.append(f"{flag} ({env}): {item['msg']}{given}")
        else:
            lines.append(item["msg"].removeprefix("Value error, "))
    return "invalid job parameters: " + "; ".join(lines)
