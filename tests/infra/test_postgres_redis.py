"""psycopg and Redis round trips against the real servers."""

from __future__ import annotations

import psycopg
import redis as redis_client

from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis


def test_postgres_idempotent_upsert(postgres: Postgres) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute(
            "CREATE TABLE smoke_results (run text, question_id text, score real,"
            " PRIMARY KEY (run, question_id))"
        )
        upsert = (
            "INSERT INTO smoke_results VALUES (%s, %s, %s) ON CONFLICT (run, question_id)"
            " DO UPDATE SET score = GREATEST(smoke_results.score, EXCLUDED.score)"
        )
        rows = [("r", f"q{n}", n / 100) for n in range(100)]
        with conn.cursor() as cur:
            cur.executemany(upsert, rows)
            cur.executemany(upsert, [("r", "q1", 0.9), ("r", "q2", 0.0)])
        count, best = conn.execute(
            "SELECT count(*), max(score) FILTER (WHERE question_id = 'q1') FROM smoke_results"
        ).fetchone() or (0, 0)
        low = conn.execute("SELECT score FROM smoke_results WHERE question_id = 'q2'").fetchone()
    assert count == 100
    assert abs(best - 0.9) < 1e-6
    assert low is not None and abs(low[0] - 0.02) < 1e-6


def test_redis_cache_with_ttl(redis: Redis) -> None:
    client = redis_client.Redis.from_url(redis.url)
    client.set("qarun:smoke:answer", "42", ex=3600)
    assert client.get("qarun:smoke:answer") == b"42"
    assert 0 < client.ttl("qarun:smoke:answer") <= 3600
    assert client.incrby("qarun:smoke:count", 5) == 5
    assert client.incrby("qarun:smoke:count", 5) == 10
