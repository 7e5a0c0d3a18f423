"""The API against an OpenAPI fuzzer (schemathesis): generated valid and invalid calls
to every endpoint of a real API on real Kafka, PostgreSQL and Redis, with a run that
has stored results. No answer may be a server error, have a status code or content
type the OpenAPI document does not declare, or a body outside its schema; invalid
input must be refused with a 4xx."""

from __future__ import annotations

import time
from collections.abc import Callable

import schemathesis
from confluent_kafka import Producer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from qarun_core.kafka_topics import ensure_topics
from qarun_core.messages import Answer, Question
from qarun_core.ports import free_port
from qarun_core.topics import RunTopics
from qarun_devstack.process import port_open
from qarun_workers.settings import Settings

from .conftest import Roles, unique_run, wait_for
from .pipeline import Infra, pipeline_env, stored

STORED = 30
EXAMPLES = 80  # per operation and mode: ~600 cases over the API's operations
MIN_CASES = 500
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def publish_results(bootstrap: str, run: str, n: int) -> None:
    """Final results as the scoring job publishes them, for the storage writer to store."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        question = Question(run=run, question_id=f"q{i:03d}", title=f"What is {i}?")
        answer = Answer.for_question(question, answer=f"{i} is a number", model="m", latency_ms=1)
        result = answer.result(answer.scored(0.5 + i / 100), exhausted=False, scorer="fuzz")
        producer.produce(RunTopics(run).results, result.to_bytes(), result.key())
    assert producer.flush(30) == 0


def fuzz(cases: SearchStrategy[schemathesis.Case]) -> int:
    """Call the operation with up to EXAMPLES generated cases; how many were sent."""
    sent = 0

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: a failure repeats
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(checks=CHECKS, timeout=15)

    call()
    return sent


def test_api_answers_generated_input_within_its_schema(
    infra: Infra, roles: Callable[[dict[str, str]], Roles]
) -> None:
    run = unique_run()
    port = free_port()
    env = pipeline_env(run, infra, "http://127.0.0.1:9/v1") | {"QARUN_API__PORT": str(port)}
    ensure_topics(infra.kafka.bootstrap, dict.fromkeys(Settings(run=run).topics.all(), 3))
    r = roles(env)
    r.start("storage_writer", name="storage")
    r.start("api")
    publish_results(infra.kafka.bootstrap, run, STORED)
    wait_for(lambda: stored(infra.postgres.dsn, run)["rows"] >= STORED, 120, "stored results")
    wait_for(lambda: port_open(port), 60, "the API")

    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    cases: dict[str, int] = {}
    started = time.monotonic()
    for found in schema.get_all_operations():
        operation = found.ok()
        modes = [GenerationMode.POSITIVE]
        if operation.path_parameters or operation.query or operation.body:
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            cases[f"{operation.label} {mode.value}"] = fuzz(operation.as_strategy(mode))
        # Random run names are nearly all unknown (404): the stored run is paged too.
        if any(p.name == "run" for p in operation.path_parameters):
            own = operation.as_strategy(path_parameters={"run": run})
            cases[f"{operation.label} of the stored run"] = fuzz(own)
    seconds = time.monotonic() - started
    total = sum(cases.values())
    print(f"{total} cases in {seconds:.0f} s: {cases}")
    assert total >= MIN_CASES, cases
    assert cases["POST /query negative"] > 0  # bodies the pipeline cannot take were sent
