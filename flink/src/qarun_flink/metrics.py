"""Run metrics over a window of scored answers: what the dashboard of seed 004 plots.

A plain accumulator, so that the Flink AggregateFunction in job.py stays a thin
adapter and the arithmetic is tested without Flink.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from qarun_core.messages import SCHEMA_VERSION
from qarun_core.summary import population_stddev
from qarun_flink.routing import MetricEvent, Outcome


@dataclass
class _Sum:
    count: int = 0
    total: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class RunMetrics:
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    scored_by_attempt: dict[int, _Sum] = field(default_factory=dict)
    final_by_attempt: dict[int, int] = field(default_factory=dict)
    improvement_by_attempt: dict[int, _Sum] = field(default_factory=dict)

    def add(self, event: MetricEvent) -> RunMetrics:
        if event.outcome is Outcome.DUPLICATE:
            return self
        self.count += 1
        self.total += event.score
        self.squares += event.score * event.score
        self.outcomes[event.outcome] = self.outcomes.get(event.outcome, 0) + 1
        self.scored_by_attempt.setdefault(event.attempt, _Sum()).add(event.score)
        if event.outcome is not Outcome.REGENERATE:
            self.final_by_attempt[event.attempt] = self.final_by_attempt.get(event.attempt, 0) + 1
        if event.improvement is not None:
            self.improvement_by_attempt.setdefault(event.attempt, _Sum()).add(event.improvement)
        return self

    def merge(self, other: RunMetrics) -> RunMetrics:
        self.count += other.count
        self.total += other.total
        self.squares += other.squares
        for outcome, n in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n
        for attempt, n in other.final_by_attempt.items():
            self.final_by_attempt[attempt] = self.final_by_attempt.get(attempt, 0) + n
        for mine, theirs in (
            (self.scored_by_attempt, other.scored_by_attempt),
            (self.improvement_by_attempt, other.improvement_by_attempt),
        ):
            for attempt, part in theirs.items():
                into = mine.setdefault(attempt, _Sum())
                into.count += part.count
                into.total += part.total
        return self

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def stddev(self) -> float:
        """The run summary's definition (population), over this window's scores."""
        return population_stddev(self.count, self.total, self.squares) or 0.0

    def to_json(self, run: str, start_ms: int, end_ms: int) -> str:
        def iso(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).isoformat()

        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "metrics",
                "run": run,
                "window_start": iso(start_ms),
                "window_end": iso(end_ms),
                "count": self.count,
                "score_mean": round(self.mean, 6),
                "score_stddev": round(self.stddev, 6),
                "outcomes": self.outcomes,
                "scored_by_attempt": {
                    str(a): s.count for a, s in sorted(self.scored_by_attempt.items())
                },
                "final_by_attempt": {str(a): n for a, n in sorted(self.final_by_attempt.items())},
                "score_mean_by_attempt": {
                    str(a): round(s.mean, 6) for a, s in sorted(self.scored_by_attempt.items())
                },
                "improvement_mean_by_attempt": {
                    str(a): round(s.mean, 6) for a, s in sorted(self.improvement_by_attempt.items())
                },
            },
            separators=(",", ":"),
        )
