"""Start-up time of each local component and Kafka round-trip throughput.

Writes benchmarks/results/infra.json. Run with `make bench-infra`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from qarun_devstack.stack import LocalStack

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe

MESSAGES = 200_000
PAYLOAD = b"x" * 512  # about the size of one serialized answer


def kafka_round_trip(bootstrap: str, topic: str) -> dict[str, float]:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4"})
    started = time.perf_counter()
    for n in range(MESSAGES):
        while True:
            try:
                producer.produce(topic, key=str(n % 1000).encode(), value=PAYLOAD)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    produced = time.perf_counter() - started

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    started, received = time.perf_counter(), 0
    while received < MESSAGES and time.perf_counter() - started < 120:
        received += len(consumer.consume(10_000, timeout=0.5))
    consumed = time.perf_counter() - started
    consumer.close()
    return {
        "messages": MESSAGES,
        "payload_bytes": len(PAYLOAD),
        "produce_msgs_per_s": round(MESSAGES / produced),
        "consume_msgs_per_s": round(received / consumed),
    }


def main() -> None:
    with LocalStack() as stack:
        stack.kafka.create_topic("bench.roundtrip", partitions=6)
        result = {
            "machine": describe(),
            "startup_seconds": stack.startup_seconds,
            "kafka": kafka_round_trip(stack.kafka.bootstrap, "bench.roundtrip"),
        }
    out = Path(__file__).parent / "results" / "infra.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
