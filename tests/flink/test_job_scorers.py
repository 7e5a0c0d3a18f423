"""The embedding and judge scorers inside the running job (the judge through async I/O)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from harness import JobProcess, JudgeEndpoint, ScriptedWorker, TopicReader, create_topics, wait_for

from qarun_devstack.kafka import KafkaBroker

REFERENCE = "Photosynthesis lets green plants turn sunlight water and carbon dioxide into sugar"
SCRIPT = {
    "good-1": [REFERENCE],
    "good-2": ["Green plants use sunlight, water and carbon dioxide to make sugar."],
    "off-1": ["The match was played in a football stadium last night."],
    "off-2": ["My car needs new tyres before the winter."],
}


@pytest.mark.parametrize("scorer", ["embedding", "judge"])
def test_scorer_in_the_job_validates_good_answers_only(
    scorer: str,
    kafka: KafkaBroker,
    start_job: Callable[..., JobProcess],
    judge_endpoint: JudgeEndpoint,
) -> None:
    topics = create_topics(kafka, f"t-{scorer}")
    worker = ScriptedWorker(kafka, topics, SCRIPT, REFERENCE)
    judge = ["--scoring.judge.base-url", judge_endpoint.url, "--scoring.judge.model", "judge"]
    job = start_job(
        *(
            "--run",
            topics.run,
            "--kafka.bootstrap-servers",
            kafka.bootstrap,
            "--scoring.method",
            scorer,
        ),
        *("--scoring.threshold", "0.5", "--scoring.max-regenerations", "0"),
        *(judge if scorer == "judge" else []),
        env={"QARUN_SCORING__JUDGE__API_KEY": "test-key"},
    )
    worker.first_attempts()
    results = TopicReader(kafka, topics.results)
    try:
        wait_for(lambda: len(results.poll()) >= len(SCRIPT), 180, "a result per answer", job)
        outcome = {r["question_id"]: r["exhausted"] for r in results.values()}
    finally:
        results.close()
    assert outcome == {"good-1": False, "good-2": False, "off-1": True, "off-2": True}


def test_exactly_once_delivery_commits_results_on_checkpoints(
    kafka: KafkaBroker, start_job: Callable[..., JobProcess]
) -> None:
    topics = create_topics(kafka, "t-exactly-once")
    worker = ScriptedWorker(kafka, topics, {"good-1": SCRIPT["good-1"]}, REFERENCE)
    job = start_job(
        *(
            "--run",
            topics.run,
            "--kafka.bootstrap-servers",
            kafka.bootstrap,
            "--flink.delivery",
            "exactly-once",
        ),
        *("--flink.checkpoint-interval-seconds", "1"),
    )
    worker.first_attempts()
    results = TopicReader(kafka, topics.results, committed_only=True)
    try:
        wait_for(lambda: len(results.poll()) >= 1, 180, "a committed result", job)
        [result] = results.values()
    finally:
        results.close()
    assert (result["question_id"], result["exhausted"]) == ("good-1", False)
