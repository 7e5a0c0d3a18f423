"""Status aggregation: phases and conditions from children and the run summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from qarun_core import plan as p
from qarun_core.spec import Phase, QARunSpec, QARunStatus, RunSummary
from qarun_operator.observe import Children, autoscale, observe

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = QARunSpec.model_validate({"llm": {"model": "m"}, "traffic": {"total": 10}})
RUN = p.plan("demo", "ns", SPEC)


def ready_children() -> Children:
    def deployment(replicas: int) -> dict[str, Any]:
        return {
            "metadata": {"generation": 1},
            "spec": {"replicas": replicas},
            "status": {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
            },
        }

    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    return Children(
        topics={t.name: ready for t in RUN.topics},
        deployments={
            c.name: deployment(c.replicas) for c in RUN.components if c.kind is p.Kind.SERVICE
        },
        jobs={RUN.component(p.GENERATOR).name: {"status": {"active": 1}}},
        flink_sessions={RUN.flink.session: {"status": {"jobManagerDeploymentStatus": "READY"}}},
        flink_jobs={RUN.flink.job: {"status": {"jobStatus": {"state": "RUNNING"}}}},
    )


def run_observe(
    children: Children,
    summary: RunSummary | None = None,
    previous: QARunStatus | None = None,
    error: str | None = None,
) -> QARunStatus:
    seen = observe(
        RUN, SPEC, generation=3, children=children, summary=summary, summary_error=error,
        previous=previous or QARunStatus(), now=NOW,
    )  # fmt: skip
    return seen.status


def conditions(status: QARunStatus) -> dict[str, tuple[str, str]]:
    return {str(c.type): (c.status, c.reason) for c in status.conditions}


def test_nothing_applied_yet_is_provisioning() -> None:
    status = run_observe(Children())
    assert status.phase is Phase.PROVISIONING
    assert conditions(status)["Ready"] == ("False", "ChildrenNotReady")
    assert "KafkaTopics missing" in status.message
    assert status.observed_generation == 3
    assert status.progress.total == 10


def test_all_ready_is_running_with_counters() -> None:
    summary = RunSummary.model_validate(
        {"progress": {"sent": 5, "answered": 4, "validated": 3}, "score": {"mean": 0.8}}
    )
    status = run_observe(ready_children(), summary)
    assert status.phase is Phase.RUNNING
    assert conditions(status)["Ready"] == ("True", "AllChildrenReady")
    assert conditions(status)["Degraded"] == ("False", "AsExpected")
    assert status.progress.validated == 3
    assert status.score.mean == 0.8
    assert status.replicas == 2
    assert status.selector == RUN.selector


def test_everything_answered_is_succeeded_and_stays_so() -> None:
    summary = RunSummary.model_validate(
        {
            "progress": {"sent": 10, "validated": 8, "exhausted": 1, "failed": 1},
            "generatorDone": True,
        }
    )
    status = run_observe(ready_children(), summary)
    assert status.phase is Phase.SUCCEEDED
    assert conditions(status)["Succeeded"] == ("True", "AllAnswered")
    assert conditions(status)["Ready"] == ("False", "RunEnded")
    assert status.finished_at == NOW
    later = run_observe(Children(), None, previous=status)  # children gone: still Succeeded
    assert later.phase is Phase.SUCCEEDED


def test_generator_failure_fails_the_run() -> None:
    children = ready_children()
    children.jobs[RUN.component(p.GENERATOR).name] = {
        "status": {"conditions": [{"type": "Failed", "status": "True"}]}
    }
    status = run_observe(children)
    assert status.phase is Phase.FAILED
    assert conditions(status)["Succeeded"] == ("False", "GeneratorFailed")


def test_failed_scoring_job_and_missing_summary_degrade() -> None:
    children = ready_children()
    children.flink_jobs[RUN.flink.job] = {"status": {"jobStatus": {"state": "FAILED"}}}
    assert conditions(run_observe(children))["Degraded"] == ("True", "ChildFailed")
    status = run_observe(ready_children(), error="connection refused")
    assert conditions(status)["Degraded"] == ("True", "SummaryUnavailable")


def test_transition_time_only_moves_on_a_change() -> None:
    first = run_observe(Children())
    again = run_observe(Children(), previous=first)
    ready = {c.type: c for c in again.conditions}["Ready"]
    assert ready.last_transition_time == NOW


def test_autoscale_follows_lag_within_bounds() -> None:
    spec = QARunSpec.model_validate(
        {
            "llm": {"model": "m"},
            "workers": {
                "autoscale": {
                    "enabled": True,
                    "minReplicas": 1,
                    "maxReplicas": 4,
                    "lagPerReplica": 100,
                }
            },
        }
    )  # fmt: skip
    assert autoscale(spec, RunSummary(lag=0)) == 1
    assert autoscale(spec, RunSummary(lag=250)) == 3
    assert autoscale(spec, RunSummary(lag=10_000)) == 4
    assert autoscale(spec, None) is None
    assert autoscale(SPEC, RunSummary(lag=10_000)) is None
