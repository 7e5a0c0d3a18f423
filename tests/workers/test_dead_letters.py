"""1,000 poison messages go to the dead-letter topic with their reason; the pipeline
keeps answering the good questions around them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import psycopg
from confluent_kafka import Consumer, Producer

from qarun_core.messages import DeadLetter, Question
from qarun_devstack.kafka import KafkaBroker

from .conftest import Roles, SimFactory, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import Infra, pipeline_env, start_pipeline, stored

POISON = 1000
GOOD = 200


def poison(n: int, run: str) -> bytes:
    kind = n % 3
    if kind == 0:
        return b'{"run": "' + run.encode() + b'", "question_id": '  # cut off: not JSON
    if kind == 1:
        return json.dumps(
            {"schema_version": 99, "run": run, "question_id": f"p{n}", "title": "from the future"}
        ).encode()
    return json.dumps({"schema_version": 1, "run": run, "question_id": f"p{n}"}).encode()


def test_poison_messages_are_dead_lettered_with_reason(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator("--latency", "0.01")
    run = unique_run()
    kafka, postgres = infra.kafka, infra.postgres
    r = roles(pipeline_env(run, infra, sim.base_url))
    start_pipeline(r, run, kafka, generator=False)
    forwarder(run)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    bad = 0
    for n in range(POISON + GOOD):
        if n % 6 == 5 and n // 6 < GOOD:
            q = Question(run=run, question_id=f"good{n}", title="What is a cache?")
            producer.produce(f"qarun.{run}.questions", q.to_bytes(), q.key())
        else:
            producer.produce(f"qarun.{run}.questions", poison(bad, run), f"p{bad}".encode())
            bad += 1
    assert producer.flush(30) == 0

    reasons = read_dead_letters(kafka, run, POISON)
    assert reasons == {"bad_json": 334, "bad_schema_version": 333, "bad_schema": 333}
    wait_for(lambda: stored(postgres.dsn, run)["rows"] >= GOOD, 120, "the good questions")
    assert stored(postgres.dsn, run)["rows"] == GOOD
    wait_for(lambda: dead_rows(postgres.dsn, run) >= POISON, 60, "dead letters in PostgreSQL")


def read_dead_letters(kafka: KafkaBroker, run: str, expected: int) -> Counter[str]:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"dlq-check-{run}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([f"qarun.{run}.dlq"])
    reasons: Counter[str] = Counter()
    try:
        for _ in range(240):  # bounded: up to 240 polls of 0.5 s
            for msg in consumer.consume(1000, timeout=0.5):
                assert msg.error() is None
                letter = DeadLetter.from_bytes(msg.value())
                assert letter.source_topic == f"qarun.{run}.questions"
                assert letter.detail
                reasons[letter.reason.value] += 1
            if sum(reasons.values()) >= expected:
                break
    finally:
        consumer.close()
    return reasons


def dead_rows(dsn: str, run: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM dead_letters WHERE run = %s", (run,)).fetchone()
    assert row is not None
    return int(row[0])
