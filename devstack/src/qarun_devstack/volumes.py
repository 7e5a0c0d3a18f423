"""The real node's storage: a default StorageClass `node-local` and its provisioner.

A claim naming no class gets `node-local` from the API server's default-class
admission; the provisioner (a thread of the process running the node) watches claims,
binds each Pending one of that class to a new hostPath PersistentVolume whose directory
lives in the node's work directory (owned by the charts' pod user), and deletes the
volume and its directory once the claim is gone. The node has one kubelet, so a hostPath
is the same directory for every pod that mounts the claim (the standalone Flink
session's JobManager and TaskManager share their checkpoints that way).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client import ApiException

STORAGE_CLASS = "node-local"
PROVISIONER = "qarun.io/node-local"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
LABEL = "qarun.io/provisioner"  # on every volume it made, value STORAGE_CLASS
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
POD_UID = 10001  # runAsUser of every QARun pod (charts/qarun-stack/templates/_helpers.tpl)
WATCH_SECONDS = 5  # how long one watch call lasts: the stop flag is read between calls

log = logging.getLogger(__name__)


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


class NodeVolumes:
    """The provisioner for `node-local` claims; `start` also creates the StorageClass."""

    def __init__(self, kubeconfig: Path, root: Path) -> None:
        self.root = root
        self.api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.core = kubernetes.client.CoreV1Api(self.api)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-volumes", daemon=True)

    def start(self) -> NodeVolumes:
        self.root.mkdir(parents=True, exist_ok=True)
        storage = kubernetes.client.StorageV1Api(self.api)
        try:
            body: Any = storage_class()
            storage.create_storage_class(body)
        except ApiException as error:
            if error.status != 409:
                raise
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(WATCH_SECONDS + 10)
        self.api.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self.reconcile()
                watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
                for _event in watch.stream(  # type: ignore[no-untyped-call]
                    self.core.list_persistent_volume_claim_for_all_namespaces,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                ):
                    self.reconcile()
                    if self._stop.is_set():
                        watch.stop()  # type: ignore[no-untyped-call]
            except Exception as error:  # the API server restarting or stopping
                if not self._stop.is_set():
                    log.warning("node volumes: %s; watching again", error)
                    self._stop.wait(1)

    def reconcile(self) -> str:
        """Provision every Pending claim of the class, reap every volume whose claim is
        gone; returns the claims' resource version to watch from."""
        # The generated models, read as they come (every field is Optional to mypy).
        claims: Any = self.core.list_persistent_volume_claim_for_all_namespaces()
        mine = f"{LABEL}={STORAGE_CLASS}"
        volumes: Any = self.core.list_persistent_volume(label_selector=mine).items
        provisioned = {v.spec.claim_ref.uid for v in volumes if v.spec.claim_ref}
        live = {c.metadata.uid for c in claims.items}
        for claim in claims.items:
            if (
                claim.status.phase == "Pending"
                and not claim.spec.volume_name
                and claim.spec.storage_class_name in (STORAGE_CLASS, None)
                and claim.metadata.uid not in provisioned
                and not claim.metadata.deletion_timestamp
            ):
                self._provision(claim)
        for volume in volumes:
            ref = volume.spec.claim_ref
            if (ref is None or ref.uid not in live) and not volume.metadata.deletion_timestamp:
                self._reap(volume)
        return str(claims.metadata.resource_version)

    def _directory(self, name: str) -> Path:
        return self.root / name

    def _provision(self, claim: Any) -> None:
        meta = claim.metadata
        name = f"node-local-{meta.uid}"
        directory = self._directory(name)
        directory.mkdir(mode=0o770, exist_ok=True)
        os.chown(directory, POD_UID, POD_UID)
        directory.chmod(0o770)
        volume: Any = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "labels": {LABEL: STORAGE_CLASS},
                "annotations": {PROVISIONED_BY: PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": claim.spec.resources.requests["storage"]},
                "accessModes": claim.spec.access_modes,
                "volumeMode": claim.spec.volume_mode or "Filesystem",
                "storageClassName": STORAGE_CLASS,
                "persistentVolumeReclaimPolicy": "Delete",
                "hostPath": {"path": str(directory), "type": "Directory"},
                # Bound to this claim only: the PV controller completes the binding.
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "namespace": meta.namespace, "name": meta.name, "uid": meta.uid},
            },
        }  # fmt: skip
        try:
            self.core.create_persistent_volume(volume)
        except ApiException as error:
            if error.status != 409:
                raise
        log.info("node volumes: %s/%s bound to %s", meta.namespace, meta.name, directory)

    def _reap(self, volume: Any) -> None:
        name = volume.metadata.name
        try:
            self.core.delete_persistent_volume(name)
        except ApiException as error:
            if error.status != 404:
                raise
        shutil.rmtree(self._directory(name), ignore_errors=True)
        log.info("node volumes: %s deleted with its directory (its claim is gone)", name)
