"""All worker configuration in one typed place, read from environment variables.

The operator sets these on each Deployment; a local runner or a test sets them the
same way (or passes overrides to `Settings(...)`). Groups nest with a double
underscore: `QARUN_RUN=demo`, `QARUN_KAFKA__BOOTSTRAP=...`, `QARUN_LLM__BASE_URL=...`,
`QARUN_RETRY__TIERS=2s,10s,1m,5m`, `QARUN_METRICS__PORT=9100`. The LLM API key is read
only from the environment (`QARUN_LLM_API_KEY`, or `OPENAI_API_KEY`), never from a flag
or a message, and is a SecretStr so that printing the settings never shows it.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qarun_core.keys import consumer_group
from qarun_core.messages import RUN_PATTERN
from qarun_core.topics import DEFAULT_TIERS, RetryTier, RunTopics, tiers_from


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    partitions: int = Field(default=6, ge=1)
    replicas: int = Field(default=1, ge=1)
    group_prefix: str = "qarun"
    session_timeout_ms: int = Field(
        default=10000, ge=6000
    )  # how soon a crashed peer's partitions move
    create_topics: bool = True  # the operator's Strimzi KafkaTopics make this a no-op


class LLMSettings(BaseModel):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "qarun-sim"
    max_concurrency: int = Field(default=256, ge=1)  # per worker; AIMD stays below it
    min_concurrency: int = Field(default=4, ge=1)
    initial_concurrency: int = Field(default=32, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = 0.7
    prompt_usd_per_million: float = 0.0  # price per million prompt tokens, for cost
    completion_usd_per_million: float = 0.0
    requests_per_minute: int = Field(default=0, ge=0)  # fleet-wide; 0 = no limit
    tokens_per_minute: int = Field(default=0, ge=0)


class RetrySettings(BaseModel):
    max_attempts: int = Field(default=3, ge=1)  # LLM calls per attempt, not counting quota
    overload_base_seconds: float = Field(default=2.0, gt=0)
    overload_max_seconds: float = Field(default=60.0, gt=0)
    quota_delay_seconds: float = Field(default=60.0, gt=0)
    quota_max_wait_seconds: float = Field(default=86400.0, gt=0)  # then the dead-letter topic
    tiers: Annotated[tuple[RetryTier, ...], NoDecode] = DEFAULT_TIERS  # "2s,10s,1m,5m"

    @field_validator("tiers", mode="before")
    @classmethod
    def _parse_tiers(cls, value: object) -> object:
        if isinstance(value, str):
            return tiers_from(part for part in value.split(",") if part.strip())
        return value


class BudgetSettings(BaseModel):
    max_tokens: int = Field(default=0, ge=0)  # 0 = unlimited
    max_cost_usd: float = Field(default=0.0, ge=0)


class StorageSettings(BaseModel):
    postgres_dsn: SecretStr = SecretStr("postgresql://qarun@127.0.0.1:5432/qarun")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    cache_ttl_seconds: int = Field(default=21600, ge=1)
    batch_size: int = Field(default=500, ge=1)


class TrafficSettings(BaseModel):
    source: str = "sample"  # sample | http(s) URL | file path
    format: Literal["yahoo-csv", "csv", "jsonl", "parquet"] = "yahoo-csv"
    limit: int = Field(default=0, ge=0)  # 0 = the whole data set
    distribution: Literal["poisson", "bursty", "constant"] = "poisson"
    rate_per_second: float = Field(default=50.0, gt=0)
    total: int = Field(default=0, ge=0)  # questions to send; 0 = until duration or data end
    duration_seconds: float = Field(default=0.0, ge=0)
    burst_factor: float = Field(default=5.0, ge=1)
    burst_every_seconds: float = Field(default=30.0, gt=0)
    burst_length_seconds: float = Field(default=5.0, gt=0)
    seed: int = 0
    skip_answered: bool = True  # ask storage first, as the seeds' generator does


class APISettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080


class MetricsSettings(BaseModel):
    """The LLM worker's Prometheus endpoint (the operator's scrape annotation names the port)."""

    host: str = "0.0.0.0"  # noqa: S104 - scraped from outside the pod
    port: int = Field(default=9100, ge=0, le=65535)  # 0 = no endpoint


def default_instance() -> str:
    return os.environ.get("HOSTNAME") or f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Everything a worker process reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="QARUN_", env_nested_delimiter="__", extra="ignore"
    )

    run: str = Field(default="demo", pattern=RUN_PATTERN)
    instance: str = Field(default_factory=default_instance)
    log_level: str = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    llm: LLMSettings = LLMSettings()
    retry: RetrySettings = RetrySettings()
    budget: BudgetSettings = BudgetSettings()
    storage: StorageSettings = StorageSettings()
    traffic: TrafficSettings = TrafficSettings()
    api: APISettings = APISettings()
    metrics: MetricsSettings = MetricsSettings()
    llm_api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("QARUN_LLM_API_KEY", "OPENAI_API_KEY"),
    )

    @property
    def topics(self) -> RunTopics:
        return RunTopics(self.run, self.retry.tiers)

    def secrets(self) -> list[str]:
        """Every secret value this process holds, for the log redaction filter."""
        values = [self.llm_api_key, self.storage.postgres_dsn, self.storage.redis_url]
        return [value.get_secret_value() for value in values]

    def group(self, role: str) -> str:
        """The consumer group of one role in this run."""
        return consumer_group(self.run, role, self.kafka.group_prefix)
