"""Topic creation, for every process that creates topics outside Kubernetes: the local
runner, the workers (`kafka.create_topics`) and devstack's broker.

On Kubernetes the operator's Strimzi KafkaTopics create the run's topics; this is the
one way everything else does. It needs confluent-kafka, which core only names as its
`kafka` extra: the operator and the scoring job, which never create topics, do not
install it (an import contract keeps them off this module).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap: str,
    partitions: Mapping[str, int],
    replicas: int = 1,
    config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics (name -> partitions) that do not exist yet, in one request, and
    wait for them; existing ones are left as they are. Returns the names created."""
    # The client must outlive the futures, or librdkafka cancels them.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    existing = set(admin.list_topics(timeout=15).topics)
    wanted = [
        NewTopic(name, num_partitions=n, replication_factor=replicas, config=dict(config or {}))
        for name, n in partitions.items()
        if name not in existing
    ]
    if not wanted:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result(timeout=30)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            continue  # created meanwhile by another process
        log.info("created topic %s", name)
        created.append(name)
    return created
