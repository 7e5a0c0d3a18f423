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

from qarun_core.spec.answering import (
    AutoscaleSpec,
    BudgetSpec,
    JudgeSpec,
    LLMSpec,
    OverloadRetry,
    PricingSpec,
    QuotaRetry,
    ResourceList,
    Resources,
    RetrySpec,
    ScoringMethod,
    ScoringSpec,
    WorkersSpec,
)
from qarun_core.spec.model import (
    API_VERSION,
    GROUP,
    K8S_NAME_PATTERN,
    KIND,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    NAME_RULE,
    PLURAL,
    QUANTITY_PATTERN,
    SHORT_NAMES,
    SINGULAR,
    URL_PATTERN,
    VERSION,
    Model,
    Rule,
    SecretKeyRef,
    validate_name,
)
from qarun_core.spec.platform import FlinkMode, FlinkSpec, KafkaProvider, KafkaSpec, StorageSpec
from qarun_core.spec.questions import (
    BurstSpec,
    DatasetFormat,
    DatasetSpec,
    Distribution,
    TrafficSpec,
)
from qarun_core.spec.run_spec import QARun, QARunSpec
from qarun_core.spec.run_status import (
    TERMINAL_PHASES,
    Condition,
    ConditionType,
    FlinkStatus,
    Phase,
    Progress,
    QARunStatus,
    ScoreStats,
    Status,
    Usage,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "K8S_NAME_PATTERN",
    "KIND",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "NAME_RULE",
    "PLURAL",
    "QUANTITY_PATTERN",
    "SHORT_NAMES",
    "SINGULAR",
    "TERMINAL_PHASES",
    "URL_PATTERN",
    "VERSION",
    "AutoscaleSpec",
    "BudgetSpec",
    "BurstSpec",
    "Condition",
    "ConditionType",
    "DatasetFormat",
    "DatasetSpec",
    "Distribution",
    "FlinkMode",
    "FlinkSpec",
    "FlinkStatus",
    "JudgeSpec",
    "KafkaProvider",
    "KafkaSpec",
    "LLMSpec",
    "Model",
    "OverloadRetry",
    "Phase",
    "PricingSpec",
    "Progress",
    "QARun",
    "QARunSpec",
    "QARunStatus",
    "QuotaRetry",
    "ResourceList",
    "Resources",
    "RetrySpec",
    "Rule",
    "ScoreStats",
    "ScoringMethod",
    "ScoringSpec",
    "SecretKeyRef",
    "Status",
    "StorageSpec",
    "TrafficSpec",
    "Usage",
    "WorkersSpec",
    "validate_name",
]
