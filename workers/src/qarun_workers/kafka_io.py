"""Kafka plumbing shared by the roles: configs, topic creation, offsets, dead letters.

The delivery contract is at-least-once: a consumed offset is stored only once the
output it led to has been acknowledged by the broker (`acks=all`). Outputs complete
out of order (LLM calls do), so `OffsetTracker` stores, per partition, the offset just
past the longest finished prefix. librdkafka commits stored offsets in the background
and once more on close.

Groups rebalance cooperatively (`cooperative-sticky`): when a consumer joins or leaves,
only the partitions that move are revoked, and the others keep flowing. A consumer
whose partitions are revoked settles their outputs and commits synchronously
(`commit_stored`) before it lets them go, so the next owner starts exactly where it
stopped: a graceful rebalance repeats nothing. Partitions lost (the session timed out,
say while the broker restarted) can no longer be committed: they are only forgotten.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from qarun_core.kafka_topics import ensure_topics
from qarun_core.messages import DeadLetter, PoisonMessageError
from qarun_core.topics import run_of
from qarun_workers.settings import Settings

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        "client.id": f"{settings.run}-{settings.instance}",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        **extra,
    }


def consumer_config(settings: Settings, role: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        "group.id": settings.group(role),
        "client.id": f"{settings.run}-{role}-{settings.instance}",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "enable.auto.offset.store": False,  # stored by OffsetTracker after the output is acked
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": settings.kafka.session_timeout_ms,
        "heartbeat.interval.ms": max(1000, settings.kafka.session_timeout_ms // 4),
        **extra,
    }


def ensure_run_topics(settings: Settings) -> None:
    if settings.kafka.create_topics:
        kafka = settings.kafka
        topics = dict.fromkeys(settings.topics.all(), kafka.partitions)
        ensure_topics(kafka.bootstrap, topics, kafka.replicas)


class _PartitionOffsets:
    """One partition's offsets in flight, in the order they were started."""

    def __init__(self) -> None:
        self.order: deque[int] = deque()
        self.done: set[int] = set()  # finished behind an unfinished one
        self.dropped: set[int] = set()  # will not finish here; they hold the prefix back


class OffsetTracker:
    """Per partition, the offsets in flight; yields the offset to store as a prefix finishes."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], _PartitionOffsets] = {}

    def started(self, msg: Message) -> None:
        key = (msg.topic() or "", msg.partition() or 0)
        self._partitions.setdefault(key, _PartitionOffsets()).order.append(msg.offset() or 0)

    def finished(self, topic: str, partition: int, offset: int) -> TopicPartition | None:
        """Mark one offset done; the position to store when the finished prefix grew."""
        offsets = self._partitions.get((topic, partition))
        if offsets is None:
            return None  # the partition was revoked meanwhile
        offsets.done.add(offset)
        last = None
        while offsets.order and offsets.order[0] in offsets.done:
            last = offsets.order.popleft()
            offsets.done.discard(last)
        return None if last is None else TopicPartition(topic, partition, last + 1)

    def dropped(self, topic: str, partition: int, offset: int) -> None:
        """An offset whose message gets no output here (its call was cancelled on revoke,
        or the budget ran out): never stored, so the partition's next owner (or this
        worker's next run) takes the message again, and no longer waited for."""
        offsets = self._partitions.get((topic, partition))
        if offsets is not None:
            offsets.dropped.add(offset)

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._partitions.pop((tp.topic, tp.partition), None)

    @property
    def in_flight(self) -> int:
        return sum(len(offsets.order) for offsets in self._partitions.values())

    def unsettled(self, partitions: Iterable[TopicPartition]) -> int:
        """Offsets of these partitions whose output is still to come: started, neither
        finished (behind an unfinished one, say) nor dropped."""
        total = 0
        for tp in partitions:
            offsets = self._partitions.get((tp.topic, tp.partition))
            if offsets is not None:
                total += len(offsets.order) - len(offsets.done) - len(offsets.dropped)
        return total


def store_positions(consumer: Consumer, positions: list[TopicPartition]) -> None:
    """Store offsets for librdkafka's background commit; a partition revoked in
    between is left to its next owner, which replays from the last commit."""
    try:
        consumer.store_offsets(offsets=positions)
    except KafkaException as error:
        log.debug("offsets not stored: %s", error)


def commit_stored(consumer: Consumer) -> None:
    """Commit the stored offsets now and wait for the broker: on revoke, the next owner
    of a partition must not start before the last auto-commit (up to a second back)."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        if error.args[0].code() != KafkaError._NO_OFFSET:  # nothing stored since the last
            log.warning("offsets not committed on revoke: %s", error)


class DeliveryCallbacks:
    """Producer callbacks that store the consumed offset once the output is acked.

    While a revoke callback runs in the fetch thread, librdkafka blocks `store_offsets`
    from any other thread until the callback returns; the callback in turn waits for
    the event loop to settle the revoked partitions' outputs. So between `defer()` and
    `store_deferred()` the positions the loop finishes are kept, and the callback's own
    thread stores them before it commits.
    """

    def __init__(self, consumer: Consumer, tracker: OffsetTracker) -> None:
        self.consumer = consumer
        self.tracker = tracker
        self.failure: KafkaError | None = None
        self._lock = threading.Lock()  # guards the two below, never held while storing
        self._deferring = False
        self._deferred: dict[tuple[str, int], TopicPartition] = {}

    def on_done(self, source: Message) -> Callable[[KafkaError | None, Message], None]:
        topic, partition, offset = source.topic() or "", source.partition() or 0, source.offset()

        def callback(error: KafkaError | None, _msg: Message) -> None:
            if error is not None:
                self.failure = error  # the loop stops; the offset stays unstored
                return
            self.finish(topic, partition, offset or 0)

        return callback

    def finish(self, topic: str, partition: int, offset: int) -> None:
        position = self.tracker.finished(topic, partition, offset)
        if position is None:
            return
        with self._lock:
            if self._deferring:  # positions only grow: the latest one is the one to store
                self._deferred[(topic, partition)] = position
                return
        store_positions(self.consumer, [position])

    def defer(self) -> None:
        """From the revoke callback's thread, before it waits for the loop."""
        with self._lock:
            self._deferring = True

    def store_deferred(self) -> None:
        """From the revoke callback's thread, before it commits: store what the loop
        finished meanwhile, and let the loop store its own again."""
        with self._lock:
            positions = list(self._deferred.values())
            self._deferred.clear()
            self._deferring = False
        if positions:
            store_positions(self.consumer, positions)

    def check(self) -> None:
        if self.failure is not None:
            raise KafkaException(self.failure)


def dead_letter(
    producer: Producer,
    dlq_topic: str,
    msg: Message,
    error: PoisonMessageError,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
) -> None:
    """Publish a message that can never be processed to the dead-letter topic, with why."""
    topic = msg.topic() or ""
    letter = DeadLetter.of(
        run=run_of(topic),
        reason=error.reason,
        detail=error.detail,
        payload=msg.value(),
        key=msg.key(),
        topic=topic,
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
    )
    log.warning("dead letter %s@%s: %s", topic, msg.offset(), error)
    producer.produce(dlq_topic, letter.to_bytes(), letter.key(), on_delivery=on_delivery)


def raise_on_error(msg: Message) -> bool:
    """True for a real message; partition EOF is skipped, any other error raised."""
    error = msg.error()
    if error is None:
        return True
    if error.code() == KafkaError._PARTITION_EOF:
        return False
    raise KafkaException(error)


class Shutdown:
    """Set on SIGTERM or SIGINT; poll loops check it and finish cleanly."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> Shutdown:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()
