"""A small typed layer over the kubernetes client's REST calls, for the few kinds QARun needs.

Paths come from a static table instead of discovery: the operator knows every kind it
touches, and its RBAC grants exactly those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import kubernetes

from qarun_core.plan import MANAGER
from qarun_core.spec import API_VERSION, PLURAL
from qarun_operator.config import KubeAccess

JSON = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        base = "/api" if "/" not in self.api_version else "/apis"
        out = f"{base}/{self.api_version}/namespaces/{quote(namespace)}/{self.plural}"
        if name:
            out += f"/{quote(name)}"
        if sub:
            out += f"/{sub}"
        return out


KAFKA_TOPIC = Kind("kafka.strimzi.io/v1", "KafkaTopic", "kafkatopics")
FLINK_DEPLOYMENT = Kind("flink.apache.org/v1beta1", "FlinkDeployment", "flinkdeployments")
FLINK_SESSION_JOB = Kind("flink.apache.org/v1beta1", "FlinkSessionJob", "flinksessionjobs")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
JOB = Kind("batch/v1", "Job", "jobs")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SERVICE = Kind("v1", "Service", "services")
CLAIM = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
QARUN = Kind(API_VERSION, "QARun", PLURAL)
# Children by kind; a cluster without Strimzi or the Flink operator has no such kinds,
# and listing them answers 404 (see Kube.list).
CHILD_KINDS = (
    KAFKA_TOPIC, FLINK_DEPLOYMENT, FLINK_SESSION_JOB, DEPLOYMENT, JOB, CONFIG_MAP, SERVICE, CLAIM,
)  # fmt: skip
KINDS = {(k.api_version, k.kind): k for k in (*CHILD_KINDS, QARUN)}


def kind_of(obj: JSON) -> Kind:
    return KINDS[(obj["apiVersion"], obj["kind"])]


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Kube:
    """Synchronous client; kopf runs the sync handlers in its thread pool."""

    def __init__(self, api: kubernetes.client.ApiClient | None = None) -> None:
        self.api = api or self._default_client()

    @staticmethod
    def _default_client() -> kubernetes.client.ApiClient:
        """In a pod: its service account; elsewhere: $KUBECONFIG (read now, not at import)."""
        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=KubeAccess().kubeconfig, client_configuration=config
            )
        return kubernetes.client.ApiClient(config)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> JSON:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            # The client encodes the body itself (JSON is YAML too, for apply); text
            # given here would be encoded twice for the JSON types, as one JSON string.
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params, _request_timeout=30)
        data = response.read()  # type: ignore[no-untyped-call]
        try:
            payload: JSON = json.loads(data) if data else {}
        except ValueError:  # e.g. "404 page not found" for a kind whose CRD is absent
            payload = {"message": data.decode(errors="replace")}
        if not 200 <= response.status < 300:
            raise KubeError(
                response.status, str(payload.get("reason", "")), str(payload.get("message", data))
            )
        return payload

    def get(self, kind: Kind, namespace: str, name: str) -> JSON | None:
        try:
            return self.request("GET", kind.path(namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def list(self, kind: Kind, namespace: str, selector: str) -> list[JSON]:
        """The objects of a kind with the labels; none when the cluster lacks the kind
        (its CRD is not installed: no Strimzi, no Flink operator)."""
        try:
            found = self.request("GET", kind.path(namespace), query=[("labelSelector", selector)])
        except KubeError as error:
            if error.status == 404:
                return []
            raise
        items: list[JSON] = found.get("items", [])
        return items

    def apply(self, obj: JSON, *, subresource: str | None = None) -> JSON:
        """Server-side apply with the operator's field manager, taking over conflicts."""
        meta = obj["metadata"]
        return self.request(
            "PATCH",
            kind_of(obj).path(meta["namespace"], meta["name"], subresource),
            query=[("fieldManager", MANAGER), ("force", "true")],
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    def merge_patch(
        self, kind: Kind, namespace: str, name: str, body: JSON, subresource: str | None = None
    ) -> JSON:
        return self.request(
            "PATCH",
            kind.path(namespace, name, subresource),
            body=body,
            content_type="application/merge-patch+json",
        )

    def delete(self, kind: Kind, namespace: str, name: str, uid: str | None = None) -> None:
        body: JSON = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", kind.path(namespace, name), body=body)
        except KubeError as error:
            if error.status != 404:
                raise
