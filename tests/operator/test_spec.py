"""The QARun spec/status models: defaults, aliases and the Python side of every rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from qarun_core.spec import (
    NAME_MAX_LENGTH,
    Distribution,
    Phase,
    QARunSpec,
    QARunStatus,
    ScoringMethod,
    validate_name,
)
from qarun_core.summary import RunSummary

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [ROOT / "k8s" / "qarun.yaml", *sorted((ROOT / "k8s" / "samples").glob("*.yaml"))]


def test_minimal_spec_is_tiny_and_defaults_follow_the_design() -> None:
    spec = QARunSpec.model_validate({"llm": {"model": "qarun-sim"}})
    assert spec.dataset.source == "sample"
    assert spec.traffic.distribution is Distribution.POISSON
    assert spec.traffic.rate_per_second == 50
    assert spec.llm.base_url == "http://qarun-llm-sim:8000/v1"
    assert spec.llm.api_key_secret_ref is None
    assert spec.workers.replicas == 2
    assert spec.retry.max_attempts == 3
    assert spec.scoring.method is ScoringMethod.LEXICAL
    assert spec.scoring.threshold == 0.75
    assert spec.kafka.cluster == "qarun"
    assert spec.flink.session_cluster == ""
    assert spec.storage.postgres_secret_ref.name == "qarun-postgres"


def test_yaml_is_camel_case_and_round_trips() -> None:
    spec = QARunSpec.model_validate(
        {
            "llm": {
                "model": "m",
                "baseURL": "https://example.test/v1",
                "pricing": {"promptUSDPerMillion": 0.15},
            },
            "budget": {"maxCostUSD": 2},
        }
    )
    dumped = spec.to_yaml_dict()
    assert dumped["llm"]["baseURL"] == "https://example.test/v1"
    assert dumped["traffic"]["ratePerSecond"] == 50
    assert dumped["storage"]["redisURL"].startswith("redis://")
    assert dumped["budget"]["maxCostUSD"] == 2
    assert QARunSpec.model_validate(dumped) == spec


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_are_valid(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "qarun.io/v1alpha1"
    validate_name(doc["metadata"]["name"])
    QARunSpec.model_validate(doc["spec"])


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"llm": {}}, "llm.model"),
        ({"llm": {"model": "m"}, "scoring": {"threshold": 1.5}}, "scoring.threshold"),
        ({"llm": {"model": "m"}, "traffic": {"total": 5, "durationSeconds": 5}}, "durationSeconds"),
        ({"llm": {"model": "m"},
          "retry": {"overload": {"baseDelaySeconds": 9, "maxDelaySeconds": 3}}},
         "baseDelaySeconds"),
        ({"llm": {"model": "m"}, "workers": {"autoscale": {"minReplicas": 5, "maxReplicas": 2}}},
         "minReplicas"),
        ({"llm": {"model": "m"}, "storage": {"redisURL": "redis://u:pw@h:6379/0"}}, "redisURL"),
        ({"llm": {"model": "m"}, "budget": {"maxCostUSD": 1}}, "budget.maxCostUSD"),
        ({"llm": {"model": "m", "apiKey": "sk-123"}}, "apiKey"),
    ],
)  # fmt: skip
def test_invalid_specs_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        QARunSpec.model_validate(spec)
    assert field.rsplit(".", maxsplit=1)[-1] in str(error.value)


@pytest.mark.parametrize("name", ["a.b", "1abc", "Abc", "abc-", "a" * (NAME_MAX_LENGTH + 1)])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"metadata\.name"):
        validate_name(name)


def test_status_and_summary_parse_what_the_api_server_stores() -> None:
    status = QARunStatus.model_validate(
        {
            "phase": "Running",
            "progress": {"sent": 3, "validated": 2},
            "usage": {"costUSD": 0.25},
            "unknownFutureField": 1,
        }
    )
    assert status.phase is Phase.RUNNING
    assert status.usage.cost_usd == 0.25
    # A summary of another shape fails to parse (it used to read as zero progress).
    with pytest.raises(ValidationError, match="perAttempt"):
        RunSummary.model_validate({"run": "r", "counts": {"validated": 3}, "score": {}})
