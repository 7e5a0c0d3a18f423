"""Message models and topic names: pure, no infrastructure."""

from __future__ import annotations

import json

import pytest

from qarun_core.messages import (
    Answer,
    DeadLetter,
    DeadLetterReason,
    ErrorClass,
    PoisonMessageError,
    Question,
    Result,
    RetryHeaders,
)
from qarun_core.topics import DEFAULT_TIERS, RetryTier, RunTopics, run_of, tier_for, tiers_from


def question(**extra: object) -> Question:
    fields: dict[str, object] = {
        "run": "demo",
        "question_id": "q1",
        "title": "Why is the sky blue?",
        "best_answer": "Rayleigh scattering",
    }
    return Question.model_validate(fields | extra)


def answer(q: Question, text: str = "scattering") -> Answer:
    return Answer.for_question(q, answer=text, model="m", latency_ms=12.5, prompt_tokens=10)


def test_question_round_trips_and_is_keyed_by_id() -> None:
    q = question(row=7)
    assert Question.from_bytes(q.to_bytes()) == q
    assert q.key() == b"q1"
    assert json.loads(q.to_bytes())["schema_version"] == 1


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b"{not json", DeadLetterReason.BAD_JSON, ""),
        (b"", DeadLetterReason.BAD_JSON, ""),
        (b"[1, 2]", DeadLetterReason.BAD_JSON, ""),
        (
            b'{"schema_version": 9, "run": "demo", "question_id": "x", "title": "t"}',
            DeadLetterReason.BAD_SCHEMA_VERSION,
            "schema_version",
        ),
        (
            b'{"schema_version": 1, "run": "demo", "question_id": "x"}',
            DeadLetterReason.BAD_SCHEMA,
            "title",
        ),
        (
            b'{"schema_version": 1, "run": "Bad Run", "question_id": "x", "title": "t"}',
            DeadLetterReason.BAD_SCHEMA,
            "run",
        ),
    ],
)
def test_poison_payloads_are_classified(payload: bytes, reason: str, field: str) -> None:
    with pytest.raises(PoisonMessageError) as caught:
        Question.from_bytes(payload)
    assert caught.value.reason == reason
    assert caught.value.detail.startswith(field)


def test_an_answer_is_not_a_question() -> None:
    with pytest.raises(PoisonMessageError) as caught:
        Question.from_bytes(answer(question()).to_bytes())
    assert caught.value.reason == DeadLetterReason.BAD_SCHEMA
    assert "kind" in caught.value.detail


def test_regeneration_carries_history_and_result_keeps_best() -> None:
    q = question()
    first = answer(q, "good")
    scored1 = first.scored(0.7, feedback="too short")
    q2 = first.regenerate(scored1)
    assert (q2.attempt, q2.retries, q2.feedback) == (2, 0, "too short")
    assert q2.history == (scored1,)
    assert q2.best == scored1
    second = answer(q2.retried(), "worse")
    assert second.retries == 1
    result = second.result(second.scored(0.5), exhausted=True, scorer="lexical")
    assert isinstance(result, Result)
    assert (result.answer, result.score, result.best_attempt) == ("good", 0.7, 1)
    assert [a.attempt for a in result.attempts] == [1, 2]
    assert result.exhausted
    assert Result.from_bytes(result.to_bytes()) == result


def test_dead_letter_keeps_payload_and_source() -> None:
    dead = DeadLetter.of(
        run="demo",
        reason=DeadLetterReason.BAD_JSON,
        detail="x",
        payload=b"\xff" * 70_000,
        key=b"q9",
        topic="qarun.demo.questions",
        partition=2,
        offset=41,
    )
    back = DeadLetter.from_bytes(dead.to_bytes())
    assert back.question_id == "q9"
    assert back.original_truncated
    assert len(back.original) == 64 * 1024
    assert (back.source_partition, back.source_offset) == (2, 41)


def test_retry_headers_round_trip_and_default_to_due_now() -> None:
    headers = RetryHeaders(due_ms=123, error=ErrorClass.QUOTA, reason="429 quota")
    assert RetryHeaders.from_headers(headers.to_headers()) == headers
    assert RetryHeaders.from_headers(None).due_ms == 0
    assert RetryHeaders.from_headers([("qarun-due-ms", b"soon")]).due_ms == 0


def test_topic_names_and_tiers() -> None:
    topics = RunTopics("demo")
    assert topics.questions == "qarun.demo.questions"
    assert topics.retries == [
        "qarun.demo.retry-2s",
        "qarun.demo.retry-10s",
        "qarun.demo.retry-1m",
        "qarun.demo.retry-5m",
    ]
    assert run_of(topics.dlq) == "demo"
    assert tier_for(0.5) == RetryTier(2)
    assert tier_for(11) == RetryTier(60)
    assert tier_for(3600) == RetryTier(300)
    assert tiers_from(["1m", "2s", 10, "10s"]) == DEFAULT_TIERS[:3]
    with pytest.raises(ValueError, match="delay"):
        tiers_from(["soon"])
