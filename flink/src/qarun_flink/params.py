"""Job parameters: flags generated from the spec's models, falling back to QARUN_* variables.

The groups are the spec's sections (`kafka`, `scoring`, `flink` of `qarun_core.spec`)
plus what only the job needs (topic overrides, delivery, local-run files), so the plan
generates the FlinkSessionJob's arguments from the same models
(`--scoring.threshold 0.75`, `--kafka.bootstrap-servers ...`) and a local run may set
the same fields as variables (`QARUN_SCORING__THRESHOLD`, `QARUN_FLINK__READY_FILE`).
Everything is validated before the job graph is built: a bad value stops the
submission with one line that names the flag, the variable and what is wrong, instead
of a Java stack trace from a half-started job.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.alias_generators import to_snake
from pydantic_settings import BaseSettings, SettingsConfigDict

from qarun_core.env_contract import DELIMITER, PREFIX, env_name, flag_name
from qarun_core.messages import RUN_PATTERN
from qarun_core.spec import FlinkSpec, JudgeSpec, KafkaSpec, ScoringMethod, ScoringSpec
from qarun_core.topics import Stream, topic


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


class JobKafka(KafkaSpec):
    bootstrap_servers: str = Field(min_length=1, max_length=1024)  # the plan always names it
    answers_topic: str = ""  # input: the LLM answers; empty = qarun.<run>.answers
    questions_topic: str = ""  # regenerations go here
    results_topic: str = ""
    metrics_topic: str = ""  # windowed run metrics
    dlq_topic: str = ""  # unparseable answers
    group_id: str = ""  # the job's consumer group; empty = qarun.<run>.scoring
    starting_offsets: StartingOffsets = StartingOffsets.GROUP
    bounded: bool = False  # stop at the answers' end offsets of the start (benchmarks)


class JobJudge(JudgeSpec):
    concurrency: int = Field(default=32, ge=1, le=1024)  # calls in flight per subtask
    timeout_seconds: float = Field(default=60.0, gt=0)


class JobScoring(ScoringSpec):
    judge: JobJudge = JobJudge()


class JobFlink(FlinkSpec):
    bundle_time_ms: int = Field(default=50, ge=1, le=60_000)  # batch latency against CPU
    checkpoint_dir: str | None = None  # file:///…, s3://…; default: the cluster's
    restore_from: str | None = None  # a checkpoint or savepoint (local runs)
    ready_file: str | None = None  # local runs: written once the job is running
    metrics_window_seconds: float = Field(default=10.0, gt=0)
    delivery: Delivery = Delivery.AT_LEAST_ONCE
    connector_jar: str | None = None  # local runs; images have it in Flink's lib/


class JobParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str = Field(pattern=RUN_PATTERN)
    kafka: JobKafka
    scoring: JobScoring = JobScoring()
    flink: JobFlink = JobFlink()

    @model_validator(mode="after")
    def _judge_needs_an_endpoint(self) -> JobParams:
        judge = self.scoring.judge
        if self.scoring.method is ScoringMethod.JUDGE and not (judge.base_url and judge.model):
            raise ValueError(
                f"the judge scorer needs {flag_name('scoring', 'judge', 'base_url')} and "
                f"{flag_name('scoring', 'judge', 'model')}"
            )
        return self

    # The flat names the job graph reads.
    def _topic(self, given: str, stream: Stream) -> str:
        return given or topic(self.run, stream)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def answers_topic(self) -> str:
        return self._topic(self.kafka.answers_topic, Stream.ANSWERS)

    @property
    def questions_topic(self) -> str:
        return self._topic(self.kafka.questions_topic, Stream.QUESTIONS)

    @property
    def results_topic(self) -> str:
        return self._topic(self.kafka.results_topic, Stream.RESULTS)

    @property
    def metrics_topic(self) -> str:
        return self._topic(self.kafka.metrics_topic, Stream.METRICS)

    @property
    def dlq_topic(self) -> str:
        return self._topic(self.kafka.dlq_topic, Stream.DLQ)

    @property
    def group_id(self) -> str:
        return self.kafka.group_id or f"qarun.{self.run}.scoring"

    @property
    def starting_offsets(self) -> StartingOffsets:
        return self.kafka.starting_offsets

    @property
    def bounded(self) -> bool:
        return self.kafka.bounded

    @property
    def scorer(self) -> ScoringMethod:
        return self.scoring.method

    @property
    def threshold(self) -> float:
        return self.scoring.threshold

    @property
    def max_attempts(self) -> int:
        return 1 + self.scoring.max_regenerations

    @property
    def llm_base_url(self) -> str:
        return self.scoring.judge.base_url

    @property
    def llm_model(self) -> str:
        return self.scoring.judge.model

    @property
    def judge_concurrency(self) -> int:
        return self.scoring.judge.concurrency

    @property
    def judge_timeout_seconds(self) -> float:
        return self.scoring.judge.timeout_seconds

    @property
    def parallelism(self) -> int:
        return self.flink.parallelism

    @property
    def checkpoint_interval_seconds(self) -> int:
        return self.flink.checkpoint_interval_seconds

    @property
    def bundle_time_ms(self) -> int:
        return self.flink.bundle_time_ms

    @property
    def checkpoint_dir(self) -> str | None:
        return self.flink.checkpoint_dir

    @property
    def restore_from(self) -> str | None:
        return self.flink.restore_from

    @property
    def ready_file(self) -> str | None:
        return self.flink.ready_file

    @property
    def metrics_window_seconds(self) -> float:
        return self.flink.metrics_window_seconds

    @property
    def delivery(self) -> Delivery:
        return self.flink.delivery


class JudgeSecret(BaseModel):
    api_key: SecretStr = SecretStr("")


class ScoringSecret(BaseModel):
    judge: JudgeSecret = JudgeSecret()


class EmbeddingSettings(BaseModel):
    backend: str = "int8"  # int8 | onnx | numpy (scorers/embedding.py)
    threads: int = Field(default=1, ge=1)  # onnxruntime's; the job runs a subtask per core


class ScorerEnv(BaseSettings):
    """What a scorer reads where it runs (a UDF worker), from the environment only: the
    judge's key (`QARUN_SCORING__JUDGE__API_KEY`; arguments end up in the
    FlinkSessionJob spec and in process listings) and the embedding backend
    (`QARUN_EMBEDDING__BACKEND`, `QARUN_EMBEDDING__THREADS`)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_nested_delimiter=DELIMITER, extra="ignore"
    )

    scoring: ScoringSecret = ScoringSecret()
    embedding: EmbeddingSettings = EmbeddingSettings()


def _leaves(model: type[BaseModel], *path: str) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _leaves(kind, *path, name)
        else:
            yield (*path, name)


FIELDS = tuple(_leaves(JobParams))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qarun-flink",
        description="The QARun scoring job. Every flag falls back to its environment variable.",
    )
    for path in FIELDS:
        parser.add_argument(flag_name(*path), dest=".".join(path), metavar=env_name(*path))
    return parser


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> JobParams:
    """Flags first, then QARUN_* variables, then defaults; raises ParamError."""
    given: dict[str, Any] = {}
    for dest, value in vars(_parser().parse_args(list(argv))).items():
        if value is None or value == "":
            continue
        *groups, name = dest.split(".")
        node = given
        for group in groups:
            node = node.setdefault(group, {})
        node[name] = value
    try:
        return _from(given, os.environ if environ is None else environ)
    except ValidationError as error:
        raise ParamError(_explain(error)) from None


def _from(given: dict[str, Any], environ: Mapping[str, str]) -> JobParams:
    """The variables of `environ` that name a job parameter, overridden by the flags."""
    nested: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(PREFIX) or value == "":
            continue
        *groups, name = key.removeprefix(PREFIX).lower().split(DELIMITER)
        if (*groups, name) not in FIELDS:
            continue
        node = nested
        for group in groups:
            node = node.setdefault(group, {})
        node[name] = value
    _merge(nested, given)
    nested.setdefault("kafka", {})  # so that a missing bootstrap is named as a field
    return JobParams.model_validate(nested)


def _merge(into: dict[str, Any], given: Mapping[str, Any]) -> None:
    for key, value in given.items():
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value)
        else:
            into[key] = value


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        path = tuple(to_snake(str(part)) for part in item["loc"])  # the spec's camelCase
        if path in FIELDS:
            given = "" if item["type"] == "missing" else f", got {item['input']!r}"
            lines.append(f"{flag_name(*path)} ({env_name(*path)}): {item['msg']}{given}")
        else:
            lines.append(item["msg"].removeprefix("Value error, "))
    return "invalid job parameters: " + "; ".join(lines)
