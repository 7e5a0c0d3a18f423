"""The whole spec of a run, its cross-section rules, and a run as read from the API server."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from qarun_core.spec.answering import BudgetSpec, LLMSpec, RetrySpec, ScoringSpec, WorkersSpec
from qarun_core.spec.model import Model, Rule, validate_name
from qarun_core.spec.platform import FlinkSpec, KafkaSpec, StorageSpec
from qarun_core.spec.questions import DatasetSpec, TrafficSpec


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
