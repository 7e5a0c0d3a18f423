"""Migrations and idempotent upserts on the real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from qarun_core.messages import Answer, DeadLetter, DeadLetterReason, Question
from qarun_devstack.postgres import Postgres
from qarun_workers.storage import migrate, migrations, write_batch

from .conftest import unique_run


def results(conn: psycopg.Connection, run: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT question_id, status, score, answer FROM results WHERE run = %s ORDER BY 1", (run,)
    ).fetchall()


def test_migrations_apply_once(postgres: Postgres) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        migrate(conn)
        assert migrate(conn) == []
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _, _ in migrations()]


def test_upsert_keeps_the_best_answer_and_never_doubles(postgres: Postgres) -> None:
    run = unique_run()
    q = Question(run=run, question_id="q1", title="t", best_answer="ref")
    low = Answer.for_question(q, answer="low", model="m", latency_ms=1)
    high = Answer.for_question(q, answer="high", model="m", latency_ms=1)
    r_low = low.result(low.scored(0.4), exhausted=True, scorer="s")
    r_high = high.result(high.scored(0.9), exhausted=False, scorer="s")
    failed_q = Question(run=run, question_id="q2", title="t2")
    letter = DeadLetter.of(
        run=run,
        reason=DeadLetterReason.RETRIES_EXHAUSTED,
        detail="503",
        payload=failed_q.to_bytes(),
        key=b"q2",
        topic="x",
        offset=1,
    )
    with psycopg.connect(postgres.dsn) as conn:
        migrate(conn)
        write_batch(conn, [r_low, r_low], [letter, letter])
        assert results(conn, run) == [("q1", "exhausted", 0.4, "low"), ("q2", "failed", None, None)]
        write_batch(conn, [r_high, r_low], [])
        assert results(conn, run)[0] == ("q1", "validated", 0.9, "high")
        later = Answer.for_question(failed_q, answer="late", model="m", latency_ms=1)
        write_batch(conn, [later.result(later.scored(0.8), exhausted=False, scorer="s")], [letter])
        assert results(conn, run)[1] == ("q2", "validated", 0.8, "late")
        # The same question dead-lettered again from elsewhere (re-asked after a crash):
        # still one letter, the latest; unreadable messages without a key stay apart.
        later_on = letter.created_at + timedelta(seconds=1)
        again = letter.model_copy(
            update={"source_offset": 9, "detail": "503 again", "created_at": later_on}
        )
        unkeyed = [
            DeadLetter.of(
                run=run,
                reason=DeadLetterReason.BAD_JSON,
                detail="cut",
                payload=b"{",
                key=None,
                topic="x",
                offset=o,
            )
            for o in (3, 3, 4)
        ]
        write_batch(conn, [], [again, *unkeyed])
        rows = conn.execute(
            "SELECT question_id, source_offset, detail FROM dead_letters WHERE run = %s"
            " ORDER BY source_offset",
            (run,),
        ).fetchall()
    assert rows == [("", 3, "cut"), ("", 4, "cut"), ("q2", 9, "503 again")]
