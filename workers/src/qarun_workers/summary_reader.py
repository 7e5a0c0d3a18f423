"""Reads a run's summary for the API: qarun_core.summary's query on PostgreSQL, the
generator's record and the budget from Redis, and the questions topic's lag from Kafka.

What the figures mean is decided in qarun_core.summary; this module only fetches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from qarun_core.keys import GeneratorRecord, Role, budget_key, consumer_group, generator_key
from qarun_core.summary import SUMMARY_SQL, PartitionOffsets, RunSummary, consumer_lag, summary_of
from qarun_core.topics import RunTopics

log = logging.getLogger(__name__)

KAFKA_TIMEOUT = 5.0  # seconds; a slower broker makes the lag unknown, not the summary late


async def read_summary(
    pool: AsyncConnectionPool, redis: Redis, admin: AdminClient, group_prefix: str, run: str
) -> RunSummary:
    row = None
    # No tables yet: the storage writer has not created them, nothing is stored.
    async with pool.connection() as conn:
        with contextlib.suppress(psycopg.errors.UndefinedTable):
            row = await (await conn.execute(SUMMARY_SQL.encode(), {"run": run})).fetchone()
    generator = GeneratorRecord.from_redis(await redis.hgetall(generator_key(run)))
    exhausted = await redis.hget(budget_key(run), "exhausted")
    group = consumer_group(run, Role.LLM_WORKER, group_prefix)
    lag = await asyncio.to_thread(questions_lag, admin, RunTopics(run).questions, group)
    return summary_of(
        run,
        row,
        generator=generator,
        budget_exhausted=exhausted.decode() if isinstance(exhausted, bytes) else exhausted,
        lag=lag,
    )


def questions_lag(admin: AdminClient, topic: str, group: str) -> int | None:
    """The group's lag on the topic; None when Kafka cannot tell (the topic not created
    yet reads as no lag: nothing was sent)."""
    try:
        meta = admin.list_topics(topic, timeout=KAFKA_TIMEOUT).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed_future = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, parts)], request_timeout=KAFKA_TIMEOUT
        )[group]
        committed = {
            tp.partition: tp.offset
            for tp in committed_future.result(timeout=KAFKA_TIMEOUT).topic_partitions
        }
        ends = {}
        specs = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest()}  # type: ignore[no-untyped-call]
        for name, spec in specs.items():
            futures = admin.list_offsets({tp: spec for tp in parts}, request_timeout=KAFKA_TIMEOUT)
            ends[name] = {
                tp.partition: f.result(timeout=KAFKA_TIMEOUT).offset for tp, f in futures.items()
            }
    except (KafkaException, TimeoutError) as error:
        log.warning("lag of %s unknown: %s", group, error)
        return None
    return consumer_lag(
        PartitionOffsets(
            earliest=ends["earliest"][p.partition],
            latest=ends["latest"][p.partition],
            committed=committed.get(p.partition),
        )
        for p in parts
    )
