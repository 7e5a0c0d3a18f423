"""The QARun custom resource: spec and status, the product's public API.

One set of pydantic models is the single source of truth for the resource. YAML uses
camelCase (`ratePerSecond`, `baseURL`), Python uses snake_case; defaults keep the
minimal spec tiny (`spec: {llm: {model: qarun-sim}}` is a complete run on the bundled
sample data set). The operator generates the CRD's OpenAPI schema from these models
(`python -m qarun_operator.crd`): every `description` becomes `kubectl explain` text and
every cross-field `Rule` is both a CEL `x-kubernetes-validations` rule that the API
server enforces and the same check in Python, so the two cannot drift.

No secret is ever part of a spec: the LLM key and the PostgreSQL DSN are named by
Secret references and reach the workloads as environment variables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "qarun.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "QARun"
PLURAL = "qaruns"
SINGULAR = "qarun"
SHORT_NAMES = ("qr",)

# A run's name appears in topic names (`qarun.<run>.<stream>`, dots are separators), in
# label values and in the Services the Flink operator derives from it (DNS-1035 labels,
# `<run>-flink-rest`), hence a letter first, no dots and a length that leaves room for
# the longest suffix.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH = 40
URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"


def validate_name(name: str) -> str:
    """The checks the CRD applies to metadata.name, for runs that never see the API server."""
    if len(name) > NAME_MAX_LENGTH or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(NAME_RULE.message)
    return name


class Rule(NamedTuple):
    """A cross-field check: CEL for the API server, a predicate for Python, one message."""

    cel: str
    message: str
    field_path: str  # JSONPath below the object the rule sits on, e.g. ".maxReplicas"
    check: Callable[[Any], bool]


NAME_RULE = Rule(
    cel=(
        f"self.metadata.name.size() <= {NAME_MAX_LENGTH} && "
        f"self.metadata.name.matches('{NAME_PATTERN}')"
    ),
    message=(
        f"metadata.name must be at most {NAME_MAX_LENGTH} characters of lowercase letters, "
        "digits and '-', start with a letter and end with a letter or digit (no dots: "
        "the name is part of Kafka topic names)"
    ),
    field_path=".metadata.name",
    check=lambda _: True,
)


def _rules_to_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    schema.pop("title", None)
    rules: tuple[Rule, ...] = getattr(model, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [
            {"rule": r.cel, "message": r.message, "fieldPath": r.field_path} for r in rules
        ]


class Model(BaseModel):
    """Base of every spec/status model: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
        json_schema_extra=_rules_to_schema,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Any:
        for rule in self.rules:
            if not rule.check(self):
                raise ValueError(rule.message)  # every message names its field
        return self

    def to_yaml_dict(self) -> dict[str, Any]:
        """The camelCase form written in YAML, as the API server stores it."""
        return self.model_dump(mode="json", by_alias=True)


# --- spec -----------------------------------------------------------------------------


class DatasetFormat(StrEnum):
    YAHOO_CSV = "yahoo-csv"
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class DatasetSpec(Model):
    """Where the questions and their reference answers come from."""

    source: str = Field(
        default="sample",
        min_length=1,
        max_length=2048,
        pattern=r"^(sample|https?://\S+|configmap:[a-z0-9]([-a-z0-9.]*[a-z0-9])?|/\S*)$",
        description=(
            "'sample' (the bundled Yahoo! Answers sample), an http(s) URL, "
            "'configmap:NAME' (a ConfigMap in the run's namespace, key 'data') or an "
            "absolute file path inside the generator's volume."
        ),
    )
    format: DatasetFormat = Field(
        default=DatasetFormat.YAHOO_CSV,
        description=(
            "yahoo-csv (4 columns: class, title, content, best answer; no header), csv "
            "(header with title, content, best_answer), jsonl or parquet (same fields)."
        ),
    )
    limit: int = Field(
        default=0, ge=0, description="Read at most this many questions; 0 reads them all."
    )


class Distribution(StrEnum):
    POISSON = "poisson"
    BURSTY = "bursty"
    CONSTANT = "constant"


class BurstSpec(Model):
    """Bursts on top of the base rate (distribution 'bursty' only)."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.lengthSeconds <= self.everySeconds",
            "burst.lengthSeconds must not exceed burst.everySeconds",
            ".lengthSeconds",
            lambda m: m.length_seconds <= m.every_seconds,
        ),
    )
    factor: float = Field(
        default=5.0, ge=1, le=1000, description="Rate multiplier during a burst (at least 1)."
    )
    every_seconds: float = Field(
        default=30.0, gt=0, le=86400, description="Seconds from the start of one burst to the next."
    )
    length_seconds: float = Field(default=5.0, gt=0, le=86400, description="Length of a burst.")


class TrafficSpec(Model):
    """How fast questions are sent and how many."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "!(self.total > 0 && self.durationSeconds > 0)",
            "set traffic.total or traffic.durationSeconds, not both",
            ".durationSeconds",
            lambda m: not (m.total > 0 and m.duration_seconds > 0),
        ),
    )
    distribution: Distribution = Field(
        default=Distribution.POISSON,
        description="Inter-arrival times: poisson (random), bursty (poisson with bursts) or "
        "constant (evenly spaced).",
    )
    rate_per_second: float = Field(
        default=50.0, gt=0, le=100000, description="Mean questions sent per second."
    )
    total: int = Field(
        default=0,
        ge=0,
        description="Questions to send; 0 sends the whole data set (see dataset.limit) or "
        "until durationSeconds.",
    )
    duration_seconds: int = Field(
        default=0,
        ge=0,
        description="Send for this many seconds, repeating the data set as needed (each "
        "pass has new question ids); 0 = no time limit.",
    )
    burst: BurstSpec = Field(default_factory=BurstSpec, description=BurstSpec.__doc__)


class SecretKeyRef(Model):
    """A key of a Secret in the run's namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=K8S_NAME_PATTERN, description="The Secret's name."
    )
    key: str = Field(
        default="apiKey",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="The key within the Secret.",
    )


class PricingSpec(Model):
    """Prices used to compute usage.costUSD and enforce budget.maxCostUSD."""

    prompt_usd_per_million: float = Field(
        default=0.0, ge=0, alias="promptUSDPerMillion", description="USD per 1M prompt tokens."
    )
    completion_usd_per_million: float = Field(
        default=0.0,
        ge=0,
        alias="completionUSDPerMillion",
        description="USD per 1M completion tokens.",
    )


class LLMSpec(Model):
    """The OpenAI-compatible endpoint and model that answers the questions."""

    base_url: str = Field(
        default="http://qarun-llm-sim:8000/v1",
        alias="baseURL",
        max_length=2048,
        pattern=URL_PATTERN,
        description="Base URL of any OpenAI-compatible API (OpenAI, Gemini's compatible "
        "endpoint, Ollama, vLLM, the QARun simulator).",
    )
    model: str = Field(
        min_length=1, max_length=256, description="The model name sent with every request."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="The Secret key holding the API key; never the key itself. Omit for "
        "endpoints without authentication.",
    )
    max_concurrency: int = Field(
        default=256,
        ge=1,
        le=10000,
        description="Requests in flight per worker; adaptive concurrency stays below it.",
    )
    requests_per_minute: int = Field(
        default=0, ge=0, description="Fleet-wide request rate cap shared by all workers; 0 = none."
    )
    tokens_per_minute: int = Field(
        default=0, ge=0, description="Fleet-wide token rate cap shared by all workers; 0 = none."
    )
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Timeout of one request."
    )
    max_tokens: int = Field(
        default=256, ge=1, le=131072, description="Completion token limit of one answer."
    )
    pricing: PricingSpec = Field(default_factory=PricingSpec, description=PricingSpec.__doc__)


class ResourceList(Model):
    """CPU and memory quantities."""

    cpu: str | None = Field(
        default=None, pattern=QUANTITY_PATTERN, description="CPU, e.g. 500m or 2."
    )
    memory: str | None = Field(
        default=None, pattern=QUANTITY_PATTERN, description="Memory, e.g. 256Mi or 1Gi."
    )


class Resources(Model):
    """Container resources of one LLM worker."""

    requests: ResourceList = Field(
        default_factory=lambda: ResourceList(cpu="250m", memory="256Mi"),
        description="Resources reserved for the container.",
    )
    limits: ResourceList = Field(
        default_factory=lambda: ResourceList(memory="512Mi"),
        description="Upper bounds for the container.",
    )


class AutoscaleSpec(Model):
    """Scale the LLM workers on the consumer lag of the questions topic (KEDA-style)."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            "autoscale.minReplicas must not exceed autoscale.maxReplicas",
            ".minReplicas",
            lambda m: m.min_replicas <= m.max_replicas,
        ),
    )
    enabled: bool = Field(default=False, description="Let the operator set workers.replicas.")
    min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest workers.")
    max_replicas: int = Field(default=10, ge=1, le=1000, description="Most workers.")
    lag_per_replica: int = Field(
        default=500, ge=1, description="Target unconsumed questions per worker."
    )


class WorkersSpec(Model):
    """The LLM worker Deployment."""

    replicas: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="LLM worker replicas; the /scale subresource sets it (kubectl scale "
        "qarun/NAME --replicas=N). 0 pauses answering.",
    )
    resources: Resources = Field(default_factory=Resources, description=Resources.__doc__)
    autoscale: AutoscaleSpec = Field(
        default_factory=AutoscaleSpec, description=AutoscaleSpec.__doc__
    )


class OverloadRetry(Model):
    """Back-off for 429 rate limits, 5xx and timeouts: exponential with jitter."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.baseDelaySeconds <= self.maxDelaySeconds",
            "retry.overload.baseDelaySeconds must not exceed maxDelaySeconds",
            ".baseDelaySeconds",
            lambda m: m.base_delay_seconds <= m.max_delay_seconds,
        ),
    )
    base_delay_seconds: int = Field(
        default=2, ge=1, le=86400, description="Delay before the first retry."
    )
    max_delay_seconds: int = Field(default=60, ge=1, le=86400, description="Longest delay.")


class QuotaRetry(Model):
    """Deferred retry when the provider's quota is exhausted."""

    delay_seconds: int = Field(default=60, ge=1, le=86400, description="Delay of each retry.")
    max_wait_seconds: int = Field(
        default=86400,
        ge=1,
        le=30 * 86400,
        description="How long a question may wait for quota (delaySeconds per refusal) "
        "before the dead-letter topic. Quota refusals do not count toward maxAttempts.",
    )


class RetrySpec(Model):
    """Retries of failed LLM calls; they never block a consumer (delay tier topics)."""

    max_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="LLM calls per generation, the first included, quota refusals not "
        "counted; then the dead-letter topic.",
    )
    overload: OverloadRetry = Field(
        default_factory=OverloadRetry, description=OverloadRetry.__doc__
    )
    quota: QuotaRetry = Field(default_factory=QuotaRetry, description=QuotaRetry.__doc__)


class ScoringMethod(StrEnum):
    LEXICAL = "lexical"
    EMBEDDING = "embedding"
    JUDGE = "judge"


class JudgeSpec(Model):
    """The LLM-as-judge (method 'judge'); empty fields use the llm section's values."""

    base_url: str = Field(
        default="",
        alias="baseURL",
        max_length=2048,
        pattern=r"^$|" + URL_PATTERN,
        description="OpenAI-compatible base URL of the judge; empty = llm.baseURL.",
    )
    model: str = Field(default="", max_length=256, description="Judge model; empty = llm.model.")


class ScoringSpec(Model):
    """How the Flink job scores an answer against the reference answer."""

    method: ScoringMethod = Field(
        default=ScoringMethod.LEXICAL,
        description="lexical (token overlap F1, fast), embedding (MiniLM sentence embeddings) "
        "or judge (LLM-as-judge with the seeds' rubric).",
    )
    threshold: float = Field(
        default=0.75, ge=0, le=1, description="An answer scoring at least this is validated."
    )
    max_regenerations: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Regenerations asked for below the threshold before the best answer is "
        "kept and flagged as exhausted.",
    )
    judge: JudgeSpec = Field(default_factory=JudgeSpec, description=JudgeSpec.__doc__)


class BudgetSpec(Model):
    """Stop sending questions when a budget is reached; 0 = unlimited."""

    max_tokens: int = Field(default=0, ge=0, description="Prompt + completion tokens.")
    max_cost_usd: float = Field(
        default=0.0, ge=0, alias="maxCostUSD", description="Cost in USD (see llm.pricing)."
    )


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


class QARunSpec(Model):
    """A question-answering evaluation run."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.budget.maxCostUSD == 0.0 || self.llm.pricing.promptUSDPerMillion > 0.0 || "
            "self.llm.pricing.completionUSDPerMillion > 0.0",
            "budget.maxCostUSD needs llm.pricing to compute a cost",
            ".budget.maxCostUSD",
            lambda m: (
                m.budget.max_cost_usd == 0
                or m.llm.pricing.prompt_usd_per_million > 0
                or m.llm.pricing.completion_usd_per_million > 0
            ),
        ),
        Rule(
            "!self.workers.autoscale.enabled || (self.workers.replicas >= "
            "self.workers.autoscale.minReplicas && self.workers.replicas <= "
            "self.workers.autoscale.maxReplicas)",
            "workers.replicas must lie within workers.autoscale min/maxReplicas when "
            "autoscale is enabled",
            ".workers.replicas",
            lambda m: (
                not m.workers.autoscale.enabled
                or m.workers.autoscale.min_replicas
                <= m.workers.replicas
                <= m.workers.autoscale.max_replicas
            ),
        ),
        Rule(
            "self.dataset.limit == 0 || self.traffic.total <= self.dataset.limit",
            "traffic.total must not exceed dataset.limit",
            ".traffic.total",
            lambda m: m.dataset.limit == 0 or m.traffic.total <= m.dataset.limit,
        ),
    )
    dataset: DatasetSpec = Field(default_factory=DatasetSpec, description=DatasetSpec.__doc__)
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, description=TrafficSpec.__doc__)
    llm: LLMSpec = Field(description=LLMSpec.__doc__)
    workers: WorkersSpec = Field(default_factory=WorkersSpec, description=WorkersSpec.__doc__)
    retry: RetrySpec = Field(default_factory=RetrySpec, description=RetrySpec.__doc__)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec, description=ScoringSpec.__doc__)
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description=BudgetSpec.__doc__)
    kafka: KafkaSpec = Field(default_factory=KafkaSpec, description=KafkaSpec.__doc__)
    flink: FlinkSpec = Field(default_factory=FlinkSpec, description=FlinkSpec.__doc__)
    storage: StorageSpec = Field(default_factory=StorageSpec, description=StorageSpec.__doc__)


# --- status ---------------------------------------------------------------------------


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


class QARun(BaseModel):
    """A whole resource as read from the API server (only the fields QARun needs)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str
    spec: QARunSpec

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> QARun:
        meta = body.get("metadata", {})
        return cls(name=validate_name(meta["name"]), namespace=meta["namespace"], spec=body["spec"])
