"""A run's report, read from PostgreSQL: the one place every final result lands.

The queries read the storage writer's tables (`results`, `attempts`, `dead_letters`,
created by the migrations in qarun_workers) and nothing else, so a report works the
same on a live run and on one that stopped long ago (the runner then starts only
PostgreSQL, on the run's kept data directory).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

COUNTS = """
SELECT count(*),
       count(*) FILTER (WHERE status = 'validated'),
       count(*) FILTER (WHERE status = 'exhausted'),
       count(*) FILTER (WHERE status = 'failed'),
       avg(score) FILTER (WHERE status <> 'failed'),
       stddev_samp(score) FILTER (WHERE status <> 'failed'),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(cost_usd), 0),
       extract(epoch FROM max(finished_at) - min(first_sent_at)),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - first_sent_at) * 1000)
FROM results WHERE run = %s
"""

ATTEMPTS_USED = """
SELECT attempts, count(*) FROM results WHERE run = %s AND status <> 'failed'
GROUP BY attempts ORDER BY attempts
"""

BY_ATTEMPT = """
SELECT a.attempt, count(*), avg(a.score), avg(a.score - p.score)
FROM attempts a
LEFT JOIN attempts p
  ON p.run = a.run AND p.question_id = a.question_id AND p.attempt = a.attempt - 1
WHERE a.run = %s
GROUP BY a.attempt ORDER BY a.attempt
"""

LATENCY = """
SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms),
       coalesce(sum(retries), 0)
FROM attempts WHERE run = %s
"""

DEAD_LETTERS = "SELECT reason, count(*) FROM dead_letters WHERE run = %s GROUP BY reason"


@dataclass
class AttemptStats:
    attempt: int
    scored: int
    score_mean: float
    improvement_mean: float | None  # mean gain over the previous attempt of the same question


@dataclass
class Summary:
    run: str
    results: int = 0
    validated: int = 0
    exhausted: int = 0
    failed: int = 0
    score_mean: float | None = None
    score_stddev: float | None = None
    attempts_used: dict[int, int] = field(default_factory=dict)  # attempts made -> questions
    by_attempt: list[AttemptStats] = field(default_factory=list)
    llm_latency_ms: dict[str, float] = field(default_factory=dict)  # p50/p95/p99
    end_to_end_ms: dict[str, float] = field(default_factory=dict)  # first sent -> stored
    retries: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return self.results / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def regenerated(self) -> int:
        return sum(n for used, n in self.attempts_used.items() if used > 1)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput_per_second"] = round(self.throughput, 2)
        data["regenerated"] = self.regenerated
        return data


def _percentiles(values: list[float] | None) -> dict[str, float]:
    if not values or values[0] is None:
        return {}
    return {name: round(float(v), 1) for name, v in zip(("p50", "p95", "p99"), values, strict=True)}


def summarize(dsn: str, run: str) -> Summary:
    """Everything the report shows, in five read-only queries."""
    summary = Summary(run=run)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass('results') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return summary  # the storage writer has not created its tables yet
        row = conn.execute(COUNTS, (run,)).fetchone()
        assert row is not None
        summary.results, summary.validated, summary.exhausted, summary.failed = row[:4]
        summary.score_mean = None if row[4] is None else round(float(row[4]), 4)
        summary.score_stddev = None if row[5] is None else round(float(row[5]), 4)
        summary.prompt_tokens, summary.completion_tokens = int(row[6]), int(row[7])
        summary.cost_usd = round(float(row[8]), 6)
        summary.elapsed_seconds = round(float(row[9] or 0.0), 3)
        summary.end_to_end_ms = _percentiles(row[10])
        summary.attempts_used = {
            int(used): int(n) for used, n in conn.execute(ATTEMPTS_USED, (run,))
        }
        summary.by_attempt = [
            AttemptStats(
                int(attempt),
                int(n),
                round(float(mean), 4),
                None if gain is None else round(float(gain), 4),
            )
            for attempt, n, mean, gain in conn.execute(BY_ATTEMPT, (run,))
        ]
        latency = conn.execute(LATENCY, (run,)).fetchone()
        if latency is not None:
            summary.llm_latency_ms = _percentiles(latency[0])
            summary.retries = int(latency[1])
        summary.dead_letters = {
            str(reason): int(n) for reason, n in conn.execute(DEAD_LETTERS, (run,))
        }
    return summary


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def render(summary: Summary) -> str:
    """The report as a plain-text table."""
    rows: list[tuple[str, str]] = [
        ("questions with a result", f"{summary.results}"),
        ("  validated", f"{summary.validated}"),
        ("  exhausted (best answer kept)", f"{summary.exhausted}"),
        ("  failed", f"{summary.failed}"),
        ("regenerated (answered more than once)", f"{summary.regenerated}"),
        ("LLM call retries", f"{summary.retries}"),
        ("dead letters", ", ".join(f"{k} {v}" for k, v in summary.dead_letters.items()) or "0"),
        (
            "score mean / sd",
            f"{_num(summary.score_mean)} / {_num(summary.score_stddev)}",
        ),
        (
            "attempts used",
            "  ".join(f"{used}: {n}" for used, n in sorted(summary.attempts_used.items())) or "-",
        ),
    ]
    for stats in summary.by_attempt:
        gain = "" if stats.improvement_mean is None else f", {stats.improvement_mean:+.3f} vs prev"
        rows.append(
            (
                f"  attempt {stats.attempt}",
                f"{stats.scored} scored, mean {stats.score_mean:.3f}{gain}",
            )
        )
    for label, values in (
        ("LLM latency", summary.llm_latency_ms),
        ("end to end", summary.end_to_end_ms),
    ):
        text = " / ".join(f"{values[p]:.0f}" for p in ("p50", "p95", "p99")) if values else "-"
        rows.append((f"{label} p50/p95/p99 ms", text))
    rows += [
        (
            "throughput",
            f"{summary.throughput:.1f} questions/s over {summary.elapsed_seconds:.1f} s",
        ),
        ("tokens prompt / completion", f"{summary.prompt_tokens} / {summary.completion_tokens}"),
        ("cost", f"${summary.cost_usd:.4f}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"QARun report: {summary.run}", "-" * (width + 30)]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)
