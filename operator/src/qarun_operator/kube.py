"""The operator's Kubernetes access: the client library's DynamicClient, by kind.

Every way a call can fail (the API server refusing it, a kind the cluster lacks, a
connection refused or timed out) becomes one `KubeError`, which the controller turns
into a Degraded condition and a retry instead of a crashed handler.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from qarun_core.plan import MANAGER
from qarun_operator.config import KubeAccess
from qarun_operator.objects import JSON, ResourceKind, kind_of

REQUEST_SECONDS = 30
NOT_FOUND = 404
T = TypeVar("T")


class KubeError(Exception):
    """A Kubernetes call that failed; `status` is the HTTP status, None when no answer
    came (the API server unreachable, the call timed out)."""

    def __init__(self, status: int | None, reason: str, message: str) -> None:
        super().__init__(f"{status or 'no answer'} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except ApiException as error:  # DynamicApiError and the generated client's own
        body = error.body or ""
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        try:
            message = str(json.loads(text).get("message", text))
        except (TypeError, ValueError, AttributeError):  # e.g. "404 page not found"
            message = text or str(error)
        raise KubeError(error.status, str(error.reason or ""), message) from error
    except ResourceNotFoundError as error:  # the kind is not served (no CRD)
        raise KubeError(NOT_FOUND, "NotFound", str(error)) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:  # refused, reset, timed out
        raise KubeError(None, type(error).__name__, str(error)) from error


class Kube:
    """Synchronous client; kopf runs the sync handlers in its thread pool."""

    def __init__(self, api: kubernetes.client.ApiClient | None = None) -> None:
        self._api = api
        self._dynamic: Any = None  # a DynamicClient (the library's is untyped)

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

    def _call(self, kind: ResourceKind, call: Callable[[Any, Any], T]) -> T:
        """`call` with the kind's resource; discovery (made on first use, so that an
        unreachable API server is a KubeError of the first call) finds its path."""
        with _translated():
            if self._dynamic is None:
                self._dynamic = DynamicClient(self._api or self._default_client())  # type: ignore[no-untyped-call]
            resource = self._dynamic.resources.get(api_version=kind.api_version, kind=kind.kind)
            return call(self._dynamic, resource)

    def get(self, kind: ResourceKind, namespace: str, name: str) -> JSON | None:
        try:
            found: JSON = self._call(
                kind,
                lambda d, r: d.get(r, name=name, namespace=namespace,
                                   _request_timeout=REQUEST_SECONDS).to_dict(),
            )  # fmt: skip
        except KubeError as error:
            if error.status == NOT_FOUND:
                return None
            raise
        return found

    def list(self, kind: ResourceKind, namespace: str, selector: str) -> list[JSON]:
        """The objects of a kind with the labels; none when the cluster lacks the kind
        (its CRD is not installed: no Strimzi, no Flink operator)."""
        try:
            found: JSON = self._call(
                kind,
                lambda d, r: d.get(r, namespace=namespace, label_selector=selector,
                                   _request_timeout=REQUEST_SECONDS).to_dict(),
            )  # fmt: skip
        except KubeError as error:
            if error.status == NOT_FOUND:
                return []
            raise
        items: list[JSON] = found.get("items") or []
        return items

    def apply(self, obj: JSON) -> JSON:
        """Server-side apply with the operator's field manager, taking over conflicts."""
        applied: JSON = self._call(
            kind_of(obj),
            lambda d, r: d.server_side_apply(
                r, body=obj, field_manager=MANAGER, force_conflicts=True,
                _request_timeout=REQUEST_SECONDS,
            ).to_dict(),
        )  # fmt: skip
        return applied

    def merge_patch(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        body: JSON,
        subresource: str | None = None,
    ) -> JSON:
        def patch(d: Any, r: Any) -> JSON:
            target = r.subresources[subresource] if subresource else r
            patched: JSON = d.patch(
                target, body=body, name=name, namespace=namespace,
                content_type="application/merge-patch+json", _request_timeout=REQUEST_SECONDS,
            ).to_dict()  # fmt: skip
            return patched

        return self._call(kind, patch)

    def delete(self, kind: ResourceKind, namespace: str, name: str, uid: str | None = None) -> None:
        body: JSON = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call(
                kind,
                lambda d, r: d.delete(r, name=name, namespace=namespace, body=body,
                                      _request_timeout=REQUEST_SECONDS),
            )  # fmt: skip
        except KubeError as error:
            if error.status != NOT_FOUND:
                raise
