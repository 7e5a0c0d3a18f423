"""The children the operator realizes itself instead of as Kubernetes objects: the run's
topics on a Kafka without Strimzi (Kafka Admin API) and the scoring job on a standalone
session cluster (Flink's REST API). Each is observed, then reconciled, then reported in
the same shapes as its Strimzi or Flink-operator counterpart, so the status aggregation
(observe.py) treats both ways alike."""

from __future__ import annotations

from dataclasses import dataclass

from qarun_core import plan as p
from qarun_core.spec import TERMINAL_PHASES, FlinkMode, FlinkStatus, KafkaProvider, QARunStatus
from qarun_operator import standalone
from qarun_operator.config import OperatorConfig
from qarun_operator.flink_rest import TERMINAL_STATES, FlinkRest
from qarun_operator.flink_submit import reconcile_job
from qarun_operator.observe import Children, deployment_ready
from qarun_operator.topic_admin import TopicAdminError, delete_topics, ensure_topics


@dataclass
class TopicsOutcome:
    ready: bool
    reason: str
    message: str
    problem: str | None = None


@dataclass
class JobOutcome:
    status: FlinkStatus
    problem: str | None = None
    note: str | None = None


def admin_bootstrap(run: p.RunPlan) -> str:
    """The run's bootstrap servers as the operator reaches them: the default Service name
    is relative to the run's namespace, and the operator may run in another."""
    if run.bootstrap == f"{run.kafka_cluster}-kafka-bootstrap:{p.KAFKA_PORT}":
        return f"{run.kafka_cluster}-kafka-bootstrap.{run.namespace}.svc:{p.KAFKA_PORT}"
    return run.bootstrap


def topics(run: p.RunPlan, children: Children) -> TopicsOutcome:
    """With Strimzi, report its KafkaTopics; without, create the topics and report them."""
    if run.kafka_provider is KafkaProvider.STRIMZI:
        ready = all(
            any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in children.topics.get(t.name, {}).get("status", {}).get("conditions", []))
            for t in run.topics
        )  # fmt: skip
        return TopicsOutcome(
            ready, "StrimziKafkaTopics",
            f"KafkaTopics of the Strimzi Kafka cluster {run.kafka_cluster}",
        )  # fmt: skip
    message = (
        f"{len(run.topics)} topics created by the QARun operator through the Kafka Admin "
        f"API at {run.bootstrap} (Kafka provider {run.kafka_provider}, no Strimzi)"
    )
    try:
        children.topics = ensure_topics(admin_bootstrap(run), run.topics)
    except TopicAdminError as error:
        return TopicsOutcome(False, "AdminAPIFailed", str(error), problem=str(error))
    return TopicsOutcome(True, "CreatedByOperator", message)


def scoring_job(
    run: p.RunPlan, uid: str, children: Children, previous: QARunStatus, config: OperatorConfig
) -> JobOutcome:
    """On a standalone session cluster: observe the JobManager, submit the job when it
    does not run it, and report both as a FlinkDeployment and a FlinkSessionJob would."""
    if run.flink.mode is not FlinkMode.STANDALONE:
        return JobOutcome(previous.flink)
    session = run.flink.session
    jobmanager = children.deployments.get(standalone.names(session)["jobmanager"])
    ready = not run.flink.managed or (jobmanager is not None and deployment_ready(jobmanager))
    children.flink_sessions[session] = {
        "status": {"jobManagerDeploymentStatus": "READY" if ready else "DEPLOYING"}
    }
    if not ready:
        return JobOutcome(previous.flink)
    rest = FlinkRest(config.flink_rest_url.format(session=session, namespace=run.namespace))
    seen = reconcile_job(
        rest, run, uid, previous.flink, submit=previous.phase not in TERMINAL_PHASES
    )
    children.flink_jobs[run.flink.job] = {"status": {"jobStatus": {"state": seen.state}}}
    return JobOutcome(seen.status, problem=seen.problem, note=seen.note)


def release(run: p.RunPlan, status: QARunStatus, config: OperatorConfig) -> list[str]:
    """Delete the topics the operator created; cancel the job on a session cluster the
    run does not own (an owned one goes with its Deployments)."""
    notes: list[str] = []
    if run.kafka_provider is not KafkaProvider.STRIMZI:
        deleted = delete_topics(admin_bootstrap(run), [t.name for t in run.topics])
        notes.append(f"deleted {len(deleted)} topics of run {run.run} at {run.bootstrap}")
    if run.flink.mode is FlinkMode.STANDALONE and not run.flink.managed and status.flink.job_id:
        rest = FlinkRest(
            config.flink_rest_url.format(session=run.flink.session, namespace=run.namespace)
        )
        if rest.job_states().get(status.flink.job_id) not in (None, *TERMINAL_STATES):
            rest.cancel(status.flink.job_id)
            notes.append(f"cancelled the scoring job {status.flink.job_id}")
    return notes
