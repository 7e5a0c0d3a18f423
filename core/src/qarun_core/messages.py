"""The messages that flow through a run's Kafka topics.

Every message is a frozen pydantic model serialized as compact JSON by pydantic's own
Rust encoder/decoder. Measured on 2 cores for an Answer (1.4 kB): decode+validate
264k/s from JSON against 205k/s for orjson+validate and 179k/s for msgpack+validate;
msgpack is only 4-6 % smaller. JSON also stays readable by any consumer, the Flink
job and a human with kafka-console-consumer alike. Every message carries `schema_version`, `kind`,
`run`, `question_id`, `attempt` and `created_at`, and is keyed by `question_id` so
that all attempts of one question stay on one partition. No message ever holds a secret.

Topics and what travels on them (see `qarun_core.topics`):

    questions   Question      generator, retry consumer, scoring (regeneration) -> llm worker
    retry-<t>   Question      llm worker -> retry consumer; due time in `RetryHeaders`
    answers     Answer        llm worker -> scoring
    results     Result        scoring -> storage writer
    dlq         DeadLetter    anyone who meets a message it cannot process

Two counters: `attempt` counts generations (1, then +1 for every regeneration the
scorer asks for); `retries` counts failed LLM calls within the current attempt.
A Question carries the scored history of its earlier attempts, so the best answer so
far travels with it to the LLM worker's regeneration prompt. The scoring job still keeps
a small keyed state per question (last scored attempt, best attempt, closed or not:
qarun_flink.routing.KeyState): it drops a replayed answer after a restore and keeps the
best attempt when a worker lost the history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION: Literal[1] = 1
MAX_DEAD_LETTER_PAYLOAD = 64 * 1024

RUN_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def utcnow() -> datetime:
    return datetime.now(UTC)


class ErrorClass(StrEnum):
    """How a failed LLM call is handled: each class has its own retry path."""

    OVERLOAD = "overload"  # 429 rate limit, 5xx, timeout: exponential back-off + jitter
    QUOTA = "quota"  # 429 insufficient_quota / daily limit: long deferred retry
    PERMANENT = "permanent"  # 400/401/403/404, content policy: dead letter


class DeadLetterReason(StrEnum):
    BAD_JSON = "bad_json"
    BAD_SCHEMA_VERSION = "bad_schema_version"
    BAD_SCHEMA = "bad_schema"
    PERMANENT_ERROR = "permanent_error"
    RETRIES_EXHAUSTED = "retries_exhausted"


class PoisonMessageError(ValueError):
    """A payload that can never be processed; it belongs in the dead-letter topic."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Message(BaseModel):
    """Fields every message carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    run: str = Field(pattern=RUN_PATTERN)
    question_id: str = Field(min_length=1, max_length=128)
    attempt: int = Field(default=1, ge=1)
    created_at: AwareDatetime = Field(default_factory=utcnow)

    def key(self) -> bytes:
        """The Kafka key: the question id, so one question stays on one partition."""
        return self.question_id.encode()

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Self:
        """Parse and validate; a payload that can never be valid raises PoisonMessageError."""
        if not data:
            raise PoisonMessageError(DeadLetterReason.BAD_JSON, "empty payload")
        try:
            return cls.model_validate_json(data)
        except ValidationError as error:
            raise poison_from(error) from None


def poison_from(error: ValidationError) -> PoisonMessageError:
    """Name the first problem: its class (json / version / schema) and the field."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(payload)"
    detail = f"{where}: {first['msg']}"
    if first["type"] in ("json_invalid", "json_type", "model_type"):
        return PoisonMessageError(DeadLetterReason.BAD_JSON, detail)
    if first["loc"][:1] == ("schema_version",):
        return PoisonMessageError(DeadLetterReason.BAD_SCHEMA_VERSION, detail)
    return PoisonMessageError(DeadLetterReason.BAD_SCHEMA, detail)


class ScoredAttempt(BaseModel):
    """One generation of an answer and its score, kept for history and the attempts table."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    attempt: int = Field(ge=1)
    answer: str
    score: float
    feedback: str | None = None
    model: str = ""
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    answered_at: AwareDatetime = Field(default_factory=utcnow)


def best_of(attempts: Sequence[ScoredAttempt]) -> ScoredAttempt | None:
    """The highest-scoring attempt; on a tie the earlier one."""
    best: ScoredAttempt | None = None
    for item in attempts:
        if best is None or item.score > best.score:
            best = item
    return best


class QuestionBody(Message):
    """A question and what it has been through so far; shared by Question and Answer."""

    title: str
    content: str = ""
    best_answer: str = ""  # the data set's reference answer that the scorer compares with
    row: int | None = None  # row in the data set, when the question came from one
    retries: int = Field(default=0, ge=0)
    # Of those retries, the calls refused for quota: they wait for the provider and count
    # against retry.quota.maxWaitSeconds, not against retry.maxAttempts.
    quota_waits: int = Field(default=0, ge=0)
    history: tuple[ScoredAttempt, ...] = ()  # earlier scored attempts, oldest first
    feedback: str | None = None  # the scorer's note on the previous attempt
    first_sent_at: AwareDatetime = Field(default_factory=utcnow)

    @property
    def best(self) -> ScoredAttempt | None:
        return best_of(self.history)


class Question(QuestionBody):
    kind: Literal["question"] = "question"

    def retried(self, *, quota: bool = False) -> Question:
        """The same attempt once more, after a failed LLM call (`quota`: a quota refusal)."""
        update = {"retries": self.retries + 1, "created_at": utcnow()}
        if quota:
            update["quota_waits"] = self.quota_waits + 1
        return self.model_copy(update=update)

    @property
    def failed_calls(self) -> int:
        """Calls of this attempt that failed for other reasons than quota."""
        return self.retries - self.quota_waits


class Answer(QuestionBody):
    """An LLM answer to one attempt of a question, with what it cost."""

    kind: Literal["answer"] = "answer"
    answer: str
    model: str
    latency_ms: float = Field(ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    worker: str = ""  # the worker instance (pod or process), for tracing

    @classmethod
    def for_question(cls, question: Question, **fields: object) -> Answer:
        data = question.model_dump(exclude={"kind", "created_at"})
        return cls.model_validate({**data, **fields})

    def scored(self, score: float, feedback: str | None = None) -> ScoredAttempt:
        return ScoredAttempt(
            attempt=self.attempt,
            answer=self.answer,
            score=score,
            feedback=feedback,
            model=self.model,
            latency_ms=self.latency_ms,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost_usd=self.cost_usd,
            retries=self.retries,
            answered_at=self.created_at,
        )

    def regenerate(self, scored: ScoredAttempt) -> Question:
        """The next attempt, asked by the scorer when this answer scored too low."""
        data = self.model_dump(include=set(QuestionBody.model_fields))
        data |= {
            "attempt": self.attempt + 1,
            "retries": 0,
            "quota_waits": 0,
            "history": (*self.history, scored),
            "feedback": scored.feedback,
            "created_at": utcnow(),
        }
        return Question.model_validate(data)

    def result(self, scored: ScoredAttempt, *, exhausted: bool, scorer: str) -> Result:
        """The final result: the best of all attempts, flagged when attempts ran out."""
        attempts = (*self.history, scored)
        best = best_of(attempts)
        assert best is not None  # attempts holds at least `scored`
        return Result(
            run=self.run,
            question_id=self.question_id,
            attempt=self.attempt,
            title=self.title,
            content=self.content,
            best_answer=self.best_answer,
            row=self.row,
            answer=best.answer,
            score=best.score,
            best_attempt=best.attempt,
            exhausted=exhausted,
            scorer=scorer,
            attempts=attempts,
            first_sent_at=self.first_sent_at,
        )


class Result(Message):
    """The outcome for one question: its best answer and every scored attempt."""

    kind: Literal["result"] = "result"
    title: str
    content: str = ""
    best_answer: str = ""
    row: int | None = None
    answer: str  # the best-scoring answer
    score: float
    best_attempt: int = Field(ge=1)
    exhausted: bool = False  # no attempt reached the threshold; the best one is kept
    scorer: str = ""
    attempts: tuple[ScoredAttempt, ...] = ()
    first_sent_at: AwareDatetime = Field(default_factory=utcnow)

    @property
    def tokens(self) -> int:
        return sum(a.prompt_tokens + a.completion_tokens for a in self.attempts)


class DeadLetter(BaseModel):
    """A message that cannot be processed, with why and where it came from."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["dead_letter"] = "dead_letter"
    run: str
    question_id: str = ""  # from the Kafka key when the payload is unreadable
    attempt: int = Field(default=0, ge=0)  # 0 when unknown
    created_at: AwareDatetime = Field(default_factory=utcnow)
    reason: DeadLetterReason
    detail: str
    source_topic: str
    source_partition: int = -1
    source_offset: int = -1
    original: str  # the payload as text (invalid UTF-8 replaced), at most 64 KiB
    original_truncated: bool = False

    @classmethod
    def of(
        cls,
        *,
        run: str,
        reason: DeadLetterReason,
        detail: str,
        payload: bytes | None,
        key: bytes | None,
        topic: str,
        partition: int = -1,
        offset: int = -1,
        attempt: int = 0,
    ) -> DeadLetter:
        raw = payload or b""
        return cls(
            run=run,
            question_id=(key or b"").decode(errors="replace")[:128],
            attempt=attempt,
            reason=reason,
            detail=detail[:1000],
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            original=raw[:MAX_DEAD_LETTER_PAYLOAD].decode(errors="replace"),
            original_truncated=len(raw) > MAX_DEAD_LETTER_PAYLOAD,
        )

    def key(self) -> bytes:
        return self.question_id.encode()

    @property
    def identity(self) -> str:
        return letter_identity(
            self.question_id, self.source_topic, self.source_partition, self.source_offset
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DeadLetter:
        return cls.model_validate_json(data)


def letter_identity(question_id: str, topic: str, partition: int, offset: int) -> str:
    """What makes two dead letters the same letter: the question, for a question (a
    crash between a letter's publication and its offset's commit publishes it again,
    and a question re-asked twice fails twice); the message's position otherwise (an
    unreadable payload without a key). Whoever stores, counts or replays dead letters
    keeps one per identity, the latest."""
    if question_id:
        return f"question:{question_id}"
    return f"message:{topic}/{partition}/{offset}"


RawHeaders = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None


def text_of(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


HEADER_DUE = "qarun-due-ms"
HEADER_ERROR = "qarun-error"
HEADER_REASON = "qarun-reason"


class RetryHeaders(BaseModel):
    """Kafka headers on a Question waiting in a retry tier: when it is due, and why."""

    model_config = ConfigDict(frozen=True)

    due_ms: int  # epoch milliseconds at which the retry consumer re-publishes it
    error: ErrorClass
    reason: str = ""  # short and secret-free, such as "429 rate_limit_exceeded"

    def to_headers(self) -> list[tuple[str, str | bytes | None]]:
        return [
            (HEADER_DUE, str(self.due_ms).encode()),
            (HEADER_ERROR, self.error.value.encode()),
            (HEADER_REASON, self.reason[:200].encode()),
        ]

    @classmethod
    def from_headers(cls, headers: RawHeaders) -> RetryHeaders:
        """Read the headers; a message without a readable due time is due now."""
        items = headers.items() if isinstance(headers, Mapping) else headers or ()
        found = {name: text_of(value) for name, value in items}
        try:
            due = int(found.get(HEADER_DUE, "0"))
        except ValueError:
            due = 0
        error = found.get(HEADER_ERROR, ErrorClass.OVERLOAD.value)
        if error not in ErrorClass.__members__.values():
            error = ErrorClass.OVERLOAD.value
        return cls(due_ms=due, error=ErrorClass(error), reason=found.get(HEADER_REASON, ""))
