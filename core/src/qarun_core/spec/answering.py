"""Who answers and how answers are judged: the LLM, its workers, retries, scoring and the budget."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from qarun_core.spec.model import QUANTITY_PATTERN, URL_PATTERN, Model, Rule, SecretKeyRef


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
        "or judge (an LLM rates the answer against the reference answer).",
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
