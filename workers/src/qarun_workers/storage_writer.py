"""The storage writer: results and dead letters into PostgreSQL, answers into Redis.

A batch is whatever has arrived when the writer is ready, up to `batch_size`: it waits
for the first message only, so a result is not held back for a batch to fill, and
under load the messages fetched while one batch was written make the next one. A batch
is written in one transaction of idempotent upserts; only after the database commit
are the answers cached and the batch's offsets stored, for librdkafka to commit (every
second and on close; a synchronous commit per batch was one more broker request per
batch). So a crash at any point replays at most the batches since the last commit,
and changes nothing twice. When PostgreSQL restarts or cannot be reached, the batch is
written again (backing off up to WRITE_BACKOFF_MAX_SECONDS) until it is committed:
its offsets are not stored meanwhile, and nothing behind it is read. A payload on the
results topic that is not a Result goes to the dead-letter topic (and is stored from
there like any dead letter).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from psycopg_pool import ConnectionPool, PoolTimeout
from redis import Redis

from qarun_core.messages import DeadLetter, PoisonMessageError, Result
from qarun_workers.cache import cache_entries
from qarun_workers.entrypoint import prepare
from qarun_workers.kafka_io import (
    Shutdown,
    consumer_config,
    dead_letter,
    producer_config,
    raise_on_error,
    store_positions,
)
from qarun_workers.settings import Settings
from qarun_workers.storage import migrate, write_batch

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.2  # how long one poll waits for a first message (and for shutdown)
WRITE_BACKOFF_MAX_SECONDS = 5.0


class StorageWriter:
    def __init__(
        self, settings: Settings, shutdown: Shutdown, pool: ConnectionPool, redis: Redis
    ) -> None:
        self.s = settings
        self.shutdown = shutdown
        self.pool = pool
        self.redis = redis
        self.topics = settings.topics
        self.consumer = Consumer(consumer_config(settings, "storage-writer"))
        self.producer = Producer(producer_config(settings))
        self.stored = 0

    def run(self) -> None:
        self.consumer.subscribe([self.topics.results, self.topics.dlq])
        try:
            while not self.shutdown:
                messages = [m for m in self._arrived() if raise_on_error(m)]
                if messages:
                    self._store(messages)
        finally:
            self.consumer.close()
            log.info("storage writer stopped after %d results", self.stored)

    def _arrived(self) -> list[Message]:
        """The first message to come, and those fetched already behind it."""
        first = self.consumer.poll(IDLE_POLL_SECONDS)
        if first is None:
            return []
        room = self.s.storage.batch_size - 1
        return [first, *self.consumer.consume(num_messages=room, timeout=0)] if room else [first]

    def _store(self, messages: Sequence[Message]) -> None:
        results, letters = self._parse(messages)
        self._write(results, letters)
        if results:
            self._cache(results)
        store_positions(self.consumer, next_positions(messages))
        self.stored += len(results)

    def _write(self, results: Sequence[Result], letters: Sequence[DeadLetter]) -> None:
        delay = 0.2
        while True:
            try:
                with self.pool.connection() as conn:
                    write_batch(conn, results, letters)
                return
            except (psycopg.OperationalError, PoolTimeout) as error:
                if self.shutdown:
                    raise  # stopping: the batch's offsets stay unstored, it is read again
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                log.warning("PostgreSQL: %s; writing the batch again in %.1f s", first, delay)
                self.shutdown.event.wait(delay)
                delay = min(delay * 2, WRITE_BACKOFF_MAX_SECONDS)

    def _parse(self, messages: Sequence[Message]) -> tuple[list[Result], list[DeadLetter]]:
        results: list[Result] = []
        letters: list[DeadLetter] = []
        poisoned = False
        for msg in messages:
            try:
                if msg.topic() == self.topics.dlq:
                    letters.append(DeadLetter.from_bytes(msg.value() or b""))
                else:
                    results.append(Result.from_bytes(msg.value()))
            except PoisonMessageError as error:
                dead_letter(self.producer, self.topics.dlq, msg, error)
                poisoned = True
            except ValueError as error:  # an unreadable dead letter: nowhere left to send it
                log.error(
                    "unreadable dead letter at %s@%s: %s",
                    msg.topic(),
                    msg.offset(),
                    str(error).splitlines()[0],
                )
        if poisoned and self.producer.flush(30) > 0:
            raise RuntimeError("dead letters not acknowledged; not committing")
        return results, letters

    def _cache(self, results: Sequence[Result]) -> None:
        ttl = self.s.storage.cache_ttl_seconds
        with self.redis.pipeline(transaction=False) as pipe:
            for key, value in cache_entries(results).items():
                pipe.set(key, value, ex=ttl)
            pipe.execute()


def next_positions(messages: Sequence[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the last message: what to store."""
    last: dict[tuple[str, int], int] = {}
    for msg in messages:
        key = (msg.topic() or "", msg.partition() or 0)
        last[key] = max(last.get(key, -1), msg.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def main(argv: Sequence[str] | None = None) -> int:
    settings, _ = prepare("qarun-storage-writer", __doc__, argv)
    storage = settings.storage
    with ConnectionPool(
        storage.postgres_dsn.get_secret_value(), min_size=1, max_size=2, open=True
    ) as pool:
        with pool.connection() as conn:
            applied = migrate(conn)
        if applied:
            log.info("applied migrations %s", applied)
        redis = Redis.from_url(storage.redis_url)
        StorageWriter(settings, Shutdown().install(), pool, redis).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
