"""A real PyFlink MiniCluster job reads one Kafka topic and writes another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Consumer, Producer

from qarun_devstack.flink import FlinkSetup
from qarun_devstack.kafka import KafkaBroker

RECORDS = 2_000
TOPIC_ARGS = ["--source", "smoke.flink.in", "--sink", "smoke.flink.out"]


def test_pyflink_job_copies_kafka_topic(kafka: KafkaBroker, flink: FlinkSetup) -> None:
    kafka.create_topic("smoke.flink.in", partitions=2)
    kafka.create_topic("smoke.flink.out", partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for n in range(RECORDS):
        producer.produce("smoke.flink.in", value=f"answer-{n}".encode())
    assert producer.flush(30) == 0

    job = Path(__file__).with_name("flink_copy_job.py")
    done = subprocess.run(
        [sys.executable, str(job), "--bootstrap", kafka.bootstrap, *TOPIC_ARGS],
        env={**os.environ, **flink.env_vars},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": "check", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe(["smoke.flink.out"])
    values: list[str] = []
    try:
        for _ in range(120):
            values += [m.value().decode() for m in consumer.consume(1000, timeout=0.5)]
            if len(values) >= RECORDS:
                break
    finally:
        consumer.close()
    assert sorted(values) == sorted(f"ANSWER-{n}" for n in range(RECORDS))
