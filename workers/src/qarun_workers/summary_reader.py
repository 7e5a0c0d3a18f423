"""Reads a run's summary for the API: qarun_core.summary's query on PostgreSQL, the
generator's record and the budget from Redis, and the questions topic's lag from Kafka.

What the figures mean is decided in qarun_core.summary; this module only fetches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from qarun_core.keys import GeneratorRecord, Role, budget_key, consumer_group, generator_key
from qarun_core.summary import SUMMARY_SQL, PartitionOffsets, RunSummary, consumer_lag, summary_of
from qarun_core.topics import RunTopics
from qarun_workers.settings import KafkaSettings

log = logging.getLogger(__name__)

KAFKA_TIMEOUT = 5.0  # seconds; a slower broker makes the lag unknown, not the summary late


async def read_summary(
    pool: AsyncConnectionPool, redis: Redis, kafka: KafkaSettings, run: str
) -> RunSummary:
    row = None
    # No tables yet: the storage writer has not created them, nothing is stored.
    async with pool.connection() as conn:
        with contextlib.suppress(psycopg.errors.UndefinedTable):
            row = await (await conn.execute(SUMMARY_SQL.encode(), {"run": run})).fetchone()
    generator = GeneratorRecord.from_redis(await redis.hgetall(generator_key(run)))
    exhausted = await redis.hget(budget_key(run), "exhausted")
    group = consumer_group(run, Role.LLM_WORKER, kafka.group_prefix)
    lag = await asyncio.to_thread(questions_lag, kafka.bootstrap, RunTopics(run).questions, group)
    return summary_of(
        run,
        row,
        generator=generator,
        budget_exhausted=exhausted.decode() if isinstance(exhausted, bytes) else exhausted,
        lag=lag,
    )


def questions_lag(bootstrap: str, topic: str, group: str) -> int | None:
    """The group's lag on the topic; None when Kafka cannot tell (a topic not created yet
    reads as no lag: nothing was sent). The consumer only reads the group's committed
    offsets: it never subscribes, so it never joins the group or moves its partitions."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = consumer.committed(parts, timeout=KAFKA_TIMEOUT)
        offsets = []
        for tp in committed:
            earliest, latest = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=KAFKA_TIMEOUT
            )
            offsets.append(PartitionOffsets(earliest, latest, tp.offset))
    except KafkaException as error:
        log.warning("lag of %s unknown: %s", group, error)
        return None
    finally:
        consumer.close()
    return consumer_lag(offsets)
