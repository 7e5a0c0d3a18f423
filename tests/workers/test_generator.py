"""The generator on real Kafka and Redis: deterministic ids, resume, skip answered."""

from __future__ import annotations

from confluent_kafka import Consumer
from redis import Redis as RedisClient

from qarun_core.messages import Question
from qarun_workers.generator import Generator, question_id
from qarun_workers.kafka_io import Shutdown, ensure_run_topics
from qarun_workers.settings import KafkaSettings, Settings, TrafficSettings

from .conftest import unique_run
from .pipeline import Infra


def read_questions(bootstrap: str, topic: str, expected: int) -> list[Question]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[Question] = []
    try:
        for _ in range(60):  # bounded: 60 polls of 0.5 s
            found += [
                Question.from_bytes(m.value())
                for m in consumer.consume(1000, timeout=0.5)
                if m.error() is None
            ]
            if len(found) >= expected:
                break
    finally:
        consumer.close()
    return found


def test_generator_resumes_and_skips_answered(infra: Infra) -> None:
    run = unique_run()
    traffic = TrafficSettings(total=30, rate_per_second=2000, distribution="constant")
    settings = Settings(
        run=run, traffic=traffic, kafka=KafkaSettings(bootstrap=infra.kafka.bootstrap, partitions=2)
    )
    ensure_run_topics(settings)
    redis = RedisClient.from_url(infra.redis.url)

    first = Generator(settings, Shutdown(), redis, answered=set()).run()
    again = Generator(settings, Shutdown(), redis, answered=set()).run()
    assert (first.sent, again.sent) == (30, 0)  # the second run resumes after the first

    redis.delete(f"qarun:{run}:generator")
    answered = {question_id(run, n) for n in range(10)}
    fresh = Generator(settings, Shutdown(), redis, answered=answered).run()
    assert (fresh.sent, fresh.skipped) == (20, 10)

    sent = read_questions(infra.kafka.bootstrap, settings.topics.questions, 50)
    assert len(sent) == 50
    assert {q.question_id for q in sent} == {question_id(run, n) for n in range(30)}
    assert sorted({q.row for q in sent if q.row is not None}) == list(range(30))
