"""The LLM worker: questions in, answers (or retries, or dead letters) out.

One asyncio loop. It takes messages from the questions topic only while the adaptive
concurrency limit has room, starts one task per message, and each task waits for the
fleet-wide rate limit and the budget, calls the LLM and publishes the outcome:

    ok                       -> answers
    overload / quota error   -> retry tier (due time in headers), until max attempts
    permanent error, poison  -> dead-letter topic (with the reason)

A message's offset is stored only when its outcome is acknowledged by the broker.
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
import random
import threading
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from openai import AsyncOpenAI
from redis.asyncio import BlockingConnectionPool, Redis

from qarun_core.messages import (
    Answer,
    DeadLetter,
    DeadLetterReason,
    ErrorClass,
    PoisonMessageError,
    Question,
    RetryHeaders,
)
from qarun_core.topics import tier_for
from qarun_workers import worker_metrics
from qarun_workers.concurrency import AdaptiveLimit
from qarun_workers.entrypoint import prepare
from qarun_workers.kafka_io import (
    Delivery,
    OffsetTracker,
    Shutdown,
    commit_stored,
    consumer_config,
    dead_letter,
    producer_config,
    raise_on_error,
)
from qarun_workers.limits import Budget, FleetLimiter, Usage
from qarun_workers.llm_client import (
    Completion,
    Failure,
    Pacing,
    ask,
    estimate_tokens,
    make_client,
    prompt,
)
from qarun_workers.retry import give_up, retry_delay
from qarun_workers.runtime import run_async
from qarun_workers.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500
FETCH_WAIT_SECONDS = 0.05  # one fetch's wait for messages, in the fetch thread
COMMIT_MS = 100
UNACKED_MIN = 32  # outcomes awaiting acks beyond the limit (and this) hold back new calls
REVOKE_ACK_SECONDS = 10.0  # how long a revoke waits for its partitions' outcomes' acks

PartitionKey = tuple[str, int]


class Counters:
    def __init__(self) -> None:
        self.answered = 0
        self.retried = 0
        self.dead = 0
        self.tokens = 0


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
        self.delivery = Delivery(self.consumer, self.tracker)
        llm = settings.llm
        self.limit = AdaptiveLimit(
            llm.initial_concurrency, llm.min_concurrency, llm.max_concurrency
        )
        if redis is None and (llm.requests_per_minute or llm.tokens_per_minute):
            raise ValueError("fleet-wide rate limits need Redis")
        # Also without configured limits: the provider's, learned from its headers.
        self.fleet = (
            FleetLimiter(redis, settings.run, llm.requests_per_minute, llm.tokens_per_minute)
            if redis
            else None
        )
        self.budget = (
            Budget(redis, settings.run, settings.budget.max_tokens, settings.budget.max_cost_usd)
            if redis
            else None
        )
        self.rng = random.Random()
        self.tasks: dict[asyncio.Task[None], PartitionKey] = {}  # call -> its partition
        # Calls past the budget and the fleet's pacing: the request may be at the provider.
        # A revoke waits for these only; the others are cancelled, since their partition's
        # next owner makes the call (waiting for a paced call's turn held a revoke 60 s).
        self.sending: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = threading.get_ident()
        self.counters = Counters()
        self.metrics = worker_metrics.WorkerMetrics(settings.run)
        self.metrics.watch(lambda: self.limit.in_flight, lambda: self.limit.limit)

    async def run(self) -> None:
        self.loop, self.loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self.consumer.subscribe(
            [self.topics.questions], on_revoke=self._revoked, on_lost=self._lost
        )
        lag = asyncio.create_task(self._measure_lag())
        try:
            await self._loop()
        finally:
            lag.cancel()
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
            if self.budget is not None and self.budget.exhausted:
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
            if not messages:
                continue
            for msg in messages:
                if raise_on_error(msg):
                    self._start(msg)
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

    def _start(self, msg: Message) -> None:
        self.tracker.started(msg)
        self.limit.started()
        task = asyncio.create_task(self._handle(msg))
        self.tasks[task] = (msg.topic() or "", msg.partition() or 0)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)
        self.sending.discard(task)
        self.limit.finished()
        if not task.cancelled() and task.exception() is not None:
            log.error("message handler failed", exc_info=task.exception())
            self.shutdown.event.set()  # a bug, not a message problem: stop without committing

    async def _handle(self, msg: Message) -> None:
        try:
            question = Question.from_bytes(msg.value())
        except PoisonMessageError as error:
            self.counters.dead += 1
            self.metrics.dead_letters.inc()
            dead_letter(self.producer, self.topics.dlq, msg, error, self.delivery.on_done(msg))
            return
        text = prompt(question)
        estimate = estimate_tokens(text, self.s.llm.max_tokens)
        if not await self._may_send(estimate):
            return  # budget spent: the offset stays unstored, the message stays in Kafka
        task = asyncio.current_task()
        if task is not None:
            self.sending.add(task)
        try:
            completion = await ask(self.client, self.s.llm, text)
        except Failure as failure:
            self.metrics.failed[failure.error].inc()
            await self._settle(estimate, None)
            await self._paced(failure.pacing, failure.retry_after)
            self._failed(msg, question, failure)
            return
        await self._settle(estimate, completion)
        await self._paced(completion.pacing, completion.pacing.wait())
        self.limit.success(completion.latency_ms / 1000)
        self._answered(msg, question, completion)

    async def _paced(self, pacing: Pacing, wait: float) -> None:
        """The provider's rate-limit headers: its limits, and a used-up one holds the fleet
        for `wait`. A Retry-After alone delays only its own message (the retry tier):
        holding everyone for it would starve the fleet under a provider that refuses a
        fixed share of calls with one."""
        if self.fleet is None or not pacing.sent:
            return
        self.fleet.learn(pacing.limit_requests, pacing.limit_tokens)
        if pacing.exhausted and wait > 0:
            await self.fleet.hold(wait)

    async def _may_send(self, estimate: int) -> bool:
        if self.budget is not None and not await self.budget.reserve(self._usage(estimate, 0)):
            return False
        if self.fleet is not None:
            try:
                await self.fleet.acquire(estimate)
            except asyncio.CancelledError:  # revoked while waiting for its turn
                if self.budget is not None:
                    await self.budget.settle(self._usage(estimate, 0), self._usage(0, 0))
                raise
        return True

    async def _settle(self, estimate: int, completion: Completion | None) -> None:
        actual = (
            0 if completion is None else completion.prompt_tokens + completion.completion_tokens
        )
        prompt_tokens = 0 if completion is None else completion.prompt_tokens
        if self.fleet is not None:
            await self.fleet.settle(estimate, actual)
        if self.budget is not None:
            spent = self._usage(prompt_tokens, actual - prompt_tokens)
            await self.budget.settle(self._usage(estimate, 0), spent)

    def _usage(self, prompt_tokens: int, completion_tokens: int) -> Usage:
        return Usage(
            prompt_tokens + completion_tokens, self._cost(prompt_tokens, completion_tokens)
        )

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        llm = self.s.llm
        return (
            prompt_tokens * llm.pricing.prompt_usd_per_million
            + completion_tokens * llm.pricing.completion_usd_per_million
        ) / 1e6

    def _answered(self, msg: Message, question: Question, completion: Completion) -> None:
        answer = Answer.for_question(
            question,
            answer=completion.text,
            model=completion.model,
            latency_ms=round(completion.latency_ms, 1),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost_usd=self._cost(completion.prompt_tokens, completion.completion_tokens),
            worker=self.s.instance,
        )
        self.metrics.answered(
            completion.latency_ms / 1000,
            completion.prompt_tokens,
            completion.completion_tokens,
            answer.cost_usd,
        )
        self.counters.answered += 1
        self.counters.tokens += completion.prompt_tokens + completion.completion_tokens
        self.producer.produce(
            self.topics.answers,
            answer.to_bytes(),
            answer.key(),
            on_delivery=self.delivery.on_done(msg),
        )

    def _failed(self, msg: Message, question: Question, failure: Failure) -> None:
        if failure.paced:
            self.limit.rate_limited()  # paced by rate, fleet-wide (`_paced`)
        elif failure.error == ErrorClass.OVERLOAD:
            # Only overload may say we send too much (the controller tells whether it
            # does); a quota refusal comes at any rate, and cutting for it would leave
            # the limit at its minimum when the quota returns.
            self.limit.overload(failure.latency_s)
        verdict = give_up(question, failure.error, failure.reason, self.s.retry)
        if verdict is not None:
            self._dead(msg, question, *verdict)
            return
        delay = retry_delay(
            failure.error, question.failed_calls, self.s.retry, failure.retry_after, self.rng
        )
        headers = RetryHeaders(
            due_ms=int((time.time() + delay) * 1000), error=failure.error, reason=failure.reason
        )
        again = question.retried(quota=failure.error == ErrorClass.QUOTA)
        self.counters.retried += 1
        self.metrics.retries.inc()
        self.producer.produce(
            self.topics.retry(tier_for(delay, self.s.retry.tiers)),
            again.to_bytes(),
            again.key(),
            headers=headers.to_headers(),
            on_delivery=self.delivery.on_done(msg),
        )

    def _dead(
        self, msg: Message, question: Question, reason: DeadLetterReason, detail: str
    ) -> None:
        letter = DeadLetter.of(
            run=question.run,
            reason=reason,
            detail=detail,
            payload=msg.value(),
            key=msg.key(),
            topic=msg.topic() or "",
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            attempt=question.attempt,
        )
        log.warning("dead letter for question %s: %s", question.question_id, detail)
        self.counters.dead += 1
        self.metrics.dead_letters.inc()
        self.producer.produce(
            self.topics.dlq, letter.to_bytes(), letter.key(), on_delivery=self.delivery.on_done(msg)
        )

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Called inside a fetch. From the fetch thread: let the loop settle the revoked
        partitions' calls, then commit. On the loop's own thread (close, or a poll while
        the budget is spent) nothing can wait for the loop: no calls are running then."""
        if self.loop is not None and threading.get_ident() != self.loop_thread:
            settle = asyncio.run_coroutine_threadsafe(self._settle_revoked(partitions), self.loop)
            try:
                settle.result(timeout=self.s.llm.timeout_seconds + 30)
            except TimeoutError:
                log.warning("calls of revoked partitions not settled in time")
        else:
            self.producer.flush(10)
            self.tracker.revoke(partitions)
        commit_stored(self.consumer)

    async def _settle_revoked(self, partitions: list[TopicPartition]) -> None:
        """Wait for the calls of these partitions, then for their outcomes' acks (which
        store the offsets); calls of the partitions kept go on meanwhile."""
        keys = {(tp.topic, tp.partition) for tp in partitions}
        calls = [task for task, key in self.tasks.items() if key in keys]
        waiting = [task for task in calls if task not in self.sending]
        for task in waiting:  # not sent yet: the message stays unstored for the next owner
            task.cancel()
        calls = [task for task in calls if task in self.sending]
        if waiting:
            log.info("rebalance: %d calls of revoked partitions not sent, left", len(waiting))
        if calls:
            log.info("rebalance: waiting for %d calls of revoked partitions", len(calls))
            await asyncio.wait(calls, timeout=self.s.llm.timeout_seconds + 5)
        deadline = time.monotonic() + REVOKE_ACK_SECONDS
        while self.tracker.unsettled(partitions) and time.monotonic() < deadline:
            self.producer.poll(0)  # serves the acks, which store the offsets
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
        self.delivery.check()
        self.consumer.close()  # commits the stored offsets
        c = self.counters
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
