"""Status aggregation: phases and conditions from children and the run summary.

The summaries are the read model's (qarun_core.summary) of a state each test writes into
the real PostgreSQL and Redis (stored_runs), never written by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from stored_runs import StoredRun

from qarun_core import plan as p
from qarun_core.spec import Phase, QARunSpec, QARunStatus
from qarun_core.summary import RunSummary
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis
from qarun_operator.observe import Children, autoscale, observe

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = QARunSpec.model_validate({"llm": {"model": "m"}, "traffic": {"total": 10}})
RUN = p.plan("demo", "ns", SPEC)
RUN_NAMES = (f"observe-{n}" for n in itertools.count())


@pytest.fixture
def stored(postgres: Postgres, redis: Redis) -> StoredRun:
    return StoredRun(postgres.dsn, redis.url, next(RUN_NAMES))


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
            c.name: deployment(c.replicas)
            for c in RUN.components
            if c.kind is p.WorkloadKind.SERVICE
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


def test_all_ready_is_running_with_counters(stored: StoredRun) -> None:
    stored.generator(5, done=False)
    stored.add("validated", 3, score=0.8)
    stored.add("exhausted", 1, score=0.4, attempts=2)
    status = run_observe(ready_children(), stored.summary())
    assert status.phase is Phase.RUNNING
    assert conditions(status)["Ready"] == ("True", "AllChildrenReady")
    assert conditions(status)["Degraded"] == ("False", "AsExpected")
    assert status.progress.validated == 3
    assert status.progress.answered == 5 == stored.counts()["answered"]
    assert status.progress.sent == 5
    assert status.score.mean == pytest.approx((3 * 0.8 + 0.4) / 4)
    assert status.attempts == {"1": 3, "2": 1}
    assert status.replicas == 2
    assert status.selector == RUN.selector


def test_results_missing_or_generator_busy_is_not_succeeded(stored: StoredRun) -> None:
    stored.generator(10, done=True)
    stored.add("validated", 9)
    assert run_observe(ready_children(), stored.summary()).phase is Phase.RUNNING
    stored.add("failed", 1)
    stored.generator(10, done=False)  # all in, but the generator may send more
    assert run_observe(ready_children(), stored.summary()).phase is Phase.RUNNING


def test_everything_answered_is_succeeded_and_stays_so(stored: StoredRun) -> None:
    stored.generator(10, done=True)
    stored.add("validated", 8)
    stored.add("exhausted", 1, score=0.5, attempts=3)
    stored.add("failed", 1)
    status = run_observe(ready_children(), stored.summary())
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


def test_autoscale_follows_lag_within_bounds(stored: StoredRun) -> None:
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
    # The lag is Kafka's (test_operator measures it on a real topic); here it is set on
    # the summary of a stored run, which the CLI reads without a lag.
    summary = stored.summary()
    assert summary.lag is None
    assert autoscale(spec, summary) is None  # blind: the replicas stay as they are

    def lagging(lag: int) -> RunSummary:
        return summary.model_copy(update={"lag": lag})

    assert autoscale(spec, lagging(0)) == 1
    assert autoscale(spec, lagging(250)) == 3
    assert autoscale(spec, lagging(10_000)) == 4
    assert autoscale(spec, None) is None
    assert autoscale(SPEC, lagging(10_000)) is None
