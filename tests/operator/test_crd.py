"""The CRD is generated from the pydantic models; the committed copy must match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from qarun_devstack.kube import KubeCluster
from qarun_operator import crd

CRD_FILE = (
    Path(__file__).resolve().parents[2]
    / "charts"
    / "qarun-operator"
    / "crds"
    / "qaruns.qarun.io.yaml"
)


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.get("properties", {}).items():
            out += walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            out += walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_committed_crd_is_the_generated_one() -> None:
    assert CRD_FILE.read_text() == crd.render(), (
        "regenerate with: python -m qarun_operator.crd "
        "charts/qarun-operator/crds/qaruns.qarun.io.yaml"
    )


def test_schema_is_structural_documented_and_defaulted() -> None:
    version = crd.crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    text = json.dumps(schema)
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", '"title"', "$defs"):
        assert forbidden not in text
    for path, node in walk(schema["properties"]["spec"], "spec"):
        assert "type" in node, path
        assert node.get("description"), f"{path} has no description"
    spec = schema["properties"]["spec"]["properties"]
    assert spec["scoring"]["properties"]["method"]["enum"] == ["lexical", "embedding", "judge"]
    assert spec["traffic"]["properties"]["ratePerSecond"]["exclusiveMinimum"] is True
    assert spec["workers"]["default"]["replicas"] == 2  # object defaults: nested fields too
    assert schema["properties"]["spec"]["required"] == ["llm"]
    assert spec["llm"]["required"] == ["model"]
    rules = [r["rule"] for _, n in walk(schema) for r in n.get("x-kubernetes-validations", [])]
    assert any("minReplicas <= self.maxReplicas" in r for r in rules)
    assert any("metadata.name" in r for r in rules)


def test_subresources_columns_and_names() -> None:
    spec = crd.crd()["spec"]
    assert spec["names"]["shortNames"] == ["qr"]
    version = spec["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.workers.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert version["subresources"]["status"] == {}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Answered"] == ".status.progress.answered"
    assert columns["Validated"] == ".status.progress.validated"
    assert columns["Score"] == ".status.score.mean"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_api_server_accepts_the_crd_and_explains_it(qarun_crd: KubeCluster) -> None:
    crd_object = json.loads(qarun_crd.kubectl("get", "crd", "qaruns.qarun.io", "-o", "json").stdout)
    established = {c["type"]: c["status"] for c in crd_object["status"]["conditions"]}
    assert established["Established"] == "True"
    assert established.get("NonStructuralSchema", "False") == "False"
    explained = qarun_crd.kubectl("explain", "qarun.spec.llm").stdout
    assert "OpenAI-compatible" in explained
    assert "apiKeySecretRef" in explained
    assert "model" in explained and "-required-" in explained


def test_server_applies_nested_defaults(qarun_crd: KubeCluster) -> None:
    sample = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "k8s" / "samples" / "minimal.yaml").read_text()
    )
    sample["metadata"]["name"] = "defaults-check"
    done = qarun_crd.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", "default", "-o", "json", "-f", "-",
        input=json.dumps(sample),
    )  # fmt: skip
    spec = json.loads(done.stdout)["spec"]
    assert spec["workers"]["replicas"] == 2
    assert spec["workers"]["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert spec["scoring"] == {
        "method": "lexical",
        "threshold": 0.75,
        "maxRegenerations": 3,
        "judge": {"baseURL": "", "model": ""},
    }
    assert spec["storage"]["postgresSecretRef"] == {"name": "qarun-postgres", "key": "dsn"}


def test_listing_a_kind_the_cluster_lacks_finds_nothing(qarun_crd: KubeCluster) -> None:
    """Without Strimzi or the Flink operator their CRDs are absent: the API server answers
    a plain-text 404, and the operator's list (observe, prune) reads it as no objects."""
    from kubernetes import client, config  # noqa: PLC0415

    from qarun_operator.kube import Kube  # noqa: PLC0415
    from qarun_operator.objects import ResourceKind  # noqa: PLC0415

    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(qarun_crd.kubeconfig), client_configuration=configuration
    )
    kube = Kube(client.ApiClient(configuration))
    absent = ResourceKind("nothing.example.com/v1", "Nothing")
    assert kube.list(absent, "default", "qarun.io/run=x") == []
    assert kube.get(absent, "default", "x") is None
