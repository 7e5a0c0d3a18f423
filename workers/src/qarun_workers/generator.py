"""The traffic generator: data set rows -> Question messages at a shaped rate.

Arrivals follow a poisson, bursty or constant process at `rate_per_second`, scheduled
on absolute times (no drift), until `total` questions or `duration_seconds`. Question
ids are a stable hash of the run and the question's sequence number, so a restart
produces the same ids; rows repeat from the start when `total` exceeds the data set
or a `duration_seconds` run outlasts it.
Before sending, ids already stored in PostgreSQL are skipped (a run started again
sends only what has no result yet), and progress is checkpointed in Redis after each acknowledged
batch, so a restarted generator resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg
from confluent_kafka import KafkaError, Message, Producer
from psycopg import sql
from redis import Redis

from qarun_core.keys import GeneratorRecord, Table, generator_key
from qarun_core.messages import Question
from qarun_core.spec import DatasetSpec, TrafficSpec
from qarun_workers.dataset import Row, read_rows
from qarun_workers.entrypoint import prepare
from qarun_workers.kafka_io import Shutdown, producer_config
from qarun_workers.settings import Settings

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1.0  # seconds between progress checkpoints
# The generator sleeps at least this long between sends and then sends every question
# that fell due meanwhile. Woken once per question it took 0.17-0.24 CPU-ms a question
# at 700-1,000/s; with the tick its CPU at 200/s went from 0.13 to 0.07 cores.
TICK = 0.005


def question_id(run: str, seq: int) -> str:
    return hashlib.blake2b(f"{run}\x00{seq}".encode(), digest_size=10).hexdigest()


def arrivals(traffic: TrafficSpec, rng: random.Random) -> Iterator[float]:
    """Send times in seconds from the start, forever."""
    now = 0.0
    while True:
        rate = traffic.rate_per_second
        if traffic.distribution == "bursty" and in_burst(now, traffic):
            rate *= traffic.burst.factor
        if traffic.distribution == "poisson":
            now += rng.expovariate(rate)
        else:
            now += 1.0 / rate
        yield now


def in_burst(t: float, traffic: TrafficSpec) -> bool:
    """Bursts start every `burst.every_seconds` and last `burst.length_seconds`."""
    return math.fmod(t, traffic.burst.every_seconds) < traffic.burst.length_seconds


def sequence(dataset: DatasetSpec, traffic: TrafficSpec) -> Iterator[tuple[int, Row]]:
    """(sequence number, row): the data set once, or repeated up to `total` or for
    `duration_seconds`; the sequence number keeps counting, so every pass has new ids."""
    repeat = bool(traffic.total or traffic.duration_seconds)
    seq = 0
    while True:
        empty = True
        for row in read_rows(dataset.source, dataset.format, dataset.limit):
            empty = False
            if traffic.total and seq >= traffic.total:
                return
            yield seq, row
            seq += 1
        if empty or not repeat:
            return


@dataclass
class SendProgress:
    sent: int = 0
    skipped: int = 0
    acked: int = 0
    failed: KafkaError | None = None

    def delivered(self, error: KafkaError | None, _msg: Message) -> None:
        if error is not None:
            self.failed = error
        else:
            self.acked += 1


class Generator:
    def __init__(
        self, settings: Settings, shutdown: Shutdown, redis: Redis | None, answered: set[str]
    ) -> None:
        self.s = settings
        self.traffic = settings.traffic
        self.shutdown = shutdown
        self.redis = redis
        self.answered = answered
        self.producer = Producer(producer_config(settings))
        self.progress = SendProgress()

    def resume_from(self) -> int:
        """Where the last checkpoint left off; its counts carry on over restarts."""
        if self.redis is None:
            return 0
        record = GeneratorRecord.from_redis(self.redis.hgetall(generator_key(self.s.run)))
        self.progress.sent, self.progress.skipped = record.sent, record.skipped
        return record.next

    def run(self) -> SendProgress:
        start_seq = self.resume_from()
        if start_seq:
            log.info("resuming after %d questions already sent", start_seq)
        times = arrivals(self.traffic, random.Random(self.traffic.seed))
        started = time.monotonic()
        last_checkpoint = started
        next_seq = start_seq
        finished = True
        for seq, row in sequence(self.s.dataset, self.traffic):
            if seq < start_seq:
                continue
            at = started + next(times)
            if self._over(at - started) or self.shutdown:
                finished = not self.shutdown
                break
            self._wait_until(at)
            self._send(seq, row)
            next_seq = seq + 1
            if time.monotonic() - last_checkpoint >= CHECKPOINT_EVERY:
                self._checkpoint(next_seq)
                last_checkpoint = time.monotonic()
        self._checkpoint(next_seq, done=finished)
        p = self.progress
        log.info(
            "sent %d, skipped %d as already answered, in %.1f s",
            p.sent,
            p.skipped,
            time.monotonic() - started,
        )
        return p

    def _over(self, elapsed: float) -> bool:
        duration = self.traffic.duration_seconds
        return bool(duration) and elapsed > duration

    def _wait_until(self, at: float) -> None:
        """Return once `at` is due: sleep until then, but at least a tick at a time."""
        while (left := at - time.monotonic()) > 0:
            self.producer.poll(min(max(left, TICK), 0.05))

    def _send(self, seq: int, row: Row) -> None:
        qid = question_id(self.s.run, seq)
        if qid in self.answered:
            self.progress.skipped += 1
            return
        question = Question(
            run=self.s.run,
            question_id=qid,
            title=row.title,
            content=row.content,
            best_answer=row.best_answer,
            row=row.row,
        )
        self.producer.produce(
            self.s.topics.questions,
            question.to_bytes(),
            question.key(),
            on_delivery=self.progress.delivered,
        )
        self.producer.poll(0)
        self.progress.sent += 1

    def _checkpoint(self, next_seq: int, done: bool = False) -> None:
        """Record progress only once everything before `next_seq` is acknowledged."""
        if self.producer.flush(30) > 0 or self.progress.failed is not None:
            raise RuntimeError(f"questions not acknowledged: {self.progress.failed}")
        if self.redis is not None:
            record = GeneratorRecord(next_seq, self.progress.sent, self.progress.skipped, done)
            self.redis.hset(generator_key(self.s.run), mapping=record.to_redis())  # type: ignore[arg-type]


def answered_ids(dsn: str, run: str) -> set[str]:
    """Ids already stored for this run; an absent schema means none."""
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            query = sql.SQL("SELECT question_id FROM {} WHERE run = %s")
            rows = conn.execute(query.format(sql.Identifier(Table.RESULTS)), (run,))
            return {r[0] for r in rows}
    except psycopg.errors.UndefinedTable:
        return set()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-storage",
        action="store_true",
        help="neither skip answered questions nor checkpoint progress",
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings, args = prepare("qarun-generator", __doc__, argv, add_arguments)
    storage = settings.storage
    redis, answered = None, set[str]()
    if not args.no_storage:
        redis = Redis.from_url(storage.redis_url)
        if settings.traffic.skip_answered:
            answered = answered_ids(storage.postgres_dsn.get_secret_value(), settings.run)
    Generator(settings, Shutdown().install(), redis, answered).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
