"""A run's report: qarun_core.summary's figures, read from PostgreSQL (and Redis while
the run is live), rendered as a table.

The figures are the API's (the same query and definitions, in qarun_core.summary), so a
report works the same on a live run and on one that stopped long ago (the runner then
starts only PostgreSQL, on the run's kept data directory; the generator's record and
the lag are then unknown).
"""

from __future__ import annotations

import contextlib
import math

import psycopg
import redis

from qarun_core.keys import GeneratorRecord, budget_key, generator_key
from qarun_core.summary import SUMMARY_SQL, Percentiles, RunSummary, summary_of


def summarize(dsn: str, run: str, redis_url: str = "") -> RunSummary:
    """The run's summary; `redis_url` adds the generator's record and the budget."""
    row = None
    # No tables yet: the storage writer has not created them, nothing is stored.
    with (
        psycopg.connect(dsn, connect_timeout=10) as conn,
        contextlib.suppress(psycopg.errors.UndefinedTable),
    ):
        row = conn.execute(SUMMARY_SQL.encode(), {"run": run}).fetchone()
    generator, exhausted = GeneratorRecord(), None
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_timeout=2)
        try:
            generator = GeneratorRecord.from_redis(client.hgetall(generator_key(run)))
            value = client.hget(budget_key(run), "exhausted")
            exhausted = value.decode() if isinstance(value, bytes) else None
        finally:
            client.close()
    return summary_of(run, row, generator=generator, budget_exhausted=exhausted, lag=None)


def summarize_empty(run: str) -> RunSummary:
    """The summary of a run with nothing stored yet."""
    return summary_of(run, None, generator=GeneratorRecord(), budget_exhausted=None, lag=None)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _ms(values: Percentiles | None) -> str:
    return "-" if values is None else f"{values.p50:.0f} / {values.p95:.0f} / {values.p99:.0f}"


def results(summary: RunSummary) -> int:
    p = summary.progress
    return p.validated + p.exhausted + p.failed


def render(summary: RunSummary) -> str:
    """The report as a plain-text table."""
    p = summary.progress
    rows: list[tuple[str, str]] = [
        ("questions with a result", f"{results(summary)}"),
        ("  validated", f"{p.validated}"),
        ("  exhausted (best answer kept)", f"{p.exhausted}"),
        ("  failed", f"{p.failed}"),
        ("regenerated (answered more than once)", f"{p.regenerated}"),
        ("LLM answers stored", f"{p.answered}"),
        ("LLM call retries", f"{summary.retries}"),
        ("dead letters", ", ".join(f"{k} {v}" for k, v in summary.dead_letters.items()) or "0"),
        ("score mean / sd", f"{_num(summary.score.mean)} / {_num(summary.score.stddev)}"),
        ("attempts used", "  ".join(f"{k}: {n}" for k, n in summary.attempts.items()) or "-"),
    ]
    for stats in summary.per_attempt:
        gain = "" if stats.mean_gain is None else f", gain {stats.mean_gain:+.3f} over the previous"
        rows.append(
            (
                f"  attempt {stats.attempt}",
                f"{stats.scored} scored, mean {stats.mean_score:.3f}{gain}",
            )
        )
    throughput = summary.throughput_per_second or 0.0
    rows += [
        ("LLM latency p50/p95/p99 ms", _ms(summary.latency_ms.llm)),
        ("end to end p50/p95/p99 ms", _ms(summary.latency_ms.end_to_end)),
        ("throughput", f"{throughput:.1f} questions/s over {summary.elapsed_seconds:.1f} s"),
        (
            "tokens prompt / completion",
            f"{summary.usage.prompt_tokens} / {summary.usage.completion_tokens}",
        ),
        ("cost", f"${summary.usage.cost_usd:.4f}"),
    ]
    if summary.budget_exhausted:
        rows.append(("budget exhausted", summary.budget_exhausted))
    width = max(len(label) for label, _ in rows)
    lines = [f"QARun report: {summary.run}", "-" * (width + 30)]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)
