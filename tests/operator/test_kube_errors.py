"""Every way a Kubernetes call fails reaches the controller as one KubeError, which it
turns into a Degraded condition and a retry: an API server nobody answers at, and a
service account the API server forbids everything."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from qarun_core.ports import free_port
from qarun_devstack.kube import KubeCluster
from qarun_operator import controller
from qarun_operator.config import OperatorConfig
from qarun_operator.kube import Kube, KubeError
from qarun_operator.objects import CONFIG_MAP, DEPLOYMENT

ROOT = Path(__file__).parents[2]


def kube_at(kubeconfig: Path) -> Kube:
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    return Kube(client.ApiClient(configuration))


def sample_body(namespace: str) -> dict[str, Any]:
    run: dict[str, Any] = yaml.safe_load((ROOT / "k8s" / "qarun.yaml").read_text())
    run["metadata"].update(namespace=namespace, uid=secrets.token_hex(8), generation=1)
    return run


def degraded(outcome: controller.Outcome) -> dict[str, Any]:
    conditions = {c["type"]: c for c in outcome.status["conditions"]}
    assert outcome.retry, "a failed call must be retried"
    return dict(conditions["Degraded"])


def test_an_unreachable_api_server_is_a_kube_error_and_a_degraded_condition(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "gone",
            "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                      "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
        })
    )  # fmt: skip
    kube = kube_at(kubeconfig)
    with pytest.raises(KubeError) as raised:
        kube.list(DEPLOYMENT, "default", "qarun.io/run=x")
    assert raised.value.status is None  # no answer, not an HTTP status

    outcome = controller.reconcile(kube, sample_body("default"), OperatorConfig(summary_url=""))
    condition = degraded(outcome)
    assert condition["status"] == "True"
    assert condition["reason"] == "ReconcileFailed"
    assert "no answer" in condition["message"]


def test_a_forbidden_call_is_a_kube_error_and_a_degraded_condition(
    kube: KubeCluster, tmp_path: Path
) -> None:
    namespace = f"forbidden-{secrets.token_hex(3)}"
    kube.kubectl("create", "namespace", namespace)
    kube.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = kube.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "nobody",
            "clusters": [{"name": "k", "cluster": {"server": kube.server,
                                                   "insecure-skip-tls-verify": True}}],
            "users": [{"name": "nobody", "user": {"token": token}}],
            "contexts": [{"name": "nobody", "context": {"cluster": "k", "user": "nobody"}}],
        })
    )  # fmt: skip
    kube_nobody = kube_at(kubeconfig)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "probe", "namespace": namespace},
        "data": {"a": "b"},
    }
    with pytest.raises(KubeError) as raised:
        kube_nobody.apply(configmap)
    assert (raised.value.status, raised.value.reason) == (403, "Forbidden")
    assert "cannot patch resource" in raised.value.message
    with pytest.raises(KubeError) as raised:
        kube_nobody.get(CONFIG_MAP, namespace, "probe")
    assert raised.value.status == 403

    outcome = controller.reconcile(
        kube_nobody, sample_body(namespace), OperatorConfig(summary_url="")
    )
    condition = degraded(outcome)
    assert condition["status"] == "True"
    assert "Forbidden" in condition["message"]
    kube.kubectl("delete", "namespace", namespace, "--wait=false")
