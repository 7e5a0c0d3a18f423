"""Reading a run's dead letters and sending questions back (`qarun dlq`, `qarun replay`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from qarun_core.messages import DeadLetter, PoisonMessageError, Question, letter_identity


def read_dead_letters(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """The run's dead letters, one per question (the latest), in the topic's order."""
    return unique_letters(read_topic(bootstrap, topic))


def unique_letters(letters: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One letter per `letter_identity`: a crash can publish a question's letter twice."""
    kept: dict[str, dict[str, Any]] = {}
    for n, letter in enumerate(letters):
        if letter.get("kind") != "dead_letter":  # unreadable: nothing to tell it apart by
            kept[f"unreadable:{n}"] = letter
            continue
        identity = letter_identity(
            str(letter.get("question_id") or ""),
            str(letter.get("source_topic") or ""),
            int(letter.get("source_partition", -1)),
            int(letter.get("source_offset", -1)),
        )
        kept[identity] = letter  # the latest; the first one's place in the order
    return list(kept.values())


def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every record of a topic, from the start to its current end, as JSON objects."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"qarun-cli-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        ends: dict[int, int] = {}
        assignment = []
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)
            if high > low:
                ends[partition] = high
                assignment.append(TopicPartition(topic, partition, low))
        if not assignment:
            return []
        consumer.assign(assignment)
        found: list[dict[str, Any]] = []
        while ends:
            messages = consumer.consume(500, timeout=timeout)
            if not messages:
                break
            for msg in messages:
                if msg.error():
                    continue
                try:
                    found.append(json.loads(msg.value() or b"{}"))
                except ValueError:
                    found.append({"reason": "unreadable", "original": repr(msg.value())[:200]})
                partition, offset = msg.partition() or 0, msg.offset() or 0
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
        return found
    finally:
        consumer.close()


def render(letters: Iterable[dict[str, Any]], limit: int) -> str:
    rows = list(letters)
    if not rows:
        return "no dead letters"
    lines = [f"{'question':<22} {'att':>3}  {'reason':<18} detail"]
    for letter in rows[:limit]:
        detail = str(letter.get("detail", "")).replace("\n", " ")[:90]
        lines.append(
            f"{str(letter.get('question_id', ''))[:22]:<22} {letter.get('attempt', 0)!s:>3}  "
            f"{letter.get('reason', '')!s:<18} {detail}"
        )
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more (--limit)")
    by_reason: dict[str, int] = {}
    for letter in rows:
        reason = str(letter.get("reason", ""))
        by_reason[reason] = by_reason.get(reason, 0) + 1
    lines.append("total: " + ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items())))
    return "\n".join(lines)


def replayable(letter: dict[str, Any]) -> Question | None:
    """The question inside a dead letter, ready to be asked again (fresh retries)."""
    try:
        dead = DeadLetter.model_validate(letter)
        question = Question.from_bytes(dead.original.encode())
    except (ValueError, PoisonMessageError):
        return None
    return question.model_copy(update={"retries": 0})


def publish(bootstrap: str, topic: str, questions: Iterable[Question]) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    sent = 0
    for question in questions:
        producer.produce(topic, question.to_bytes(), question.key())
        producer.poll(0)
        sent += 1
    if producer.flush(30) > 0:
        raise RuntimeError("not every replayed question was acknowledged by Kafka")
    return sent
