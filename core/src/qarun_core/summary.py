"""A run's summary: its one shape (`RunSummary`) and the one way it is computed.

The API serves it (GET /runs/{run}/summary, `response_model=RunSummary`), the operator
fills a QARun's status from it, and the CLI (`qarun status`, `qarun report`, the local
runner) and the dashboard show it. Whoever computes it runs `SUMMARY_SQL` with the
run's name, reads the generator's record and the budget from Redis, measures the lag
of the questions topic and hands them to `summary_of`; nothing else counts results.

Definitions, chosen once:
- Figures of scores are over final results (validated or exhausted: a failed question
  has no score). The standard deviation is the population one (divide by n): the
  summary describes the run's own results, all of them, not a sample of a larger set.
- `perAttempt[k].meanScore` is the mean score of every k-th answer scored; its
  `meanGain` is the mean of (score of answer k - score of answer k-1) over the
  questions that were regenerated a k-th time, null for the first attempt.
- Usage, latency, retries and elapsed time count every result, failed ones included:
  a failed question spent tokens and time too.
- `lag` is what the LLM workers' consumer group has yet to read of the questions topic
  (a partition it never committed counts from its earliest offset); null when Kafka
  could not be asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pydantic import Field

from qarun_core.keys import GeneratorRecord, Table
from qarun_core.spec import Progress, ScoreStats, Status, Usage


class Percentiles(Status):
    """Percentiles in milliseconds."""

    p50: float = Field(description="Median.")
    p95: float = Field(description="95th percentile.")
    p99: float = Field(description="99th percentile.")


class Latency(Status):
    """Latencies of the run."""

    llm: Percentiles | None = Field(description="One LLM call; null before any answer.")
    end_to_end: Percentiles | None = Field(
        description="First sent to result stored, per question; null before any result."
    )


class AttemptFigures(Status):
    """The scored answers of one attempt number."""

    attempt: int = Field(ge=1, description="1 = the first answer, 2 = the first regeneration.")
    scored: int = Field(ge=0, description="Answers scored at this attempt.")
    mean_score: float = Field(description="Mean score of those answers.")
    mean_gain: float | None = Field(
        description="Mean gain over the same question's previous attempt; null for attempt 1."
    )


class RunSummary(Status):
    """What GET /runs/{run}/summary returns. Every field is required: a reply of another
    shape fails to parse instead of reading as a run without progress."""

    run: str = Field(description="The run's name.")
    progress: Progress = Field(description=Progress.__doc__)
    score: ScoreStats = Field(description=ScoreStats.__doc__)
    attempts: dict[str, int] = Field(
        description="Final results (validated or exhausted) by the answers they took."
    )
    per_attempt: list[AttemptFigures] = Field(description="Scored answers by attempt number.")
    usage: Usage = Field(description=Usage.__doc__)
    latency_ms: Latency = Field(description=Latency.__doc__)
    retries: int = Field(ge=0, description="LLM calls retried (overload), over all answers.")
    dead_letters: dict[str, int] = Field(description="Dead letters by reason.")
    elapsed_seconds: float = Field(ge=0, description="First question sent to last result.")
    throughput_per_second: float | None = Field(
        description="Results per second over elapsedSeconds; null before two results."
    )
    budget_exhausted: str | None = Field(description="Why the budget ran out; null if it has not.")
    generator_done: bool = Field(description="The generator has sent everything it will send.")
    lag: int | None = Field(
        ge=0, description="Questions the LLM workers have not read yet; null if unknown."
    )


def all_results_in(summary: RunSummary) -> bool:
    """The generator is done and every question it took has a final result."""
    p = summary.progress
    return (
        summary.generator_done and p.total > 0 and p.validated + p.exhausted + p.failed >= p.total
    )


class PartitionOffsets(NamedTuple):
    earliest: int
    latest: int
    committed: int | None  # None: the group never committed on this partition


def consumer_lag(partitions: Iterable[PartitionOffsets]) -> int:
    return sum(
        max(0, p.latest - (p.earliest if p.committed is None or p.committed < 0 else p.committed))
        for p in partitions
    )


def population_stddev(count: int, total: float, squares: float) -> float | None:
    """The standard deviation the summary uses, from running sums (for streams)."""
    if count == 0:
        return None
    mean = total / count
    return math.sqrt(max(squares / count - mean * mean, 0.0))


_R = Table.RESULTS
_A = Table.ATTEMPTS
_PERCENTILES = "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY {})"

# One statement, one parameter (the run), one row of JSON columns. Only constants are
# interpolated (table names), never input.
SUMMARY_SQL = f"""
WITH r AS (SELECT * FROM {_R} WHERE run = %(run)s),
     a AS (SELECT * FROM {_A} WHERE run = %(run)s)
SELECT
  (SELECT json_build_object(
      'validated', count(*) FILTER (WHERE status = 'validated'),
      'exhausted', count(*) FILTER (WHERE status = 'exhausted'),
      'failed', count(*) FILTER (WHERE status = 'failed'),
      'regenerated', count(*) FILTER (WHERE status <> 'failed' AND attempts > 1),
      'mean', avg(score) FILTER (WHERE status <> 'failed'),
      'stddev', stddev_pop(score) FILTER (WHERE status <> 'failed'),
      'prompt_tokens', coalesce(sum(prompt_tokens), 0),
      'completion_tokens', coalesce(sum(completion_tokens), 0),
      'cost_usd', coalesce(sum(cost_usd), 0),
      'elapsed', extract(epoch FROM max(finished_at) - min(first_sent_at)),
      'end_to_end', {_PERCENTILES.format("extract(epoch FROM finished_at - first_sent_at) * 1000")}
   ) FROM r),
  (SELECT json_build_object(
      'answered', count(*),
      'retries', coalesce(sum(retries), 0),
      'llm', {_PERCENTILES.format("latency_ms")}
   ) FROM a),
  (SELECT coalesce(json_object_agg(attempts, n), '{{}}')
   FROM (SELECT attempts, count(*) AS n FROM r WHERE status <> 'failed' GROUP BY attempts) u),
  (SELECT coalesce(json_agg(json_build_object(
      'attempt', attempt, 'scored', scored, 'mean_score', mean_score, 'mean_gain', mean_gain
   ) ORDER BY attempt), '[]')
   FROM (SELECT a.attempt, count(*) AS scored, avg(a.score) AS mean_score,
                avg(a.score - p.score) AS mean_gain
         FROM a LEFT JOIN a p ON p.question_id = a.question_id AND p.attempt = a.attempt - 1
         GROUP BY a.attempt) s),
  (SELECT coalesce(json_object_agg(reason, n), '{{}}')
   FROM (SELECT reason, count(*) AS n FROM {Table.DEAD_LETTERS} WHERE run = %(run)s
         GROUP BY reason) d)
"""  # noqa: S608


def _percentiles(values: list[float | None] | None) -> Percentiles | None:
    if not values or values[0] is None:
        return None
    return Percentiles(p50=values[0], p95=values[1], p99=values[2])


def summary_of(
    run: str,
    row: tuple[Any, ...] | None,
    *,
    generator: GeneratorRecord,
    budget_exhausted: str | None,
    lag: int | None,
) -> RunSummary:
    """The summary from SUMMARY_SQL's row (None: the tables do not exist yet)."""
    results: Mapping[str, Any] = {}
    answers: Mapping[str, Any] = {}
    used: Mapping[str, int] = {}
    per_attempt: list[Mapping[str, Any]] = []
    letters: Mapping[str, int] = {}
    if row is not None:
        results, answers, used, per_attempt, letters = row
    count = sum(int(results.get(s, 0)) for s in ("validated", "exhausted", "failed"))
    elapsed = float(results.get("elapsed") or 0.0)
    return RunSummary(
        run=run,
        progress=Progress(
            total=generator.next,
            sent=generator.sent,
            skipped=generator.skipped,
            answered=int(answers.get("answered", 0)),
            validated=int(results.get("validated", 0)),
            regenerated=int(results.get("regenerated", 0)),
            exhausted=int(results.get("exhausted", 0)),
            failed=int(results.get("failed", 0)),
            dead_lettered=sum(letters.values()),
        ),
        score=ScoreStats(mean=results.get("mean"), stddev=results.get("stddev")),
        attempts={str(k): int(v) for k, v in sorted(used.items(), key=lambda kv: int(kv[0]))},
        per_attempt=[AttemptFigures.model_validate(a) for a in per_attempt],
        usage=Usage(
            prompt_tokens=int(results.get("prompt_tokens", 0)),
            completion_tokens=int(results.get("completion_tokens", 0)),
            cost_usd=float(results.get("cost_usd", 0.0)),
        ),
        latency_ms=Latency(
            llm=_percentiles(answers.get("llm")), end_to_end=_percentiles(results.get("end_to_end"))
        ),
        retries=int(answers.get("retries", 0)),
        dead_letters=dict(letters),
        elapsed_seconds=elapsed,
        throughput_per_second=count / elapsed if elapsed > 0 else None,
        budget_exhausted=budget_exhausted,
        generator_done=generator.done,
        lag=lag,
    )
