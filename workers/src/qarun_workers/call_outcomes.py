"""What becomes of a message once its LLM call is over, published for the broker to ack:

    ok                       -> answers (and, once acked, its answered mark)
    overload / quota error   -> retry tier (due time in headers), until max attempts
    permanent error, poison  -> dead-letter topic (with the reason)

Each outcome's delivery callback stores the message's offset. A failure also tells the
concurrency controller what kind of signal it was.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

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
from qarun_workers.answered_marks import AnsweredMarks
from qarun_workers.call_gate import CallGate
from qarun_workers.concurrency import AdaptiveLimit
from qarun_workers.kafka_io import DeliveryCallbacks, dead_letter
from qarun_workers.llm_client import Completion, Failure
from qarun_workers.retry import give_up, retry_delay
from qarun_workers.settings import Settings
from qarun_workers.worker_metrics import WorkerMetrics

log = logging.getLogger(__name__)

OnDelivery = Callable[[KafkaError | None, Message], None]


class Counters:
    def __init__(self) -> None:
        self.answered = 0
        self.retried = 0
        self.dead = 0
        self.tokens = 0


class CallOutcomes:
    def __init__(
        self,
        settings: Settings,
        producer: Producer,
        *,
        delivery: DeliveryCallbacks,
        limit: AdaptiveLimit,
        gate: CallGate,
        marks: AnsweredMarks | None,
        metrics: WorkerMetrics,
    ) -> None:
        self.s = settings
        self.topics = settings.topics
        self.producer = producer
        self.delivery = delivery
        self.limit = limit
        self.gate = gate
        self.marks = marks
        self.metrics = metrics
        self.counters = Counters()
        self.rng = random.Random()

    def poison(self, msg: Message, error: PoisonMessageError) -> None:
        self.counters.dead += 1
        self.metrics.dead_letters.inc()
        dead_letter(self.producer, self.topics.dlq, msg, error, self.delivery.on_done(msg))

    def answered(self, msg: Message, question: Question, completion: Completion) -> None:
        answer = Answer.for_question(
            question,
            answer=completion.text,
            model=completion.model,
            latency_ms=round(completion.latency_ms, 1),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost_usd=self.gate.cost(completion.prompt_tokens, completion.completion_tokens),
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
            on_delivery=self._answer_acked(msg, question),
        )

    def _answer_acked(self, msg: Message, question: Question) -> OnDelivery:
        stored = self.delivery.on_done(msg)
        marks = self.marks
        if marks is None:
            return stored

        def callback(error: KafkaError | None, answer: Message) -> None:
            if error is None:
                marks.mark(question)
            stored(error, answer)

        return callback

    def failed(self, msg: Message, question: Question, failure: Failure) -> None:
        if failure.paced:
            self.limit.rate_limited()  # paced by rate, fleet-wide (CallGate.paced)
        elif failure.error == ErrorClass.OVERLOAD:
            # Only overload may say we send too much (the controller tells whether it
            # does); a quota refusal comes at any rate, and cutting for it would leave
            # the limit at its minimum when the quota returns.
            self.limit.overload(failure.latency_s)
        verdict = give_up(question, failure.error, failure.reason, self.s.retry)
        if verdict is not None:
            self.dead(msg, question, *verdict)
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

    def dead(self, msg: Message, question: Question, reason: DeadLetterReason, detail: str) -> None:
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
