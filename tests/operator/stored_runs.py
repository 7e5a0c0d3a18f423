"""A run's stored state, written by a test into the real PostgreSQL and Redis, and the
summary the read model makes of it (qarun_core.summary, executed as `qarun report`
executes it): what the operator tests observe instead of a summary written by hand."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import redis as redis_client

from qarun_cli.report import summarize
from qarun_core.keys import GeneratorRecord, generator_key
from qarun_core.summary import RunSummary
from qarun_workers.storage import migrate

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class StoredRun:
    dsn: str
    redis_url: str
    run: str
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        with psycopg.connect(self.dsn) as conn:
            migrate(conn)

    def add(self, status: str, n: int, score: float = 0.8, attempts: int = 1) -> None:
        """n results of one status; each answer before the last scored 0.2 lower."""
        with psycopg.connect(self.dsn) as conn, conn.cursor() as cur:
            for _ in range(n):
                seq = next(self._ids)
                qid = f"q{seq:05d}"
                sent = START + timedelta(seconds=seq)
                failed = status == "failed"
                cur.execute(
                    "INSERT INTO results (run, question_id, status, answer, score, "
                    "attempts, prompt_tokens, completion_tokens, cost_usd, first_sent_at, "
                    "finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        self.run, qid, status, None if failed else "an answer",
                        None if failed else score, attempts, 0 if failed else 10 * attempts,
                        0 if failed else 20 * attempts, 0.0 if failed else 0.001 * attempts,
                        sent, sent + timedelta(milliseconds=500 + seq),
                    ),
                )  # fmt: skip
                if failed:
                    continue
                for attempt in range(1, attempts + 1):
                    cur.execute(
                        "INSERT INTO attempts (run, question_id, attempt, answer, "
                        "score, latency_ms, retries, answered_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            self.run, qid, attempt, "an answer",
                            score - 0.2 * (attempts - attempt), 100.0 + seq, attempt - 1, sent,
                        ),
                    )  # fmt: skip

    def generator(self, total: int, *, done: bool) -> None:
        record = GeneratorRecord(next=total, sent=total, skipped=0, done=done)
        client = redis_client.Redis.from_url(self.redis_url)
        try:
            client.hset(generator_key(self.run), mapping=record.to_redis())  # type: ignore[arg-type]
        finally:
            client.close()

    def counts(self) -> dict[str, int]:
        """The database's own counts, for the tests to compare with."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM results WHERE run = %s GROUP BY status",
                (self.run,),
            ).fetchall()
            answered = conn.execute(
                "SELECT count(*) FROM attempts WHERE run = %s", (self.run,)
            ).fetchone()
        return {
            **{str(s): int(n) for s, n in rows},
            "answered": int(answered[0] if answered else 0),
        }

    def summary(self) -> RunSummary:
        return summarize(self.dsn, self.run, self.redis_url)
