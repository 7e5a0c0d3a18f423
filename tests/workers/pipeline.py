"""Helpers shared by the pipeline tests: the environment of a run, starting its roles,
and reading what the storage writer stored."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from qarun_core.kafka_topics import ensure_topics
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis
from qarun_workers.settings import RetrySettings, Settings

from .conftest import Roles

QUESTIONS = 2000


@dataclass
class Infra:
    kafka: KafkaBroker
    postgres: Postgres
    redis: Redis


def pipeline_env(run: str, infra: Infra, base_url: str) -> dict[str, str]:
    kafka, postgres, redis = infra.kafka, infra.postgres, infra.redis
    return {
        "QARUN_RUN": run,
        "QARUN_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
        "QARUN_KAFKA__PARTITIONS": "3",
        "QARUN_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "QARUN_LLM__BASE_URL": base_url,
        "QARUN_LLM__MAX_CONCURRENCY": "128",
        "QARUN_LLM__TIMEOUT_SECONDS": "5",
        "QARUN_RETRY__MAX_ATTEMPTS": "14",
        "QARUN_RETRY__OVERLOAD__BASE_DELAY_SECONDS": "1",  # the shortest tier's delay
        "QARUN_RETRY__OVERLOAD__MAX_DELAY_SECONDS": "1",
        "QARUN_RETRY__TIERS": "1s,5s",
        "QARUN_STORAGE__POSTGRES_DSN": postgres.dsn,
        "QARUN_STORAGE__REDIS_URL": redis.url,
        "QARUN_TRAFFIC__TOTAL": str(QUESTIONS),
        "QARUN_TRAFFIC__RATE_PER_SECOND": "1000",
        "QARUN_TRAFFIC__DISTRIBUTION": "constant",
        "QARUN_METRICS__PORT": "0",  # no endpoint; a test that scrapes one sets its own port
        "QARUN_LLM__API_KEY": "sk-test-pipeline-secret-0001",
    }


def stored(dsn: str, run: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT question_id),"
                " count(*) FILTER (WHERE status = 'failed') FROM results WHERE run = %s",
                (run,),
            ).fetchone()
            retries = conn.execute(
                "SELECT coalesce(sum(retries), 0), count(*) FROM attempts WHERE run = %s", (run,)
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return {"rows": 0, "distinct": 0, "failed": 0, "retries": 0, "attempts": 0}
    assert row is not None
    assert retries is not None
    return {
        "rows": row[0],
        "distinct": row[1],
        "failed": row[2],
        "retries": retries[0],
        "attempts": retries[1],
    }


def start_pipeline(
    roles: Roles, run: str, kafka: KafkaBroker, generator: bool = True, storage: bool = True
) -> None:
    settings = Settings(run=run, retry=RetrySettings(tiers="1s,5s"))  # topic names only
    ensure_topics(kafka.bootstrap, dict.fromkeys(settings.topics.all(), 3))
    if storage:
        roles.start("storage_writer", name="storage")
    roles.start("retry")
    roles.start("llm_worker", name="worker")
    if generator:
        roles.start("generator")


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every message of a topic from its start to its end as of now, headers included."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        ends: dict[int, int] = {}
        for partition in consumer.list_topics(topic, timeout=15).topics[topic].partitions:
            low, high = watermarks(consumer, TopicPartition(topic, partition))
            if high > low:
                ends[partition] = high
                consumer.incremental_assign([TopicPartition(topic, partition, low)])
        found: list[Message] = []
        deadline = time.monotonic() + 120
        while ends:
            assert time.monotonic() < deadline, f"{topic} was not read to its end"
            for msg in consumer.consume(500, timeout=1):
                if msg.error() is None:
                    found.append(msg)
                    if (msg.offset() or 0) + 1 >= ends.get(msg.partition() or 0, 0):
                        ends.pop(msg.partition() or 0, None)
        return found
    finally:
        consumer.close()


def watermarks(consumer: Consumer, partition: TopicPartition) -> tuple[int, int]:
    """A partition created a moment ago may have no leader yet: ask again for a while."""
    for _ in range(60):
        try:
            low, high = consumer.get_watermark_offsets(partition, 15)
            return low, high
        except KafkaException:
            time.sleep(0.5)
    low, high = consumer.get_watermark_offsets(partition, 15)
    return low, high
