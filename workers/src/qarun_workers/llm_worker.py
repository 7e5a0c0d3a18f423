"""The LLM worker: questions in, answers (or retries, or dead letters) out.

One asyncio loop. It takes messages from the questions topic only while the adaptive
concurrency limit has room, skips those whose answer was acknowledged already (marks
in Redis: `answered_marks`), and starts one task per message; each task passes the
budget and the fleet-wide rate limit (`call_gate`), calls the LLM and publishes the
outcome (`call_outcomes`). A message's offset is stored only when its outcome is
acknowledged by the broker.

Messages are fetched in a thread, so that a rebalance's revoke callback (which runs
inside the fetch) can wait, while this loop goes on, for the calls of the revoked
partitions to finish and their outcomes to be acknowledged, and commit those offsets
before the partitions move: a worker added or stopped makes no question's call twice.
On SIGTERM it stops taking messages, lets the calls in flight finish (up to the LLM
timeout), flushes and commits. When the budget is spent it stops sending and idles;
the unsent messages stay in Kafka. When the broker stops acknowledging (a restart), it
starts no calls beyond those whose outcomes wait: after the outage only those repeat.
Prometheus metrics (qarun_workers.worker_metrics) are served on QARUN_METRICS__PORT
(9100; 0 = off).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from openai import AsyncOpenAI
from redis.asyncio import BlockingConnectionPool, Redis

from qarun_core.messages import PoisonMessageError, Question
from qarun_workers import worker_metrics
from qarun_workers.answered_marks import AnsweredMarks
from qarun_workers.call_gate import CallGate
from qarun_workers.call_outcomes import CallOutcomes
from qarun_workers.concurrency import AdaptiveLimit
from qarun_workers.entrypoint import prepare
from qarun_workers.kafka_io import (
    DeliveryCallbacks,
    OffsetTracker,
    Shutdown,
    commit_stored,
    consumer_config,
    producer_config,
    raise_on_error,
)
from qarun_workers.llm_client import Failure, ask, estimate_tokens, make_client, prompt
from qarun_workers.runtime import run_async
from qarun_workers.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500
FETCH_WAIT_SECONDS = 0.05  # one fetch's wait for messages, in the fetch thread
COMMIT_MS = 100
UNACKED_MIN = 32  # outcomes awaiting acks beyond the limit (and this) hold back new calls
REVOKE_ACK_SECONDS = 10.0  # how long a revoke waits for its partitions' outcomes' acks

MessagePosition = tuple[str, int, int]  # topic, partition, offset


def message_position(msg: Message) -> MessagePosition:
    return msg.topic() or "", msg.partition() or 0, msg.offset() or 0


class LLMWorker:
    def __init__(
        self, settings: Settings, shutdown: Shutdown, client: AsyncOpenAI, redis: Redis | None
    ) -> None:
        self.s = settings
        self.shutdown = shutdown
        self.client = client
        self.topics = settings.topics
        # Committed every 0.1 s, not every second: after a SIGKILL the calls made again
        # are those in flight and those acknowledged since the last commit.
        self.consumer = Consumer(
            consumer_config(settings, "llm-worker", **{"auto.commit.interval.ms": COMMIT_MS})
        )
        self.producer = Producer(
            producer_config(settings, **{"queue.buffering.max.messages": 1_000_000})
        )
        self.tracker = OffsetTracker()
        self.delivery = DeliveryCallbacks(self.consumer, self.tracker)
        llm = settings.llm
        self.limit = AdaptiveLimit(
            llm.initial_concurrency, llm.min_concurrency, llm.max_concurrency
        )
        self.gate = CallGate(settings, redis)
        self.marks = AnsweredMarks(redis, settings.run) if redis else None
        self.metrics = worker_metrics.WorkerMetrics(settings.run)
        self.metrics.watch(lambda: self.limit.in_flight, lambda: self.limit.limit)
        self.outcomes = CallOutcomes(
            settings,
            self.producer,
            delivery=self.delivery,
            limit=self.limit,
            gate=self.gate,
            marks=self.marks,
            metrics=self.metrics,
        )
        self.tasks: dict[asyncio.Task[None], MessagePosition] = {}  # call -> its message
        # Calls past the budget and the fleet's pacing: the request may be at the provider.
        # A revoke waits for these only; the others are cancelled, since their partition's
        # next owner makes the call (waiting for a paced call's turn held a revoke 60 s).
        self.sending: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = threading.get_ident()

    async def run(self) -> None:
        self.loop, self.loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self.consumer.subscribe(
            [self.topics.questions], on_revoke=self._revoked, on_lost=self._lost
        )
        helpers = [asyncio.create_task(self._measure_lag())]
        if self.marks is not None:
            helpers.append(asyncio.create_task(self.marks.write_marks()))
        try:
            await self._loop()
        finally:
            for helper in helpers:
                helper.cancel()
            await self._drain()

    async def _measure_lag(self, every: float = 0.05) -> None:
        """How late the event loop wakes: the host's share of the measured latencies."""
        while True:
            started = time.perf_counter()
            await asyncio.sleep(every)
            late = time.perf_counter() - started - every
            self.limit.host_lag += 0.2 * (late - self.limit.host_lag)

    async def _loop(self) -> None:
        while not self.shutdown:
            self.delivery.check()
            self.producer.poll(0)
            if self.gate.exhausted:
                self._idle()
                await asyncio.sleep(0.2)
                continue
            room = self.limit.room
            if room == 0:
                await self.limit.wait_for_room(0.05)
                continue
            if len(self.producer) > max(self.limit.limit, UNACKED_MIN):
                # Outcomes are not acknowledged (the broker is away): a call started now
                # could not be committed, and would be made again after the outage.
                await asyncio.sleep(0.05)
                continue
            messages = await asyncio.to_thread(
                self.consumer.consume, num_messages=min(room, BATCH), timeout=FETCH_WAIT_SECONDS
            )
            batch = [msg for msg in messages if raise_on_error(msg)]
            if batch:
                self._start_batch(batch)
            await asyncio.sleep(0)

    def _idle(self) -> None:
        """Budget spent: fetch nothing more, but keep polling to stay in the group."""
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(assigned)
        msg = self.consumer.poll(0)
        if msg is not None and msg.error() is None:  # from a partition assigned just now
            where = TopicPartition(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
            self.consumer.pause([where])
            self.consumer.seek(where)

    def _start_batch(self, batch: list[Message]) -> None:
        """One task per message. The batch's answered marks are read in one MGET that
        the loop does not wait for (the next fetch goes on); each task waits for it and
        skips a question answered already (by the partition's owner before a kill)."""
        parsed: list[Question | PoisonMessageError] = []
        for msg in batch:
            self.tracker.started(msg)
            try:
                parsed.append(Question.from_bytes(msg.value()))
            except PoisonMessageError as error:
                parsed.append(error)
        answered = asyncio.ensure_future(
            self._answered([q for q in parsed if isinstance(q, Question)])
        )
        for msg, question in zip(batch, parsed, strict=True):
            self._start(msg, question, answered)

    async def _answered(self, questions: list[Question]) -> set[tuple[str, int]]:
        """The (question, attempt) pairs marked: a mark is per attempt, so a question's
        regeneration in the same batch as its marked first attempt is still asked."""
        if self.marks is None:
            return set()
        found = await self.marks.answered(questions)
        return {
            (q.question_id, q.attempt) for q, done in zip(questions, found, strict=True) if done
        }

    def _start(
        self,
        msg: Message,
        question: Question | PoisonMessageError,
        answered: asyncio.Future[set[tuple[str, int]]],
    ) -> None:
        self.limit.started()
        task = asyncio.create_task(self._handle(msg, question, answered))
        self.tasks[task] = message_position(msg)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        where = self.tasks.pop(task, None)
        self.sending.discard(task)
        self.limit.finished()
        if task.cancelled():  # revoked before it was sent: the next owner makes the call
            if where is not None:
                self.tracker.dropped(*where)
        elif task.exception() is not None:
            log.error("message handler failed", exc_info=task.exception())
            self.shutdown.event.set()  # a bug, not a message problem: stop without committing

    async def _handle(
        self,
        msg: Message,
        question: Question | PoisonMessageError,
        answered: asyncio.Future[set[tuple[str, int]]],
    ) -> None:
        if isinstance(question, PoisonMessageError):
            self.outcomes.poison(msg, question)
            return
        if (question.question_id, question.attempt) in await asyncio.shield(answered):
            self.metrics.already_answered.inc()
            self.delivery.finish(*message_position(msg))  # its answer is on the answers topic
            return
        text = prompt(question)
        estimate = estimate_tokens(text, self.s.llm.max_tokens)
        if not await self.gate.admit(estimate):
            self.tracker.dropped(*message_position(msg))  # budget spent: the message stays in Kafka
            return
        task = asyncio.current_task()
        if task is not None:
            self.sending.add(task)
        try:
            completion = await ask(self.client, self.s.llm, text)
        except Failure as failure:
            self.metrics.failed[failure.error].inc()
            await self.gate.settle(estimate, None)
            await self.gate.paced(failure.pacing, failure.retry_after)
            self.outcomes.failed(msg, question, failure)
            return
        await self.gate.settle(estimate, completion)
        await self.gate.paced(completion.pacing, completion.pacing.wait())
        self.limit.success(completion.latency_ms / 1000)
        self.outcomes.answered(msg, question, completion)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Called inside a fetch. From the fetch thread: let the loop settle the revoked
        partitions' calls, then commit. The offsets the loop finishes meanwhile are stored
        here (`DeliveryCallbacks.defer`): from the loop, librdkafka would block them until this
        callback returns, and the loop with them. On the loop's own thread (close, or a
        poll while the budget is spent) nothing can wait for the loop: no calls are
        running then."""
        if self.loop is not None and threading.get_ident() != self.loop_thread:
            self.delivery.defer()
            settle = asyncio.run_coroutine_threadsafe(self._settle_revoked(partitions), self.loop)
            try:
                settle.result(timeout=self.s.llm.timeout_seconds + 30)
            except TimeoutError:
                log.warning("calls of revoked partitions not settled in time")
            finally:
                self.delivery.store_deferred()
        else:
            self.producer.flush(10)
            self.tracker.revoke(partitions)
        commit_stored(self.consumer)

    async def _settle_revoked(self, partitions: list[TopicPartition]) -> None:
        """Wait for the calls of these partitions, then for their outcomes' acks (which
        store the offsets); calls of the partitions kept go on meanwhile."""
        keys = {(tp.topic, tp.partition) for tp in partitions}
        calls = [task for task, (topic, part, _) in self.tasks.items() if (topic, part) in keys]
        waiting = [task for task in calls if task not in self.sending]
        for task in waiting:  # not sent yet: the message stays unstored for the next owner
            task.cancel()
        if waiting:
            log.info("rebalance: %d calls of revoked partitions not sent, left", len(waiting))
        sent = len(calls) - len(waiting)
        if sent:
            log.info("rebalance: waiting for %d calls of revoked partitions", sent)
        if calls:
            await asyncio.wait(calls, timeout=self.s.llm.timeout_seconds + 5)
        deadline = time.monotonic() + REVOKE_ACK_SECONDS
        while self.tracker.unsettled(partitions) and time.monotonic() < deadline:
            self.producer.poll(0)  # serves the acks, which finish the offsets
            await asyncio.sleep(0.005)
        self.tracker.revoke(partitions)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group took these partitions without a revoke (the session timed out):
        nothing can be committed for them any more; their next owner repeats what this
        worker did since the last commit."""
        log.warning("partitions lost: %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
        if self.loop is not None and threading.get_ident() != self.loop_thread:
            self.loop.call_soon_threadsafe(self.tracker.revoke, partitions)  # before any fetch
        else:
            self.tracker.revoke(partitions)

    async def _drain(self) -> None:
        grace = self.s.llm.timeout_seconds + 5
        if self.tasks:
            log.info("waiting for %d calls in flight", len(self.tasks))
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
        self.producer.flush(30)
        if self.marks is not None:
            await self.marks.flush()
        self.delivery.check()
        self.consumer.close()  # commits the stored offsets
        c = self.outcomes.counters
        log.info(
            "stopped: answered %d, retried %d, dead letters %d, tokens %d, peak in flight %d",
            c.answered,
            c.retried,
            c.dead,
            c.tokens,
            self.limit.peak_in_flight,
        )


async def serve(settings: Settings, shutdown: Shutdown) -> None:
    client = make_client(settings.llm, settings.llm.api_key.get_secret_value())
    # A few connections, waited for: thousands of tasks share them. The pool connects on
    # first use, so a worker whose provider sends no rate-limit headers and that has no
    # configured limits or budget never touches Redis.
    pool = BlockingConnectionPool.from_url(
        settings.storage.redis_url, max_connections=16, timeout=None
    )
    redis: Redis | None = Redis(connection_pool=pool)
    try:
        await LLMWorker(settings, shutdown, client, redis).run()
    finally:
        await client.close()
        if redis is not None:
            await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    settings, _ = prepare("qarun-llm-worker", __doc__, argv)
    endpoint = worker_metrics.serve(settings.metrics)
    try:
        run_async(serve(settings, Shutdown().install()))
    finally:
        if endpoint is not None:
            endpoint.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
