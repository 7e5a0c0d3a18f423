"""Stands in for the Flink scoring job in these tests: answers -> results.

Each answer becomes a final Result with a token-overlap score, committed after the
result is acknowledged, in a background thread. Like the scoring job it outlives a
broker restart: it waits for the acks, and a commit refused meanwhile is left to the
next one (the answers are read again: at least once).
"""

from __future__ import annotations

import contextlib
import threading

from confluent_kafka import Consumer, KafkaException, Producer

from qarun_core.messages import Answer
from qarun_core.topics import RunTopics


def overlap(answer: str, reference: str) -> float:
    a, r = set(answer.lower().split()), set(reference.lower().split())
    if not a or not r:
        return 0.0
    common = len(a & r)
    return 0.0 if common == 0 else 2 * common / (len(a) + len(r))


class Forwarder(threading.Thread):
    def __init__(self, bootstrap: str, run: str) -> None:
        super().__init__(daemon=True)
        self.topics = RunTopics(run)
        self.bootstrap = bootstrap
        self.stop = threading.Event()
        self.forwarded = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"forwarder.{self.topics.run}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        consumer.subscribe([self.topics.answers])
        try:
            while not self.stop.is_set():
                batch = [m for m in consumer.consume(500, timeout=0.2) if m.error() is None]
                for msg in batch:
                    answer = Answer.from_bytes(msg.value())
                    scored = answer.scored(overlap(answer.answer, answer.best_answer))
                    result = answer.result(scored, exhausted=False, scorer="test-overlap")
                    producer.produce(self.topics.results, result.to_bytes(), result.key())
                if batch:
                    while producer.flush(1) > 0 and not self.stop.is_set():
                        pass  # the broker is away: the results wait in the queue
                    # Refused while the broker is away: read again, results are idempotent.
                    with contextlib.suppress(KafkaException):
                        consumer.commit(asynchronous=False)
                    self.forwarded += len(batch)
        except BaseException as error:  # reported by the test through `error`
            self.error = error
        finally:
            consumer.close()
