"""One reconciliation of one QARun: validate -> plan -> apply -> observe -> status.

Level-based and idempotent: the create/update handlers and the status timer all call
`reconcile`, which re-applies the whole plan (server-side apply makes an unchanged
child a no-op), prunes what is no longer planned and recomputes the status. Errors
never escape as crashes: they become a Degraded condition, an event and a retry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from qarun_core import plan as p
from qarun_core.spec import (
    TERMINAL_PHASES,
    ConditionType,
    QARunSpec,
    QARunStatus,
    validate_name,
)
from qarun_operator import apply, direct_children, render
from qarun_operator.config import OperatorConfig
from qarun_operator.kube import Kube, KubeError
from qarun_operator.objects import JSON
from qarun_operator.observe import Children, autoscale, observe, set_condition


@dataclass
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class ReconcileOutcome:
    status: JSON
    events: list[Event] = field(default_factory=list)
    retry: str | None = None  # a temporary problem: try again soon
    invalid: str | None = None  # the spec cannot be planned: fix the spec
    scale_to: int | None = None  # autoscaling wants this many workers


def _invalid(
    previous: QARunStatus, generation: int, message: str, now: datetime
) -> ReconcileOutcome:
    status = previous.model_copy(deep=True)
    status.conditions = set_condition(
        status.conditions, ConditionType.DEGRADED, True, "InvalidSpec", message,
        generation=generation, now=now,
    )  # fmt: skip
    status.message = message
    return ReconcileOutcome(
        status=_dump(status), events=[Event("Warning", "InvalidSpec", message)], invalid=message
    )


def _dump(status: QARunStatus) -> JSON:
    return status.model_dump(mode="json", by_alias=True)


def reconcile(
    kube: Kube, body: JSON, config: OperatorConfig, now: datetime | None = None
) -> ReconcileOutcome:
    now = now or datetime.now(UTC)
    meta = body["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    generation = int(meta.get("generation", 0))
    previous = QARunStatus.model_validate(body.get("status") or {})
    try:
        validate_name(name)
        spec = QARunSpec.model_validate(body.get("spec") or {})
    except (ValidationError, ValueError) as error:
        return _invalid(previous, generation, f"invalid spec: {error}", now)

    spec = p.with_installation_defaults(
        spec,
        flink_mode=config.flink_mode,
        kafka_provider=config.kafka_provider,
        kafka_bootstrap=config.kafka_bootstrap,
    )
    run = p.plan(name, namespace, spec)
    if previous.phase in TERMINAL_PHASES:  # the run ended: keep the results, free the pods
        run = dataclasses.replace(
            run, components=tuple(dataclasses.replace(c, replicas=0) for c in run.components)
        )
    events: list[Event] = []
    problem: str | None = None
    try:
        notes = apply.apply_all(kube, render.manifests(run, render.Owner(name, uid), config), uid)
        events += [Event("Normal", "Reconciled", note) for note in notes]
    except apply.Pending as pending:
        problem = str(pending)
    except KubeError as error:
        problem = f"applying the run's children failed: {error}"
        events.append(Event("Warning", "ApplyFailed", problem))

    try:
        children = apply.read_children(kube, run)
    except KubeError as error:
        problem = problem or f"reading the run's children failed: {error}"
        children = Children()
    topics = direct_children.topics(run, children)
    problem = problem or topics.problem
    job = direct_children.scoring_job(run, uid, children, previous, config)
    problem = problem or job.problem
    if job.note:
        events.append(Event("Normal", "JobSubmitted", job.note))
    summary, summary_error = apply.read_summary(
        config.summary_url.format(namespace=namespace, run=name), config.summary_timeout_seconds
    )
    seen = observe(
        run, spec, generation=generation, children=children, summary=summary,
        summary_error=summary_error, previous=previous, now=now,
    )  # fmt: skip
    status = seen.status
    status.flink = job.status
    status.conditions = set_condition(
        status.conditions, ConditionType.TOPICS, topics.ready, topics.reason, topics.message,
        generation=generation, now=now,
    )  # fmt: skip
    if problem:
        status.observed_generation = previous.observed_generation
        status.conditions = set_condition(
            status.conditions,
            ConditionType.DEGRADED,
            True,
            "ReconcileFailed",
            problem,
            generation=generation,
            now=now,
        )
    if status.phase != previous.phase:
        kind = "Warning" if status.phase == "Failed" else "Normal"
        events.append(Event(kind, str(status.phase), status.message or str(status.phase)))
    wanted = autoscale(spec, summary)
    return ReconcileOutcome(
        status=_dump(status),
        events=events,
        retry=problem,
        scale_to=wanted if wanted is not None and wanted != spec.workers.replicas else None,
    )


def release(body: JSON, config: OperatorConfig) -> list[str]:
    """Undo what the run did outside Kubernetes objects (see handlers.release); an error
    propagates, and kopf retries the deletion."""
    meta = body["metadata"]
    try:
        spec = QARunSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return []  # never planned, nothing created
    spec = p.with_installation_defaults(
        spec,
        flink_mode=config.flink_mode,
        kafka_provider=config.kafka_provider,
        kafka_bootstrap=config.kafka_bootstrap,
    )
    run = p.plan(meta["name"], meta["namespace"], spec)
    status = QARunStatus.model_validate(body.get("status") or {})
    return direct_children.release(run, status, config)
