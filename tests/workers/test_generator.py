"""The generator on real Kafka and Redis: deterministic ids, resume, skip answered."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Consumer
from redis import Redis as RedisClient

from qarun_core.keys import GeneratorRecord, generator_key
from qarun_core.messages import Question
from qarun_core.spec import DatasetSpec
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
        run=run,
        traffic=traffic,
        kafka=KafkaSettings(bootstrap_servers=infra.kafka.bootstrap, partitions=2),
    )
    ensure_run_topics(settings)
    redis = RedisClient.from_url(infra.redis.url)

    first = Generator(settings, Shutdown(), redis, answered=set()).run()
    again = Generator(settings, Shutdown(), redis, answered=set()).run()
    # The second run resumes after the first: it sends nothing, and its record keeps the
    # counts of the first (they are the run's, not one process's).
    assert (first.sent, again.sent) == (30, 30)
    record = GeneratorRecord.from_redis(redis.hgetall(generator_key(run)))
    assert record == GeneratorRecord(next=30, sent=30, skipped=0, done=True)

    redis.delete(generator_key(run))
    answered = {question_id(run, n) for n in range(10)}
    fresh = Generator(settings, Shutdown(), redis, answered=answered).run()
    assert (fresh.sent, fresh.skipped) == (20, 10)

    sent = read_questions(infra.kafka.bootstrap, settings.topics.questions, 50)
    assert len(sent) == 50
    assert {q.question_id for q in sent} == {question_id(run, n) for n in range(30)}
    assert sorted({q.row for q in sent if q.row is not None}) == list(range(30))


def test_duration_run_repeats_the_data_set_with_new_ids(infra: Infra, tmp_path: Path) -> None:
    run = unique_run()
    data = tmp_path / "five.csv"
    data.write_text("title,content,best_answer\n" + "".join(f"q{n},c,a{n}\n" for n in range(5)))
    traffic = TrafficSettings(rate_per_second=40, duration_seconds=1, distribution="constant")
    settings = Settings(
        run=run,
        dataset=DatasetSpec(source=str(data), format="csv"),
        traffic=traffic,
        kafka=KafkaSettings(bootstrap_servers=infra.kafka.bootstrap, partitions=2),
    )
    ensure_run_topics(settings)

    progress = Generator(settings, Shutdown(), None, answered=set()).run()

    sent = read_questions(infra.kafka.bootstrap, settings.topics.questions, progress.sent)
    assert progress.sent > 5  # more than one pass over the five rows
    assert len({q.question_id for q in sent}) == len(sent) == progress.sent
    assert {q.title for q in sent} == {f"q{n}" for n in range(5)}
