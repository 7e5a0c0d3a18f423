"""The kopf handlers: thin adapters around controller.reconcile.

Run with `kopf run -m qarun_operator.handlers --standalone --all-namespaces` (the
chart's command) or in-process with kopf.testing.KopfRunner.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import kopf

from qarun_core.spec import GROUP, PLURAL, VERSION
from qarun_operator import controller
from qarun_operator.config import OperatorConfig
from qarun_operator.kube import Kube
from qarun_operator.objects import QARUN

RESOURCE = (GROUP, VERSION, PLURAL)


@cache
def _config() -> OperatorConfig:
    return OperatorConfig()


@cache
def _kube() -> Kube:
    return Kube()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the ServiceAccount; elsewhere: $KUBECONFIG, read now (not at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handler progress and the last handled spec go to qarun.io/ annotations; the status
    # is ours alone (the CRD's schema would prune kopf's own status fields anyway).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # kopf's timers need a finalizer (to stop them when a QARun is deleted); ours by name.
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.posting.level = logging.WARNING  # events: our own, plus handler failures
    settings.watching.server_timeout = 300
    settings.scanning.disabled = True  # no CRD/namespace scanning: no RBAC for it either
    settings.execution.max_workers = 8
    _register_refresh(_config().status_interval_seconds)


def _realize(outcome: controller.ReconcileOutcome, body: kopf.Body, patch: kopf.Patch) -> None:
    patch.status.update(outcome.status)
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if outcome.scale_to is not None:
        meta = body["metadata"]
        _kube().merge_patch(
            QARUN,
            meta["namespace"],
            meta["name"],
            {"spec": {"replicas": outcome.scale_to}},
            subresource="scale",
        )
    if outcome.invalid:
        raise kopf.PermanentError(outcome.invalid)
    if outcome.retry:
        raise kopf.TemporaryError(outcome.retry, delay=5)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _realize(controller.reconcile(_kube(), dict(body), _config()), body, patch)


def _register_refresh(interval: float) -> None:
    """The status timer, registered once the configuration is read (kopf starts watching
    only after the startup handlers), not when the module is imported."""
    if not _refresh_registered:
        kopf.timer(*RESOURCE, interval=interval, initial_delay=2.0, id="refresh")(refresh)
        _refresh_registered.append(interval)


_refresh_registered: list[float] = []


def refresh(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Aggregate the status and repair drift, on a timer."""
    outcome = controller.reconcile(_kube(), dict(body), _config())
    outcome.invalid = None  # already reported by the change handler
    _realize(outcome, body, patch)


@kopf.on.delete(*RESOURCE)
def release(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """What garbage collection cannot delete: topics the operator created through the
    Kafka Admin API, and the scoring job on a session cluster the run does not own.
    kopf keeps its finalizer on the QARun until this succeeds."""
    for note in controller.release(dict(body), _config()):
        logger.info(note)
