"""The scoring job on a real PyFlink MiniCluster against the real Kafka broker.

One job run serves the routing tests (module fixture); the restart test runs its own.
A scripted worker stands in for the LLM worker: it answers every regeneration the job
asks for from a fixed script, so each question's path through the job is known.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from harness import JobProcess, ScriptedWorker, TopicReader, create_topics, job_starter, wait_for

from qarun_core.messages import Answer, Question
from qarun_devstack.flink import FlinkSetup
from qarun_devstack.kafka import KafkaBroker

REFERENCE = "Photosynthesis lets green plants turn sunlight water and carbon dioxide into sugar"
GOOD = REFERENCE  # scores 1.0 with the lexical scorer
HALF = "green plants turn sunlight into food"  # about 0.5
WEAK = "plants need sunlight"  # about 0.25
OFF = "the match was played in a stadium"  # 0.0
SCRIPT = {
    "valid": [GOOD],
    "regen": [OFF, GOOD],
    "exhausted": [HALF, OFF, WEAK],
}


@dataclass
class RoutingRun:
    results: list[dict[str, object]]
    questions: list[Question]
    dead: list[dict[str, object]]
    metrics: list[dict[str, object]]
    ready: str  # what the job wrote to its --ready-file


@pytest.fixture(scope="module")
def routing_run(
    kafka: KafkaBroker,
    start_job_module: Callable[..., JobProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RoutingRun]:
    topics = create_topics(kafka, "t-routing")
    worker = ScriptedWorker(kafka, topics, SCRIPT, REFERENCE).start()
    ready_file = tmp_path_factory.mktemp("ready") / "scoring.ready"
    job = start_job_module(
        *(
            "--run",
            topics.run,
            "--kafka.bootstrap-servers",
            kafka.bootstrap,
            "--flink.ready-file",
            str(ready_file),
        ),
        *(
            "--scoring.threshold",
            "0.75",
            "--scoring.max-regenerations",
            "2",
            "--flink.parallelism",
            "2",
        ),
        *("--flink.checkpoint-interval-seconds", "2", "--flink.metrics-window-seconds", "1"),
    )
    worker.first_attempts()
    poison = Producer({"bootstrap.servers": kafka.bootstrap})
    poison.produce(topics.answers, key=b"broken", value=b"{not json")
    newer = Answer.for_question(
        Question(run=topics.run, question_id="future", title="t"),
        answer="a",
        model="m",
        latency_ms=0,
    ).model_dump(mode="json") | {"schema_version": 2}
    poison.produce(topics.answers, key=b"future", value=json.dumps(newer).encode())
    # A duplicate of an answer that asked for a regeneration: keyed state drops it, so
    # there is no second regeneration and no second result.
    worker.first_attempts(["regen"])
    assert poison.flush(30) == 0

    readers = {t: TopicReader(kafka, t) for t in (topics.results, topics.dlq, topics.metrics)}

    def finals() -> int:
        return sum(m["count"] - m["outcomes"].get("regenerated", 0) for m in metrics())

    def metrics() -> list[dict[str, object]]:
        return readers[topics.metrics].values()  # type: ignore[return-value]

    try:
        wait_for(
            lambda: (
                len(readers[topics.results].values()) >= 3
                and len(readers[topics.dlq].values()) >= 2
                and finals() >= 3
            ),
            180,
            "3 results, 2 dead letters and their metrics",
            job,
        )
        yield RoutingRun(
            results=readers[topics.results].values(),
            questions=list(worker.questions_seen),
            dead=readers[topics.dlq].values(),
            metrics=metrics(),
            ready=ready_file.read_text(),
        )
    finally:
        worker.stop()
        for reader in readers.values():
            reader.close()


@pytest.fixture(scope="module")
def start_job_module(
    flink: FlinkSetup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., JobProcess]]:
    with job_starter(flink, tmp_path_factory.mktemp("routing")) as start:
        yield start


def by_question(results: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    grouped: dict[str, list[dict[str, object]]] = defaultdict(list)
    for result in results:
        grouped[str(result["question_id"])].append(result)
    return grouped


def test_the_job_writes_its_ready_file_once_every_task_runs(routing_run: RoutingRun) -> None:
    # The local runner starts the generator only once this file exists: when every task,
    # and so every Python worker, runs (the job alone reports RUNNING earlier).
    ready = re.fullmatch(r"[0-9a-f]{32}\n(\d+) tasks running\n", routing_run.ready)
    assert ready is not None, routing_run.ready
    assert int(ready[1]) >= 2 * 3  # parallelism 2; read and score, route, metrics window


def test_answer_at_threshold_is_validated_on_first_attempt(routing_run: RoutingRun) -> None:
    [result] = by_question(routing_run.results)["valid"]
    assert result["exhausted"] is False
    assert result["best_attempt"] == 1
    assert result["score"] == 1.0
    assert result["scorer"] == "lexical"


def test_low_score_is_regenerated_then_validated(routing_run: RoutingRun) -> None:
    [question] = [q for q in routing_run.questions if q.question_id == "regen"]  # dup dropped
    assert question.attempt == 2
    assert question.best is not None
    assert question.best.score == 0.0  # the previous best score travels with it
    assert question.feedback and "0.00" in question.feedback
    [result] = by_question(routing_run.results)["regen"]
    assert (result["best_attempt"], result["exhausted"], result["score"]) == (2, False, 1.0)
    assert [a["attempt"] for a in result["attempts"]] == [1, 2]  # type: ignore[union-attr]


def test_exhausted_question_keeps_its_best_answer(routing_run: RoutingRun) -> None:
    attempts = [q.attempt for q in routing_run.questions if q.question_id == "exhausted"]
    assert sorted(attempts) == [2, 3]  # max-regenerations 2: no fourth attempt
    [result] = by_question(routing_run.results)["exhausted"]
    assert result["exhausted"] is True
    assert result["best_attempt"] == 1
    assert result["answer"] == HALF
    assert 0.3 < float(result["score"]) < 0.75  # type: ignore[arg-type]
    assert len(result["attempts"]) == 3  # type: ignore[arg-type]


def test_unparseable_answers_go_to_the_dead_letter_topic(routing_run: RoutingRun) -> None:
    reasons = {d["question_id"]: d["reason"] for d in routing_run.dead}
    assert reasons == {"broken": "bad_json", "future": "bad_schema_version"}
    broken = next(d for d in routing_run.dead if d["question_id"] == "broken")
    assert broken["original"] == "{not json"
    assert broken["source_topic"] == "qarun.t-routing.answers"
    assert int(broken["source_offset"]) >= 0  # type: ignore[arg-type]


def test_metrics_windows_count_attempts_and_outcomes(routing_run: RoutingRun) -> None:
    totals: dict[str, int] = defaultdict(int)
    finals: dict[str, int] = defaultdict(int)
    for window in routing_run.metrics:
        assert window["run"] == "t-routing"
        for outcome, n in window["outcomes"].items():  # type: ignore[attr-defined]
            totals[outcome] += n
        for attempt, n in window["final_by_attempt"].items():  # type: ignore[attr-defined]
            finals[attempt] += n
    assert totals == {"validated": 2, "regenerated": 3, "exhausted": 1}
    assert finals == {"1": 1, "2": 1, "3": 1}
    improvements = [w["improvement_mean_by_attempt"] for w in routing_run.metrics]
    assert any("2" in i for i in improvements)  # type: ignore[operator]
