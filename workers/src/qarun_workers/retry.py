"""Delayed retries without sleeping in a consumer: the retry tiers and their consumer.

The LLM worker publishes a failed Question to the tier topic for its delay, with the
due time in the headers (`retry_delay` picks the delay, `qarun_core.topics.tier_for`
the tier). This consumer reads every tier; when a partition's head is not due yet it
seeks back to it and pauses the partition until it is, then re-publishes the payload
unchanged to the questions topic and stores the offset once that is acknowledged.
Other partitions and tiers keep flowing meanwhile.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from qarun_core.messages import DeadLetterReason, ErrorClass, Question, RetryHeaders
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
from qarun_workers.settings import RetrySettings, Settings

log = logging.getLogger(__name__)


def retry_delay(
    error: ErrorClass, retries: int, policy: RetrySettings, retry_after: float, rng: random.Random
) -> float:
    """Seconds to wait before the next call: quota waits long, overload backs off with jitter."""
    if error == ErrorClass.QUOTA:
        delay: float = policy.quota.delay_seconds
    else:
        overload = policy.overload
        cap = min(overload.max_delay_seconds, overload.base_delay_seconds * 2**retries)
        delay = rng.uniform(cap / 2, cap)  # "equal jitter": spread, but never near zero
    return max(delay, retry_after)


def give_up(
    question: Question, error: ErrorClass, reason: str, policy: RetrySettings
) -> tuple[DeadLetterReason, str] | None:
    """Why this failed call ends the question in the dead-letter topic; None to retry.

    A quota refusal says nothing about the question, only that the provider wants us to
    wait: it is bounded by the time waited (quota.max_wait_seconds), not max_attempts."""
    if error == ErrorClass.QUOTA:
        waits = question.quota_waits + 1
        if waits * policy.quota.delay_seconds <= policy.quota.max_wait_seconds:
            return None
        return DeadLetterReason.RETRIES_EXHAUSTED, f"{error}: {reason} after {waits} refusals"
    calls = question.failed_calls + 1
    detail = f"{error}: {reason} after {calls} calls"
    if error == ErrorClass.PERMANENT:
        return DeadLetterReason.PERMANENT_ERROR, detail
    return (DeadLetterReason.RETRIES_EXHAUSTED, detail) if calls >= policy.max_attempts else None


class RetryConsumer:
    def __init__(self, settings: Settings, shutdown: Shutdown) -> None:
        self.settings = settings
        self.shutdown = shutdown
        self.topics = settings.topics
        self.consumer = Consumer(consumer_config(settings, "retry"))
        self.producer = Producer(producer_config(settings))
        self.tracker = OffsetTracker()
        self.delivery = DeliveryCallbacks(self.consumer, self.tracker)
        self.paused: dict[tuple[str, int], int] = {}  # partition -> due ms of its head
        self.republished = 0

    def run(self) -> None:
        self.consumer.subscribe(self.topics.retries, on_revoke=self._revoked, on_lost=self._lost)
        try:
            while not self.shutdown:
                self._resume_due()
                messages = self.consumer.consume(num_messages=500, timeout=0.2)
                self._handle(messages)
                self.producer.poll(0)
                self.delivery.check()
        finally:
            self.producer.flush(30)
            self.delivery.check()
            self.consumer.close()
            log.info("retry consumer stopped after re-publishing %d", self.republished)

    def _handle(self, messages: Sequence[Message]) -> None:
        held: set[tuple[str, int]] = set()
        now_ms = int(time.time() * 1000)
        for msg in messages:
            if not raise_on_error(msg):
                continue
            key = (msg.topic() or "", msg.partition() or 0)
            if key in held:
                continue  # after a paused head; fetched again on resume
            due = RetryHeaders.from_headers(msg.headers()).due_ms
            if due > now_ms:
                self._hold(msg, due)
                held.add(key)
                continue
            self.tracker.started(msg)
            self.producer.produce(
                self.topics.questions,
                msg.value(),
                msg.key(),
                on_delivery=self.delivery.on_done(msg),
            )
            self.republished += 1

    def _hold(self, msg: Message, due_ms: int) -> None:
        tp = TopicPartition(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        self.consumer.pause([tp])
        self.consumer.seek(tp)
        self.paused[(tp.topic, tp.partition)] = due_ms

    def _resume_due(self) -> None:
        now_ms = int(time.time() * 1000)
        due = [key for key, at in self.paused.items() if at <= now_ms]
        if due:
            self.consumer.resume([TopicPartition(topic, part) for topic, part in due])
            for key in due:
                del self.paused[key]

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.producer.flush(30)  # the acks store the offsets of what was re-published
        commit_stored(self.consumer)  # so the next owner re-publishes none of it again
        self._lost(_consumer, partitions)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Revoked, or lost (nothing to commit then): forget the partitions."""
        self.tracker.revoke(partitions)
        for tp in partitions:
            self.paused.pop((tp.topic, tp.partition), None)


def main(argv: Sequence[str] | None = None) -> int:
    settings, _ = prepare("qarun-retry", __doc__, argv)
    RetryConsumer(settings, Shutdown().install()).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
