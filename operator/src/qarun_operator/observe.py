"""Children + the run's summary -> the QARun status. Pure: tested as plain data.

Phase rules, in order:
- a terminal phase (Succeeded, Failed) stays: the run has ended;
- the generator Job failed -> Failed;
- the generator is done and every question it took has a final result (validated,
  exhausted or failed; qarun_core.summary.all_results_in) -> Succeeded;
- a desired child is missing, or a workload is not ready yet -> Provisioning (Pending
  before anything was applied);
- otherwise Running.
Degraded is True when the scoring job failed, a Deployment lacks available replicas
after its rollout, or the summary cannot be read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from qarun_core import plan as p
from qarun_core.spec import (
    TERMINAL_PHASES,
    Condition,
    ConditionType,
    FlinkMode,
    KafkaProvider,
    Phase,
    Progress,
    QARunSpec,
    QARunStatus,
)
from qarun_core.summary import RunSummary, all_results_in
from qarun_operator.objects import JSON


@dataclass
class Children:
    """What exists of a run's children, by name, as read from the API server."""

    topics: dict[str, JSON] = field(default_factory=dict)
    deployments: dict[str, JSON] = field(default_factory=dict)
    jobs: dict[str, JSON] = field(default_factory=dict)
    flink_sessions: dict[str, JSON] = field(default_factory=dict)
    flink_jobs: dict[str, JSON] = field(default_factory=dict)


@dataclass
class Observation:
    status: QARunStatus
    waiting_for: list[str]  # children not ready, for messages
    problems: list[str]  # reasons for Degraded


def _ready_condition(obj: JSON, condition: str = "Ready") -> bool:
    return any(
        c.get("type") == condition and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions", [])
    )


def deployment_ready(obj: JSON) -> bool:
    want = obj.get("spec", {}).get("replicas", 1)
    status = obj.get("status", {})
    return bool(
        status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) >= want
        and status.get("availableReplicas", 0) >= want
    )


def job_finished(obj: JSON) -> str | None:
    """'Complete', 'Failed' or None for a Job still running."""
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def _flink_session_ready(obj: JSON) -> bool:
    return bool(obj.get("status", {}).get("jobManagerDeploymentStatus") == "READY")


def _flink_job_state(obj: JSON) -> str:
    return str(obj.get("status", {}).get("jobStatus", {}).get("state", ""))


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Replace one condition, keeping lastTransitionTime when the status is unchanged."""
    value = "True" if status else "False"
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old and old.status == value else now
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [*(c for c in conditions if c.type != type_), new]


def _waiting_for(run: p.RunPlan, children: Children) -> tuple[list[str], list[str]]:  # noqa: PLR0912 - one check per child kind
    """What is not ready yet, and what has failed."""
    waiting: list[str] = []
    problems: list[str] = []
    standalone = run.flink.mode is FlinkMode.STANDALONE
    topic = "KafkaTopics" if run.kafka_provider is KafkaProvider.STRIMZI else "topics"
    session_kind = "JobManager" if standalone else "FlinkDeployment"
    job_kind = "scoring job" if standalone else "FlinkSessionJob"
    missing = [t.name for t in run.topics if t.name not in children.topics]
    unready = [
        t.name
        for t in run.topics
        if t.name in children.topics and not _ready_condition(children.topics[t.name])
    ]
    if missing:
        waiting.append(f"{topic} missing: {', '.join(missing)}")
    if unready:
        waiting.append(f"{len(unready)}/{len(run.topics)} {topic} not Ready")
    for c in run.components:
        if c.kind is p.WorkloadKind.SERVICE:
            d = children.deployments.get(c.name)
            if d is None:
                waiting.append(f"Deployment {c.name} missing")
            elif not deployment_ready(d):
                waiting.append(f"Deployment {c.name} not available")
        elif c.name not in children.jobs:
            waiting.append(f"Job {c.name} missing")
    if run.flink.managed:
        session = children.flink_sessions.get(run.flink.session)
        if session is None:
            waiting.append(f"{session_kind} {run.flink.session} missing")
        elif not _flink_session_ready(session):
            waiting.append(f"{session_kind} {run.flink.session} not READY")
    scoring = children.flink_jobs.get(run.flink.job)
    if scoring is None:
        waiting.append(f"{job_kind} {run.flink.job} missing")
    else:
        state = _flink_job_state(scoring)
        if state == "FAILED":
            problems.append(f"{job_kind} {run.flink.job} FAILED")
        elif state not in ("RUNNING", "FINISHED"):
            waiting.append(f"{job_kind} {run.flink.job} {state or 'not submitted'}")
    return waiting, problems


def _phase(
    status: QARunStatus,
    *,
    previous: Phase,
    generator_state: str | None,
    summary: RunSummary | None,
    waiting: list[str],
) -> tuple[Phase, str, tuple[bool, str] | None]:
    """The new phase, its message and the Succeeded condition it implies (if any)."""
    progress = status.progress
    if previous in TERMINAL_PHASES:
        return previous, status.message, None
    if generator_state == "Failed":
        return Phase.FAILED, "the generator Job failed", (False, "GeneratorFailed")
    if summary is not None and all_results_in(summary):
        message = (
            f"{progress.validated} validated, {progress.exhausted} exhausted, "
            f"{progress.failed} failed of {summary.progress.total}"
        )
        return Phase.SUCCEEDED, message, (True, "AllAnswered")
    if waiting:
        return Phase.PROVISIONING, "waiting for: " + "; ".join(waiting), None
    return Phase.RUNNING, f"{progress.answered} answered, {progress.validated} validated", None


def observe(
    run: p.RunPlan,
    spec: QARunSpec,
    *,
    generation: int,
    children: Children,
    summary: RunSummary | None,
    summary_error: str | None,
    previous: QARunStatus,
    now: datetime,
) -> Observation:
    status = previous.model_copy(deep=True)
    status.observed_generation = generation
    status.selector = run.selector
    worker = children.deployments.get(run.component(p.LLM_WORKER).name, {})
    status.replicas = int(worker.get("status", {}).get("replicas", 0))
    status.started_at = status.started_at or now
    if summary is not None:
        status.progress = summary.progress.model_copy()
        status.score = summary.score.model_copy()
        status.attempts = dict(summary.attempts)
        status.usage = summary.usage.model_copy()
    status.progress.total = _total(spec, status.progress)

    waiting, problems = _waiting_for(run, children)
    if summary_error:
        problems.append(f"summary unavailable: {summary_error}")
    generator = children.jobs.get(run.component(p.GENERATOR).name)
    generator_state = job_finished(generator) if generator else None
    phase, message, succeeded = _phase(
        status,
        previous=previous.phase,
        generator_state=generator_state,
        summary=summary,
        waiting=waiting,
    )
    if phase in TERMINAL_PHASES and previous.phase not in TERMINAL_PHASES:
        status.finished_at = now
    status.phase, status.message = phase, message

    g = generation
    conds = status.conditions
    if succeeded is not None:
        conds = set_condition(
            conds, ConditionType.SUCCEEDED, *succeeded, message, generation=g, now=now
        )
    elif not any(c.type == ConditionType.SUCCEEDED for c in conds):
        conds = set_condition(
            conds, ConditionType.SUCCEEDED, False, "RunInProgress", "", generation=g, now=now
        )
    terminal = phase in TERMINAL_PHASES
    ready = not waiting and not terminal
    ready_reason = "AllChildrenReady" if ready else "RunEnded" if terminal else "ChildrenNotReady"
    conds = set_condition(
        conds,
        ConditionType.READY,
        ready,
        ready_reason,
        "; ".join(waiting) if not ready and not terminal else "",
        generation=g,
        now=now,
    )
    progressing = not terminal
    progress_reason = "RunEnded" if terminal else "RollingOut" if waiting else "Answering"
    conds = set_condition(
        conds,
        ConditionType.PROGRESSING,
        progressing,
        progress_reason,
        message,
        generation=g,
        now=now,
    )
    degraded = bool(problems) and not terminal
    degraded_reason = (
        "AsExpected"
        if not problems
        else "SummaryUnavailable"
        if summary_error and len(problems) == 1
        else "ChildFailed"
    )
    conds = set_condition(
        conds,
        ConditionType.DEGRADED,
        degraded,
        degraded_reason,
        "; ".join(problems),
        generation=g,
        now=now,
    )
    order = list(ConditionType)
    status.conditions = sorted(conds, key=lambda c: order.index(c.type))
    return Observation(status=status, waiting_for=waiting, problems=problems)


def _total(spec: QARunSpec, progress: Progress) -> int:
    if spec.traffic.total:
        return spec.traffic.total
    if spec.dataset.limit:
        return spec.dataset.limit
    return progress.total


def autoscale(spec: QARunSpec, summary: RunSummary | None) -> int | None:
    """The worker count the lag asks for, or None when autoscaling is off or blind."""
    auto = spec.workers.autoscale
    if not auto.enabled or summary is None or summary.lag is None:
        return None
    wanted = math.ceil(summary.lag / auto.lag_per_replica)
    return max(auto.min_replicas, min(auto.max_replicas, wanted))
