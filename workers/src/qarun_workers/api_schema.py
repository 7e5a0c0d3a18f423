"""What the QARun API accepts and answers, as pydantic models: its OpenAPI document.

Every parameter is bounded here, so that input the pipeline cannot take is refused
with a 422 naming the field before anything is asked of Kafka, PostgreSQL or Redis:
PostgreSQL's text cannot hold a NUL character (a stored result with one would stop
the storage writer), its OFFSET is a bigint, and a run's name is a topic name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field

from qarun_core.messages import RUN_PATTERN

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
QUESTION_ID_PATTERN = r"^[^\x00]+$"
MAX_OFFSET = 2**31 - 1  # far beyond any run's size, far below PostgreSQL's bigint OFFSET

RunPath = Annotated[str, Path(pattern=RUN_PATTERN, description="the run's name")]
RunQuery = Annotated[
    str | None,
    Query(pattern=RUN_PATTERN, description="the run's name (default: this API's own run)"),
]
QuestionIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=QUESTION_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=1000, description="results per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="results to skip")]


class QueryBody(BaseModel):
    title: str = Field(min_length=1, max_length=2000, pattern=NO_NUL)
    content: str = Field(default="", max_length=20000, pattern=NO_NUL)
    best_answer: str = Field(
        default="", max_length=20000, pattern=NO_NUL, description="reference, if any"
    )
    run: str | None = Field(default=None, pattern=RUN_PATTERN)


class CachedAnswer(BaseModel):
    """The final answer as the storage writer cached it in Redis."""

    run: str
    question_id: str
    title: str
    answer: str | None = None
    score: float | None = None
    exhausted: bool = False
    attempts: int = 0


class ResultRow(BaseModel):
    """One question's row of the results table."""

    question_id: str
    status: Literal["validated", "exhausted", "failed"]
    title: str
    content: str
    answer: str | None
    score: float | None
    best_attempt: int | None
    attempts: int
    failure: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    finished_at: datetime


class QueryFound(BaseModel):
    status: Literal["found"] = "found"
    source: Literal["cache"] = "cache"
    result: CachedAnswer


class QueryPending(BaseModel):
    status: Literal["pending"] = "pending"
    question_id: str
    run: str


class StatusCompleted(BaseModel):
    status: Literal["completed"] = "completed"
    source: Literal["cache", "database"]
    result: CachedAnswer | ResultRow


class StatusPending(BaseModel):
    status: Literal["pending"] = "pending"
    question_id: str


class ResultsPage(BaseModel):
    run: str
    limit: int
    offset: int
    results: list[ResultRow]


class Health(BaseModel):
    status: Literal["ok", "ready", "unready"]
    reason: str | None = None


class Problem(BaseModel):
    """An error: what was wrong, in words."""

    detail: str


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers an endpoint can give."""
    what = {
        400: "the body is not JSON",
        404: "no such run (its name is in the detail)",
        503: "Kafka, PostgreSQL or Redis did not answer in time",
    }
    return {code: {"model": Problem, "description": what[code]} for code in codes}


PROMETHEUS_TEXT = "text/plain"
METRICS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
    }
}
