"""The real Kafka broker carries 10,000 keyed messages with nothing lost or doubled."""

from __future__ import annotations

from collections import Counter

from confluent_kafka import Consumer, Producer

from qarun_devstack.kafka import KafkaBroker

MESSAGES = 10_000


def test_ten_thousand_messages_round_trip(kafka: KafkaBroker) -> None:
    kafka.create_topic("smoke.roundtrip", partitions=3)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    for n in range(MESSAGES):
        producer.produce("smoke.roundtrip", key=f"q{n % 97}", value=str(n).encode())
        producer.poll(0)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": "smoke",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["smoke.roundtrip"])
    seen: Counter[int] = Counter()
    last_per_key: dict[bytes, int] = {}
    try:
        for _ in range(600):  # bounded: at most 600 empty-or-not polls of 0.5 s
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            for msg in batch:
                assert msg.error() is None, msg.error()
                value = int(msg.value())
                key = msg.key()
                # One key lives on one partition, so its messages keep their order.
                assert last_per_key.get(key, -1) < value
                last_per_key[key] = value
                seen[value] += 1
            if batch:
                consumer.commit(asynchronous=False)
            if len(seen) == MESSAGES:
                break
    finally:
        consumer.close()

    assert len(seen) == MESSAGES
    assert set(seen.values()) == {1}
