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

Parameters are bounded (qarun_workers.api_schema); a run that has neither topics nor
stored results is a 404 naming it; every call to Kafka, PostgreSQL and Redis has a
timeout, and one that is not answered in time is a 503 saying which, never a hang.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import psycopg
import uvicorn
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis
from redis.exceptions import RedisError

from qarun_core.messages import Question
from qarun_core.summary import RunSummary
from qarun_core.topics import RunTopics
from qarun_workers import logs
from qarun_workers.api_schema import (
    METRICS_RESPONSE,
    Health,
    Limit,
    Offset,
    QueryBody,
    QueryFound,
    QueryPending,
    QuestionIdPath,
    ResultsPage,
    RunPath,
    RunQuery,
    StatusCompleted,
    StatusPending,
    problems,
)
from qarun_workers.cache import answer_key, text_hash, text_key
from qarun_workers.kafka_io import producer_config
from qarun_workers.settings import Settings
from qarun_workers.summary_reader import read_summary

log = logging.getLogger(__name__)

QUERIES = Counter("qarun_api_queries_total", "POST /query by outcome", ["outcome"])

DEPENDENCY_TIMEOUT_SECONDS = 5.0  # each call to Kafka, PostgreSQL or Redis
KNOWN_RUN_SECONDS = 60.0  # how long a run seen to exist is not asked about again


class UnavailableError(Exception):
    """A dependency did not answer in time: the request is answered 503."""


class State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        storage = settings.storage
        timeout = DEPENDENCY_TIMEOUT_SECONDS
        self.pool = AsyncConnectionPool(
            storage.postgres_dsn.get_secret_value(),
            min_size=1,
            max_size=4,
            open=False,
            timeout=timeout,
            kwargs={
                "connect_timeout": int(timeout),
                "options": f"-c statement_timeout={int(timeout * 1000)}",
            },
        )
        self.redis = Redis.from_url(
            storage.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.producer = Producer(
            producer_config(settings, **{"message.timeout.ms": int(timeout * 1000)})
        )
        self.known_runs: dict[str, float] = {}  # run -> when it was last seen to exist

    async def require_run(self, run: str) -> None:
        """404 unless the run has its questions topic or stored results."""
        seen = self.known_runs.get(run)
        if seen is not None and time.monotonic() - seen < KNOWN_RUN_SECONDS:
            return
        if await self._has_topic(RunTopics(run).questions) or await self._has_results(run):
            self.known_runs[run] = time.monotonic()
            return
        raise HTTPException(
            404, f"run {run!r} not found: it has no Kafka topics and no stored results"
        )

    async def _has_topic(self, topic: str) -> bool:
        def lookup() -> bool:
            meta = self.producer.list_topics(topic, timeout=DEPENDENCY_TIMEOUT_SECONDS)
            found = meta.topics.get(topic)
            return found is not None and found.error is None

        try:
            return await asyncio.to_thread(lookup)
        except KafkaException as error:
            raise UnavailableError(f"Kafka: {error}") from None

    async def _has_results(self, run: str) -> bool:
        return bool(await fetch(self.pool, "SELECT 1 FROM results WHERE run = %s LIMIT 1", (run,)))


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
    app.add_exception_handler(UnavailableError, unavailable)
    for error in (psycopg.OperationalError, PoolTimeout, RedisError, TimeoutError):
        app.add_exception_handler(error, unavailable)

    @app.post(
        "/query",
        status_code=202,
        response_model=QueryPending | QueryFound,
        responses=problems(400, 404, 503)
        | {200: {"model": QueryFound, "description": "answered from the cache"}},
    )
    async def query(body: QueryBody, response: Response) -> QueryPending | QueryFound:
        run = body.run or settings.run
        cached = await state.redis.get(text_key(run, body.title, body.content))
        if cached is not None:
            QUERIES.labels("hit").inc()
            response.status_code = 200
            return QueryFound.model_validate({"result": json.loads(cached)})
        await state.require_run(run)
        QUERIES.labels("miss").inc()
        question = Question(
            run=run,
            question_id=f"api-{text_hash(body.title, body.content)}",
            title=body.title,
            content=body.content,
            best_answer=body.best_answer,
        )
        await publish(state.producer, RunTopics(run).questions, question)
        return QueryPending(question_id=question.question_id, run=run)

    @app.get(
        "/status/{question_id}",
        response_model=StatusCompleted | StatusPending,
        responses=problems(404, 503),
    )
    async def status(
        question_id: QuestionIdPath, run: RunQuery = None
    ) -> StatusCompleted | StatusPending:
        run = run or settings.run
        cached = await state.redis.get(answer_key(run, question_id))
        if cached is not None:
            return StatusCompleted.model_validate({"source": "cache", "result": json.loads(cached)})
        rows = await fetch(state.pool, RESULT_SQL + " AND question_id = %s", (run, question_id))
        if rows:
            return StatusCompleted.model_validate({"source": "database", "result": rows[0]})
        await state.require_run(run)
        return StatusPending(question_id=question_id)

    @app.get("/runs/{run}/results", response_model=ResultsPage, responses=problems(404, 503))
    async def results(run: RunPath, limit: Limit = 100, offset: Offset = 0) -> ResultsPage:
        rows = await fetch(
            state.pool,
            RESULT_SQL + " ORDER BY question_id LIMIT %s OFFSET %s",
            (run, limit, offset),
        )
        if not rows:
            await state.require_run(run)
        return ResultsPage.model_validate(
            {"run": run, "limit": limit, "offset": offset, "results": rows}
        )

    @app.get("/runs/{run}/summary", response_model=RunSummary, responses=problems(503))
    async def summary(run: RunPath) -> RunSummary:
        return await read_summary(state.pool, state.redis, settings.kafka, run)

    @app.get("/metrics", response_class=Response, responses=METRICS_RESPONSE)
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

    @app.get("/healthz", response_model=Health, response_model_exclude_none=True)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": Health, "description": "a dependency is not reachable"}},
    )
    async def readyz() -> JSONResponse:
        try:
            await state.redis.ping()
            await fetch(state.pool, "SELECT 1 AS ok", ())
        except Exception as error:  # any dependency failure means not ready
            return JSONResponse({"status": "unready", "reason": type(error).__name__}, 503)
        return JSONResponse({"status": "ready"})

    return app


async def unavailable(_request: Request, error: Exception) -> JSONResponse:
    log.warning("answering 503: %s: %s", type(error).__name__, error)
    return JSONResponse({"detail": f"a dependency did not answer: {error}"}, 503)


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
    """Produce and wait for this message's acknowledgement (message.timeout.ms bounds it)."""
    loop = asyncio.get_running_loop()
    acked: asyncio.Future[KafkaError | None] = loop.create_future()

    def delivered(error: KafkaError | None, _msg: Message) -> None:
        loop.call_soon_threadsafe(settle, error)

    def settle(error: KafkaError | None) -> None:
        if not acked.done():
            acked.set_result(error)

    try:
        producer.produce(topic, question.to_bytes(), question.key(), on_delivery=delivered)
    except (KafkaException, BufferError) as error:
        raise UnavailableError(f"Kafka refused the question: {error}") from None
    while not acked.done():  # delivery callbacks are served by poll
        await asyncio.to_thread(producer.poll, 0.05)
    failure = acked.result()
    if failure is not None:
        raise UnavailableError(f"the pipeline did not accept the question: {failure.str()}")


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
