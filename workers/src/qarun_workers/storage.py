"""PostgreSQL schema and writes: versioned migrations and idempotent batched upserts.

Results are upserted on (run, question_id): a replayed or duplicated message changes
nothing, a higher score replaces a lower one, and a failure never replaces an answer.
Attempts are inserted once by their natural key; dead letters are kept one per
question (`qarun_core.messages.letter_identity`), the latest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources

from psycopg import Connection

from qarun_core.messages import DeadLetter, DeadLetterReason, Question, Result

MIGRATION_LOCK = 7_242_000_001  # pg_advisory_xact_lock key: one migrator at a time
FAILED_REASONS = (DeadLetterReason.PERMANENT_ERROR, DeadLetterReason.RETRIES_EXHAUSTED)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped in the package, in order."""
    found = []
    for item in (resources.files("qarun_workers") / "migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", item.name)
        if match:
            found.append((int(match[1]), match[2], item.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: Connection) -> list[int]:
    """Apply the migrations not applied yet, each in the same transaction as its record."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            conn.execute(sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied.append(version)
    return applied


UPSERT_RESULT = """
INSERT INTO results (run, question_id, status, title, content, reference_answer, dataset_row,
    answer, score, best_attempt, attempts, scorer, prompt_tokens, completion_tokens, cost_usd,
    first_sent_at, finished_at)
VALUES (%(run)s, %(question_id)s, %(status)s, %(title)s, %(content)s, %(reference)s, %(row)s,
    %(answer)s, %(score)s, %(best_attempt)s, %(attempts)s, %(scorer)s, %(prompt_tokens)s,
    %(completion_tokens)s, %(cost_usd)s, %(first_sent_at)s, %(finished_at)s)
ON CONFLICT (run, question_id) DO UPDATE SET
    status = EXCLUDED.status, answer = EXCLUDED.answer, score = EXCLUDED.score,
    best_attempt = EXCLUDED.best_attempt, attempts = EXCLUDED.attempts,
    scorer = EXCLUDED.scorer, failure = NULL, prompt_tokens = EXCLUDED.prompt_tokens,
    completion_tokens = EXCLUDED.completion_tokens, cost_usd = EXCLUDED.cost_usd,
    finished_at = EXCLUDED.finished_at, stored_at = now()
WHERE results.status = 'failed' OR EXCLUDED.score > results.score
"""

INSERT_ATTEMPT = """
INSERT INTO attempts (run, question_id, attempt, answer, score, feedback, model, latency_ms,
    prompt_tokens, completion_tokens, cost_usd, retries, answered_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (run, question_id, attempt) DO NOTHING
"""

INSERT_FAILED = """
INSERT INTO results (run, question_id, status, title, content, reference_answer, dataset_row,
    attempts, failure, first_sent_at, finished_at)
VALUES (%s, %s, 'failed', %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (run, question_id) DO NOTHING
"""

INSERT_DEAD = """
INSERT INTO dead_letters (run, source_topic, source_partition, source_offset, question_id,
    attempt, reason, detail, original, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
UPSERT_QUESTION_DEAD = (
    INSERT_DEAD
    + """ON CONFLICT (run, question_id) WHERE question_id <> '' DO UPDATE SET
    source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition,
    source_offset = EXCLUDED.source_offset, attempt = EXCLUDED.attempt,
    reason = EXCLUDED.reason, detail = EXCLUDED.detail, original = EXCLUDED.original,
    created_at = EXCLUDED.created_at
WHERE EXCLUDED.created_at > dead_letters.created_at
"""
)
INSERT_MESSAGE_DEAD = (
    INSERT_DEAD
    + """ON CONFLICT (run, source_topic, source_partition, source_offset)
    WHERE question_id = '' DO NOTHING
"""
)


def result_row(result: Result) -> dict[str, object]:
    return {
        "run": result.run,
        "question_id": result.question_id,
        "status": "exhausted" if result.exhausted else "validated",
        "title": result.title,
        "content": result.content,
        "reference": result.best_answer,
        "row": result.row,
        "answer": result.answer,
        "score": result.score,
        "best_attempt": result.best_attempt,
        "attempts": len(result.attempts) or result.attempt,
        "scorer": result.scorer,
        "prompt_tokens": sum(a.prompt_tokens for a in result.attempts),
        "completion_tokens": sum(a.completion_tokens for a in result.attempts),
        "cost_usd": sum(a.cost_usd for a in result.attempts),
        "first_sent_at": result.first_sent_at,
        "finished_at": result.created_at,
    }


def attempt_rows(result: Result) -> list[tuple[object, ...]]:
    return [
        (
            result.run,
            result.question_id,
            a.attempt,
            a.answer,
            a.score,
            a.feedback,
            a.model,
            a.latency_ms,
            a.prompt_tokens,
            a.completion_tokens,
            a.cost_usd,
            a.retries,
            a.answered_at,
        )
        for a in result.attempts
    ]


def failed_row(letter: DeadLetter) -> tuple[object, ...] | None:
    """A 'failed' results row for a question the LLM worker gave up on, else None."""
    if letter.reason not in FAILED_REASONS or not letter.question_id:
        return None
    try:
        question = Question.model_validate_json(letter.original)
    except ValueError:
        return None
    return (
        letter.run,
        letter.question_id,
        question.title,
        question.content,
        question.best_answer,
        question.row,
        question.attempt,
        f"{letter.reason}: {letter.detail}",
        question.first_sent_at,
        letter.created_at,
    )


def dead_row(letter: DeadLetter) -> tuple[object, ...]:
    return (
        letter.run,
        letter.source_topic,
        letter.source_partition,
        letter.source_offset,
        letter.question_id,
        letter.attempt,
        letter.reason.value,
        letter.detail,
        letter.original.replace("\x00", ""),
        letter.created_at,
    )


def write_batch(conn: Connection, results: Sequence[Result], letters: Sequence[DeadLetter]) -> None:
    """One transaction for the whole batch; the caller commits Kafka offsets after it."""
    with conn.transaction(), conn.cursor() as cur:
        if results:
            cur.executemany(UPSERT_RESULT, [result_row(r) for r in results])
            cur.executemany(INSERT_ATTEMPT, [row for r in results for row in attempt_rows(r)])
        by_question = [dead_row(d) for d in letters if d.question_id]
        if by_question:
            cur.executemany(UPSERT_QUESTION_DEAD, by_question)
        by_message = [dead_row(d) for d in letters if not d.question_id]
        if by_message:
            cur.executemany(INSERT_MESSAGE_DEAD, by_message)
        if letters:
            failed = [row for d in letters if (row := failed_row(d)) is not None]
            if failed:
                cur.executemany(INSERT_FAILED, failed)
