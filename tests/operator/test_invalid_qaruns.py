"""Invalid QARuns are rejected by the API server (OpenAPI schema + CEL) with a message that
names the field, and by the pydantic models the CRD is generated from."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from qarun_core.spec import QARunSpec, validate_name
from qarun_devstack.kube import KubeCluster

DELETE = object()
BASE: dict[str, Any] = {
    "apiVersion": "qarun.io/v1alpha1",
    "kind": "QARun",
    "metadata": {"name": "invalid", "namespace": "default"},
    "spec": {"llm": {"model": "qarun-sim"}},
}

# (case id, changes merged into the spec, the field the API server's message must name)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("negative-rate", {"traffic": {"ratePerSecond": -1}}, "spec.traffic.ratePerSecond"),
    ("zero-rate", {"traffic": {"ratePerSecond": 0}}, "spec.traffic.ratePerSecond"),
    ("threshold-above-1", {"scoring": {"threshold": 1.5}}, "spec.scoring.threshold"),
    ("threshold-negative", {"scoring": {"threshold": -0.1}}, "spec.scoring.threshold"),
    ("unknown-scorer", {"scoring": {"method": "bleu"}}, "spec.scoring.method"),
    ("missing-model", {"llm": {"model": DELETE}}, "spec.llm.model"),
    ("missing-llm", {"llm": DELETE}, "spec.llm"),
    ("negative-replicas", {"workers": {"replicas": -1}}, "spec.workers.replicas"),
    ("unknown-distribution", {"traffic": {"distribution": "uniform"}}, "spec.traffic.distribution"),
    ("total-and-duration", {"traffic": {"total": 10, "durationSeconds": 60}},
     "spec.traffic.durationSeconds"),
    ("burst-longer-than-period", {"traffic": {"burst": {"everySeconds": 5, "lengthSeconds": 10}}},
     "spec.traffic.burst.lengthSeconds"),
    ("autoscale-min-above-max", {"workers": {"autoscale": {"minReplicas": 5, "maxReplicas": 2}}},
     "spec.workers.autoscale.minReplicas"),
    ("replicas-outside-autoscale",
     {"workers": {"replicas": 20, "autoscale": {"enabled": True, "maxReplicas": 10}}},
     "spec.workers.replicas"),
    ("zero-attempts", {"retry": {"maxAttempts": 0}}, "spec.retry.maxAttempts"),
    ("backoff-base-above-max",
     {"retry": {"overload": {"baseDelaySeconds": 90, "maxDelaySeconds": 60}}},
     "spec.retry.overload.baseDelaySeconds"),
    ("too-many-regenerations", {"scoring": {"maxRegenerations": 50}},
     "spec.scoring.maxRegenerations"),
    ("base-url-not-http", {"llm": {"baseURL": "ftp://llm.example/v1"}}, "spec.llm.baseURL"),
    ("api-key-inline", {"llm": {"apiKey": "sk-not-here"}}, "spec.llm.apiKey"),
    ("secret-ref-without-name", {"llm": {"apiKeySecretRef": {"key": "apiKey"}}},
     "spec.llm.apiKeySecretRef.name"),
    ("redis-url-with-password", {"storage": {"redisURL": "redis://u:pw@redis:6379/0"}},
     "spec.storage.redisURL"),
    ("zero-partitions", {"kafka": {"partitions": 0}}, "spec.kafka.partitions"),
    ("min-isr-not-below-replicas", {"kafka": {"replicas": 3, "minInSyncReplicas": 3}},
     "spec.kafka.minInSyncReplicas"),
    ("zero-parallelism", {"flink": {"parallelism": 0}}, "spec.flink.parallelism"),
    ("unknown-format", {"dataset": {"format": "xml"}}, "spec.dataset.format"),
    ("unsupported-source", {"dataset": {"source": "ftp://data.example/q.csv"}},
     "spec.dataset.source"),
    ("budget-without-pricing", {"budget": {"maxCostUSD": 5}}, "spec.budget.maxCostUSD"),
    ("total-above-limit", {"dataset": {"limit": 10}, "traffic": {"total": 20}},
     "spec.traffic.total"),
    ("bad-cpu-quantity", {"workers": {"resources": {"requests": {"cpu": "lots"}}}},
     "spec.workers.resources.requests.cpu"),
    ("zero-timeout", {"llm": {"timeoutSeconds": 0}}, "spec.llm.timeoutSeconds"),
    ("negative-budget", {"budget": {"maxTokens": -5}}, "spec.budget.maxTokens"),
]  # fmt: skip
NAME_CASES = [("dotted-name", "my.run"), ("digit-first-name", "1run"), ("long-name", "r" * 41)]


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def dry_run(kube: KubeCluster, doc: dict[str, Any]) -> str:
    done = kube.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False
    )
    assert done.returncode != 0, f"accepted: {done.stdout}"
    return done.stderr


def test_there_are_at_least_20_cases() -> None:
    assert len(CASES) + len(NAME_CASES) >= 20


def test_the_valid_base_is_accepted(qarun_crd: KubeCluster) -> None:
    done = qarun_crd.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=json.dumps(BASE)
    )
    assert "serverside-applied" in done.stdout


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_api_server_rejects_naming_the_field(
    qarun_crd: KubeCluster, changes: dict[str, Any], field: str
) -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"] = merged(doc["spec"], changes)
    error = dry_run(qarun_crd, doc)
    assert field in error, error
    with pytest.raises(ValidationError) as python_error:  # the models agree
        QARunSpec.model_validate(doc["spec"])
    assert field.rsplit(".", 1)[-1] in str(python_error.value) or "must" in str(python_error.value)


@pytest.mark.parametrize("name", [c[1] for c in NAME_CASES], ids=[c[0] for c in NAME_CASES])
def test_api_server_rejects_bad_names(qarun_crd: KubeCluster, name: str) -> None:
    doc = copy.deepcopy(BASE)
    doc["metadata"]["name"] = name
    error = dry_run(qarun_crd, doc)
    assert "metadata.name" in error, error
    with pytest.raises(ValueError, match=r"metadata\.name"):
        validate_name(name)
