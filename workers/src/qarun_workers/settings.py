"""All worker configuration in one typed place, read from environment variables.

Each section is a section of the QARun spec (`qarun_core.spec`), so a spec field is
declared, defaulted and validated once; a section only adds what the process alone
needs (the retry tier topics, the Kafka client's timeouts, the secrets). The plan
generates the names from the same models (`qarun_core.env_contract`): `QARUN_` prefix,
groups nested with a double underscore, e.g. `QARUN_RUN=demo`,
`QARUN_RETRY__OVERLOAD__BASE_DELAY_SECONDS=2`, `QARUN_LLM__PRICING__PROMPT_USD_PER_MILLION`.
Secrets come only from the environment (a Secret on Kubernetes): `QARUN_LLM__API_KEY` and
`QARUN_STORAGE__POSTGRES_DSN`, SecretStr so that printing the settings never shows them.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qarun_core.env_contract import DELIMITER, PREFIX
from qarun_core.keys import consumer_group
from qarun_core.messages import RUN_PATTERN
from qarun_core.spec import (
    BudgetSpec,
    DatasetSpec,
    KafkaSpec,
    LLMSpec,
    RetrySpec,
    StorageSpec,
    TrafficSpec,
)
from qarun_core.topics import DEFAULT_TIERS, RetryTier, RunTopics, tiers_from

# Where a worker started by hand (tests, benchmarks) finds the local broker; the plan
# always names one.
LOCAL_BOOTSTRAP = "127.0.0.1:9092"


class KafkaSettings(KafkaSpec):
    group_prefix: str = "qarun"
    session_timeout_ms: int = Field(
        default=10000, ge=6000
    )  # how soon a crashed peer's partitions move
    create_topics: bool = True  # the plan's topics are created by whoever realizes it

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or LOCAL_BOOTSTRAP


class LLMSettings(LLMSpec):
    # The one default the spec leaves out: a process that is not given the llm section
    # (the retry worker, the storage writer) still validates if the user's environment
    # holds QARUN_LLM__API_KEY for the LLM worker.
    model: str = Field(default="qarun-sim", min_length=1, max_length=256)
    api_key: SecretStr = SecretStr("")  # from the Secret that llm.apiKeySecretRef names
    min_concurrency: int = Field(default=4, ge=1)  # AIMD's range within max_concurrency
    initial_concurrency: int = Field(default=32, ge=1)
    temperature: float = 0.7


class RetrySettings(RetrySpec):
    tiers: Annotated[tuple[RetryTier, ...], NoDecode] = DEFAULT_TIERS  # "2s,10s,1m,5m"

    @field_validator("tiers", mode="before")
    @classmethod
    def _parse_tiers(cls, value: object) -> object:
        if isinstance(value, str):
            return tiers_from(part for part in value.split(",") if part.strip())
        return value


class StorageSettings(StorageSpec):
    postgres_dsn: SecretStr = SecretStr("postgresql://qarun@127.0.0.1:5432/qarun")
    batch_size: int = Field(default=500, ge=1)


class TrafficSettings(TrafficSpec):
    seed: int = 0
    skip_answered: bool = True  # a run started again sends only what is not yet stored


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
        env_prefix=PREFIX, env_nested_delimiter=DELIMITER, extra="ignore"
    )

    # the process's own
    run: str = Field(default="demo", pattern=RUN_PATTERN)
    instance: str = Field(default_factory=default_instance)
    log_level: str = "INFO"
    api: APISettings = APISettings()
    metrics: MetricsSettings = MetricsSettings()
    # the spec's sections
    kafka: KafkaSettings = KafkaSettings()
    llm: LLMSettings = LLMSettings()
    retry: RetrySettings = RetrySettings()
    budget: BudgetSpec = BudgetSpec()
    storage: StorageSettings = StorageSettings()
    dataset: DatasetSpec = DatasetSpec()
    traffic: TrafficSettings = TrafficSettings()

    @property
    def topics(self) -> RunTopics:
        return RunTopics(self.run, self.retry.tiers)

    def secrets(self) -> list[str]:
        """Every secret value this process holds, for the log redaction filter."""
        values = [self.llm.api_key, self.storage.postgres_dsn]
        return [value.get_secret_value() for value in values] + [self.storage.redis_url]

    def group(self, role: str) -> str:
        """The consumer group of one role in this run."""
        return consumer_group(self.run, role, self.kafka.group_prefix)
