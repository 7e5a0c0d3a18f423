"""The QARun API: ask a question, follow it, read a run's results and summary.

POST /query                 200 with the cached answer on a hit; 202 with an id on a
                            miss (the question is published to the run's pipeline)
GET  /status/{question_id}  completed (with the result) or pending
GET  /runs/{run}/results    paged results
GET  /runs/{run}/summary    qarun_core.summary.RunSummary: progress, score, attempts,
                            per-attempt figures, usage, latency, lag, generator state
GET  /metrics               Prometheus;  /healthz, /readyz;  /docs, /openapi.json
GET  /dashboard             the dashboard page (?run=NAME; / redirects here): static, it
                            reads the JSON above from this same origin
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

import uvicorn
from confluent_kafka import Producer
from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from qarun_core.messages import RUN_PATTERN, Question
from qarun_core.summary import RunSummary
from qarun_core.topics import RunTopics
from qarun_workers import logs
from qarun_workers.cache import answer_key, text_hash, text_key
from qarun_workers.kafka_io import producer_config
from qarun_workers.settings import Settings
from qarun_workers.summary_reader import read_summary

log = logging.getLogger(__name__)

QUERIES = Counter("qarun_api_queries_total", "POST /query by outcome", ["outcome"])


class Query_(BaseModel):  # noqa: N801 - "Query" is FastAPI's parameter marker
    title: str = Field(min_length=1, max_length=2000)
    content: str = Field(default="", max_length=20000)
    best_answer: str = Field(default="", max_length=20000, description="reference, if any")
    run: str | None = Field(default=None, pattern=RUN_PATTERN)


class State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        storage = settings.storage
        self.pool = AsyncConnectionPool(
            storage.postgres_dsn.get_secret_value(), min_size=1, max_size=4, open=False
        )
        self.redis = Redis.from_url(storage.redis_url.get_secret_value())
        self.producer = Producer(producer_config(settings))


def create_app(settings: Settings) -> FastAPI:
    state = State(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await state.pool.open(wait=False)
        yield
        await state.pool.close()
        await state.redis.aclose()
        state.producer.flush(10)

    app = FastAPI(title="QARun API", version="1", lifespan=lifespan)

    @app.post("/query", status_code=202)
    async def query(body: Query_, response: Response) -> dict[str, Any]:
        run = body.run or settings.run
        cached = await state.redis.get(text_key(run, body.title, body.content))
        if cached is not None:
            QUERIES.labels("hit").inc()
            response.status_code = 200
            return {"status": "found", "source": "cache", "result": json.loads(cached)}
        QUERIES.labels("miss").inc()
        question = Question(
            run=run,
            question_id=f"api-{text_hash(body.title, body.content)}",
            title=body.title,
            content=body.content,
            best_answer=body.best_answer,
        )
        await publish(state.producer, RunTopics(run).questions, question)
        return {"status": "pending", "question_id": question.question_id, "run": run}

    @app.get("/status/{question_id}")
    async def status(question_id: str, run: str | None = None) -> dict[str, Any]:
        run = run or settings.run
        cached = await state.redis.get(answer_key(run, question_id))
        if cached is not None:
            return {"status": "completed", "source": "cache", "result": json.loads(cached)}
        rows = await fetch(state.pool, RESULT_SQL + " AND question_id = %s", (run, question_id))
        if rows:
            return {"status": "completed", "source": "database", "result": rows[0]}
        return {"status": "pending", "question_id": question_id}

    @app.get("/runs/{run}/results")
    async def results(
        run: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        rows = await fetch(
            state.pool,
            RESULT_SQL + " ORDER BY question_id LIMIT %s OFFSET %s",
            (run, limit, offset),
        )
        return {"run": run, "limit": limit, "offset": offset, "results": rows}

    @app.get("/runs/{run}/summary", response_model=RunSummary)
    async def summary(run: Annotated[str, Path(pattern=RUN_PATTERN)]) -> RunSummary:
        return await read_summary(state.pool, state.redis, settings.kafka, run)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    page = dashboard_page(settings.run)

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        query = request.url.query
        return RedirectResponse("/dashboard" + (f"?{query}" if query else ""))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            await state.redis.ping()
            await fetch(state.pool, "SELECT 1 AS ok", ())
        except Exception as error:  # any dependency failure means not ready
            return JSONResponse({"status": "unready", "reason": type(error).__name__}, 503)
        return JSONResponse({"status": "ready"})

    return app


def dashboard_page(run: str) -> str:
    """The page, showing this API's own run unless the URL names another (?run=NAME)."""
    html = (resources.files("qarun_workers") / "dashboard" / "index.html").read_text()
    return html.replace("<body>", f'<body data-run="{run}">', 1)  # RUN_PATTERN: no quotes


RESULT_SQL = """
SELECT question_id, status, title, content, answer, score, best_attempt, attempts, failure,
       prompt_tokens, completion_tokens, cost_usd, finished_at
FROM results WHERE run = %s"""


async def fetch(pool: AsyncConnectionPool, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), args)
        return await cur.fetchall()


async def publish(producer: Producer, topic: str, question: Question) -> None:
    producer.produce(topic, question.to_bytes(), question.key())
    if await asyncio.to_thread(producer.flush, 10) > 0:
        raise HTTPException(503, "the pipeline did not accept the question")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qarun-api", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    settings = Settings()
    logs.setup(settings.log_level, secrets=settings.secrets())
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
