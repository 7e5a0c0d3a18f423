"""A run's topics on a Kafka that Strimzi does not manage (a plain broker, a cloud
service, another operator): the QARun operator creates them through the Kafka Admin API
with the partitions, replication factor and configs a KafkaTopic would carry, grows
their partitions when the spec asks for more (as Strimzi's topic operator does; Kafka
cannot shrink them), and deletes them when the QARun is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # type: ignore[attr-defined]

from qarun_core import plan as p
from qarun_operator.objects import JSON

READY: JSON = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}


class TopicAdminError(Exception):
    """Kafka is unreachable or refused a topic operation; the message says which."""


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def _wait(futures: dict[str, Any], what: str, ignore: str) -> None:
    problems = []
    for name, future in futures.items():
        try:
            future.result(timeout=30)
        except KafkaException as error:
            if ignore not in str(error):
                problems.append(f"{name}: {error}")
    if problems:
        raise TopicAdminError(f"{what} failed: {'; '.join(problems)}")


def ensure_topics(
    bootstrap: str, topics: Iterable[p.TopicPlan], timeout: float = 10
) -> dict[str, JSON]:
    """Create the missing topics and grow short ones; returns every planned topic that
    exists now, shaped as a Ready KafkaTopic for the status aggregation."""
    planned = list(topics)
    admin = _admin(bootstrap)  # must outlive its futures, or librdkafka cancels them
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as error:
        raise TopicAdminError(f"listing topics at {bootstrap}: {error}") from error
    missing = [t for t in planned if t.name not in existing]
    if missing:
        new = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replicas,
                     config=dict(t.config))
            for t in missing
        ]  # fmt: skip
        _wait(
            admin.create_topics(new, operation_timeout=30),
            "creating topics",
            "TOPIC_ALREADY_EXISTS",
        )
    short = [
        NewPartitions(t.name, t.partitions)
        for t in planned
        if t.name in existing and len(existing[t.name].partitions) < t.partitions
    ]
    if short:
        _wait(admin.create_partitions(short, operation_timeout=30), "adding partitions", "")
    return {t.name: READY for t in planned}


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 10) -> list[str]:
    """Delete the topics that exist; returns their names."""
    admin = _admin(bootstrap)
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as error:
        raise TopicAdminError(f"listing topics at {bootstrap}: {error}") from error
    doomed = [name for name in names if name in existing]
    if doomed:
        _wait(
            admin.delete_topics(doomed, operation_timeout=30),
            "deleting topics",
            "UNKNOWN_TOPIC_OR_PART",
        )
    return doomed
